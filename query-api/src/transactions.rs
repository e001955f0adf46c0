//! `GET /api/v1/transactions?user_id=` and `GET /api/v1/transactions/{id}` over
//! `transactions_view`.
//!
//! Admin, service and auditor see every transaction; a `user` those it is a party to
//! (`user_id`, `from_user_id` or `to_user_id`). A `user` listing without `?user_id=` gets
//! its own; asking for another user's is 403. Transactions never change once recorded,
//! so one may be cached for long (`immutable`); lists revalidate.

use axum::extract::State;
use axum::response::Response;
use ledger::{TransactionId, UserId};
use platform::{Principal, Role};
use read_model::{TransactionRow, TRANSACTIONS, TRANSACTION_COLUMNS};
use serde::Serialize;
use sqlx::MySqlConnection;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::cursor::TransactionCursor;
use crate::error::ApiError;
use crate::params::{IfNoneMatch, MinPosition, Params, TransactionPath};
use crate::reply::{ETag, Meta, IMMUTABLE};
use crate::snapshot;
use crate::state::AppState;
use crate::users::{DEFAULT_LIMIT, MAX_LIMIT};

/// One transaction as API.md shows it. Deposits and withdrawals name `user_id`,
/// transfers `from_user_id` and `to_user_id`; the others are `null`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct TransactionView {
    #[schema(value_type = String, format = "uuid")]
    transaction_id: Uuid,
    /// `deposit`, `withdrawal` or `transfer`.
    #[serde(rename = "type")]
    #[schema(example = "transfer")]
    kind: String,
    #[schema(value_type = Option<String>, format = "uuid")]
    from_user_id: Option<Uuid>,
    #[schema(value_type = Option<String>, format = "uuid")]
    to_user_id: Option<Uuid>,
    #[schema(value_type = Option<String>, format = "uuid")]
    user_id: Option<Uuid>,
    /// Minor units.
    amount: i64,
    #[schema(example = "EUR")]
    currency: String,
    /// The log position that recorded it.
    position: u64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    recorded_at: OffsetDateTime,
}

impl From<TransactionRow> for TransactionView {
    fn from(row: TransactionRow) -> Self {
        Self {
            transaction_id: row.transaction_id,
            kind: row.kind,
            from_user_id: row.from_user_id,
            to_user_id: row.to_user_id,
            user_id: row.user_id,
            amount: row.amount,
            currency: row.currency,
            position: row.position,
            recorded_at: row.recorded_at,
        }
    }
}

impl TransactionView {
    fn involves(&self, user: Uuid) -> bool {
        [self.user_id, self.from_user_id, self.to_user_id].contains(&Some(user))
    }

    fn cursor(&self) -> TransactionCursor {
        TransactionCursor {
            position: self.position,
            transaction_id: self.transaction_id,
        }
    }
}

/// A page of transactions, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TransactionPage {
    items: Vec<TransactionView>,
    /// Pass as `?cursor=` for the next page; `null` on the last page.
    next_cursor: Option<String>,
}

/// Transactions, newest first (by position), optionally of one user.
#[utoipa::path(get, path = "/api/v1/transactions", tag = "transactions",
    params(
        ("user_id" = Option<String>, Query, format = "uuid",
            description = "Only this user's (as depositor, withdrawer, payer or payee); a `user` defaults to itself"),
        ("limit" = Option<u32>, Query, description = "Page size, 1–200 (default 50)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        crate::openapi::ViewHeaders,
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of transactions", body = TransactionPage,
            headers(("X-Projection-Position" = u64), ("ETag" = String))),
        (status = 304, description = "Unchanged since the ETag sent in If-None-Match"),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 422, response = crate::openapi::ValidationFailed),
        (status = 503, response = crate::openapi::Unavailable),
    ))]
