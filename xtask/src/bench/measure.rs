//! A measured window of closed-loop workers, the sample it yields, the figures taken
//! from samples (median, percentiles) and the report file they are written to.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

/// One run's figures.
pub(crate) struct Sample {
    pub(crate) per_s: f64,
    pub(crate) latencies_us: Vec<u64>,
}

/// A warm-up followed by a measured window; operations that finish inside the window
/// count.
#[derive(Clone)]
pub(crate) struct Window {
    start: Instant,
    warm: Duration,
    end: Duration,
    seconds: f64,
}

impl Window {
    pub(crate) fn new(seconds: f64) -> Arc<Self> {
        let warm = Duration::from_millis(500);
        Arc::new(Self {
            start: Instant::now(),
            warm,
            end: warm + Duration::from_secs_f64(seconds),
            seconds,
        })
    }

    /// `None` when the window has closed; otherwise whether the next operation counts.
    pub(crate) fn next(&self) -> Option<bool> {
        let now = self.start.elapsed();
        (now < self.end).then_some(now >= self.warm)
    }

    pub(crate) fn still_open(&self) -> bool {
        self.start.elapsed() < self.end
    }

    pub(crate) async fn collect(
        self: Arc<Self>,
        tasks: Vec<tokio::task::JoinHandle<anyhow::Result<Vec<u64>>>>,
    ) -> anyhow::Result<Sample> {
        let mut latencies_us = Vec::new();
        for t in tasks {
            latencies_us.extend(t.await??);
        }
        latencies_us.sort_unstable();
        Ok(Sample {
            per_s: latencies_us.len() as f64 / self.seconds,
            latencies_us,
        })
    }
}

pub(crate) fn percentile_ms(sorted_us: &[u64], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let i = ((sorted_us.len() as f64 - 1.0) * p).round() as usize;
    sorted_us[i.min(sorted_us.len() - 1)] as f64 / 1000.0
}

pub(crate) fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    if xs.is_empty() {
        0.0
    } else {
        xs[xs.len() / 2]
    }
}

pub(crate) fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

pub(crate) fn write_report(file: &str, report: &impl Serialize) -> anyhow::Result<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(|p| p.join("target").join("bench"))
        .context("locating target/")?;
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(file);
    std::fs::write(&path, serde_json::to_vec_pretty(report)?)?;
    Ok(path)
}
