//! Reading a CloudEvents message (API.md, `schemas/envelope.cloudevents.json`) into what
//! it claims: a message is a notification that the log holds an event at its position,
//! never the event itself (ADR 0014). The projector applies the log's event there and
//! holds the message's claim against it ([`Claim::check`]); a message that disagrees is
//! dropped.
//!
//! The message's AMQP header `relayepoch` says which relay leadership term published it
//! (ADR 0013); the body is the event's CloudEvent alone.
//!
//! Only the position must be readable: it says where the message belongs. The claim is
//! the body read as `event_store::relay::CloudEvent`, the type the relay writes (one
//! envelope type for the broker, `/api/v1/events` and webhooks); a body that is not a whole
//! CloudEvent (no `id`, an unparsable `time`, ...) claims nothing and is dropped as
//! disagreeing; its position is read from the log like any other.

use event_store::relay::CloudEvent;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::apply::SourceEvent;

/// What a message says about its position.
#[derive(Debug, Clone)]
pub(crate) struct Message {
    pub position: u64,
    /// `None`: the message does not say which event it is, so it cannot be checked.
    pub claim: Option<Claim>,
    /// The relay epoch of the term that published it (the `relayepoch` header); `None`
    /// from a relay that predates epochs, which counts as older than any.
    pub epoch: Option<u64>,
    pub correlation_id: Option<String>,
}

/// The event a message says the log holds at its position.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Claim {
    pub event_id: Uuid,
    pub event_type: String,
    pub stream_id: String,
    pub stream_version: u64,
    pub schema_version: u32,
    pub recorded_at: OffsetDateTime,
    pub data: serde_json::Value,
}

/// Where a message and the log part ways: the first field that differs, with both
/// values (never `data` itself, which may be large: only that it differs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: the message says {claimed}, the log holds {logged}")]
pub(crate) struct Mismatch {
    pub field: &'static str,
    pub claimed: String,
    pub logged: String,
}

impl Claim {
    /// `Ok` when `logged`, the log's event at the message's position, is the event the
    /// message claims, field for field.
    pub fn check(&self, logged: &SourceEvent) -> Result<(), Mismatch> {
        let differs = |field, claimed: &dyn std::fmt::Display, logged: &dyn std::fmt::Display| {
            Err(Mismatch {
                field,
                claimed: claimed.to_string(),
                logged: logged.to_string(),
            })
        };
        if self.event_id != logged.event_id {
            return differs("id", &self.event_id, &logged.event_id);
        }
        if self.event_type != logged.event_type {
            return differs("type", &self.event_type, &logged.event_type);
        }
        if self.stream_id != logged.stream_id {
            return differs("subject", &self.stream_id, &logged.stream_id);
        }
        if self.stream_version != logged.stream_version {
            return differs(
                "streamversion",
                &self.stream_version,
                &logged.stream_version,
            );
        }
        if self.schema_version != logged.schema_version {
            return differs(
                "schemaversion",
                &self.schema_version,
                &logged.schema_version,
            );
        }
        if self.recorded_at != logged.recorded_at {
            return differs("time", &self.recorded_at, &logged.recorded_at);
        }
        let same_data = serde_json::from_str::<serde_json::Value>(&logged.data)
            .is_ok_and(|data| data == self.data);
        if !same_data {
            return differs("data", &"other data", &"its own");
        }
        Ok(())
    }
}

/// A message body that does not even say its position.
#[derive(Debug, thiserror::Error)]
#[error("the message is not a CloudEvents document with a position: {0}")]
pub(crate) struct Unplaceable(String);

/// A message's W3C `traceparent` header (the relay copies it from the event's metadata),
/// if it has a well-formed one.
pub(crate) fn traceparent(properties: &lapin::BasicProperties) -> Option<platform::TraceParent> {
    let headers = properties.headers().as_ref()?;
    let value = headers.inner().get(platform::TRACEPARENT.as_str())?;
    match value {
        lapin::types::AMQPValue::LongString(s) => {
            platform::TraceParent::parse(std::str::from_utf8(s.as_bytes()).ok()?)
        }
        lapin::types::AMQPValue::ShortString(s) => platform::TraceParent::parse(s.as_str()),
        _ => None,
    }
}

/// The relay epoch a message's headers carry, if they carry a well-formed one.
pub(crate) fn epoch(properties: &lapin::BasicProperties) -> Option<u64> {
    let headers = properties.headers().as_ref()?;
    match headers.inner().get(event_store::relay::RELAY_EPOCH)? {
        lapin::types::AMQPValue::LongLongInt(n) => u64::try_from(*n).ok(),
        lapin::types::AMQPValue::LongInt(n) => u64::try_from(*n).ok(),
        lapin::types::AMQPValue::LongUInt(n) => Some(u64::from(*n)),
        lapin::types::AMQPValue::ShortInt(n) => u64::try_from(*n).ok(),
        lapin::types::AMQPValue::ShortShortInt(n) => u64::try_from(*n).ok(),
        _ => None,
    }
}

