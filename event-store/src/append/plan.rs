//! The pure half of a batch: what one transaction attempt knows and decides, without a
//! connection. [`Attempt`] plans rounds of statements (positions, versions, hashes, the
//! role of each statement) and, told how a round ended ([`super::classify::Step`]),
//! keeps what stands and plans the rest again. The executor (`exec.rs`) only runs what
//! is planned here and reports back; the unit tests below drive an attempt through every
//! ending without MariaDB.

use std::collections::HashMap;

use time::OffsetDateTime;
use uuid::Uuid;

use super::prepare::{Prepared, PreparedClaim};
use super::sql::{plan_rows, EventRow, Stmt};
use super::Head;
use crate::error::AppendError;
use crate::event::{AppendOutcome, WrittenStream};
use crate::stream::{ExpectedVersion, StreamId};

/// How often an append to a stream at `ExpectedVersion::Any` is re-planned after another
/// writer moved the stream under it.
const MAX_ANY_RETRIES: u8 = 5;

/// What one statement of a round does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// `BEGIN`, `ROLLBACK TO SAVEPOINT`.
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

/// An append planned into a round.
#[derive(Debug, Clone)]
pub(super) struct Planned {
    pub(super) index: usize,
    pub(super) versions: Vec<u64>,
    /// Each stream's last position, in the request's order.
    pub(super) positions: Vec<u64>,
    pub(super) first_position: u64,
    pub(super) head_after: Head,
    pub(super) has_savepoint: bool,
}

#[derive(Debug)]
pub(super) enum RoundItem {
    Planned(Planned),
    /// Rejected while planning, against a version an earlier append of this
    /// transaction establishes. Provisional: planned again if that append fails.
    Rejected(usize, AppendError),
}

/// One round trip: the statements and what each does, in order.
pub(super) struct Round<'a> {
    pub(super) items: Vec<RoundItem>,
    pub(super) stmts: Vec<Stmt<'a>>,
    pub(super) roles: Vec<Role>,
    /// The round is one INSERT under autocommit, outside any transaction: it commits by
    /// itself and goes as a prepared statement.
    pub(super) single: bool,
    /// The round ends with `COMMIT` (or is `single`): once sent, its outcome is known only
    /// from its reply.
    pub(super) commits: bool,
}

impl Round<'_> {
    /// The role of statement `ok` (the first that did not succeed).
    pub(super) fn role(&self, ok: usize) -> Role {
        self.roles.get(ok).copied().unwrap_or(Role::Commit)
    }

    /// The appends planned in items `from..to`.
    pub(super) fn members(&self, from: usize, to: usize) -> Vec<usize> {
        self.items[from..to.min(self.items.len())]
            .iter()
            .filter_map(|r| match r {
                RoundItem::Planned(p) => Some(p.index),
                RoundItem::Rejected(..) => None,
            })
            .collect()
    }

    /// The item index of append `index`.
    pub(super) fn item_of(&self, index: usize) -> usize {
        self.items
            .iter()
            .position(|r| matches!(r, RoundItem::Planned(p) if p.index == index))
            .unwrap_or(self.items.len())
    }
}

/// The rows a settled round would have written: event id, planned position and hash of
/// the last event of each planned append. Finding them, with exactly these positions and
/// hashes, is finding the round committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Probe {
    pub(super) event_id: Uuid,
    pub(super) position: u64,
    pub(super) hash: crate::Hash,
}

/// One transaction attempt of a batch.
pub(super) struct Attempt<'a> {
    appends: &'a [&'a Prepared],
    results: Vec<Option<Result<AppendOutcome, AppendError>>>,
    any_retries: Vec<u8>,
    /// Versions this transaction establishes, stream by stream.
    in_tx: HashMap<StreamId, u64>,
    /// Current versions read for streams appended at `Any`.
    read_versions: HashMap<StreamId, u64>,
    /// Appends that succeeded inside the open transaction, with their plan.
    done: Vec<Planned>,
    rollback_to: Option<usize>,
    /// After a grouped INSERT failed: one statement per append, to learn which.
    split: bool,
    /// A transaction is open on the connection (statements of earlier rounds that
    /// succeeded, or a locking read of the head, wait in it).
    pub(super) open_tx: bool,
    pub(super) head: Head,
    todo: Vec<usize>,
    now: OffsetDateTime,
}

