//! The anchor signer: takes the hash chain outside the database (DESIGN.md §8, ADR 0017).
//!
//! One signer leads at a time (the relay's `GET_LOCK` leadership, under a lock of its own
//! kind). The leader walks the log from its last anchor with [`hash_chain::Walk`], so it
//! only ever signs a chain it recomputed itself and that still extends what it signed
//! before, and stores a signed anchor
//!
//! - at least every `every_events` positions (at the position that many after the last
//!   anchor, so no two consecutive anchors are further apart), and
//! - at the head, once `every` has passed since its last anchor while the log grew.
//!
//! Anchors are written over the lock connection (a deposed signer cannot add one) to the
//! `anchors` table, which is also the outbox of their `ledger.anchor.signed` CloudEvents
//! (`publish.rs`): each is published with a confirm and marked, and a failed publish is
//! retried on the next round; signing never waits for the broker.
//!
//! A log that no longer extends the last anchor (an event rewritten and the chain after it
//! recomputed, a restore that lost anchored events) stops the signing: the signer says so
//! ([`AnchorObserver::chain_broken`], an error line naming the position) at every round,
//! and signs nothing until an operator has looked.
//!
//! - `table.rs`: the `anchors` table; [`EventStore::anchors`] lists them.
//! - `publish.rs`: [`AnchorCloudEvent`] and the broker session.

mod publish;
mod table;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hash_chain::{AnchorPayload, Break, SignedAnchor, SigningKey, Walk};
use time::OffsetDateTime;
use tokio::time::Instant;

use crate::error::StoreError;
use crate::relay::backoff::Backoff;
use crate::relay::leader::LockConnection;
use crate::relay::{RelayError, Stop};
use crate::store::EventStore;
use publish::Publisher;
use table::StoredAnchor;

pub use publish::{AnchorBroker, AnchorCloudEvent};

/// The anchor policy of API.md: at least every 1,000 events and every 60 s.
pub const DEFAULT_EVERY_EVENTS: u64 = 1_000;
pub const DEFAULT_EVERY: Duration = Duration::from_secs(60);

/// Events the signer reads per round trip while it walks the log.
const PAGE: u32 = 1_000;
/// How often a broken chain is logged again while it stays broken.
const ALARM_EVERY: Duration = Duration::from_secs(60);
/// Anchors published per round at most, so a long backlog does not hold the lock check.
const PUBLISH_BATCH: u32 = 200;

/// How one signer behaves.
#[derive(Debug, Clone)]
pub struct AnchorConfig {
    /// Signers of one name take turns (lock `anchor:<database>:<name>`).
    pub name: String,
    /// The most positions between two consecutive anchors.
    pub every_events: u64,
    /// The longest the head of a growing log stays unanchored.
    pub every: Duration,
    /// How often the leader looks at the log, its lock and the outbox.
    pub check_interval: Duration,
    /// How long a standby's `GET_LOCK` waits before it asks again.
    pub lock_wait: Duration,
    /// First and largest pause after a failure.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Where anchors are published; `None` stores them only (tests, or a deployment
    /// whose broker copies come from elsewhere).
    pub broker: Option<AnchorBroker>,
}

impl Default for AnchorConfig {
    fn default() -> Self {
        Self {
            name: "main".into(),
            every_events: DEFAULT_EVERY_EVENTS,
            every: DEFAULT_EVERY,
            check_interval: Duration::from_secs(1),
            lock_wait: Duration::from_secs(1),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
            broker: None,
        }
    }
}

