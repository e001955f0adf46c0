use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use tokio::sync::{mpsc, oneshot, watch};

use crate::append::{BatchLimits, Batcher, Limits, Pending, Prepared};
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
    /// How long an append may take before it is answered: with its outcome if the log
    /// can tell, else `AppendError::Unavailable` (nothing written) or
    /// `AppendError::OutcomeUnknown` (its commit's reply was lost). ADR 0012.
    pub append_deadline: Duration,
    /// Establishing a connection, every connection of the store.
    pub connect_timeout: Duration,
    /// One reply of the database, every connection of the store; statements are also
    /// limited server-side a little below it.
    pub read_timeout: Duration,
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
            append_deadline: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            read_timeout: Duration::from_secs(5),
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

/// Whether MariaDB answers a query on `pool`: the readiness check of every service
/// (`platform::Readiness::with_check("mariadb", …)`).
pub async fn ping(pool: &MySqlPool) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT 1").execute(pool).await.map(|_| ())
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
        let statement_secs = (options.read_timeout.as_secs_f64() * 0.8).max(0.1);
        let session = format!(
            "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED; \
             SET SESSION max_statement_time = {statement_secs:.3}"
        );
        let pool = MySqlPoolOptions::new()
            .max_connections(options.read_pool_size)
            .acquire_timeout(options.connect_timeout)
            .after_connect(move |conn, _| {
                let session = session.clone();
                Box::pin(async move {
                    sqlx::Executor::execute(conn, session.as_str())
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
            Limits {
                connect: options.connect_timeout,
                read: options.read_timeout,
            },
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
        let deadline = tokio::time::Instant::now() + self.inner.options.append_deadline;
        let append = Prepared::new(request)?;
        let (reply, answer) = oneshot::channel();
        self.inner
            .appends
            .send(Pending {
                append,
                reply,
                deadline,
            })
            .await
            .map_err(|_| AppendError::Closed)?;
        answer.await.map_err(|_| AppendError::Closed)?
    }

    /// `read`, bounded by the read limit: a paused server or a half-open link costs one
    /// limit (a timed-out I/O error, which callers treat as "unavailable"), never a
    /// stalled caller.
    pub(crate) async fn bounded<T>(
        &self,
        read: impl std::future::Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, sqlx::Error> {
        let limit = self.inner.options.read_timeout;
        match tokio::time::timeout(limit, read).await {
            Ok(result) => result,
            Err(_) => Err(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no reply from the database within {limit:?}"),
            ))),
        }
    }

    /// The pool this handle reads with, for callers that read their own tables (claims
    /// and the like) on the same database.
    pub fn pool(&self) -> &MySqlPool {
        &self.inner.pool
    }
}
