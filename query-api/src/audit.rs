//! The audit endpoints (roles auditor and admin): the event log itself, never the read
//! tables.
//!
//! - `GET /api/v1/audit/events`: the log in position order, `data` and `metadata` exactly
//!   as stored and hashed, so an auditor can recompute every hash from the answer.
//! - `GET /api/v1/audit/verify`: recomputes the whole hash chain.
//! - `GET /api/v1/audit/users/{id}/balances?as_of=|at_position=`: a user's balances at a
//!   past point, replayed from the user's stream with `ledger::replay`, the same fold the
//!   commands use: the stream's events up to the point, decoded, folded once. A time
//!   becomes a position first: `recorded_at` never decreases along the log (the store
//!   clamps a clock behind the head), so the events recorded by a time are the log up to
//!   one position, the head for a time at or after the head's; the answer names it.

use axum::extract::State;
use axum::response::Response;
use event_store::{RecordedEvent, StreamId};
use ledger::{LedgerEvent, UserId};
use platform::Principal;
use serde::Serialize;
use serde_json::value::RawValue;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::balances::Balance;
use crate::error::ApiError;
use crate::params::{Params, UserPath};
use crate::reply::{Meta, NO_STORE};
use crate::state::AppState;

/// Audit pages may be larger than view pages: auditors walk the whole log.
pub(crate) const DEFAULT_EVENTS_LIMIT: u32 = 100;
pub(crate) const MAX_EVENTS_LIMIT: u32 = 1_000;
/// Stream events read per round trip while replaying.
const REPLAY_PAGE: u32 = 1_000;

/// One event as the log holds it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuditEvent {
    position: u64,
    #[schema(value_type = String, format = "uuid")]
    event_id: Uuid,
    #[schema(example = "user-0190a8f6-7b2c-7c3e-9f00-0123456789ab")]
    stream_id: String,
    stream_version: u64,
    #[schema(example = "transaction.deposited")]
    event_type: String,
    schema_version: u32,
    /// The payload, byte for byte as stored (and hashed).
    #[schema(value_type = Object)]
    data: Box<RawValue>,
    /// Correlation and causation ids, actor, idempotency key; as stored.
    #[schema(value_type = Object)]
    metadata: Box<RawValue>,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    recorded_at: OffsetDateTime,
    /// Lowercase hex SHA-256.
    prev_hash: String,
    /// Lowercase hex SHA-256 over `prev_hash` and the event's canonical bytes (ADR 0003).
    hash: String,
}

impl AuditEvent {
    pub(crate) fn from_recorded(e: RecordedEvent) -> Result<Self, ApiError> {
        let corrupt = |_| ApiError::Corrupt { what: "event JSON" };
        Ok(Self {
            position: e.position,
            event_id: e.event_id,
            stream_id: e.stream_id.as_str().to_owned(),
            stream_version: e.stream_version,
            event_type: e.event_type.as_str().to_owned(),
            schema_version: e.schema_version,
            data: RawValue::from_string(e.data).map_err(corrupt)?,
            metadata: RawValue::from_string(e.metadata).map_err(corrupt)?,
            recorded_at: e.recorded_at,
            prev_hash: hex::encode(e.prev_hash),
            hash: hex::encode(e.hash),
        })
    }
}

/// A page of the log.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AuditEventPage {
    items: Vec<AuditEvent>,
    /// Pass as `?after=` for the next page; `null` when the page reached the head (ask
    /// again later with the last position seen to follow the log).
    next_after: Option<u64>,
}

/// The outcome of recomputing the hash chain.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct VerifyView {
    /// Every event's hash and link recomputed and found right.
    ok: bool,
    /// Events checked.
    checked: u64,
    /// The last good position and its hash (lowercase hex).
    head_position: u64,
    head_hash: String,
    /// The first position whose hash, link or place in the sequence is wrong.
    first_bad_position: Option<u64>,
}

/// A user's balances at a past point, replayed from the log.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HistoricBalances {
    #[schema(value_type = String, format = "uuid")]
    user_id: Uuid,
    /// The time asked for, if any.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    as_of: Option<OffsetDateTime>,
    /// The position asked for, if any.
    at_position: Option<u64>,
    /// The log position the answer reflects: every event up to it and none after. For
    /// `as_of`, the last event recorded by then (the head, for a time at or after the
    /// head's `recorded_at`); for `at_position`, that position.
    position: u64,
    /// How many of the user's events the replay applied.
    stream_version: u64,
    /// The position of the last of them: the answer holds from there until the user's
    /// next event.
    last_position: u64,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    last_recorded_at: OffsetDateTime,
    /// Every currency the user had held by then, zeros included, in code order.
    balances: Vec<Balance>,
}

