//! The thin half of a batch: one connection whose every wait has a limit, the rounds
//! run on it, and the settling of a round whose reply was lost (ADR 0012).
//!
//! A connection given up on (its reply did not come in time, it broke) may still have a
//! session on the server, holding locks or about to commit. Its id is kept, and the next
//! connection kills it and waits until it is gone before doing anything else: after that
//! the log says for certain whether the lost round committed.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::{ConnectOptions, Connection, Row};
use tokio::time::Instant;
use uuid::Uuid;

use super::plan::{Probe, Round};
use super::prepare::Prepared;
use super::sql::{exec_multi, exec_prepared, read_head, render_round, stream_versions, Stmt};
use super::Head;
use crate::error::{mariadb_code, ER_NO_SUCH_THREAD};
use crate::event::{AppendOutcome, WrittenStream};
use crate::stream::StreamId;

/// The limits on every wait of the appender's connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Establishing a connection (TCP, handshake, session settings).
    pub(crate) connect: Duration,
    /// One round trip's reply. The server's own statement limit is set a little below
    /// it, so a slow statement usually ends with a clean error rather than a lost reply.
    pub(crate) read: Duration,
}

/// How a round whose reply was lost ended, as the log tells once the old session is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Settled {
    Committed,
    NotCommitted,
    /// Some rows were found and others not, or at other positions or hashes than
    /// planned: something other than this round wrote them. Never guessed at.
    Mismatch,
}

pub(super) struct Link {
    connect: MySqlConnectOptions,
    limits: Limits,
    conn: Option<(MySqlConnection, u64)>,
    /// Sessions of connections given up on, killed before the next connection is used.
    abandoned: Vec<u64>,
}

/// A reply that did not come in time is a lost connection.
async fn within<T>(
    limit: Duration,
    f: impl Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, sqlx::Error> {
    match tokio::time::timeout(limit, f).await {
        Ok(result) => result,
        Err(_) => Err(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no reply from the database within {limit:?}"),
        ))),
    }
}

impl Link {
    pub(super) fn new(connect: MySqlConnectOptions, limits: Limits) -> Self {
        Self {
            connect,
            limits,
            conn: None,
            abandoned: Vec::new(),
        }
    }

    fn read_limit(&self, deadline: Option<Instant>) -> Duration {
        match deadline {
            Some(d) => self
                .limits
                .read
                .min(d.saturating_duration_since(Instant::now())),
            None => self.limits.read,
        }
    }

    /// The connection, made (and the abandoned sessions killed) if there is none.
    async fn conn(&mut self) -> Result<&mut MySqlConnection, sqlx::Error> {
        if self.conn.is_none() {
            let (conn, id) = self.open().await?;
            self.conn = Some((conn, id));
            if let Err(e) = self.kill_abandoned().await {
                self.lose();
                return Err(e);
            }
        }
        match self.conn.as_mut() {
            Some((c, _)) => Ok(c),
            None => Err(sqlx::Error::PoolClosed),
        }
    }

    async fn open(&self) -> Result<(MySqlConnection, u64), sqlx::Error> {
        let statement_secs = (self.limits.read.as_secs_f64() * 0.8).max(0.1);
        let lock_wait_secs = (statement_secs as u64).max(1);
        within(self.limits.connect, async {
            let mut conn = self.connect.connect().await?;
            // autocommit on: a batch that is one statement (the usual case: one multi-row
            // INSERT) commits by itself, with no COMMIT to send; longer batches are
            // wrapped in BEGIN … COMMIT within the same round trip. READ COMMITTED: no
            // gap locks, and reads see the newest head.
            sqlx::Executor::execute(
                &mut conn,
                format!(
                    "SET SESSION autocommit = 1, \
                     SESSION max_statement_time = {statement_secs:.3}, \
                     SESSION innodb_lock_wait_timeout = {lock_wait_secs}; \
                     SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"
                )
                .as_str(),
            )
            .await?;
            let id: u64 = sqlx::query_scalar("SELECT CONNECTION_ID()")
                .fetch_one(&mut conn)
                .await?;
            Ok((conn, id))
        })
        .await
    }

