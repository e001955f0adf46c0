//! How one event changes the read tables.
//!
//! [`Rows`] holds the rows a batch may change: in the live projector, the rows of the
//! users a batch touches, loaded inside the batch's transaction; in a rebuild or verify,
//! every row, since that process wrote them all. Decoded events are applied in position
//! order, in memory, and the changed rows leave as a few multi-row upserts.
//!
//! The rows follow `ledger::evolve` field for field, and balances change only through
//! `ledger::evolve_balance`, the fold's own rule for money, so
//! `projector verify` can hold them against `ledger::replay` of every stream.

use std::collections::{HashMap, HashSet};
use std::fmt::Write;

use event_store::RecordedEvent;
use ledger::{Balance, LedgerEvent, UserId};
use sqlx::mysql::MySqlRow;
use sqlx::{MySqlConnection, Row};
use time::OffsetDateTime;
use uuid::Uuid;

use read_model::columns::{self, corrupt};
use read_model::{literal, TableSet};

/// An event to apply, as the log holds it: never a message's copy (ADR 0014).
#[derive(Debug, Clone)]
pub(crate) struct SourceEvent {
    pub position: u64,
    pub event_id: Uuid,
    pub stream_id: String,
    pub stream_version: u64,
    pub event_type: String,
    pub schema_version: u32,
    pub recorded_at: OffsetDateTime,
    /// The JSON text the log stores.
    pub data: String,
}

impl From<RecordedEvent> for SourceEvent {
    fn from(e: RecordedEvent) -> Self {
        Self {
            position: e.position,
            event_id: e.event_id,
            stream_id: e.stream_id.as_str().to_owned(),
            stream_version: e.stream_version,
            event_type: e.event_type.as_str().to_owned(),
            schema_version: e.schema_version,
            recorded_at: e.recorded_at,
            data: e.data,
        }
    }
}

/// Why an event cannot be applied: a poison event. Never bad luck: stored bytes that
/// are not a ledger event, or an event on someone else's stream.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApplyError {
    #[error(transparent)]
    Decode(#[from] ledger::DecodeError),
    #[error("stream {stream_id} is not a user stream")]
    NotAUserStream { stream_id: String },
    #[error("the event names user {named} but lies on stream {stream_id}")]
    WrongStream { named: UserId, stream_id: String },
}

impl SourceEvent {
    /// The ledger event, checked to belong to the stream it lies on.
    pub fn decode(&self) -> Result<LedgerEvent, ApplyError> {
        let event = ledger::decode(&self.event_type, self.schema_version, &self.data)?;
        let owner = self.owner()?;
        if event.user_id() != owner {
            return Err(ApplyError::WrongStream {
                named: event.user_id(),
                stream_id: self.stream_id.clone(),
            });
        }
        Ok(event)
    }

    /// The user whose stream holds the event.
    pub fn owner(&self) -> Result<UserId, ApplyError> {
        UserId::from_stream_id(&self.stream_id).ok_or_else(|| ApplyError::NotAUserStream {
            stream_id: self.stream_id.clone(),
        })
    }
}

/// A `users_view` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UserRow {
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub status: &'static str,
    pub erased: bool,
    pub version: u64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub position: u64,
}

/// A `balances_view` row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BalanceRow {
    pub amount: Balance,
    pub position: u64,
}

/// A `transactions_view` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TransactionRow {
    pub id: Uuid,
    pub kind: &'static str,
    pub user_id: Option<Uuid>,
    pub from_user_id: Option<Uuid>,
    pub to_user_id: Option<Uuid>,
    pub amount: i64,
    pub currency: [u8; 3],
    pub position: u64,
    pub recorded_at: OffsetDateTime,
}

/// A currency as its three ASCII capitals.
type Code = [u8; 3];

fn code(currency: ledger::Currency) -> Code {
    let mut out = [b'?'; 3];
    for (slot, b) in out.iter_mut().zip(currency.as_str().bytes()) {
        *slot = b;
    }
    out
}

