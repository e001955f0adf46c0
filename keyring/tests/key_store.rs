//! The data-key table against the real MariaDB: a fresh database per test, dropped at the
//! end even when the test panics.

// Test helpers: a failed set-up or query should stop the test with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::str::FromStr;
use std::time::Duration;

use keyring::{KeyStore, KeyStoreOptions, KeyringError, MasterKeys};
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::{ConnectOptions, Connection, MySqlPool};
use uuid::Uuid;

const DEFAULT_DATABASE_URL: &str = "mysql://example:example@127.0.0.1:3306/";

/// A database named `example_t_<uuid>`, migrated; dropped on drop.
struct TestDatabase {
    name: String,
    server: MySqlConnectOptions,
    pool: MySqlPool,
}

impl TestDatabase {
    async fn new() -> Self {
        let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.into());
        let server = MySqlConnectOptions::from_str(&url)
            .expect("DATABASE_URL is a mysql:// URL")
            .database("");
        let name = format!("example_t_{}", Uuid::new_v4().simple());
        let mut conn = server
            .connect()
            .await
            .expect("the test account reaches MariaDB");
        sqlx::raw_sql(&format!("CREATE DATABASE `{name}`"))
            .execute(&mut conn)
            .await
            .expect("create the test database");
        let _ = conn.close().await;
        // From here on the guard exists, so a failure below still drops the database.
        let pool = MySqlPoolOptions::new()
            .max_connections(4)
            .connect_lazy_with(server.clone().database(&name));
        let db = Self { name, server, pool };
        keyring::migrator()
            .run(&db.pool)
            .await
            .expect("migrate the test database");
        db
    }

    fn store(&self, master: &str) -> KeyStore {
        KeyStore::new(self.pool.clone(), master_keys(master))
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let server = self.server.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime; the clean-up gets a runtime of its own.
        let cleanup = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(mut conn) = server.connect().await {
                    let _ = sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS `{name}`"))
                        .execute(&mut conn)
                        .await;
                    let _ = conn.close().await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// `"1,2"` → versions 1 and 2 with fixed test keys, the highest active.
fn master_keys(versions: &str) -> MasterKeys {
    MasterKeys::from_keys(
        versions
            .split(',')
            .map(|v| v.parse::<u32>().unwrap())
            .map(|v| (v, [v as u8; 32])),
    )
    .unwrap()
}

type StoredRow = (Option<u32>, Option<Vec<u8>>, bool, bool);

async fn stored(pool: &MySqlPool, subject: Uuid) -> Option<StoredRow> {
    sqlx::query_as(
        "SELECT master_version, wrapped, created_at IS NOT NULL, shredded_at IS NOT NULL \
         FROM data_keys WHERE subject = ?",
    )
    .bind(subject)
    .fetch_optional(pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_key_is_created_once_and_found_again() {
    let db = TestDatabase::new().await;
    let store = db.store("1");
    let ada = Uuid::new_v4();

    assert!(matches!(
        store.get(ada).await,
        Err(KeyringError::NoDataKey { subject }) if subject == ada
    ));
    let sealed = store.seal(ada, "ada@example.org", "email").await.unwrap();
    let (version, wrapped, created, shredded) = stored(&db.pool, ada).await.unwrap();
    assert_eq!(version, Some(1));
    assert_eq!(wrapped.map(|w| w.len()), Some(60));
    assert!(created && !shredded);

    // Another process: no cache, same table.
    let other = db.store("1");
    assert_eq!(
        other.open(ada, &sealed, "email").await.unwrap(),
        "ada@example.org"
    );
    let again = other.data_key_for(ada).await.unwrap();
    assert_eq!(again.open(&sealed, "email").unwrap(), "ada@example.org");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_uses_agree_on_one_key() {
    let db = TestDatabase::new().await;
    let subject = Uuid::new_v4();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let store = db.store("1");
        tasks.spawn(async move { store.seal(subject, "Ada", "display_name").await });
    }
    let reader = db.store("1");
    while let Some(sealed) = tasks.join_next().await {
        let sealed = sealed.unwrap().unwrap();
        assert_eq!(
            reader.open(subject, &sealed, "display_name").await.unwrap(),
            "Ada"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_shredding_nothing_opens_and_no_key_material_is_left() {
    let db = TestDatabase::new().await;
    let store = db.store("1");
    let other_process = db.store("1");
    let ada = Uuid::new_v4();
    let bob = Uuid::new_v4();
    let sealed = store.seal(ada, "ada@example.org", "email").await.unwrap();
    let bobs = store.seal(bob, "bob@example.org", "email").await.unwrap();
    // Warm the shredding store's cache: the shred must drop it.
    store.open(ada, &sealed, "email").await.unwrap();

    store.shred(ada).await.unwrap();

    for s in [&store, &other_process] {
        assert!(matches!(
            s.open(ada, &sealed, "email").await,
            Err(KeyringError::Shredded { subject }) if subject == ada
        ));
        assert!(matches!(
            s.data_key_for(ada).await,
            Err(KeyringError::Shredded { .. })
        ));
        assert!(matches!(
            s.seal(ada, "new@example.org", "email").await,
            Err(KeyringError::Shredded { .. })
        ));
    }
    let (version, wrapped, _, shredded) = stored(&db.pool, ada).await.unwrap();
    assert_eq!((version, wrapped, shredded), (None, None, true));

    // Shredding again is harmless; other subjects are untouched.
    store.shred(ada).await.unwrap();
    assert_eq!(
        store.open(bob, &bobs, "email").await.unwrap(),
        "bob@example.org"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shredding_a_subject_without_a_key_keeps_it_keyless() {
    let db = TestDatabase::new().await;
    let store = db.store("1");
    let ghost = Uuid::new_v4();
    store.shred(ghost).await.unwrap();
    assert!(matches!(
        store.data_key_for(ghost).await,
        Err(KeyringError::Shredded { .. })
    ));
    let (version, wrapped, _, shredded) = stored(&db.pool, ghost).await.unwrap();
    assert_eq!((version, wrapped, shredded), (None, None, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unshredded_names_live_and_keyless_subjects_once_each() {
    let db = TestDatabase::new().await;
    let store = db.store("1");
    let (live, shredded, keyless) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    store.data_key_for(live).await.unwrap();
    store.data_key_for(shredded).await.unwrap();
    store.shred(shredded).await.unwrap();
    let mut expected = vec![live, keyless];
    expected.sort();
    assert_eq!(
        store
            .unshredded(&[live, shredded, keyless, live])
            .await
            .unwrap(),
        expected
    );
    assert!(store.unshredded(&[]).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_rewraps_every_live_key_under_the_active_version() {
    let db = TestDatabase::new().await;
    let before = db.store("1");
    let subjects: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
    let mut sealed = Vec::new();
    for &s in &subjects {
        sealed.push(before.seal(s, "Ada", "display_name").await.unwrap());
    }
    before.shred(subjects[0]).await.unwrap();

    // Version 2 rolled out and active; version 1 still loaded.
    let during = db.store("1,2");
    assert_eq!(
        during
            .open(subjects[1], &sealed[1], "display_name")
            .await
            .unwrap(),
        "Ada"
    );
    let fresh = Uuid::new_v4();
    during.seal(fresh, "new", "display_name").await.unwrap();
    assert_eq!(stored(&db.pool, fresh).await.unwrap().0, Some(2));

    assert_eq!(during.rewrap_all(2).await.unwrap(), 4);
    assert_eq!(during.rewrap_all(2).await.unwrap(), 0);
    for &s in &subjects[1..] {
        assert_eq!(stored(&db.pool, s).await.unwrap().0, Some(2));
    }
    let (version, wrapped, _, _) = stored(&db.pool, subjects[0]).await.unwrap();
    assert_eq!(
        (version, wrapped),
        (None, None),
        "a shredded key stays shredded"
    );

    // Version 1 retired: everything still opens, nothing needs it.
    let after = KeyStore::with_options(
        db.pool.clone(),
        master_keys("2"),
        KeyStoreOptions {
            cache_capacity: 0,
            cache_ttl: Duration::ZERO,
            ..KeyStoreOptions::default()
        },
    );
    for (s, text) in subjects.iter().zip(&sealed).skip(1) {
        assert_eq!(after.open(*s, text, "display_name").await.unwrap(), "Ada");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_wrapped_under_an_unloaded_version_is_reported_as_such() {
    let db = TestDatabase::new().await;
    let subject = Uuid::new_v4();
    let sealed = db
        .store("1,2")
        .seal(subject, "Ada", "display_name")
        .await
        .unwrap();
    assert!(matches!(
        db.store("1").open(subject, &sealed, "display_name").await,
        Err(KeyringError::UnknownMasterKey { version: 2 })
    ));
}
