//! A fresh database per test, migrated, dropped when the test ends (even on panic).
//!
//! The account comes from `DATABASE_URL` (default: the dev owner `cargo xtask test`
//! creates); it needs CREATE and DROP on databases named `example_t_*`.

// Test support: a failed set-up should stop the test with its reason.
#![allow(clippy::expect_used)]

use std::str::FromStr;

use sqlx::migrate::Migrator;
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::{ConnectOptions, Connection, MySqlPool};

use crate::{EventStore, StoreOptions};

pub const DEFAULT_DATABASE_URL: &str = "mysql://example:example@127.0.0.1:3306/example";

/// The prefix of every database a test makes; `cargo xtask test` drops stale ones.
pub const TEST_DATABASE_PREFIX: &str = "example_t_";

pub struct TestDatabase {
    pub name: String,
    pub options: MySqlConnectOptions,
    server: MySqlConnectOptions,
}

impl TestDatabase {
    /// A new, empty database with the event-store migrations applied.
    pub async fn new() -> Self {
        Self::with_migrations(&[crate::migrator()]).await
    }

    pub async fn with_migrations(migrators: &[&Migrator]) -> Self {
        let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.into());
        let server = MySqlConnectOptions::from_str(&url)
            .expect("DATABASE_URL is a mysql:// URL")
            .database("");
        Self::on_server(server, migrators).await
    }

    /// A new database on the server `server` reaches (an account that may create
    /// databases), for example a private server a test kills and pauses.
    pub async fn on_server(server: MySqlConnectOptions, migrators: &[&Migrator]) -> Self {
        let name = format!("{TEST_DATABASE_PREFIX}{}", uuid::Uuid::new_v4().simple());
        let mut conn = server
            .connect()
            .await
            .expect("the test account reaches MariaDB (run `cargo xtask test` to set it up)");
        sqlx::raw_sql(&format!("CREATE DATABASE `{name}`"))
            .execute(&mut conn)
            .await
            .expect("create the test database");
        let _ = conn.close().await;
        let options = server.clone().database(&name);
        let pool = Self::pool_for(&options, 1).await;
        for m in migrators {
            m.run(&pool).await.expect("migrate the test database");
        }
        pool.close().await;
        Self {
            name,
            options,
            server,
        }
    }

    pub async fn pool(&self, size: u32) -> MySqlPool {
        Self::pool_for(&self.options, size).await
    }

    async fn pool_for(options: &MySqlConnectOptions, size: u32) -> MySqlPool {
        MySqlPoolOptions::new()
            .max_connections(size)
            .connect_with(options.clone())
            .await
            .expect("connect to the test database")
    }

    /// An event store on this database, as the owner.
    pub async fn store(&self) -> EventStore {
        self.store_with(StoreOptions {
            read_pool_size: 4,
            ..StoreOptions::default()
        })
        .await
    }

    pub async fn store_with(&self, options: StoreOptions) -> EventStore {
        EventStore::connect_with(self.options.clone(), options)
            .await
            .expect("connect the event store")
    }
}

impl TestDatabase {
    /// What an attacker with the owner account can do to the log: replace the data of
    /// the event at `position` with `data` and recompute the hash of every event from
    /// there to the head, and each `prev_hash` after it, so that the chain verifies again.
    /// The predecessor foreign key (`events_prev_hash`) is switched off for its session,
    /// as the owner may. Returns the log's new head hash.
    pub async fn rewrite_event(&self, position: u64, data: &str) -> crate::Hash {
        let mut conn = self.options.connect().await.expect("connect as the owner");
        sqlx::raw_sql("SET SESSION FOREIGN_KEY_CHECKS = 0; START TRANSACTION")
            .execute(&mut conn)
            .await
            .expect("switch off foreign key checks");
        let sql = format!(
            "SELECT {} FROM events WHERE position >= ? ORDER BY position",
            crate::read::EVENT_COLUMNS
        );
        let rows = sqlx::query(&sql)
            .bind(position)
            .fetch_all(&mut conn)
            .await
            .expect("read the log from the rewritten event");
        let mut events: Vec<crate::RecordedEvent> = rows
            .iter()
            .map(|row| crate::read::decode_event(row).expect("a readable event"))
            .collect();
        assert!(
            events.first().is_some_and(|e| e.position == position),
            "no event at position {position}"
        );
        let mut prev = events[0].prev_hash;
        for (i, event) in events.iter_mut().enumerate() {
            if i == 0 {
                event.data = data.to_owned();
            }
            event.prev_hash = prev;
            event.hash = crate::event_hash(&prev, event);
            prev = event.hash;
            sqlx::query("UPDATE events SET data = ?, prev_hash = ?, hash = ? WHERE position = ?")
                .bind(&event.data)
                .bind(&event.prev_hash[..])
                .bind(&event.hash[..])
                .bind(event.position)
                .execute(&mut conn)
                .await
                .expect("rewrite an event");
        }
        sqlx::raw_sql("COMMIT")
            .execute(&mut conn)
            .await
            .expect("commit the rewrite");
        let _ = conn.close().await;
        prev
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
                    // A service a failed test left behind may hold a transaction open on
                    // this database, and cannot finish it while the test's runtime
                    // waits here: DROP would wait for its metadata lock for ever. Its
                    // connections go first (they are the test account's own).
                    let holders: Vec<u64> = sqlx::query_scalar(
                        "SELECT ID FROM information_schema.PROCESSLIST \
                         WHERE DB = ? AND ID <> CONNECTION_ID()",
                    )
                    .bind(&name)
                    .fetch_all(&mut conn)
                    .await
                    .unwrap_or_default();
                    for id in holders {
                        let _ = sqlx::raw_sql(&format!("KILL CONNECTION {id}"))
                            .execute(&mut conn)
                            .await;
                    }
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
