//! The canonical bytes of an event and the hash over them (ADR 0003).
//!
//! `hash(N) = SHA-256(hash(N-1) || canonical(N))`, with 32 zero bytes before position 1.
//! `canonical` is, in this order, big-endian throughout:
//!
//! | field | encoding |
//! |---|---|
//! | position | u64 |
//! | event id | 16 bytes (UUID) |
//! | stream id | u32 length + ASCII bytes |
//! | stream version | u64 |
//! | event type | u32 length + ASCII bytes |
//! | schema version | u32 |
//! | data | u32 length + UTF-8 JSON text as stored |
//! | metadata | u32 length + UTF-8 JSON text as stored |
//! | recorded at | i64 microseconds since 1970-01-01T00:00:00Z |
//!
//! Lengths make the encoding unambiguous: no two different events share bytes.

use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

pub type Hash = [u8; 32];

/// The hash that stands before the first event.
pub const GENESIS_HASH: Hash = [0; 32];

/// The fields of an event that the chain covers, borrowed from wherever the event lives
/// (a row being planned, a row read back, a line of an export).
#[derive(Debug, Clone, Copy)]
pub struct Canonical<'a> {
    pub position: u64,
    pub event_id: Uuid,
    pub stream_id: &'a str,
    pub stream_version: u64,
    pub event_type: &'a str,
    pub schema_version: u32,
    /// The JSON text exactly as stored: never re-serialised before hashing.
    pub data: &'a str,
    pub metadata: &'a str,
    pub recorded_at_micros: i64,
}

impl Canonical<'_> {
    /// `SHA-256(prev || canonical bytes)`.
    pub fn hash(&self, prev: &Hash) -> Hash {
        let mut h = Sha256::new();
        h.update(prev);
        h.update(self.position.to_be_bytes());
        h.update(self.event_id.as_bytes());
        put_bytes(&mut h, self.stream_id.as_bytes());
        h.update(self.stream_version.to_be_bytes());
        put_bytes(&mut h, self.event_type.as_bytes());
        h.update(self.schema_version.to_be_bytes());
        put_bytes(&mut h, self.data.as_bytes());
        put_bytes(&mut h, self.metadata.as_bytes());
        h.update(self.recorded_at_micros.to_be_bytes());
        h.finalize().into()
    }
}

fn put_bytes(h: &mut Sha256, bytes: &[u8]) {
    // Event fields are bounded far below 4 GiB (data and metadata by the append's size
    // limit), so the length always fits.
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    h.update(len.to_be_bytes());
    h.update(bytes);
}

/// Microseconds since the Unix epoch, as the chain encodes `recorded_at`.
pub fn micros(t: OffsetDateTime) -> i64 {
    // Times here are between 1970 and 9999, well inside i64 microseconds.
    i64::try_from(t.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample<'a>(data: &'a str, stream: &'a str) -> Canonical<'a> {
        Canonical {
            position: 1,
            event_id: Uuid::nil(),
            stream_id: stream,
            stream_version: 1,
            event_type: "t",
            schema_version: 1,
            data,
            metadata: "{}",
            recorded_at_micros: 0,
        }
    }

    #[test]
    fn the_hash_of_a_known_event_is_stable() {
        // Computed independently (Python's hashlib over the documented layout), so a
        // change of the encoding fails here, not in an auditor's tool.
        let h = sample("{}", "s").hash(&GENESIS_HASH);
        assert_eq!(
            hex::encode(h),
            "282b5bd8738bac07b355f1f40c86ae4502ae144c4783eb1eaa60c082c82a492f"
        );
    }

    #[test]
    fn length_prefixes_keep_field_boundaries_apart() {
        // "ab" + "c" and "a" + "bc" must not hash alike.
        let a = Canonical {
            stream_id: "ab",
            event_type: "c",
            ..sample("{}", "")
        }
        .hash(&GENESIS_HASH);
        let b = Canonical {
            stream_id: "a",
            event_type: "bc",
            ..sample("{}", "")
        }
        .hash(&GENESIS_HASH);
        assert_ne!(a, b);
    }

    #[test]
    fn the_previous_hash_changes_the_hash() {
        let e = sample("{}", "s");
        assert_ne!(e.hash(&GENESIS_HASH), e.hash(&[1; 32]));
    }

    #[test]
    fn micros_keep_the_stored_precision() {
        let t = time::macros::datetime!(2026-11-25 09:30:00.000042 UTC);
        assert_eq!(micros(t) % 1_000_000, 42);
    }
}
