//! Cross-cutting service code: the `Principal` extractor (JWT via JWKS), the
//! problem+json error body, telemetry, configuration helpers and health endpoints.
//!
//! Holds no domain types, no SQL and no broker code, and nothing only one service needs.
//! Libraries take values: nothing here reads the environment or keeps settings in a static.
//!
//! Where things live (modules are private; their types are re-exported here):
//!
//! | module | what |
//! |---|---|
//! | `problem` | [`Problem`], [`FieldProblem`]: RFC 9457 bodies and the generic codes of API.md |
//! | `json` | [`Json`]: body extractor (415 / 413 over 64 KiB / 400 `malformed_body`) and JSON response |
//! | `auth` | [`Authenticator`], [`TokenPolicy`], [`JwksSource`]: JWT validation against a JWKS, algorithm pinned |
//! | `verified` | tokens already verified (by SHA-256 of the token), re-checked in time on each hit, cleared when keys change |
//! | `jwks_remote` | [`RemoteJwks`], [`JwksUrl`]: a JWKS fetched from an identity provider over HTTP |
//! | `http_client` | outgoing HTTP on reqwest: the shared URL rules, the client's settings (HTTP/1.1, no redirects, no proxy), size-limited bodies |
//! | `principal` | [`Principal`], [`Role`]: the caller, its role predicates, the extractor (401 on failure) |
//! | `dev_keys` | [`DevKeys`]: the dev Ed25519 key in `.dev/`, its JWKS, token minting for tests and xtask |
//! | `telemetry` | [`init`], [`Telemetry`]: JSON log lines with `service` and the span's `correlation_id` / `trace_id` |
//! | `otlp` | [`otlp_layer`], [`OtlpExporter`], [`continue_trace`]: spans to an OpenTelemetry collector on `tracing-opentelemetry` and `opentelemetry-otlp` (OTLP/HTTP protobuf, batched on the SDK's thread, never blocking), a `traceparent` made a span's remote parent (ADR 0024) |
//! | `correlation` | [`CorrelationId`] extractor and the [`correlate`] middleware (span, echo header) |
//! | `metrics` | [`Metrics`]: registry, `http_request_duration_seconds`, `GET /metrics`, gauges refreshed before each scrape |
//! | `health` | [`Readiness`]: `GET /health/live`, `GET /health/ready` with async checks |
//! | `server` | [`service_router`] (a service's routes plus health, metrics, the problem+json fallbacks and [`observe`], the standard middleware; [`operations_router`] without routes of its own), [`serve`] / [`serve_with`] (header-read and request timeouts, a connection cap), [`shutdown_signal`] |
//! | `secret` | [`Secret`]: a password or key setting; `Debug`, `Display` and `--help` never show it |
//! | `openapi` | what both APIs' documents share: the bearer scheme, the health and metrics routes, [`openapi::ProblemDoc`] and [`problem_responses!`] |
//! | `config` | [`AuthArgs`], [`ListenerArgs`], [`TelemetryArgs`], [`BrokerArgs`]: clap groups services flatten into their `Config` |
//!
//! [`TelemetryArgs`] reads `LOG_FORMAT` (`json` | `text`), `RUST_LOG` (the filter, for log
//! lines and exported spans alike), `OTEL_EXPORTER_OTLP_ENDPOINT` (a collector's base URL,
//! plain `http://`, e.g. `http://otel-collector:4318`; spans go to `/v1/traces`; unset, the
//! default, exports nothing) and `OTEL_SERVICE_NAME` (the resource's `service.name`;
//! the name the binary passes to `init` if unset).
//!
//! A service wires it like this (its state implements `FromRef` for [`Authenticator`];
//! a real handler maps errors through the service's own `ApiError`):
//!
//! ```no_run
//! use axum::{extract::FromRef, routing::post, Router};
//! use platform::{Authenticator, Json, Metrics, Principal, Problem, Readiness};
//!
//! #[derive(Clone)]
//! struct AppState {
//!     authenticator: Authenticator,
//! }
//!
//! impl FromRef<AppState> for Authenticator {
//!     fn from_ref(state: &AppState) -> Self {
//!         state.authenticator.clone()
//!     }
//! }
//!
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Deposit {
//!     user_id: uuid::Uuid,
//!     amount: i64,
//! }
//!
//! async fn deposit(principal: Principal, Json(body): Json<Deposit>) -> Result<Json<i64>, Problem> {
//!     if !principal.may_act_for(body.user_id) {
//!         return Err(Problem::forbidden());
//!     }
//!     Ok(Json(body.amount))
//! }
//!
//! async fn run(listener: tokio::net::TcpListener, auth: platform::AuthArgs) -> anyhow::Result<()> {
//!     let metrics = Metrics::new();
//!     let readiness =
//!         Readiness::new().with_check("mariadb", || async { Ok::<(), std::io::Error>(()) });
//!     let app = Router::new()
//!         .route("/api/v1/transactions", post(deposit))
//!         .with_state(AppState { authenticator: auth.authenticator().await? });
//!     let app = platform::service_router(app, &readiness, &metrics);
//!     platform::serve(listener, app, platform::shutdown_signal()).await?;
//!     Ok(())
//! }
//! ```

mod auth;
mod config;
mod correlation;
mod dev_keys;
mod error_chain;
mod health;
mod http_client;
mod json;
mod jwks_remote;
mod metrics;
pub mod openapi;
mod otlp;
mod principal;
mod problem;
mod secret;
mod server;
mod telemetry;
mod trace_context;
mod verified;

pub use auth::{
    AuthSetupError, Authenticator, JwksSource, SigningAlgorithm, TokenError, TokenPolicy,
    UnsupportedAlgorithm,
};
pub use config::{AuthArgs, BrokerArgs, ListenerArgs, TelemetryArgs, DEFAULT_AMQP_URL};
pub use correlation::{correlate, CorrelationId, CORRELATION_ID_HEADER};
pub use dev_keys::{
    DevKeyError, DevKeys, DEV_AUDIENCE, DEV_ISSUER, DEV_JWKS_FILE, DEV_SIGNING_KEY_FILE,
};
pub use error_chain::error_chain;
pub use health::{BoxError, Readiness, ReadinessReport};
pub use json::{parse as parse_json, Json, MAX_BODY_BYTES};
pub use jwks_remote::{FetchError, InvalidJwksUrl, JwksCa, JwksUrl, RemoteJwks};
pub use metrics::{track_http, Metrics, OPENMETRICS_CONTENT_TYPE};
pub use otlp::{
    continue_trace, otlp_layer, InvalidOtlpEndpoint, OtlpEndpoint, OtlpError, OtlpExporter,
    OtlpSettings,
};
pub use principal::{Principal, Role, UnknownRole};
pub use problem::{FieldProblem, Problem, PROBLEM_CONTENT_TYPE, PROBLEM_TYPE_BASE};
pub use secret::Secret;
pub use server::{
    method_not_allowed, not_found, observe, operations_router, serve, serve_with, service_router,
    shutdown_signal, ServeError, ServeOptions, Tls, TlsError,
};
pub use telemetry::{
    init, LogFormat, Telemetry, TelemetryError, UnknownLogFormat, DEFAULT_LOG_FILTER,
};
pub use trace_context::{TraceParent, TRACEPARENT};

/// The metrics library services register their own metrics with; re-exported so every
/// crate uses the version the registry was built with.
pub use prometheus_client;
