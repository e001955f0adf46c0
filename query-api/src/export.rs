//! `GET /api/v1/audit/export?from=&to=`: the log as NDJSON, one line per event, each the
//! same object as an item of `/api/v1/audit/events` (`AuditEvent`), streamed in constant
//! memory: one page of the log is read, written and sent before the next is read, and
//! the client's reading paces the reads.
//!
//! The answer is committed to 200 before the first line. A failure later (the database
//! gone mid-way) aborts the connection rather than ending the body cleanly, so a client
//! never mistakes a cut export for a whole one; `X-Export-To` says where a whole one ends.

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::Response;
use event_store::EventStore;
use platform::Principal;

use crate::audit::{audit_meta, audit_only, AuditEvent};
use crate::error::ApiError;
use crate::params::Params;
use crate::state::AppState;

/// Events read per round trip, and so per chunk sent.
const PAGE: u32 = 1_000;

pub(crate) const NDJSON: &str = "application/x-ndjson";

/// The log from `from` to `to` as NDJSON.
#[utoipa::path(get, path = "/api/v1/audit/export", tag = "audit",
    params(
        ("from" = Option<u64>, Query, description = "First position (default 1)"),
        ("to" = Option<u64>, Query, description = "Last position, at most the head (default: the head when the request arrives)"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One JSON object per line, each an item of /api/v1/audit/events, in position order. X-Export-To: the last position the export holds.",
            content_type = "application/x-ndjson", body = AuditEvent),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 422, response = crate::openapi::ValidationFailed),
        (status = 503, response = crate::openapi::Unavailable),
    ))]
#[tracing::instrument(skip_all)]
pub(crate) async fn export(
    State(state): State<AppState>,
    principal: Principal,
    params: Params,
) -> Result<Response, ApiError> {
    audit_only(&principal)?;
    params.allow(&["from", "to"])?;
    let from = params.position("from")?.unwrap_or(1);
    if from == 0 {
        return Err(ApiError::invalid(
            "from",
            "invalid_position",
            "positions start at 1",
        ));
    }
    let head = state
        .store
        .head()
        .await?
        .map_or(0, |(position, _)| position);
    let to = params.position("to")?.unwrap_or(head);
    if to > head {
        return Err(ApiError::invalid(
            "to",
            "beyond_head",
            format!("the log ends at position {head}"),
        ));
    }
    if from > to.saturating_add(1) {
        return Err(ApiError::invalid(
            "from",
            "after_to",
            "from must be at most to",
        ));
    }
    tracing::info!(from, to, "exporting the log");
    let body = Body::from_stream(lines(state.store.clone(), from - 1, to));
    let mut response = audit_meta(&state).await?.stream(NDJSON, body);
    response
        .headers_mut()
        .insert("x-export-to", HeaderValue::from(to));
    Ok(response)
}

/// The events after `after` up to `to`, a page per chunk.
fn lines(
    store: EventStore,
    after: u64,
    to: u64,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures_util::stream::try_unfold((store, after), move |(store, after)| async move {
        if after >= to {
            return Ok(None);
        }
        let limit = u32::try_from(to - after).unwrap_or(PAGE).min(PAGE);
        let page = store.read_all(after, limit).await.map_err(|e| {
            tracing::error!(error = %e, after, "the export stopped: reading the log failed");
            std::io::Error::other(e)
        })?;
        let Some(last) = page.last().map(|e| e.position) else {
            // The log is shorter than it was when the export began: it never shrinks,
            // so this is a database that changed under us. Cut the answer.
            return Err(std::io::Error::other(format!(
                "the log ends at {after}, before the export's end {to}"
            )));
        };
        let mut chunk = Vec::with_capacity(page.len() * 512);
        for event in page {
            let position = event.position;
            let item = AuditEvent::from_recorded(event).map_err(|_| {
                std::io::Error::other(format!("the event at {position} is not JSON"))
            })?;
            serde_json::to_writer(&mut chunk, &item).map_err(std::io::Error::other)?;
            chunk.push(b'\n');
        }
        Ok(Some((chunk, (store, last))))
    })
}
