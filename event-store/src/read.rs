use std::collections::VecDeque;

use sqlx::mysql::MySqlRow;
use sqlx::Row;
use uuid::Uuid;

use crate::chain::Hash;
use crate::error::StoreError;
use crate::event::{ClaimRecord, EventType, RecordedEvent};
use crate::store::EventStore;
use crate::stream::StreamId;

pub(crate) const EVENT_COLUMNS: &str = "position, event_id, stream_id, stream_version, \
    event_type, schema_version, data, metadata, recorded_at, prev_hash, hash";

pub(crate) fn decode_event(row: &MySqlRow) -> Result<RecordedEvent, StoreError> {
    let position: u64 = row.try_get(0)?;
    let corrupt = |what| StoreError::Corrupt { position, what };
    let event_id: Vec<u8> = row.try_get(1)?;
    let recorded_at: time::PrimitiveDateTime = row.try_get(8)?;
    Ok(RecordedEvent {
        position,
        event_id: Uuid::from_slice(&event_id).map_err(|_| corrupt("event id"))?,
        stream_id: StreamId::parse(text(row, 2)?).map_err(|_| corrupt("stream id"))?,
        stream_version: row.try_get(3)?,
        event_type: EventType::parse(text(row, 4)?).map_err(|_| corrupt("event type"))?,
        schema_version: row.try_get(5)?,
        data: text(row, 6)?,
        metadata: text(row, 7)?,
        recorded_at: recorded_at.assume_utc(),
        prev_hash: hash(row, 9).ok_or_else(|| corrupt("previous hash"))?,
        hash: hash(row, 10).ok_or_else(|| corrupt("hash"))?,
    })
}

