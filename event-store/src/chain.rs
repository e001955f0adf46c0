//! The chain rules of ADR 0003 come from the `hash-chain` crate, which the offline
//! verifier shares: one implementation. Here they meet the store's own types.

pub(crate) use hash_chain::{micros, Canonical};
pub use hash_chain::{Hash, GENESIS_HASH};

use crate::event::RecordedEvent;

impl RecordedEvent {
    /// The fields of this event that the chain covers.
    pub fn canonical(&self) -> Canonical<'_> {
        Canonical {
            position: self.position,
            event_id: self.event_id,
            stream_id: self.stream_id.as_str(),
            stream_version: self.stream_version,
            event_type: self.event_type.as_str(),
            schema_version: self.schema_version,
            data: &self.data,
            metadata: &self.metadata,
            recorded_at_micros: micros(self.recorded_at),
        }
    }
}

/// The hash of a recorded event given its predecessor's hash: what `verify` recomputes
/// and what an outside auditor can recompute from `GET /api/v1/audit/events`.
pub fn event_hash(prev: &Hash, event: &RecordedEvent) -> Hash {
    event.canonical().hash(prev)
}
