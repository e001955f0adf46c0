//! `webhooks`: the deliverer of webhook subscriptions (`webhooks::Deliverer`), one leader
//! at a time among the replicas of one `WEBHOOKS_NAME`. Serves `GET /metrics`,
//! `/health/live` and `/health/ready` on `METRICS_ADDR`; logs JSON lines; stops on
//! SIGTERM or Ctrl-C.
//!
//! Its account needs SELECT on `events` and SELECT, UPDATE on `webhook_subscriptions`;
//! it never writes the log.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use event_store::{EventStore, StoreOptions};
use keyring::MasterKeys;
use platform::{Metrics, Readiness};
use tokio::net::TcpListener;
use tokio::sync::watch;
use webhooks::{Deliverer, DelivererSettings, DeliveryMetrics, SubscriptionTable, TargetPolicy};

/// The deliverer's settings; each also reads its environment variable.
#[derive(Parser)]
#[command(name = "webhooks", about = "Delivers webhook subscriptions")]
struct Config {
    /// MariaDB account with SELECT on `events` and SELECT, UPDATE on
    /// `webhook_subscriptions` (the dev default is the database owner).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "mysql://example:example@127.0.0.1:3306/example",
        hide_default_value = true,
        hide_env_values = true
    )]
    database_url: String,
    /// Master keys that unwrap the subscriptions' signing secrets (`1:<base64>,…`).
    #[arg(long, env = "MASTER_KEYS", hide_env_values = true)]
    master_keys: Option<String>,
    /// A file holding the master keys, in the same form.
    #[arg(long, env = "MASTER_KEYS_FILE", conflicts_with = "master_keys")]
    master_keys_file: Option<PathBuf>,
    /// Without master keys configured: the dev keys command-api made here.
    #[arg(long, env = "DEV_DIR", default_value = ".dev")]
    dev_dir: PathBuf,
    /// Deliverers of one name take turns: one leads, the others stand by.
    #[arg(long, env = "WEBHOOKS_NAME", default_value = "main")]
    name: String,
    /// CloudEvents `source`: the relay's `RELAY_SOURCE`.
    #[arg(long, env = "RELAY_SOURCE", default_value = event_store::relay::DEFAULT_SOURCE)]
    source: String,
    /// Allow `http` and loopback or private addresses (development only).
    #[arg(long, env = "WEBHOOK_ALLOW_INSECURE", default_value_t = false)]
    allow_insecure: bool,
    /// Seconds one attempt may take.
    #[arg(long, env = "WEBHOOK_TIMEOUT_SECS", default_value_t = 10)]
    timeout_secs: u64,
    /// Where `/metrics` and `/health/*` are served.
    #[arg(long, env = "METRICS_ADDR", default_value = "127.0.0.1:9103")]
    metrics_addr: SocketAddr,
    #[command(flatten)]
    telemetry: platform::TelemetryArgs,
}

impl Config {
    /// The configured master keys; without any, the dev keys command-api makes on its
    /// first start, waited for (the dev stack starts both at once) until they appear.
    async fn master_keys(&self) -> anyhow::Result<MasterKeys> {
        if let Some(spec) = &self.master_keys {
            return MasterKeys::parse(spec).context("MASTER_KEYS");
        }
        if let Some(file) = &self.master_keys_file {
            return MasterKeys::from_file(file)
                .with_context(|| format!("reading the master keys from {}", file.display()));
        }
        let file = self.dev_dir.join("master-keys");
        let mut warned = false;
        // Once the file exists, a few more tries cover command-api still writing it.
        let mut tries_left = 25;
        loop {
            match MasterKeys::from_file(&file) {
                Ok(keys) => return Ok(keys),
                Err(_) if !file.exists() || tries_left > 0 => {
                    if file.exists() {
                        tries_left -= 1;
                    }
                    if !warned {
                        tracing::warn!(
                            path = %file.display(),
                            "no master keys configured and no dev keys yet: waiting for command-api to make them"
                        );
                        warned = true;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!("reading the dev master keys from {}", file.display())
                    });
                }
            }
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let _telemetry = config.telemetry.init("webhooks")?;
    let listener = TcpListener::bind(config.metrics_addr)
        .await
        .with_context(|| format!("binding {}", config.metrics_addr))?;
    let master = config.master_keys().await?;
    let store = EventStore::connect(
        &config.database_url,
        StoreOptions {
            read_pool_size: 4,
            ..StoreOptions::default()
        },
    )
    .await
    .context("connecting to the event store (DATABASE_URL)")?;
    let metrics = Metrics::new();
    let sampled = store.pool().clone();
    metrics.watch_pool("events", move || event_store::pool_usage(&sampled));
    let settings = DelivererSettings {
        name: config.name.clone(),
        source: config.source.clone(),
        policy: TargetPolicy {
            allow_insecure: config.allow_insecure,
        },
        timeout: Duration::from_secs(config.timeout_secs.max(1)),
        ..DelivererSettings::default()
    };
    if config.allow_insecure {
        tracing::warn!("insecure webhook targets allowed (http, loopback, private addresses): development only");
    }
    let table = SubscriptionTable::new(store.pool().clone());
    let deliverer = Deliverer::new(
        store.clone(),
        table,
        master,
        settings,
        DeliveryMetrics::register(&metrics),
    )
    .context("building the deliverer")?;

    let pool = store.pool().clone();
    let readiness = Readiness::new().with_check("mariadb", move || {
        let pool = pool.clone();
        async move { event_store::ping(&pool).await }
    });
    let app = platform::operations_router(&readiness, &metrics);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut server_stop = stop_rx.clone();
    let server = tokio::spawn(platform::serve(listener, app, async move {
        let _ = server_stop.wait_for(|s| *s).await;
    }));
    let delivering = tokio::spawn({
        let stop = stop_rx.clone();
        async move { deliverer.run(stop).await }
    });
    platform::shutdown_signal().await;
    let _ = stop_tx.send(true);
    let _ = delivering.await;
    server.await.context("the metrics server")??;
    Ok(())
}
