//! `GET /openapi.json`, generated from the handlers' `#[utoipa::path]` attributes and the
//! DTOs, so the document cannot drift from the code. API.md is the contract it must agree
//! with; `tests/api/openapi.rs` checks every route is listed.

use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::openapi::path::{HttpMethod, OperationBuilder};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi, ToResponse, ToSchema};

use crate::{subscriptions, transactions, users};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "command-api",
        description = "The ledger's commands (API.md). Every command accepts Idempotency-Key and \
            X-Correlation-Id, and answers with the events' last global position and the stream \
            version, also in X-Position and ETag."
    ),
    paths(
        users::register_user,
        users::update_profile,
        users::deactivate_user,
        users::erase_personal_data,
        transactions::record_transaction,
        subscriptions::create_subscription,
        subscriptions::list_subscriptions,
        subscriptions::get_subscription,
        subscriptions::pause_subscription,
        subscriptions::resume_subscription,
        subscriptions::delete_subscription,
        openapi_json,
    ),
    components(
        schemas(ProblemDoc, FieldProblemDoc, UserWrittenDoc, TransactionWrittenDoc),
        responses(
            MalformedBody, Unauthenticated, Forbidden, NotFound, VersionMismatch,
            PreconditionRequired, BodyTooLarge, UnsupportedMediaType, ValidationFailed,
            Unavailable
        )
    ),
    modifiers(&BearerAuth, &Operations),
    tags(
        (name = "users", description = "Registration, profile, deactivation, erasure"),
        (name = "transactions", description = "Deposits, withdrawals, transfers"),
        (name = "subscriptions", description = "Webhook subscriptions (admin, service)"),
        (name = "operations", description = "Health, metrics, this document"),
    )
)]
struct ApiDoc;

/// The generated document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json")))]
pub(crate) async fn openapi_json() -> impl IntoResponse {
    platform::Json(document())
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The routes platform provides, which carry no `#[utoipa::path]` of ours.
struct Operations;

impl Modify for Operations {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let routes = [
            ("/health/live", "Liveness", "Live"),
            (
                "/health/ready",
                "Readiness: MariaDB answers",
                "Ready; 503 unavailable if not",
            ),
            (
                "/metrics",
                "Prometheus metrics (OpenMetrics text)",
                "Metrics",
            ),
        ];
        for (path, summary, answer) in routes {
            let operation = OperationBuilder::new()
                .tag("operations")
                .summary(Some(summary))
                .response("200", ResponseBuilder::new().description(answer).build())
                .build();
            openapi
                .paths
                .add_path_operation(path, vec![HttpMethod::Get], operation);
        }
    }
}

/// The headers every command takes.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // read by the derive only
pub(crate) struct CommandHeaders {
    /// 1–128 visible ASCII characters; the same key with the same request answers the
    /// first answer again without appending, with another request 409
    /// `idempotency_key_reused`.
    #[param(rename = "Idempotency-Key")]
    idempotency_key: Option<String>,
    /// Echoed back, and recorded in the events' metadata.
    #[param(rename = "X-Correlation-Id")]
    correlation_id: Option<String>,
}

/// RFC 9457 problem details (`application/problem+json`).
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub(crate) struct ProblemDoc {
    #[serde(rename = "type")]
    type_uri: String,
    title: String,
    status: u16,
    detail: String,
    /// Stable machine code, e.g. `insufficient_funds`.
    code: String,
    /// 422 only.
    errors: Option<Vec<FieldProblemDoc>>,
}

#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub(crate) struct FieldProblemDoc {
    field: String,
    code: String,
    message: String,
}

/// A user command's answer.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub(crate) struct UserWrittenDoc {
    #[schema(format = "uuid")]
    user_id: String,
    version: u64,
    position: u64,
}

/// A transaction's answer.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
pub(crate) struct TransactionWrittenDoc {
    #[schema(format = "uuid")]
    transaction_id: String,
    #[schema(example = "completed")]
    status: String,
    position: u64,
}

macro_rules! problem_responses {
    ($($name:ident => $description:literal),* $(,)?) => {
        $(
            #[derive(ToResponse)]
            #[response(description = $description, content_type = "application/problem+json")]
            #[allow(dead_code)]
            pub(crate) struct $name(ProblemDoc);
        )*
    };
}

problem_responses! {
    MalformedBody => "`malformed_body`: not JSON, or JSON of the wrong shape",
    Unauthenticated => "`unauthenticated`: no, bad or expired token (`WWW-Authenticate: Bearer`)",
    Forbidden => "`forbidden`: role or ownership forbids it",
    NotFound => "`not_found`: no such user",
    VersionMismatch => "`version_mismatch`: If-Match does not name the current version",
    PreconditionRequired => "`precondition_required`: If-Match is missing",
    BodyTooLarge => "`body_too_large`: over 64 KiB",
    UnsupportedMediaType => "`unsupported_media_type`: not application/json",
    ValidationFailed => "`validation_failed`, with `errors: [{field, code, message}]`",
    Unavailable => "`unavailable`: the event store is down and nothing was applied; \
        `outcome_unknown`: the command's commit was sent and its reply lost, so it may or may \
        not have been applied: repeating it with the same Idempotency-Key or transaction_id \
        is safe and returns the original result (`Retry-After`)",
}
