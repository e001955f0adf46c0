//! The checkpoint discipline: why the read model equals a full replay of the log whatever
//! the broker does (duplicates, redeliveries, reordering, lost or forged messages).
//!
//! Every write to the live tables happens in a transaction that first locks the
//! projection's checkpoint row (`SELECT … FOR UPDATE`), applies exactly the positions
//! `checkpoint + 1 ..= n` in order, and moves the checkpoint to `n` before it commits.
//! What it applies at each position is the log's event, read in one range read per
//! batch: a message only says that a position exists (ADR 0014). Each message's claim
//! (event id, type, stream, versions, time, data) is held against the log's event at its
//! position; one that disagrees is reported and dropped, and changes nothing. A message
//! at or below the checkpoint is a duplicate and changes nothing either; a position no
//! message brought (a gap) is applied all the same. Two projector processes, a rebuild's
//! final catch-up or a message arriving after a rebuild's swap all serialise on that one
//! row, and each position is applied once.
//!
//! Before any of that, a message of an older relay term than one the projection has
//! accepted (its `relayepoch`, ADR 0013) is dropped: a deposed leader that has not
//! noticed yet cannot interleave its term with the next. The highest epoch accepted is
//! kept in `relay_epochs_seen`, written in the same transaction.
//!
//! A parked position (`projector park`) is stepped over; an event that cannot be applied
//! (poison) ends the batch just before it, and nothing at or after it is applied.

use std::collections::HashSet;

use event_store::{EventStore, StoreError};
use sqlx::{MySqlConnection, MySqlPool, Row};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::apply::{self, ApplyError, Rows, SourceEvent};
use crate::envelope::{Claim, Mismatch};
use read_model::{TableSet, PARKED_EVENTS, RELAY_EPOCHS_SEEN};

/// Events read from the log per query.
const LOG_PAGE: u32 = 5_000;
/// Duplicates this close together are checked against the log with one range read.
const DUPLICATE_RUN: u64 = 1_000;

/// A projection's live tables and the log they follow.
#[derive(Clone)]
pub(crate) struct Projection {
    pub pool: MySqlPool,
    pub store: EventStore,
    pub name: String,
    pub tables: TableSet,
}

/// What a message brought: its position and what it claims the log holds there.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    /// The delivery it came with, to report a verdict on.
    pub tag: u64,
    pub position: u64,
    /// `None`: the message does not say which event it is, so it cannot agree with the
    /// log.
    pub claim: Option<Claim>,
    /// Its relay epoch; `None` (a relay older than epochs) counts as 0.
    pub epoch: Option<u64>,
}

/// A message of an older relay term than one already accepted: dropped (ADR 0013).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stale {
    pub tag: u64,
    pub position: u64,
    pub epoch: u64,
    /// The projection's epoch when the message came.
    pub seen: u64,
}

/// A message that is not what the log holds at its position: dropped, never applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Disagreement {
    pub tag: u64,
    pub position: u64,
    /// The first field that differs; `None` when the message names no event.
    pub mismatch: Option<Mismatch>,
}

