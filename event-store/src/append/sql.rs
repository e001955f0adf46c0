//! The SQL of a batch: planned event rows, their rendering as a prepared statement or as
//! hex-literal text for a multi-statement round trip, and the few reads the batcher makes.

use std::collections::HashMap;

use futures_util::StreamExt;
use sqlx::mysql::MySqlConnection;
use sqlx::{Either, Row};
use time::OffsetDateTime;

use super::prepare::{Prepared, PreparedClaim, PreparedEvent};
use super::Head;
use crate::chain::{micros, Canonical, Hash};
use crate::literal;
use crate::stream::StreamId;

pub(super) const INSERT_EVENTS: &str =
    "INSERT INTO events (position, prev_position, event_id, stream_id, \
    stream_version, prev_stream_version, event_type, schema_version, data, metadata, \
    recorded_at, prev_hash, hash) VALUES ";

/// One event row, planned: position, version and hashes fixed.
pub(super) struct EventRow<'a> {
    pub(super) position: u64,
    pub(super) event: &'a PreparedEvent,
    pub(super) stream_id: &'a str,
    pub(super) version: u64,
    pub(super) recorded_at: OffsetDateTime,
    pub(super) prev_hash: Hash,
    pub(super) hash: Hash,
}

/// What one statement of a round is.
pub(super) enum Stmt<'a> {
    Text(String),
    Rows(Vec<EventRow<'a>>),
    /// A claim made or released, with the append's last position and time.
    Claim(&'a PreparedClaim, u64, OffsetDateTime),
}

/// The statements as one multi-statement text, wrapped in `BEGIN` (unless a transaction
/// is open already) and `COMMIT`.
pub(super) fn render_round(stmts: &[Stmt<'_>], open_tx: bool) -> String {
    let mut sql = String::new();
    if !open_tx {
        sql.push_str("BEGIN;");
    }
    for stmt in stmts {
        match stmt {
            Stmt::Text(t) => sql.push_str(t),
            Stmt::Rows(rows) => render_rows(&mut sql, rows),
            Stmt::Claim(c, position, at) => render_claim(&mut sql, c, *position, *at),
        }
        sql.push(';');
    }
    sql.push_str("COMMIT");
    sql
}

/// Plans `a`'s rows after `cursor`, moving it; pushes each stream's last position.
pub(super) fn plan_rows<'a>(
    rows: &mut Vec<EventRow<'a>>,
    a: &'a Prepared,
    versions: &[u64],
    cursor: &mut Head,
    recorded_at: OffsetDateTime,
    positions: &mut Vec<u64>,
) {
    let at = micros(recorded_at);
    for (s, last_version) in a.streams.iter().zip(versions) {
        let start = last_version - s.events.len() as u64;
        for (k, e) in s.events.iter().enumerate() {
            let position = cursor.position + 1;
            let version = start + k as u64 + 1;
            let hash = Canonical {
                position,
                event_id: e.event_id,
                stream_id: s.stream_id.as_str(),
                stream_version: version,
                event_type: e.event_type.as_str(),
                schema_version: e.schema_version,
                data: &e.data,
                metadata: &e.metadata,
                recorded_at_micros: at,
            }
            .hash(&cursor.hash);
            rows.push(EventRow {
                position,
                event: e,
                stream_id: s.stream_id.as_str(),
                version,
                recorded_at,
                prev_hash: cursor.hash,
                hash,
            });
            *cursor = Head {
                position,
                hash,
                recorded_at,
            };
        }
        positions.push(cursor.position);
    }
}

/// `INSERT … VALUES …` for the rows, as SQL text (for a multi-statement round trip).
fn render_rows(sql: &mut String, rows: &[EventRow<'_>]) {
    sql.push_str(INSERT_EVENTS);
    for (n, r) in rows.iter().enumerate() {
        if n > 0 {
            sql.push(',');
        }
        sql.push('(');
        literal::uint(sql, r.position);
        sql.push(',');
        match r.position {
            1 => sql.push_str("NULL"),
            p => literal::uint(sql, p - 1),
        }
        sql.push(',');
        literal::bytes(sql, r.event.event_id.as_bytes());
        sql.push(',');
        literal::text(sql, r.stream_id);
        sql.push(',');
        literal::uint(sql, r.version);
        sql.push(',');
        match r.version {
            1 => sql.push_str("NULL"),
            v => literal::uint(sql, v - 1),
        }
        sql.push(',');
        literal::text(sql, r.event.event_type.as_str());
        sql.push(',');
        literal::uint(sql, u64::from(r.event.schema_version));
        sql.push(',');
        literal::text(sql, &r.event.data);
        sql.push(',');
        literal::text(sql, &r.event.metadata);
        sql.push(',');
        literal::datetime(sql, r.recorded_at);
        sql.push(',');
        literal::bytes(sql, &r.prev_hash);
        sql.push(',');
        literal::bytes(sql, &r.hash);
        sql.push(')');
    }
}

/// The rows as one prepared multi-row INSERT (binary protocol, autocommit). Returns
/// like [`exec_multi`]: one statement, succeeded or not.
pub(super) async fn exec_prepared(
    conn: &mut MySqlConnection,
    rows: &[EventRow<'_>],
) -> (usize, Option<sqlx::Error>) {
    let mut sql = String::from(INSERT_EVENTS);
    for n in 0..rows.len() {
        sql.push_str(if n == 0 { "" } else { "," });
        sql.push_str("(?,?,?,?,?,?,?,?,?,?,?,?,?)");
    }
    let mut query = sqlx::query(&sql);
    for r in rows {
        let utc = r.recorded_at.to_offset(time::UtcOffset::UTC);
        query = query
            .bind(r.position)
            .bind((r.position > 1).then(|| r.position - 1))
            .bind(r.event.event_id.as_bytes().as_slice())
            .bind(r.stream_id)
            .bind(r.version)
            .bind((r.version > 1).then(|| r.version - 1))
            .bind(r.event.event_type.as_str())
            .bind(r.event.schema_version)
            .bind(r.event.data.as_str())
            .bind(r.event.metadata.as_str())
            .bind(time::PrimitiveDateTime::new(utc.date(), utc.time()))
            .bind(r.prev_hash.as_slice())
            .bind(r.hash.as_slice());
    }
    match query.execute(&mut *conn).await {
        Ok(_) => (1, None),
        Err(e) => (0, Some(e)),
    }
}

fn render_claim(sql: &mut String, c: &PreparedClaim, position: u64, at: OffsetDateTime) {
    match c {
        PreparedClaim::Claim {
            scope,
            key,
            payload,
        } => {
            sql.push_str(
                "INSERT INTO claims (scope, claim_key, payload, position, claimed_at) VALUES (",
            );
            literal::text(sql, scope);
            sql.push(',');
            literal::bytes(sql, key);
            sql.push(',');
            literal::text(sql, payload);
            sql.push(',');
            literal::uint(sql, position);
            sql.push(',');
            literal::datetime(sql, at);
            sql.push(')');
        }
        PreparedClaim::Release { scope, key } => {
            sql.push_str("DELETE FROM claims WHERE scope = ");
            literal::text(sql, scope);
            sql.push_str(" AND claim_key = ");
            literal::bytes(sql, key);
        }
    }
}

/// Runs a multi-statement query; returns how many statements succeeded and the error of
/// the one that failed (MariaDB runs none after it).
pub(super) async fn exec_multi(
    conn: &mut MySqlConnection,
    sql: &str,
) -> (usize, Option<sqlx::Error>) {
    let mut results = sqlx::Executor::fetch_many(&mut *conn, sql);
    let mut ok = 0;
    while let Some(item) = results.next().await {
        match item {
            Ok(Either::Left(_)) => ok += 1,
            Ok(Either::Right(_)) => {}
            Err(e) => return (ok, Some(e)),
        }
    }
    (ok, None)
}

/// Reads the head with a lock that holds appenders of other processes back until this
/// transaction ends. Opens the transaction when `begin` is set.
pub(super) async fn read_head(
    conn: &mut MySqlConnection,
    begin: bool,
) -> Result<Head, sqlx::Error> {
    if begin {
        sqlx::Executor::execute(&mut *conn, "BEGIN").await?;
    }
    let row = sqlx::query(
        "SELECT position, hash, recorded_at FROM events ORDER BY position DESC LIMIT 1 FOR UPDATE",
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(Head::genesis());
    };
    let hash: Vec<u8> = row.try_get(1)?;
    let recorded_at: time::PrimitiveDateTime = row.try_get(2)?;
    Ok(Head {
        position: row.try_get(0)?,
        hash: hash
            .try_into()
            .map_err(|_| sqlx::Error::Decode("hash is not 32 bytes".into()))?,
        recorded_at: recorded_at.assume_utc(),
    })
}

pub(crate) async fn stream_versions(
    conn: &mut MySqlConnection,
    ids: &[&StreamId],
) -> Result<HashMap<StreamId, u64>, sqlx::Error> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(500) {
        let mut q =
            String::from("SELECT stream_id, MAX(stream_version) FROM events WHERE stream_id IN (");
        for (i, _) in chunk.iter().enumerate() {
            q.push_str(if i == 0 { "?" } else { ",?" });
        }
        q.push_str(") GROUP BY stream_id");
        let mut query = sqlx::query_as::<_, (Vec<u8>, u64)>(&q);
        for id in chunk {
            query = query.bind(id.as_str());
        }
        for (id, v) in query.fetch_all(&mut *conn).await? {
            if let Some(id) = String::from_utf8(id)
                .ok()
                .and_then(|s| StreamId::parse(s).ok())
            {
                out.insert(id, v);
            }
        }
    }
    Ok(out)
}
