use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use tokio::sync::{mpsc, oneshot, watch};

use crate::append::{BatchLimits, Batcher, Pending, Prepared};
use crate::error::{AppendError, StoreError};
use crate::event::{AppendOutcome, AppendRequest};
use crate::observe::BatchObserver;

/// Tuning of one [`EventStore`] handle.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Connections for reads (the appender has one of its own).
    pub read_pool_size: u32,
    /// Events in one group-commit batch at most.
    pub max_batch_events: usize,
    /// Bytes of JSON in one batch at most (an append larger than this goes alone).
    pub max_batch_bytes: usize,
    /// Appends that may wait for the batcher before `append` itself waits.
    pub queue_depth: usize,
    /// How often a [`crate::Tail`] looks for events appended by other processes.
    pub poll_interval: Duration,
    /// Who hears about each committed batch (metrics).
    pub observer: BatchObserver,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            read_pool_size: 8,
            max_batch_events: 1_000,
            max_batch_bytes: 2 * 1024 * 1024,
            queue_depth: 4_096,
            poll_interval: Duration::from_millis(100),
            observer: BatchObserver::default(),
        }
    }
}

/// `(open, idle, max)` connections of `pool`, or `None` once it is closed: what a
/// service's metrics sample (`platform::Metrics::watch_pool`).
pub fn pool_usage(pool: &MySqlPool) -> Option<(u32, u32, u32)> {
    if pool.is_closed() {
        return None;
    }
    let idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX);
    Some((pool.size(), idle, pool.options().get_max_connections()))
}

/// A handle on the event log. Cheap to clone; the last clone dropped stops its batcher.
#[derive(Clone)]
pub struct EventStore {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) pool: MySqlPool,
    appends: mpsc::Sender<Pending>,
    pub(crate) committed: watch::Receiver<u64>,
    pub(crate) options: StoreOptions,
}

impl EventStore {
    /// Connects to the log at `url` (a `mysql://` URL of an account that may INSERT and
    /// SELECT `events`) and starts this handle's batcher.
    pub async fn connect(url: &str, options: StoreOptions) -> Result<Self, StoreError> {
        let connect = MySqlConnectOptions::from_str(url)?;
        Self::connect_with(connect, options).await
    }

    pub async fn connect_with(
        connect: MySqlConnectOptions,
        options: StoreOptions,
    ) -> Result<Self, StoreError> {
        let pool = MySqlPoolOptions::new()
            .max_connections(options.read_pool_size)
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
            .connect_with(connect.clone())
            .await?;
        let (tx, rx) = mpsc::channel(options.queue_depth);
        let (committed_tx, committed) = watch::channel(0);
        let batcher = Batcher::new(
            connect,
            committed_tx,
            BatchLimits {
                max_events: options.max_batch_events,
                max_bytes: options.max_batch_bytes,
            },
            options.observer.clone(),
        );
        tokio::spawn(batcher.run(rx));
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                appends: tx,
                committed,
                options,
            }),
        })
    }

    /// Appends atomically: every stream's events and every claim commit together, or
    /// nothing does. Concurrent calls share a transaction (group commit) but each gets
    /// its own result.
    #[tracing::instrument(skip_all, fields(streams = request.streams.len()))]
    pub async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, AppendError> {
        let append = Prepared::new(request)?;
        let (reply, answer) = oneshot::channel();
        self.inner
            .appends
            .send(Pending { append, reply })
            .await
            .map_err(|_| AppendError::Closed)?;
        answer.await.map_err(|_| AppendError::Closed)?
    }

    /// The pool this handle reads with, for callers that read their own tables (claims
    /// and the like) on the same database.
    pub fn pool(&self) -> &MySqlPool {
        &self.inner.pool
    }
}
