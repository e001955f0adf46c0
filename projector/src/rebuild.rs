//! `projector rebuild`: the read tables built again from the whole log and swapped in
//! while the live projector keeps serving, never lower than the live tables stand.
//!
//! 1. `<table>_rebuild` copies of the live tables are created (`CREATE TABLE … LIKE`,
//!    so the migration stays the one definition) without their secondary indexes, and
//!    filled from the log: a reader task fetches the next page while this one decodes
//!    and applies; every row lives in memory (a rebuild wrote all of them, so nothing is
//!    read back); transaction rows leave every 20,000 events as thousand-row INSERTs on
//!    a writer connection of their own, while the next pages are applied; user and
//!    balance rows, rewritten over and over, are written once at the end. Passes follow
//!    the growing log until one is short; the indexes are then built in one pass each,
//!    and short passes follow the log again.
//! 2. The swap happens under the checkpoint's lock (`LOCK TABLES checkpoints READ` on a
//!    connection of its own: readers go on, every live batch waits, one in flight
//!    commits first). The copies are filled up to the live checkpoint, so they are at
//!    least where the live tables are; their checkpoint rows get the live rows'
//!    `generation` plus one. Then one `RENAME TABLE` swaps all four tables (the
//!    checkpoint among them) atomically, and the lock is released only once that rename
//!    is queued behind it: the rename's pending exclusive metadata lock goes before every
//!    batch queued meanwhile, so no batch commits to the tables being replaced. Readers
//!    see the old tables or the new ones, never a mix, never a lower position, and a
//!    new generation with the new ones (docs/adr/0015).
//! 3. The live path then applies whatever was appended meanwhile, under the checkpoint
//!    lock like any batch, so the command ends with the tables at the head. Messages
//!    the live projector receives afterwards are duplicates or fill gaps as usual.
//!
//! `verify` builds the same way into `<table>_verify` (indexes never added back: it
//! only joins on primary keys) and diffs instead of swapping.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use event_store::{EventStore, RecordedEvent, StoreError};
use ledger::LedgerEvent;
use sqlx::{MySqlConnection, MySqlPool, Row};
use time::OffsetDateTime;
use tokio::sync::mpsc;

use crate::apply::{self, Rows, SourceEvent};
use crate::checkpoint::Projection;
use crate::error::Error;
use read_model::{TableName, TableSet, BALANCES, TRANSACTIONS, USERS};

/// Events per read of the log.
const READ_PAGE: u32 = 5_000;
/// Events applied between two page writes (and two progress reports).
const FLUSH_EVENTS: u64 = 20_000;
/// Events one catch-up transaction applies after the swap.
const CATCH_UP_EVENTS: usize = 5_000;
/// A pass over fewer events than this is the last before the indexes are built, and
/// before the swap: what the log gains meanwhile is little, and what the live tables
/// have of it is applied under the checkpoint's lock (live batches wait that long).
const SHORT_PASS: u64 = 5_000;
/// How often the swap looks whether its `RENAME TABLE` is queued behind the lock.
const RENAME_QUEUED_POLL: Duration = Duration::from_millis(2);

/// How far a rebuild (or verify) has got, reported after every write.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// The last position applied.
    pub position: u64,
    /// The position the current pass runs to.
    pub target: u64,
    /// Events applied so far.
    pub events: u64,
    pub elapsed: Duration,
}

impl Progress {
    pub fn events_per_second(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.events as f64 / secs
        } else {
            0.0
        }
    }
}

/// What a rebuild did.
#[derive(Debug, Clone, PartialEq)]
pub struct RebuildReport {
    /// The position the rebuilt tables had when they were swapped in: at least the live
    /// checkpoint of that moment.
    pub swapped_at: u64,
    /// The generation of the rebuilt tables' checkpoint (the replaced one's plus one).
    pub generation: u64,
    /// Events applied to the rebuilt tables.
    pub events: u64,
    /// Parked positions stepped over.
    pub parked: Vec<u64>,
    /// The live checkpoint after the final catch-up.
    pub checkpoint: u64,
    /// An event appended during the swap that cannot be applied; the live projector
    /// stops in front of it too.
    pub poison: Option<(u64, String)>,
    pub elapsed: Duration,
}

