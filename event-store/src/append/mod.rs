//! Group commit: the batcher that turns many concurrent appends into one transaction.
//!
//! One task owns one connection and keeps one transaction in flight. It takes every
//! append that is waiting, plans positions, stream versions and hashes for all of them
//! client-side, and sends the whole batch, `COMMIT` included, as one multi-statement
//! round trip (ADR 0002). The statements themselves check everything:
//!
//! - an event's `(prev_position, prev_hash)` foreign key fails (or waits) unless its
//!   predecessor exists with exactly that hash, so a stale idea of the head can neither
//!   leave a hole nor fork the chain;
//! - `UNIQUE(stream_id, stream_version)` and the `prev_stream_version` foreign key fail
//!   an append whose expected version is wrong, in either direction;
//! - the claims' primary key fails an append whose claim is held.
//!
//! MariaDB stops a multi-statement query at the first error, so the `COMMIT` at its end
//! only runs when every statement succeeded. On an error the batcher knows which
//! statement, hence which append, failed: that append gets its own error (its partial
//! writes undone through its savepoint), the appends before it stay in the open
//! transaction, and the rest are planned again after it. A neighbour's failure never
//! fails an append.
//!
//! Three parts: `plan.rs` decides (pure), `classify.rs` reads a round's reply (pure),
//! `exec.rs` talks to MariaDB with a limit on every wait. This file is the loop between
//! them and the rule that every answer is true (ADR 0012): a round whose reply was lost
//! is settled from the log (old session killed, planned rows looked up) before anyone is
//! answered; only when that cannot be done by the append's deadline is the answer
//! [`AppendError::OutcomeUnknown`], and an append answered with any other error wrote
//! nothing.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use sqlx::mysql::MySqlConnectOptions;
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use uuid::Uuid;

mod classify;
mod exec;
mod plan;
mod prepare;
mod sql;

pub(crate) use exec::Limits;
pub(crate) use prepare::Prepared;
use prepare::PreparedClaim;

use crate::chain::{Hash, GENESIS_HASH};
use crate::error::AppendError;
use crate::event::AppendOutcome;
use crate::observe::BatchObserver;
use classify::{classify, Step, Why};
use exec::{Link, Settled};
use plan::Attempt;

/// Batches that take the head with a locking read after another process was seen
/// appending; optimistic (no extra round trip) again afterwards.
const LOCKING_BATCHES_AFTER_CONTENTION: u32 = 256;

pub(crate) struct Pending {
    pub(crate) append: Prepared,
    pub(crate) reply: oneshot::Sender<Result<AppendOutcome, AppendError>>,
    /// When the caller must have its answer.
    pub(crate) deadline: Instant,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Head {
    position: u64,
    hash: Hash,
    recorded_at: OffsetDateTime,
}

impl Head {
    fn genesis() -> Self {
        Self {
            position: 0,
            hash: GENESIS_HASH,
            recorded_at: OffsetDateTime::UNIX_EPOCH,
        }
    }
}

#[derive(Clone, Copy)]
pub(crate) struct BatchLimits {
    pub(crate) max_events: usize,
    pub(crate) max_bytes: usize,
}

pub(crate) struct Batcher {
    link: Link,
    /// The last committed head this process knows of; `None` until read.
    head: Option<Head>,
    /// Batches left that begin with a locking read of the head.
    locking_batches: u32,
    committed: watch::Sender<u64>,
    limits: BatchLimits,
    observer: BatchObserver,
}

/// Why an attempt of a whole batch ended without answers.
enum BatchFailure {
    /// Nothing of the attempt committed (rolled back, refused, never sent): try again.
    Transient(sqlx::Error),
    /// The attempt's commit was sent and whether it committed could not be learnt.
    Unknown,
}

impl Batcher {
    pub(crate) fn new(
        connect: MySqlConnectOptions,
        link_limits: Limits,
        committed: watch::Sender<u64>,
        limits: BatchLimits,
        observer: BatchObserver,
    ) -> Self {
        Self {
            link: Link::new(connect, link_limits),
            head: None,
            locking_batches: 0,
            committed,
            limits,
            observer,
        }
    }

