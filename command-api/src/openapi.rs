//! `GET /openapi.json`, generated from the handlers' `#[utoipa::path]` attributes and the
//! DTOs, so the document cannot drift from the code. API.md is the contract it must agree
//! with; `tests/api/openapi.rs` checks every route is listed.

use axum::response::IntoResponse;
pub(crate) use platform::openapi::ProblemDoc;
use platform::openapi::{BearerAuth, PlatformRoutes, ProblemSchemas};
use serde::Serialize;
use utoipa::{IntoParams, OpenApi, ToSchema};

use crate::{subscriptions, transactions, users};

/// The problem document, with a code of this service's own.
const PROBLEMS: ProblemSchemas = ProblemSchemas {
    code_example: "insufficient_funds",
};

/// Health and metrics, as platform serves them.
const PLATFORM_ROUTES: PlatformRoutes = PlatformRoutes {
    metrics: "Prometheus metrics (OpenMetrics text)",
};

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
        schemas(UserWrittenDoc, TransactionWrittenDoc),
        responses(
            MalformedBody, Unauthenticated, Forbidden, NotFound, VersionMismatch,
            PreconditionRequired, BodyTooLarge, UnsupportedMediaType, ValidationFailed,
            Unavailable
        )
    ),
    modifiers(&BearerAuth, &PLATFORM_ROUTES, &PROBLEMS),
    tags(
        (name = "users", description = "Registration, profile, deactivation, erasure"),
        (name = "transactions", description = "Deposits, withdrawals, transfers"),
        (name = "subscriptions", description = "Webhook subscriptions (admin, service)"),
        (name = "operations", description = "Health, metrics, this document"),
    )
)]
struct ApiDoc;

/// The generated document, as the derive makes it.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document served at `/openapi.json`: the generated one with what the derive cannot
/// say put right, so that it describes exactly what the service accepts (a generator or a
/// typed client that follows it is never refused for the form of a request):
/// - `TransactionBody` as one object per `type`, each with its own fields (the derive's
///   `allOf` of a closed object and the tag could be satisfied by nothing);
/// - the formats of `Idempotency-Key` (1–128 visible ASCII characters) and `If-Match`
///   (`*` or quoted versions), neither of them nullable;
/// - a display name without control characters and not blank, a reason not blank, and a
///   profile change that sets at least one field;
/// - `Idempotent-Replayed` on every success, and 503 on readiness.
/// - `currency` as the currencies this service is configured with.
pub fn document_json(currencies: &ledger::CurrencySet) -> serde_json::Value {
    let mut doc = serde_json::to_value(document()).unwrap_or_default();
    put_right(&mut doc, currencies);
    platform::openapi::refuse_nil_uuids(&mut doc);
    doc
}

/// A hyphenated UUID.
const UUID: &str = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";

/// What an HTTP header value may hold (RFC 9110 §5.5: no control characters).
const HEADER_TEXT: &str = "^[^\\x00-\\x08\\x0A-\\x1F\\x7F]*$";

