//! The relay: tails the log in position order and publishes every event to RabbitMQ as
//! a CloudEvent, at least once and in order (DESIGN.md §4). The log is the outbox, so
//! commands never wait for the broker.
//!
//! - [`Relay`] (this file) is the loop: win the leadership, lead, lose it or stop.
//! - `leader.rs`: `GET_LOCK('relay:<database>:<name>')` on a dedicated connection, and
//!   the checkpoint (`relay_checkpoints`) read and written over that same connection;
//!   each term increments the relay's epoch there first (ADR 0013).
//! - `session.rs`: one broker connection's worth of publishing: a window of outstanding
//!   publisher confirms, the checkpoint moved in batches past confirmed events only.
//! - `envelope.rs`: [`CloudEvent`] and the AMQP properties of a message.
//! - `topology.rs`: [`Topology`]: the exchange, the projector's quorum queue and its
//!   dead-letter parking.
//! - `observer.rs`: [`RelayObserver`] callbacks for metrics, [`RelayStats`] in atomics.
//! - `grant.rs`: [`grant_relay`], the account the relay may run as.
//!
//! It never skips an event: a nack, a return (no queue bound for the routing key), a lost
//! broker or a read error ends the session, and the next one, after a bounded exponential
//! backoff, starts again right after the last confirmed position. Events in flight at
//! that moment are sent again, so consumers see duplicates (never gaps) and dedupe by
//! `position`. A relay that cannot confirm it still holds the lock stops publishing at
//! once; until it notices, its messages carry its term's epoch, which consumers know to
//! be older than the next leader's (`relayepoch`), and drop.

pub(crate) mod backoff;
mod envelope;
mod error;
mod grant;
pub(crate) mod leader;
mod observer;
mod session;
#[cfg(feature = "testing")]
pub mod testing;
mod topology;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::store::EventStore;
use backoff::Backoff;
use leader::{LockConnection, Term};
use session::{Session, SessionEnd};

pub use envelope::{CloudEvent, CLOUDEVENTS_CONTENT_TYPE, RELAY_EPOCH};
pub use error::RelayError;
pub use grant::grant_relay;
pub use leader::issued_epoch;
pub use observer::{NoObserver, Refusal, RelayObserver, RelayStats};
pub use topology::{
    Permissions, QueueTopology, Topology, DEFAULT_DEAD_LETTER_EXCHANGE, DEFAULT_DEAD_LETTER_QUEUE,
    DEFAULT_DELIVERY_LIMIT, DEFAULT_EXCHANGE, DEFAULT_QUEUE, SUBSCRIBER_QUEUE_PREFIX,
};

pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub const DEFAULT_SOURCE: &str = "urn:example:ledger";
pub const DEFAULT_RELAY_NAME: &str = "main";

/// How one relay behaves. [`RelayConfig::default`] is the dev stack's relay.
#[derive(Clone)]
pub struct RelayConfig {
    /// Names the checkpoint row and the leadership lock: relays of one name take turns.
    /// 1–64 of `[A-Za-z0-9_.-]`.
    pub name: String,
    /// `amqp://user:password@host:port/vhost` (the vhost percent-encoded, `%2f` for `/`).
    pub amqp_url: String,
    /// The CloudEvents `source` of every message.
    pub source: String,
    pub topology: Topology,
    /// Events published but not yet confirmed, at most.
    pub window: usize,
    /// How often confirmed progress is written to `relay_checkpoints`.
    pub checkpoint_interval: Duration,
    /// How often the leader checks its lock and the broker connection, and measures lag.
    pub check_interval: Duration,
    /// How long a standby's `GET_LOCK` waits before it asks again.
    pub lock_wait: Duration,
    /// First and largest pause after a failed session or an unreachable database.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// The longest the broker may take to connect, declare or take a publish.
    pub broker_timeout: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            name: DEFAULT_RELAY_NAME.into(),
            amqp_url: DEFAULT_AMQP_URL.into(),
            source: DEFAULT_SOURCE.into(),
            topology: Topology::default(),
            window: 256,
            checkpoint_interval: Duration::from_millis(100),
            check_interval: Duration::from_millis(500),
            lock_wait: Duration::from_secs(1),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            broker_timeout: Duration::from_secs(10),
        }
    }
}

impl std::fmt::Debug for RelayConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RelayConfig")
            .field("name", &self.name)
            .field("amqp_url", &redact_password(&self.amqp_url))
            .field("source", &self.source)
            .field("topology", &self.topology)
            .field("window", &self.window)
            .field("checkpoint_interval", &self.checkpoint_interval)
            .field("check_interval", &self.check_interval)
            .field("lock_wait", &self.lock_wait)
            .field("backoff_min", &self.backoff_min)
            .field("backoff_max", &self.backoff_max)
            .field("broker_timeout", &self.broker_timeout)
            .finish()
    }
}

