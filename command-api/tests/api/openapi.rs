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
