//! `projector verify`: are the live tables what a full replay gives?
//!
//! Two checks from one pass over the log:
//! - the log is applied into `<table>_verify` tables exactly as a rebuild would, and
//!   they are diffed against the live tables row by row, every column;
//! - every stream is folded with `ledger::evolve` (the one fold the command side and the
//!   auditors use too), and each user's status, erasure, sealed profile and balances are
//!   held against the live rows.
//!
//! The live projector may keep running: the comparison happens inside one consistent
//! snapshot (REPEATABLE READ) that sees the live tables at some checkpoint N, and the
//! verify tables are brought to exactly N inside that same transaction (it sees its own
//! writes), so both sides stand at the same position.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use ledger::{LedgerEvent, User, UserId};
use sqlx::mysql::MySqlRow;
use sqlx::{MySqlConnection, Row};
use uuid::Uuid;

use crate::apply::{execute_text, query_text, SourceEvent};
use crate::checkpoint::{read_checkpoint, Projection};
use crate::error::Error;
use crate::rebuild::{drop_tables, exclusive, Commit, Shadow};
use read_model::columns;
use read_model::{TableName, TableSet};

/// Differences listed per table at most.
const MAX_LISTED: u32 = 100;

/// What verify found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// The checkpoint both sides were compared at.
    pub position: u64,
    /// Events replayed.
    pub events: u64,
    /// Users folded with `ledger::evolve`.
    pub users: u64,
    pub differences: Vec<Difference>,
}

impl VerifyReport {
    pub fn is_clean(&self) -> bool {
        self.differences.is_empty()
    }
}

/// One row where the live tables and the replay disagree.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Difference {
    /// The live table.
    pub table: String,
    /// The row's key, `column=value` pairs.
    pub key: String,
    /// What differs.
    pub detail: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} [{}]: {}", self.table, self.key, self.detail)
    }
}

pub(crate) async fn verify(projection: &Projection) -> Result<VerifyReport, Error> {
    let mut conn = exclusive(&projection.pool, "verify").await?;
    let parked = projection
        .parked()
        .await
        .map_err(Error::db("reading parked positions"))?;
    // Its tables keep no secondary indexes: the diff joins on primary keys only.
    let mut shadow = Shadow::create(
        &projection.pool,
        &mut conn,
        TableSet::verify(),
        &projection.name,
        parked,
    )
    .await?;
    let result = compare(projection, &mut conn, &mut shadow).await;
    let _ = execute_text(&mut conn, "ROLLBACK").await;
    let _ = drop_tables(&mut conn, &shadow.tables).await;
    result
}

async fn compare(
    projection: &Projection,
    conn: &mut MySqlConnection,
    shadow: &mut Shadow,
) -> Result<VerifyReport, Error> {
    let live = TableSet::live();
    let mut users: HashMap<UserId, User> = HashMap::new();
    let mut fold = |_: &SourceEvent, event: &LedgerEvent| {
        let user = users.entry(event.user_id()).or_default();
        *user = ledger::evolve(std::mem::take(user), event);
    };

    // Most of the log outside the snapshot, in committed pages ...
    let first = projection
        .checkpoint()
        .await
        .map_err(Error::db("reading the checkpoint"))?;
    shadow
        .fill(
            &projection.store,
            first,
            conn,
            Commit::PerPage,
            &mut fold,
            &mut |_| {},
        )
        .await?;

    // ... the rest inside it, up to the checkpoint the snapshot sees.
    execute_text(
        conn,
        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ; \
         START TRANSACTION WITH CONSISTENT SNAPSHOT",
    )
    .await
    .map_err(Error::db("opening a consistent snapshot"))?;
    let position = read_checkpoint(conn, &live, &projection.name)
        .await
        .map_err(Error::db("reading the checkpoint in the snapshot"))?;
    if position < shadow.position {
        return Err(Error::CheckpointMovedBack {
            from: shadow.position,
            to: position,
        });
    }
    shadow
        .fill(
            &projection.store,
            position,
            conn,
            Commit::Caller,
            &mut fold,
            &mut |_| {},
        )
        .await?;

    let mut differences = Vec::new();
    for spec in &SPECS {
        differences.extend(diff_table(conn, spec, &live, &shadow.tables).await?);
    }
    differences.extend(against_replay(conn, &live, &users).await?);
    differences.sort();
    Ok(VerifyReport {
        position,
        events: shadow.events,
        users: users.len() as u64,
        differences,
    })
}

/// How a column is shown.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Id,
    Plain,
    /// Ciphertext of personal data: compared, shown only by its length.
    Sealed,
}

struct Spec {
    table: fn(&TableSet) -> &TableName,
    keys: &'static [(&'static str, Kind)],
    values: &'static [(&'static str, Kind)],
}

