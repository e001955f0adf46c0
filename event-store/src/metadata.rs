//! What the log records about an event besides its data: who and what caused it, and the
//! trace it belongs to. command-api writes it; the relay puts it on the wire
//! (`correlationid`, `causationid`, the `traceparent` header); auditors read it back.
//!
//! Never personal data: ids and hashes only. Written with its fields in name order (the
//! order the earlier `json!` objects had), so the bytes an event's hash covers keep their
//! form. Read leniently: an older event may lack a field, or hold `null` or an empty
//! string, and each reads as absent.

use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// The principal (`sub`) whose command appended the event.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_uuid"
    )]
    pub actor: Option<Uuid>,
    /// What caused the event: the command's idempotency key (its keyed hash), or else its
    /// correlation id.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_text"
    )]
    pub causation_id: Option<String>,
    /// The request's `X-Correlation-Id` (or the one made for it).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_text"
    )]
    pub correlation_id: Option<String>,
    /// The keyed hash of the caller's `Idempotency-Key`, if it sent one.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_text"
    )]
    pub idempotency_key: Option<String>,
    /// The W3C trace context of the request that appended it.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_text"
    )]
    pub traceparent: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_text"
    )]
    pub tracestate: Option<String>,
}

impl Metadata {
    /// The metadata of a recorded event. Fails only on text that is not a JSON object,
    /// which the log's checks make impossible short of tampering.
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        // A derived struct also reads a JSON array (its fields in order); only an object
        // is metadata. Checked on the text: the relay parses every event's metadata once.
        if !text.trim_start().starts_with('{') {
            return Err(serde::de::Error::custom(
                "the metadata is not a JSON object",
            ));
        }
        serde_json::from_str(text)
    }

    /// The JSON text the log stores.
    pub fn to_json(&self) -> String {
        // A struct of strings and ids always serialises.
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }
}

/// A non-empty string; anything else (null, a number, `""`) is absent.
fn lenient_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(d)?;
    Ok(match value {
        Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s),
        _ => None,
    })
}

fn lenient_uuid<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Uuid>, D::Error> {
    Ok(lenient_text(d)?.and_then(|s| Uuid::parse_str(&s).ok()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    #[test]
    fn it_writes_the_bytes_the_json_objects_wrote() {
        let actor = Uuid::now_v7();
        let metadata = Metadata {
            actor: Some(actor),
            causation_id: Some("k".into()),
            correlation_id: Some("c".into()),
            idempotency_key: Some("k".into()),
            traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
            tracestate: None,
        };
        let before = json!({
            "correlation_id": "c",
            "causation_id": "k",
            "actor": actor,
            "idempotency_key": "k",
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        });
        assert_eq!(metadata.to_json(), before.to_string());
    }

    #[test]
    fn an_older_event_reads_with_what_it_has() {
        let read = Metadata::parse(
            r#"{"correlation_id": "", "causation_id": null, "actor": 7, "other": {"x": 1}}"#,
        )
        .unwrap();
        assert_eq!(read, Metadata::default());
        assert_eq!(Metadata::parse("{}").unwrap(), Metadata::default());
        assert!(Metadata::parse("[1]").is_err());
    }
}
