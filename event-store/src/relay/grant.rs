use sqlx::MySqlPool;

use crate::error::StoreError;

/// Creates (or updates the password of) a relay account and grants it exactly what the
/// relay needs: SELECT on `events` (tailing the log), SELECT, INSERT and UPDATE on
/// `relay_checkpoints`, and the same on `anchors` for the anchor signer it hosts.
/// `GET_LOCK` needs no privilege. Run as an account with CREATE USER
/// and GRANT OPTION; the dev stack may instead run the relay as the database owner.
pub async fn grant_relay(
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
        format!("GRANT SELECT ON `{database}`.`events` TO '{user}'@'%'"),
        format!("GRANT SELECT, INSERT, UPDATE ON `{database}`.`relay_checkpoints` TO '{user}'@'%'"),
        format!("GRANT SELECT, INSERT, UPDATE ON `{database}`.`anchors` TO '{user}'@'%'"),
    ] {
        sqlx::Executor::execute(&mut *conn, sql.as_str()).await?;
    }
    Ok(())
}