    /// Kills every abandoned session and waits until the server no longer lists it.
    async fn kill_abandoned(&mut self) -> Result<(), sqlx::Error> {
        let limit = self.limits.read;
        let Some((conn, _)) = self.conn.as_mut() else {
            return Ok(());
        };
        while let Some(&id) = self.abandoned.last() {
            within(limit, async {
                // KILL takes no placeholder; `id` is a number.
                match sqlx::Executor::execute(&mut *conn, format!("KILL CONNECTION {id}").as_str())
                    .await
                {
                    Ok(_) => {}
                    Err(e) if mariadb_code(&e) == Some(ER_NO_SUCH_THREAD) => {}
                    Err(e) => return Err(e),
                }
                // A killed session finishes what cannot be interrupted (a commit under
                // way) before it goes.
                loop {
                    let listed: i64 = sqlx::query_scalar(
                        "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ?",
                    )
                    .bind(id)
                    .fetch_one(&mut *conn)
                    .await?;
                    if listed == 0 {
                        return Ok(());
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
            .await?;
            tracing::info!(connection_id = id, "abandoned append session ended");
            self.abandoned.pop();
        }
        Ok(())
    }

    /// Gives the connection up; its session is killed before the next one is used.
    pub(super) fn lose(&mut self) {
        if let Some((conn, id)) = self.conn.take() {
            self.abandoned.push(id);
            // Dropping it closes the socket; the session may live on until killed.
            drop(conn);
        }
    }

    /// Makes sure a connection is up (killing abandoned sessions first).
    pub(super) async fn ready(&mut self) -> Result<(), sqlx::Error> {
        self.conn().await.map(|_| ())
    }

    /// Runs `round`: how many statements succeeded and the error of the one that did not.
    /// A lost reply gives the connection up. `Err` when nothing could be sent at all.
    pub(super) async fn run(
        &mut self,
        round: &Round<'_>,
        open_tx: bool,
        deadline: Instant,
    ) -> Result<(usize, Option<sqlx::Error>), sqlx::Error> {
        let limit = self.read_limit(Some(deadline));
        let conn = self.conn().await?;
        let result = match round.stmts.as_slice() {
            [] if !round.commits => (0, None),
            [Stmt::Rows(rows)] if round.single => {
                within_pair(limit, exec_prepared(conn, rows)).await
            }
            stmts => {
                let sql = render_round(stmts, open_tx);
                within_pair(limit, exec_multi(conn, &sql)).await
            }
        };
        if result
            .1
            .as_ref()
            .is_some_and(|e| super::classify::Fault::of(e) == super::classify::Fault::Lost)
        {
            self.lose();
        }
        Ok(result)
    }

    pub(super) async fn read_head(&mut self, begin: bool) -> Result<Head, sqlx::Error> {
        let limit = self.limits.read;
        let conn = self.conn().await?;
        let result = within(limit, read_head(conn, begin)).await;
        self.lose_on_error(result)
    }

    pub(super) async fn stream_versions(
        &mut self,
        ids: &[&StreamId],
    ) -> Result<HashMap<StreamId, u64>, sqlx::Error> {
        let limit = self.limits.read;
        let conn = self.conn().await?;
        let result = within(limit, stream_versions(conn, ids)).await;
        self.lose_on_error(result)
    }

    fn lose_on_error<T>(&mut self, result: Result<T, sqlx::Error>) -> Result<T, sqlx::Error> {
        if result.is_err() {
            self.lose();
        }
        result
    }

    /// Rolls back whatever is open; a connection that cannot is given up.
    pub(super) async fn rollback(&mut self) {
        let limit = self.limits.read;
        if let Some((conn, _)) = self.conn.as_mut() {
            let done = within(limit, async {
                sqlx::Executor::execute(&mut *conn, "ROLLBACK").await
            })
            .await;
            if done.is_err() {
                self.lose();
            }
        }
    }

    pub(super) async fn close(&mut self) {
        self.rollback().await;
        if let Some((conn, _)) = self.conn.take() {
            let _ = conn.close().await;
        }
    }

    /// Settles a round whose reply was lost: reconnects (killing the old session and
    /// waiting until it is gone) and looks the planned rows up, until `deadline`. `None`
    /// when the database could not be asked in time.
    pub(super) async fn settle(&mut self, probes: &[Probe], deadline: Instant) -> Option<Settled> {
        let mut pause = Duration::from_millis(5);
        loop {
            if Instant::now() >= deadline {
                return None;
            }
            match self.probe(probes, deadline).await {
                Ok(settled) => return Some(settled),
                Err(e) => {
                    tracing::warn!(error = %e, "settling a lost append reply; asking again");
                    self.lose();
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            tokio::time::sleep(pause.min(left)).await;
            pause = (pause * 2).min(Duration::from_millis(250));
        }
    }

    async fn probe(&mut self, probes: &[Probe], deadline: Instant) -> Result<Settled, sqlx::Error> {
        let limit = self.read_limit(Some(deadline));
        let conn = within(limit, self.conn()).await?;
        if probes.is_empty() {
            return Ok(Settled::NotCommitted);
        }
        let mut sql =
            String::from("SELECT event_id, position, hash FROM events WHERE event_id IN (");
        for i in 0..probes.len() {
            sql.push_str(if i == 0 { "?" } else { ",?" });
        }
        sql.push(')');
        let mut query = sqlx::query(&sql);
        for p in probes {
            query = query.bind(p.event_id.as_bytes().as_slice());
        }
        let rows = within(limit, query.fetch_all(&mut *conn)).await?;
        let mut found: HashMap<Uuid, (u64, Vec<u8>)> = HashMap::new();
        for row in rows {
            let id: Vec<u8> = row.try_get(0)?;
            let id = Uuid::from_slice(&id).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
            found.insert(id, (row.try_get(1)?, row.try_get(2)?));
        }
        let matching = probes
            .iter()
            .filter(|p| {
                found
                    .get(&p.event_id)
                    .is_some_and(|(position, hash)| *position == p.position && hash == &p.hash)
            })
            .count();
        Ok(if found.is_empty() {
            Settled::NotCommitted
        } else if matching == probes.len() {
            Settled::Committed
        } else {
            Settled::Mismatch
        })
    }

    /// An append whose every event is in the log, in its streams and order: what an
    /// earlier attempt of the batch committed. `None` if it is not all there.
    pub(super) async fn find_committed(
        &mut self,
        a: &Prepared,
    ) -> Result<Option<AppendOutcome>, sqlx::Error> {
        let limit = self.limits.read;
        let conn = self.conn().await?;
        let ids: Vec<Uuid> = a
            .streams
            .iter()
            .flat_map(|s| s.events.iter().map(|e| e.event_id))
            .collect();
        let mut sql = String::from(
            "SELECT event_id, position, stream_id, stream_version, recorded_at FROM events \
             WHERE event_id IN (",
        );
        for i in 0..ids.len() {
            sql.push_str(if i == 0 { "?" } else { ",?" });
        }
        sql.push_str(") ORDER BY position");
        let mut query = sqlx::query(&sql);
        for id in &ids {
            query = query.bind(id.as_bytes().as_slice());
        }
        let result = within(limit, query.fetch_all(&mut *conn)).await;
        let rows = self.lose_on_error(result)?;
        if rows.len() != ids.len() {
            return Ok(None);
        }
        let mut streams = Vec::with_capacity(a.streams.len());
        let mut rows = rows.iter();
        let (mut first, mut last, mut at) = (None, 0, None);
        for s in &a.streams {
            let mut written = None;
            for e in &s.events {
                let Some(row) = rows.next() else {
                    return Ok(None);
                };
                let id: Vec<u8> = row.try_get(0)?;
                let stream: Vec<u8> = row.try_get(2)?;
                if id != e.event_id.as_bytes() || stream != s.stream_id.as_str().as_bytes() {
                    return Ok(None);
                }
                let position: u64 = row.try_get(1)?;
                first.get_or_insert(position);
                last = position;
                let recorded: time::PrimitiveDateTime = row.try_get(4)?;
                at = Some(recorded.assume_utc());
                written = Some(WrittenStream {
                    stream_id: s.stream_id.clone(),
                    version: row.try_get(3)?,
                    position,
                });
            }
            match written {
                Some(w) => streams.push(w),
                None => return Ok(None),
            }
        }
        Ok(match (first, at) {
            (Some(first_position), Some(recorded_at)) => Some(AppendOutcome {
                streams,
                first_position,
                last_position: last,
                recorded_at,
            }),
            _ => None,
        })
    }
}

/// [`within`] for the executors that report `(succeeded, error)`.
async fn within_pair(
    limit: Duration,
    f: impl Future<Output = (usize, Option<sqlx::Error>)>,
) -> (usize, Option<sqlx::Error>) {
    match tokio::time::timeout(limit, f).await {
        Ok(result) => result,
        Err(_) => (
            0,
            Some(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no reply from the database within {limit:?}"),
            ))),
        ),
    }
}