/// Read tables being built from the log: `<table><suffix>` copies of the live ones.
pub(crate) struct Shadow {
    pub tables: TableSet,
    /// The last position applied (or parked) into them.
    pub position: u64,
    pub events: u64,
    pub parked_skipped: Vec<u64>,
    projection: String,
    rows: Rows,
    parked: HashSet<u64>,
    started: Instant,
    pool: MySqlPool,
    /// Secondary indexes taken off for the fill (`ALTER TABLE` clauses per table), to
    /// put back before a swap: building an index once at the end is cheaper than
    /// keeping it up to date through a million inserts.
    deferred_indexes: Vec<(TableName, Vec<String>)>,
}

/// Who commits a shadow's writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Commit {
    /// Each page in a transaction of its own.
    PerPage,
    /// The caller's open transaction (verify's consistent snapshot).
    Caller,
}

impl Shadow {
    /// Empty `<table><suffix>` tables (left-overs of an earlier run are dropped),
    /// without their secondary indexes until [`Shadow::restore_indexes`].
    pub async fn create(
        pool: &MySqlPool,
        conn: &mut MySqlConnection,
        tables: TableSet,
        projection: &str,
        parked: HashSet<u64>,
    ) -> Result<Self, Error> {
        drop_tables(conn, &tables).await?;
        let mut sql = String::new();
        for (copy, live) in tables.names().iter().zip(TableSet::live().names()) {
            sql.push_str(&format!("CREATE TABLE `{copy}` LIKE `{live}`;\n"));
        }
        apply::execute_text(conn, &sql)
            .await
            .map_err(Error::db("creating the shadow tables"))?;
        let mut deferred_indexes = Vec::new();
        for (copy, live) in [
            (&tables.users, USERS),
            (&tables.balances, BALANCES),
            (&tables.transactions, TRANSACTIONS),
        ] {
            let indexes = secondary_indexes(conn, &live).await?;
            if indexes.is_empty() {
                continue;
            }
            let drops: Vec<String> = indexes
                .iter()
                .map(|(name, _)| format!("DROP INDEX `{name}`"))
                .collect();
            apply::execute_text(conn, &format!("ALTER TABLE `{copy}` {}", drops.join(", ")))
                .await
                .map_err(Error::db("deferring the shadow tables' indexes"))?;
            let adds = indexes.into_iter().map(|(_, add)| add).collect();
            deferred_indexes.push((copy.clone(), adds));
        }
        Ok(Self {
            tables,
            position: 0,
            events: 0,
            parked_skipped: Vec::new(),
            projection: projection.to_owned(),
            rows: Rows::new(),
            parked,
            started: Instant::now(),
            pool: pool.clone(),
            deferred_indexes,
        })
    }

    /// Builds the indexes [`Shadow::create`] took off (a rebuild, before its swap).
    pub async fn restore_indexes(&mut self, conn: &mut MySqlConnection) -> Result<(), Error> {
        for (table, adds) in std::mem::take(&mut self.deferred_indexes) {
            apply::execute_text(conn, &format!("ALTER TABLE `{table}` {}", adds.join(", ")))
                .await
                .map_err(Error::db("building the rebuilt tables' indexes"))?;
        }
        Ok(())
    }

