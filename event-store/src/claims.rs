//! Claims that do not live for ever: records a caller sweeps by age, and those made by a
//! stream's appends, released together (an erasure gives up what its user's requests
//! left behind). Neither touches the log.

use std::time::Duration;

use crate::error::StoreError;
use crate::store::EventStore;
use crate::stream::StreamId;

impl EventStore {
    /// Deletes at most `batch` claims of `scope` older than `age` (by the database's
    /// clock), oldest first, and returns how many went. Call it again while it returns
    /// `batch`.
    pub async fn expire_claims(
        &self,
        scope: &str,
        age: Duration,
        batch: u32,
    ) -> Result<u64, StoreError> {
        let micros = u64::try_from(age.as_micros()).unwrap_or(u64::MAX);
        let done = self
            .bounded(
                sqlx::query(
                    "DELETE FROM claims WHERE scope = ? \
                     AND claimed_at < UTC_TIMESTAMP(6) - INTERVAL ? MICROSECOND \
                     ORDER BY claimed_at LIMIT ?",
                )
                .bind(scope)
                .bind(micros)
                .bind(batch)
                .execute(self.pool()),
            )
            .await?;
        Ok(done.rows_affected())
    }

    /// Deletes every claim of `scope` made by an append whose last event is in `stream`
    /// (a claim remembers that position), and returns how many went.
    pub async fn release_claims_of_stream(
        &self,
        scope: &str,
        stream: &StreamId,
    ) -> Result<u64, StoreError> {
        let done = self
            .bounded(
                sqlx::query(
                    "DELETE c FROM claims c JOIN events e ON e.position = c.position \
                     WHERE c.scope = ? AND e.stream_id = ?",
                )
                .bind(scope)
                .bind(stream.as_str())
                .execute(self.pool()),
            )
            .await?;
        Ok(done.rows_affected())
    }
}
