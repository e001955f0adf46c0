//! command-api: the ledger's command side (API.md, Commands). Parses `Config` from flags
//! and the environment, starts telemetry, binds `COMMAND_API_ADDR` and hands over to
//! `command_api::run`; everything else lives in the library.

use anyhow::Context;
use clap::Parser;
use command_api::Config;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let _telemetry = config.telemetry.init("command-api")?;
    let listener = TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("binding {}", config.addr))?;
    command_api::run(listener, config, platform::shutdown_signal()).await
}
