//! Leadership through MariaDB's `GET_LOCK`, and the checkpoint the leader keeps.
//!
//! The lock lives as long as the connection that took it, so that connection is
//! dedicated: taken out of the pool, never shared. The checkpoint is read and written
//! over that same connection; a relay whose lock connection died therefore cannot move
//! the checkpoint, and learns of the loss on its next write or check.
//!
//! The anchor signer (`crate::anchor`) takes turns the same way, under locks of its own
//! kind (`anchor:<database>:<name>`), and writes its anchors over its lock connection.

use sha2::{Digest, Sha256};
use sqlx::mysql::{MySqlConnection, MySqlPool};
use sqlx::Connection;

use crate::relay::error::RelayError;

/// A connection that is waiting for, or holds, the lock of one relay name.
pub(crate) struct LockConnection {
    conn: MySqlConnection,
    lock: String,
}

/// `GET_LOCK` names are server-wide and at most 64 characters: the database is part of
/// the name (each test database has its own relays), hashed when it would not fit.
/// `kind` keeps the leaderships of different jobs apart (`relay`, `anchor`).
fn lock_name(kind: &str, database: &str, relay: &str) -> String {
    let plain = format!("{kind}:{database}:{relay}");
    if plain.len() <= 64 {
        return plain;
    }
    let digest = Sha256::digest(format!("{database}:{relay}").as_bytes());
    let mut hashed = format!("{kind}:{}", hex::encode(digest));
    hashed.truncate(64);
    hashed
}

impl LockConnection {
    /// A dedicated connection for the lock of relay `name`.
    pub(crate) async fn open(pool: &MySqlPool, name: &str) -> Result<Self, RelayError> {
        Self::open_for(pool, "relay", name).await
    }

    /// A dedicated connection for the lock `kind:<database>:name`.
    pub(crate) async fn open_for(
        pool: &MySqlPool,
        kind: &str,
        name: &str,
    ) -> Result<Self, RelayError> {
        let mut conn = pool
            .acquire()
            .await
            .map_err(RelayError::database("connecting for the leadership lock"))?
            .detach();
        let database: Option<String> = sqlx::query_scalar("SELECT DATABASE()")
            .fetch_one(&mut conn)
            .await
            .map_err(RelayError::database("naming the database"))?;
        Ok(Self {
            conn,
            lock: lock_name(kind, &database.unwrap_or_default(), name),
        })
    }

    /// The connection that holds the lock, for writes only the leader may make.
    pub(crate) fn connection(&mut self) -> &mut MySqlConnection {
        &mut self.conn
    }

    /// Waits up to `wait_seconds` for the lock; `true` once this connection holds it. The
    /// server hands a released lock to a waiter at once, so a standby waiting here takes
    /// over as soon as the leader's connection ends.
    pub(crate) async fn try_lock(&mut self, wait_seconds: u64) -> Result<bool, RelayError> {
        let got: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK(?, ?)")
            .bind(&self.lock)
            .bind(wait_seconds)
            .fetch_one(&mut self.conn)
            .await
            .map_err(RelayError::database("waiting for the leadership lock"))?;
        Ok(got == Some(1))
    }

    /// Whether this connection still holds the lock (an error if the connection is gone).
    pub(crate) async fn holds_lock(&mut self) -> Result<bool, RelayError> {
        let held: Option<i64> = sqlx::query_scalar("SELECT IS_USED_LOCK(?) = CONNECTION_ID()")
            .bind(&self.lock)
            .fetch_one(&mut self.conn)
            .await
            .map_err(RelayError::database("checking the leadership lock"))?;
        Ok(held == Some(1))
    }

    /// The stored checkpoint of relay `name` (0 before its first).
    pub(crate) async fn load_checkpoint(&mut self, name: &str) -> Result<u64, RelayError> {
        let position: Option<u64> =
            sqlx::query_scalar("SELECT position FROM relay_checkpoints WHERE name = ?")
                .bind(name)
                .fetch_optional(&mut self.conn)
                .await
                .map_err(RelayError::database("reading the relay checkpoint"))?;
        Ok(position.unwrap_or(0))
    }

    /// Moves the checkpoint of relay `name` forward to `position` (never backward).
    pub(crate) async fn store_checkpoint(
        &mut self,
        name: &str,
        position: u64,
    ) -> Result<(), RelayError> {
        sqlx::query(
            "INSERT INTO relay_checkpoints (name, position, updated_at) \
             VALUES (?, ?, UTC_TIMESTAMP(6)) \
             ON DUPLICATE KEY UPDATE position = GREATEST(position, VALUES(position)), \
             updated_at = VALUES(updated_at)",
        )
        .bind(name)
        .bind(position)
        .execute(&mut self.conn)
        .await
        .map_err(RelayError::database("storing the relay checkpoint"))?;
        Ok(())
    }

    /// Gives the lock up and closes the connection (which would release it anyway).
    pub(crate) async fn release(mut self) {
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
        let long = lock_name("relay", &"d".repeat(60), "main");
        assert_eq!(long.len(), 64);
        assert!(long.starts_with("relay:"));
        assert_ne!(long, lock_name("relay", &"d".repeat(60), "other"));
        assert_ne!(
            lock_name("anchor", "example", "main"),
            lock_name("relay", "example", "main")
        );
    }
}