    /// Applies the log after [`Shadow::position`] up to `to`. `observe` sees every
    /// decoded event (verify folds users with it); `progress` hears after every write.
    pub async fn fill(
        &mut self,
        store: &EventStore,
        to: u64,
        conn: &mut MySqlConnection,
        commit: Commit,
        observe: &mut dyn FnMut(&SourceEvent, &LedgerEvent),
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<(), Error> {
        if to <= self.position {
            return Ok(());
        }
        let mut pages = read_ahead(store.clone(), self.position, to);
        // Transaction rows leave page by page, on a connection of their own while the
        // next page is applied; users and balances (few rows, rewritten often) once at
        // the end. The tables are invisible until swapped, so only the end state counts.
        let mut writer = match commit {
            Commit::PerPage => Some(PageWriter::start(self.pool.clone())),
            Commit::Caller => None,
        };
        let mut unwritten = 0;
        while let Some(page) = pages.recv().await {
            let page = page.map_err(Error::log("reading the log"))?;
            for recorded in page {
                self.apply_one(SourceEvent::from(recorded), observe)?;
                unwritten += 1;
            }
            if unwritten >= FLUSH_EVENTS {
                let statements = self.rows.take_transaction_writes(&self.tables);
                match &mut writer {
                    Some(writer) => writer.send(statements).await?,
                    None => apply::execute_all(conn, &statements)
                        .await
                        .map_err(Error::db("writing rebuilt rows"))?,
                }
                unwritten = 0;
                progress(&self.progress(to));
            }
        }
        if let Some(writer) = &mut writer {
            writer.finish().await?;
        }
        if self.position < to {
            return Err(Error::NoSuchPosition {
                position: self.position + 1,
            });
        }
        self.write(conn, commit).await?;
        progress(&self.progress(to));
        Ok(())
    }

    fn apply_one(
        &mut self,
        event: SourceEvent,
        observe: &mut dyn FnMut(&SourceEvent, &LedgerEvent),
    ) -> Result<(), Error> {
        let position = event.position;
        if position != self.position + 1 {
            return Err(Error::Log {
                doing: "reading the log in order",
                source: StoreError::Corrupt {
                    position: self.position + 1,
                    what: "position sequence (a hole in the log)",
                },
            });
        }
        if self.parked.contains(&position) {
            tracing::warn!(
                projection = %self.projection,
                position,
                event_id = %event.event_id,
                event_type = %event.event_type,
                "SKIPPING PARKED EVENT: an operator parked this position"
            );
            self.parked_skipped.push(position);
        } else {
            let decoded = event.decode().map_err(|e| Error::Poison {
                position,
                event_type: event.event_type.clone(),
                reason: e.to_string(),
            })?;
            observe(&event, &decoded);
            self.rows.apply(&event, &decoded);
            self.events += 1;
        }
        self.position = position;
        Ok(())
    }

    fn progress(&self, target: u64) -> Progress {
        Progress {
            position: self.position,
            target,
            events: self.events,
            elapsed: self.started.elapsed(),
        }
    }

    async fn write(&mut self, conn: &mut MySqlConnection, commit: Commit) -> Result<(), Error> {
        let mut statements = Vec::new();
        if commit == Commit::PerPage {
            statements.push("BEGIN".to_owned());
        }
        statements.extend(self.rows.take_writes(&self.tables));
        statements.push(apply::checkpoint_write(
            &self.tables,
            &self.projection,
            self.position,
            OffsetDateTime::now_utc(),
        ));
        if commit == Commit::PerPage {
            statements.push("COMMIT".to_owned());
        }
        apply::execute_all(conn, &statements)
            .await
            .map_err(Error::db("writing rebuilt rows"))
    }
}

/// Writes pages of statements on its own connection, each page in a transaction,
/// while the caller goes on applying.
struct PageWriter {
    pages: Option<mpsc::Sender<Vec<String>>>,
    task: Option<tokio::task::JoinHandle<Result<(), sqlx::Error>>>,
}

impl PageWriter {
    fn start(pool: MySqlPool) -> Self {
        let (pages, mut rx) = mpsc::channel::<Vec<String>>(2);
        let task = tokio::spawn(async move {
            let mut conn = pool.acquire().await?;
            while let Some(statements) = rx.recv().await {
                let mut all = Vec::with_capacity(statements.len() + 2);
                all.push("BEGIN".to_owned());
                all.extend(statements);
                all.push("COMMIT".to_owned());
                apply::execute_all(&mut conn, &all).await?;
            }
            Ok(())
        });
        Self {
            pages: Some(pages),
            task: Some(task),
        }
    }

