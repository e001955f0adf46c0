//! projector: consumes `queue.example.events`, applies events to the read tables and
//! advances its checkpoint in the same transaction; rebuild, verify and park from the
//! command line. Never writes events. The work is in the library (`lib.rs` has the map).

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = projector::Cli::parse();
    let _telemetry = cli.telemetry.init("projector")?;
    Ok(projector::execute(cli.command, cli.config).await?)
}
