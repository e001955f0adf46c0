//! What the batcher reports as it commits. The library knows no metrics crate: a service
//! implements [`AppendObserver`] (command-api with Prometheus histograms) and hands it in
//! through [`crate::StoreOptions::observer`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Callbacks from the batcher task; every method defaults to doing nothing. Keep them
/// cheap and non-blocking: the next batch waits for them.
pub trait AppendObserver: Send + Sync + 'static {
    /// A batch of `appends` appends holding `events` events was decided (each append
    /// committed or got its own error) in `took`, retries included.
    fn batch(&self, _appends: usize, _events: usize, _took: Duration) {}
    /// A whole batch was rolled back for a transient reason (deadlock, lock wait
    /// timeout, lost connection) and is tried again.
    fn batch_retried(&self) {}
    /// A batch's commit reply was lost; `settled` when the log told whether it
    /// committed before the deadline.
    fn outcome_settled(&self, _settled: bool) {}
    /// `appends` appends were answered "outcome unknown".
    fn outcome_unknown(&self, _appends: usize) {}
    /// This machine's clock was behind the log's head: events were recorded at the
    /// head's time instead of now, so that time never goes backwards along the log.
    fn clock_behind(&self) {}
}

/// The observer a store reports to, if any. Cheap to clone.
#[derive(Clone, Default)]
pub struct BatchObserver(Option<Arc<dyn AppendObserver>>);

impl BatchObserver {
    pub fn new(observer: impl AppendObserver) -> Self {
        Self(Some(Arc::new(observer)))
    }

    pub(crate) fn batch(&self, appends: usize, events: usize, took: Duration) {
        if let Some(o) = &self.0 {
            o.batch(appends, events, took);
        }
    }

    pub(crate) fn batch_retried(&self) {
        if let Some(o) = &self.0 {
            o.batch_retried();
        }
    }

    pub(crate) fn outcome_settled(&self, settled: bool) {
        if let Some(o) = &self.0 {
            o.outcome_settled(settled);
        }
    }

    pub(crate) fn outcome_unknown(&self, appends: usize) {
        if let Some(o) = &self.0 {
            o.outcome_unknown(appends);
        }
    }

    pub(crate) fn clock_behind(&self) {
        if let Some(o) = &self.0 {
            o.clock_behind();
        }
    }
}

impl fmt::Debug for BatchObserver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "BatchObserver(set)"
        } else {
            "BatchObserver(none)"
        })
    }
}
