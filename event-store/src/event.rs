use std::fmt;

use serde::de::DeserializeOwned;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::chain::Hash;
use crate::metadata::Metadata;
use crate::stream::{check_name, ExpectedVersion, InvalidName, StreamId};

/// An event's type as it travels (for example `transaction.deposited`): 1–200 visible
/// ASCII characters.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EventType(String);

impl EventType {
    pub const MAX_LEN: usize = 200;

    pub fn parse(s: impl Into<String>) -> Result<Self, InvalidName> {
        let s = s.into();
        check_name("event type", Self::MAX_LEN, &s)?;
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventType({})", self.0)
    }
}

/// An event to append. `data` and `metadata` are JSON; the store gives it its position,
/// stream version, time and hashes.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub event_type: EventType,
    pub schema_version: u32,
    pub data: serde_json::Value,
    pub metadata: Metadata,
}

impl NewEvent {
    /// A new event with a fresh UUIDv7 id and empty metadata.
    pub fn new(event_type: EventType, schema_version: u32, data: serde_json::Value) -> Self {
        Self {
            event_id: Uuid::now_v7(),
            event_type,
            schema_version,
            data,
            metadata: Metadata::default(),
        }
    }

    pub fn with_metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = metadata;
        self
    }
}

/// Events for one stream, with the version the caller expects it to be at.
#[derive(Debug, Clone)]
pub struct StreamWrite {
    pub stream_id: StreamId,
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
}

/// A unique claim made, or given up, in the same transaction as an append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOp {
    /// Fails the whole append with [`crate::AppendError::ClaimTaken`] if the key is held.
    Claim(Claim),
    /// Gives a key up; releasing a key nobody holds is not an error. Releases run before
    /// the append's claims, so an append may release and re-claim one key.
    Release { scope: String, key: Vec<u8> },
}

/// A key in a scope (for example a keyed hash of an e-mail address in scope `email`),
/// with JSON the caller wants to read back later (for example an idempotency record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub scope: String,
    pub key: Vec<u8>,
    pub payload: serde_json::Value,
}

/// A claim as stored: what it carried and the last position of the append that made it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimRecord {
    pub scope: String,
    pub key: Vec<u8>,
    pub payload: serde_json::Value,
    pub position: u64,
    pub claimed_at: OffsetDateTime,
}

/// One atomic append: every stream's events and every claim commit together or not at
/// all. The events get consecutive positions in the order given.
#[derive(Debug, Clone, Default)]
pub struct AppendRequest {
    pub streams: Vec<StreamWrite>,
    pub claims: Vec<ClaimOp>,
}

impl AppendRequest {
    /// An append of `events` to one stream.
    pub fn single(stream_id: StreamId, expected: ExpectedVersion, events: Vec<NewEvent>) -> Self {
        Self {
            streams: vec![StreamWrite {
                stream_id,
                expected,
                events,
            }],
            claims: Vec::new(),
        }
    }

    pub fn with_stream(
        mut self,
        stream_id: StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Self {
        self.streams.push(StreamWrite {
            stream_id,
            expected,
            events,
        });
        self
    }

    pub fn with_claim(mut self, claim: ClaimOp) -> Self {
        self.claims.push(claim);
        self
    }
}

/// Where one stream stands after a successful append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenStream {
    pub stream_id: StreamId,
    /// The stream's version after the append (its last event's version).
    pub version: u64,
    /// The global position of the stream's last event in this append.
    pub position: u64,
}

/// The result of a committed append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendOutcome {
    /// Each stream of the request, in the request's order.
    pub streams: Vec<WrittenStream>,
    pub first_position: u64,
    pub last_position: u64,
    pub recorded_at: OffsetDateTime,
}

/// An event as the log holds it. `data` and `metadata` are the JSON text exactly as
/// stored (and hashed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    pub position: u64,
    pub event_id: Uuid,
    pub stream_id: StreamId,
    pub stream_version: u64,
    pub event_type: EventType,
    pub schema_version: u32,
    pub data: String,
    pub metadata: String,
    pub recorded_at: OffsetDateTime,
    pub prev_hash: Hash,
    pub hash: Hash,
}

impl RecordedEvent {
    pub fn data_as<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_str(&self.data)
    }

    /// The recorded metadata, read leniently ([`Metadata`]).
    pub fn parsed_metadata(&self) -> Result<Metadata, serde_json::Error> {
        Metadata::parse(&self.metadata)
    }
}
