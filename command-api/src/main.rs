//! command-api: the ledger's command side (API.md, Commands). Parses `Config` from flags
//! and the environment, starts telemetry, binds `COMMAND_API_ADDR` and hands over to
//! `command_api::run`; everything else lives in the library. `command-api rewrap-keys`
//! runs the operator task instead (docs/runbook.md, rotating master keys).

use anyhow::Context;
use clap::Parser;
use command_api::{Config, Task};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let _telemetry = config.telemetry.init("command-api")?;
    if let Some(Task::RewrapKeys { batch }) = config.task {
        let moved = command_api::rewrap_keys(&config, batch).await?;
        println!("{moved} data keys rewrapped");
        return Ok(());
    }
    let listener = TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("binding {}", config.addr))?;
    command_api::run(listener, config, platform::shutdown_signal()).await
}
