//! Group commit: the batcher that turns many concurrent appends into one transaction.
//!
//! One task owns one connection and keeps one transaction in flight. It takes every
//! append that is waiting, plans positions, stream versions and hashes for all of them
//! client-side, and sends the whole batch, `COMMIT` included, as one multi-statement
//! round trip (ADR 0002). The statements themselves check everything:
//!
//! - an event's `prev_position` foreign key fails (or waits) unless its predecessor
//!   exists, so a stale idea of the head can never leave a hole;
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

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::{ConnectOptions, Connection};
use time::OffsetDateTime;
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

mod prepare;
mod sql;

pub(crate) use prepare::Prepared;
use prepare::PreparedClaim;
pub(crate) use sql::stream_versions;
use sql::{
    event_exists, exec_multi, exec_prepared, existing_event_id, plan_rows, read_head, render_claim,
    render_rows, EventRow, Stmt,
};

use crate::chain::{Hash, GENESIS_HASH};
use crate::error::{
    duplicate_key, foreign_key, mariadb_code, AppendError, ER_CHECKREAD, ER_DUP_ENTRY,
    ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT, ER_NO_REFERENCED_ROW,
};
use crate::event::{AppendOutcome, WrittenStream};
use crate::observe::BatchObserver;
use crate::stream::{ExpectedVersion, StreamId};

/// How often a batch is retried after a deadlock, lock timeout or lost connection.
const MAX_TRANSIENT_RETRIES: u32 = 8;
/// How often an append to a stream at `ExpectedVersion::Any` is re-planned after another
/// writer moved the stream under it.
const MAX_ANY_RETRIES: u8 = 5;
/// Batches that take the head with a locking read after another process was seen
/// appending; optimistic (no extra round trip) again afterwards.
const LOCKING_BATCHES_AFTER_CONTENTION: u32 = 256;

pub(crate) struct Pending {
    pub(crate) append: Prepared,
    pub(crate) reply: oneshot::Sender<Result<AppendOutcome, AppendError>>,
}

#[derive(Clone)]
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
    connect: MySqlConnectOptions,
    conn: Option<MySqlConnection>,
    /// The last committed head this process knows of; `None` until read.
    head: Option<Head>,
    /// Batches left that begin with a locking read of the head.
    locking_batches: u32,
    committed: watch::Sender<u64>,
    limits: BatchLimits,
    observer: BatchObserver,
}

/// Why a whole batch must be rolled back and tried again (or given up).
enum BatchFailure {
    /// Deadlock, lock wait timeout, lost connection: nothing committed, try again.
    Transient(sqlx::Error),
}

/// What one statement of a round does.
#[derive(Clone, Copy)]
enum Role {
    Control,
    Savepoint,
    /// One append's events, by append index.
    Events(usize),
    /// The events of the claim-free appends at round items `from..to`, in one INSERT.
    Group {
        from: usize,
        to: usize,
    },
    Release(usize),
    Claim(usize, usize),
    Commit,
}

/// An append planned into the current round.
struct Planned {
    index: usize,
    versions: Vec<u64>,
    first_position: u64,
    head_after: Head,
    has_savepoint: bool,
}

enum RoundItem {
    Planned(Planned),
    /// Rejected while planning, against a version an earlier append of this
    /// transaction establishes. Provisional: planned again if that append fails.
    Rejected(usize, AppendError),
}

