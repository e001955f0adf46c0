//! What the relay reports as it works. The library knows no metrics crate: the binary
//! implements [`RelayObserver`] with Prometheus metrics, tests read [`RelayStats`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// Why the broker did not take an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// basic.nack: the broker could not store it.
    Nack,
    /// basic.return: no queue is bound for its routing key.
    Return,
}

/// Callbacks from the relay; every method defaults to doing nothing. Called from the
/// relay's task: keep them cheap and non-blocking.
pub trait RelayObserver: Send + Sync + 'static {
    /// This relay took (`true`) or gave up (`false`) the leadership.
    fn leader(&self, _leading: bool) {}
    /// A leadership term of this relay began with `epoch` (ADR 0013).
    fn epoch(&self, _epoch: u64) {}
    /// A publishing session connected to (`true`) or left (`false`) the broker.
    fn broker_connected(&self, _connected: bool) {}
    /// One event was handed to the broker.
    fn published(&self, _position: u64) {}
    /// The broker confirmed `count` more events (in order, all earlier ones included).
    fn confirmed(&self, _count: u64) {}
    /// The broker refused an event; the relay will send it again.
    fn refused(&self, _why: Refusal) {}
    /// A session ended with `count` events sent but unconfirmed: they will be sent again.
    fn republishing(&self, _count: u64) {}
    /// The stored checkpoint moved to `position`.
    fn checkpoint(&self, _position: u64) {}
    /// The head of the log is `positions` ahead of the confirmed position, and the oldest
    /// unconfirmed event this relay has sent (else the last confirmed one) was recorded
    /// `seconds` ago; 0 for both when caught up.
    fn lag(&self, _positions: u64, _seconds: f64) {}
}

/// An observer that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoObserver;

impl RelayObserver for NoObserver {}

/// Counters and gauges in atomics: cheap, clonable (clones share), readable any time.
#[derive(Debug, Default, Clone)]
pub struct RelayStats {
    inner: Arc<StatsInner>,
}

#[derive(Debug, Default)]
struct StatsInner {
    leader: AtomicBool,
    epoch: AtomicU64,
    broker_connected: AtomicBool,
    published: AtomicU64,
    last_published: AtomicU64,
    confirmed: AtomicU64,
    nacks: AtomicU64,
    returns: AtomicU64,
    republished: AtomicU64,
    checkpoint: AtomicU64,
    lag_positions: AtomicU64,
}

impl RelayStats {
    pub fn is_leader(&self) -> bool {
        self.inner.leader.load(Ordering::SeqCst)
    }
    /// The epoch of this relay's latest leadership term (0 before its first).
    pub fn epoch(&self) -> u64 {
        self.inner.epoch.load(Ordering::SeqCst)
    }
    pub fn is_broker_connected(&self) -> bool {
        self.inner.broker_connected.load(Ordering::SeqCst)
    }
    /// What the relay's readiness says of the broker: a leader must be connected to it;
    /// a standby has nothing to publish, so the broker does not make it unready.
    pub fn is_broker_ready(&self) -> bool {
        !self.is_leader() || self.is_broker_connected()
    }
    /// Events handed to the broker, re-sends included.
    pub fn published(&self) -> u64 {
        self.inner.published.load(Ordering::SeqCst)
    }
    /// The position of the event handed to the broker last.
    pub fn last_published(&self) -> u64 {
        self.inner.last_published.load(Ordering::SeqCst)
    }
    pub fn confirmed(&self) -> u64 {
        self.inner.confirmed.load(Ordering::SeqCst)
    }
    pub fn nacks(&self) -> u64 {
        self.inner.nacks.load(Ordering::SeqCst)
    }
    pub fn returns(&self) -> u64 {
        self.inner.returns.load(Ordering::SeqCst)
    }
    pub fn republished(&self) -> u64 {
        self.inner.republished.load(Ordering::SeqCst)
    }
    /// The checkpoint this relay stored last.
    pub fn checkpoint(&self) -> u64 {
        self.inner.checkpoint.load(Ordering::SeqCst)
    }
    pub fn lag_positions(&self) -> u64 {
        self.inner.lag_positions.load(Ordering::SeqCst)
    }
}

impl RelayObserver for RelayStats {
    fn leader(&self, leading: bool) {
        self.inner.leader.store(leading, Ordering::SeqCst);
    }
    fn epoch(&self, epoch: u64) {
        self.inner.epoch.store(epoch, Ordering::SeqCst);
    }
    fn broker_connected(&self, connected: bool) {
        self.inner
            .broker_connected
            .store(connected, Ordering::SeqCst);
    }
    fn published(&self, position: u64) {
        self.inner.published.fetch_add(1, Ordering::SeqCst);
        self.inner.last_published.store(position, Ordering::SeqCst);
    }
    fn confirmed(&self, count: u64) {
        self.inner.confirmed.fetch_add(count, Ordering::SeqCst);
    }
    fn refused(&self, why: Refusal) {
        let counter = match why {
            Refusal::Nack => &self.inner.nacks,
            Refusal::Return => &self.inner.returns,
        };
        counter.fetch_add(1, Ordering::SeqCst);
    }
    fn republishing(&self, count: u64) {
        self.inner.republished.fetch_add(count, Ordering::SeqCst);
    }
    fn checkpoint(&self, position: u64) {
        self.inner.checkpoint.store(position, Ordering::SeqCst);
    }
    fn lag(&self, positions: u64, _seconds: f64) {
        self.inner.lag_positions.store(positions, Ordering::SeqCst);
    }
}

/// Forwards to two observers (say, Prometheus metrics and stats for readiness).
impl<A: RelayObserver, B: RelayObserver> RelayObserver for (A, B) {
    fn leader(&self, leading: bool) {
        self.0.leader(leading);
        self.1.leader(leading);
    }
    fn epoch(&self, epoch: u64) {
        self.0.epoch(epoch);
        self.1.epoch(epoch);
    }
    fn broker_connected(&self, connected: bool) {
        self.0.broker_connected(connected);
        self.1.broker_connected(connected);
    }
    fn published(&self, position: u64) {
        self.0.published(position);
        self.1.published(position);
    }
    fn confirmed(&self, count: u64) {
        self.0.confirmed(count);
        self.1.confirmed(count);
    }
    fn refused(&self, why: Refusal) {
        self.0.refused(why);
        self.1.refused(why);
    }
    fn republishing(&self, count: u64) {
        self.0.republishing(count);
        self.1.republishing(count);
    }
    fn checkpoint(&self, position: u64) {
        self.0.checkpoint(position);
        self.1.checkpoint(position);
    }
    fn lag(&self, positions: u64, seconds: f64) {
        self.0.lag(positions, seconds);
        self.1.lag(positions, seconds);
    }
}
