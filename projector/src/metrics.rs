//! The projector's Prometheus metrics, registered in the process's `platform::Metrics`.

use std::sync::atomic::AtomicU64;

use platform::prometheus_client::metrics::counter::Counter;
use platform::prometheus_client::metrics::gauge::Gauge;
use platform::prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use platform::prometheus_client::registry::Unit;
use platform::Metrics;

use crate::checkpoint::BatchOutcome;

/// Cheap to clone; clones update the same series.
#[derive(Clone, Debug)]
pub(crate) struct ProjectorMetrics {
    pub checkpoint: Gauge,
    pub log_head: Gauge,
    pub lag_events: Gauge,
    pub lag_seconds: Gauge<f64, AtomicU64>,
    pub batch_events: Histogram,
    pub batch_seconds: Histogram,
    pub applied: Counter,
    pub deliveries: Counter,
    pub redeliveries: Counter,
    pub duplicates: Counter,
    pub gaps_filled: Counter,
    pub parked_skipped: Counter,
    pub unplaceable: Counter,
    pub disagreeing: Counter,
    pub stale: Counter,
    pub epoch: Gauge,
    pub ignored: Counter,
    pub poisoned: Gauge,
    pub poison_position: Gauge,
}

impl ProjectorMetrics {
    pub fn register(metrics: &Metrics) -> Self {
        let this = Self {
            checkpoint: Gauge::default(),
            log_head: Gauge::default(),
            lag_events: Gauge::default(),
            lag_seconds: Gauge::default(),
            // 1 … 4096 events
            batch_events: Histogram::new(exponential_buckets(1.0, 2.0, 13)),
            // 1 ms … 8 s
            batch_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            applied: Counter::default(),
            deliveries: Counter::default(),
            redeliveries: Counter::default(),
            duplicates: Counter::default(),
            gaps_filled: Counter::default(),
            parked_skipped: Counter::default(),
            unplaceable: Counter::default(),
            disagreeing: Counter::default(),
            stale: Counter::default(),
            epoch: Gauge::default(),
            ignored: Counter::default(),
            poisoned: Gauge::default(),
            poison_position: Gauge::default(),
        };
        metrics.register(
            "projector_checkpoint_position",
            "Log position the read tables are at (the checkpoint)",
            this.checkpoint.clone(),
        );
        metrics.register(
            "projector_log_head_position",
            "Last position in the event log",
            this.log_head.clone(),
        );
        metrics.register(
            "projector_lag_events",
            "Events in the log not yet in the read tables (head - checkpoint)",
            this.lag_events.clone(),
        );
        metrics.register_with_unit(
            "projector_lag",
            "Age of the oldest event not yet in the read tables",
            Unit::Seconds,
            this.lag_seconds.clone(),
        );
        metrics.register(
            "projector_batch_events",
            "Events applied per batch transaction",
            this.batch_events.clone(),
        );
        metrics.register_with_unit(
            "projector_batch_duration",
            "Time to apply one batch transaction",
            Unit::Seconds,
            this.batch_seconds.clone(),
        );
        metrics.register(
            "projector_events_applied",
            "Events applied to the read tables",
            this.applied.clone(),
        );
        metrics.register(
            "projector_deliveries",
            "Messages received from the queue",
            this.deliveries.clone(),
        );
        metrics.register(
            "projector_redeliveries",
            "Messages the broker marked as redelivered",
            this.redeliveries.clone(),
        );
        metrics.register(
            "projector_duplicates_skipped",
            "Messages at or below the checkpoint, acknowledged and skipped",
            this.duplicates.clone(),
        );
        metrics.register(
            "projector_gap_events_filled",
            "Events applied although no message brought them (read from the log like all)",
            this.gaps_filled.clone(),
        );
        metrics.register(
            "projector_parked_skipped",
            "Parked positions stepped over",
            this.parked_skipped.clone(),
        );
        metrics.register(
            "projector_unplaceable_messages",
            "Messages without a readable position, dead-lettered",
            this.unplaceable.clone(),
        );
        metrics.register(
            "projector_disagreeing_messages",
            "Messages that are not what the log holds at their position (forged, or from \
             another log), acknowledged and dropped",
            this.disagreeing.clone(),
        );
        metrics.register(
            "projector_stale_epoch_messages",
            "Messages of an earlier relay leadership term than one already accepted, \
             acknowledged and dropped",
            this.stale.clone(),
        );
        metrics.register(
            "projector_relay_epoch",
            "The highest relay epoch the projection has accepted a message of",
            this.epoch.clone(),
        );
        metrics.register(
            "projector_ignored_messages",
            "Messages that are not events of the log (signed anchors), acknowledged and skipped",
            this.ignored.clone(),
        );
        metrics.register(
            "projector_poisoned",
            "1 while the projection is stopped in front of a poison event",
            this.poisoned.clone(),
        );
        metrics.register(
            "projector_poison_position",
            "Position of the poison event the projection stopped at (0: none)",
            this.poison_position.clone(),
        );
        this
    }

    pub fn record_batch(&self, outcome: &BatchOutcome, seconds: f64) {
        self.applied.inc_by(outcome.applied);
        self.duplicates.inc_by(outcome.duplicates);
        self.gaps_filled.inc_by(outcome.gap_filled);
        self.parked_skipped.inc_by(outcome.parked.len() as u64);
        self.disagreeing.inc_by(outcome.disagreeing.len() as u64);
        self.stale.inc_by(outcome.stale.len() as u64);
        if outcome.epoch > 0 {
            self.epoch.set(gauge(outcome.epoch));
        }
        if outcome.checkpoint > outcome.before {
            self.batch_events.observe(outcome.applied as f64);
            self.batch_seconds.observe(seconds);
            self.checkpoint.set(gauge(outcome.checkpoint));
        }
    }
}

/// A position as a gauge value.
pub(crate) fn gauge(position: u64) -> i64 {
    i64::try_from(position).unwrap_or(i64::MAX)
}

/// Once a second until `stop`: checkpoint, log head, lag in events and in seconds (the
/// age of the oldest event not yet applied).
pub(crate) async fn observe_lag(
    projection: crate::checkpoint::Projection,
    metrics: ProjectorMetrics,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        if let (Ok(checkpoint), Ok(head)) =
            (projection.checkpoint().await, projection.store.head().await)
        {
            let head = head.map_or(0, |(position, _)| position);
            metrics.checkpoint.set(gauge(checkpoint));
            metrics.log_head.set(gauge(head));
            metrics
                .lag_events
                .set(gauge(head.saturating_sub(checkpoint)));
            let mut seconds = 0.0;
            if head > checkpoint {
                if let Ok(next) = projection.store.read_all(checkpoint, 1).await {
                    if let Some(oldest) = next.first() {
                        let age = time::OffsetDateTime::now_utc() - oldest.recorded_at;
                        seconds = age.as_seconds_f64().max(0.0);
                    }
                }
            }
            metrics.lag_seconds.set(seconds);
        }
        tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => return,
            () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        }
    }
}
