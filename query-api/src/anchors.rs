//! The signed anchors (ADR 0017) and the keys that sign them, for auditors:
//!
//! - `GET /api/v1/audit/anchors?after=&limit=`: the `anchors` table in position order,
//!   each item `{position, hash, recorded_at, anchor}` (`hash_chain::SignedAnchor`).
//! - `GET /api/v1/audit/anchors/jwks`: the anchors' JWKS, read from `ANCHOR_JWKS_FILE`
//!   at each request (a rotation needs no restart). It is a file, not a table, so whoever
//!   can write the database cannot add a key to it.

use axum::extract::State;
use axum::response::Response;
use hash_chain::{Jwks, SignedAnchor};
use platform::Principal;
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::audit::{audit_meta, audit_only};
use crate::error::ApiError;
use crate::params::Params;
use crate::state::AppState;

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1_000;

pub(crate) const JWK_SET: &str = "application/jwk-set+json";

/// One signed anchor.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AnchorView {
    /// The anchored position.
    position: u64,
    /// The log's hash at `position`, lowercase hex.
    hash: String,
    /// `recorded_at` of the event at `position` (RFC 3339, UTC, microseconds).
    #[serde(with = "hash_chain::wire_time")]
    #[schema(value_type = String, format = DateTime)]
    recorded_at: OffsetDateTime,
    /// Compact JWS (EdDSA, `kid` in its header) whose payload is `{position, hash,
    /// recorded_at}`; verify it with `/api/v1/audit/anchors/jwks`.
    anchor: String,
}

impl From<SignedAnchor> for AnchorView {
    fn from(a: SignedAnchor) -> Self {
        Self {
            position: a.position,
            hash: hex::encode(a.hash),
            recorded_at: a.recorded_at,
            anchor: a.anchor,
        }
    }
}

/// A page of anchors.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AnchorPage {
    items: Vec<AnchorView>,
    /// Pass as `?after=` for the next page; `null` when the page reached the last anchor.
    next_after: Option<u64>,
}

/// The signed anchors in position order.
#[utoipa::path(get, path = "/api/v1/audit/anchors", tag = "audit",
    params(
        ("after" = Option<u64>, Query, description = "Anchors after this position (default 0)"),
        ("limit" = Option<u32>, Query, description = "Page size, 1–1000 (default 100)"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of anchors", body = AnchorPage),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 422, response = crate::openapi::ValidationFailed),
        (status = 503, response = crate::openapi::Unavailable),
    ))]
#[tracing::instrument(skip_all)]
pub(crate) async fn list_anchors(
    State(state): State<AppState>,
    principal: Principal,
    params: Params,
) -> Result<Response, ApiError> {
    audit_only(&principal)?;
    params.allow(&["after", "limit"])?;
    let after = params.position("after")?.unwrap_or(0);
    let limit = params.limit(DEFAULT_LIMIT, MAX_LIMIT)?;
    let anchors = state.store.anchors(after, limit.get()).await?;
    let next_after = (anchors.len() == limit.as_usize())
        .then(|| anchors.last().map(|a| a.position))
        .flatten();
    let items = anchors.into_iter().map(AnchorView::from).collect();
    Ok(audit_meta(&state)
        .await?
        .ok(AnchorPage { items, next_after }))
}

/// The public keys that sign anchors.
#[utoipa::path(get, path = "/api/v1/audit/anchors/jwks", tag = "audit",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The anchors' JWKS (Ed25519 keys, `kid` = RFC 7638 thumbprint)",
            content_type = "application/jwk-set+json"),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 503, response = crate::openapi::Unavailable),
    ))]
#[tracing::instrument(skip_all)]
pub(crate) async fn jwks(
    State(state): State<AppState>,
    principal: Principal,
    params: Params,
) -> Result<Response, ApiError> {
    audit_only(&principal)?;
    params.allow(&[])?;
    let Some(path) = state.anchor_jwks.clone() else {
        return Err(ApiError::AnchorKeysUnavailable);
    };
    let jwks = tokio::task::spawn_blocking(move || Jwks::from_file(&path))
        .await
        .map_err(|_| ApiError::AnchorKeysUnavailable)?
        .map_err(|error| {
            tracing::warn!(error = %error, "the anchors' JWKS cannot be read");
            ApiError::AnchorKeysUnavailable
        })?;
    let body = serde_json::to_vec(&jwks).map_err(|_| ApiError::Corrupt {
        what: "anchors JWKS",
    })?;
    Ok(audit_meta(&state).await?.bytes(JWK_SET, body))
}
