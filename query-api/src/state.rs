//! What every handler shares: the read tables' pool, the event store (audit), the keys
//! that open personal data, the projection follower, the view caches, the token checker
//! and the metrics.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use event_store::EventStore;
use platform::{Authenticator, Metrics};
use sqlx::MySqlPool;

use crate::balances::BalancesRow;
use crate::cache::{CacheCounters, ViewCache};
use crate::config::DEFAULT_PROJECTION;
use crate::personal::PersonalData;
use crate::wait::{Projection, MAX_WAIT};
use read_model::UserRow;

/// Tuning of the views.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The row of `checkpoints` the views follow.
    pub projection: String,
    /// How often the checkpoint is read while someone waits, and how old a read may be
    /// for an answer's `X-Projection-Position`.
    pub poll_interval: Duration,
    /// The longest `X-Min-Position` wait (API.md: 5 s).
    pub max_wait: Duration,
    /// Entries per view cache; 0 turns caching off.
    pub cache_capacity: usize,
    /// Catch-up subscriptions (`/api/v1/events`).
    pub subscriptions: crate::events::SubscriptionSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            projection: DEFAULT_PROJECTION.to_owned(),
            poll_interval: Duration::from_millis(5),
            max_wait: MAX_WAIT,
            cache_capacity: 10_000,
            subscriptions: crate::events::SubscriptionSettings::default(),
        }
    }
}

/// The router's state. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub(crate) pool: MySqlPool,
    pub(crate) store: EventStore,
    pub(crate) personal: PersonalData,
    pub(crate) projection: Projection,
    pub(crate) users: Arc<ViewCache<UserRow>>,
    pub(crate) balances: Arc<ViewCache<BalancesRow>>,
    pub(crate) authenticator: Authenticator,
    pub(crate) metrics: Metrics,
    pub(crate) subscriptions: crate::events::Subscriptions,
    /// The anchors' JWKS file (`ANCHOR_JWKS_FILE`); `None`: not served.
    pub(crate) anchor_jwks: Option<PathBuf>,
}

impl AppState {
    /// `pool` reads the read tables; `store` the log. Registers the service's metrics
    /// with `metrics` (give each `Metrics` to one state) and starts the checkpoint
    /// poller, so it needs a Tokio runtime.
    pub fn new(
        pool: MySqlPool,
        store: EventStore,
        personal: PersonalData,
        authenticator: Authenticator,
        metrics: Metrics,
        settings: Settings,
    ) -> Self {
        let projection = Projection::start(
            pool.clone(),
            store.clone(),
            settings.projection,
            settings.poll_interval,
            settings.max_wait,
            &metrics,
        );
        let counters = CacheCounters::register(&metrics);
        let subscriptions =
            crate::events::Subscriptions::start(&store, settings.subscriptions, &metrics);
        Self {
            subscriptions,
            pool,
            store,
            personal,
            projection,
            users: Arc::new(ViewCache::new(
                "user",
                settings.cache_capacity,
                counters.clone(),
            )),
            balances: Arc::new(ViewCache::new(
                "balances",
                settings.cache_capacity,
                counters,
            )),
            authenticator,
            metrics,
            anchor_jwks: None,
        }
    }

    /// Serves the anchors' JWKS from `path`, read at each request.
    pub fn with_anchor_jwks(mut self, path: PathBuf) -> Self {
        self.anchor_jwks = Some(path);
        self
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn store(&self) -> &EventStore {
        &self.store
    }
}

impl FromRef<AppState> for Authenticator {
    fn from_ref(state: &AppState) -> Self {
        state.authenticator.clone()
    }
}
