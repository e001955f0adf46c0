//! Reading a CloudEvents message (API.md, `schemas/envelope.cloudevents.json`) into an
//! event to apply.
//!
//! Only the position must be readable: it says where the message belongs. If anything
//! else is off (no `schemaversion`, an unparsable `time`), the event is read from the
//! log instead, which is the truth the message was made from. Whether the *data* is a
//! ledger event is not decided here: that is `apply`'s poison check.

use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::apply::{Data, SourceEvent};
use crate::checkpoint::Candidate;

/// The fields the projector reads; the others (`source`, `datacontenttype`, ids for
/// correlation) it does not need.
#[derive(Deserialize)]
struct Envelope {
    id: Uuid,
    #[serde(rename = "type")]
    event_type: String,
    subject: String,
    time: String,
    data: serde_json::Value,
    streamversion: u64,
    schemaversion: u32,
    #[serde(default)]
    correlationid: Option<String>,
}

/// A message body that does not even say its position.
#[derive(Debug, thiserror::Error)]
#[error("the message is not a CloudEvents document with a position: {0}")]
pub(crate) struct Unplaceable(String);

/// The trace id of a message's W3C `traceparent` header (the relay copies it from the
/// event's metadata), if it has a well-formed one.
pub(crate) fn trace_id(properties: &lapin::BasicProperties) -> Option<String> {
    let headers = properties.headers().as_ref()?;
    let value = headers.inner().get("traceparent")?;
    let text = match value {
        lapin::types::AMQPValue::LongString(s) => {
            String::from_utf8_lossy(s.as_bytes()).into_owned()
        }
        lapin::types::AMQPValue::ShortString(s) => s.as_str().to_owned(),
        _ => return None,
    };
    // version "-" trace-id (32 hex) "-" parent-id (16 hex) "-" flags
    let mut parts = text.split('-');
    let (_version, trace, _parent) = (parts.next()?, parts.next()?, parts.next()?);
    let valid = trace.len() == 32
        && trace.bytes().all(|b| b.is_ascii_hexdigit())
        && trace.bytes().any(|b| b != b'0');
    valid.then(|| trace.to_ascii_lowercase())
}

/// The candidate a message body brings, and its correlation id if it has one.
pub(crate) fn parse(body: &[u8]) -> Result<(Candidate, Option<String>), Unplaceable> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| Unplaceable(e.to_string()))?;
    let position = value
        .get("position")
        .and_then(serde_json::Value::as_u64)
        .filter(|p| *p >= 1)
        .ok_or_else(|| Unplaceable("no positive integer `position`".into()))?;
    let Ok(envelope) = serde_json::from_value::<Envelope>(value) else {
        return Ok((
            Candidate {
                position,
                event: None,
            },
            None,
        ));
    };
    let Ok(recorded_at) = OffsetDateTime::parse(&envelope.time, &Rfc3339) else {
        return Ok((
            Candidate {
                position,
                event: None,
            },
            None,
        ));
    };
    let event = SourceEvent {
        position,
        event_id: envelope.id,
        stream_id: envelope.subject,
        stream_version: envelope.streamversion,
        event_type: envelope.event_type,
        schema_version: envelope.schemaversion,
        recorded_at,
        data: Data::Json(envelope.data),
    };
    Ok((
        Candidate {
            position,
            event: Some(event),
        },
        envelope.correlationid,
    ))
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
            "data": {"amount": 5},
            "position": 7,
            "streamversion": 3,
            "schemaversion": 1,
            "correlationid": "c-1"
        })
    }

    #[test]
    fn a_whole_envelope_brings_its_event() {
        let (candidate, correlation) = parse(body().to_string().as_bytes()).unwrap();
        let event = candidate.event.unwrap();
        assert_eq!(candidate.position, 7);
        assert_eq!(event.stream_version, 3);
        assert_eq!(event.recorded_at.microsecond(), 42);
        assert_eq!(correlation.as_deref(), Some("c-1"));
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
    fn the_trace_id_comes_from_a_well_formed_traceparent_only() {
        let good = "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01";
        assert_eq!(
            trace_id(&with_traceparent(good)).as_deref(),
            Some("0af7651916cd43dd8448eb211c80319c")
        );
        for bad in [
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd-b7ad6b7169203331-01",
            "nonsense",
        ] {
            assert_eq!(trace_id(&with_traceparent(bad)), None, "{bad}");
        }
        assert_eq!(trace_id(&lapin::BasicProperties::default()), None);
    }

    #[test]
    fn an_envelope_missing_a_field_is_read_from_the_log() {
        let mut b = body();
        b.as_object_mut().unwrap().remove("schemaversion");
        let (candidate, _) = parse(b.to_string().as_bytes()).unwrap();
        assert_eq!(candidate.position, 7);
        assert!(candidate.event.is_none());
    }

    #[test]
    fn a_body_without_a_position_cannot_be_placed() {
        let mut b = body();
        b.as_object_mut().unwrap().remove("position");
        assert!(parse(b.to_string().as_bytes()).is_err());
        assert!(parse(b"not json").is_err());
    }
}