/// The rows a batch may change, and which of them it did.
#[derive(Debug, Default)]
pub(crate) struct Rows {
    users: HashMap<Uuid, UserRow>,
    balances: HashMap<(Uuid, Code), BalanceRow>,
    changed_users: HashSet<Uuid>,
    changed_balances: HashSet<(Uuid, Code)>,
    /// New transaction rows since the last write, in position order.
    transactions: Vec<TransactionRow>,
    transactions_seen: HashSet<Uuid>,
}

/// Rows per INSERT statement: large enough to amortise parsing, small enough for the
/// server's packet limit (a user row is at most a few kilobytes of hex).
const ROWS_PER_STATEMENT: usize = 1_000;

impl Rows {
    /// An empty set, for a rebuild into empty tables: a row it does not hold does not
    /// exist.
    pub fn new() -> Self {
        Self::default()
    }

    /// The rows of `users` (their user row and every balance) as the tables hold them.
    /// Run inside the batch's transaction, after the checkpoint lock, so nobody else
    /// changes them before the batch commits.
    pub async fn load(
        conn: &mut MySqlConnection,
        tables: &TableSet,
        users: &HashSet<Uuid>,
    ) -> Result<Self, sqlx::Error> {
        let mut rows = Self::new();
        if users.is_empty() {
            return Ok(rows);
        }
        let mut ids = String::new();
        for (i, id) in users.iter().enumerate() {
            if i > 0 {
                ids.push(',');
            }
            literal::uuid(&mut ids, *id);
        }
        let sql = format!(
            "SELECT user_id, email_ciphertext, display_name_ciphertext, status, erased, \
             version, created_at, updated_at, position FROM `{}` WHERE user_id IN ({ids})",
            tables.users
        );
        for row in query_text(&mut *conn, &sql).await? {
            let (id, user) = user_row(&row)?;
            rows.users.insert(id, user);
        }
        let sql = format!(
            "SELECT user_id, currency, amount, position FROM `{}` WHERE user_id IN ({ids})",
            tables.balances
        );
        for row in query_text(&mut *conn, &sql).await? {
            let id = columns::uuid(&row, 0)?;
            let currency: Vec<u8> = row.try_get(1)?;
            let currency: Code = currency
                .try_into()
                .map_err(|_| corrupt("balances_view.currency is not three bytes"))?;
            let amount = Balance::from_minor_units(row.try_get(2)?)
                .ok_or_else(|| corrupt("balances_view.amount is outside 0..=Balance::MAX"))?;
            rows.balances.insert(
                (id, currency),
                BalanceRow {
                    amount,
                    position: row.try_get(3)?,
                },
            );
        }
        Ok(rows)
    }

