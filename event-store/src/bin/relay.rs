//! `relay`: publishes the event log to RabbitMQ (`event_store::relay`), one leader at a
//! time among the replicas of one `RELAY_NAME`, and signs anchors of the log
//! (`event_store::anchor`, ADR 0017), one signer at a time under a lock of its own. Serves
//! `GET /metrics`, `/health/live` and `/health/ready` on `METRICS_ADDR`; logs JSON lines;
//! stops on SIGTERM or Ctrl-C after storing its checkpoint and releasing the leaderships.
//!
//! Build with `--features relay-bin` (the library itself never depends on `platform`).
//! It must never write the log: its account needs only what `grant_relay` grants.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use event_store::anchor::{AnchorBroker, AnchorConfig, AnchorObserver, AnchorSigner, AnchorStats};
use event_store::relay::{
    self, QueueTopology, Refusal, Relay, RelayConfig, RelayObserver, RelayStats, Topology,
};
use event_store::{EventStore, StoreOptions};
use hash_chain::{Jwks, SigningKey};
use platform::prometheus_client::metrics::counter::Counter;
use platform::prometheus_client::metrics::gauge::Gauge;
use platform::prometheus_client::registry::Unit;
use platform::{Metrics, Readiness};
use sqlx::MySqlPool;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The relay's settings; each also reads its environment variable.
#[derive(Parser)]
#[command(
    name = "relay",
    about = "Publishes the event log to RabbitMQ as CloudEvents"
)]
struct Config {
    /// MariaDB account with SELECT on `events` and SELECT, INSERT, UPDATE on
    /// `relay_checkpoints` (the dev default is the database owner).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "mysql://example:example@127.0.0.1:3306/example",
        hide_default_value = true,
        hide_env_values = true
    )]
    database_url: platform::Secret,
    #[command(flatten)]
    broker: platform::BrokerArgs,
    /// Relays of one name take turns: one leads, the others stand by.
    #[arg(long, env = "RELAY_NAME", default_value = relay::DEFAULT_RELAY_NAME)]
    relay_name: String,
    /// Where `/metrics` and `/health/*` are served.
    #[arg(long, env = "METRICS_ADDR", default_value = "127.0.0.1:9101")]
    metrics_addr: SocketAddr,
    /// CloudEvents `source` of every message.
    #[arg(long, env = "RELAY_SOURCE", default_value = relay::DEFAULT_SOURCE)]
    source: String,
    /// The topic exchange; its dead-letter exchange is `<exchange>.dlx`.
    #[arg(long, env = "EVENTS_EXCHANGE", default_value = relay::DEFAULT_EXCHANGE)]
    exchange: String,
    /// The projector's queue, bound with `#`; its parking queue is `<queue>.dead`.
    #[arg(long, env = "EVENTS_QUEUE", default_value = relay::DEFAULT_QUEUE)]
    queue: String,
    /// Publisher confirms outstanding at most.
    #[arg(long, env = "RELAY_WINDOW", default_value_t = 256)]
    window: usize,
    /// Sign anchors of the log (one signer leads among the replicas).
    #[arg(long, env = "ANCHOR_SIGNING", default_value_t = true, action = clap::ArgAction::Set)]
    anchor_signing: bool,
    /// The Ed25519 key (PKCS#8 PEM) that signs anchors; a mounted secret. Unset: the dev
    /// key `DEV_DIR/anchor-signing-key.pem`, made on first use.
    #[arg(long, env = "ANCHOR_SIGNING_KEY_FILE")]
    anchor_signing_key_file: Option<PathBuf>,
    /// The anchors' JWKS that query-api serves; the signing key's public half is added
    /// to it if missing (rotation adds a key, never removes one). Unset with a configured
    /// key: not touched. Unset in dev: `DEV_DIR/anchor-jwks.json`.
    #[arg(long, env = "ANCHOR_JWKS_FILE")]
    anchor_jwks_file: Option<PathBuf>,
    /// An anchor at least every this many events.
    #[arg(long, env = "ANCHOR_EVERY_EVENTS", default_value_t = event_store::anchor::DEFAULT_EVERY_EVENTS)]
    anchor_every_events: u64,
    /// An anchor of the head at least this often while the log grows.
    #[arg(long, env = "ANCHOR_EVERY_SECS", default_value_t = 60)]
    anchor_every_secs: u64,
    /// Where the dev anchor key and JWKS are made when none is configured.
    #[arg(long, env = "DEV_DIR", default_value = ".dev")]
    dev_dir: PathBuf,
    #[command(flatten)]
    telemetry: platform::TelemetryArgs,
}

