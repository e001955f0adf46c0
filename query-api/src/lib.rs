//! query-api: the views of API.md over the read tables the projector keeps, read-your-
//! writes waits, and the audit endpoints over the event log. Writes nothing: no table, no
//! event, no key.
//!
//! A tour:
//! - [`run`] builds everything from a [`Config`] (`config.rs`) and serves; [`router`] is
//!   the whole HTTP surface over an [`AppState`] (`state.rs`), for tests and for `run`:
//!   the routes, with health, metrics, fallbacks and middleware from
//!   `platform::service_router`.
//! - `users.rs`, `balances.rs`, `transactions.rs`: the views (`users_view`,
//!   `balances_view`, `transactions_view`), role and ownership checks where the id is
//!   known; `personal.rs` opens sealed e-mail addresses and names with the keyring
//!   (`null` and `erased: true` once shredded).
//! - `events.rs`: catch-up subscriptions for downstream services: the log from any
//!   position as CloudEvents, JSON pages or Server-Sent Events that go on live.
//! - `operations.rs`: relay and projection lag, parked events, open subscriptions, for
//!   the UI's operations page (admin).
//! - `audit.rs`: the log page by page, hash-chain verification, and balances as of a time
//!   or position replayed with `ledger::replay` (roles auditor and admin); `export.rs`
//!   the log as streamed NDJSON; `anchors.rs` the signed anchors and their JWKS.
//! - `wait.rs`: the checkpoint, published on a watch channel by one poller per process
//!   that runs only while someone waits for `X-Min-Position`; projection lag metrics,
//!   measured when `/metrics` is scraped.
//! - `snapshot.rs`: every view is read in one consistent snapshot with the checkpoint,
//!   and answers with that checkpoint's position (a rebuild's swap never shows).
//! - `cache.rs`: hot views (a user, a user's balances) kept per checkpoint and its
//!   generation in moka caches, invalidated when either moves, never by a timer; hits and
//!   misses counted.
//! - `reply.rs`: `X-Projection-Position`, strong ETags, 304, `Cache-Control`;
//!   `params.rs`, `cursor.rs`: query parameters, ids, headers and opaque cursors become
//!   typed values once; `columns.rs`: how read-table columns decode.
//! - `error.rs`: `ApiError`, the one mapping to problem+json; `openapi.rs`:
//!   `/openapi.json`, generated from the handlers.
//!
//! The read tables belong to the projector (migration set `migrations/readmodel`); this
//! crate only reads them, with runtime-checked queries. Never logs personal data: opened
//! text exists only inside one answer.

mod anchors;
mod audit;
mod balances;
mod cache;
mod config;
mod cursor;
mod error;
mod events;
mod export;
mod openapi;
mod operations;
mod params;
mod personal;
mod reply;
mod snapshot;
mod state;
mod transactions;
mod users;
mod wait;

use std::future::Future;

use anyhow::Context;
use axum::middleware::from_fn_with_state;
use axum::routing::get;
use axum::Router;
use event_store::{EventStore, StoreOptions};
use platform::{Metrics, Readiness};
use sqlx::mysql::MySqlPoolOptions;
use tokio::net::TcpListener;

pub use config::{
    Config, MasterKeySource, Secret, DEFAULT_ADDR, DEFAULT_DATABASE_URL, DEFAULT_PROJECTION,
    DEV_ANCHOR_JWKS_FILE, DEV_MASTER_KEYS_FILE,
};
pub use error::ApiError;
pub use events::SubscriptionSettings;
pub use openapi::{document as openapi_document, document_json as openapi_document_json};
pub use personal::PersonalData;
pub use state::{AppState, Settings};
pub use wait::MAX_WAIT;

/// Connects to the read tables, the event log and the keyring that `config` names and
/// serves the API on `listener` until `shutdown` completes.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let state = state_from(&config).await?;
    platform::serve_with(
        listener,
        router(state),
        shutdown,
        config
            .listener
            .serve_options()
            .context("TLS_CERT_FILE / TLS_KEY_FILE")?,
    )
    .await?;
    Ok(())
}