/// Holds `candidate`'s claim against `logged`, the log's event at its position.
fn judge(candidate: &Candidate, logged: &SourceEvent) -> Result<(), Disagreement> {
    let refused = |mismatch| Disagreement {
        tag: candidate.tag,
        position: candidate.position,
        mismatch,
    };
    match &candidate.claim {
        None => Err(refused(None)),
        Some(claim) => claim.check(logged).map_err(|m| refused(Some(m))),
    }
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
    /// Candidates at or below the checkpoint, or repeated within the batch, that agree
    /// with the log.
    pub duplicates: u64,
    /// Events applied although no message (that agrees with the log) brought them.
    pub gap_filled: u64,
    /// Messages dropped because they disagree with the log.
    pub disagreeing: Vec<Disagreement>,
    /// Messages dropped because an earlier relay term sent them.
    pub stale: Vec<Stale>,
    /// The highest relay epoch the projection has accepted, after this batch.
    pub epoch: u64,
    /// Parked positions stepped over.
    pub parked: Vec<u64>,
    pub poison: Option<Poison>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum BatchError {
    #[error("database error while applying a batch")]
    Database(#[from] sqlx::Error),
    #[error("reading the log")]
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

    /// Applies the log after the checkpoint up to the highest candidate (or
    /// `catch_up_to`, if higher), at most `max_events` positions, in one transaction, and
    /// judges every candidate whose position it read against the log. Call again while
    /// the outcome's checkpoint is below what you need and it moved.
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
        let candidates = self
            .screen_epochs(&mut tx, candidates, &mut outcome)
            .await?;
        let wanted = candidates
            .iter()
            .map(|c| c.position)
            .max()
            .unwrap_or(0)
            .max(catch_up_to);
        let end = wanted.min(before.saturating_add(max_events as u64));
        let events = if end > before {
            self.read_log(before, end).await?
        } else {
            Vec::new()
        };
        let read_to = events.last().map_or(before, |e| e.position);
        if read_to < end {
            // The relay publishes committed events only: the message was published
            // elsewhere, or forged. It waits; the log decides.
            tracing::warn!(
                projection = %self.name,
                position = read_to + 1,
                "a message is ahead of the log; applying up to the log's head"
            );
        }

        let mut notified: HashSet<u64> = HashSet::new();
        let mut earlier = Vec::new();
        for candidate in candidates {
            if candidate.position <= before {
                earlier.push(candidate);
            } else if candidate.position <= read_to {
                let index = usize::try_from(candidate.position - before - 1).unwrap_or(usize::MAX);
                let Some(logged) = events.get(index) else {
                    continue;
                };
                match judge(&candidate, logged) {
                    Ok(()) => {
                        if !notified.insert(candidate.position) {
                            outcome.duplicates += 1;
                        }
                    }
                    Err(disagreement) => outcome.disagreeing.push(disagreement),
                }
            }
            // Beyond what was read: judged by a later batch.
        }
        self.judge_earlier(earlier, &mut outcome).await?;
        outcome.gap_filled = (read_to - before).saturating_sub(notified.len() as u64);
        if read_to == before {
            tx.commit().await?;
            return Ok(outcome);
        }

        let parked = parked_between(&mut tx, &self.name, before, read_to).await?;
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
            // Nothing to apply (poison first); a raised epoch is kept all the same.
            tx.commit().await?;
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

    /// Drops the candidates of an older relay term than one the projection accepted
    /// (in delivery order: a message counts as stale only once a later term's message
    /// came before it), and raises the projection's epoch to the newest term, in `tx`.
    /// An epoch no relay has begun a term with is a forgery: that message disagrees.
    async fn screen_epochs(
        &self,
        tx: &mut MySqlConnection,
        candidates: Vec<Candidate>,
        outcome: &mut BatchOutcome,
    ) -> Result<Vec<Candidate>, BatchError> {
        let seen: u64 = sqlx::query_scalar(&format!(
            "SELECT epoch FROM `{RELAY_EPOCHS_SEEN}` WHERE projection = ?"
        ))
        .bind(&self.name)
        .fetch_optional(&mut *tx)
        .await?
        .unwrap_or(0);
        let mut current = seen;
        let mut issued: Option<u64> = None;
        let mut kept = Vec::with_capacity(candidates.len());
        for candidate in candidates {
            let epoch = candidate.epoch.unwrap_or(0);
            if epoch < current {
                outcome.stale.push(Stale {
                    tag: candidate.tag,
                    position: candidate.position,
                    epoch,
                    seen: current,
                });
                continue;
            }
            if epoch > current {
                let highest = match issued {
                    Some(highest) => highest,
                    None => *issued.insert(event_store::relay::issued_epoch(&self.store).await?),
                };
                if epoch > highest {
                    outcome.disagreeing.push(Disagreement {
                        tag: candidate.tag,
                        position: candidate.position,
                        mismatch: Some(Mismatch {
                            field: "relayepoch",
                            claimed: epoch.to_string(),
                            logged: format!("no relay term after {highest}"),
                        }),
                    });
                    continue;
                }
                current = epoch;
            }
            kept.push(candidate);
        }
        if current > seen {
            sqlx::query(&format!(
                "INSERT INTO `{RELAY_EPOCHS_SEEN}` (projection, epoch, updated_at) \
                 VALUES (?, ?, UTC_TIMESTAMP(6)) \
                 ON DUPLICATE KEY UPDATE epoch = GREATEST(epoch, VALUES(epoch)), \
                 updated_at = VALUES(updated_at)"
            ))
            .bind(&self.name)
            .bind(current)
            .execute(&mut *tx)
            .await?;
            tracing::info!(
                projection = %self.name,
                epoch = current,
                previous = seen,
                "a new relay term: messages of earlier epochs are dropped from now on"
            );
        }
        outcome.epoch = current;
        Ok(kept)
    }

    /// The log's events `after + 1 ..= end`, in order; fewer where the log ends.
    async fn read_log(&self, after: u64, end: u64) -> Result<Vec<SourceEvent>, StoreError> {
        let mut events = Vec::with_capacity(usize::try_from(end - after).unwrap_or(0));
        let mut next = after + 1;
        while next <= end {
            let want = u32::try_from(end - next + 1)
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
            }
            if got < want as usize {
                break;
            }
        }
        Ok(events)
    }

    /// Judges candidates at or below the checkpoint: nothing is applied for them, but a
    /// message that disagrees with the log is reported all the same. Nearby positions
    /// are read in one range.
    async fn judge_earlier(
        &self,
        mut earlier: Vec<Candidate>,
        outcome: &mut BatchOutcome,
    ) -> Result<(), StoreError> {
        earlier.sort_by_key(|c| c.position);
        let mut rest = earlier.as_slice();
        while let Some(first) = rest.first() {
            let run = rest
                .iter()
                .take_while(|c| c.position - first.position < DUPLICATE_RUN)
                .count();
            let (now, later) = rest.split_at(run);
            rest = later;
            let last = now.last().map_or(first.position, |c| c.position);
            let logged = self.read_log(first.position - 1, last).await?;
            for candidate in now {
                let index =
                    usize::try_from(candidate.position - first.position).unwrap_or(usize::MAX);
                match logged.get(index).map(|event| judge(candidate, event)) {
                    Some(Ok(())) => outcome.duplicates += 1,
                    Some(Err(disagreement)) => outcome.disagreeing.push(disagreement),
                    // Below the checkpoint yet not in the log: the checkpoint belongs
                    // to another log. Nothing to apply either way.
                    None => outcome.disagreeing.push(Disagreement {
                        tag: candidate.tag,
                        position: candidate.position,
                        mismatch: None,
                    }),
                }
            }
        }
        Ok(())
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
