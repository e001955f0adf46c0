//! The wire format: one CloudEvents 1.0 JSON document per event (structured content
//! mode), as `schemas/envelope.cloudevents.json` describes it, plus its AMQP properties.

use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::BasicProperties;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::event::RecordedEvent;
use crate::metadata::Metadata;
use crate::relay::error::RelayError;

/// The AMQP `content_type` of every message the relay publishes.
pub const CLOUDEVENTS_CONTENT_TYPE: &str = "application/cloudevents+json";

/// AMQP `delivery_mode` 2: the broker writes the message to disk.
const PERSISTENT: u8 = 2;

/// One event as it travels. Serialises to the documented envelope, field for field;
/// consumers deserialise the body into it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudEvent {
    /// Always `"1.0"`.
    pub specversion: String,
    /// The event id, also the AMQP `message_id`.
    pub id: Uuid,
    /// The producing system, a URI reference.
    pub source: String,
    /// The event type, also the routing key.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The stream id.
    pub subject: String,
    /// When the log recorded the event: RFC 3339, UTC, always six fractional digits.
    #[serde(with = "wire_time")]
    pub time: OffsetDateTime,
    /// Always `"application/json"`.
    pub datacontenttype: String,
    /// The event's data, as JSON (not a string holding JSON).
    pub data: serde_json::Value,
    /// The event's position in the log.
    pub position: u64,
    /// The event's version in its stream.
    pub streamversion: u64,
    /// The schema version of `data`.
    pub schemaversion: u32,
    /// The metadata's `correlation_id`, or the event id when it has none. Always set by
    /// the relay; optional only for reading bodies of older producers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlationid: Option<String>,
    /// The metadata's `causation_id`, or the correlation id when it has none (events
    /// appended before every command recorded one). Always set by the relay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causationid: Option<String>,
}

/// The AMQP header that carries the epoch of the relay's leadership term that published
/// a message (ADR 0013). Not in the body: the body is the event's CloudEvent, the same
/// bytes whoever serves it (RabbitMQ, `/api/v1/events`, a webhook); the term belongs to
/// the publication, not to the event. Consumers drop a message whose epoch is older than
/// one they have seen.
pub const RELAY_EPOCH: &str = "relayepoch";

impl CloudEvent {
    /// The envelope of a recorded event. Fails only if the stored data or metadata is not
    /// JSON, which the log's own checks make impossible short of tampering.
    pub fn from_recorded(event: &RecordedEvent, source: &str) -> Result<Self, RelayError> {
        Self::with_metadata(event, source).map(|(cloud_event, _)| cloud_event)
    }

    /// The envelope and the event's parsed metadata.
    fn with_metadata(event: &RecordedEvent, source: &str) -> Result<(Self, Metadata), RelayError> {
        let position = event.position;
        let envelope = |what: &str, e: serde_json::Error| RelayError::Envelope {
            position,
            what: format!("{what} is not JSON ({e})"),
        };
        let data: serde_json::Value =
            serde_json::from_str(&event.data).map_err(|e| envelope("data", e))?;
        let metadata = event
            .parsed_metadata()
            .map_err(|e| envelope("metadata", e))?;
        // API.md: every extension is always present, whatever an older event recorded.
        let correlation = metadata
            .correlation_id
            .clone()
            .unwrap_or_else(|| event.event_id.hyphenated().to_string());
        let cloud_event = Self {
            specversion: "1.0".into(),
            id: event.event_id,
            source: source.to_owned(),
            event_type: event.event_type.as_str().to_owned(),
            subject: event.stream_id.as_str().to_owned(),
            time: event.recorded_at,
            datacontenttype: "application/json".into(),
            data,
            position,
            streamversion: event.stream_version,
            schemaversion: event.schema_version,
            correlationid: Some(correlation.clone()),
            causationid: Some(metadata.causation_id.clone().unwrap_or(correlation)),
        };
        Ok((cloud_event, metadata))
    }
}

/// What goes to the broker for one event.
pub(crate) struct Outgoing {
    pub position: u64,
    pub recorded_at: OffsetDateTime,
    pub routing_key: ShortString,
    pub body: Vec<u8>,
    pub properties: BasicProperties,
}

