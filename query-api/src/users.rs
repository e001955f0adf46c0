//! `GET /api/v1/users` and `GET /api/v1/users/{id}` over `users_view`.
//!
//! Who sees what: admin, service and auditor every user; a `user` only itself. Listing
//! users as a `user` answers the list filtered to the caller (one item, or none before
//! its registration is projected) rather than 403, so a client needs no role switch to
//! render "the users I may see". Personal data is opened for everyone who may see the
//! user; erased (shredded) users show `null` and `erased: true`.

use axum::extract::State;
use axum::response::Response;
use futures_util::future::try_join_all;
use ledger::UserId;
use platform::{Principal, Role};
use read_model::{UserRow, USERS, USER_COLUMNS};
use serde::Serialize;
use sqlx::MySqlConnection;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::cursor::UserCursor;
use crate::error::ApiError;
use crate::params::{IfNoneMatch, MinPosition, Params, UserPath};
use crate::reply::{ETag, Meta};
use crate::snapshot;
use crate::state::AppState;

pub(crate) const DEFAULT_LIMIT: u32 = 50;
pub(crate) const MAX_LIMIT: u32 = 200;

fn cursor(row: &UserRow) -> UserCursor {
    UserCursor {
        created_at: row.created_at,
        user_id: row.user_id,
    }
}

/// A user as API.md shows it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UserView {
    #[schema(value_type = String, format = "uuid")]
    user_id: Uuid,
    /// `null` once erased.
    email: Option<String>,
    /// `null` once erased.
    display_name: Option<String>,
    /// `active` or `deactivated`.
    #[schema(example = "active")]
    status: String,
    /// The personal data was erased (crypto-shredded).
    erased: bool,
    /// The user stream's version: send it as `If-Match: "<version>"` to change the profile.
    version: u64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    updated_at: OffsetDateTime,
}

/// A page of users, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UserPage {
    items: Vec<UserView>,
    /// Pass as `?cursor=` for the next page; `null` on the last page.
    next_cursor: Option<String>,
}

/// The users the caller may see, newest first (by registration).
#[utoipa::path(get, path = "/api/v1/users", tag = "users",
    params(
        ("limit" = Option<u32>, Query, description = "Page size, 1–200 (default 50)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        crate::openapi::ViewHeaders,
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of users (a `user` sees only itself)", body = UserPage,
            headers(("X-Projection-Position" = u64), ("ETag" = String))),
        (status = 304, description = "Unchanged since the ETag sent in If-None-Match"),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 422, response = crate::openapi::ValidationFailed),
        (status = 503, response = crate::openapi::Unavailable),
    ))]
#[tracing::instrument(skip_all)]
pub(crate) async fn list_users(
    State(state): State<AppState>,
    principal: Principal,
    params: Params,
    MinPosition(min): MinPosition,
    if_none_match: IfNoneMatch,
) -> Result<Response, ApiError> {
    params.allow(&["limit", "cursor"])?;
    let limit = params.limit(DEFAULT_LIMIT, MAX_LIMIT)?;
    let after = params.get("cursor").map(UserCursor::decode).transpose()?;
    let only = if principal.may_view_all() {
        None
    } else if principal.is(Role::User) {
        Some(principal.subject)
    } else {
        return Err(ApiError::Forbidden);
    };
    let (at, mut rows) = snapshot::read(&state, min, move |conn| {
        Box::pin(select_page(conn, only, after, limit.get() + 1))
    })
    .await?;
    let next_cursor = if rows.len() > limit.as_usize() {
        rows.truncate(limit.as_usize());
        rows.last().map(|row| cursor(row).encode())
    } else {
        None
    };
    let etag = ETag::digest(
        rows.iter()
            .map(|row| format!("{}:{}", row.user_id, row.version))
            .chain(next_cursor.clone()),
    );
    let meta = Meta::at(at.position).etag(etag);
    if let Some(not_modified) = meta.not_modified(&if_none_match) {
        return Ok(not_modified);
    }
    let items = try_join_all(rows.iter().map(|row| view(&state, row))).await?;
    Ok(meta.ok(UserPage { items, next_cursor }))
}

/// One user.
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users",
    params(("id" = String, Path, format = "uuid", description = "The user's id"), crate::openapi::ViewHeaders),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user; ETag is `\"<version>\"`", body = UserView,
            headers(("X-Projection-Position" = u64), ("ETag" = String))),
        (status = 304, description = "Unchanged since the ETag sent in If-None-Match"),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 422, response = crate::openapi::ValidationFailed),
        (status = 503, response = crate::openapi::Unavailable),
    ))]
#[tracing::instrument(skip_all, fields(user_id = %id))]
pub(crate) async fn get_user(
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
        .users
        .get_or_load(id.as_uuid(), at, || {
            snapshot::read(&state, min, move |conn| Box::pin(select_one(conn, id)))
        })
        .await?;
    let row = row.ok_or(ApiError::NotFound { what: "user" })?;
    let meta = Meta::at(at.position).etag(ETag::of(row.version));
    if let Some(not_modified) = meta.not_modified(&if_none_match) {
        return Ok(not_modified);
    }
    Ok(meta.ok(view(&state, &row).await?))
}

async fn view(state: &AppState, row: &UserRow) -> Result<UserView, ApiError> {
    let profile = state
        .personal
        .open_profile(
            row.user_id,
            row.email_ciphertext.as_deref(),
            row.display_name_ciphertext.as_deref(),
            row.erased,
        )
        .await?;
    Ok(UserView {
        user_id: row.user_id,
        email: profile.email,
        display_name: profile.display_name,
        status: row.status.clone(),
        erased: profile.erased,
        version: row.version,
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

async fn select_one(conn: &mut MySqlConnection, id: UserId) -> Result<Option<UserRow>, ApiError> {
    Ok(read_model::select_user(conn, id.as_uuid()).await?)
}

/// Newest first by `(created_at, user_id)`, strictly after `after`.
async fn select_page(
    conn: &mut MySqlConnection,
    only: Option<Uuid>,
    after: Option<UserCursor>,
    limit: u32,
) -> Result<Vec<UserRow>, ApiError> {
    let mut conditions = Vec::new();
    if only.is_some() {
        conditions.push("user_id = ?");
    }
    if after.is_some() {
        conditions.push("(created_at < ? OR (created_at = ? AND user_id < ?))");
    }
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let sql = format!(
        "SELECT {USER_COLUMNS} FROM `{USERS}` {filter} \
         ORDER BY created_at DESC, user_id DESC LIMIT ?"
    );
    let mut query = sqlx::query(&sql);
    if let Some(id) = only {
        query = query.bind(id);
    }
    if let Some(after) = after {
        let at = time::PrimitiveDateTime::new(after.created_at.date(), after.created_at.time());
        query = query.bind(at).bind(at).bind(after.user_id);
    }
    let rows = query.bind(limit).fetch_all(conn).await?;
    Ok(rows.iter().map(UserRow::decode).collect::<Result<_, _>>()?)
}