/// `amqp://user:***@host/...` for logs.
pub fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***{}", &rest[at..])
        }
        None => url.to_owned(),
    }
}

impl RelayConfig {
    fn validate(&self) -> Result<(), RelayError> {
        let config = |field, problem: &str| RelayError::Config {
            field,
            problem: problem.into(),
        };
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 64
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if !name_ok {
            return Err(config("name", "must be 1 to 64 of [A-Za-z0-9_.-]"));
        }
        if self.source.is_empty() {
            return Err(config("source", "must not be empty"));
        }
        if self.window == 0 {
            return Err(config("window", "must be at least 1"));
        }
        if self.backoff_min.is_zero() || self.backoff_max < self.backoff_min {
            return Err(config(
                "backoff_min",
                "must be above zero and at most backoff_max",
            ));
        }
        if self.amqp_url.parse::<lapin::uri::AMQPUri>().is_err() {
            return Err(config("amqp_url", "is not an amqp:// URL"));
        }
        self.topology.validate()
    }
}

/// One relay process's worth of publishing. See the module docs.
///
/// ```no_run
/// use event_store::relay::{Relay, RelayConfig, RelayStats};
/// use event_store::{EventStore, StoreOptions};
///
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// let store = EventStore::connect("mysql://example:example@127.0.0.1:3306/example",
///     StoreOptions::default()).await?;
/// let stats = RelayStats::default();
/// let relay = Relay::new(store, RelayConfig::default())?.with_observer(stats.clone());
/// relay.run(async { let _ = tokio::signal::ctrl_c().await; }).await;
/// # Ok(())
/// # }
/// ```
pub struct Relay {
    store: EventStore,
    config: RelayConfig,
    observer: Arc<dyn RelayObserver>,
}

impl Relay {
    /// A relay over `store` (an account with SELECT on `events` and SELECT, INSERT,
    /// UPDATE on `relay_checkpoints`; see [`grant_relay`]). It uses the store's pool for
    /// reads and takes one connection out of it for the leadership lock.
    pub fn new(store: EventStore, config: RelayConfig) -> Result<Self, RelayError> {
        config.validate()?;
        Ok(Self {
            store,
            config,
            observer: Arc::new(NoObserver),
        })
    }

    pub fn with_observer(mut self, observer: impl RelayObserver) -> Self {
        self.observer = Arc::new(observer);
        self
    }

    /// Runs until `shutdown` completes: waits for the leadership, publishes while it
    /// leads, and goes back to waiting when it loses the lock. On shutdown it waits
    /// briefly for outstanding confirms, stores the checkpoint and gives the lock up.
    /// Every failure is logged and retried; nothing ends the loop but `shutdown`.
    pub async fn run<F>(self, shutdown: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let mut stop = Stop::new(shutdown);
        loop {
            let Some(mut lock) = self.campaign(&mut stop).await else {
                return;
            };
            tracing::info!(relay = %self.config.name, "leading: this relay publishes");
            self.observer.leader(true);
            let outcome = self.lead(&mut lock, &mut stop).await;
            self.observer.leader(false);
            match outcome {
                Led::Stopped => {
                    lock.release().await;
                    tracing::info!(relay = %self.config.name, "stopped; leadership released");
                    return;
                }
                Led::LockLost(error) => {
                    tracing::warn!(
                        relay = %self.config.name,
                        error = %error,
                        "leadership lost: publishing stopped, standing by",
                    );
                    // The connection may still be alive (a `false` from the check): it
                    // goes, and the lock with it.
                    drop(lock);
                }
            }
        }
    }

    /// Waits until this relay holds the lock; `None` on shutdown.
    async fn campaign(&self, stop: &mut Stop) -> Option<LockConnection> {
        let mut backoff = Backoff::new(self.config.backoff_min, self.config.backoff_max);
        let mut candidate: Option<LockConnection> = None;
        let wait_seconds = self.config.lock_wait.as_secs().max(1);
        let mut announced = false;
        loop {
            let attempt = tokio::select! {
                biased;
                () = stop.wait() => return None,
                result = self.try_lock(&mut candidate, wait_seconds) => result,
            };
            match attempt {
                Ok(true) => return candidate,
                Ok(false) => {
                    backoff.reset();
                    if !announced {
                        tracing::info!(relay = %self.config.name, "standing by: another relay leads");
                        announced = true;
                    }
                }
                Err(error) => {
                    tracing::warn!(relay = %self.config.name, error = %error, "cannot campaign for the leadership");
                    candidate = None;
                    if stop.sleep(backoff.next_delay()).await {
                        return None;
                    }
                }
            }
        }
    }

    async fn try_lock(
        &self,
        candidate: &mut Option<LockConnection>,
        wait_seconds: u64,
    ) -> Result<bool, RelayError> {
        let conn = match candidate {
            Some(conn) => conn,
            None => {
                candidate.insert(LockConnection::open(self.store.pool(), &self.config.name).await?)
            }
        };
        conn.try_lock(wait_seconds).await
    }