impl Config {
    fn relay(&self) -> RelayConfig {
        RelayConfig {
            name: self.relay_name.clone(),
            amqp_url: self.broker.amqp_url.expose().to_owned(),
            source: self.source.clone(),
            topology: Topology {
                exchange: self.exchange.clone(),
                queue: Some(QueueTopology {
                    name: self.queue.clone(),
                    dead_letter_exchange: format!("{}.dlx", self.exchange),
                    dead_letter_queue: format!("{}.dead", self.queue),
                    ..QueueTopology::default()
                }),
            },
            window: self.window,
            ..RelayConfig::default()
        }
    }

    fn anchors(&self) -> AnchorConfig {
        let relay = self.relay();
        AnchorConfig {
            name: self.relay_name.clone(),
            every_events: self.anchor_every_events,
            every: Duration::from_secs(self.anchor_every_secs.max(1)),
            broker: Some(AnchorBroker {
                amqp_url: relay.amqp_url,
                source: relay.source,
                topology: relay.topology,
                timeout: relay.broker_timeout,
            }),
            ..AnchorConfig::default()
        }
    }

    /// The anchor signing key, and the JWKS file its public half belongs in.
    fn anchor_key(&self) -> anyhow::Result<(SigningKey, Option<PathBuf>)> {
        match &self.anchor_signing_key_file {
            Some(path) => {
                let key = SigningKey::from_file(path).with_context(|| {
                    format!("reading ANCHOR_SIGNING_KEY_FILE {}", path.display())
                })?;
                Ok((key, self.anchor_jwks_file.clone()))
            }
            None => {
                let path = self.dev_dir.join(DEV_ANCHOR_KEY_FILE);
                tracing::warn!(path = %path.display(), "no ANCHOR_SIGNING_KEY_FILE configured: signing anchors with the dev key");
                let key = SigningKey::load_or_create(&path)
                    .context("making the dev anchor key (DEV_DIR)")?;
                let jwks = self
                    .anchor_jwks_file
                    .clone()
                    .unwrap_or_else(|| self.dev_dir.join(DEV_ANCHOR_JWKS_FILE));
                Ok((key, Some(jwks)))
            }
        }
    }
}

/// The dev anchor key and its JWKS, inside `DEV_DIR`.
const DEV_ANCHOR_KEY_FILE: &str = "anchor-signing-key.pem";
const DEV_ANCHOR_JWKS_FILE: &str = "anchor-jwks.json";