/// The state `run` serves with.
pub async fn state_from(config: &Config) -> anyhow::Result<AppState> {
    let authenticator = config
        .auth
        .authenticator()
        .await
        .context("loading the token keys (JWKS_FILE)")?;
    let events_url = config
        .events_database_url
        .as_ref()
        .unwrap_or(&config.database_url);
    let store = EventStore::connect(
        events_url.expose(),
        StoreOptions {
            read_pool_size: config.pool_size,
            ..StoreOptions::default()
        },
    )
    .await
    .context("connecting to the event store (EVENTS_DATABASE_URL or DATABASE_URL)")?;
    let metrics = Metrics::new();
    // One pool when the log and the read tables share a database.
    let pool = match &config.events_database_url {
        None => store.pool().clone(),
        Some(_) => MySqlPoolOptions::new()
            .max_connections(config.pool_size)
            .connect(config.database_url.expose())
            .await
            .context("connecting to the read tables (DATABASE_URL)")?,
    };
    let keys = match &config.keys_database_url {
        None => store.pool().clone(),
        Some(url) => {
            let keys = MySqlPoolOptions::new()
                .max_connections(config.pool_size)
                .connect(url.expose())
                .await
                .context("connecting to the data keys' database (KEYS_DATABASE_URL)")?;
            let sampled = keys.clone();
            metrics.watch_pool("keys", move || event_store::pool_usage(&sampled));
            keys
        }
    };
    let personal = match config.master_key_source()? {
        MasterKeySource::Configured(master) => PersonalData::with_master_keys(keys, master),
        MasterKeySource::DevFile(path) => {
            if !path.exists() {
                tracing::warn!(
                    path = %path.display(),
                    "no master keys configured and no dev keys yet: personal data answers 503 until they appear"
                );
            }
            PersonalData::from_dev_file(keys, path)
        }
    };
    let log = store.pool().clone();
    metrics.watch_pool("events", move || event_store::pool_usage(&log));
    if config.events_database_url.is_some() {
        let reads = pool.clone();
        metrics.watch_pool("read_model", move || event_store::pool_usage(&reads));
    }
    Ok(AppState::new(
        pool,
        store,
        personal,
        authenticator,
        metrics,
        config.settings(),
    )
    .with_anchor_jwks(config.anchor_jwks()))
}

/// Every route: the views, the audit endpoints and `/openapi.json`, with platform's
/// `/health/live`, `/health/ready` (MariaDB answers a query), `/metrics` (projection lag
/// measured at each scrape) and middleware around them.
pub fn router(state: AppState) -> Router {
    let pool = state.pool.clone();
    let log = state.store.pool().clone();
    let readiness = Readiness::new().with_check("mariadb", move || {
        let (pool, log) = (pool.clone(), log.clone());
        async move {
            event_store::ping(&pool).await?;
            event_store::ping(&log).await
        }
    });
    let metrics = state.metrics.clone();
    let routes = Router::new()
        .route("/api/v1/users", get(users::list_users))
        .route("/api/v1/users/{id}", get(users::get_user))
        .route("/api/v1/users/{id}/balances", get(balances::get_balances))
        .route("/api/v1/transactions", get(transactions::list_transactions))
        .route(
            "/api/v1/transactions/{id}",
            get(transactions::get_transaction),
        )
        .route("/api/v1/events", get(events::list_events))
        .route("/api/v1/operations", get(operations::status))
        .route("/api/v1/audit/events", get(audit::list_events))
        .route("/api/v1/audit/verify", get(audit::verify))
        .route("/api/v1/audit/export", get(export::export))
        .route("/api/v1/audit/anchors", get(anchors::list_anchors))
        .route("/api/v1/audit/anchors/jwks", get(anchors::jwks))
        .route(
            "/api/v1/audit/users/{id}/balances",
            get(audit::historic_balances),
        )
        .route_layer(from_fn_with_state(state.clone(), reply::stamp_position))
        .route("/openapi.json", get(openapi::openapi_json))
        .with_state(state);
    platform::service_router(routes, &readiness, &metrics)
}