    pub(crate) async fn run(mut self, mut rx: mpsc::Receiver<Pending>) {
        let mut carry: Option<Pending> = None;
        let mut concurrent = false;
        loop {
            let first = match carry.take() {
                Some(p) => p,
                None => match rx.recv().await {
                    Some(p) => p,
                    None => break,
                },
            };
            let mut events = first.append.events;
            let mut bytes = first.append.bytes;
            let mut batch = vec![first];
            // One yield lets appenders that are about to send join this batch; a lone
            // appender (the last batch held one append) does not wait for company.
            if concurrent {
                tokio::task::yield_now().await;
            }
            while let Ok(p) = rx.try_recv() {
                if events + p.append.events > self.limits.max_events
                    || bytes + p.append.bytes > self.limits.max_bytes
                {
                    carry = Some(p);
                    break;
                }
                events += p.append.events;
                bytes += p.append.bytes;
                batch.push(p);
            }
            concurrent = batch.len() > 1 || carry.is_some();
            self.commit_batch(batch).await;
        }
        self.link.close().await;
    }

    #[tracing::instrument(skip_all, fields(appends = batch.len()))]
    async fn commit_batch(&mut self, batch: Vec<Pending>) {
        let started = std::time::Instant::now();
        let appends: Vec<&Prepared> = batch.iter().map(|p| &p.append).collect();
        let events = appends.iter().map(|a| a.events).sum();
        // The batch answers by its most urgent caller's deadline.
        let deadline = batch
            .iter()
            .map(|p| p.deadline)
            .min()
            .unwrap_or_else(Instant::now);
        // Event ids of attempts whose commit was lost and settled as not committed: met
        // again in the log, they are this batch's own.
        let mut sent: HashSet<Uuid> = HashSet::new();
        let mut attempt = 0u32;
        let results = loop {
            match self.try_commit(&appends, deadline, &mut sent).await {
                Ok(results) => break results,
                Err(BatchFailure::Unknown) => {
                    self.forget_head();
                    tracing::error!(
                        appends = appends.len(),
                        "append outcome unknown: the commit's reply was lost and the log \
                         could not be asked before the deadline"
                    );
                    self.observer.outcome_unknown(appends.len());
                    break appends
                        .iter()
                        .map(|_| Err(AppendError::OutcomeUnknown))
                        .collect();
                }
                Err(BatchFailure::Transient(e)) => {
                    self.link.rollback().await;
                    self.forget_head();
                    attempt += 1;
                    // Bounded backoff: 2, 4, 8 … 256 ms, while the deadline allows.
                    let pause = Duration::from_millis(1 << attempt.min(8));
                    if Instant::now() + pause >= deadline {
                        tracing::error!(error = %e, attempt, "append batch failed until its deadline");
                        let e = Arc::new(e);
                        break appends
                            .iter()
                            .map(|_| Err(AppendError::Unavailable(e.clone())))
                            .collect();
                    }
                    tracing::warn!(error = %e, attempt, "append batch retried");
                    self.observer.batch_retried();
                    tokio::time::sleep(pause).await;
                }
            }
        };
        self.observer.batch(batch.len(), events, started.elapsed());
        for (pending, result) in batch.into_iter().zip(results) {
            // A caller that gave up waiting no longer cares.
            let _ = pending.reply.send(result);
        }
    }

    fn forget_head(&mut self) {
        self.head = None;
    }

    fn publish_head(&mut self, head: Head) {
        if self.committed.send_if_modified(|p| {
            let moved = *p != head.position;
            *p = head.position;
            moved
        }) {
            tracing::debug!(position = head.position, "appends committed");
        }
        self.head = Some(head);
    }