const SPECS: [Spec; 3] = [
    Spec {
        table: |t| &t.users,
        keys: &[("user_id", Kind::Id)],
        values: &[
            ("email_ciphertext", Kind::Sealed),
            ("display_name_ciphertext", Kind::Sealed),
            ("status", Kind::Plain),
            ("erased", Kind::Plain),
            ("version", Kind::Plain),
            ("created_at", Kind::Plain),
            ("updated_at", Kind::Plain),
            ("position", Kind::Plain),
        ],
    },
    Spec {
        table: |t| &t.balances,
        keys: &[("user_id", Kind::Id), ("currency", Kind::Plain)],
        values: &[("amount", Kind::Plain), ("position", Kind::Plain)],
    },
    Spec {
        table: |t| &t.transactions,
        keys: &[("transaction_id", Kind::Id)],
        values: &[
            ("type", Kind::Plain),
            ("user_id", Kind::Id),
            ("from_user_id", Kind::Id),
            ("to_user_id", Kind::Id),
            ("amount", Kind::Plain),
            ("currency", Kind::Plain),
            ("position", Kind::Plain),
            ("recorded_at", Kind::Plain),
        ],
    },
];

fn shown(alias: &str, (column, kind): &(&str, Kind)) -> String {
    match kind {
        Kind::Id => format!("LOWER(HEX({alias}.`{column}`))"),
        Kind::Plain | Kind::Sealed => format!("CAST({alias}.`{column}` AS CHAR)"),
    }
}

/// Rows that differ in any column, rows only the live table has, rows it lacks.
async fn diff_table(
    conn: &mut MySqlConnection,
    spec: &Spec,
    live: &TableSet,
    rebuilt: &TableSet,
) -> Result<Vec<Difference>, Error> {
    let (l, s) = ((spec.table)(live), (spec.table)(rebuilt));
    let list = |alias: &str, cols: &[(&str, Kind)]| -> String {
        cols.iter()
            .map(|c| shown(alias, c))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let nulls = vec!["NULL"; spec.values.len()].join(", ");
    let on = spec
        .keys
        .iter()
        .map(|(c, _)| format!("l.`{c}` = s.`{c}`"))
        .collect::<Vec<_>>()
        .join(" AND ");
    let same = spec
        .values
        .iter()
        .map(|(c, _)| format!("BINARY l.`{c}` <=> BINARY s.`{c}`"))
        .collect::<Vec<_>>()
        .join(" AND ");
    let k0 = spec.keys[0].0;
    let (lk, lv, sk, sv) = (
        list("l", spec.keys),
        list("l", spec.values),
        list("s", spec.keys),
        list("s", spec.values),
    );
    let sql = format!(
        "SELECT 'differs', {lk}, {lv}, {sv} FROM `{l}` l JOIN `{s}` s ON {on} WHERE NOT ({same}) \
         UNION ALL \
         SELECT 'only in the live table', {lk}, {lv}, {nulls} FROM `{l}` l \
           LEFT JOIN `{s}` s ON {on} WHERE s.`{k0}` IS NULL \
         UNION ALL \
         SELECT 'missing from the live table', {sk}, {nulls}, {sv} FROM `{s}` s \
           LEFT JOIN `{l}` l ON {on} WHERE l.`{k0}` IS NULL \
         LIMIT {MAX_LISTED}"
    );
    let rows = query_text(conn, &sql)
        .await
        .map_err(Error::db("diffing a table against its rebuild"))?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let cell = |i: usize| -> Result<Option<String>, Error> {
            row.try_get::<Option<Vec<u8>>, _>(i)
                .map(|v| v.map(|b| String::from_utf8_lossy(&b).into_owned()))
                .map_err(Error::db("reading a diff row"))
        };
        let what = cell(0)?.unwrap_or_default();
        let mut key = Vec::new();
        for (i, col) in spec.keys.iter().enumerate() {
            key.push(format!("{}={}", col.0, display(cell(1 + i)?, col.1)));
        }
        let first_value = 1 + spec.keys.len();
        let mut detail = Vec::new();
        for (i, col) in spec.values.iter().enumerate() {
            let live_raw = cell(first_value + i)?;
            let rebuilt_raw = cell(first_value + spec.values.len() + i)?;
            let differs = live_raw != rebuilt_raw;
            let (live_value, rebuilt_value) =
                (display(live_raw, col.1), display(rebuilt_raw, col.1));
            match what.as_str() {
                "differs" if differs => {
                    detail.push(format!(
                        "{}: live {live_value}, rebuilt {rebuilt_value}",
                        col.0
                    ));
                }
                "differs" => {}
                "only in the live table" => detail.push(format!("{}={live_value}", col.0)),
                _ => detail.push(format!("{}={rebuilt_value}", col.0)),
            }
        }
        let detail = match what.as_str() {
            "differs" => detail.join("; "),
            other => format!("row {other} ({})", detail.join(", ")),
        };
        out.push(Difference {
            table: l.to_string(),
            key: key.join(", "),
            detail,
        });
    }
    Ok(out)
}

fn display(value: Option<String>, kind: Kind) -> String {
    match (value, kind) {
        (None, _) => "NULL".into(),
        (Some(hex), Kind::Id) => Uuid::try_parse(&hex).map_or(hex, |id| id.to_string()),
        (Some(v), Kind::Plain) => v,
        (Some(v), Kind::Sealed) => format!("<{} bytes of ciphertext>", v.len()),
    }
}

