//! `GET /openapi.json`, generated from the handlers' `#[utoipa::path]` attributes and the
//! DTOs, so the document cannot drift from the code. API.md is the contract it must agree
//! with; `tests/api/openapi.rs` checks every route is listed.

use axum::response::IntoResponse;
use platform::openapi::{BearerAuth, PlatformRoutes, ProblemSchemas};
use utoipa::{IntoParams, OpenApi};

use crate::{anchors, audit, balances, events, export, operations, transactions, users};

/// The problem document, with a code of this service's own.
const PROBLEMS: ProblemSchemas = ProblemSchemas {
    code_example: "projection_lagging",
};

/// Health and metrics, as platform serves them.
const PLATFORM_ROUTES: PlatformRoutes = PlatformRoutes {
    metrics: "Prometheus metrics (OpenMetrics text), projection lag and view cache hits included",
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "query-api",
        description = "The ledger's views and audit endpoints (API.md). Every answer carries \
            X-Projection-Position, how far the projection had got. X-Min-Position: N (the \
            position a command returned) waits up to 5 s for the projection to reach N, then \
            answers 503 projection_lagging. Views carry a strong ETag and answer 304 to a \
            matching If-None-Match."
    ),
    paths(
        users::list_users,
        users::get_user,
        balances::get_balances,
        transactions::list_transactions,
        transactions::get_transaction,
        events::list_events,
        operations::status,
        audit::list_events,
        audit::verify,
        audit::historic_balances,
        export::export,
        anchors::list_anchors,
        anchors::jwks,
        openapi_json,
    ),
    components(
        schemas(
            users::UserView, users::UserPage,
            balances::BalancesView, balances::Balance,
            transactions::TransactionView, transactions::TransactionPage,
            audit::AuditEvent, audit::AuditEventPage, audit::VerifyView, audit::HistoricBalances,
            events::EventPage,
            operations::OperationsStatus, operations::RelayStatus,
            operations::ProjectionStatus, operations::ParkedEvent,
            anchors::AnchorView, anchors::AnchorPage,
        ),
        responses(Unauthenticated, Forbidden, NotFound, ValidationFailed, Unavailable)
    ),
    modifiers(&BearerAuth, &PLATFORM_ROUTES, &PROBLEMS),
    tags(
        (name = "users", description = "Users and their balances"),
        (name = "transactions", description = "Deposits, withdrawals, transfers"),
        (name = "subscriptions", description = "The log as CloudEvents for downstream services, from any position, then live (service, admin, auditor)"),
        (name = "audit", description = "The event log itself: pages, hash-chain verification, replays, the NDJSON export, signed anchors and their JWKS (auditor, admin)"),
        (name = "operations", description = "Health, metrics, this document"),
    )
)]
struct ApiDoc;

/// The generated document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document served at `/openapi.json`: the generated one with what the derive cannot
/// say put right, so that it describes what the service accepts: `X-Min-Position` and
/// `Last-Event-ID` as header text of digits (a header is text; `null` is no position),
/// `limit` within its range (1–200 for views, 1–1000 for the log), each list's cursor as
/// [`crate::cursor`] writes it, `stream` as a stream id, `types` as a pattern list, the
/// export's `from` from 1, no nil UUID, and header values without control characters.
pub fn document_json() -> serde_json::Value {
    use serde_json::json;
    let mut doc = serde_json::to_value(document()).unwrap_or_default();
    let Some(paths) = doc
        .get_mut("paths")
        .and_then(serde_json::Value::as_object_mut)
    else {
        return doc;
    };
    for (path, operations) in paths.iter_mut() {
        let max_limit = if path.starts_with("/api/v1/audit/") || path == "/api/v1/events" {
            1000
        } else {
            200
        };
        let Some(operations) = operations.as_object_mut() else {
            continue;
        };
        for (_, operation) in operations.iter_mut() {
            // `get_mut`, not indexing: indexing a missing key would add it as null.
            let Some(parameters) = operation
                .get_mut("parameters")
                .and_then(serde_json::Value::as_array_mut)
            else {
                continue;
            };
            for parameter in parameters {
                let schema = match parameter["name"].as_str() {
                    Some("X-Min-Position" | "Last-Event-ID") => {
                        json!({"type": "string", "pattern": "^[0-9]{1,19}$"})
                    }
                    Some("If-None-Match") => json!({
                        "type": "string",
                        "pattern": "^[^\\x00-\\x08\\x0A-\\x1F\\x7F]*$",
                    }),
                    Some("limit") => json!({
                        "type": "integer", "format": "int32",
                        "minimum": 1, "maximum": max_limit,
                    }),
                    Some("cursor") => match crate::cursor::pattern(path) {
                        Some(pattern) => json!({"type": "string", "pattern": pattern}),
                        None => continue,
                    },
                    Some("stream") => json!({
                        "type": "string",
                        "pattern": format!("^[!-~]{{1,{}}}$", event_store::StreamId::MAX_LEN),
                    }),
                    Some("types") => json!({
                        "type": "string",
                        "pattern": event_store::TypePattern::LIST_REGEX,
                        "maxLength": event_store::TypePattern::MAX_LEN,
                    }),
                    // Positions as the service parses them: any u64 (the export's
                    // `from` counts from 1).
                    Some(name @ ("from" | "to" | "after" | "at_position")) => json!({
                        "type": "integer",
                        "minimum": u64::from(name == "from"),
                        "maximum": u64::MAX,
                    }),
                    _ => continue,
                };
                parameter["schema"] = schema;
            }
        }
    }
    platform::openapi::refuse_nil_uuids(&mut doc);
    doc
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json")))]
pub(crate) async fn openapi_json() -> impl IntoResponse {
    platform::Json(document_json())
}

/// The headers every view takes.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // read by the derive only
pub(crate) struct ViewHeaders {
    /// Wait (up to 5 s) until the projection has reached this position; 503
    /// `projection_lagging` with Retry-After if it does not.
    #[param(rename = "X-Min-Position")]
    min_position: Option<u64>,
    /// An ETag of an earlier answer: 304 if it is still current.
    #[param(rename = "If-None-Match")]
    if_none_match: Option<String>,
}

platform::problem_responses! {
    Unauthenticated => "`unauthenticated`: no, bad or expired token (`WWW-Authenticate: Bearer`)",
    Forbidden => "`forbidden`: role or ownership forbids it",
    NotFound => "`not_found`: no such user or transaction",
    ValidationFailed => "`validation_failed` (bad limit, cursor, id, position or time), with `errors: [{field, code, message}]`",
    Unavailable => "`projection_lagging` (X-Min-Position not reached in 5 s) or `unavailable` (database down), with Retry-After",
}