/// Text from a column with a binary collation, which the driver reports as binary.
pub(crate) fn text(row: &MySqlRow, i: usize) -> Result<String, sqlx::Error> {
    let bytes: Vec<u8> = row.try_get(i)?;
    String::from_utf8(bytes).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

fn hash(row: &MySqlRow, i: usize) -> Option<Hash> {
    row.try_get::<Vec<u8>, _>(i).ok()?.try_into().ok()
}

impl EventStore {
    /// A stream's events from `from_version` (inclusive) on, at most `limit` of them.
    pub async fn read_stream(
        &self,
        stream_id: &StreamId,
        from_version: u64,
        limit: u32,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = ? AND stream_version >= ? \
             ORDER BY stream_version LIMIT ?"
        );
        let rows = sqlx::query(&sql)
            .bind(stream_id.as_str())
            .bind(from_version)
            .bind(limit)
            .fetch_all(&self.inner.pool);
        let rows = self.bounded(rows).await?;
        rows.iter().map(decode_event).collect()
    }

    /// The log after `after` in position order, at most `limit` events. The log has no
    /// holes, so paging with the last position seen never misses an event.
    pub async fn read_all(&self, after: u64, limit: u32) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read_all_of(after, limit, None).await
    }

    /// Like [`Self::read_all`], only the events of one stream.
    pub async fn read_all_of(
        &self,
        after: u64,
        limit: u32,
        stream_id: Option<&StreamId>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let rows = match stream_id {
            None => {
                let sql = format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE position > ? ORDER BY position LIMIT ?"
                );
                let rows = sqlx::query(&sql)
                    .bind(after)
                    .bind(limit)
                    .fetch_all(&self.inner.pool);
                self.bounded(rows).await?
            }
            Some(id) => {
                let sql = format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = ? AND position > ? \
                     ORDER BY position LIMIT ?"
                );
                let rows = sqlx::query(&sql)
                    .bind(id.as_str())
                    .bind(after)
                    .bind(limit)
                    .fetch_all(&self.inner.pool);
                self.bounded(rows).await?
            }
        };
        rows.iter().map(decode_event).collect()
    }

    /// Events of `event_type` at positions in `after + 1 ..= upto`, in position order, at
    /// most `limit`. No index serves the type: the query walks the log's positions from
    /// `after`, so a reader pages on from the last position it saw (or, for a page
    /// under `limit`, from `upto`).
    pub async fn read_of_type(
        &self,
        event_type: &EventType,
        after: u64,
        upto: u64,
        limit: u32,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE position > ? AND position <= ? \
             AND event_type = ? ORDER BY position LIMIT ?"
        );
        let rows = sqlx::query(&sql)
            .bind(after)
            .bind(upto)
            .bind(event_type.as_str())
            .bind(limit)
            .fetch_all(&self.inner.pool)
            .await?;
        rows.iter().map(decode_event).collect()
    }

    /// The stream's current version (0 for a stream with no events).
    pub async fn stream_version(&self, stream_id: &StreamId) -> Result<u64, StoreError> {
        let v: Option<u64> = self
            .bounded(
                sqlx::query_scalar("SELECT MAX(stream_version) FROM events WHERE stream_id = ?")
                    .bind(stream_id.as_str())
                    .fetch_one(&self.inner.pool),
            )
            .await?;
        Ok(v.unwrap_or(0))
    }

    /// The last committed position and its hash; `None` for an empty log.
    pub async fn head(&self) -> Result<Option<(u64, Hash)>, StoreError> {
        let row = self
            .bounded(
                sqlx::query("SELECT position, hash FROM events ORDER BY position DESC LIMIT 1")
                    .fetch_optional(&self.inner.pool),
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        let position: u64 = row.try_get(0)?;
        let hash = hash(&row, 1).ok_or(StoreError::Corrupt {
            position,
            what: "hash",
        })?;
        Ok(Some((position, hash)))
    }

    /// The last position up to `upto` recorded at or before `time` (0 if none).
    ///
    /// `recorded_at` never decreases along positions (an append is recorded no earlier
    /// than the head it follows, whatever the clock says), so the events recorded by a
    /// time are a prefix of the log, found with a binary search of about log2(`upto`)
    /// primary-key lookups.
    pub async fn last_position_by(
        &self,
        time: time::OffsetDateTime,
        upto: u64,
    ) -> Result<u64, StoreError> {
        let at = |position: u64| async move {
            let recorded: Option<time::PrimitiveDateTime> =
                sqlx::query_scalar("SELECT recorded_at FROM events WHERE position = ?")
                    .bind(position)
                    .fetch_optional(&self.inner.pool)
                    .await?;
            recorded.map(|t| t.assume_utc()).ok_or(StoreError::Corrupt {
                position,
                what: "position sequence (a hole in the log)",
            })
        };
        // Invariant: `low` is recorded by `time` (or 0), `high + 1` after it.
        let (mut low, mut high) = (0, upto);
        while low < high {
            let mid = low + (high - low).div_ceil(2);
            if at(mid).await? <= time {
                low = mid;
            } else {
                high = mid - 1;
            }
        }
        Ok(low)
    }

    /// The claim held on `key` in `scope`, if any.
    pub async fn claim(&self, scope: &str, key: &[u8]) -> Result<Option<ClaimRecord>, StoreError> {
        let row = self
            .bounded(
                sqlx::query(
                    "SELECT payload, position, claimed_at FROM claims \
                     WHERE scope = ? AND claim_key = ?",
                )
                .bind(scope)
                .bind(key)
                .fetch_optional(&self.inner.pool),
            )
            .await?;
        let Some(row) = row else { return Ok(None) };
        let payload = text(&row, 0)?;
        let position: u64 = row.try_get(1)?;
        let claimed_at: time::PrimitiveDateTime = row.try_get(2)?;
        Ok(Some(ClaimRecord {
            scope: scope.to_owned(),
            key: key.to_vec(),
            payload: serde_json::from_str(&payload).map_err(|_| StoreError::Corrupt {
                position,
                what: "claim payload",
            })?,
            position,
            claimed_at: claimed_at.assume_utc(),
        }))
    }

    /// A reader that yields every event after `after`, in order, each once, waiting for
    /// new ones as they commit.
    pub fn tail(&self, after: u64) -> Tail {
        Tail {
            store: self.clone(),
            after,
            buffer: VecDeque::new(),
            committed: self.inner.committed.clone(),
            page: 500,
            idle: MIN_POLL,
        }
    }
}

