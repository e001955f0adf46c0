use crate::stream::{ExpectedVersion, StreamId};

/// Why an append did not commit. Each append in a batch gets its own error; a
/// neighbour's failure never fails it.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("stream {stream_id} is at version {actual}, the append expected {expected}")]
    Conflict {
        stream_id: StreamId,
        expected: ExpectedVersion,
        actual: u64,
    },
    #[error("claim {scope}/{} is already held", hex::encode(.key))]
    ClaimTaken { scope: String, key: Vec<u8> },
    #[error("invalid append: {0}")]
    Invalid(String),
    #[error("the event store is shutting down")]
    Closed,
    #[error("event id {0} is already in the log")]
    DuplicateEventId(uuid::Uuid),
    /// The database refused a statement of this append for a reason that is not a
    /// conflict: nothing of it was written.
    #[error("database error while appending")]
    Database(#[source] std::sync::Arc<sqlx::Error>),
    /// The database could not be reached, or kept failing, until the append's deadline:
    /// nothing of it was written.
    #[error("the database was unavailable until the append's deadline")]
    Unavailable(#[source] std::sync::Arc<sqlx::Error>),
    /// The append's commit was sent and its reply lost, and the log could not be asked
    /// before the deadline whether it committed (ADR 0012). It may or may not be in the
    /// log; repeating it with the same claim (an idempotency key) is safe.
    #[error("the append may or may not have committed: its reply was lost")]
    OutcomeUnknown,
}

/// Errors of reads, verification and set-up.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("migrating the event store")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("row at position {position} holds an invalid {what}")]
    Corrupt { position: u64, what: &'static str },
    #[error("invalid argument: {0}")]
    Invalid(String),
}

/// The MariaDB error number of a database error, if it is one.
pub(crate) fn mariadb_code(e: &sqlx::Error) -> Option<u16> {
    match e {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
            .map(|m| m.number()),
        _ => None,
    }
}

/// The key a duplicate-key error (1062) names. MariaDB reports the key only in the
/// message, as `... for key 'name'` (or `'table.name'` in newer servers).
pub(crate) fn duplicate_key(e: &sqlx::Error) -> Option<&str> {
    let sqlx::Error::Database(db) = e else {
        return None;
    };
    let msg = db.message();
    let start = msg.rfind(" for key '")? + " for key '".len();
    let key = msg.get(start..)?.strip_suffix('\'')?;
    Some(key.rsplit('.').next().unwrap_or(key))
}

/// The constraint a foreign-key error (1452) names: `... CONSTRAINT `name` FOREIGN KEY ...`.
pub(crate) fn foreign_key(e: &sqlx::Error) -> Option<&str> {
    let sqlx::Error::Database(db) = e else {
        return None;
    };
    let msg = db.message();
    let start = msg.find("CONSTRAINT `")? + "CONSTRAINT `".len();
    let len = msg.get(start..)?.find('`')?;
    msg.get(start..start + len)
}

pub(crate) const ER_DUP_ENTRY: u16 = 1062;
pub(crate) const ER_NO_REFERENCED_ROW: u16 = 1452;
pub(crate) const ER_LOCK_WAIT_TIMEOUT: u16 = 1205;
pub(crate) const ER_LOCK_DEADLOCK: u16 = 1213;
pub(crate) const ER_CHECKREAD: u16 = 1020;
/// `KILL` of a connection id the server does not know (any more).
pub(crate) const ER_NO_SUCH_THREAD: u16 = 1094;

/// A database that is down or unreachable (the connection, TLS or the pool failed), as
/// opposed to a statement it refused: what a service answers 503 `unavailable` for.
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    matches!(
        e,
        sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
    )
}
