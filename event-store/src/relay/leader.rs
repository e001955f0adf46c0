//! Leadership through MariaDB's `GET_LOCK`, and the checkpoint the leader keeps.
//!
//! The lock lives as long as the connection that took it, so that connection is
//! dedicated: taken out of the pool, never shared. The checkpoint is read and written
//! over that same connection; a relay whose lock connection died therefore cannot move
//! the checkpoint, and learns of the loss on its next write or check. Each term begins by
//! incrementing the relay's epoch over that connection (ADR 0013).
//!
//! The anchor signer (`crate::anchor`) takes turns the same way, under locks of its own
//! kind (`anchor:<database>:<name>`), and writes its anchors over its lock connection.

use sqlx::mysql::{MySqlConnection, MySqlPool};

use crate::leader::LeaderLock;

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

/// A connection that is waiting for, or holds, the lock of one relay name: the shared
/// [`LeaderLock`] of kind `relay`, plus what only the relay's leader does over it.
pub(crate) struct LockConnection {
    lock: LeaderLock,
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
        let lock = LeaderLock::open(pool, kind, name)
            .await
            .map_err(RelayError::database("connecting for the leadership lock"))?;
        Ok(Self { lock })
    }

    /// The connection that holds the lock, for writes only the leader may make.
    pub(crate) fn connection(&mut self) -> &mut MySqlConnection {
        self.lock.connection()
    }

    /// Waits up to `wait_seconds` for the lock; `true` once this connection holds it. The
    /// server hands a released lock to a waiter at once, so a standby waiting here takes
    /// over as soon as the leader's connection ends.
    pub(crate) async fn try_lock(&mut self, wait_seconds: u64) -> Result<bool, RelayError> {
        self.lock
            .try_lock(wait_seconds)
            .await
            .map_err(RelayError::database("waiting for the leadership lock"))
    }

    /// Whether this connection still holds the lock (an error if the connection is gone).
    pub(crate) async fn holds_lock(&mut self) -> Result<bool, RelayError> {
        self.lock
            .holds()
            .await
            .map_err(RelayError::database("checking the leadership lock"))
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
        .execute(self.lock.connection())
        .await
        .map_err(RelayError::database("starting a leadership term (epoch)"))?;
        let (checkpoint, epoch): (u64, u64) =
            sqlx::query_as("SELECT position, epoch FROM relay_checkpoints WHERE name = ?")
                .bind(name)
                .fetch_one(self.lock.connection())
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
        .execute(self.lock.connection())
        .await
        .map_err(RelayError::database("storing the relay checkpoint"))?;
        Ok(())
    }

    /// Gives the lock up and closes the connection (which would release it anyway).
    pub(crate) async fn release(self) {
        self.lock.release().await;
    }
}
