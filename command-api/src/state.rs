//! What every handler shares: the event store, the keyring, the blind index, the
//! configured currencies, the token checker and the metrics.

use std::sync::Arc;

use axum::extract::FromRef;
use event_store::EventStore;
use keyring::{BlindIndex, ErasureRegister, KeyStore};
use ledger::CurrencySet;
use platform::prometheus_client::metrics::counter::Counter;
use platform::prometheus_client::metrics::family::Family;
use platform::{Authenticator, Metrics};

use crate::execute::DEFAULT_MAX_ATTEMPTS;

/// The router's state. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub(crate) store: EventStore,
    pub(crate) keys: KeyStore,
    pub(crate) blind_index: Arc<BlindIndex>,
    pub(crate) currencies: Arc<CurrencySet>,
    pub(crate) authenticator: Authenticator,
    pub(crate) metrics: Metrics,
    pub(crate) counters: CommandCounters,
    /// Users' states as last loaded: a load reads only newer events.
    pub(crate) states: crate::stream::StateCache,
    /// Attempts of one command on streams that keep moving (at least 1).
    pub(crate) max_attempts: u32,
    /// Webhook subscriptions (`subscriptions.rs`).
    pub(crate) webhooks: webhooks::SubscriptionTable,
    /// Which webhook targets may be subscribed.
    pub(crate) webhook_policy: webhooks::TargetPolicy,
    /// Where erasures are recorded outside the database (ADR 0019); `None`: nowhere.
    pub(crate) erasure_register: Option<Arc<ErasureRegister>>,
}

impl AppState {
    /// Registers the service's counters with `metrics`; give each `Metrics` to one state.
    pub fn new(
        store: EventStore,
        keys: KeyStore,
        blind_index: BlindIndex,
        currencies: CurrencySet,
        authenticator: Authenticator,
        metrics: Metrics,
    ) -> Self {
        let counters = CommandCounters::register(&metrics);
        let webhooks = webhooks::SubscriptionTable::new(store.pool().clone());
        Self {
            webhooks,
            webhook_policy: webhooks::TargetPolicy::default(),
            store,
            keys,
            blind_index: Arc::new(blind_index),
            currencies: Arc::new(currencies),
            authenticator,
            metrics,
            counters,
            states: crate::stream::StateCache::new(100_000),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            erasure_register: None,
        }
    }

    /// Records every erasure in `register` before the key is shredded, so a restore to
    /// an older point can shred again.
    pub fn with_erasure_register(mut self, register: ErasureRegister) -> Self {
        self.erasure_register = Some(Arc::new(register));
        self
    }

    /// How often a command is decided again when its streams moved before its append
    /// committed, before it answers 409 `concurrency_conflict`.
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Which webhook targets may be subscribed (default: `https` to public addresses).
    pub fn with_webhook_policy(mut self, policy: webhooks::TargetPolicy) -> Self {
        self.webhook_policy = policy;
        self
    }

    pub fn store(&self) -> &EventStore {
        &self.store
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}

impl FromRef<AppState> for Authenticator {
    fn from_ref(state: &AppState) -> Self {
        state.authenticator.clone()
    }
}

impl FromRef<AppState> for Arc<BlindIndex> {
    fn from_ref(state: &AppState) -> Self {
        state.blind_index.clone()
    }
}

/// Labels: the command, as its handler is named (`register_user`, `deposit`, ...).
type ByCommand = Family<[(&'static str, &'static str); 1], Counter>;

/// The service's own counters, beside platform's request histograms.
#[derive(Clone, Debug, Default)]
pub(crate) struct CommandCounters {
    appends: ByCommand,
    events: ByCommand,
    conflicts: ByCommand,
    replays: ByCommand,
    unknown: ByCommand,
    register_failures: Counter,
}

impl CommandCounters {
    fn register(metrics: &Metrics) -> Self {
        let counters = Self::default();
        metrics.register(
            "command_appends",
            "Appends committed, by command",
            counters.appends.clone(),
        );
        metrics.register(
            "command_events_appended",
            "Events appended, by command",
            counters.events.clone(),
        );
        metrics.register(
            "command_version_conflicts",
            "Appends refused because a stream moved (each one retried or answered 412/409)",
            counters.conflicts.clone(),
        );
        metrics.register(
            "command_idempotent_replays",
            "Commands answered from an idempotency record, appending nothing",
            counters.replays.clone(),
        );
        metrics.register(
            "command_outcome_unknown",
            "Commands answered 503 outcome_unknown: their commit's reply was lost and the \
             log could not be asked in time",
            counters.unknown.clone(),
        );
        metrics.register(
            "erasure_register_failures",
            "Erasures applied (event appended, key shredded) that could not be written to \
             the erasure register; repeat the DELETE to record them",
            counters.register_failures.clone(),
        );
        counters
    }

    pub(crate) fn register_failed(&self) {
        self.register_failures.inc();
    }

    pub(crate) fn appended(&self, command: &'static str, events: usize) {
        self.appends.get_or_create(&[("command", command)]).inc();
        self.events
            .get_or_create(&[("command", command)])
            .inc_by(events as u64);
    }

    pub(crate) fn conflict(&self, command: &'static str) {
        self.conflicts.get_or_create(&[("command", command)]).inc();
    }

    pub(crate) fn replay(&self, command: &'static str) {
        self.replays.get_or_create(&[("command", command)]).inc();
    }

    pub(crate) fn outcome_unknown(&self, command: &'static str) {
        self.unknown.get_or_create(&[("command", command)]).inc();
    }
}
