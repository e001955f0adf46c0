use sqlx::migrate::Migrator;
use sqlx::MySqlPool;

use crate::error::StoreError;

// Several migration sets share a database (the event store's, the keyring's): each
// ignores the versions of the others in sqlx's one `_sqlx_migrations` history.
static MIGRATOR: Migrator = Migrator {
    ignore_missing: true,
    ..sqlx::migrate!("../migrations/eventstore")
};

/// The `migrations/eventstore` set, embedded at build time. Run it as the database's
/// owner; it never touches read tables.
pub fn migrator() -> &'static Migrator {
    &MIGRATOR
}

/// Creates (or updates the password of) the writer account and grants it exactly what
/// appending needs: INSERT and SELECT on `events`, never UPDATE or DELETE; INSERT,
/// SELECT and DELETE on `claims`. Run as an account with CREATE USER and GRANT OPTION.
pub async fn grant_writer(
    admin: &MySqlPool,
    database: &str,
    user: &str,
    password: &str,
) -> Result<(), StoreError> {
    // GRANT takes no bind parameters: names are checked, the password is escaped.
    let ident_ok = |s: &str| {
        !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    };
    if !ident_ok(database) || !ident_ok(user) {
        return Err(StoreError::Invalid(
            "database and user names must be 1-64 of [A-Za-z0-9_]".into(),
        ));
    }
    let password = password.replace('\\', "\\\\").replace('\'', "\\'");
    let mut conn = admin.acquire().await?;
    for sql in [
        format!("CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY '{password}'"),
        format!("ALTER USER '{user}'@'%' IDENTIFIED BY '{password}'"),
        format!("GRANT SELECT, INSERT ON `{database}`.`events` TO '{user}'@'%'"),
        format!("GRANT SELECT, INSERT, DELETE ON `{database}`.`claims` TO '{user}'@'%'"),
    ] {
        sqlx::Executor::execute(&mut *conn, sql.as_str()).await?;
    }
    Ok(())
}
