//! command-api: the HTTP commands of API.md. Parses and authorises a request, loads the
//! streams it touches, runs `ledger::decide` and appends the resulting events (with the
//! idempotency record and e-mail claims) in one atomic append. Never reads projections,
//! never writes a table other than through the event store, the keyring and the webhook
//! subscriptions' table.
//!
//! A tour:
//! - [`run`] builds everything from a [`Config`] and serves; [`router`] is the whole HTTP
//!   surface over an [`AppState`] (`state.rs`), for tests and for `run`: the routes, with
//!   health, metrics, fallbacks and middleware from `platform::service_router`.
//! - `caller.rs`: the `Caller` extractor (token → 401, role → 403, `Idempotency-Key` →
//!   422, correlation and trace ids for the metadata) and `If-Match`.
//! - `users.rs`, `transactions.rs`: one handler per command; raw input becomes ledger
//!   newtypes there, personal data is sealed with the keyring before `decide` sees it.
//! - `execute.rs`: load → decide → append, retried on a moved stream.
//! - `stream.rs`: reading and folding a user stream, `LedgerEvent` ↔ `NewEvent`, and the
//!   `StateCache` of folded states (moka) a first attempt decides on.
//! - `email_index.rs`, `idempotency.rs`: the claims made in the same append.
//! - `reply.rs`: the success answer (`X-Position`, `ETag`); `error.rs`: `ApiError`, the
//!   one mapping to problem+json.
//! - `subscriptions.rs`: webhook subscriptions (admin, service) in `webhooks`' table; the
//!   `webhooks` deliverer sends them.
//! - `sweeper.rs`: the erasure sweeper, at start and every interval: shreds the key of
//!   every user erased in the log whose key is still live (an erasure cut short).
//! - `openapi.rs`: `/openapi.json`, generated from the handlers; `config.rs`: settings
//!   and the dev secrets in `.dev/`; `append_metrics.rs`: the store's batches as metrics.
//!
//! Never logs personal data or key material: e-mail and name exist in clear only inside
//! a handler, on their way to the keyring.

mod append_metrics;
mod caller;
mod config;
mod dev_token;
mod email_index;
mod error;
mod execute;
mod idempotency;
mod openapi;
mod reply;
mod state;
mod stream;
mod subscriptions;
mod sweeper;
mod transactions;
mod users;

use std::future::Future;

use anyhow::Context;
use axum::routing::{delete, get, patch, post};
use axum::Router;
use event_store::{EventStore, StoreOptions};
use keyring::KeyStore;
use platform::{Metrics, Readiness};
use tokio::net::TcpListener;

pub use config::{
    dev_secrets, Config, Secret, Secrets, Task, DEFAULT_ADDR, DEFAULT_DATABASE_URL,
    DEV_BLIND_INDEX_KEY_FILE, DEV_ERASURE_REGISTER_FILE, DEV_MASTER_KEYS_FILE,
};
pub use error::ApiError;
pub use idempotency::{sweep as sweep_idempotency_records, Expiry as IdempotencyExpiry};
pub use openapi::{document as openapi_document, document_json as openapi_document_json};
pub use state::AppState;
pub use users::{DEACTIVATION_REASON_FIELD, DISPLAY_NAME_FIELD, EMAIL_FIELD};

/// Connections to a data keys' database of its own (KEYS_DATABASE_URL): keys are read on
/// a key-cache miss and written at registration and erasure only.
const KEYS_POOL_SIZE: u32 = 8;

/// Connects to the event store and keyring that `config` names and serves the API on
/// `listener` until `shutdown` completes.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    refuse_unsafe_settings(&listener, &config)?;
    let listening = config
        .listener
        .serve_options()
        .context("TLS_CERT_FILE / TLS_KEY_FILE")?;
    let state = state_from(&config).await?;
    let expiring = tokio::spawn(idempotency::sweep_forever(
        state.store().clone(),
        config.idempotency_expiry(),
    ));
    let sweeper = sweeper::Sweeper::new(
        state.store.clone(),
        state.keys.clone(),
        std::time::Duration::from_secs(config.erasure_sweep_interval_secs),
        state.metrics(),
    );
    let sweeping = tokio::spawn(sweeper.run());
    let mut app = router(state);
    if config.dev_tokens {
        let keys = platform::DevKeys::load_or_create(&config.dev_dir)
            .context("loading the dev signing key (DEV_DIR)")?;
        tracing::warn!("serving GET /dev/token: development only");
        app = app.merge(dev_token::router(std::sync::Arc::new(keys)));
    }
    let served = platform::serve_with(listener, app, shutdown, listening).await;
    expiring.abort();
    sweeping.abort();
    served?;
    Ok(())
}

/// Settings the service will not start with: dev tokens anywhere but a developer's
/// loopback listener without an identity provider (anyone reaching `/dev/token` could
/// mint an admin token), and a request timeout that could cut off a command that may
/// have been applied.
fn refuse_unsafe_settings(listener: &TcpListener, config: &Config) -> anyhow::Result<()> {
    if config.dev_tokens {
        if config.auth.jwks_url.is_some() {
            anyhow::bail!(
                "DEV_TOKENS cannot be on together with JWKS_URL: dev tokens are for the dev \
                 stack only"
            );
        }
        let addr = listener
            .local_addr()
            .context("reading the listen address")?;
        if !addr.ip().is_loopback() {
            anyhow::bail!(
                "DEV_TOKENS needs a loopback listen address (127.0.0.1 or ::1), not {addr}: \
                 dev tokens are for the dev stack only"
            );
        }
    }
    if config.listener.request_timeout_secs <= config.deadline_secs {
        anyhow::bail!(
            "HTTP_REQUEST_TIMEOUT_SECS ({}) must be longer than COMMAND_DEADLINE_SECS ({})",
            config.listener.request_timeout_secs,
            config.deadline_secs
        );
    }
    Ok(())
}

