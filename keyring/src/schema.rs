use sqlx::migrate::Migrator;

// Several migration sets share a database (the event store's, the keyring's): each
// ignores the versions of the others in sqlx's one `_sqlx_migrations` history.
static MIGRATOR: Migrator = Migrator {
    ignore_missing: true,
    ..sqlx::migrate!("./migrations")
};

/// The `keyring/migrations` set (the `data_keys` table), embedded at build time.
/// It shares `_sqlx_migrations` with the other sets of the same database and ignores
/// their versions.
pub fn migrator() -> &'static Migrator {
    &MIGRATOR
}