/// Puts the key's public half into the JWKS file, so query-api serves it; a read-only
/// file that already holds it is fine.
fn publish_key(key: &SigningKey, path: &Path) -> anyhow::Result<()> {
    match Jwks::add_to_file(path, key.public_jwk()) {
        Ok(_) => Ok(()),
        Err(error) => match Jwks::from_file(path) {
            Ok(jwks) if jwks.key(key.kid()).is_some() => Ok(()),
            _ => Err(error).with_context(|| {
                format!(
                    "the anchor key {} is not in {} and cannot be added",
                    key.kid(),
                    path.display()
                )
            }),
        },
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let _telemetry = config.telemetry.init("relay")?;
    let listener = TcpListener::bind(config.metrics_addr)
        .await
        .with_context(|| format!("binding {}", config.metrics_addr))?;
    run(listener, config, platform::shutdown_signal()).await
}

async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let relay_config = config.relay();
    tracing::info!(config = ?relay_config, "starting");
    let anchor_key = if config.anchor_signing {
        let (key, jwks) = config.anchor_key()?;
        if let Some(path) = jwks {
            publish_key(&key, &path)?;
        }
        tracing::info!(kid = %key.kid(), "anchors are signed with this key");
        Some(key)
    } else {
        tracing::info!("anchor signing is off (ANCHOR_SIGNING=false)");
        None
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };

    let metrics = Metrics::new();
    let stats = RelayStats::default();
    let anchor_stats = AnchorStats::default();
    let pool: Arc<OnceLock<MySqlPool>> = Arc::default();
    let readiness = readiness(pool.clone(), stats.clone());
    let app = platform::operations_router(&readiness, &metrics);
    let server = tokio::spawn(platform::serve(listener, app, stopped()));

    // The database may come up after the relay: wait for it rather than exit.
    let store = tokio::select! {
        () = stopped() => None,
        store = connect(config.database_url.expose()) => Some(store),
    };
    if let Some(store) = store {
        let _ = pool.set(store.pool().clone());
        let sampled = store.pool().clone();
        metrics.watch_pool("events", move || event_store::pool_usage(&sampled));
        let signer = match anchor_key {
            Some(key) => Some(
                AnchorSigner::new(store.clone(), key, config.anchors())
                    .context("anchor signer configuration")?
                    .with_observer((AnchorMetrics::register(&metrics), anchor_stats)),
            ),
            None => None,
        };
        let relay = Relay::new(store, relay_config)
            .context("relay configuration")?
            .with_observer((PrometheusObserver::register(&metrics), stats));
        let signing = async {
            if let Some(signer) = signer {
                signer.run(stopped()).await;
            }
        };
        tokio::join!(relay.run(stopped()), signing);
    }
    server.await.context("the HTTP server panicked")??;
    Ok(())
}

