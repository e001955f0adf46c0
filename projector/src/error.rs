//! The projector's errors: what it was doing when something failed.

use event_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{doing}")]
    Database {
        doing: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("{doing}")]
    Log {
        doing: &'static str,
        #[source]
        source: StoreError,
    },
    #[error("{doing}")]
    Broker {
        doing: &'static str,
        #[source]
        source: lapin::Error,
    },
    #[error("invalid {what}: {problem}")]
    Config { what: &'static str, problem: String },
    #[error("the broker cancelled the consumer of queue {queue}")]
    ConsumerCancelled { queue: String },
    #[error(
        "cannot {what}: another projector rebuild or verify is running on this database; \
         wait for it to finish"
    )]
    Busy { what: &'static str },
    #[error(
        "position {position} ({event_type}) cannot be applied: {reason}; \
         park it with `projector park --position {position}` to go on without it"
    )]
    Poison {
        position: u64,
        event_type: String,
        reason: String,
    },
    #[error(
        "the live checkpoint moved back from {from} to {to} while verifying (a rebuild \
         swapped the tables in?); run verify again"
    )]
    CheckpointMovedBack { from: u64, to: u64 },
    #[error(
        "position {position} is applied already (the checkpoint is {checkpoint}); \
         parking it would make a rebuild differ from the live tables"
    )]
    AlreadyApplied { position: u64, checkpoint: u64 },
    #[error(
        "position {position} is not where the projection stopped: it stopped in front of \
         {next} (the checkpoint is {checkpoint}); only that position can be parked"
    )]
    NotWhereStopped {
        position: u64,
        next: u64,
        checkpoint: u64,
    },
    #[error("the log has no event at position {position}")]
    NoSuchPosition { position: u64 },
    #[error("binding the metrics listener on {addr}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Serve(#[from] platform::ServeError),
}

impl Error {
    pub(crate) fn db(doing: &'static str) -> impl FnOnce(sqlx::Error) -> Self {
        move |source| Self::Database { doing, source }
    }

    pub(crate) fn log(doing: &'static str) -> impl FnOnce(StoreError) -> Self {
        move |source| Self::Log { doing, source }
    }

    pub(crate) fn broker(doing: &'static str) -> impl FnOnce(lapin::Error) -> Self {
        move |source| Self::Broker { doing, source }
    }
}
