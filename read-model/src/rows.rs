//! The rows as query-api reads them, and the fixed queries that read them. The fixed
//! queries are `sqlx::query_as!`: checked at build time against the `.sqlx/` data
//! (`cargo xtask sqlx-prepare` refreshes it), so a renamed column fails the build, not a
//! request. The paged lists, whose filters vary, select [`USER_COLUMNS`] or
//! [`TRANSACTION_COLUMNS`] and decode with [`UserRow::decode`] or
//! [`TransactionRow::decode`].

use sqlx::mysql::MySqlRow;
use sqlx::{MySqlConnection, Row};
use time::{OffsetDateTime, PrimitiveDateTime};
use uuid::Uuid;

use crate::columns::{optional_text, text, utc, utf8};

/// The columns [`UserRow::decode`] reads, for `SELECT {USER_COLUMNS} FROM users_view …`.
pub const USER_COLUMNS: &str = "user_id, email_ciphertext, display_name_ciphertext, status, \
    erased, version, created_at, updated_at";

/// The columns [`TransactionRow::decode`] reads.
pub const TRANSACTION_COLUMNS: &str = "transaction_id, type, user_id, from_user_id, to_user_id, \
    amount, currency, position, recorded_at";

/// A `users_view` row; personal data still sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub user_id: Uuid,
    pub email_ciphertext: Option<String>,
    pub display_name_ciphertext: Option<String>,
    /// `active` or `deactivated`.
    pub status: String,
    pub erased: bool,
    /// The user stream's version, what `If-Match` compares.
    pub version: u64,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl UserRow {
    /// A row of `SELECT {USER_COLUMNS} …`.
    pub fn decode(row: &MySqlRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            user_id: row.try_get("user_id")?,
            email_ciphertext: optional_text(row, "email_ciphertext")?,
            display_name_ciphertext: optional_text(row, "display_name_ciphertext")?,
            status: text(row, "status")?,
            erased: row.try_get("erased")?,
            version: row.try_get("version")?,
            created_at: utc(row, "created_at")?,
            updated_at: utc(row, "updated_at")?,
        })
    }
}

/// One user by id; `None` when not projected (yet).
pub async fn select_user(
    conn: &mut MySqlConnection,
    user_id: Uuid,
) -> Result<Option<UserRow>, sqlx::Error> {
    let found = sqlx::query!(
        r#"SELECT user_id AS "user_id: Uuid",
                  email_ciphertext AS "email_ciphertext: Vec<u8>",
                  display_name_ciphertext AS "display_name_ciphertext: Vec<u8>",
                  status AS "status: Vec<u8>",
                  erased AS "erased: bool",
                  version,
                  created_at AS "created_at: PrimitiveDateTime",
                  updated_at AS "updated_at: PrimitiveDateTime"
           FROM users_view WHERE user_id = ?"#,
        user_id
    )
    .fetch_optional(conn)
    .await?;
    found
        .map(|r| {
            Ok(UserRow {
                user_id: r.user_id,
                email_ciphertext: r.email_ciphertext.map(utf8).transpose()?,
                display_name_ciphertext: r.display_name_ciphertext.map(utf8).transpose()?,
                status: utf8(r.status)?,
                erased: r.erased,
                version: r.version,
                created_at: r.created_at.assume_utc(),
                updated_at: r.updated_at.assume_utc(),
            })
        })
        .transpose()
}

/// What a user holds in one currency, in minor units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceEntry {
    pub currency: String,
    pub amount: i64,
    /// The position of the last event that changed it.
    pub position: u64,
}

/// A user's balances in currency order; `None` when the user is not in `users_view`
/// (unknown, or not projected yet), an empty list when it holds nothing.
pub async fn select_balances(
    conn: &mut MySqlConnection,
    user_id: Uuid,
) -> Result<Option<Vec<BalanceEntry>>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"SELECT b.currency AS "currency?: Vec<u8>",
                  b.amount AS "amount?: i64",
                  b.position AS "position?: u64"
           FROM users_view u LEFT JOIN balances_view b ON b.user_id = u.user_id
           WHERE u.user_id = ? ORDER BY b.currency"#,
        user_id
    )
    .fetch_all(conn)
    .await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut balances = Vec::with_capacity(rows.len());
    for row in rows {
        // The one row of a user without balances carries NULLs from the outer join.
        let (Some(currency), Some(amount), Some(position)) =
            (row.currency, row.amount, row.position)
        else {
            continue;
        };
        balances.push(BalanceEntry {
            currency: utf8(currency)?,
            amount,
            position,
        });
    }
    Ok(Some(balances))
}

/// A `transactions_view` row. Deposits and withdrawals name `user_id`, transfers
/// `from_user_id` and `to_user_id`; the others are `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionRow {
    pub transaction_id: Uuid,
    /// `deposit`, `withdrawal` or `transfer`.
    pub kind: String,
    pub user_id: Option<Uuid>,
    pub from_user_id: Option<Uuid>,
    pub to_user_id: Option<Uuid>,
    /// Minor units.
    pub amount: i64,
    pub currency: String,
    /// The log position that recorded it.
    pub position: u64,
    pub recorded_at: OffsetDateTime,
}

impl TransactionRow {
    /// A row of `SELECT {TRANSACTION_COLUMNS} …`.
    pub fn decode(row: &MySqlRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            transaction_id: row.try_get("transaction_id")?,
            kind: text(row, "type")?,
            user_id: row.try_get("user_id")?,
            from_user_id: row.try_get("from_user_id")?,
            to_user_id: row.try_get("to_user_id")?,
            amount: row.try_get("amount")?,
            currency: text(row, "currency")?,
            position: row.try_get("position")?,
            recorded_at: utc(row, "recorded_at")?,
        })
    }
}

/// One transaction by id.
pub async fn select_transaction(
    conn: &mut MySqlConnection,
    transaction_id: Uuid,
) -> Result<Option<TransactionRow>, sqlx::Error> {
    let found = sqlx::query!(
        r#"SELECT transaction_id AS "transaction_id: Uuid",
                  type AS "kind: Vec<u8>",
                  user_id AS "user_id: Uuid",
                  from_user_id AS "from_user_id: Uuid",
                  to_user_id AS "to_user_id: Uuid",
                  amount,
                  currency AS "currency: Vec<u8>",
                  position,
                  recorded_at AS "recorded_at: PrimitiveDateTime"
           FROM transactions_view WHERE transaction_id = ?"#,
        transaction_id
    )
    .fetch_optional(conn)
    .await?;
    found
        .map(|r| {
            Ok(TransactionRow {
                transaction_id: r.transaction_id,
                kind: utf8(r.kind)?,
                user_id: r.user_id,
                from_user_id: r.from_user_id,
                to_user_id: r.to_user_id,
                amount: r.amount,
                currency: utf8(r.currency)?,
                position: r.position,
                recorded_at: r.recorded_at.assume_utc(),
            })
        })
        .transpose()
}
