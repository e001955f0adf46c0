//! `GET /api/v1/users/{id}/balances` over `balances_view`: what the user holds now, per
//! currency. Admin, service and auditor see anyone's; a `user` only its own.

use axum::extract::State;
use axum::response::Response;
use ledger::UserId;
use platform::Principal;
use serde::Serialize;
use sqlx::MySqlConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::ApiError;
use crate::params::{IfNoneMatch, MinPosition, UserPath};
use crate::reply::{ETag, Meta};
use crate::snapshot;
use crate::state::AppState;

/// A user's balances as read; what the cache holds.
#[derive(Debug, Clone)]
pub(crate) struct BalancesRow {
    /// In currency order.
    balances: Vec<Balance>,
    /// The last position that changed any of them (0: none ever did).
    position: u64,
}

/// What a user holds in one currency, in minor units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub(crate) struct Balance {
    #[schema(example = "EUR")]
    pub currency: String,
    /// Minor units (cents; yen for JPY).
    pub amount: i64,
}

/// A user's balances.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct BalancesView {
    #[schema(value_type = String, format = "uuid")]
    user_id: Uuid,
    /// Every currency the user ever held, zeros included, in code order.
    balances: Vec<Balance>,
}

/// A user's current balances.
#[utoipa::path(get, path = "/api/v1/users/{id}/balances", tag = "users",
    params(("id" = String, Path, format = "uuid", description = "The user's id"), crate::openapi::ViewHeaders),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The balances", body = BalancesView,
            headers(("X-Projection-Position" = u64), ("ETag" = String))),
        (status = 304, description = "Unchanged since the ETag sent in If-None-Match"),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 422, response = crate::openapi::ValidationFailed),
        (status = 503, response = crate::openapi::Unavailable),
    ))]
#[tracing::instrument(skip_all, fields(user_id = %id))]
pub(crate) async fn get_balances(
    State(state): State<AppState>,
    principal: Principal,
    UserPath(id): UserPath,
    MinPosition(min): MinPosition,
    if_none_match: IfNoneMatch,
) -> Result<Response, ApiError> {
    if !principal.may_view_user(id.as_uuid()) {
        return Err(ApiError::Forbidden);
    }
    let at = state.projection.reach(min).await?;
    let (at, row) = state
        .balances
        .get_or_load(id.as_uuid(), at, || {
            snapshot::read(&state, min, move |conn| Box::pin(select(conn, id)))
        })
        .await?;
    let row = row.ok_or(ApiError::NotFound { what: "user" })?;
    let meta = Meta::at(at.position).etag(ETag::of(row.position));
    Ok(meta.reply(&if_none_match, || BalancesView {
        user_id: id.as_uuid(),
        balances: row.balances.clone(),
    }))
}

/// `None` when the user is not in `users_view` (unknown, or not projected yet).
async fn select(conn: &mut MySqlConnection, id: UserId) -> Result<Option<BalancesRow>, ApiError> {
    let Some(entries) = read_model::select_balances(conn, id.as_uuid()).await? else {
        return Ok(None);
    };
    let position = entries.iter().map(|e| e.position).max().unwrap_or(0);
    let balances = entries
        .into_iter()
        .map(|e| Balance {
            currency: e.currency,
            amount: e.amount,
        })
        .collect();
    Ok(Some(BalancesRow { balances, position }))
}
