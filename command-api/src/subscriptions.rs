//! `/api/v1/subscriptions`: webhook subscriptions (API.md, "Webhooks"), for roles admin
//! and service. command-api writes them (`webhooks::SubscriptionTable`); the deliverer
//! (`webhooks` binary) sends the events. The signing secret is made here, shown in the
//! creation's answer once, and stored wrapped by the keyring's active master key.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use event_store::TypePattern;
use ledger::FieldError;
use platform::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;
use webhooks::{
    NewSubscription, SigningSecret, Status, Subscription, SubscriptionName, TableError,
};

use crate::caller::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// `POST /api/v1/subscriptions`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateSubscriptionBody {
    /// 1–64 of `[a-z0-9-]`, unique.
    #[schema(pattern = "^[a-z0-9-]{1,64}$")]
    name: String,
    /// `https` (or `http` where insecure targets are allowed), not an internal address.
    #[schema(format = "uri", max_length = 2048)]
    url: String,
    /// Event-type patterns, RabbitMQ topic syntax; default `["#"]`.
    #[serde(default)]
    types: Option<Vec<String>>,
    /// Delivery starts after this position; default the head, `0` for the whole log.
    #[serde(default)]
    #[schema(minimum = 0)]
    after: Option<u64>,
}

/// A subscription as listed.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SubscriptionView {
    name: String,
    url: String,
    types: Vec<String>,
    /// `active` or `paused`.
    status: &'static str,
    /// Every event up to here was delivered (a 2xx) or did not match.
    delivered_position: u64,
    /// The log's last position.
    head_position: u64,
    /// Events after the checkpoint: `head_position - delivered_position`.
    lag: u64,
    /// Events given up on: none, a delivery is retried until it gets a 2xx.
    parked: u64,
    /// Why the last attempt failed, while the next event is not delivered yet.
    last_error: Option<String>,
}

/// The answer to a creation: the only time the secret is shown.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CreatedSubscription {
    name: String,
    url: String,
    types: Vec<String>,
    after: u64,
    /// `whsec_<base64>`: verifies the `webhook-signature` of every delivery.
    secret: String,
    status: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SubscriptionList {
    items: Vec<SubscriptionView>,
}

fn view(s: Subscription, head: u64) -> SubscriptionView {
    SubscriptionView {
        name: s.name.as_str().to_owned(),
        url: s.url,
        types: s.types,
        status: s.status.as_str(),
        delivered_position: s.delivered_position,
        head_position: head,
        lag: head.saturating_sub(s.delivered_position),
        parked: 0,
        last_error: s.last_error,
    }
}

