//! `cargo xtask bench`: the system against the machine's raw limits, in one run of a
//! release build (`cargo xtask bench` rebuilds and runs `bench-run`). Results go to
//! `target/bench/<name>.json`.
//!
//! - `append.rs`: the event store's appends against one-row commits (and `append-probe`).
//! - `commands.rs`: commands over HTTP against a release command-api.
//! - `pipeline.rs`: relay, projector and command-to-visible latency.
//! - `views.rs`: query-api's view cache on and off.
//! - `subscriptions.rs`: SSE and webhook delivery against the log's own limit.
//! - `export.rs`: the signer, the audit export, the verifier, backup and restore.
//!
//! Shared by them: `measure.rs` (a timed window, its samples and the figures),
//! `database.rs` (a database of the run's own), `release.rs` (release builds of the
//! services, started with a key of their own), `client.rs` (HTTP to them), `history.rs`
//! (a valid history written straight into the store), `cpu.rs` (CPU time per process).

mod append;
mod client;
mod commands;
mod cpu;
mod database;
mod export;
mod history;
mod measure;
mod pipeline;
mod release;
mod subscriptions;
mod views;

use crate::database::DbArgs;

use database::BenchDatabase;
use measure::{median, percentile_ms, round2, write_report, Sample, Window};

#[derive(clap::Args, Clone)]
pub struct BenchArgs {
    /// What to measure: `append`, `append-probe`, `commands`, `pipeline`, `views`,
    /// `subscriptions`, `export` or `all`.
    #[arg(default_value = "append")]
    pub what: String,
    /// Seconds each measured run lasts.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Runs per figure; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Concurrency levels.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    pub concurrency: Vec<usize>,
    /// `pipeline`, `export`: events in the log the rebuild (the export) reads.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: usize,
    /// `pipeline`: events the relay publishes and the projector drains, after the rebuild.
    #[arg(long, default_value_t = 200_000)]
    pub live_events: usize,
}

impl BenchArgs {
    pub fn to_args(&self) -> Vec<String> {
        vec![
            self.what.clone(),
            format!("--seconds={}", self.seconds),
            format!("--runs={}", self.runs),
            format!(
                "--concurrency={}",
                self.concurrency
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            format!("--events={}", self.events),
            format!("--live-events={}", self.live_events),
        ]
    }
}

pub(super) async fn run(db: &DbArgs, args: &BenchArgs) -> anyhow::Result<()> {
    match args.what.as_str() {
        "append" => append::run(db, args).await,
        "all" => {
            append::run(db, args).await?;
            commands::run(db, args).await?;
            pipeline::run(db, args).await?;
            views::run(db, args).await?;
            subscriptions::run(db, args).await?;
            export::run(db, args).await
        }
        "append-probe" => append::probe(db, args).await,
        "commands" => commands::run(db, args).await,
        "pipeline" => pipeline::run(db, args).await,
        "views" => views::run(db, args).await,
        "subscriptions" => subscriptions::run(db, args).await,
        "export" => export::run(db, args).await,
        other => anyhow::bail!(
            "unknown benchmark {other:?}; known: append, append-probe, commands, pipeline, views, subscriptions, export, all"
        ),
    }
}
