//! Reading the anchors an auditor saved, in whatever shape they were saved: pages of
//! `GET /api/v1/audit/anchors` appended to one file, a JSON array of items, one item per
//! line, or `ledger.anchor.signed` CloudEvents kept from the broker (their `data`).

use hash_chain::SignedAnchor;
use serde_json::Value;

/// Why an anchors file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AnchorsFileError {
    #[error("the anchors file is not JSON ({0})")]
    NotJson(#[source] serde_json::Error),
    #[error("value {index} of the anchors file is not an anchor, a page or a CloudEvent of one ({reason})")]
    NotAnAnchor { index: usize, reason: String },
}

/// Every anchor in `text`, in the order found.
pub fn parse_anchors(text: &str) -> Result<Vec<SignedAnchor>, AnchorsFileError> {
    let mut anchors = Vec::new();
    for (index, value) in serde_json::Deserializer::from_str(text)
        .into_iter::<Value>()
        .enumerate()
    {
        let value = value.map_err(AnchorsFileError::NotJson)?;
        collect(value, index, &mut anchors)?;
    }
    Ok(anchors)
}

fn collect(
    value: Value,
    index: usize,
    anchors: &mut Vec<SignedAnchor>,
) -> Result<(), AnchorsFileError> {
    let not = |reason: String| AnchorsFileError::NotAnAnchor { index, reason };
    match value {
        Value::Array(items) => {
            for item in items {
                collect(item, index, anchors)?;
            }
            Ok(())
        }
        Value::Object(mut object) => {
            if let Some(items) = object.remove("items") {
                return collect(items, index, anchors);
            }
            if object.get("type").and_then(Value::as_str) == Some(hash_chain::ANCHOR_EVENT_TYPE) {
                let data = object
                    .remove("data")
                    .ok_or_else(|| not("a CloudEvent without data".into()))?;
                return collect(data, index, anchors);
            }
            let anchor =
                serde_json::from_value(Value::Object(object)).map_err(|e| not(e.to_string()))?;
            anchors.push(anchor);
            Ok(())
        }
        other => Err(not(format!("found {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hash_chain::{AnchorPayload, SigningKey};

    fn anchor(position: u64) -> SignedAnchor {
        let key = SigningKey::generate().unwrap();
        SignedAnchor::sign(
            AnchorPayload {
                position,
                hash: [3; 32],
                recorded_at: time::macros::datetime!(2026-12-08 10:00:00 UTC),
            },
            &key,
        )
    }

    #[test]
    fn pages_arrays_items_and_cloudevents_all_read() {
        let (a, b, c, d) = (anchor(1), anchor(2), anchor(3), anchor(4));
        let text = format!(
            "{}\n{}\n{}\n{}",
            serde_json::json!({"items": [a], "next_after": 1}),
            serde_json::json!([b]),
            serde_json::to_string(&c).unwrap(),
            serde_json::json!({"specversion": "1.0", "type": "ledger.anchor.signed", "data": d}),
        );
        let read = parse_anchors(&text).unwrap();
        assert_eq!(read, vec![a, b, c, d]);
        assert!(parse_anchors(r#"{"position": "x"}"#).is_err());
        assert!(parse_anchors("[1]").is_err());
    }
}
