//! How far the projection has got, and read-your-writes waits (`X-Min-Position`).
//!
//! The checkpoint lives in one row of `checkpoints`: a position, and the generation of
//! the tables it belongs to (each swap of `projector rebuild` makes a new one, at a
//! position no lower; docs/adr/0015). [`Projection`] publishes the highest value it has
//! read, as an [`At`], on a `tokio::sync::watch` channel:
//! - a request that only needs "the current position" reuses a value younger than the
//!   poll interval, else reads the row itself (one reader at a time; the others take its
//!   answer), so a burst of requests costs one query per interval, and idle costs none;
//! - a request that must wait for position N registers as a waiter and awaits the watch.
//!   One background task per process reads the row every poll interval while anyone
//!   waits and sleeps on a `Notify` otherwise. No request ever polls the database.
//!
//! Every read of the row (the poller's, a request's, a view's snapshot in `snapshot.rs`)
//! publishes what it saw, and the published value only moves forward, by generation and
//! then position: reads that finish out of order cannot take it back, so no answer of
//! this process says less than one it gave before (another replica, or a database
//! replica further behind, may). The view cache keys on it (`cache.rs`). A
//! read-model database recreated from nothing (generation and position back at 0) is
//! followed again once query-api restarts.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use event_store::EventStore;
use platform::prometheus_client::metrics::gauge::Gauge;
use platform::Metrics;
use read_model::{read_checkpoint, Checkpoint};
use sqlx::MySqlPool;
use tokio::sync::{watch, Mutex, Notify};
use tokio::time::Instant;

use crate::error::ApiError;

/// Requests that may wait for `X-Min-Position` at once; one more is answered 503
/// `projection_lagging` without waiting.
pub const MAX_WAITERS: usize = 1024;

/// The longest a request waits for `X-Min-Position` (API.md).
pub const MAX_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy)]
struct Observed {
    at: Checkpoint,
    /// When the row was last read; `None` before the first read.
    read_at: Option<Instant>,
}

/// The projection the views follow. Cheap to clone; the last clone dropped stops its
/// poller.
#[derive(Clone)]
pub(crate) struct Projection {
    inner: Arc<Inner>,
}

struct Inner {
    pool: MySqlPool,
    /// The log, to tell a position it has not reached (a client's mistake) from one the
    /// projection has not reached yet.
    log: EventStore,
    name: String,
    poll_interval: Duration,
    max_wait: Duration,
    observed: watch::Sender<Observed>,
    /// Requests waiting for a position; the poller runs while this is above zero.
    waiters: AtomicUsize,
    wake: Arc<Notify>,
    /// One checkpoint read at a time for requests; the rest reuse its result.
    reading: Mutex<()>,
    gauges: Gauges,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Lets the poller see that nobody is left and end.
        self.wake.notify_one();
    }
}

#[derive(Clone, Default)]
struct Gauges {
    position: Gauge,
    waiting: Gauge,
    lag_events: Gauge,
    lag_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
}

impl Gauges {
    fn register(metrics: &Metrics) -> Self {
        let gauges = Self::default();
        metrics.register(
            "query_projection_position",
            "The projection checkpoint last read by this process",
            gauges.position.clone(),
        );
        metrics.register(
            "query_read_your_writes_waiting",
            "Requests waiting for X-Min-Position right now",
            gauges.waiting.clone(),
        );
        metrics.register(
            "query_projection_lag_events",
            "Events in the log the projection has not applied (log head - checkpoint), read at scrape",
            gauges.lag_events.clone(),
        );
        metrics.register_with_unit(
            "query_projection_lag",
            "Age of the oldest event the projection has not applied, read at scrape",
            platform::prometheus_client::registry::Unit::Seconds,
            gauges.lag_seconds.clone(),
        );
        gauges
    }
}

impl Projection {
    /// Follows `name`'s checkpoint on `pool` and starts the poller (needs a runtime).
    pub(crate) fn start(
        pool: MySqlPool,
        log: EventStore,
        name: String,
        poll_interval: Duration,
        max_wait: Duration,
        metrics: &Metrics,
    ) -> Self {
        let wake = Arc::new(Notify::new());
        let (observed, _) = watch::channel(Observed {
            at: Checkpoint::default(),
            read_at: None,
        });
        let inner = Arc::new(Inner {
            pool,
            name,
            poll_interval,
            max_wait,
            log,
            observed,
            waiters: AtomicUsize::new(0),
            wake: Arc::clone(&wake),
            reading: Mutex::new(()),
            gauges: Gauges::register(metrics),
        });
        tokio::spawn(poll(Arc::downgrade(&inner), wake));
        let measured = Arc::downgrade(&inner);
        metrics.refresh_before_scrape(move || {
            let projection = measured.upgrade().map(|inner| Self { inner });
            async move {
                let Some(projection) = projection else {
                    return;
                };
                if let Err(error) = projection.measure_lag().await {
                    tracing::warn!(error = %error, "measuring the projection lag failed");
                }
            }
        });
        Self { inner }
    }

    /// The checkpoint now, give or take one poll interval.
    pub(crate) async fn current(&self) -> Result<Checkpoint, ApiError> {
        if let Some(at) = self.fresh() {
            return Ok(at);
        }
        let _reading = self.inner.reading.lock().await;
        if let Some(at) = self.fresh() {
            return Ok(at);
        }
        Ok(self.inner.read().await?)
    }

    fn fresh(&self) -> Option<Checkpoint> {
        let seen = *self.inner.observed.borrow();
        let read_at = seen.read_at?;
        (read_at.elapsed() < self.inner.poll_interval).then_some(seen.at)
    }