/// What a message says: its body, and the relay `epoch` its headers carry.
pub(crate) fn parse(body: &[u8], epoch: Option<u64>) -> Result<Message, Unplaceable> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| Unplaceable(e.to_string()))?;
    let position = value
        .get("position")
        .and_then(serde_json::Value::as_u64)
        .filter(|p| *p >= 1)
        .ok_or_else(|| Unplaceable("no positive integer `position`".into()))?;
    let correlation_id = value
        .get("correlationid")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned);
    // The relay's own envelope type: a body that is not a whole CloudEvent claims nothing.
    let claim = serde_json::from_value::<CloudEvent>(value)
        .ok()
        .map(|envelope| Claim {
            event_id: envelope.id,
            event_type: envelope.event_type,
            stream_id: envelope.subject,
            stream_version: envelope.streamversion,
            schema_version: envelope.schemaversion,
            recorded_at: envelope.time,
            data: envelope.data,
        });
    Ok(Message {
        position,
        claim,
        epoch,
        correlation_id,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    fn body() -> serde_json::Value {
        json!({
            "specversion": "1.0",
            "id": "0190a8f6-7b2c-7c3e-9f00-0123456789ab",
            "source": "urn:example:ledger",
            "type": "transaction.deposited",
            "subject": "user-0190a8f6-7b2c-7c3e-9f00-00000000a11c",
            "time": "2026-11-25T09:30:00.000042Z",
            "datacontenttype": "application/json",
            "data": {"amount": 5, "currency": "CHF"},
            "position": 7,
            "streamversion": 3,
            "schemaversion": 1,
            "correlationid": "c-1"
        })
    }

    /// The log's event that `body()` describes.
    fn logged() -> SourceEvent {
        SourceEvent {
            position: 7,
            event_id: Uuid::parse_str("0190a8f6-7b2c-7c3e-9f00-0123456789ab").unwrap(),
            stream_id: "user-0190a8f6-7b2c-7c3e-9f00-00000000a11c".into(),
            stream_version: 3,
            event_type: "transaction.deposited".into(),
            schema_version: 1,
            recorded_at: time::macros::datetime!(2026-11-25 09:30:00.000042 UTC),
            data: r#"{"currency":"CHF","amount":5}"#.into(),
        }
    }

    fn claim(body: serde_json::Value) -> Claim {
        parse(body.to_string().as_bytes(), None)
            .unwrap()
            .claim
            .unwrap()
    }

    #[test]
    fn a_whole_envelope_claims_its_event() {
        let message = parse(body().to_string().as_bytes(), Some(3)).unwrap();
        assert_eq!(message.position, 7);
        assert_eq!(message.correlation_id.as_deref(), Some("c-1"));
        assert_eq!(message.epoch, Some(3));
        let claim = message.claim.unwrap();
        assert_eq!(claim.stream_version, 3);
        assert_eq!(claim.recorded_at.microsecond(), 42);
        assert_eq!(claim.check(&logged()), Ok(()));
    }

    #[test]
    fn a_claim_that_differs_from_the_log_in_any_field_is_refused() {
        let cases = [
            ("id", json!("0190a8f6-7b2c-7c3e-9f00-0123456789ac")),
            ("type", json!("transaction.withdrawn")),
            (
                "subject",
                json!("user-0190a8f6-7b2c-7c3e-9f00-00000000b0b0"),
            ),
            ("streamversion", json!(4)),
            ("schemaversion", json!(2)),
            ("time", json!("2026-11-25T09:30:00.000043Z")),
            (
                "data",
                json!({"amount": 1_000_000_000_000_i64, "currency": "CHF"}),
            ),
        ];
        for (field, value) in cases {
            let mut b = body();
            b[field] = value;
            let mismatch = claim(b).check(&logged()).unwrap_err();
            assert_eq!(mismatch.field, field);
        }
    }

    fn with_traceparent(value: &str) -> lapin::BasicProperties {
        let mut headers = lapin::types::FieldTable::default();
        headers.insert(
            "traceparent".into(),
            lapin::types::AMQPValue::LongString(value.into()),
        );
        lapin::BasicProperties::default().with_headers(headers)
    }

    #[test]
    fn the_trace_context_comes_from_a_well_formed_traceparent_only() {
        let good = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        assert_eq!(
            traceparent(&with_traceparent(good)).map(|t| t.trace_id().to_owned()),
            Some("0af7651916cd43dd8448eb211c80319c".to_owned())
        );
        for bad in [
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd-b7ad6b7169203331-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "nonsense",
        ] {
            assert_eq!(traceparent(&with_traceparent(bad)), None, "{bad}");
        }
        assert_eq!(traceparent(&lapin::BasicProperties::default()), None);
    }

    #[test]
    fn an_envelope_missing_a_field_claims_nothing() {
        let mut b = body();
        b.as_object_mut().unwrap().remove("schemaversion");
        let message = parse(b.to_string().as_bytes(), None).unwrap();
        assert_eq!(message.position, 7);
        assert!(message.claim.is_none());
    }

    #[test]
    fn a_body_without_a_position_cannot_be_placed() {
        let mut b = body();
        b.as_object_mut().unwrap().remove("position");
        assert!(parse(b.to_string().as_bytes(), None).is_err());
        assert!(parse(b"not json", None).is_err());
    }
}
