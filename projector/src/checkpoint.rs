//! The checkpoint discipline: why the read model equals a full replay of the log whatever
//! the broker does (duplicates, redeliveries, reordering, lost messages).
//!
//! Every write to the live tables happens in a transaction that first locks the
//! projection's checkpoint row (`SELECT … FOR UPDATE`), applies exactly the positions
//! `checkpoint + 1 ..= n` in order, and moves the checkpoint to `n` before it commits.
//! Within it, a message at or below the checkpoint is a duplicate and changes nothing; a
//! position no message brought (a gap) is read from the log itself. Two projector
//! processes, a rebuild's final catch-up or a message arriving after a rebuild's swap all
//! serialise on that one row, and each position is applied once.
//!
//! A parked position (`projector park`) is stepped over; an event that cannot be applied
//! (poison) ends the batch just before it, and nothing at or after it is applied.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashSet};

use event_store::{EventStore, StoreError};
use sqlx::{MySqlConnection, MySqlPool, Row};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::apply::{self, ApplyError, Rows, SourceEvent};
use crate::tables::{TableSet, PARKED_EVENTS};

/// Events read from the log per query when filling a gap.
const LOG_PAGE: u32 = 1_000;

/// A projection's live tables and the log they follow.
#[derive(Clone)]
pub(crate) struct Projection {
    pub pool: MySqlPool,
    pub store: EventStore,
    pub name: String,
    pub tables: TableSet,
}

/// What a message brought: its position and, if the message could be read, the event.
/// Without one, the event is read from the log like any gap.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    pub position: u64,
    pub event: Option<SourceEvent>,
}

/// An event that cannot be applied. The projection stops in front of it until an
/// operator parks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Poison {
    pub position: u64,
    pub event_type: String,
    pub reason: String,
}