    /// Waits until the checkpoint is at least `min` (bounded by the maximum wait) and
    /// returns it; `None` asks for no wait. 503 `projection_lagging` on timeout.
    pub(crate) async fn reach(&self, min: Option<u64>) -> Result<Checkpoint, ApiError> {
        let now = self.current().await?;
        let Some(min) = min.filter(|&min| min > now.position) else {
            return Ok(now);
        };
        self.check_log_reached(min).await?;
        if self.inner.waiters.load(Ordering::SeqCst) >= MAX_WAITERS {
            return Err(self.lagging(min));
        }
        let mut observed = self.inner.observed.subscribe();
        let _waiting = Waiting::enter(&self.inner);
        let reached = tokio::time::timeout(
            self.inner.max_wait,
            observed.wait_for(|seen| seen.at.position >= min),
        )
        .await;
        match reached {
            Ok(Ok(seen)) => Ok(seen.at),
            // Timed out (or the sender went away, which it cannot while we hold it).
            _ => Err(self.lagging(min)),
        }
    }

    /// 422 at once for a position the log has not reached: no wait can make it true.
    /// On a read replica (`read_only`) the log itself may lag the primary that gave the
    /// client its position, so there the wait goes on as for the projection.
    async fn check_log_reached(&self, min: u64) -> Result<(), ApiError> {
        let head = self
            .inner
            .log
            .head()
            .await?
            .map_or(0, |(position, _)| position);
        if min <= head {
            return Ok(());
        }
        let replica: bool = sqlx::query_scalar("SELECT @@global.read_only <> 0")
            .fetch_one(self.inner.log.pool())
            .await?;
        if replica {
            return Ok(());
        }
        Err(ApiError::invalid(
            "X-Min-Position",
            "beyond_log_head",
            format!("the log ends at position {head}; no command returned {min}"),
        ))
    }

    /// 503 `projection_lagging` for a wait for `min`.
    pub(crate) fn lagging(&self, min: u64) -> ApiError {
        ApiError::ProjectionLagging {
            wanted: min,
            reached: self.inner.observed.borrow().at.position,
        }
    }

    /// Publishes what a read of the checkpoint row saw (a view's snapshot).
    pub(crate) fn observe(&self, at: Checkpoint) {
        self.inner.observe(at);
    }

    /// The row of `checkpoints` followed.
    pub(crate) fn name(&self) -> &str {
        &self.inner.name
    }

    pub(crate) fn poll_interval(&self) -> Duration {
        self.inner.poll_interval
    }

    pub(crate) fn max_wait(&self) -> Duration {
        self.inner.max_wait
    }

    /// Reads the checkpoint, the log head and the oldest unapplied event's age into the
    /// lag gauges; run when `/metrics` is scraped, so lag costs nothing between scrapes.
    async fn measure_lag(&self) -> Result<(), ApiError> {
        let store = &self.inner.log;
        let checkpoint = self.inner.read().await?.position;
        let head = store.head().await?.map_or(0, |(position, _)| position);
        let behind = head.saturating_sub(checkpoint);
        let age = if behind == 0 {
            0.0
        } else {
            match store.read_all(checkpoint, 1).await?.first() {
                Some(oldest) => {
                    let age = time::OffsetDateTime::now_utc() - oldest.recorded_at;
                    age.as_seconds_f64().max(0.0)
                }
                None => 0.0,
            }
        };
        let gauges = &self.inner.gauges;
        gauges.lag_events.set(gauge_value(behind));
        gauges.lag_seconds.set(age);
        Ok(())
    }
}

fn gauge_value(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Inner {
    /// Reads the checkpoint row and publishes it; returns the published value (the
    /// highest seen, which a read that finished late may be below).
    async fn read(&self) -> Result<Checkpoint, sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        let at = read_checkpoint(&mut conn, &self.name).await?;
        Ok(self.observe(at))
    }

    fn observe(&self, at: Checkpoint) -> Checkpoint {
        let mut published = at;
        self.observed.send_if_modified(|seen| {
            let first = seen.read_at.is_none();
            seen.read_at = Some(Instant::now());
            if first || at > seen.at {
                seen.at = at;
                published = at;
                true
            } else {
                published = seen.at;
                false
            }
        });
        self.gauges.position.set(gauge_value(published.position));
        published
    }
}

/// A registered waiter; leaving (also by cancellation) unregisters it.
struct Waiting<'a> {
    inner: &'a Inner,
}

impl<'a> Waiting<'a> {
    fn enter(inner: &'a Inner) -> Self {
        inner.waiters.fetch_add(1, Ordering::SeqCst);
        inner.gauges.waiting.inc();
        // A stored permit if the poller is busy: no wake-up is lost.
        inner.wake.notify_one();
        Self { inner }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.inner.waiters.fetch_sub(1, Ordering::SeqCst);
        self.inner.gauges.waiting.dec();
    }
}

/// The one poller of the process: reads the checkpoint every interval while anyone
/// waits, sleeps otherwise, ends when the projection is dropped.
async fn poll(inner: Weak<Inner>, wake: Arc<Notify>) {
    loop {
        let Some(projection) = inner.upgrade() else {
            return;
        };
        if projection.waiters.load(Ordering::SeqCst) == 0 {
            drop(projection);
            wake.notified().await;
            continue;
        }
        if let Err(error) = projection.read().await {
            tracing::warn!(%error, projection = %projection.name, "reading the checkpoint failed");
        }
        let interval = projection.poll_interval;
        drop(projection);
        tokio::time::sleep(interval).await;
    }
}