/// Each folded user against the live rows: status, erasure, sealed e-mail and name,
/// every balance.
async fn against_replay(
    conn: &mut MySqlConnection,
    live: &TableSet,
    users: &HashMap<UserId, User>,
) -> Result<Vec<Difference>, Error> {
    let mut out = Vec::new();
    let sql = format!(
        "SELECT user_id, status, erased, email_ciphertext, display_name_ciphertext FROM `{}`",
        live.users
    );
    let rows = query_text(conn, &sql)
        .await
        .map_err(Error::db("reading users for the replay check"))?;
    let mut live_users = HashMap::with_capacity(rows.len());
    for row in &rows {
        let (id, user) = live_user(row).map_err(Error::db("reading a user row"))?;
        live_users.insert(id, user);
    }
    let sql = format!("SELECT user_id, currency, amount FROM `{}`", live.balances);
    let rows = query_text(conn, &sql)
        .await
        .map_err(Error::db("reading balances for the replay check"))?;
    let mut live_balances: BTreeMap<(Uuid, String), i64> = BTreeMap::new();
    for row in &rows {
        let key = (
            columns::uuid(row, 0).map_err(Error::db("reading a balance row"))?,
            columns::text(row, 1).map_err(Error::db("reading a balance row"))?,
        );
        let amount: i64 = row.try_get(2).map_err(Error::db("reading a balance row"))?;
        live_balances.insert(key, amount);
    }

    let difference = |table: &TableName, key: String, detail: String| Difference {
        table: format!("{table} (against ledger::replay)"),
        key,
        detail,
    };
    for (id, user) in users {
        let uuid = id.as_uuid();
        let key = format!("user_id={id}");
        match (user.is_registered(), live_users.remove(&uuid)) {
            (true, Some(row)) => {
                let replayed = LiveUser {
                    status: user.status().as_str().to_owned(),
                    erased: user.is_erased(),
                    email: user.email().map(|s| s.ciphertext().to_owned()),
                    display_name: user.display_name().map(|s| s.ciphertext().to_owned()),
                };
                for (field, live_value, replay_value) in row.compare(&replayed) {
                    out.push(difference(
                        &live.users,
                        key.clone(),
                        format!("{field}: live {live_value}, replay {replay_value}"),
                    ));
                }
            }
            (true, None) => out.push(difference(
                &live.users,
                key.clone(),
                format!(
                    "replay has a {} user, the live table none",
                    user.status().as_str()
                ),
            )),
            (false, Some(_)) => out.push(difference(
                &live.users,
                key.clone(),
                "the live table has a user the replay never registered".into(),
            )),
            (false, None) => {}
        }
        for (currency, balance) in user.balances().iter() {
            let live_amount = live_balances.remove(&(uuid, currency.as_str().to_owned()));
            if live_amount != Some(balance.minor_units()) {
                out.push(difference(
                    &live.balances,
                    format!("user_id={id}, currency={currency}"),
                    format!(
                        "amount: live {}, replay {}",
                        live_amount.map_or("none".into(), |a| a.to_string()),
                        balance.minor_units()
                    ),
                ));
            }
        }
    }
    for id in live_users.keys() {
        out.push(difference(
            &live.users,
            format!("user_id={id}"),
            "the live table has a user whose stream has no events".into(),
        ));
    }
    for ((id, currency), amount) in live_balances {
        out.push(difference(
            &live.balances,
            format!("user_id={id}, currency={currency}"),
            format!("amount: live {amount}, replay none"),
        ));
    }
    Ok(out)
}

/// The fields of a user the replay check compares.
#[derive(Debug, PartialEq, Eq)]
struct LiveUser {
    status: String,
    erased: bool,
    email: Option<String>,
    display_name: Option<String>,
}

impl LiveUser {
    /// `(field, live, replay)` for each field that differs. Ciphertexts are not shown:
    /// they are personal data, sealed or not.
    fn compare(&self, replay: &LiveUser) -> Vec<(&'static str, String, String)> {
        let sealed = |v: &Option<String>| match v {
            Some(c) => format!("<{} bytes of ciphertext>", c.len()),
            None => "NULL".into(),
        };
        let mut out = Vec::new();
        if self.status != replay.status {
            out.push(("status", self.status.clone(), replay.status.clone()));
        }
        if self.erased != replay.erased {
            out.push(("erased", self.erased.to_string(), replay.erased.to_string()));
        }
        if self.email != replay.email {
            out.push((
                "email_ciphertext",
                sealed(&self.email),
                sealed(&replay.email),
            ));
        }
        if self.display_name != replay.display_name {
            out.push((
                "display_name_ciphertext",
                sealed(&self.display_name),
                sealed(&replay.display_name),
            ));
        }
        out
    }
}

fn live_user(row: &MySqlRow) -> Result<(Uuid, LiveUser), sqlx::Error> {
    Ok((
        columns::uuid(row, 0)?,
        LiveUser {
            status: columns::text(row, 1)?,
            erased: row.try_get(2)?,
            email: columns::optional_text(row, 3)?,
            display_name: columns::optional_text(row, 4)?,
        },
    ))
}