    async fn try_commit(
        &mut self,
        appends: &[&Prepared],
        deadline: Instant,
        sent: &mut HashSet<Uuid>,
    ) -> Result<Vec<Result<AppendOutcome, AppendError>>, BatchFailure> {
        let transient = BatchFailure::Transient;
        if Instant::now() >= deadline {
            return Err(transient(deadline_passed()));
        }
        let locking = self.locking_batches > 0 || self.head.is_none();
        let head = if locking {
            self.locking_batches = self.locking_batches.saturating_sub(1);
            self.link.read_head(true).await.map_err(transient)?
        } else {
            self.link.ready().await.map_err(transient)?;
            self.head.clone().unwrap_or_else(Head::genesis)
        };
        let mut attempt = Attempt::new(appends, head, locking, now_micros());
        if attempt.clock_behind() {
            self.observer.clock_behind();
        }
        // Each round settles at least one append, or reads a fresher head or version;
        // a bound keeps a misbehaving server from spinning the batcher for ever.
        let mut rounds_left = 3 * appends.len() + 16;
        loop {
            rounds_left = rounds_left.checked_sub(1).ok_or_else(|| {
                transient(sqlx::Error::Protocol("append batch did not settle".into()))
            })?;
            if Instant::now() >= deadline {
                return Err(transient(deadline_passed()));
            }
            let unknown = attempt.unknown_versions();
            if !unknown.is_empty() {
                let found = self
                    .link
                    .stream_versions(&unknown)
                    .await
                    .map_err(transient)?;
                attempt.learn_versions(&unknown, &found);
            }
            let round = attempt.plan();
            let open_tx = attempt.open_tx;
            let (ok, error) = self
                .link
                .run(&round, open_tx, deadline)
                .await
                .map_err(transient)?;
            let fault = error.as_ref().map(classify::Fault::of);
            match classify(&round, ok, fault.as_ref()) {
                Step::Committed => return Ok(self.committed(attempt, round)),
                Step::Unknown => {
                    let probes = attempt.probes(&round);
                    let settled = self.link.settle(&probes, deadline).await;
                    self.observer.outcome_settled(settled.is_some());
                    match settled {
                        Some(Settled::Committed) => {
                            tracing::info!("a lost commit reply settled: committed");
                            return Ok(self.committed(attempt, round));
                        }
                        Some(Settled::NotCommitted) => {
                            tracing::info!("a lost commit reply settled: not committed");
                            sent.extend(probes.iter().map(|p| p.event_id));
                            return Err(transient(error.unwrap_or(sqlx::Error::PoolClosed)));
                        }
                        Some(Settled::Mismatch) => {
                            tracing::error!(
                                "a lost commit reply: the log holds some of the batch's \
                                 events, or at other positions than planned"
                            );
                            return Err(BatchFailure::Unknown);
                        }
                        None => return Err(BatchFailure::Unknown),
                    }
                }
                Step::Retry => {
                    return Err(transient(error.unwrap_or(sqlx::Error::PoolClosed)));
                }
                Step::Split { keep } => {
                    attempt.keep_before(round, keep, None);
                    attempt.split();
                }
                Step::StaleHead { keep, append } => {
                    // Another process appended since our head was read (or our idea of
                    // it is ahead of the log): read it again, with a lock.
                    self.locking_batches = LOCKING_BATCHES_AFTER_CONTENTION;
                    let failed = attempt.keep_before(round, keep, append);
                    let head = self
                        .link
                        .read_head(!attempt.open_tx)
                        .await
                        .map_err(transient)?;
                    attempt.open_tx = true;
                    attempt.restart_from(head, failed);
                }
                Step::Failed { keep, append, why } => {
                    attempt.keep_before(round, keep, Some(append));
                    let a = attempt.append(append);
                    match why {
                        Why::DuplicateEventId => {
                            let ours = last_event_id(a).is_some_and(|id| sent.contains(&id));
                            let found = if ours {
                                self.link.find_committed(a).await.map_err(transient)?
                            } else {
                                None
                            };
                            match found {
                                // An earlier attempt of this batch committed it after all.
                                Some(outcome) => attempt.succeed(append, outcome),
                                None => {
                                    let id = first_event_id(a).unwrap_or_else(Uuid::nil);
                                    attempt.fail(append, AppendError::DuplicateEventId(id));
                                }
                            }
                        }
                        Why::VersionClash => {
                            if !attempt.retry_any(append) {
                                let ids: Vec<_> = a.streams.iter().map(|s| &s.stream_id).collect();
                                let actual =
                                    self.link.stream_versions(&ids).await.map_err(transient)?;
                                let conflict = attempt.conflict(append, &actual);
                                attempt.fail(append, conflict);
                            }
                        }
                        Why::ClaimTaken(j) => {
                            let (scope, key) = match &a.claims[j] {
                                PreparedClaim::Claim { scope, key, .. }
                                | PreparedClaim::Release { scope, key } => {
                                    (scope.clone(), key.clone())
                                }
                            };
                            attempt.fail(append, AppendError::ClaimTaken { scope, key });
                        }
                        Why::Other => {
                            let error = error.unwrap_or(sqlx::Error::PoolClosed);
                            tracing::warn!(error = %error, "append rejected by the database");
                            attempt.fail(append, AppendError::Database(Arc::new(error)));
                        }
                    }
                }
            }
        }
    }

    fn committed(
        &mut self,
        attempt: Attempt<'_>,
        round: plan::Round<'_>,
    ) -> Vec<Result<AppendOutcome, AppendError>> {
        let (results, head) = attempt.committed(round);
        self.publish_head(head);
        results
    }
}

fn deadline_passed() -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "the append's deadline passed",
    ))
}

/// The wall clock in whole microseconds, as the log records time.
fn now_micros() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.microsecond() * 1_000)
        .unwrap_or(now)
}

fn first_event_id(a: &Prepared) -> Option<Uuid> {
    a.streams.first()?.events.first().map(|e| e.event_id)
}

fn last_event_id(a: &Prepared) -> Option<Uuid> {
    a.streams.last()?.events.last().map(|e| e.event_id)
}