    /// Publishes while this relay holds the lock.
    async fn lead(&self, lock: &mut LockConnection, stop: &mut Stop) -> Led {
        let Term { epoch, checkpoint } = match lock.begin_term(&self.config.name).await {
            Ok(term) => term,
            Err(error) => return Led::LockLost(error),
        };
        let mut checkpoint = checkpoint;
        self.observer.epoch(epoch);
        self.observer.checkpoint(checkpoint);
        tracing::info!(
            relay = %self.config.name,
            epoch,
            checkpoint,
            "term begun: resuming after the checkpoint"
        );
        let mut backoff = Backoff::new(self.config.backoff_min, self.config.backoff_max);
        loop {
            let mut session = Session::new(self, lock, epoch, checkpoint);
            let end = session.run(stop).await;
            checkpoint = session.confirmed();
            match end {
                SessionEnd::Stopped => return Led::Stopped,
                SessionEnd::LockLost(error) => return Led::LockLost(error),
                SessionEnd::Failed { error, progressed } => {
                    if progressed {
                        backoff.reset();
                    }
                    let delay = backoff.next_delay();
                    tracing::warn!(
                        relay = %self.config.name,
                        error = %error,
                        checkpoint,
                        retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                        "publishing interrupted: resending from after the checkpoint",
                    );
                    // Lag keeps growing while the broker is away: say so while waiting.
                    let until = tokio::time::Instant::now() + delay;
                    loop {
                        self.measure_lag_from_log(checkpoint).await;
                        let left = until.saturating_duration_since(tokio::time::Instant::now());
                        if left.is_zero() {
                            break;
                        }
                        if stop.sleep(left.min(LAG_EVERY)).await {
                            return Led::Stopped;
                        }
                    }
                }
            }
        }
    }

    /// Lag as the log sees it, without a session: the positions after `checkpoint` and
    /// the age of the first of them.
    async fn measure_lag_from_log(&self, checkpoint: u64) {
        let next = match self.store.read_all(checkpoint, 1).await {
            Ok(page) => page.into_iter().next(),
            Err(error) => {
                tracing::debug!(error = %error, "cannot read the log to measure lag");
                return;
            }
        };
        let Some(next) = next else {
            self.observer.lag(0, 0.0);
            return;
        };
        let head = match self.store.head().await {
            Ok(head) => head.map_or(next.position, |(position, _)| position),
            Err(_) => next.position,
        };
        let age = (time::OffsetDateTime::now_utc() - next.recorded_at)
            .as_seconds_f64()
            .max(0.0);
        self.observer.lag(head.saturating_sub(checkpoint), age);
    }
}

/// How often lag is measured while the relay waits to reconnect.
const LAG_EVERY: Duration = Duration::from_secs(1);

enum Led {
    Stopped,
    LockLost(RelayError),
}

/// The caller's shutdown future, pollable from many `select!`s (it is cancel-safe) and
/// remembered once it fired.
pub(crate) struct Stop {
    signal: Pin<Box<dyn Future<Output = ()> + Send>>,
    fired: bool,
}

impl Stop {
    pub(crate) fn new(signal: impl Future<Output = ()> + Send + 'static) -> Self {
        Self {
            signal: Box::pin(signal),
            fired: false,
        }
    }

    /// Completes when shutdown was asked for.
    pub(crate) async fn wait(&mut self) {
        if !self.fired {
            self.signal.as_mut().await;
            self.fired = true;
        }
    }

    /// Sleeps for `delay`; `true` if shutdown came first.
    pub(crate) async fn sleep(&mut self, delay: Duration) -> bool {
        tokio::select! {
            biased;
            () = self.wait() => true,
            () = tokio::time::sleep(delay) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_stay_out_of_debug_output() {
        assert_eq!(
            redact_password("amqp://guest:guest@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(
            redact_password("amqp://127.0.0.1:5672/%2f"),
            "amqp://127.0.0.1:5672/%2f"
        );
        let shown = format!("{:?}", RelayConfig::default());
        assert!(!shown.contains("guest@"), "{shown}");
    }

    #[test]
    fn invalid_settings_are_refused_by_field() {
        let refused = |config: RelayConfig| match config.validate() {
            Err(RelayError::Config { field, .. }) => field,
            other => panic!("accepted: {other:?}"),
        };
        assert!(RelayConfig::default().validate().is_ok());
        let bad_name = RelayConfig {
            name: "no spaces".into(),
            ..RelayConfig::default()
        };
        assert_eq!(refused(bad_name), "name");
        let no_window = RelayConfig {
            window: 0,
            ..RelayConfig::default()
        };
        assert_eq!(refused(no_window), "window");
        let bad_url = RelayConfig {
            amqp_url: "http://x".into(),
            ..RelayConfig::default()
        };
        assert_eq!(refused(bad_url), "amqp_url");
    }
}
