//! The command line: one typed [`Config`] (each field also from the environment) and the
//! subcommands. `main` parses, starts telemetry and calls [`execute`].

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::process::ExitCode;

use platform::Secret;
use tokio::net::TcpListener;

use crate::error::Error;
use crate::rebuild::Progress;
use event_store::relay::DEFAULT_QUEUE;
use read_model::DEFAULT_PROJECTION;

pub const DEFAULT_DATABASE_URL: &str = "mysql://example:example@127.0.0.1:3306/example";
pub const DEFAULT_AMQP_URL: &str = platform::DEFAULT_AMQP_URL;
pub const DEFAULT_METRICS_ADDR: &str = "127.0.0.1:9102";

/// `projector [run|rebuild|verify|park]`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "projector",
    about = "Builds the read tables from the event log: consumes queue.example.events, \
             rebuilds, verifies, parks poison events."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
    #[command(flatten)]
    pub telemetry: platform::TelemetryArgs,
}

#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum Command {
    /// Consume the queue and keep the read tables current (the default).
    Run,
    /// Build the read tables again from the whole log and swap them in, while the live
    /// projector keeps serving.
    Rebuild,
    /// Rebuild into shadow tables and diff them (and ledger::replay of every stream)
    /// against the live tables; exit code 1 on any difference.
    Verify,
    /// Record a poison event's position as parked: projections skip it from now on.
    /// Only the position the projection stopped at (its checkpoint + 1) is accepted.
    Park {
        /// The event's position in the log: where the projection stopped.
        #[arg(long)]
        position: u64,
        /// Why, for the record.
        #[arg(long, default_value = "parked by an operator")]
        reason: String,
    },
}

/// Where the projector reads and writes, and how it consumes.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct Config {
    /// The database holding the event log and the read tables (`run`: an account that
    /// writes only the read tables; `rebuild`, `verify`, `park`: the owner, the default).
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_default_value = true, hide_env_values = true, global = true)]
    pub database_url: Secret,
    #[command(flatten)]
    pub broker: platform::BrokerArgs,
    /// The queue to consume. The relay declares it (with its exchange, binding and
    /// dead-letter parking); the projector's broker account may only consume it.
    #[arg(long, env = "QUEUE", default_value = DEFAULT_QUEUE, global = true)]
    pub queue: String,
    /// The projection's name: its checkpoint row and parked positions.
    #[arg(long, env = "PROJECTION", default_value = DEFAULT_PROJECTION, global = true)]
    pub projection: String,
    /// `/metrics`, `/health/live`, `/health/ready`.
    #[arg(long, env = "METRICS_ADDR", default_value = DEFAULT_METRICS_ADDR, global = true)]
    pub metrics_addr: SocketAddr,
    /// Deliveries applied in one transaction at most.
    #[arg(long, env = "BATCH_SIZE", default_value_t = 500, global = true)]
    pub batch_size: usize,
    /// Unacknowledged deliveries the broker may send ahead (about two batches, so the
    /// next batch arrives while this one commits).
    #[arg(long, env = "PREFETCH", default_value_t = 1024, global = true)]
    pub prefetch: u16,
    /// The longest a batch waits for more deliveries after its first one (the latency a
    /// batch may add to an event).
    #[arg(long, env = "BATCH_LINGER_MS", default_value_t = 5, global = true)]
    pub batch_linger_ms: u64,
    /// How long the queue may stay quiet before the active consumer compares the
    /// checkpoint with the log's head (and catches up from the log if it must).
    #[arg(long, env = "IDLE_MS", default_value_t = 1_000, global = true)]
    pub idle_ms: u64,
}

impl Config {
    /// The defaults, on this database and broker.
    pub fn new(database_url: impl Into<String>, amqp_url: impl Into<String>) -> Self {
        Self {
            database_url: Secret::new(database_url),
            broker: platform::BrokerArgs {
                amqp_url: Secret::new(amqp_url),
            },
            queue: DEFAULT_QUEUE.into(),
            projection: DEFAULT_PROJECTION.into(),
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], 9102)),
            batch_size: 500,
            prefetch: 1024,
            batch_linger_ms: 5,
            idle_ms: 1_000,
        }
    }
}

/// Runs the subcommand. Reports go to stdout, progress to stderr.
pub async fn execute(command: Option<Command>, config: Config) -> Result<ExitCode, Error> {
    match command.unwrap_or(Command::Run) {
        Command::Run => {
            let listener = TcpListener::bind(config.metrics_addr)
                .await
                .map_err(|source| Error::Bind {
                    addr: config.metrics_addr,
                    source,
                })?;
            crate::run(config, listener, platform::shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Rebuild => {
            let mut bar = ProgressLine::new();
            let report = crate::rebuild(&config, &mut |p| bar.show(p)).await;
            bar.finish();
            let report = report?;
            println!(
                "rebuilt {} events in {:.1}s ({:.0} events/s); swapped in at position {} \
                 (generation {}), caught up to {}",
                report.events,
                report.elapsed.as_secs_f64(),
                report.events as f64 / report.elapsed.as_secs_f64().max(1e-9),
                report.swapped_at,
                report.generation,
                report.checkpoint
            );
            for position in &report.parked {
                println!("skipped parked position {position}");
            }
            if let Some((position, reason)) = &report.poison {
                println!("stopped catching up at poison position {position}: {reason}");
                return Ok(ExitCode::FAILURE);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify => {
            let report = crate::verify(&config).await?;
            for difference in &report.differences {
                println!("{difference}");
            }
            println!(
                "verified at position {}: {} events, {} users, {} differences",
                report.position,
                report.events,
                report.users,
                report.differences.len()
            );
            Ok(if report.is_clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Park { position, reason } => {
            let parked = crate::park(&config, position, &reason).await?;
            println!(
                "position {} ({}) {} for projection {}; nothing was published",
                parked.position,
                parked.event_type,
                if parked.newly {
                    "parked"
                } else {
                    "was parked already"
                },
                config.projection
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// One line on stderr, redrawn in place on a terminal, a line every few seconds
/// otherwise.
struct ProgressLine {
    terminal: bool,
    last: Option<std::time::Instant>,
}

impl ProgressLine {
    fn new() -> Self {
        Self {
            terminal: std::io::stderr().is_terminal(),
            last: None,
        }
    }

    fn show(&mut self, p: &Progress) {
        let every = if self.terminal { 0.2 } else { 5.0 };
        if self.last.is_some_and(|t| t.elapsed().as_secs_f64() < every) && p.position < p.target {
            return;
        }
        self.last = Some(std::time::Instant::now());
        let percent = if p.target == 0 {
            100.0
        } else {
            p.position as f64 * 100.0 / p.target as f64
        };
        let line = format!(
            "rebuild: position {}/{} ({percent:5.1}%), {} events, {:.0} events/s",
            p.position,
            p.target,
            p.events,
            p.events_per_second()
        );
        let mut err = std::io::stderr().lock();
        let _ = if self.terminal {
            write!(err, "\r{line}\x1b[K")
        } else {
            writeln!(err, "{line}")
        };
        let _ = err.flush();
    }

    fn finish(&mut self) {
        if self.terminal && self.last.is_some() {
            eprintln!();
        }
    }
}