    /// Applies one decoded event, as `ledger::evolve` would to its stream's user.
    pub fn apply(&mut self, source: &SourceEvent, event: &LedgerEvent) {
        let at = source.recorded_at;
        let position = source.position;
        let owner = event.user_id().as_uuid();
        match event {
            LedgerEvent::UserRegistered(e) => {
                let email = Some(e.email_ciphertext.ciphertext().to_owned());
                let display_name = Some(e.display_name_ciphertext.ciphertext().to_owned());
                match self.users.get_mut(&owner) {
                    // evolve keeps `erased` and the rest; a registered user does not
                    // register again, but history is not re-judged.
                    Some(row) => {
                        row.email = email;
                        row.display_name = display_name;
                        row.status = ledger::UserStatus::Active.as_str();
                    }
                    None => {
                        self.users.insert(
                            owner,
                            UserRow {
                                email,
                                display_name,
                                status: ledger::UserStatus::Active.as_str(),
                                erased: false,
                                version: source.stream_version,
                                created_at: at,
                                updated_at: at,
                                position,
                            },
                        );
                    }
                }
            }
            LedgerEvent::ProfileUpdated(e) => {
                if let Some(row) = self.users.get_mut(&owner) {
                    if let Some(email) = &e.email_ciphertext {
                        row.email = Some(email.ciphertext().to_owned());
                    }
                    if let Some(name) = &e.display_name_ciphertext {
                        row.display_name = Some(name.ciphertext().to_owned());
                    }
                }
            }
            LedgerEvent::UserDeactivated(_) => {
                if let Some(row) = self.users.get_mut(&owner) {
                    row.status = ledger::UserStatus::Deactivated.as_str();
                }
            }
            LedgerEvent::PersonalDataErased(_) => {
                if let Some(row) = self.users.get_mut(&owner) {
                    row.erased = true;
                    row.email = None;
                    row.display_name = None;
                }
            }
            LedgerEvent::Deposited(e) => {
                self.move_money(owner, event, position);
                self.transaction(TransactionRow {
                    id: e.transaction_id.as_uuid(),
                    kind: "deposit",
                    user_id: Some(owner),
                    from_user_id: None,
                    to_user_id: None,
                    amount: e.amount.minor_units(),
                    currency: code(e.currency),
                    position,
                    recorded_at: at,
                });
            }
            LedgerEvent::Withdrawn(e) => {
                self.move_money(owner, event, position);
                self.transaction(TransactionRow {
                    id: e.transaction_id.as_uuid(),
                    kind: "withdrawal",
                    user_id: Some(owner),
                    from_user_id: None,
                    to_user_id: None,
                    amount: e.amount.minor_units(),
                    currency: code(e.currency),
                    position,
                    recorded_at: at,
                });
            }
            LedgerEvent::Transferred(e) => {
                let amount = e.amount.minor_units();
                self.move_money(owner, event, position);
                // Either half carries the whole transfer: the first one seen makes the
                // row, the second finds it there (`position` stays the first's).
                self.transaction(TransactionRow {
                    id: e.transaction_id.as_uuid(),
                    kind: "transfer",
                    user_id: None,
                    from_user_id: Some(e.from_user_id.as_uuid()),
                    to_user_id: Some(e.to_user_id.as_uuid()),
                    amount,
                    currency: code(e.currency),
                    position,
                    recorded_at: at,
                });
            }
        }
        // Every event is a new version of its stream, money included: the version is
        // what a client sends back in `If-Match`.
        if let Some(row) = self.users.get_mut(&owner) {
            row.version = source.stream_version;
            row.updated_at = at;
            row.position = position;
            self.changed_users.insert(owner);
        }
    }

    /// The balance `event` moves, by `ledger::evolve_balance`: the one rule for money.
    fn move_money(&mut self, user: Uuid, event: &LedgerEvent, position: u64) {
        let Some(currency) = event.currency_moved() else {
            return;
        };
        let row = self
            .balances
            .entry((user, code(currency)))
            .or_insert(BalanceRow {
                amount: Balance::ZERO,
                position,
            });
        row.amount = ledger::evolve_balance(row.amount, event);
        row.position = position;
        self.changed_balances.insert((user, code(currency)));
    }

    fn transaction(&mut self, row: TransactionRow) {
        if self.transactions_seen.insert(row.id) {
            self.transactions.push(row);
        }
    }