impl Batcher {
    pub(crate) fn new(
        connect: MySqlConnectOptions,
        committed: watch::Sender<u64>,
        limits: BatchLimits,
        observer: BatchObserver,
    ) -> Self {
        Self {
            connect,
            conn: None,
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
        if let Some(mut conn) = self.conn.take() {
            let _ = sqlx::Executor::execute(&mut conn, "ROLLBACK").await;
            let _ = conn.close().await;
        }
    }

    #[tracing::instrument(skip_all, fields(appends = batch.len()))]
    async fn commit_batch(&mut self, batch: Vec<Pending>) {
        let started = std::time::Instant::now();
        let appends: Vec<&Prepared> = batch.iter().map(|p| &p.append).collect();
        let events = appends.iter().map(|a| a.events).sum();
        let mut attempt = 0;
        let results = loop {
            match self.try_commit(&appends).await {
                Ok(results) => break results,
                Err(BatchFailure::Transient(e)) => {
                    self.abandon().await;
                    attempt += 1;
                    if attempt > MAX_TRANSIENT_RETRIES {
                        tracing::error!(error = %e, attempt, "append batch failed");
                        let e = Arc::new(e);
                        break appends
                            .iter()
                            .map(|_| Err(AppendError::Database(e.clone())))
                            .collect();
                    }
                    tracing::warn!(error = %e, attempt, "append batch retried");
                    self.observer.batch_retried();
                    // Bounded backoff: 2, 4, 8 … 256 ms.
                    tokio::time::sleep(Duration::from_millis(1 << attempt.min(8))).await;
                }
            }
        };
        self.observer.batch(batch.len(), events, started.elapsed());
        for (pending, result) in batch.into_iter().zip(results) {
            // A caller that gave up waiting no longer cares.
            let _ = pending.reply.send(result);
        }
    }

    /// Rolls back whatever is open and forgets the head: the next batch starts afresh.
    async fn abandon(&mut self) {
        if let Some(conn) = self.conn.as_mut() {
            if sqlx::Executor::execute(&mut *conn, "ROLLBACK")
                .await
                .is_err()
            {
                self.conn = None;
            }
        }
        self.head = None;
    }

    async fn connection(&mut self) -> Result<&mut MySqlConnection, sqlx::Error> {
        if self.conn.is_none() {
            let mut conn = self.connect.connect().await?;
            // autocommit on: a batch that is one statement (the usual case: one multi-row
            // INSERT) commits by itself, with no COMMIT to send; longer batches are wrapped
            // in BEGIN … COMMIT within the same round trip. READ COMMITTED: no gap locks,
            // and reads see the newest head.
            sqlx::Executor::execute(
                &mut conn,
                "SET SESSION autocommit = 1; \
                 SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
            )
            .await?;
            self.conn = Some(conn);
        }
        match self.conn.as_mut() {
            Some(c) => Ok(c),
            None => Err(sqlx::Error::PoolClosed),
        }
    }

    async fn try_commit(
        &mut self,
        appends: &[&Prepared],
    ) -> Result<Vec<Result<AppendOutcome, AppendError>>, BatchFailure> {
        let transient = BatchFailure::Transient;
        let mut results: Vec<Option<Result<AppendOutcome, AppendError>>> =
            appends.iter().map(|_| None).collect();
        let mut any_retries = vec![0u8; appends.len()];
        // Versions this transaction establishes, stream by stream.
        let mut in_tx: HashMap<StreamId, u64> = HashMap::new();
        // Current versions read for streams appended at `Any`.
        let mut read_versions: HashMap<StreamId, u64> = HashMap::new();
        // Appends that succeeded inside the open transaction, with their outcome.
        let mut done: Vec<(usize, AppendOutcome)> = Vec::new();
        let mut rollback_to: Option<usize> = None;
        // After a grouped INSERT failed: one statement per append, to learn which.
        let mut split = false;
        // Whether a transaction is open on the connection (statements of earlier rounds
        // that succeeded, or a locking read of the head, wait in it).
        let mut open_tx = false;

        let mut head = if self.locking_batches > 0 || self.head.is_none() {
            self.locking_batches = self.locking_batches.saturating_sub(1);
            let conn = self.connection().await.map_err(transient)?;
            open_tx = true;
            read_head(conn, true).await.map_err(transient)?
        } else {
            self.connection().await.map_err(transient)?;
            self.head.clone().unwrap_or_else(Head::genesis)
        };
        let now = OffsetDateTime::now_utc();
        let now = now
            .replace_nanosecond(now.microsecond() * 1_000)
            .unwrap_or(now);
        let mut todo: Vec<usize> = (0..appends.len()).collect();
        // Each round settles at least one append, or reads a fresher head or version;
        // a bound keeps a misbehaving server from spinning the batcher for ever.
        let mut rounds_left = 3 * appends.len() + 16;

        loop {
            rounds_left = match rounds_left.checked_sub(1) {
                Some(n) => n,
                None => {
                    return Err(transient(sqlx::Error::Protocol(
                        "append batch did not settle".into(),
                    )))
                }
            };
            let conn = self.connection().await.map_err(transient)?;
            let recorded_at = now.max(head.recorded_at);

            // Streams appended at `Any` need their current version before planning.
            let unknown: Vec<&StreamId> = todo
                .iter()
                .flat_map(|&i| appends[i].streams.iter())
                .filter(|s| s.expected == ExpectedVersion::Any)
                .map(|s| &s.stream_id)
                .filter(|id| !in_tx.contains_key(*id) && !read_versions.contains_key(*id))
                .collect();
            if !unknown.is_empty() {
                let found = stream_versions(conn, &unknown).await.map_err(transient)?;
                for id in unknown {
                    let v = found.get(id).copied().unwrap_or(0);
                    read_versions.insert(id.clone(), v);
                }
            }

            // Plan the round: statements, each with its role.
            let mut stmts: Vec<Stmt<'_>> = Vec::new();
            let mut roles: Vec<Role> = Vec::new();
            if let Some(i) = rollback_to.take() {
                stmts.push(Stmt::Text(format!("ROLLBACK TO SAVEPOINT u{i}")));
                roles.push(Role::Control);
            }
            let mut tentative = in_tx.clone();
            let mut cursor = head.clone();
            let mut round: Vec<RoundItem> = Vec::with_capacity(todo.len());
            let mut group: Option<(usize, Vec<EventRow<'_>>)> = None;
            for &i in &todo {
                let a = appends[i];
                let versions = match plan_versions(a, &tentative, &read_versions) {
                    Ok(v) => v,
                    Err(e) => {
                        round.push(RoundItem::Rejected(i, e));
                        continue;
                    }
                };
                let first_position = cursor.position + 1;
                let has_savepoint = !a.claims.is_empty();
                if !has_savepoint && !split {
                    // Claim-free appends share one multi-row INSERT.
                    let (_, rows) = group.get_or_insert_with(|| (round.len(), Vec::new()));
                    plan_rows(rows, a, &versions, &mut cursor, recorded_at);
                } else {
                    if let Some((from, rows)) = group.take() {
                        stmts.push(Stmt::Rows(rows));
                        roles.push(Role::Group {
                            from,
                            to: round.len(),
                        });
                    }
                    if has_savepoint {
                        stmts.push(Stmt::Text(format!("SAVEPOINT u{i}")));
                        roles.push(Role::Savepoint);
                    }
                    let mut rows = Vec::new();
                    plan_rows(&mut rows, a, &versions, &mut cursor, recorded_at);
                    stmts.push(Stmt::Rows(rows));
                    roles.push(Role::Events(i));
                    for (j, c) in a.claims.iter().enumerate() {
                        let mut text = String::new();
                        render_claim(&mut text, c, cursor.position, recorded_at);
                        stmts.push(Stmt::Text(text));
                        roles.push(match c {
                            PreparedClaim::Claim { .. } => Role::Claim(i, j),
                            PreparedClaim::Release { .. } => Role::Release(i),
                        });
                    }
                }
                for (s, v) in a.streams.iter().zip(&versions) {
                    tentative.insert(s.stream_id.clone(), *v);
                }
                round.push(RoundItem::Planned(Planned {
                    index: i,
                    versions,
                    first_position,
                    head_after: cursor.clone(),
                    has_savepoint,
                }));
            }
            if let Some((from, rows)) = group.take() {
                stmts.push(Stmt::Rows(rows));
                roles.push(Role::Group {
                    from,
                    to: round.len(),
                });
            }

            // One INSERT outside a transaction (the usual batch) commits by itself
            // (autocommit) and goes as a prepared statement: no SQL text to parse.
            // Anything more is one transaction, sent with its BEGIN and COMMIT as one
            // multi-statement round trip.
            let single = !open_tx && stmts.len() == 1;
            let (ok, error) = match stmts.as_slice() {
                [] if !open_tx => (0, None),
                [Stmt::Rows(rows)] if single => exec_prepared(conn, rows).await,
                _ => {
                    let mut sql = String::new();
                    if !open_tx {
                        sql.push_str("BEGIN;");
                        roles.insert(0, Role::Control);
                    }
                    for stmt in &stmts {
                        match stmt {
                            Stmt::Text(t) => sql.push_str(t),
                            Stmt::Rows(rows) => render_rows(&mut sql, rows),
                        }
                        sql.push(';');
                    }
                    sql.push_str("COMMIT");
                    roles.push(Role::Commit);
                    exec_multi(conn, &sql).await
                }
            };
            if error.is_some() && !single {
                open_tx = true;
            }
            let committed = match &error {
                None => true,
                // The reply was lost, not necessarily the work: the round committed
                // exactly when its last event is in the log.
                Some(e) if is_lost_connection(e) => {
                    self.conn = None;
                    let last = last_event_id(&round, appends);
                    let conn = self.connection().await.map_err(transient)?;
                    match last {
                        Some(id) => event_exists(conn, id).await.map_err(transient)?,
                        None => false,
                    }
                }
                Some(_) => false,
            };
            if committed {
                for item in round {
                    match item {
                        RoundItem::Planned(p) => {
                            done.push((p.index, outcome(appends[p.index], &p, recorded_at)));
                            head = p.head_after;
                        }
                        RoundItem::Rejected(i, e) => results[i] = Some(Err(e)),
                    }
                }
                for (i, o) in done {
                    results[i] = Some(Ok(o));
                }
                if self.committed.send_if_modified(|p| {
                    let moved = *p != head.position;
                    *p = head.position;
                    moved
                }) {
                    tracing::debug!(position = head.position, "appends committed");
                }
                self.head = Some(head);
                return Ok(results
                    .into_iter()
                    .map(|r| r.unwrap_or(Err(AppendError::Invalid("not planned".into()))))
                    .collect());
            }
            let Some(error) = error else {
                return Err(transient(sqlx::Error::PoolClosed));
            };
            if is_lost_connection(&error) {
                return Err(transient(error));
            }
            let mut role = roles.get(ok).copied().unwrap_or(Role::Commit);
            let code = mariadb_code(&error);
            let stale =
                matches!(role, Role::Events(_) | Role::Group { .. }) && stale_head(code, &error);
            if let Role::Group { from, to } = role {
                let mut members = round[from..to].iter().filter_map(|r| match r {
                    RoundItem::Planned(p) => Some(p.index),
                    RoundItem::Rejected(..) => None,
                });
                if let (Some(only), None) = (members.next(), members.next()) {
                    role = Role::Events(only);
                } else if !stale {
                    // Which append failed is not known: plan the group and the rest
                    // again, one statement per append.
                    split = true;
                    role = Role::Group { from, to };
                }
            }
            let failed = match role {
                Role::Events(i) | Role::Claim(i, _) | Role::Release(i) => Some(i),
                Role::Group { .. } => None,
                Role::Control | Role::Savepoint | Role::Commit => return Err(transient(error)),
            };
            if matches!(
                code,
                Some(ER_LOCK_DEADLOCK | ER_LOCK_WAIT_TIMEOUT | ER_CHECKREAD)
            ) {
                return Err(transient(error));
            }

            // The items before the failed one stand; the rest are planned again.
            let pos = match (failed, role) {
                (_, Role::Group { from, .. }) => from,
                (Some(failed), _) => round
                    .iter()
                    .position(|r| matches!(r, RoundItem::Planned(p) if p.index == failed))
                    .unwrap_or(round.len()),
                (None, _) => round.len(),
            };
            let is_group = matches!(role, Role::Group { .. });
            let mut rest: Vec<usize> = Vec::new();
            let mut failed_item = None;
            for (k, item) in round.into_iter().enumerate() {
                match (k.cmp(&pos), item) {
                    (std::cmp::Ordering::Less, RoundItem::Planned(p)) => {
                        for (s, v) in appends[p.index].streams.iter().zip(&p.versions) {
                            in_tx.insert(s.stream_id.clone(), *v);
                        }
                        head = p.head_after.clone();
                        done.push((p.index, outcome(appends[p.index], &p, recorded_at)));
                    }
                    (std::cmp::Ordering::Less, RoundItem::Rejected(i, e)) => {
                        results[i] = Some(Err(e));
                    }
                    (std::cmp::Ordering::Equal, RoundItem::Planned(p)) if !is_group => {
                        failed_item = Some(p);
                    }
                    (_, RoundItem::Planned(p)) => rest.push(p.index),
                    (_, RoundItem::Rejected(i, _)) => rest.push(i),
                }
            }
            if stale {
                // Another process appended since our head was read (or our idea of it
                // is ahead of the log after a lost commit): read it again, with a lock.
                self.locking_batches = LOCKING_BATCHES_AFTER_CONTENTION;
                let conn = self.connection().await.map_err(transient)?;
                head = read_head(conn, !open_tx).await.map_err(transient)?;
                open_tx = true;
                if let Some(p) = &failed_item {
                    if p.has_savepoint {
                        rollback_to = Some(p.index);
                    }
                    todo = std::iter::once(p.index).chain(rest).collect();
                } else {
                    todo = rest;
                }
                continue;
            }
            let (Some(failed), Some(failed_item)) = (failed, failed_item) else {
                // A grouped INSERT failed: plan it again, split.
                todo = rest;
                continue;
            };
            if failed_item.has_savepoint {
                rollback_to = Some(failed);
            }
            let a = appends[failed];
            let key = duplicate_key(&error);
            let retry_failed = match (code, role) {
                (Some(ER_DUP_ENTRY), Role::Events(_)) if key == Some("events_event_id") => {
                    let conn = self.connection().await.map_err(transient)?;
                    let id = existing_event_id(conn, a).await.map_err(transient)?;
                    results[failed] = Some(Err(AppendError::DuplicateEventId(id)));
                    false
                }
                (Some(ER_DUP_ENTRY), Role::Events(_))
                | (Some(ER_NO_REFERENCED_ROW), Role::Events(_)) => {
                    let has_any = a.streams.iter().any(|s| s.expected == ExpectedVersion::Any);
                    if has_any && any_retries[failed] < MAX_ANY_RETRIES {
                        any_retries[failed] += 1;
                        for s in &a.streams {
                            read_versions.remove(&s.stream_id);
                        }
                        true
                    } else {
                        let conn = self.connection().await.map_err(transient)?;
                        let ids: Vec<&StreamId> = a.streams.iter().map(|s| &s.stream_id).collect();
                        let actual = stream_versions(conn, &ids).await.map_err(transient)?;
                        results[failed] = Some(Err(conflict(a, &actual, &in_tx)));
                        false
                    }
                }
                (Some(ER_DUP_ENTRY), Role::Claim(_, j)) => {
                    let (scope, key) = match &a.claims[j] {
                        PreparedClaim::Claim { scope, key, .. }
                        | PreparedClaim::Release { scope, key } => (scope.clone(), key.clone()),
                    };
                    results[failed] = Some(Err(AppendError::ClaimTaken { scope, key }));
                    false
                }
                _ => {
                    tracing::warn!(error = %error, "append rejected by the database");
                    results[failed] = Some(Err(AppendError::Database(Arc::new(error))));
                    false
                }
            };
            todo = if retry_failed {
                std::iter::once(failed).chain(rest).collect()
            } else {
                rest
            };
        }
    }
}

/// Whether an insert failed because the head this batch planned from is not the log's.
fn stale_head(code: Option<u16>, error: &sqlx::Error) -> bool {
    match code {
        Some(ER_DUP_ENTRY) => duplicate_key(error) == Some("PRIMARY"),
        Some(ER_NO_REFERENCED_ROW) => foreign_key(error) == Some("events_prev_position"),
        _ => false,
    }
}

fn is_lost_connection(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::Io(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
    )
}

fn plan_versions(
    a: &Prepared,
    known: &HashMap<StreamId, u64>,
    read: &HashMap<StreamId, u64>,
) -> Result<Vec<u64>, AppendError> {
    let mut out = Vec::with_capacity(a.streams.len());
    for s in &a.streams {
        let known_now = known.get(&s.stream_id).copied();
        let start = match (s.expected.pinned(), known_now) {
            (Some(expected), Some(actual)) if expected != actual => {
                return Err(AppendError::Conflict {
                    stream_id: s.stream_id.clone(),
                    expected: s.expected,
                    actual,
                });
            }
            (Some(expected), _) => expected,
            (None, Some(actual)) => actual,
            (None, None) => read.get(&s.stream_id).copied().unwrap_or(0),
        };
        out.push(start + s.events.len() as u64);
    }
    Ok(out)
}

fn conflict(
    a: &Prepared,
    actual: &HashMap<StreamId, u64>,
    in_tx: &HashMap<StreamId, u64>,
) -> AppendError {
    let version = |id: &StreamId| {
        in_tx
            .get(id)
            .or_else(|| actual.get(id))
            .copied()
            .unwrap_or(0)
    };
    let mismatch = a
        .streams
        .iter()
        .find(|s| {
            s.expected
                .pinned()
                .is_some_and(|e| e != version(&s.stream_id))
        })
        .or_else(|| a.streams.first());
    match mismatch {
        Some(s) => AppendError::Conflict {
            stream_id: s.stream_id.clone(),
            expected: s.expected,
            actual: version(&s.stream_id),
        },
        None => AppendError::Invalid("an append needs at least one stream".into()),
    }
}

fn last_event_id(round: &[RoundItem], appends: &[&Prepared]) -> Option<Uuid> {
    round.iter().rev().find_map(|r| match r {
        RoundItem::Planned(p) => appends[p.index]
            .streams
            .last()
            .and_then(|s| s.events.last())
            .map(|e| e.event_id),
        RoundItem::Rejected(..) => None,
    })
}

fn outcome(a: &Prepared, p: &Planned, recorded_at: OffsetDateTime) -> AppendOutcome {
    AppendOutcome {
        streams: a
            .streams
            .iter()
            .zip(&p.versions)
            .map(|(s, v)| WrittenStream {
                stream_id: s.stream_id.clone(),
                version: *v,
            })
            .collect(),
        first_position: p.first_position,
        last_position: p.head_after.position,
        recorded_at,
    }
}
