use crate::error::StoreError;

/// Why the relay could not start, or why one publishing session ended. The relay retries
/// every session error itself (with backoff); only [`RelayError::Config`] reaches the
/// caller, from [`crate::relay::Relay::new`].
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("invalid relay configuration: {field} {problem}")]
    Config {
        field: &'static str,
        problem: String,
    },
    #[error("database error while {doing}")]
    Database {
        doing: &'static str,
        #[source]
        source: sqlx::Error,
    },
    #[error("reading the log after position {after}")]
    Read {
        after: u64,
        #[source]
        source: StoreError,
    },
    #[error("broker error while {doing}")]
    Broker {
        doing: &'static str,
        #[source]
        source: lapin::Error,
    },
    #[error("no answer from the broker within {seconds} s while {doing}")]
    BrokerTimeout { doing: &'static str, seconds: u64 },
    #[error("the broker lost the connection")]
    BrokerDisconnected,
    #[error(
        "the broker returned the event at position {position} ({reply_code} {reply_text}): \
         no queue is bound for routing key {routing_key}"
    )]
    Returned {
        position: u64,
        routing_key: String,
        reply_code: u16,
        reply_text: String,
    },
    #[error("the broker nacked the event at position {position}")]
    Nacked { position: u64 },
    #[error("the broker did not confirm the event at position {position} (confirms are off)")]
    Unconfirmed { position: u64 },
    #[error("the log yielded position {got} where {expected} was next")]
    Sequence { expected: u64, got: u64 },
    #[error("the event at position {position} cannot be put on the wire: {what}")]
    Envelope { position: u64, what: String },
    #[error("the reader of the log stopped")]
    ReaderStopped,
    #[error("the leadership lock for relay {name} was lost")]
    LockLost { name: String },
}

impl RelayError {
    pub(crate) fn database(doing: &'static str) -> impl FnOnce(sqlx::Error) -> Self {
        move |source| Self::Database { doing, source }
    }

    pub(crate) fn broker(doing: &'static str) -> impl FnOnce(lapin::Error) -> Self {
        move |source| Self::Broker { doing, source }
    }
}
