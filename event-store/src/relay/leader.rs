//! Leadership through MariaDB's `GET_LOCK`, and the checkpoint the leader keeps.
//!
//! The lock lives as long as the connection that took it, so that connection is
//! dedicated: taken out of the pool, never shared. The checkpoint is read and written
//! over that same connection; a relay whose lock connection died therefore cannot move
//! the checkpoint, and learns of the loss on its next write or check. Each term begins by
//! incrementing the relay's epoch over that connection (ADR 0013).

use sha2::{Digest, Sha256};
use sqlx::mysql::{MySqlConnection, MySqlPool};
use sqlx::Connection;

use crate::error::StoreError;
use crate::relay::error::RelayError;
use crate::store::EventStore;

/// The highest epoch any relay of this database has begun a term with (0 before the
/// first): no genuine message carries a later one. For consumers that check a message's
/// `relayepoch` (ADR 0013); needs SELECT on `relay_checkpoints`.
pub async fn issued_epoch(store: &EventStore) -> Result<u64, StoreError> {
    let epoch: Option<u64> = sqlx::query_scalar("SELECT MAX(epoch) FROM relay_checkpoints")
        .fetch_one(store.pool())
        .await?;
    Ok(epoch.unwrap_or(0))
}

/// One leadership term: its epoch, and the checkpoint it resumes after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Term {
    pub epoch: u64,
    pub checkpoint: u64,
}

/// A connection that is waiting for, or holds, the lock of one relay name.
pub(crate) struct LockConnection {
    conn: MySqlConnection,
    lock: String,
}

/// `GET_LOCK` names are server-wide and at most 64 characters: the database is part of
/// the name (each test database has its own relays), hashed when it would not fit.
fn lock_name(database: &str, relay: &str) -> String {
    let plain = format!("relay:{database}:{relay}");
    if plain.len() <= 64 {
        return plain;
    }
    let digest = Sha256::digest(format!("{database}:{relay}").as_bytes());
    let mut hashed = format!("relay:{}", hex::encode(digest));
    hashed.truncate(64);
    hashed
}

impl LockConnection {
    /// A dedicated connection for the lock of relay `name`.
    pub(crate) async fn open(pool: &MySqlPool, name: &str) -> Result<Self, RelayError> {
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
            lock: lock_name(&database.unwrap_or_default(), name),
        })
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

    /// Starts a leadership term of relay `name`: increments its epoch over this, the
    /// lock's connection (so only the lock holder can), and returns the new epoch and the
    /// stored checkpoint (0 before the first). Call right after [`Self::try_lock`] won.
    pub(crate) async fn begin_term(&mut self, name: &str) -> Result<Term, RelayError> {
        sqlx::query(
            "INSERT INTO relay_checkpoints (name, position, epoch, updated_at) \
             VALUES (?, 0, 1, UTC_TIMESTAMP(6)) \
             ON DUPLICATE KEY UPDATE epoch = epoch + 1",
        )
        .bind(name)
        .execute(&mut self.conn)
        .await
        .map_err(RelayError::database("starting a leadership term (epoch)"))?;
        let (checkpoint, epoch): (u64, u64) =
            sqlx::query_as("SELECT position, epoch FROM relay_checkpoints WHERE name = ?")
                .bind(name)
                .fetch_one(&mut self.conn)
                .await
                .map_err(RelayError::database("reading the relay checkpoint"))?;
        Ok(Term { epoch, checkpoint })
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
        assert_eq!(lock_name("example", "main"), "relay:example:main");
        let long = lock_name(&"d".repeat(60), "main");
        assert_eq!(long.len(), 64);
        assert!(long.starts_with("relay:"));
        assert_ne!(long, lock_name(&"d".repeat(60), "other"));
    }
}