/// The event log in position order.
#[utoipa::path(get, path = "/api/v1/audit/events", tag = "audit",
    // `list_events` names `/api/v1/events`; an operation id is unique in a document.
    operation_id = "list_audit_events",
    params(
        ("after" = Option<u64>, Query, description = "Events after this position (default 0: from the start)"),
        ("limit" = Option<u32>, Query, description = "Page size, 1–1000 (default 100)"),
        ("stream" = Option<String>, Query, description = "Only this stream, e.g. `user-<uuid>`"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of the log", body = AuditEventPage),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 422, response = crate::openapi::ValidationFailed),
        (status = 503, response = crate::openapi::Unavailable),
    ))]
#[tracing::instrument(skip_all)]
pub(crate) async fn list_events(
    State(state): State<AppState>,
    principal: Principal,
    params: Params,
) -> Result<Response, ApiError> {
    audit_only(&principal)?;
    params.allow(&["after", "limit", "stream"])?;
    let after = params.position("after")?.unwrap_or(0);
    let limit = params.limit(DEFAULT_EVENTS_LIMIT, MAX_EVENTS_LIMIT)?;
    let stream = params
        .get("stream")
        .map(|raw| {
            StreamId::parse(raw)
                .map_err(|e| ApiError::invalid("stream", "invalid_stream_id", e.to_string()))
        })
        .transpose()?;
    let events = state
        .store
        .read_all_of(after, limit.get(), stream.as_ref())
        .await?;
    let next_after = (events.len() == limit.as_usize())
        .then(|| events.last().map(|e| e.position))
        .flatten();
    let items = events
        .into_iter()
        .map(AuditEvent::from_recorded)
        .collect::<Result<_, _>>()?;
    Ok(audit_meta(&state)
        .await?
        .ok(AuditEventPage { items, next_after }))
}

/// Recomputes the hash chain over the whole log.
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The verification report (`ok: false` names the first bad position)", body = VerifyView),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 503, response = crate::openapi::Unavailable),
    ))]
#[tracing::instrument(skip_all)]
pub(crate) async fn verify(
    State(state): State<AppState>,
    principal: Principal,
    params: Params,
) -> Result<Response, ApiError> {
    audit_only(&principal)?;
    params.allow(&[])?;
    let report = state.store.verify(1, None).await?;
    if !report.ok {
        tracing::warn!(
            first_bad_position = report.first_bad_position,
            "the event log's hash chain is broken"
        );
    }
    Ok(audit_meta(&state).await?.ok(VerifyView {
        ok: report.ok,
        checked: report.checked,
        head_position: report.head_position,
        head_hash: report.head_hash,
        first_bad_position: report.first_bad_position,
    }))
}

/// A user's balances as they were at a time or a position.
#[utoipa::path(get, path = "/api/v1/audit/users/{id}/balances", tag = "audit",
    params(
        ("id" = String, Path, format = "uuid", description = "The user's id"),
        ("as_of" = Option<String>, Query, format = DateTime,
            description = "RFC 3339 time, not in the future (the head's `recorded_at` is not, even ahead of the clock); percent-encode a `+` offset as %2B"),
        ("at_position" = Option<u64>, Query, description = "A log position up to the head; give exactly one of as_of, at_position"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The balances replayed from the log, and the log position they reflect", body = HistoricBalances),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, response = crate::openapi::NotFound),
        (status = 422, response = crate::openapi::ValidationFailed),
        (status = 503, response = crate::openapi::Unavailable),
    ))]
