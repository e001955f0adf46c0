//! Leadership through MariaDB's `GET_LOCK`: one process of a kind (the relay, the
//! webhook deliverer, the anchor signer) works at a time; the others wait as standbys and
//! take over as soon as the leader's connection ends (ADR 0010).
//!
//! The lock lives as long as the connection that took it, so that connection is
//! dedicated: taken out of the pool, never shared. Whatever the leader must only do while
//! it leads (move a checkpoint, begin a term) it does over [`LeaderLock::connection`]: a
//! leader whose connection died cannot, and learns of the loss on its next statement.

use sha2::{Digest, Sha256};
use sqlx::mysql::{MySqlConnection, MySqlPool};
use sqlx::Connection;

/// A dedicated connection that is waiting for, or holds, one named lock.
pub struct LeaderLock {
    conn: MySqlConnection,
    lock: String,
}

/// `GET_LOCK` names are server-wide and at most 64 characters: the database is part of
/// the name (each test database has its own leaders), hashed when it would not fit.
pub(crate) fn lock_name(kind: &str, database: &str, name: &str) -> String {
    let plain = format!("{kind}:{database}:{name}");
    if plain.len() <= 64 {
        return plain;
    }
    let digest = Sha256::digest(format!("{database}:{name}").as_bytes());
    let mut hashed = format!("{kind}:{}", hex::encode(digest));
    hashed.truncate(64);
    hashed
}

impl LeaderLock {
    /// A dedicated connection for the lock of `kind` (e.g. `webhooks`) and `name` in the
    /// pool's database.
    pub async fn open(pool: &MySqlPool, kind: &str, name: &str) -> Result<Self, sqlx::Error> {
        let mut conn = pool.acquire().await?.detach();
        let database: Option<String> = sqlx::query_scalar("SELECT DATABASE()")
            .fetch_one(&mut conn)
            .await?;
        Ok(Self {
            conn,
            lock: lock_name(kind, &database.unwrap_or_default(), name),
        })
    }

    /// Waits up to `wait_seconds` for the lock; `true` once this connection holds it. The
    /// server hands a released lock to a waiter at once.
    pub async fn try_lock(&mut self, wait_seconds: u64) -> Result<bool, sqlx::Error> {
        let got: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK(?, ?)")
            .bind(&self.lock)
            .bind(wait_seconds)
            .fetch_one(&mut self.conn)
            .await?;
        Ok(got == Some(1))
    }

    /// Whether this connection still holds the lock (an error if the connection is gone).
    pub async fn holds(&mut self) -> Result<bool, sqlx::Error> {
        let held: Option<i64> = sqlx::query_scalar("SELECT IS_USED_LOCK(?) = CONNECTION_ID()")
            .bind(&self.lock)
            .fetch_one(&mut self.conn)
            .await?;
        Ok(held == Some(1))
    }

    /// The lock's connection, for what only the leader may do.
    pub fn connection(&mut self) -> &mut MySqlConnection {
        &mut self.conn
    }

    /// Gives the lock up and closes the connection (which would release it anyway).
    pub async fn release(mut self) {
        let _ = sqlx::query("DO RELEASE_LOCK(?)")
            .bind(&self.lock)
            .execute(&mut self.conn)
            .await;
        let _ = self.conn.close().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_names_fit_the_servers_limit() {
        assert_eq!(lock_name("relay", "example", "main"), "relay:example:main");
        let long = lock_name("webhooks", &"d".repeat(60), "main");
        assert_eq!(long.len(), 64);
        assert!(long.starts_with("webhooks:"));
        assert_ne!(long, lock_name("webhooks", &"d".repeat(60), "other"));
    }
}
