//! `GET /api/v1/operations` (role admin): what an operator looks at first, in one answer
//! for the UI's operations page — how far the relay and the projection are behind the
//! log, which positions the projection steps over (parked), and how many catch-up
//! subscriptions are open on this replica. Read-only, like everything here.

use axum::extract::State;
use axum::response::Response;
use platform::{Principal, Role};
use read_model::PARKED_EVENTS;
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::params::Params;
use crate::reply::{Meta, NO_STORE};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct RelayStatus {
    name: String,
    /// The last position the broker confirmed.
    position: u64,
    lag: u64,
    /// The current leadership term.
    epoch: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ProjectionStatus {
    name: String,
    position: u64,
    lag: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ParkedEvent {
    position: u64,
    event_type: Option<String>,
    reason: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    parked_at: OffsetDateTime,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct OperationsStatus {
    /// The log's last position.
    head_position: u64,
    relays: Vec<RelayStatus>,
    projection: ProjectionStatus,
    /// Positions the projection steps over (`projector park`).
    parked: Vec<ParkedEvent>,
    /// Server-Sent Events subscriptions open on this query-api replica.
    subscriptions_open: i64,
}

/// The pipeline at a glance.
#[utoipa::path(get, path = "/api/v1/operations", tag = "operations",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Relay and projection lag, parked events, open subscriptions", body = OperationsStatus),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 503, response = crate::openapi::Unavailable),
    ))]
#[tracing::instrument(skip_all)]
pub(crate) async fn status(
    State(state): State<AppState>,
    principal: Principal,
    params: Params,
) -> Result<Response, ApiError> {
    if !principal.is(Role::Admin) {
        return Err(ApiError::Forbidden);
    }
    params.allow(&[])?;
    let head = state.store.head().await?.map_or(0, |(p, _)| p);
    let relays: Vec<(Vec<u8>, u64, u64)> =
        sqlx::query_as("SELECT name, position, epoch FROM relay_checkpoints ORDER BY name")
            .fetch_all(state.store.pool())
            .await?;
    let at = state.projection.current().await?;
    let name = state.projection.name().to_owned();
    let parked: Vec<(u64, Option<Vec<u8>>, String, time::PrimitiveDateTime)> =
        sqlx::query_as(&format!(
            "SELECT position, event_type, reason, parked_at FROM `{PARKED_EVENTS}` \
             WHERE projection = ? ORDER BY position DESC LIMIT 100"
        ))
        .bind(&name)
        .fetch_all(&state.pool)
        .await?;
    let answer = OperationsStatus {
        head_position: head,
        relays: relays
            .into_iter()
            .map(|(name, position, epoch)| RelayStatus {
                name: String::from_utf8_lossy(&name).into_owned(),
                position,
                lag: head.saturating_sub(position),
                epoch,
            })
            .collect(),
        projection: ProjectionStatus {
            name,
            position: at.position,
            lag: head.saturating_sub(at.position),
        },
        parked: parked
            .into_iter()
            .map(|(position, event_type, reason, parked_at)| ParkedEvent {
                position,
                event_type: event_type.map(|t| String::from_utf8_lossy(&t).into_owned()),
                reason,
                parked_at: parked_at.assume_utc(),
            })
            .collect(),
        subscriptions_open: state.subscriptions.open(),
    };
    Ok(Meta::at(at.position).cache(NO_STORE).ok(answer))
}
