//! The served `/openapi.json` says what the service enforces, in a form a generator or a
//! typed client can follow.

use axum::http::StatusCode;
use serde_json::Value;

use crate::support::{spawn_app, Req};

fn parameter<'a>(doc: &'a Value, path: &str, method: &str, name: &str) -> &'a Value {
    doc["paths"][path][method]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("{method} {path} has no {name}"))
}

#[tokio::test]
async fn the_document_can_be_followed_to_a_valid_request() {
    let app = spawn_app().await;
    let answer = app.send(Req::get("/openapi.json")).await;
    answer.ok_status(StatusCode::OK);
    let doc = answer.json();

    // Each kind of transaction is one object that names its type and its own fields.
    let variants = doc["components"]["schemas"]["TransactionBody"]["oneOf"]
        .as_array()
        .unwrap();
    let kinds: Vec<&str> = variants
        .iter()
        .map(|v| v["properties"]["type"]["enum"][0].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["deposit", "withdrawal", "transfer"]);
    for v in variants {
        assert_eq!(v["type"], "object", "{v}");
        assert_eq!(v["additionalProperties"], false);
        assert_eq!(v["required"][0], "type");
        assert!(v["properties"]["transaction_id"].is_object(), "{v}");
        assert_eq!(
            v["properties"]["currency"]["enum"],
            serde_json::json!(["EUR", "USD", "GBP", "CHF", "JPY"])
        );
        assert!(v.get("allOf").is_none());
    }

    // Header formats, as the service checks them.
    let key = parameter(&doc, "/api/v1/transactions", "post", "Idempotency-Key");
    assert_eq!(key["schema"]["type"], "string");
    assert_eq!(key["schema"]["pattern"], "^[!-~]{1,128}$");
    let if_match = parameter(&doc, "/api/v1/users/{id}", "patch", "If-Match");
    assert_eq!(if_match["required"], true);
    assert!(if_match["schema"]["pattern"]
        .as_str()
        .unwrap()
        .contains("\\*"));

    // 428 without If-Match, the replay header on successes, and the state conflicts.
    let patch = &doc["paths"]["/api/v1/users/{id}"]["patch"]["responses"];
    assert!(patch["428"].is_object());
    assert!(patch["200"]["headers"]["Idempotent-Replayed"].is_object());
    let created = &doc["paths"]["/api/v1/transactions"]["post"]["responses"]["201"];
    assert!(created["headers"]["Idempotent-Replayed"].is_object());
    let conflicts = doc["paths"]["/api/v1/transactions"]["post"]["responses"]["409"]["description"]
        .as_str()
        .unwrap();
    for code in [
        "insufficient_funds",
        "user_inactive",
        "user_erased",
        "idempotency_key_reused",
    ] {
        assert!(conflicts.contains(code), "{code}");
    }
    let unavailable = doc["components"]["responses"]["Unavailable"]["description"]
        .as_str()
        .unwrap();
    assert!(unavailable.contains("outcome_unknown"));

    // Names without control characters; a profile change that sets something.
    let name = &doc["components"]["schemas"]["RegisterUserBody"]["properties"]["display_name"];
    assert!(name["allOf"].is_array(), "{name}");
    assert!(doc["components"]["schemas"]["UpdateProfileBody"]["anyOf"].is_array());
}

/// The UI's types are generated from a checked-in copy of this document
/// (`ui/openapi/command-api.json`): it must be the one served, field for field.
#[tokio::test]
async fn the_ui_types_come_from_the_served_document() {
    let app = spawn_app().await;
    let served = app.send(Req::get("/openapi.json")).await.json();
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../ui/openapi/command-api.json"
    );
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("reading {file}: {e}"));
    let copy: serde_json::Value = serde_json::from_str(&text).unwrap();
    if let Some(at) = first_difference(&served, &copy, String::new()) {
        panic!(
            "ui/openapi/command-api.json is not the document command-api serves (first difference at \
             {at}): refresh it and the UI's types with `npm run gen:api` in ui/, and commit both"
        );
    }
}

/// The JSON pointer of the first place where `a` and `b` differ, if any.
fn first_difference(a: &serde_json::Value, b: &serde_json::Value, at: String) -> Option<String> {
    use serde_json::Value::{Array, Object};
    match (a, b) {
        (Object(a), Object(b)) => a
            .keys()
            .chain(b.keys().filter(|k| !a.contains_key(*k)))
            .find_map(|k| {
                let here = format!("{at}/{}", pointer_token(k));
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => first_difference(x, y, here),
                    _ => Some(here),
                }
            }),
        (Array(a), Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (x, y))| first_difference(x, y, format!("{at}/{i}"))),
        _ if a == b => None,
        _ => Some(if at.is_empty() { "/".to_owned() } else { at }),
    }
}

/// A key as a JSON pointer writes it (RFC 6901: `~` as `~0`, `/` as `~1`).
fn pointer_token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}