/// Admin and service only; a user gets 403.
fn may_manage(caller: &Caller) -> Result<(), ApiError> {
    if caller.acts_for_anyone() {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

fn name(raw: &str) -> Result<SubscriptionName, ApiError> {
    SubscriptionName::parse(raw).map_err(|_| ApiError::NoSuchSubscription)
}

async fn head(state: &AppState) -> Result<u64, ApiError> {
    Ok(state.store.head().await?.map_or(0, |(p, _)| p))
}

/// Makes a webhook subscription.
#[utoipa::path(
    post, path = "/api/v1/subscriptions", tag = "subscriptions",
    request_body = CreateSubscriptionBody,
    responses(
        (status = 201, description = "Made; the secret is shown this once", body = CreatedSubscription),
        (status = 400, response = crate::openapi::MalformedBody),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 409, description = "already_exists", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 415, response = crate::openapi::UnsupportedMediaType),
        (status = 422, response = crate::openapi::ValidationFailed),
        (status = 503, response = crate::openapi::Unavailable),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn create_subscription(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CreateSubscriptionBody>,
) -> Result<Response, ApiError> {
    may_manage(&caller)?;
    let name = SubscriptionName::parse(&body.name)
        .map_err(|e| FieldError::new("name", "invalid_name", e.to_string()));
    let url = state
        .webhook_policy
        .check_url(&body.url)
        .map_err(|e| FieldError::new("url", "invalid_url", e.to_string()));
    let types = body.types.unwrap_or_else(|| vec!["#".to_owned()]);
    let patterns = if types.is_empty() || types.len() > 32 {
        Err(FieldError::new(
            "types",
            "invalid_pattern",
            "1 to 32 patterns",
        ))
    } else {
        types
            .iter()
            .map(|t| TypePattern::parse(t))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| FieldError::new("types", "invalid_pattern", e.to_string()))
    };
    let (name, url, _) = match (name, url, patterns) {
        (Ok(n), Ok(u), Ok(p)) => (n, u, p),
        (n, u, p) => return Err(ApiError::invalid([n.err(), u.err(), p.err()])),
    };
    let after = match body.after {
        Some(after) => after,
        None => head(&state).await?,
    };
    let key = keyring::DataKey::generate(Uuid::new_v4())?;
    let secret = SigningSecret::from_bytes(key.expose_bytes());
    let wrapped = state.keys.master_keys().wrap(&key)?;
    let new = NewSubscription {
        name: name.clone(),
        url: url.to_string(),
        types: types.clone(),
        after,
        secret: wrapped,
    };
    state.webhooks.create(&new).await?;
    tracing::info!(subscription = %name, after, "webhook subscription made");
    let created = CreatedSubscription {
        name: name.as_str().to_owned(),
        url: new.url,
        types,
        after,
        secret: secret.to_text(),
        status: Status::Active.as_str(),
    };
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// Every webhook subscription, with its progress.
#[utoipa::path(
    get, path = "/api/v1/subscriptions", tag = "subscriptions",
    responses(
        (status = 200, description = "The subscriptions", body = SubscriptionList),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 503, response = crate::openapi::Unavailable),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn list_subscriptions(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<SubscriptionList>, ApiError> {
    may_manage(&caller)?;
    let head = head(&state).await?;
    let items = state
        .webhooks
        .list()
        .await?
        .into_iter()
        .map(|s| view(s, head))
        .collect();
    Ok(Json(SubscriptionList { items }))
}

/// One webhook subscription.
#[utoipa::path(
    get, path = "/api/v1/subscriptions/{name}", tag = "subscriptions",
    params(("name" = String, Path)),
    responses(
        (status = 200, description = "The subscription", body = SubscriptionView),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, description = "not_found", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 503, response = crate::openapi::Unavailable),
    ),
    security(("bearer" = []))
)]
#[tracing::instrument(skip_all)]
pub(crate) async fn get_subscription(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Json<SubscriptionView>, ApiError> {
    may_manage(&caller)?;
    let name = name(&raw)?;
    let head = head(&state).await?;
    let found = state.webhooks.get(&name).await?;
    found
        .map(|s| Json(view(s, head)))
        .ok_or(ApiError::NoSuchSubscription)
}

async fn set_status(
    state: &AppState,
    caller: &Caller,
    raw: &str,
    status: Status,
) -> Result<Json<SubscriptionView>, ApiError> {
    may_manage(caller)?;
    let name = name(raw)?;
    if !state.webhooks.set_status(&name, status).await? {
        return Err(ApiError::NoSuchSubscription);
    }
    tracing::info!(subscription = %name, status = status.as_str(), "webhook subscription changed");
    let head = head(state).await?;
    let found = state.webhooks.get(&name).await?;
    found
        .map(|s| Json(view(s, head)))
        .ok_or(ApiError::NoSuchSubscription)
}

/// Stops delivering (the checkpoint stays where it is).
#[utoipa::path(
    post, path = "/api/v1/subscriptions/{name}/pause", tag = "subscriptions",
    params(("name" = String, Path)),
    responses(
        (status = 200, description = "Paused", body = SubscriptionView),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, description = "not_found", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 503, response = crate::openapi::Unavailable),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn pause_subscription(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Json<SubscriptionView>, ApiError> {
    set_status(&state, &caller, &raw, Status::Paused).await
}

/// Delivers again, from the checkpoint.
#[utoipa::path(
    post, path = "/api/v1/subscriptions/{name}/resume", tag = "subscriptions",
    params(("name" = String, Path)),
    responses(
        (status = 200, description = "Resumed", body = SubscriptionView),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, description = "not_found", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 503, response = crate::openapi::Unavailable),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn resume_subscription(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Json<SubscriptionView>, ApiError> {
    set_status(&state, &caller, &raw, Status::Active).await
}

/// Deletes the subscription and its checkpoint.
#[utoipa::path(
    delete, path = "/api/v1/subscriptions/{name}", tag = "subscriptions",
    params(("name" = String, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 404, description = "not_found", body = crate::openapi::ProblemDoc, content_type = "application/problem+json"),
        (status = 503, response = crate::openapi::Unavailable),
    ),
    security(("bearer" = []))
)]
pub(crate) async fn delete_subscription(
    State(state): State<AppState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    may_manage(&caller)?;
    let name = name(&raw)?;
    if state.webhooks.delete(&name).await? {
        tracing::info!(subscription = %name, "webhook subscription deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NoSuchSubscription)
    }
}

impl From<TableError> for ApiError {
    fn from(e: TableError) -> Self {
        match e {
            TableError::AlreadyExists => ApiError::SubscriptionExists,
            TableError::Database(source) => {
                ApiError::Store(event_store::StoreError::Database(source))
            }
            TableError::Corrupt(what) => ApiError::Corrupt { what },
        }
    }
}