/// Rewraps every data key under the active master-key version (`command-api
/// rewrap-keys`); returns how many moved. The keys of the configuration are used as the
/// service would use them, the older versions to unwrap, the highest to wrap.
pub async fn rewrap_keys(config: &Config, batch: u32) -> anyhow::Result<u64> {
    let secrets = config.secrets()?;
    let active = secrets.master_keys.active_version();
    let pool = sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(1)
        .connect(config.keys_database_url().expose())
        .await
        .context("connecting to the data keys' database (KEYS_DATABASE_URL or DATABASE_URL)")?;
    let moved = KeyStore::new(pool.clone(), secrets.master_keys)
        .rewrap_all(batch)
        .await
        .context("rewrapping data keys")?;
    pool.close().await;
    tracing::info!(
        moved,
        active,
        "data keys rewrapped under the active master key"
    );
    Ok(moved)
}

/// The state `run` serves with.
pub async fn state_from(config: &Config) -> anyhow::Result<AppState> {
    let currencies = config.currency_set()?;
    let secrets = config.secrets()?;
    let authenticator = config
        .auth
        .authenticator()
        .await
        .context("loading the token keys (JWKS_FILE)")?;
    let metrics = Metrics::new();
    let store = EventStore::connect(
        config.database_url.expose(),
        StoreOptions {
            // Commands read their streams on a cache miss or a conflict: a connection
            // for each of many commands in flight.
            read_pool_size: 32,
            append_deadline: std::time::Duration::from_secs(config.deadline_secs.max(1)),
            connect_timeout: std::time::Duration::from_secs(config.connect_timeout_secs.max(1)),
            read_timeout: std::time::Duration::from_secs(config.read_timeout_secs.max(1)),
            observer: event_store::BatchObserver::new(append_metrics::BatchMetrics::register(
                &metrics,
            )),
            ..StoreOptions::default()
        },
    )
    .await
    .context("connecting to the event store (DATABASE_URL)")?;
    let pool = store.pool().clone();
    metrics.watch_pool("events", move || event_store::pool_usage(&pool));
    let keys_pool = match &config.keys_database_url {
        None => store.pool().clone(),
        Some(url) => {
            let pool = sqlx::mysql::MySqlPoolOptions::new()
                .max_connections(KEYS_POOL_SIZE)
                .acquire_timeout(std::time::Duration::from_secs(
                    config.connect_timeout_secs.max(1),
                ))
                .connect(url.expose())
                .await
                .context("connecting to the data keys' database (KEYS_DATABASE_URL)")?;
            let sampled = pool.clone();
            metrics.watch_pool("keys", move || event_store::pool_usage(&sampled));
            pool
        }
    };
    let keys = KeyStore::with_options(
        keys_pool,
        secrets.master_keys,
        keyring::KeyStoreOptions {
            query_timeout: std::time::Duration::from_secs(config.read_timeout_secs.max(1)),
            ..keyring::KeyStoreOptions::default()
        },
    );
    Ok(AppState::new(
        store,
        keys,
        secrets.blind_index,
        currencies,
        authenticator,
        metrics,
    )
    .with_max_attempts(config.max_attempts)
    .with_webhook_policy(webhooks::TargetPolicy {
        allow_insecure: config.webhook_allow_insecure,
    })
    .with_erasure_register(keyring::ErasureRegister::new(config.erasure_register())))
}

/// Every route: the commands and `/openapi.json`, with platform's `/health/live`,
/// `/health/ready` (MariaDB answers a query), `/metrics` and middleware around them.
pub fn router(state: AppState) -> Router {
    let pool = state.store().pool().clone();
    let readiness = Readiness::new().with_check("mariadb", move || {
        let pool = pool.clone();
        async move { event_store::ping(&pool).await }
    });
    let metrics = state.metrics().clone();
    let routes = Router::new()
        .route("/api/v1/users", post(users::register_user))
        .route("/api/v1/users/{id}", patch(users::update_profile))
        .route(
            "/api/v1/users/{id}/deactivate",
            post(users::deactivate_user),
        )
        .route(
            "/api/v1/users/{id}/personal-data",
            delete(users::erase_personal_data),
        )
        .route(
            "/api/v1/transactions",
            post(transactions::record_transaction),
        )
        .route(
            "/api/v1/subscriptions",
            post(subscriptions::create_subscription).get(subscriptions::list_subscriptions),
        )
        .route(
            "/api/v1/subscriptions/{name}",
            get(subscriptions::get_subscription).delete(subscriptions::delete_subscription),
        )
        .route(
            "/api/v1/subscriptions/{name}/pause",
            post(subscriptions::pause_subscription),
        )
        .route(
            "/api/v1/subscriptions/{name}/resume",
            post(subscriptions::resume_subscription),
        )
        .route("/openapi.json", get(openapi::openapi_json))
        .with_state(state);
    platform::service_router(routes, &readiness, &metrics)
}
