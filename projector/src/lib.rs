//! The projector: turns the event log into the read tables query-api serves.
//!
//! It consumes `queue.example.events` (the relay's CloudEvents), applies the log's events
//! to `users_view`, `balances_view` and `transactions_view` and advances its checkpoint
//! in the same transaction, so the tables always equal a replay of the log up to the
//! checkpoint, whatever the broker does. It never writes events, and never trusts the
//! broker: a message only says that a position exists; what is applied there is read
//! from the log, and a message that disagrees with it is dropped.
//!
//! A tour:
//! - [`run`]: the service (consumer, `/metrics`, `/health/*`); `consume.rs` gathers
//!   deliveries into batches, acknowledges them, reconnects and waits at poison events.
//!   It declares nothing: the relay declares the queue, and the projector's broker
//!   account may only consume it.
//! - `checkpoint.rs`: the exactly-once discipline (checkpoint row lock, the log's events
//!   read once per batch and applied, each message's claim held against them,
//!   duplicates skipped, parked positions stepped over, poison stops).
//! - `apply.rs`: how one decoded event (`ledger::decode`) changes the rows, in memory,
//!   and the multi-row upserts that write them (literals by `read_model::literal`).
//! - `envelope.rs`: a message body into what it claims: a notification, never the event
//!   applied (ADR 0014).
//! - [`rebuild()`] (`rebuild.rs`): the log into fresh `*_rebuild` tables, swapped in with
//!   one `RENAME TABLE`; [`verify()`] (`verify.rs`): the same into `*_verify` tables,
//!   diffed against the live ones and checked against `ledger::replay` of every stream.
//! - [`park()`] (`park.rs`): an operator's skip of one poison position.
//! - The tables' names, rows and migrations belong to the `read-model` crate, which
//!   query-api reads through too; the projector is their one writer.
//! - `health.rs`, `metrics.rs`: readiness (database, broker, not poisoned) and the
//!   Prometheus series; `cli.rs`: [`Config`], the subcommands, their output.
//!
//! Several processes may run: the queue's single active consumer makes one of them
//! active, and all writers serialise on the checkpoint row anyway.

mod apply;
mod checkpoint;
mod cli;
mod consume;
mod envelope;
mod error;
mod health;
mod metrics;
mod park;
mod rebuild;
mod verify;

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use event_store::{EventStore, StoreOptions};
use platform::Metrics;
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use cli::{
    execute, Cli, Command, Config, DEFAULT_AMQP_URL, DEFAULT_DATABASE_URL, DEFAULT_METRICS_ADDR,
};
pub use error::Error;
pub use park::Parked;
pub use rebuild::{Progress, RebuildReport};
pub use verify::{Difference, VerifyReport};

use crate::checkpoint::Projection;
use crate::consume::{Consumer, Settings};
use crate::health::Health;
use crate::metrics::ProjectorMetrics;
use read_model::TableSet;

/// The service: consumes until `shutdown` completes, serving `/metrics` and
/// `/health/{live,ready}` on `listener`. Broker and database outages are waited out.
pub async fn run<F>(config: Config, listener: TcpListener, shutdown: F) -> Result<(), Error>
where
    F: Future<Output = ()> + Send + 'static,
{
    let (stop_tx, stop) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });

    let metrics = Metrics::new();
    let projector_metrics = ProjectorMetrics::register(&metrics);
    let health = Health::default();
    let pool = read_pool(&config)?;
    let sampled = pool.clone();
    metrics.watch_pool("read_model", move || event_store::pool_usage(&sampled));
    let app = platform::operations_router(&health.readiness(pool.clone()), &metrics);
    let server = tokio::spawn(platform::serve(listener, app, stopped(stop.clone())));

    let Some(store) = connect_log(&config, stop.clone()).await else {
        return server.await.unwrap_or(Ok(())).map_err(Error::from);
    };
    let projection = Projection {
        pool,
        store,
        name: config.projection.clone(),
        tables: TableSet::live(),
    };
    let lag = tokio::spawn(metrics::observe_lag(
        projection.clone(),
        projector_metrics.clone(),
        stop.clone(),
    ));
    let consumer = Consumer {
        projection,
        settings: Settings {
            amqp_url: config.broker.amqp_url.clone(),
            queue: config.queue.clone(),
            prefetch: config.prefetch,
            batch_size: config.batch_size.max(1),
            linger: Duration::from_millis(config.batch_linger_ms),
            idle: Duration::from_millis(config.idle_ms.max(1)),
        },
        metrics: projector_metrics,
        health,
    };
    consumer.run(stop.clone()).await?;
    let _ = lag.await;
    server.await.unwrap_or(Ok(())).map_err(Error::from)
}

/// Builds the read tables again from the log and swaps them in; `progress` hears after
/// every page written.
pub async fn rebuild(
    config: &Config,
    progress: &mut dyn FnMut(&Progress),
) -> Result<RebuildReport, Error> {
    let projection = connect(config).await?;
    rebuild::rebuild(&projection, progress).await
}

/// Compares the live tables with a rebuild and with `ledger::replay` of every stream.
pub async fn verify(config: &Config) -> Result<VerifyReport, Error> {
    let projection = connect(config).await?;
    verify::verify(&projection).await
}

/// Parks `position` for the configured projection.
pub async fn park(config: &Config, position: u64, reason: &str) -> Result<Parked, Error> {
    let projection = connect(config).await?;
    park::park(&projection, position, reason).await
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

fn connect_options(config: &Config) -> Result<MySqlConnectOptions, Error> {
    MySqlConnectOptions::from_str(config.database_url.expose()).map_err(|source| Error::Database {
        doing: "reading DATABASE_URL",
        source,
    })
}

/// The pool for the read tables. Lazy: a database that is down at start is waited for
/// like one that goes down later. READ COMMITTED: batches see what the previous batch
/// committed, and lock only the checkpoint row and what they write.
fn read_pool(config: &Config) -> Result<sqlx::MySqlPool, Error> {
    Ok(MySqlPoolOptions::new()
        .max_connections(8)
        .after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::Executor::execute(
                    conn,
                    "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
                )
                .await
                .map(|_| ())
            })
        })
        .connect_lazy_with(connect_options(config)?))
}

fn store_options() -> StoreOptions {
    StoreOptions {
        read_pool_size: 4,
        ..StoreOptions::default()
    }
}

/// The log, retried until it answers or `stop` turns true (`None`).
async fn connect_log(config: &Config, mut stop: watch::Receiver<bool>) -> Option<EventStore> {
    let options = connect_options(config).ok()?;
    let mut backoff = Duration::from_millis(200);
    loop {
        match EventStore::connect_with(options.clone(), store_options()).await {
            Ok(store) => return Some(store),
            Err(error) => {
                tracing::warn!(
                    error = %platform::error_chain(&error),
                    retry_in_ms = backoff.as_millis() as u64,
                    "connecting to the event log failed; retrying"
                );
                tokio::select! {
                    _ = stop.wait_for(|stopped| *stopped) => return None,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// For the one-shot subcommands: fail at once if the database is not there.
async fn connect(config: &Config) -> Result<Projection, Error> {
    let options = connect_options(config)?;
    let store = EventStore::connect_with(options, store_options())
        .await
        .map_err(Error::log("connecting to the event log"))?;
    let pool = read_pool(config)?;
    Ok(Projection {
        pool,
        store,
        name: config.projection.clone(),
        tables: TableSet::live(),
    })
}
