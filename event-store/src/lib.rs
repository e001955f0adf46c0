//! The event log on MariaDB. Knows streams, versions, positions, bytes and hashes; knows
//! nothing of the ledger domain.
//!
//! A tour:
//! - [`EventStore`] (`store.rs`) is the handle: connect, append, read, tail, verify;
//!   [`ping`] and [`pool_usage`] are what services check and sample of a pool.
//! - `append.rs` is the group-commit batcher: concurrent appends coalesce into one
//!   transaction sent as one multi-statement round trip; each append keeps its own
//!   expected-version checks, claims and its own success or error.
//! - `chain.rs` defines the canonical bytes of an event and the SHA-256 hash chain.
//! - `read.rs` reads a stream, the log by position, and tails it ([`Tail`]).
//! - `claims.rs` expires claims by age and releases those a stream's appends made.
//! - `verify.rs` recomputes the chain and reports the first bad position.
//! - `topic.rs`: event-type patterns in RabbitMQ's topic syntax ([`TypeFilter`]).
//! - `stream.rs` and `event.rs` hold the value types; `error.rs` the typed errors.
//! - `schema.rs` applies the `migrations/eventstore` set and grants the writer account.
//! - [`relay`] publishes the log to RabbitMQ as CloudEvents (its binary: `src/bin/relay.rs`,
//!   feature `relay-bin`).
//! - [`anchor`] signs `(position, hash)` of the log with a key the database never sees,
//!   stores the anchors and publishes them (ADR 0017); the relay binary runs it.
//!
//! What it guarantees (ADR 0002): positions are 1..N without holes and become visible in
//! order (the database enforces it with a predecessor foreign key); no event is ever
//! updated or deleted; an append is all-or-nothing across its streams and claims.

pub mod anchor;
mod append;
mod chain;
mod claims;
mod error;
mod event;
mod leader;
pub mod literal;
mod metadata;
mod observe;
mod read;
pub mod relay;
mod schema;
mod store;
mod stream;
#[cfg(feature = "testing")]
pub mod testing;
mod topic;
mod verify;

pub use chain::{event_hash, Hash, GENESIS_HASH};
pub use error::{is_unavailable, AppendError, StoreError};
pub use event::{
    AppendOutcome, AppendRequest, Claim, ClaimOp, ClaimRecord, EventType, NewEvent, RecordedEvent,
    StreamWrite, WrittenStream,
};
pub use leader::LeaderLock;
pub use metadata::Metadata;
pub use observe::{AppendObserver, BatchObserver};
pub use read::{HeadWatch, Tail};
pub use schema::{grant_writer, migrator};
pub use store::{ping, pool_usage, EventStore, StoreOptions};
pub use stream::{ExpectedVersion, InvalidName, StreamId};
pub use topic::{InvalidPattern, TypeFilter, TypePattern};
pub use verify::VerifyReport;