/// Why a signer could not start, or why one round failed (every round error is logged
/// and retried; only [`SignerError::Config`] reaches the caller).
#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    #[error("invalid anchor signer configuration: {field} {problem}")]
    Config {
        field: &'static str,
        problem: String,
    },
    #[error(transparent)]
    Leadership(#[from] RelayError),
    #[error("the anchors table or the log")]
    Store(#[from] StoreError),
    #[error("broker error while {doing}")]
    Broker {
        doing: &'static str,
        #[source]
        source: lapin::Error,
    },
    #[error("no answer from the broker within {seconds} s while {doing}")]
    BrokerTimeout { doing: &'static str, seconds: u64 },
    #[error("the broker did not take the anchor at {position}: {why}")]
    Refused { position: u64, why: String },
    #[error("the leadership lock was lost")]
    LockLost,
}

impl SignerError {
    fn broker(doing: &'static str) -> impl FnOnce(lapin::Error) -> Self {
        move |source| Self::Broker { doing, source }
    }
}

/// What the signer reports as it works; every method defaults to doing nothing.
pub trait AnchorObserver: Send + Sync + 'static {
    /// This signer took (`true`) or gave up (`false`) the leadership.
    fn leader(&self, _leading: bool) {}
    /// An anchor was signed and stored at `position`.
    fn signed(&self, _position: u64) {}
    /// The broker confirmed the anchor at `position`.
    fn published(&self, _position: u64) {}
    /// Anchors stored and not yet confirmed by the broker.
    fn unpublished(&self, _count: u64) {}
    /// The log stopped extending the last anchor at `position` (`None`: it extends it).
    fn chain_broken(&self, _position: Option<u64>) {}
}

/// An observer that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoAnchorObserver;

impl AnchorObserver for NoAnchorObserver {}

/// The signer's figures in atomics, for tests and readiness. Clones share.
#[derive(Debug, Default, Clone)]
pub struct AnchorStats {
    inner: Arc<StatsInner>,
}

#[derive(Debug, Default)]
struct StatsInner {
    leader: AtomicBool,
    signed: AtomicU64,
    last_signed: AtomicU64,
    published: AtomicU64,
    /// First position that broke the chain, 0 when none.
    broken_at: AtomicU64,
}

impl AnchorStats {
    pub fn is_leader(&self) -> bool {
        self.inner.leader.load(Ordering::Relaxed)
    }
    pub fn signed(&self) -> u64 {
        self.inner.signed.load(Ordering::Relaxed)
    }
    pub fn last_signed(&self) -> u64 {
        self.inner.last_signed.load(Ordering::Relaxed)
    }
    pub fn published(&self) -> u64 {
        self.inner.published.load(Ordering::Relaxed)
    }
    /// The position where the log stopped extending the last anchor, if it did.
    pub fn chain_broken_at(&self) -> Option<u64> {
        Some(self.inner.broken_at.load(Ordering::Relaxed)).filter(|p| *p > 0)
    }
}

impl AnchorObserver for AnchorStats {
    fn leader(&self, leading: bool) {
        self.inner.leader.store(leading, Ordering::Relaxed);
    }
    fn signed(&self, position: u64) {
        self.inner.signed.fetch_add(1, Ordering::Relaxed);
        self.inner.last_signed.store(position, Ordering::Relaxed);
    }
    fn published(&self, _position: u64) {
        self.inner.published.fetch_add(1, Ordering::Relaxed);
    }
    fn chain_broken(&self, position: Option<u64>) {
        self.inner
            .broken_at
            .store(position.unwrap_or(0), Ordering::Relaxed);
    }
}

impl<A: AnchorObserver, B: AnchorObserver> AnchorObserver for (A, B) {
    fn leader(&self, leading: bool) {
        self.0.leader(leading);
        self.1.leader(leading);
    }
    fn signed(&self, position: u64) {
        self.0.signed(position);
        self.1.signed(position);
    }
    fn published(&self, position: u64) {
        self.0.published(position);
        self.1.published(position);
    }
    fn unpublished(&self, count: u64) {
        self.0.unpublished(count);
        self.1.unpublished(count);
    }
    fn chain_broken(&self, position: Option<u64>) {
        self.0.chain_broken(position);
        self.1.chain_broken(position);
    }
}

/// Signs anchors over one event store. See the module docs.
pub struct AnchorSigner {
    store: EventStore,
    key: SigningKey,
    config: AnchorConfig,
    observer: Arc<dyn AnchorObserver>,
}

/// How leading ended.
enum Led {
    Stopped,
    Lost(SignerError),
}

/// Where the leader stands in the log.
struct Cursor {
    walk: Walk,
    /// `recorded_at` of the walk's head.
    head_recorded_at: Option<OffsetDateTime>,
    /// The last anchor's position.
    anchored: u64,
    /// When this leader last signed (never, right after it took over).
    last_signed: Option<Instant>,
}

impl AnchorSigner {
    /// A signer over `store` (an account with SELECT on `events` and SELECT, INSERT,
    /// UPDATE on `anchors`) signing with `key`.
    pub fn new(
        store: EventStore,
        key: SigningKey,
        config: AnchorConfig,
    ) -> Result<Self, SignerError> {
        let config_error = |field, problem: &str| SignerError::Config {
            field,
            problem: problem.into(),
        };
        if config.every_events == 0 {
            return Err(config_error("every_events", "must be at least 1"));
        }
        if config.every.is_zero() || config.check_interval.is_zero() {
            return Err(config_error(
                "every",
                "and check_interval must be above zero",
            ));
        }
        if config.backoff_min.is_zero() || config.backoff_max < config.backoff_min {
            return Err(config_error(
                "backoff_min",
                "must be above zero and at most backoff_max",
            ));
        }
        let name_ok = !config.name.is_empty()
            && config.name.len() <= 64
            && config
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if !name_ok {
            return Err(config_error("name", "must be 1 to 64 of [A-Za-z0-9_.-]"));
        }
        Ok(Self {
            store,
            key,
            config,
            observer: Arc::new(NoAnchorObserver),
        })
    }

    pub fn with_observer(mut self, observer: impl AnchorObserver) -> Self {
        self.observer = Arc::new(observer);
        self
    }

    /// The key id anchors are signed with.
    pub fn kid(&self) -> &str {
        self.key.kid()
    }

    /// Runs until `shutdown` completes: waits for the leadership, signs and publishes
    /// while it leads, stands by again when it loses the lock.
    pub async fn run<F>(self, shutdown: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let mut stop = Stop::new(shutdown);
        let name = self.config.name.clone();
        tracing::info!(signer = %name, kid = %self.key.kid(), "anchor signer starting");
        loop {
            let Some(mut lock) = self.campaign(&mut stop).await else {
                return;
            };
            tracing::info!(signer = %name, "leading: this process signs anchors");
            self.observer.leader(true);
            let led = self.lead(&mut lock, &mut stop).await;
            self.observer.leader(false);
            match led {
                Led::Stopped => {
                    lock.release().await;
                    return;
                }
                Led::Lost(error) => {
                    tracing::warn!(signer = %name, error = %error, "anchor leadership lost: standing by");
                    drop(lock);
                }
            }
        }
    }

    async fn campaign(&self, stop: &mut Stop) -> Option<LockConnection> {
        let mut backoff = Backoff::new(self.config.backoff_min, self.config.backoff_max);
        let wait_seconds = self.config.lock_wait.as_secs().max(1);
        let mut candidate: Option<LockConnection> = None;
        loop {
            let attempt = tokio::select! {
                biased;
                () = stop.wait() => return None,
                result = async {
                    let conn = match &mut candidate {
                        Some(conn) => conn,
                        None => candidate.insert(
                            LockConnection::open_for(self.store.pool(), "anchor", &self.config.name).await?,
                        ),
                    };
                    conn.try_lock(wait_seconds).await
                } => result,
            };
            match attempt {
                Ok(true) => return candidate,
                Ok(false) => backoff.reset(),
                Err(error) => {
                    tracing::warn!(error = %error, "cannot campaign for the anchor leadership");
                    candidate = None;
                    if stop.sleep(backoff.next_delay()).await {
                        return None;
                    }
                }
            }
        }
    }

    async fn lead(&self, lock: &mut LockConnection, stop: &mut Stop) -> Led {
        let mut cursor = match self.resume(lock).await {
            Ok(cursor) => cursor,
            Err(error) => return Led::Lost(error),
        };
        let mut publisher: Option<Publisher> = None;
        let mut broker_backoff = Backoff::new(self.config.backoff_min, self.config.backoff_max);
        let mut broker_retry_at = Instant::now();
        // The broken position last reported, and when: said again once a minute.
        let mut alarm: Option<(u64, Instant)> = None;
        loop {
            match lock.holds_lock().await {
                Ok(true) => {}
                Ok(false) => return Led::Lost(SignerError::LockLost),
                Err(error) => return Led::Lost(error.into()),
            }
            match self.sign_round(lock, &mut cursor).await {
                Ok(()) => {
                    alarm = None;
                    self.observer.chain_broken(None);
                }
                Err(Round::Broken(broken)) => {
                    self.observer.chain_broken(Some(broken.position()));
                    let repeat = alarm.is_some_and(|(position, at)| {
                        position == broken.position() && at.elapsed() < ALARM_EVERY
                    });
                    if !repeat {
                        alarm = Some((broken.position(), Instant::now()));
                        tracing::error!(
                        position = broken.position(),
                        anchored = cursor.anchored,
                        reason = %broken,
                        "ANCHOR CHAIN BROKEN: the log no longer extends the last signed \
                         anchor; nothing more is signed until the log is investigated \
                         (docs/runbook.md, a broken anchor chain)"
                        );
                    }
                    // Start over from the table: a restored log or a repaired one may
                    // extend an anchor again.
                    match self.resume(lock).await {
                        Ok(fresh) => cursor = fresh,
                        Err(error) => return Led::Lost(error),
                    }
                }
                Err(Round::Failed(error @ SignerError::Leadership(_))) => return Led::Lost(error),
                Err(Round::Failed(error)) => {
                    tracing::warn!(error = %error, "an anchor round failed; retrying");
                }
            }
            if self.config.broker.is_some() && Instant::now() >= broker_retry_at {
                match self.publish_round(lock, &mut publisher).await {
                    Ok(()) => broker_backoff.reset(),
                    Err(SignerError::Leadership(error)) => {
                        return Led::Lost(SignerError::Leadership(error))
                    }
                    Err(error) => {
                        let delay = broker_backoff.next_delay();
                        tracing::warn!(error = %error, retry_in_ms = delay.as_millis() as u64, "publishing anchors failed; they stay in the outbox");
                        if let Some(old) = publisher.take() {
                            old.close().await;
                        }
                        broker_retry_at = Instant::now() + delay;
                    }
                }
            }
            if stop.sleep(self.config.check_interval).await {
                if let Some(publisher) = publisher {
                    publisher.close().await;
                }
                return Led::Stopped;
            }
        }
    }

    /// Where the last anchor left the log.
    async fn resume(&self, lock: &mut LockConnection) -> Result<Cursor, SignerError> {
        let (anchored, hash) = table::last(lock.connection()).await?;
        Ok(Cursor {
            walk: Walk::after(anchored, hash),
            head_recorded_at: None,
            anchored,
            last_signed: None,
        })
    }

    /// Walks the log to its head, signing what is due on the way.
    async fn sign_round(
        &self,
        lock: &mut LockConnection,
        cursor: &mut Cursor,
    ) -> Result<(), Round> {
        loop {
            let page = self
                .store
                .read_all(cursor.walk.position(), PAGE)
                .await
                .map_err(|e| Round::Failed(e.into()))?;
            let full = page.len() == PAGE as usize;
            for event in &page {
                cursor
                    .walk
                    .step(&event.canonical(), &event.prev_hash, &event.hash)
                    .map_err(Round::Broken)?;
                cursor.head_recorded_at = Some(event.recorded_at);
                if event.position >= cursor.anchored + self.config.every_events {
                    self.sign(lock, cursor).await.map_err(Round::Failed)?;
                }
            }
            if !full {
                break;
            }
        }
        let grew = cursor.walk.position() > cursor.anchored;
        let due = cursor
            .last_signed
            .is_none_or(|at| at.elapsed() >= self.config.every);
        if grew && due {
            self.sign(lock, cursor).await.map_err(Round::Failed)?;
        }
        Ok(())
    }

    /// Signs and stores the walk's head.
    async fn sign(
        &self,
        lock: &mut LockConnection,
        cursor: &mut Cursor,
    ) -> Result<(), SignerError> {
        let Some(recorded_at) = cursor.head_recorded_at else {
            return Ok(());
        };
        let payload = AnchorPayload {
            position: cursor.walk.position(),
            hash: cursor.walk.hash(),
            recorded_at,
        };
        let anchor = StoredAnchor {
            signed: SignedAnchor::sign(payload, &self.key),
            event_id: uuid::Uuid::now_v7(),
            signed_at: OffsetDateTime::now_utc(),
        };
        table::insert(lock.connection(), &anchor, self.key.kid()).await?;
        cursor.anchored = anchor.signed.position;
        cursor.last_signed = Some(Instant::now());
        self.observer.signed(anchor.signed.position);
        tracing::debug!(position = anchor.signed.position, "anchor signed");
        Ok(())
    }

    /// Publishes what the outbox holds, oldest first.
    async fn publish_round(
        &self,
        lock: &mut LockConnection,
        publisher: &mut Option<Publisher>,
    ) -> Result<(), SignerError> {
        let Some(broker) = &self.config.broker else {
            return Ok(());
        };
        let pending = table::unpublished(lock.connection(), PUBLISH_BATCH).await?;
        self.observer.unpublished(pending.len() as u64);
        if pending.is_empty() {
            return Ok(());
        }
        if publisher.as_ref().is_some_and(|p| !p.connected()) {
            if let Some(old) = publisher.take() {
                old.close().await;
            }
        }
        let session = match publisher {
            Some(session) => session,
            None => publisher.insert(Publisher::connect(broker, &self.config.name).await?),
        };
        for anchor in &pending {
            session.publish(anchor, broker).await?;
            table::mark_published(lock.connection(), anchor.signed.position).await?;
            self.observer.published(anchor.signed.position);
        }
        Ok(())
    }
}

/// How a signing round ended badly.
enum Round {
    /// The log does not extend the last anchor: never sign past this.
    Broken(Break),
    Failed(SignerError),
}
