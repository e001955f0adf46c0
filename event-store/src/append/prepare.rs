//! Checking an append and serialising its JSON in the caller's task, before it joins a
//! batch.

use crate::error::AppendError;
use crate::event::{AppendRequest, ClaimOp, EventType};
use crate::stream::{check_name, ExpectedVersion, StreamId};
use uuid::Uuid;

/// Largest JSON text (data plus metadata) one append may carry.
pub(crate) const MAX_APPEND_BYTES: usize = 1024 * 1024;

/// An append whose JSON was serialised and checked in the caller's task.
pub(crate) struct Prepared {
    pub(super) streams: Vec<PreparedStream>,
    pub(super) claims: Vec<PreparedClaim>,
    pub(super) events: usize,
    pub(super) bytes: usize,
}

pub(super) struct PreparedStream {
    pub(super) stream_id: StreamId,
    pub(super) expected: ExpectedVersion,
    pub(super) events: Vec<PreparedEvent>,
}

pub(super) struct PreparedEvent {
    pub(super) event_id: Uuid,
    pub(super) event_type: EventType,
    pub(super) schema_version: u32,
    pub(super) data: String,
    pub(super) metadata: String,
}

pub(super) enum PreparedClaim {
    Claim {
        scope: String,
        key: Vec<u8>,
        payload: String,
    },
    Release {
        scope: String,
        key: Vec<u8>,
    },
}

impl Prepared {
    pub(crate) fn new(req: AppendRequest) -> Result<Self, AppendError> {
        let invalid = |m: String| Err(AppendError::Invalid(m));
        if req.streams.is_empty() {
            return invalid("an append needs at least one stream".into());
        }
        let mut bytes = 0;
        let mut events = 0;
        let mut streams = Vec::with_capacity(req.streams.len());
        for (i, w) in req.streams.into_iter().enumerate() {
            if w.events.is_empty() {
                return invalid(format!("stream {} has no events", w.stream_id));
            }
            if streams
                .iter()
                .any(|s: &PreparedStream| s.stream_id == w.stream_id)
            {
                return invalid(format!("stream {} appears twice (at {i})", w.stream_id));
            }
            let mut out = Vec::with_capacity(w.events.len());
            for e in w.events {
                let data = e.data.to_string();
                let metadata = e.metadata.to_json();
                bytes += data.len() + metadata.len();
                out.push(PreparedEvent {
                    event_id: e.event_id,
                    event_type: e.event_type,
                    schema_version: e.schema_version,
                    data,
                    metadata,
                });
            }
            events += out.len();
            streams.push(PreparedStream {
                stream_id: w.stream_id,
                expected: w.expected,
                events: out,
            });
        }
        if bytes > MAX_APPEND_BYTES {
            return invalid(format!(
                "the append carries {bytes} bytes of JSON, more than {MAX_APPEND_BYTES}"
            ));
        }
        let mut claims = Vec::with_capacity(req.claims.len());
        for c in req.claims {
            let (scope, key) = match &c {
                ClaimOp::Claim(c) => (&c.scope, &c.key),
                ClaimOp::Release { scope, key } => (scope, key),
            };
            check_name("claim scope", 64, scope)
                .map_err(|e| AppendError::Invalid(e.to_string()))?;
            if key.is_empty() || key.len() > 64 {
                return invalid(format!(
                    "a claim key must be 1 to 64 bytes, got {}",
                    key.len()
                ));
            }
            claims.push(match c {
                ClaimOp::Claim(c) => PreparedClaim::Claim {
                    payload: c.payload.to_string(),
                    scope: c.scope,
                    key: c.key,
                },
                ClaimOp::Release { scope, key } => PreparedClaim::Release { scope, key },
            });
        }
        // Releases first, so that one append may give a key up and take it again.
        claims.sort_by_key(|c| matches!(c, PreparedClaim::Claim { .. }));
        Ok(Self {
            streams,
            claims,
            events,
            bytes,
        })
    }
}