    /// The upserts that write every changed row to `tables`, and forgets what changed
    /// (the rows themselves stay, for the next page of a rebuild).
    pub fn take_writes(&mut self, tables: &TableSet) -> Vec<String> {
        let mut statements = Vec::new();

        let mut users: Vec<Uuid> = self.changed_users.drain().collect();
        users.sort_unstable();
        for chunk in users.chunks(ROWS_PER_STATEMENT) {
            let mut sql = String::with_capacity(chunk.len() * 400);
            sql.push_str("INSERT INTO ");
            let _ = write!(sql, "`{}`", tables.users);
            sql.push_str(
                " (user_id, email_ciphertext, display_name_ciphertext, status, erased, \
                 version, created_at, updated_at, position) VALUES ",
            );
            let rows = chunk
                .iter()
                .filter_map(|id| self.users.get(id).map(|row| (id, row)));
            for (i, (id, row)) in rows.enumerate() {
                if i > 0 {
                    sql.push(',');
                }
                sql.push('(');
                literal::uuid(&mut sql, *id);
                sql.push(',');
                literal::opt_text(&mut sql, row.email.as_deref());
                sql.push(',');
                literal::opt_text(&mut sql, row.display_name.as_deref());
                sql.push(',');
                literal::text(&mut sql, row.status);
                sql.push(',');
                literal::boolean(&mut sql, row.erased);
                sql.push(',');
                literal::uint(&mut sql, row.version);
                sql.push(',');
                literal::datetime(&mut sql, row.created_at);
                sql.push(',');
                literal::datetime(&mut sql, row.updated_at);
                sql.push(',');
                literal::uint(&mut sql, row.position);
                sql.push(')');
            }
            sql.push_str(
                " ON DUPLICATE KEY UPDATE email_ciphertext = VALUES(email_ciphertext), \
                 display_name_ciphertext = VALUES(display_name_ciphertext), \
                 status = VALUES(status), erased = VALUES(erased), version = VALUES(version), \
                 created_at = VALUES(created_at), updated_at = VALUES(updated_at), \
                 position = VALUES(position)",
            );
            statements.push(sql);
        }

        let mut balances: Vec<(Uuid, Code)> = self.changed_balances.drain().collect();
        balances.sort_unstable();
        for chunk in balances.chunks(ROWS_PER_STATEMENT) {
            let mut sql = String::with_capacity(chunk.len() * 80);
            sql.push_str("INSERT INTO ");
            let _ = write!(sql, "`{}`", tables.balances);
            sql.push_str(" (user_id, currency, amount, position) VALUES ");
            let rows = chunk
                .iter()
                .filter_map(|key| self.balances.get(key).map(|row| (key, row)));
            for (i, (key, row)) in rows.enumerate() {
                if i > 0 {
                    sql.push(',');
                }
                sql.push('(');
                literal::uuid(&mut sql, key.0);
                sql.push(',');
                literal::text(&mut sql, &String::from_utf8_lossy(&key.1));
                sql.push(',');
                literal::int(&mut sql, row.amount.minor_units());
                sql.push(',');
                literal::uint(&mut sql, row.position);
                sql.push(')');
            }
            sql.push_str(
                " ON DUPLICATE KEY UPDATE amount = VALUES(amount), position = VALUES(position)",
            );
            statements.push(sql);
        }

        statements.extend(self.take_transaction_writes(tables));
        statements
    }

    /// Only the new transaction rows, for a rebuild that writes them page by page and
    /// the (much fewer) user and balance rows once at the end.
    pub fn take_transaction_writes(&mut self, tables: &TableSet) -> Vec<String> {
        let mut statements = Vec::new();
        let transactions = std::mem::take(&mut self.transactions);
        self.transactions_seen.clear();
        for chunk in transactions.chunks(ROWS_PER_STATEMENT) {
            let mut sql = String::with_capacity(chunk.len() * 200);
            sql.push_str("INSERT INTO ");
            let _ = write!(sql, "`{}`", tables.transactions);
            sql.push_str(
                " (transaction_id, type, user_id, from_user_id, to_user_id, amount, currency, \
                 position, recorded_at) VALUES ",
            );
            for (i, row) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push(',');
                }
                sql.push('(');
                literal::uuid(&mut sql, row.id);
                sql.push(',');
                literal::text(&mut sql, row.kind);
                sql.push(',');
                literal::opt_uuid(&mut sql, row.user_id);
                sql.push(',');
                literal::opt_uuid(&mut sql, row.from_user_id);
                sql.push(',');
                literal::opt_uuid(&mut sql, row.to_user_id);
                sql.push(',');
                literal::int(&mut sql, row.amount);
                sql.push(',');
                literal::text(&mut sql, &String::from_utf8_lossy(&row.currency));
                sql.push(',');
                literal::uint(&mut sql, row.position);
                sql.push(',');
                literal::datetime(&mut sql, row.recorded_at);
                sql.push(')');
            }
            // The second half of a transfer finds the row: it keeps the first half's
            // position and time (assignments run left to right, so time goes first).
            sql.push_str(
                " ON DUPLICATE KEY UPDATE \
                 recorded_at = IF(VALUES(position) < position, VALUES(recorded_at), recorded_at), \
                 position = LEAST(position, VALUES(position))",
            );
            statements.push(sql);
        }
        statements
    }
}

