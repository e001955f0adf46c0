//! `relay`: publishes the event log to RabbitMQ (`event_store::relay`), one leader at a
//! time among the replicas of one `RELAY_NAME`. Serves `GET /metrics`, `/health/live` and
//! `/health/ready` on `METRICS_ADDR`; logs JSON lines; stops on SIGTERM or Ctrl-C after
//! storing its checkpoint and releasing the leadership.
//!
//! Build with `--features relay-bin` (the library itself never depends on `platform`).
//! It must never write the log: its account needs only what `grant_relay` grants.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use event_store::relay::{
    self, QueueTopology, Refusal, Relay, RelayConfig, RelayObserver, RelayStats, Topology,
};
use event_store::{EventStore, StoreOptions};
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
    /// The broker, `amqp://user:password@host:port/vhost`.
    #[arg(long, env = "AMQP_URL", default_value = relay::DEFAULT_AMQP_URL, hide_default_value = true, hide_env_values = true)]
    amqp_url: platform::Secret,
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
    #[command(flatten)]
    telemetry: platform::TelemetryArgs,
}

impl Config {
    fn relay(&self) -> RelayConfig {
        RelayConfig {
            name: self.relay_name.clone(),
            amqp_url: self.amqp_url.expose().to_owned(),
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
    let pool: Arc<OnceLock<MySqlPool>> = Arc::default();
    let readiness = readiness(pool.clone(), stats.clone());
    let app = readiness
        .router()
        .merge(metrics.router())
        .fallback(platform::not_found);
    let app = platform::observe(app, &metrics);
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
        let relay = Relay::new(store, relay_config)
            .context("relay configuration")?
            .with_observer((PrometheusObserver::register(&metrics), stats));
        relay.run(stopped()).await;
    }
    server.await.context("the HTTP server panicked")??;
    Ok(())
}

async fn connect(url: &str) -> EventStore {
    let mut delay = Duration::from_millis(100);
    loop {
        let options = StoreOptions {
            read_pool_size: 4,
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
                sqlx::query("SELECT 1").execute(&pool).await?;
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
    }
}