/// What one batch transaction did.
#[derive(Debug, Default)]
pub(crate) struct BatchOutcome {
    /// The checkpoint the batch found.
    pub before: u64,
    /// The checkpoint it committed (or `before`).
    pub checkpoint: u64,
    /// Events applied, gap fills included.
    pub applied: u64,
    /// Candidates at or below the checkpoint, or repeated within the batch.
    pub duplicates: u64,
    /// Events read from the log because no message brought them.
    pub gap_filled: u64,
    /// Parked positions stepped over.
    pub parked: Vec<u64>,
    pub poison: Option<Poison>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum BatchError {
    #[error("database error while applying a batch")]
    Database(#[from] sqlx::Error),
    #[error("reading the log to fill a gap")]
    Log(#[from] StoreError),
}

impl BatchError {
    /// The projector's error, saying what the batch was for.
    pub fn doing(self, doing: &'static str) -> crate::Error {
        match self {
            BatchError::Database(source) => crate::Error::Database { doing, source },
            BatchError::Log(source) => crate::Error::Log { doing, source },
        }
    }
}

impl Projection {
    /// The checkpoint as committed (0 before the first batch).
    pub async fn checkpoint(&self) -> Result<u64, sqlx::Error> {
        let found: Option<u64> = sqlx::query_scalar(&format!(
            "SELECT position FROM `{}` WHERE projection = ?",
            self.tables.checkpoints
        ))
        .bind(&self.name)
        .fetch_optional(&self.pool)
        .await?;
        Ok(found.unwrap_or(0))
    }

    /// Every position parked for this projection.
    pub async fn parked(&self) -> Result<HashSet<u64>, sqlx::Error> {
        parked_positions(&self.pool, &self.name).await
    }

    pub async fn is_parked(&self, position: u64) -> Result<bool, sqlx::Error> {
        let found: Option<u64> = sqlx::query_scalar(&format!(
            "SELECT position FROM `{PARKED_EVENTS}` WHERE projection = ? AND position = ?"
        ))
        .bind(&self.name)
        .bind(position)
        .fetch_optional(&self.pool)
        .await?;
        Ok(found.is_some())
    }

    /// Applies `candidates` and the log around them, in one transaction: every position
    /// after the checkpoint up to the highest candidate (or `catch_up_to`, if higher),
    /// at most `max_events` of them. Call again while the outcome's checkpoint is below
    /// what you need and it moved.
    #[tracing::instrument(skip_all, fields(projection = %self.name, candidates = candidates.len()))]
    pub async fn apply_batch(
        &self,
        candidates: Vec<Candidate>,
        catch_up_to: u64,
        max_events: usize,
    ) -> Result<BatchOutcome, BatchError> {
        let mut tx = self.pool.begin().await?;
        let before = lock_checkpoint(&mut tx, &self.tables, &self.name).await?;
        let mut outcome = BatchOutcome {
            before,
            checkpoint: before,
            ..BatchOutcome::default()
        };
        let wanted = candidates
            .iter()
            .map(|c| c.position)
            .max()
            .unwrap_or(0)
            .max(catch_up_to);
        let end = wanted.min(before.saturating_add(max_events as u64));
        let mut brought: BTreeMap<u64, SourceEvent> = BTreeMap::new();
        for c in candidates {
            if c.position <= before {
                outcome.duplicates += 1;
            } else if c.position <= end {
                if let Some(event) = c.event {
                    match brought.entry(c.position) {
                        Entry::Occupied(_) => outcome.duplicates += 1,
                        Entry::Vacant(slot) => {
                            slot.insert(event);
                        }
                    }
                }
            }
        }
        if end <= before {
            tx.commit().await?;
            return Ok(outcome);
        }

        let events = self.in_order(before, end, brought, &mut outcome).await?;
        let parked = parked_between(&mut tx, &self.name, before, end).await?;

        let mut decoded = Vec::with_capacity(events.len());
        let mut last = before;
        for event in events {
            if parked.contains(&event.position) {
                tracing::warn!(
                    projection = %self.name,
                    position = event.position,
                    event_id = %event.event_id,
                    event_type = %event.event_type,
                    "SKIPPING PARKED EVENT: an operator parked this position; the read model \
                     will not contain it"
                );
                outcome.parked.push(event.position);
                last = event.position;
                continue;
            }
            match event.decode() {
                Ok(ledger_event) => {
                    last = event.position;
                    decoded.push((event, ledger_event));
                }
                Err(error) => {
                    outcome.poison = Some(poison(&event, &error));
                    break;
                }
            }
        }

        if last == before {
            tx.rollback().await?;
            return Ok(outcome);
        }
        let users: HashSet<Uuid> = decoded.iter().map(|(_, e)| e.user_id().as_uuid()).collect();
        let mut rows = Rows::load(&mut tx, &self.tables, &users).await?;
        for (source, event) in &decoded {
            rows.apply(source, event);
        }
        let mut statements = rows.take_writes(&self.tables);
        statements.push(apply::checkpoint_write(
            &self.tables,
            &self.name,
            last,
            OffsetDateTime::now_utc(),
        ));
        apply::execute_all(&mut tx, &statements).await?;
        tx.commit().await?;
        outcome.applied = decoded.len() as u64;
        outcome.checkpoint = last;
        Ok(outcome)
    }

    /// Positions `before + 1 ..= end` in order: the ones messages brought, the others
    /// from the log. Stops early where the log ends.
    async fn in_order(
        &self,
        before: u64,
        end: u64,
        mut brought: BTreeMap<u64, SourceEvent>,
        outcome: &mut BatchOutcome,
    ) -> Result<Vec<SourceEvent>, StoreError> {
        let mut events = Vec::with_capacity(usize::try_from(end - before).unwrap_or(0));
        let mut next = before + 1;
        while next <= end {
            if let Some(event) = brought.remove(&next) {
                events.push(event);
                next += 1;
                continue;
            }
            // A gap: up to the next position a message brought, or the end.
            let gap_end = brought
                .range(next..)
                .next()
                .map_or(end, |(position, _)| position - 1);
            let mut filled = 0;
            while next <= gap_end {
                let want = u32::try_from(gap_end - next + 1)
                    .unwrap_or(LOG_PAGE)
                    .min(LOG_PAGE);
                let page = self.store.read_all(next - 1, want).await?;
                let got = page.len();
                for e in page {
                    if e.position != next {
                        return Err(StoreError::Corrupt {
                            position: next,
                            what: "position sequence (a hole in the log)",
                        });
                    }
                    events.push(e.into());
                    next += 1;
                    filled += 1;
                }
                if got < want as usize {
                    // The log ends here: a message claimed a position the log does not
                    // (yet) have. Apply what precedes it; the rest waits.
                    tracing::warn!(
                        projection = %self.name,
                        position = next,
                        "a message is ahead of the log; applying up to the log's head"
                    );
                    outcome.gap_filled += filled;
                    return Ok(events);
                }
            }
            if filled > 0 {
                tracing::info!(
                    projection = %self.name,
                    from = gap_end + 1 - filled,
                    to = gap_end,
                    "gap filled from the log"
                );
            }
            outcome.gap_filled += filled;
        }
        Ok(events)
    }
}

fn poison(event: &SourceEvent, error: &ApplyError) -> Poison {
    Poison {
        position: event.position,
        event_type: event.event_type.clone(),
        reason: error.to_string(),
    }
}

/// Locks `projection`'s checkpoint row for the rest of the transaction and returns it,
/// creating it at 0 the first time.
pub(crate) async fn lock_checkpoint(
    conn: &mut MySqlConnection,
    tables: &TableSet,
    projection: &str,
) -> Result<u64, sqlx::Error> {
    let select = format!(
        "SELECT position FROM `{}` WHERE projection = ? FOR UPDATE",
        tables.checkpoints
    );
    let found: Option<u64> = sqlx::query_scalar(&select)
        .bind(projection)
        .fetch_optional(&mut *conn)
        .await?;
    if let Some(position) = found {
        return Ok(position);
    }
    sqlx::query(&format!(
        "INSERT IGNORE INTO `{}` (projection, position, updated_at) VALUES (?, 0, UTC_TIMESTAMP(6))",
        tables.checkpoints
    ))
    .bind(projection)
    .execute(&mut *conn)
    .await?;
    let position: u64 = sqlx::query_scalar(&select)
        .bind(projection)
        .fetch_one(&mut *conn)
        .await?;
    Ok(position)
}

/// The committed checkpoint (0 before the first batch), read on `conn`: inside verify's
/// snapshot it is the snapshot's.
pub(crate) async fn read_checkpoint(
    conn: &mut MySqlConnection,
    tables: &TableSet,
    projection: &str,
) -> Result<u64, sqlx::Error> {
    let found: Option<u64> = sqlx::query_scalar(&format!(
        "SELECT position FROM `{}` WHERE projection = ?",
        tables.checkpoints
    ))
    .bind(projection)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(found.unwrap_or(0))
}

pub(crate) async fn parked_positions(
    pool: &MySqlPool,
    projection: &str,
) -> Result<HashSet<u64>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT position FROM `{PARKED_EVENTS}` WHERE projection = ?"
    ))
    .bind(projection)
    .fetch_all(pool)
    .await?;
    rows.iter().map(|r| r.try_get(0)).collect()
}

async fn parked_between(
    conn: &mut MySqlConnection,
    projection: &str,
    after: u64,
    to: u64,
) -> Result<HashSet<u64>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT position FROM `{PARKED_EVENTS}` WHERE projection = ? AND position > ? \
         AND position <= ?"
    ))
    .bind(projection)
    .bind(after)
    .bind(to)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(|r| r.try_get(0)).collect()
}