/// The statement that sets `projection`'s checkpoint in `tables`.
pub(crate) fn checkpoint_write(
    tables: &TableSet,
    projection: &str,
    position: u64,
    now: OffsetDateTime,
) -> String {
    let mut sql = String::with_capacity(200);
    sql.push_str("INSERT INTO ");
    let _ = write!(sql, "`{}`", tables.checkpoints);
    sql.push_str(" (projection, position, updated_at) VALUES (");
    literal::text(&mut sql, projection);
    sql.push(',');
    literal::uint(&mut sql, position);
    sql.push(',');
    literal::datetime(&mut sql, now);
    sql.push_str(
        ") ON DUPLICATE KEY UPDATE position = VALUES(position), updated_at = VALUES(updated_at)",
    );
    sql
}

/// Runs `statements` on `conn`, several per round trip.
pub(crate) async fn execute_all(
    conn: &mut MySqlConnection,
    statements: &[String],
) -> Result<(), sqlx::Error> {
    // A round trip's text stays well under the server's default 16 MiB packet limit.
    const ROUND_TRIP_BYTES: usize = 4 * 1024 * 1024;
    let mut round = String::new();
    for statement in statements {
        if !round.is_empty() && round.len() + statement.len() > ROUND_TRIP_BYTES {
            execute_text(&mut *conn, &round).await?;
            round.clear();
        }
        round.push_str(statement);
        round.push_str(";\n");
    }
    if !round.is_empty() {
        execute_text(&mut *conn, &round).await?;
    }
    Ok(())
}

/// Runs text-protocol SQL: no bind parameters, so several statements may share one
/// round trip. (Through `Executor` rather than `sqlx::raw_sql`, whose future is not
/// `Send` for every lifetime, which a spawned task needs.)
pub(crate) async fn execute_text(conn: &mut MySqlConnection, sql: &str) -> Result<(), sqlx::Error> {
    sqlx::Executor::execute(conn, sql).await.map(|_| ())
}

/// The rows of one text-protocol query.
pub(crate) async fn query_text(
    conn: &mut MySqlConnection,
    sql: &str,
) -> Result<Vec<MySqlRow>, sqlx::Error> {
    sqlx::Executor::fetch_all(conn, sql).await
}

fn user_row(row: &MySqlRow) -> Result<(Uuid, UserRow), sqlx::Error> {
    let status = match columns::text(row, 3)?.as_str() {
        "active" => ledger::UserStatus::Active.as_str(),
        "deactivated" => ledger::UserStatus::Deactivated.as_str(),
        _ => {
            return Err(corrupt(
                "users_view.status is neither active nor deactivated",
            ))
        }
    };
    let created_at: time::PrimitiveDateTime = row.try_get(6)?;
    let updated_at: time::PrimitiveDateTime = row.try_get(7)?;
    Ok((
        columns::uuid(row, 0)?,
        UserRow {
            email: columns::optional_text(row, 1)?,
            display_name: columns::optional_text(row, 2)?,
            status,
            erased: row.try_get(4)?,
            version: row.try_get(5)?,
            created_at: created_at.assume_utc(),
            updated_at: updated_at.assume_utc(),
            position: row.try_get(8)?,
        },
    ))
}