    async fn send(&mut self, statements: Vec<String>) -> Result<(), Error> {
        let sent = match &self.pages {
            Some(pages) => pages.send(statements).await.is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        // The task stopped early: it failed, and says why.
        self.finish().await.and(Err(Error::Database {
            doing: "writing rebuilt rows",
            source: sqlx::Error::WorkerCrashed,
        }))
    }

    /// Waits for every page sent so far.
    async fn finish(&mut self) -> Result<(), Error> {
        self.pages = None;
        let Some(task) = self.task.take() else {
            return Ok(());
        };
        match task.await {
            Ok(result) => result.map_err(Error::db("writing rebuilt rows")),
            Err(_) => Err(Error::Database {
                doing: "writing rebuilt rows",
                source: sqlx::Error::WorkerCrashed,
            }),
        }
    }
}

/// A table's secondary indexes: `(name, "ADD [UNIQUE] INDEX name (columns)")`.
async fn secondary_indexes(
    conn: &mut MySqlConnection,
    table: &TableName,
) -> Result<Vec<(String, String)>, Error> {
    let rows = sqlx::query(
        "SELECT index_name, MAX(non_unique), \
           GROUP_CONCAT(CONCAT('`', column_name, '`', \
             IF(sub_part IS NULL, '', CONCAT('(', sub_part, ')'))) \
             ORDER BY seq_in_index SEPARATOR ', ') \
         FROM information_schema.statistics \
         WHERE table_schema = DATABASE() AND table_name = ? AND index_name <> 'PRIMARY' \
         GROUP BY index_name ORDER BY index_name",
    )
    .bind(table.as_str())
    .fetch_all(&mut *conn)
    .await
    .map_err(Error::db("reading the read tables' indexes"))?;
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let read = |e| Error::Database {
            doing: "reading the read tables' indexes",
            source: e,
        };
        let name = read_model::columns::text(row, 0).map_err(read)?;
        let non_unique: i64 = row.try_get(1).map_err(read)?;
        let columns = read_model::columns::text(row, 2).map_err(read)?;
        let unique = if non_unique == 0 { "UNIQUE " } else { "" };
        out.push((
            name.clone(),
            format!("ADD {unique}INDEX `{name}` ({columns})"),
        ));
    }
    Ok(out)
}

/// The log from `after` to `to`, a page ahead of the consumer.
fn read_ahead(
    store: EventStore,
    after: u64,
    to: u64,
) -> mpsc::Receiver<Result<Vec<RecordedEvent>, StoreError>> {
    let (tx, rx) = mpsc::channel(2);
    tokio::spawn(async move {
        let mut after = after;
        while after < to {
            let want = u32::try_from(to - after)
                .unwrap_or(READ_PAGE)
                .min(READ_PAGE);
            match store.read_all(after, want).await {
                Ok(page) => {
                    let Some(last) = page.last().map(|e| e.position) else {
                        break;
                    };
                    after = last;
                    // The receiver gone means the rebuild stopped: stop reading.
                    if tx.send(Ok(page)).await.is_err() {
                        break;
                    }
                }
                Err(error) => {
                    let _ = tx.send(Err(error)).await;
                    break;
                }
            }
        }
    });
    rx
}

pub(crate) async fn drop_tables(
    conn: &mut MySqlConnection,
    tables: &TableSet,
) -> Result<(), Error> {
    let names: Vec<String> = tables.names().iter().map(|n| format!("`{n}`")).collect();
    let sql = format!("DROP TABLE IF EXISTS {}", names.join(", "));
    apply::execute_text(conn, &sql)
        .await
        .map_err(Error::db("dropping shadow tables"))?;
    Ok(())
}

/// A connection holding this database's rebuild-or-verify lock: two of them at once
/// would build into the same tables, and a swap would pull the tables from under a
/// verify. The lock goes with the connection.
pub(crate) async fn exclusive(
    pool: &MySqlPool,
    what: &'static str,
) -> Result<MySqlConnection, Error> {
    let mut conn = pool
        .acquire()
        .await
        .map_err(Error::db("connecting to the database"))?
        .detach();
    let got: Option<i64> =
        sqlx::query_scalar("SELECT GET_LOCK(CONCAT('projector-shadow:', DATABASE()), 0)")
            .fetch_one(&mut conn)
            .await
            .map_err(Error::db("taking the rebuild lock"))?;
    if got == Some(1) {
        Ok(conn)
    } else {
        Err(Error::Busy { what })
    }
}

pub(crate) async fn log_head(store: &EventStore) -> Result<u64, Error> {
    Ok(store
        .head()
        .await
        .map_err(Error::log("reading the log's head"))?
        .map_or(0, |(position, _)| position))
}

/// Rebuilds `projection`'s tables from the log and swaps them in.
pub(crate) async fn rebuild(
    projection: &Projection,
    progress: &mut dyn FnMut(&Progress),
) -> Result<RebuildReport, Error> {
    let started = Instant::now();
    let mut conn = exclusive(&projection.pool, "rebuild").await?;
    let parked = projection
        .parked()
        .await
        .map_err(Error::db("reading parked positions"))?;
    let mut shadow = Shadow::create(
        &projection.pool,
        &mut conn,
        TableSet::rebuild(),
        &projection.name,
        parked,
    )
    .await?;
    let built = async {
        follow_the_log(projection, &mut shadow, &mut conn, progress).await?;
        shadow.restore_indexes(&mut conn).await?;
        follow_the_log(projection, &mut shadow, &mut conn, progress).await?;
        swap(projection, &mut conn, &mut shadow, progress).await
    }
    .await;
    let generation = match built {
        Ok(generation) => generation,
        Err(error) => {
            let _ = drop_tables(&mut conn, &shadow.tables).await;
            return Err(error);
        }
    };
    tracing::info!(
        position = shadow.position,
        generation,
        events = shadow.events,
        "rebuilt tables swapped in"
    );

    let mut report = RebuildReport {
        swapped_at: shadow.position,
        generation,
        events: shadow.events,
        parked: shadow.parked_skipped.clone(),
        checkpoint: shadow.position,
        poison: None,
        elapsed: Duration::ZERO,
    };
    let head = log_head(&projection.store).await?;
    while report.checkpoint < head {
        let outcome = projection
            .apply_batch(Vec::new(), head, CATCH_UP_EVENTS)
            .await
            .map_err(|e| e.doing("catching up after the swap"))?;
        report.checkpoint = outcome.checkpoint;
        if let Some(poison) = outcome.poison {
            report.poison = Some((poison.position, poison.reason));
            break;
        }
        if outcome.checkpoint == outcome.before {
            break;
        }
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Passes over the log into `shadow` until one finds nothing new or is short: the log
/// grows while we build.
async fn follow_the_log(
    projection: &Projection,
    shadow: &mut Shadow,
    conn: &mut MySqlConnection,
    progress: &mut dyn FnMut(&Progress),
) -> Result<(), Error> {
    loop {
        let head = log_head(&projection.store).await?;
        let behind = head.saturating_sub(shadow.position);
        if behind == 0 {
            return Ok(());
        }
        shadow
            .fill(
                &projection.store,
                head,
                conn,
                Commit::PerPage,
                &mut |_, _| {},
                progress,
            )
            .await?;
        if behind < SHORT_PASS {
            return Ok(());
        }
    }
}

/// Puts `shadow`'s tables in place of the live ones, at or above the live checkpoint,
/// with the next generation, in one atomic `RENAME TABLE`; then drops the old ones.
/// Returns the new generation.
async fn swap(
    projection: &Projection,
    conn: &mut MySqlConnection,
    shadow: &mut Shadow,
    progress: &mut dyn FnMut(&Progress),
) -> Result<u64, Error> {
    let live = TableSet::live();
    let old = TableSet::retired();
    drop_tables(conn, &old).await?;
    let renamer: u64 = sqlx::query_scalar("SELECT CONNECTION_ID()")
        .fetch_one(&mut *conn)
        .await
        .map_err(Error::db("reading the rebuild's connection id"))?;
    let renames: Vec<String> = live
        .names()
        .iter()
        .zip(old.names())
        .zip(shadow.tables.names())
        .map(|((live, old), new)| format!("`{live}` TO `{old}`, `{new}` TO `{live}`"))
        .collect();
    let rename = format!("RENAME TABLE {}", renames.join(", "));

    // The checkpoint's lock, on a connection of its own: from here to the rename no live
    // batch commits (each locks its checkpoint row first, so each waits for the table),
    // while readers of the checkpoint go on.
    let mut lock = projection
        .pool
        .acquire()
        .await
        .map_err(Error::db("connecting to the database"))?
        .detach();
    let locked = async {
        apply::execute_text(
            &mut lock,
            &format!("LOCK TABLES `{}` READ", live.checkpoints),
        )
        .await
        .map_err(Error::db("locking the checkpoints"))?;
        let (position, generation) = live_checkpoint(&mut lock, &live, &projection.name).await?;
        // At least as far as the live tables: what they show, the new ones show too.
        shadow
            .fill(
                &projection.store,
                position,
                conn,
                Commit::PerPage,
                &mut |_, _| {},
                progress,
            )
            .await?;
        let generation = generation + 1;
        stamp_generations(conn, projection, shadow, generation).await?;
        Ok::<u64, Error>(generation)
    }
    .await;
    let generation = match locked {
        Ok(generation) => generation,
        Err(error) => {
            release(lock).await;
            return Err(error);
        }
    };
    rename_behind(&projection.pool, conn, renamer, lock, &rename).await?;
    drop_tables(conn, &old).await?;
    Ok(generation)
}

/// The live checkpoint and its generation (0, 0 before the first batch).
async fn live_checkpoint(
    conn: &mut MySqlConnection,
    live: &TableSet,
    projection: &str,
) -> Result<(u64, u64), Error> {
    let found: Option<(u64, u64)> = sqlx::query_as(&format!(
        "SELECT position, generation FROM `{}` WHERE projection = ?",
        live.checkpoints
    ))
    .bind(projection)
    .fetch_optional(&mut *conn)
    .await
    .map_err(Error::db("reading the live checkpoint"))?;
    Ok(found.unwrap_or((0, 0)))
}

/// The rebuilt checkpoint row gets `generation`; other projections' rows (if any share
/// these tables' database) move along, each with its generation plus one, as the
/// tables under them change too.
async fn stamp_generations(
    conn: &mut MySqlConnection,
    projection: &Projection,
    shadow: &Shadow,
    generation: u64,
) -> Result<(), Error> {
    let live = TableSet::live();
    sqlx::query(&format!(
        "INSERT INTO `{}` (projection, position, generation, updated_at) \
         VALUES (?, ?, ?, UTC_TIMESTAMP(6)) \
         ON DUPLICATE KEY UPDATE generation = VALUES(generation)",
        shadow.tables.checkpoints
    ))
    .bind(&projection.name)
    .bind(shadow.position)
    .bind(generation)
    .execute(&mut *conn)
    .await
    .map_err(Error::db("setting the rebuilt checkpoint's generation"))?;
    sqlx::query(&format!(
        "INSERT IGNORE INTO `{}` (projection, position, generation, updated_at) \
         SELECT projection, position, generation + 1, updated_at FROM `{}` \
         WHERE projection <> ?",
        shadow.tables.checkpoints, live.checkpoints
    ))
    .bind(&projection.name)
    .execute(&mut *conn)
    .await
    .map_err(Error::db("carrying other projections' checkpoints over"))?;
    Ok(())
}

/// Runs `rename` on `conn` and releases `lock` once the rename waits for it. A pending
/// `RENAME TABLE`'s exclusive metadata lock is granted before the batches that queued
/// on the checkpoint table meanwhile, so they go on with the new tables.
async fn rename_behind(
    pool: &MySqlPool,
    conn: &mut MySqlConnection,
    renamer: u64,
    lock: MySqlConnection,
    rename: &str,
) -> Result<(), Error> {
    let renamed = apply::execute_text(conn, rename);
    tokio::pin!(renamed);
    loop {
        tokio::select! {
            done = &mut renamed => {
                // Only a failure ends the rename before the lock is released.
                release(lock).await;
                return done.map_err(Error::db("swapping the rebuilt tables in"));
            }
            () = tokio::time::sleep(RENAME_QUEUED_POLL) => {
                match waits_for_metadata_lock(pool, renamer).await {
                    Ok(true) => break,
                    Ok(false) => {}
                    Err(error) => {
                        // Cannot tell: release now; a batch may then commit to the old
                        // tables just before the swap, as without the lock.
                        tracing::warn!(%error, "cannot see whether the swap is queued");
                        break;
                    }
                }
            }
        }
    }
    release(lock).await;
    renamed
        .await
        .map_err(Error::db("swapping the rebuilt tables in"))
}

async fn waits_for_metadata_lock(pool: &MySqlPool, connection: u64) -> Result<bool, sqlx::Error> {
    let waiting: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
         WHERE ID = ? AND STATE = 'Waiting for table metadata lock'",
    )
    .bind(connection)
    .fetch_one(pool)
    .await?;
    Ok(waiting > 0)
}

/// Releases the checkpoint lock and closes its connection (closing alone would release
/// it too, once the server sees the connection go).
async fn release(mut lock: MySqlConnection) {
    if let Err(error) = apply::execute_text(&mut lock, "UNLOCK TABLES").await {
        tracing::warn!(%error, "releasing the checkpoint lock failed; closing its connection");
    }
    let _ = sqlx::Connection::close(lock).await;
}