impl Outgoing {
    /// The message for `event` in the leadership term of `epoch`.
    pub(crate) fn new(event: &RecordedEvent, source: &str, epoch: u64) -> Result<Self, RelayError> {
        let position = event.position;
        let (cloud_event, metadata) = CloudEvent::with_metadata(event, source)?;
        let body = serde_json::to_vec(&cloud_event).map_err(|e| RelayError::Envelope {
            position,
            what: format!("serialising the envelope failed ({e})"),
        })?;
        // Event types are at most 200 bytes, so they fit AMQP's 255-byte short strings;
        // the check keeps a future change from panicking inside the client.
        let event_type = short(event.event_type.as_str(), position, "event type")?;
        let mut headers = FieldTable::default();
        headers.insert(
            RELAY_EPOCH.into(),
            AMQPValue::LongLongInt(i64::try_from(epoch).unwrap_or(i64::MAX)),
        );
        // W3C trace context travels as headers, so a consumer continues the trace.
        for (name, value) in [
            ("traceparent", metadata.traceparent),
            ("tracestate", metadata.tracestate),
        ] {
            if let Some(value) = value {
                headers.insert(name.into(), AMQPValue::LongString(LongString::from(value)));
            }
        }
        let mut properties = BasicProperties::default()
            .with_content_type(CLOUDEVENTS_CONTENT_TYPE.into())
            .with_delivery_mode(PERSISTENT)
            .with_message_id(event.event_id.hyphenated().to_string().into())
            .with_type(event_type.clone())
            .with_timestamp(u64::try_from(event.recorded_at.unix_timestamp()).unwrap_or(0))
            .with_headers(headers);
        if let Some(correlation_id) = &cloud_event.correlationid {
            if let Ok(id) = ShortString::try_new(correlation_id.as_str()) {
                properties = properties.with_correlation_id(id);
            }
        }
        Ok(Self {
            position,
            recorded_at: event.recorded_at,
            routing_key: event_type,
            body,
            properties,
        })
    }
}

fn short(s: &str, position: u64, what: &str) -> Result<ShortString, RelayError> {
    ShortString::try_new(s).map_err(|e| RelayError::Envelope {
        position,
        what: format!("{what} does not fit an AMQP short string ({e})"),
    })
}

/// `time` as the envelope writes it: `2026-11-25T09:30:00.123456Z`. Reads any RFC 3339.
mod wire_time {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::format_description::well_known::Rfc3339;
    use time::macros::format_description;
    use time::{OffsetDateTime, UtcOffset};

    const FORMAT: &[time::format_description::FormatItem<'static>] =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

    pub(super) fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        let text = t
            .to_offset(UtcOffset::UTC)
            .format(FORMAT)
            .map_err(serde::ser::Error::custom)?;
        s.serialize_str(&text)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let text = String::deserialize(d)?;
        OffsetDateTime::parse(&text, &Rfc3339).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::chain::GENESIS_HASH;
    use crate::event::EventType;
    use crate::stream::StreamId;
    use serde_json::json;

    fn recorded(metadata: serde_json::Value) -> RecordedEvent {
        RecordedEvent {
            position: 7,
            event_id: Uuid::now_v7(),
            stream_id: StreamId::parse("user-0193a7a2-0000-7000-8000-000000000001").unwrap(),
            stream_version: 3,
            event_type: EventType::parse("transaction.deposited").unwrap(),
            schema_version: 1,
            data: r#"{"amount":100}"#.into(),
            metadata: metadata.to_string(),
            recorded_at: time::macros::datetime!(2026-11-25 09:30:00.000042 UTC),
            prev_hash: GENESIS_HASH,
            hash: GENESIS_HASH,
        }
    }

    #[test]
    fn the_envelope_carries_the_event_and_its_ids() {
        let event = recorded(json!({
            "correlation_id": "c-1",
            "causation_id": null,
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        }));
        let out = Outgoing::new(&event, "urn:example:ledger", 4).unwrap();
        let body: serde_json::Value = serde_json::from_slice(&out.body).unwrap();
        assert_eq!(body["time"], "2026-11-25T09:30:00.000042Z");
        assert_eq!(body["data"], json!({ "amount": 100 }));
        assert_eq!(body["correlationid"], "c-1");
        assert_eq!(
            body["causationid"], "c-1",
            "no causation: the correlation id"
        );
        assert_eq!(body["id"], event.event_id.to_string());

        assert_eq!(body["id"], event.event_id.to_string());
        assert_eq!(out.routing_key.as_str(), "transaction.deposited");
        assert_eq!(out.properties.delivery_mode(), &Some(2));
        // The epoch travels beside the body, which is the event's CloudEvent alone.
        assert!(body.get("relayepoch").is_none());
        let headers = out.properties.headers().clone().unwrap();
        assert!(headers.contains_key("traceparent"));
        assert_eq!(
            headers.inner().get(RELAY_EPOCH),
            Some(&AMQPValue::LongLongInt(4))
        );
        let back: CloudEvent = serde_json::from_slice(&out.body).unwrap();
        assert_eq!(back.time, event.recorded_at);
        assert_eq!(back.position, 7);
        let served = CloudEvent::from_recorded(&event, "urn:example:ledger").unwrap();
        assert_eq!(serde_json::to_vec(&served).unwrap(), out.body);

        let bare = recorded(json!({}));
        let body: serde_json::Value =
            serde_json::from_slice(&Outgoing::new(&bare, "urn:example:ledger", 1).unwrap().body)
                .unwrap();
        assert_eq!(body["correlationid"], bare.event_id.to_string());
        assert_eq!(body["causationid"], bare.event_id.to_string());
    }
}
