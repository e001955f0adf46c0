//! `/openapi.json` lists every route of API.md's Views and Audit, plus operations.

use axum::http::StatusCode;

use crate::support::{spawn_app, Req};

#[tokio::test]
async fn the_document_lists_every_route() {
    let app = spawn_app().await;
    let answer = app.send(Req::get("/openapi.json")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.content_type(), "application/json");
    let doc = answer.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/v1/users",
        "/api/v1/users/{id}",
        "/api/v1/users/{id}/balances",
        "/api/v1/transactions",
        "/api/v1/transactions/{id}",
        "/api/v1/audit/events",
        "/api/v1/audit/verify",
        "/api/v1/audit/users/{id}/balances",
        "/api/v1/audit/export",
        "/api/v1/audit/anchors",
        "/api/v1/audit/anchors/jwks",
        "/health/live",
        "/health/ready",
        "/metrics",
        "/openapi.json",
    ] {
        assert!(doc["paths"][path]["get"].is_object(), "{path} missing");
    }
    let user = &doc["components"]["schemas"]["UserView"]["properties"];
    for field in [
        "user_id",
        "email",
        "display_name",
        "status",
        "erased",
        "version",
        "created_at",
        "updated_at",
    ] {
        assert!(user[field].is_object(), "UserView.{field}");
    }
}

#[tokio::test]
async fn health_and_unknown_routes_answer_as_platform_does() {
    let app = spawn_app().await;
    assert_eq!(
        app.send(Req::get("/health/live")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.send(Req::get("/health/ready")).await.status,
        StatusCode::OK
    );
    app.send(Req::get("/api/v1/nothing"))
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");
    app.send(Req::get("/api/v1/users").method(axum::http::Method::POST))
        .await
        .problem(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
}

#[tokio::test]
async fn the_document_says_what_the_service_takes() {
    let app = spawn_app().await;
    let doc = app.send(Req::get("/openapi.json")).await.json();
    let parameter = |path: &str, name: &str| {
        doc["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{path} has no {name}"))
            .clone()
    };
    // A header is text: X-Min-Position is digits, never null.
    let min = parameter("/api/v1/users/{id}", "X-Min-Position");
    assert_eq!(min["schema"]["type"], "string");
    assert_eq!(min["schema"]["pattern"], "^[0-9]{1,19}$");
    // Limits as the service enforces them.
    for (path, max) in [
        ("/api/v1/users", 200),
        ("/api/v1/transactions", 200),
        ("/api/v1/audit/events", 1000),
        ("/api/v1/events", 1000),
    ] {
        let limit = parameter(path, "limit");
        assert_eq!(limit["schema"]["minimum"], 1, "{path}");
        assert_eq!(limit["schema"]["maximum"], max, "{path}");
    }
    // Each list's cursor exactly as the service writes it, and positions as it parses them.
    assert_eq!(
        parameter("/api/v1/users", "cursor")["schema"]["pattern"],
        "^75[0-9a-fA-F]{48}$"
    );
    assert_eq!(
        parameter("/api/v1/transactions", "cursor")["schema"]["pattern"],
        "^74[0-9a-fA-F]{48}$"
    );
    let after = parameter("/api/v1/audit/events", "after");
    assert_eq!(after["schema"]["minimum"], 0);
    assert_eq!(after["schema"]["maximum"], u64::MAX);
    assert_eq!(
        parameter("/api/v1/audit/export", "from")["schema"]["minimum"],
        1
    );
    // No nil UUID where an id goes: the ledger's ids refuse it.
    assert_eq!(
        parameter("/api/v1/users/{id}", "id")["schema"]["not"]["const"],
        "00000000-0000-0000-0000-000000000000"
    );
}

/// The UI's types are generated from a checked-in copy of this document
/// (`ui/openapi/query-api.json`): it must be the one served, field for field.
#[tokio::test]
async fn the_ui_types_come_from_the_served_document() {
    let app = spawn_app().await;
    let served = app.send(Req::get("/openapi.json")).await.json();
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../ui/openapi/query-api.json");
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("reading {file}: {e}"));
    let copy: serde_json::Value = serde_json::from_str(&text).unwrap();
    if let Some(at) = first_difference(&served, &copy, String::new()) {
        panic!(
            "ui/openapi/query-api.json is not the document query-api serves (first difference at \
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