fn put_right(doc: &mut serde_json::Value, currencies: &ledger::CurrencySet) {
    use serde_json::json;
    let codes: Vec<String> = currencies.iter().map(|c| c.to_string()).collect();
    let schemas = &mut doc["components"]["schemas"];
    for schema in ["OneParty", "TwoParties"] {
        schemas[schema]["properties"]["currency"]["enum"] = json!(codes);
    }
    // Ids as the answers and the log write them (hyphenated); the derive says only
    // `format: uuid`, which generators do not hold to.
    for (schema, field) in [
        ("OneParty", "user_id"),
        ("OneParty", "transaction_id"),
        ("TwoParties", "from_user_id"),
        ("TwoParties", "to_user_id"),
        ("TwoParties", "transaction_id"),
        ("RegisterUserBody", "user_id"),
    ] {
        if let Some(property) = schemas[schema]["properties"].get_mut(field) {
            property["pattern"] = json!(UUID);
        }
    }
    let one_party = schemas["OneParty"].clone();
    let two_parties = schemas["TwoParties"].clone();
    let variant = |kind: &str, base: &serde_json::Value| {
        let mut v = base.clone();
        v["properties"]["type"] = json!({"type": "string", "enum": [kind]});
        if let Some(required) = v["required"].as_array_mut() {
            required.insert(0, json!("type"));
        }
        v
    };
    schemas["TransactionBody"] = json!({
        "description": "The body, by `type`: `deposit` and `withdrawal` name one user, \
            `transfer` two. `transaction_id`, chosen by the client, makes the command \
            idempotent like an Idempotency-Key.",
        "oneOf": [
            variant("deposit", &one_party),
            variant("withdrawal", &one_party),
            variant("transfer", &two_parties),
        ],
        "discriminator": {"propertyName": "type"},
    });
    let display_name = json!({
        "allOf": [
            {"pattern": "^[^\\x00-\\x1F\\x7F-\\x9F]*$"},
            {"pattern": "\\S"},
        ],
        "description": "1–100 characters after trimming, no control characters.",
    });
    for (schema, field) in [
        ("RegisterUserBody", "display_name"),
        ("UpdateProfileBody", "display_name"),
    ] {
        let property = &mut schemas[schema]["properties"][field];
        if let (Some(target), Some(extra)) = (property.as_object_mut(), display_name.as_object()) {
            for (k, v) in extra {
                target.insert(k.clone(), v.clone());
            }
        }
    }
    schemas["DeactivateUserBody"]["properties"]["reason"]["pattern"] = json!("\\S");
    // A subscription's patterns, as `event_store::TypePattern` parses them: 1 to 32.
    schemas["CreateSubscriptionBody"]["properties"]["types"]["minItems"] = json!(1);
    schemas["CreateSubscriptionBody"]["properties"]["types"]["maxItems"] = json!(32);
    schemas["CreateSubscriptionBody"]["properties"]["types"]["items"] = json!({
        "type": "string",
        "pattern": event_store::TypePattern::REGEX,
        "maxLength": event_store::TypePattern::MAX_LEN,
    });
    schemas["UpdateProfileBody"]["anyOf"] = json!([
        {"required": ["email"], "properties": {"email": {"type": "string"}}},
        {"required": ["display_name"], "properties": {"display_name": {"type": "string"}}},
    ]);

    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for (path, operations) in paths.iter_mut() {
        let Some(operations) = operations.as_object_mut() else {
            continue;
        };
        for (_, operation) in operations.iter_mut() {
            // `get_mut`, not indexing: indexing a missing key would add it as null.
            if let Some(parameters) = operation
                .get_mut("parameters")
                .and_then(serde_json::Value::as_array_mut)
            {
                for parameter in parameters {
                    let schema = match parameter["name"].as_str() {
                        Some("Idempotency-Key") => json!({
                            "type": "string", "pattern": "^[!-~]{1,128}$",
                            "minLength": 1, "maxLength": 128,
                        }),
                        Some("X-Correlation-Id") => {
                            json!({"type": "string", "pattern": HEADER_TEXT})
                        }
                        Some("If-Match") => json!({
                            "type": "string",
                            "pattern": "^(\\*|\"[0-9]{1,18}\")(, ?(\\*|\"[0-9]{1,18}\"))*$",
                        }),
                        _ => continue,
                    };
                    parameter["schema"] = schema;
                }
            }
            let Some(responses) = operation
                .get_mut("responses")
                .and_then(serde_json::Value::as_object_mut)
            else {
                continue;
            };
            if path.starts_with("/api/") {
                for (status, response) in responses.iter_mut() {
                    if status.starts_with('2') {
                        response["headers"]["Idempotent-Replayed"] = json!({
                            "description": "`true` when the answer is the recorded one of an \
                                earlier request with the same Idempotency-Key or \
                                transaction_id, and nothing was appended",
                            "schema": {"type": "string", "enum": ["true"]},
                        });
                    }
                }
            }
            if path == "/health/ready" {
                responses.insert(
                    "503".to_owned(),
                    json!({"$ref": "#/components/responses/Unavailable"}),
                );
            }
        }
    }
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json")))]
pub(crate) async fn openapi_json(
    axum::extract::State(state): axum::extract::State<crate::AppState>,
) -> impl IntoResponse {
    platform::Json(document_json(&state.currencies))
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

platform::problem_responses! {
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
