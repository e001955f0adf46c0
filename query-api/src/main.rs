//! query-api: the ledger's views and audit endpoints (API.md, Views and Audit). Parses
//! `Config` from flags and the environment, starts telemetry, binds `QUERY_API_ADDR` and
//! hands over to `query_api::run`; everything else lives in the library.

use anyhow::Context;
use clap::Parser;
use query_api::Config;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let _telemetry = config.telemetry.init("query-api")?;
    let listener = TcpListener::bind(config.addr)
        .await
        .with_context(|| format!("binding {}", config.addr))?;
    query_api::run(listener, config, platform::shutdown_signal()).await
}
