//! One event of an export (`GET /api/v1/audit/export`, one JSON object per line) or of
//! a page of `GET /api/v1/audit/events`: every field the chain covers, `data` and
//! `metadata` byte for byte as stored, the hashes in lowercase hex.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::canonical::{micros, Canonical, Hash};

/// An event as auditors receive it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExportedEvent {
    pub position: u64,
    pub event_id: Uuid,
    pub stream_id: String,
    pub stream_version: u64,
    pub event_type: String,
    pub schema_version: u32,
    /// The JSON text exactly as stored (and hashed).
    pub data: Box<RawValue>,
    pub metadata: Box<RawValue>,
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_at: OffsetDateTime,
    #[serde(with = "crate::hexhash")]
    pub prev_hash: Hash,
    #[serde(with = "crate::hexhash")]
    pub hash: Hash,
}

impl ExportedEvent {
    /// Reads one line of an export.
    pub fn parse(line: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(line)
    }

    /// The fields the chain covers.
    pub fn canonical(&self) -> Canonical<'_> {
        Canonical {
            position: self.position,
            event_id: self.event_id,
            stream_id: &self.stream_id,
            stream_version: self.stream_version,
            event_type: &self.event_type,
            schema_version: self.schema_version,
            data: self.data.get(),
            metadata: self.metadata.get(),
            recorded_at_micros: micros(self.recorded_at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::GENESIS_HASH;

    #[test]
    fn data_is_read_byte_for_byte_and_hashes_as_stored() {
        // Whitespace and key order a re-serialisation would change.
        let data = r#"{"b": 1,  "a":"\u00e9"}"#;
        let stored = Canonical {
            position: 1,
            event_id: Uuid::nil(),
            stream_id: "s",
            stream_version: 1,
            event_type: "t",
            schema_version: 1,
            data,
            metadata: "{}",
            recorded_at_micros: 1_765_101_600_000_042,
        };
        let hash = stored.hash(&GENESIS_HASH);
        let line = format!(
            r#"{{"position":1,"event_id":"{}","stream_id":"s","stream_version":1,"event_type":"t","schema_version":1,"data":{data},"metadata":{{}},"recorded_at":"2025-12-07T10:00:00.000042Z","prev_hash":"{}","hash":"{}"}}"#,
            Uuid::nil(),
            hex::encode(GENESIS_HASH),
            hex::encode(hash)
        );
        let event = ExportedEvent::parse(&line).unwrap();
        assert_eq!(event.data.get(), data);
        assert_eq!(event.canonical().hash(&event.prev_hash), event.hash);
        let again = serde_json::to_string(&event).unwrap();
        assert!(again.contains(data), "{again}");
    }
}