#[tracing::instrument(skip_all)]
pub(crate) async fn list_transactions(
    State(state): State<AppState>,
    principal: Principal,
    params: Params,
    MinPosition(min): MinPosition,
    if_none_match: IfNoneMatch,
) -> Result<Response, ApiError> {
    params.allow(&["user_id", "limit", "cursor"])?;
    let party = params.user_id("user_id")?;
    let limit = params.limit(DEFAULT_LIMIT, MAX_LIMIT)?;
    let after = params
        .get("cursor")
        .map(TransactionCursor::decode)
        .transpose()?;
    let party = match party {
        Some(user) if principal.may_view_user(user.as_uuid()) => Some(user),
        Some(_) => return Err(ApiError::Forbidden),
        None if principal.may_view_all() => None,
        None if principal.is(Role::User) => Some(UserId::from_uuid(principal.subject)),
        None => return Err(ApiError::Forbidden),
    };
    let (at, mut items) = snapshot::read(&state, min, move |conn| {
        Box::pin(select_page(conn, party, after, limit.get() + 1))
    })
    .await?;
    let next_cursor = if items.len() > limit.as_usize() {
        items.truncate(limit.as_usize());
        items.last().map(|item| item.cursor().encode())
    } else {
        None
    };
    // Rows never change: their positions name them.
    let etag = ETag::digest(
        items
            .iter()
            .map(|item| item.position.to_string())
            .chain(next_cursor.clone()),
    );
    Ok(Meta::at(at.position)
        .etag(etag)
        .reply(&if_none_match, || TransactionPage { items, next_cursor }))
}

/// One transaction.
#[utoipa::path(get, path = "/api/v1/transactions/{id}", tag = "transactions",
    params(("id" = String, Path, format = "uuid", description = "The transaction's id"), crate::openapi::ViewHeaders),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The transaction", body = TransactionView,
            headers(("X-Projection-Position" = u64), ("ETag" = String))),
        (status = 304, description = "Unchanged since the ETag sent in If-None-Match"),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 422, response = crate::openapi::ValidationFailed),
        (status = 503, response = crate::openapi::Unavailable),
    ))]
#[tracing::instrument(skip_all, fields(transaction_id = %id))]
pub(crate) async fn get_transaction(
    State(state): State<AppState>,
    principal: Principal,
    TransactionPath(id): TransactionPath,
    MinPosition(min): MinPosition,
    if_none_match: IfNoneMatch,
) -> Result<Response, ApiError> {
    let sees_all = principal.may_view_all();
    if !sees_all && !principal.is(Role::User) {
        return Err(ApiError::Forbidden);
    }
    let (at, item) =
        snapshot::read(&state, min, move |conn| Box::pin(select_one(conn, id))).await?;
    let item = item.ok_or(ApiError::NotFound {
        what: "transaction",
    })?;
    if !sees_all && !item.involves(principal.subject) {
        return Err(ApiError::Forbidden);
    }
    Ok(Meta::at(at.position)
        .etag(ETag::of(item.position))
        .cache(IMMUTABLE)
        .reply(&if_none_match, || item))
}

async fn select_one(
    conn: &mut MySqlConnection,
    id: TransactionId,
) -> Result<Option<TransactionView>, ApiError> {
    let row = read_model::select_transaction(conn, id.as_uuid()).await?;
    Ok(row.map(TransactionView::from))
}

/// Newest first by `(position, transaction_id)`, strictly after `after`.
///
/// A party's transactions are the union of three branches (as `user_id`, as payer, as
/// payee), each able to use its own `(column, position)` index and stop after `limit`
/// rows; a user is never on two sides of one transaction, so no row comes twice.
async fn select_page(
    conn: &mut MySqlConnection,
    party: Option<UserId>,
    after: Option<TransactionCursor>,
    limit: u32,
) -> Result<Vec<TransactionView>, ApiError> {
    let keyset = if after.is_some() {
        "(position < ? OR (position = ? AND transaction_id < ?))"
    } else {
        "TRUE"
    };
    let order = "ORDER BY position DESC, transaction_id DESC LIMIT ?";
    let sql = match party {
        None => {
            format!("SELECT {TRANSACTION_COLUMNS} FROM `{TRANSACTIONS}` WHERE {keyset} {order}")
        }
        Some(_) => {
            let branch = |column: &str| {
                format!(
                    "(SELECT {TRANSACTION_COLUMNS} FROM `{TRANSACTIONS}` WHERE {column} = ? AND {keyset} {order})"
                )
            };
            format!(
                "{} UNION ALL {} UNION ALL {} {order}",
                branch("user_id"),
                branch("from_user_id"),
                branch("to_user_id")
            )
        }
    };
    let mut query = sqlx::query(&sql);
    let branches = if party.is_some() { 3 } else { 1 };
    for _ in 0..branches {
        if let Some(user) = party {
            query = query.bind(user.as_uuid());
        }
        if let Some(after) = after {
            query = query
                .bind(after.position)
                .bind(after.position)
                .bind(after.transaction_id);
        }
        query = query.bind(limit);
    }
    if party.is_some() {
        query = query.bind(limit);
    }
    let rows = query.fetch_all(conn).await?;
    Ok(rows
        .iter()
        .map(|row| TransactionRow::decode(row).map(TransactionView::from))
        .collect::<Result<_, _>>()?)
}