async fn connect(url: &str) -> EventStore {
    let mut delay = Duration::from_millis(100);
    loop {
        let options = StoreOptions {
            // Each leadership takes a connection of its own out of the pool.
            read_pool_size: 6,
            ..StoreOptions::default()
        };
        match EventStore::connect(url, options).await {
            Ok(store) => return store,
            Err(error) => {
                tracing::warn!(error = %error, "cannot reach MariaDB, retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Ready when MariaDB answers and, while this replica leads, the broker is connected
/// ([`RelayStats::is_broker_ready`]).
fn readiness(pool: Arc<OnceLock<MySqlPool>>, stats: RelayStats) -> Readiness {
    Readiness::new()
        .with_check("mariadb", move || {
            let pool = pool.get().cloned();
            async move {
                let pool = pool.ok_or("not connected yet")?;
                event_store::ping(&pool).await?;
                Ok::<(), platform::BoxError>(())
            }
        })
        .with_check("rabbitmq", move || {
            let ok = stats.is_broker_ready();
            async move {
                if ok {
                    Ok(())
                } else {
                    Err("leading but not connected to the broker")
                }
            }
        })
}

/// The relay's metrics on the process registry.
struct PrometheusObserver {
    published: Counter,
    confirmed: Counter,
    nacks: Counter,
    returns: Counter,
    republished: Counter,
    leader: Gauge,
    epoch: Gauge,
    broker_connected: Gauge,
    checkpoint: Gauge,
    lag_positions: Gauge,
    lag_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
}

impl PrometheusObserver {
    fn register(metrics: &Metrics) -> Self {
        let observer = Self {
            published: Counter::default(),
            confirmed: Counter::default(),
            nacks: Counter::default(),
            returns: Counter::default(),
            republished: Counter::default(),
            leader: Gauge::default(),
            epoch: Gauge::default(),
            broker_connected: Gauge::default(),
            checkpoint: Gauge::default(),
            lag_positions: Gauge::default(),
            lag_seconds: Gauge::default(),
        };
        let o = &observer;
        metrics.register(
            "relay_events_published",
            "Events handed to the broker, resends included",
            o.published.clone(),
        );
        metrics.register(
            "relay_confirms",
            "Events the broker confirmed",
            o.confirmed.clone(),
        );
        metrics.register("relay_nacks", "Events the broker nacked", o.nacks.clone());
        metrics.register(
            "relay_returns",
            "Events the broker returned as unroutable",
            o.returns.clone(),
        );
        metrics.register(
            "relay_republished_events",
            "Events sent but unconfirmed when a session ended, to be sent again",
            o.republished.clone(),
        );
        metrics.register(
            "relay_leader",
            "1 while this replica holds the leadership",
            o.leader.clone(),
        );
        metrics.register(
            "relay_epoch",
            "Epoch of this replica's latest leadership term, on every message it publishes \
             (0 before its first term)",
            o.epoch.clone(),
        );
        metrics.register(
            "relay_broker_connected",
            "1 while a publishing session is connected to the broker",
            o.broker_connected.clone(),
        );
        metrics.register(
            "relay_checkpoint_position",
            "The last position stored as confirmed",
            o.checkpoint.clone(),
        );
        metrics.register(
            "relay_lag_positions",
            "Positions between the head of the log and the last confirmed one",
            o.lag_positions.clone(),
        );
        metrics.register_with_unit(
            "relay_lag",
            "Age of the oldest event not yet confirmed (0 when caught up)",
            Unit::Seconds,
            o.lag_seconds.clone(),
        );
        observer
    }
}

fn gauge(position: u64) -> i64 {
    i64::try_from(position).unwrap_or(i64::MAX)
}

impl RelayObserver for PrometheusObserver {
    fn leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }
    fn epoch(&self, epoch: u64) {
        self.epoch.set(gauge(epoch));
    }
    fn broker_connected(&self, connected: bool) {
        self.broker_connected.set(i64::from(connected));
    }
    fn published(&self, _position: u64) {
        self.published.inc();
    }
    fn confirmed(&self, count: u64) {
        self.confirmed.inc_by(count);
    }
    fn refused(&self, why: Refusal) {
        match why {
            Refusal::Nack => self.nacks.inc(),
            Refusal::Return => self.returns.inc(),
        };
    }
    fn republishing(&self, count: u64) {
        self.republished.inc_by(count);
    }
    fn checkpoint(&self, position: u64) {
        self.checkpoint.set(gauge(position));
    }
    fn lag(&self, positions: u64, seconds: f64) {
        self.lag_positions.set(gauge(positions));
        self.lag_seconds.set(seconds);
    }
}

/// The anchor signer's metrics on the process registry.
struct AnchorMetrics {
    leader: Gauge,
    signed: Counter,
    last_position: Gauge,
    published: Counter,
    unpublished: Gauge,
    broken_at: Gauge,
}

impl AnchorMetrics {
    fn register(metrics: &Metrics) -> Self {
        let m = Self {
            leader: Gauge::default(),
            signed: Counter::default(),
            last_position: Gauge::default(),
            published: Counter::default(),
            unpublished: Gauge::default(),
            broken_at: Gauge::default(),
        };
        metrics.register(
            "anchor_leader",
            "1 while this replica signs anchors",
            m.leader.clone(),
        );
        metrics.register(
            "anchors_signed",
            "Anchors signed and stored",
            m.signed.clone(),
        );
        metrics.register(
            "anchor_last_position",
            "The position of the last anchor this replica signed",
            m.last_position.clone(),
        );
        metrics.register(
            "anchors_published",
            "Anchors the broker confirmed",
            m.published.clone(),
        );
        metrics.register(
            "anchors_unpublished",
            "Anchors stored and not yet confirmed by the broker",
            m.unpublished.clone(),
        );
        metrics.register(
            "anchor_chain_broken_position",
            "The first position that does not extend the last anchor (0: the log extends it)",
            m.broken_at.clone(),
        );
        m
    }
}

impl AnchorObserver for AnchorMetrics {
    fn leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }
    fn signed(&self, position: u64) {
        self.signed.inc();
        self.last_position.set(gauge(position));
    }
    fn published(&self, _position: u64) {
        self.published.inc();
    }
    fn unpublished(&self, count: u64) {
        self.unpublished.set(gauge(count));
    }
    fn chain_broken(&self, position: Option<u64>) {
        self.broken_at.set(gauge(position.unwrap_or(0)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_dev_stacks() {
        let config = Config::try_parse_from(["relay"]).unwrap_or_else(|e| panic!("{e}"));
        let relay = config.relay();
        assert_eq!(config.metrics_addr.to_string(), "127.0.0.1:9101");
        assert_eq!(relay.name, "main");
        assert_eq!(relay.topology, Topology::default());
        // The library's default broker is the one the flag defaults to.
        assert_eq!(platform::DEFAULT_AMQP_URL, relay::DEFAULT_AMQP_URL);
    }
}