impl<'a> Attempt<'a> {
    /// An attempt at `appends` from `head`; `open_tx` when the head was read with a lock
    /// in a transaction that is now open. `now` is the wall clock, microseconds.
    pub(super) fn new(
        appends: &'a [&'a Prepared],
        head: Head,
        open_tx: bool,
        now: OffsetDateTime,
    ) -> Self {
        Self {
            appends,
            results: appends.iter().map(|_| None).collect(),
            any_retries: vec![0; appends.len()],
            in_tx: HashMap::new(),
            read_versions: HashMap::new(),
            done: Vec::new(),
            rollback_to: None,
            split: false,
            open_tx,
            head,
            todo: (0..appends.len()).collect(),
            now,
        }
    }

    /// When the events are recorded: now, unless the head was recorded later (a clock
    /// behind the log's), so that time never goes backwards along the log.
    pub(super) fn recorded_at(&self) -> OffsetDateTime {
        self.now.max(self.head.recorded_at)
    }

    /// Whether this machine's clock is behind the head's `recorded_at`.
    pub(super) fn clock_behind(&self) -> bool {
        self.now < self.head.recorded_at
    }

    /// Streams appended at `Any` whose current version must be read before planning.
    pub(super) fn unknown_versions(&self) -> Vec<&'a StreamId> {
        let mut out: Vec<&'a StreamId> = Vec::new();
        for &i in &self.todo {
            for s in &self.appends[i].streams {
                let id = &s.stream_id;
                if s.expected == ExpectedVersion::Any
                    && !self.in_tx.contains_key(id)
                    && !self.read_versions.contains_key(id)
                    && !out.contains(&id)
                {
                    out.push(id);
                }
            }
        }
        out
    }

    pub(super) fn learn_versions(&mut self, ids: &[&StreamId], found: &HashMap<StreamId, u64>) {
        for id in ids {
            let v = found.get(*id).copied().unwrap_or(0);
            self.read_versions.insert((*id).clone(), v);
        }
    }

    /// Plans the next round: every append still to do, from the current head.
    pub(super) fn plan(&mut self) -> Round<'a> {
        let appends = self.appends;
        let recorded_at = self.recorded_at();
        let mut stmts: Vec<Stmt<'a>> = Vec::new();
        let mut roles: Vec<Role> = Vec::new();
        if let Some(i) = self.rollback_to.take() {
            stmts.push(Stmt::Text(format!("ROLLBACK TO SAVEPOINT u{i}")));
            roles.push(Role::Control);
        }
        let mut tentative = self.in_tx.clone();
        let mut cursor = self.head.clone();
        let mut items: Vec<RoundItem> = Vec::with_capacity(self.todo.len());
        let mut group: Option<(usize, Vec<EventRow<'a>>)> = None;
        for &i in &self.todo {
            let a = appends[i];
            let versions = match plan_versions(a, &tentative, &self.read_versions) {
                Ok(v) => v,
                Err(e) => {
                    items.push(RoundItem::Rejected(i, e));
                    continue;
                }
            };
            let first_position = cursor.position + 1;
            let has_savepoint = !a.claims.is_empty();
            let mut positions = Vec::with_capacity(a.streams.len());
            if !has_savepoint && !self.split {
                // Claim-free appends share one multi-row INSERT.
                let (_, rows) = group.get_or_insert_with(|| (items.len(), Vec::new()));
                plan_rows(rows, a, &versions, &mut cursor, recorded_at, &mut positions);
            } else {
                if let Some((from, rows)) = group.take() {
                    stmts.push(Stmt::Rows(rows));
                    roles.push(Role::Group {
                        from,
                        to: items.len(),
                    });
                }
                if has_savepoint {
                    stmts.push(Stmt::Text(format!("SAVEPOINT u{i}")));
                    roles.push(Role::Savepoint);
                }
                let mut rows = Vec::new();
                plan_rows(
                    &mut rows,
                    a,
                    &versions,
                    &mut cursor,
                    recorded_at,
                    &mut positions,
                );
                stmts.push(Stmt::Rows(rows));
                roles.push(Role::Events(i));
                for (j, c) in a.claims.iter().enumerate() {
                    stmts.push(Stmt::Claim(c, cursor.position, recorded_at));
                    roles.push(match c {
                        PreparedClaim::Claim { .. } => Role::Claim(i, j),
                        PreparedClaim::Release { .. } => Role::Release(i),
                    });
                }
            }
            for (s, v) in a.streams.iter().zip(&versions) {
                tentative.insert(s.stream_id.clone(), *v);
            }
            items.push(RoundItem::Planned(Planned {
                index: i,
                versions,
                positions,
                first_position,
                head_after: cursor.clone(),
                has_savepoint,
            }));
        }
        if let Some((from, rows)) = group.take() {
            stmts.push(Stmt::Rows(rows));
            roles.push(Role::Group {
                from,
                to: items.len(),
            });
        }
        // One INSERT outside a transaction (the usual batch) commits by itself
        // (autocommit). Anything more is one transaction, sent with its BEGIN and COMMIT
        // as one multi-statement round trip.
        let single = !self.open_tx && matches!(stmts.as_slice(), [Stmt::Rows(_)]);
        let empty = stmts.is_empty() && !self.open_tx;
        if !single && !empty {
            if !self.open_tx {
                roles.insert(0, Role::Control);
            }
            roles.push(Role::Commit);
        }
        Round {
            items,
            stmts,
            roles,
            single,
            commits: !empty,
        }
    }

    /// What a round that committed would have written, to look for after its reply was
    /// lost: the last event of every append planned in it and in earlier rounds of the
    /// open transaction (they commit with it).
    pub(super) fn probes(&self, round: &Round<'_>) -> Vec<Probe> {
        let planned = self
            .done
            .iter()
            .chain(round.items.iter().filter_map(|r| match r {
                RoundItem::Planned(p) => Some(p),
                RoundItem::Rejected(..) => None,
            }));
        planned
            .filter_map(|p| {
                let a = self.appends[p.index];
                let last = a.streams.last()?.events.last()?;
                Some(Probe {
                    event_id: last.event_id,
                    position: p.head_after.position,
                    hash: p.head_after.hash,
                })
            })
            .collect()
    }

    /// The round committed: every append planned in it and earlier in the transaction
    /// succeeded. Returns each append's result and the new head.
    pub(super) fn committed(
        mut self,
        round: Round<'_>,
    ) -> (Vec<Result<AppendOutcome, AppendError>>, Head) {
        let recorded_at = self.recorded_at();
        for item in round.items {
            match item {
                RoundItem::Planned(p) => {
                    self.head = p.head_after.clone();
                    self.done.push(p);
                }
                RoundItem::Rejected(i, e) => self.results[i] = Some(Err(e)),
            }
        }
        for p in std::mem::take(&mut self.done) {
            let o = outcome(self.appends[p.index], &p, recorded_at);
            self.results[p.index] = Some(Ok(o));
        }
        let results = self
            .results
            .into_iter()
            .map(|r| r.unwrap_or(Err(AppendError::Invalid("not planned".into()))))
            .collect();
        (results, self.head)
    }

    /// Items `..keep` of the round stand inside the open transaction; the others are
    /// planned again, except the item of append `failed`, whose plan is returned for the
    /// caller to decide on.
    pub(super) fn keep_before(
        &mut self,
        round: Round<'_>,
        keep: usize,
        failed: Option<usize>,
    ) -> Option<Planned> {
        let mut rest: Vec<usize> = Vec::new();
        let mut failed_item = None;
        let single = round.single;
        for (k, item) in round.items.into_iter().enumerate() {
            match item {
                RoundItem::Planned(p) if k < keep => {
                    for (s, v) in self.appends[p.index].streams.iter().zip(&p.versions) {
                        self.in_tx.insert(s.stream_id.clone(), *v);
                    }
                    self.head = p.head_after.clone();
                    self.done.push(p);
                }
                RoundItem::Rejected(i, e) if k < keep => self.results[i] = Some(Err(e)),
                RoundItem::Planned(p) if Some(p.index) == failed => failed_item = Some(p),
                RoundItem::Planned(p) => rest.push(p.index),
                RoundItem::Rejected(i, _) => rest.push(i),
            }
        }
        self.todo = rest;
        // Statements that succeeded before the failure wait in the open transaction; a
        // lone autocommit INSERT that failed left none.
        self.open_tx |= !single;
        if let Some(p) = &failed_item {
            if p.has_savepoint {
                self.rollback_to = Some(p.index);
            }
        }
        failed_item
    }

    /// A grouped INSERT failed and which append is not known: plan each alone.
    pub(super) fn split(&mut self) {
        self.split = true;
    }

    /// The head was stale: plan from `head` (read with a lock in the open transaction),
    /// the failed append first.
    pub(super) fn restart_from(&mut self, head: Head, failed: Option<Planned>) {
        self.head = head;
        if let Some(p) = failed {
            self.todo.insert(0, p.index);
        }
    }

    /// Append `index` is in the log already, committed by an earlier attempt of the batch.
    pub(super) fn succeed(&mut self, index: usize, outcome: AppendOutcome) {
        self.results[index] = Some(Ok(outcome));
    }

    /// Append `index` gets `error` as its answer.
    pub(super) fn fail(&mut self, index: usize, error: AppendError) {
        self.results[index] = Some(Err(error));
    }

    /// Append `index` collided on a stream version. Appends at `Any` read their streams'
    /// versions again and are planned once more (a bounded number of times); `true` then.
    pub(super) fn retry_any(&mut self, index: usize) -> bool {
        let a = self.appends[index];
        let has_any = a.streams.iter().any(|s| s.expected == ExpectedVersion::Any);
        if !has_any || self.any_retries[index] >= MAX_ANY_RETRIES {
            return false;
        }
        self.any_retries[index] += 1;
        for s in &a.streams {
            self.read_versions.remove(&s.stream_id);
        }
        self.todo.insert(0, index);
        true
    }

    /// The conflict append `index` met, given the streams' `actual` versions in the log.
    pub(super) fn conflict(&self, index: usize, actual: &HashMap<StreamId, u64>) -> AppendError {
        conflict(self.appends[index], actual, &self.in_tx)
    }

    pub(super) fn append(&self, index: usize) -> &'a Prepared {
        self.appends[index]
    }
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

fn outcome(a: &Prepared, p: &Planned, recorded_at: OffsetDateTime) -> AppendOutcome {
    AppendOutcome {
        streams: a
            .streams
            .iter()
            .zip(p.versions.iter().zip(&p.positions))
            .map(|(s, (v, position))| WrittenStream {
                stream_id: s.stream_id.clone(),
                version: *v,
                position: *position,
            })
            .collect(),
        first_position: p.first_position,
        last_position: p.head_after.position,
        recorded_at,
    }
}
