//! The event store's batches as Prometheus metrics: how many appends and events each
//! group commit held, how long it took, how often a batch was rolled back and retried,
//! how lost commit replies were settled, and how often the clock was behind the log.

use std::time::Duration;

use event_store::AppendObserver;
use platform::prometheus_client::metrics::counter::Counter;
use platform::prometheus_client::metrics::family::Family;
use platform::prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use platform::prometheus_client::registry::Unit;
use platform::Metrics;

#[derive(Clone)]
pub(crate) struct BatchMetrics {
    appends: Histogram,
    events: Histogram,
    duration: Histogram,
    retries: Counter,
    settled: Family<[(&'static str, &'static str); 1], Counter>,
    clock_behind: Counter,
}

impl BatchMetrics {
    pub(crate) fn register(metrics: &Metrics) -> Self {
        let this = Self {
            // 1 … 1024
            appends: Histogram::new(exponential_buckets(1.0, 2.0, 11)),
            events: Histogram::new(exponential_buckets(1.0, 2.0, 11)),
            // 100 µs … about 1.6 s
            duration: Histogram::new(exponential_buckets(0.0001, 2.0, 15)),
            retries: Counter::default(),
            settled: Family::default(),
            clock_behind: Counter::default(),
        };
        metrics.register(
            "append_batch_appends",
            "Appends decided together in one group-commit batch",
            this.appends.clone(),
        );
        metrics.register(
            "append_batch_events",
            "Events in one group-commit batch",
            this.events.clone(),
        );
        metrics.register_with_unit(
            "append_batch_duration",
            "Time from taking a batch to every append in it committed or refused",
            Unit::Seconds,
            this.duration.clone(),
        );
        metrics.register(
            "append_batch_retries",
            "Batches rolled back for a transient reason and tried again",
            this.retries.clone(),
        );
        metrics.register(
            "append_lost_replies",
            "Batches whose commit reply was lost, by how they ended: settled from the log \
             (`settled`) or answered outcome unknown (`unknown`)",
            this.settled.clone(),
        );
        metrics.register(
            "append_clock_behind",
            "Batches recorded at the log head's time because this machine's clock was \
             behind it (recorded_at never goes backwards)",
            this.clock_behind.clone(),
        );
        this
    }
}

impl AppendObserver for BatchMetrics {
    fn batch(&self, appends: usize, events: usize, took: Duration) {
        self.appends.observe(appends as f64);
        self.events.observe(events as f64);
        self.duration.observe(took.as_secs_f64());
    }

    fn batch_retried(&self) {
        self.retries.inc();
    }

    fn outcome_settled(&self, settled: bool) {
        let how = if settled { "settled" } else { "unknown" };
        self.settled.get_or_create(&[("outcome", how)]).inc();
    }

    fn clock_behind(&self) {
        self.clock_behind.inc();
    }
}
