use sqlx::migrate::Migrator;

static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// The `keyring/migrations` set (the `data_keys` table), embedded at build time.
///
/// sqlx keeps one `_sqlx_migrations` history per database and a migrator refuses a
/// history holding versions it does not know. Give `data_keys` its own database, or
/// have every set that shares one ignore missing versions.
pub fn migrator() -> &'static Migrator {
    &MIGRATOR
}