#[tracing::instrument(skip_all, fields(user_id = %id))]
pub(crate) async fn historic_balances(
    State(state): State<AppState>,
    principal: Principal,
    UserPath(id): UserPath,
    params: Params,
) -> Result<Response, ApiError> {
    audit_only(&principal)?;
    params.allow(&["as_of", "at_position"])?;
    let as_of = params
        .get("as_of")
        .map(|raw| {
            OffsetDateTime::parse(raw, &Rfc3339)
                .map_err(|_| ApiError::invalid("as_of", "invalid_time", "must be an RFC 3339 time"))
        })
        .transpose()?;
    let at_position = params.position("at_position")?;
    let position = match (as_of, at_position) {
        (Some(t), None) => position_by(&state, t).await?,
        (None, Some(n)) => {
            let head = state
                .store
                .head()
                .await?
                .map_or(0, |(position, _)| position);
            if n > head {
                return Err(ApiError::invalid(
                    "at_position",
                    "beyond_head",
                    format!("the log ends at position {head}"),
                ));
            }
            n
        }
        _ => {
            return Err(ApiError::invalid(
                "as_of",
                "one_of_required",
                "give exactly one of as_of and at_position",
            ))
        }
    };

    let (events, last) = read_until(&state, id, position).await?;
    let user = ledger::replay(&events);
    let Some(last) = last.filter(|_| user.is_registered()) else {
        return Err(ApiError::NotFound {
            what: "user at that point",
        });
    };
    let balances = user
        .balances()
        .iter()
        .map(|(currency, balance)| Balance {
            currency: currency.as_str().to_owned(),
            amount: balance.minor_units(),
        })
        .collect();
    Ok(audit_meta(&state).await?.ok(HistoricBalances {
        user_id: id.as_uuid(),
        as_of,
        at_position,
        position,
        stream_version: last.stream_version,
        last_position: last.position,
        last_recorded_at: last.recorded_at,
        balances,
    }))
}

/// The last position recorded by `t`: the head for a time at or after the head's
/// `recorded_at` (also when that is ahead of this clock: the log holds that time
/// already). 422 `in_future` for a time past both this clock and the head.
async fn position_by(state: &AppState, t: OffsetDateTime) -> Result<u64, ApiError> {
    let Some((head, _)) = state.store.head().await? else {
        return future_unless(t <= OffsetDateTime::now_utc(), 0);
    };
    let head_recorded_at = state
        .store
        .read_all(head - 1, 1)
        .await?
        .first()
        .map(|e| e.recorded_at)
        .ok_or(ApiError::Corrupt {
            what: "the log's head",
        })?;
    if t >= head_recorded_at {
        return future_unless(
            t <= OffsetDateTime::now_utc() || t == head_recorded_at,
            head,
        );
    }
    Ok(state.store.last_position_by(t, head).await?)
}

fn future_unless(known: bool, position: u64) -> Result<u64, ApiError> {
    if known {
        Ok(position)
    } else {
        Err(ApiError::invalid(
            "as_of",
            "in_future",
            "the log cannot say yet what it will hold then",
        ))
    }
}

/// The last event a replay applied.
struct Last {
    position: u64,
    stream_version: u64,
    recorded_at: OffsetDateTime,
}

/// The user's events up to `position`, decoded, in stream order (a prefix of the stream).
async fn read_until(
    state: &AppState,
    id: UserId,
    position: u64,
) -> Result<(Vec<LedgerEvent>, Option<Last>), ApiError> {
    let stream = StreamId::parse(id.stream_id()).map_err(|_| ApiError::Corrupt {
        what: "user stream id",
    })?;
    let mut events = Vec::new();
    let mut last = None;
    let mut from_version = 1;
    loop {
        let page = state
            .store
            .read_stream(&stream, from_version, REPLAY_PAGE)
            .await?;
        let full = page.len() == REPLAY_PAGE as usize;
        for e in page {
            if e.position > position {
                return Ok((events, last));
            }
            let event = ledger::decode(e.event_type.as_str(), e.schema_version, &e.data).map_err(
                |source| ApiError::Decode {
                    position: e.position,
                    source,
                },
            )?;
            events.push(event);
            from_version = e.stream_version + 1;
            last = Some(Last {
                position: e.position,
                stream_version: e.stream_version,
                recorded_at: e.recorded_at,
            });
        }
        if !full {
            return Ok((events, last));
        }
    }
}

pub(crate) fn audit_only(principal: &Principal) -> Result<(), ApiError> {
    if principal.may_audit() {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

/// Audit answers read the log, not the projection: the position header says how far the
/// views had got when the request came, as on every answer.
pub(crate) async fn audit_meta(state: &AppState) -> Result<Meta, ApiError> {
    Ok(Meta::at(state.projection.current().await?.position).cache(NO_STORE))
}