/// The log's last position, followed by one poller for any number of readers (a
/// subscription stream per client, a webhook delivery per subscription): each reader
/// waits on it instead of polling the log itself, and reads the log only when it grew.
/// The poller queries only while someone holds a receiver, and stops when the last
/// `HeadWatch` is dropped.
#[derive(Clone)]
pub struct HeadWatch {
    tx: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
}

impl HeadWatch {
    /// A receiver of the head position (0 until first read).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.tx.subscribe()
    }

    /// Readers currently following the head.
    pub fn followers(&self) -> usize {
        self.tx.receiver_count()
    }
}

impl EventStore {
    /// Starts following the head, reading it every `interval` while anyone listens.
    pub fn watch_head(&self, interval: std::time::Duration) -> HeadWatch {
        let tx = std::sync::Arc::new(tokio::sync::watch::channel(0).0);
        let weak = std::sync::Arc::downgrade(&tx);
        let store = self.clone();
        let mut local = self.inner.committed.clone();
        tokio::spawn(async move {
            let idle = interval.max(std::time::Duration::from_millis(50));
            loop {
                let Some(tx) = weak.upgrade() else { return };
                if tx.receiver_count() == 0 {
                    drop(tx);
                    tokio::time::sleep(idle).await;
                    continue;
                }
                match store.head().await {
                    Ok(head) => {
                        let position = head.map_or(0, |(p, _)| p);
                        tx.send_if_modified(|p| {
                            let moved = *p < position;
                            *p = (*p).max(position);
                            moved
                        });
                    }
                    Err(e) => tracing::warn!(error = %e, "reading the log's head failed"),
                }
                drop(tx);
                // Commits of this process wake the poller at once.
                if let Ok(Err(_closed)) = tokio::time::timeout(interval, local.changed()).await {
                    tokio::time::sleep(interval).await;
                }
            }
        });
        HeadWatch { tx }
    }
}

/// The first wait of a tail that just found events: a log that is being written to is
/// looked at again about this soon, so other processes' commits are seen within a few
/// milliseconds under load, while an idle tail backs off to `StoreOptions::poll_interval`.
const MIN_POLL: std::time::Duration = std::time::Duration::from_millis(2);

/// Follows the log. Events appended through this process's store wake it at once; those
/// of other processes are found by polling: soon after events were last found ([`MIN_POLL`]),
/// then less and less often, doubling up to `StoreOptions::poll_interval`.
pub struct Tail {
    store: EventStore,
    after: u64,
    buffer: VecDeque<RecordedEvent>,
    committed: tokio::sync::watch::Receiver<u64>,
    page: u32,
    /// The next wait when a page comes back empty.
    idle: std::time::Duration,
}

impl Tail {
    /// The position of the last event returned (or the start).
    pub fn position(&self) -> u64 {
        self.after
    }

    pub async fn next(&mut self) -> Result<RecordedEvent, StoreError> {
        loop {
            if let Some(e) = self.buffer.pop_front() {
                self.after = e.position;
                return Ok(e);
            }
            let page = self.store.read_all(self.after, self.page).await?;
            if page.is_empty() {
                let poll = self.idle.min(self.store.inner.options.poll_interval);
                self.idle = (self.idle * 2).min(self.store.inner.options.poll_interval);
                tokio::select! {
                    changed = self.committed.changed() => {
                        if changed.is_err() {
                            tokio::time::sleep(poll).await;
                        }
                    }
                    _ = tokio::time::sleep(poll) => {}
                }
                continue;
            }
            for (expected, e) in (self.after + 1..).zip(&page) {
                if e.position != expected {
                    return Err(StoreError::Corrupt {
                        position: expected,
                        what: "position sequence (a hole in the log)",
                    });
                }
            }
            self.idle = MIN_POLL;
            self.buffer.extend(page);
        }
    }
}
