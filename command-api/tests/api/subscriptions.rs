//! `/api/v1/subscriptions` (API.md, "Webhooks"): admin and service make, list, pause,
//! resume and delete webhook subscriptions; the secret is shown once and stored wrapped.

use axum::http::StatusCode;
use base64::Engine;
use platform::Role;
use serde_json::json;
use uuid::Uuid;

use crate::support::{spawn_app, spawn_app_with, Req};

fn create(token: &str, body: serde_json::Value) -> Req {
    Req::post("/api/v1/subscriptions").token(token).json(body)
}

#[tokio::test]
async fn a_subscription_is_made_once_with_its_secret_shown_once_and_stored_wrapped() {
    let app = spawn_app().await;
    let admin = app.admin();
    let ada = app.someone().await;
    let answer = app
        .send(create(
            &admin,
            json!({"name": "billing", "url": "https://hooks.example.com/ledger", "types": ["transaction.*"]}),
        ))
        .await;
    answer.ok_status(StatusCode::CREATED);
    let body = answer.json();
    assert_eq!(body["name"], "billing");
    assert_eq!(body["types"], json!(["transaction.*"]));
    assert_eq!(body["status"], "active");
    // Default `after`: the head when it was made (the registration's event).
    assert_eq!(body["after"], 1);
    let secret = body["secret"].as_str().unwrap();
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    assert_eq!(key.len(), 32);

    // Nowhere in clear: not in the table, not in later answers.
    let stored: Vec<u8> = sqlx::query_scalar("SELECT secret_wrapped FROM webhook_subscriptions")
        .fetch_one(app.store.pool())
        .await
        .unwrap();
    assert!(!stored.windows(key.len()).any(|w| w == key.as_slice()));
    let listed = app
        .send(Req::get("/api/v1/subscriptions").token(&admin))
        .await;
    listed.ok_status(StatusCode::OK);
    assert!(!String::from_utf8_lossy(&listed.body).contains(secret));
    let item = &listed.json()["items"][0];
    assert_eq!(item["delivered_position"], 1);
    assert_eq!(item["head_position"], 1);
    assert_eq!(item["lag"], 0);
    assert_eq!(item["parked"], 0);

    // The log grows: the lag shows it.
    app.deposit(&ada.token, ada.id, 5)
        .await
        .ok(StatusCode::CREATED);
    let one = app
        .send(Req::get("/api/v1/subscriptions/billing").token(&admin))
        .await
        .json();
    assert_eq!(
        (one["head_position"].as_u64(), one["lag"].as_u64()),
        (Some(2), Some(1))
    );

    app.send(create(
        &admin,
        json!({"name": "billing", "url": "https://other.example.com/"}),
    ))
    .await
    .problem(StatusCode::CONFLICT, "already_exists");
}

#[tokio::test]
async fn only_admins_and_services_manage_subscriptions() {
    let app = spawn_app().await;
    let body = json!({"name": "x", "url": "https://hooks.example.com/"});
    for role in [Role::User, Role::Auditor] {
        let token = app.token(role, Uuid::now_v7());
        app.send(create(&token, body.clone()))
            .await
            .problem(StatusCode::FORBIDDEN, "forbidden");
        app.send(Req::get("/api/v1/subscriptions").token(&token))
            .await
            .problem(StatusCode::FORBIDDEN, "forbidden");
    }
    let service = app.token(Role::Service, Uuid::now_v7());
    app.send(create(&service, body))
        .await
        .ok_status(StatusCode::CREATED);
    app.send(create("not-a-token", json!({})))
        .await
        .problem(StatusCode::UNAUTHORIZED, "unauthenticated");
}

#[tokio::test]
async fn bad_subscriptions_name_their_fields_and_internal_targets_are_refused() {
    let app = spawn_app().await;
    let admin = app.admin();
    for (body, field) in [
        (
            json!({"name": "Bad Name", "url": "https://h.example.com/"}),
            "name",
        ),
        (json!({"name": "a", "url": "http://h.example.com/"}), "url"),
        (json!({"name": "a", "url": "https://127.0.0.1/"}), "url"),
        (json!({"name": "a", "url": "https://10.0.0.8/hook"}), "url"),
        (json!({"name": "a", "url": "ftp://h.example.com/"}), "url"),
        (
            json!({"name": "a", "url": "https://h.example.com/", "types": ["a..b"]}),
            "types",
        ),
        (
            json!({"name": "a", "url": "https://h.example.com/", "types": []}),
            "types",
        ),
    ] {
        let problem = app
            .send(create(&admin, body.clone()))
            .await
            .problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(problem["errors"][0]["field"], field, "{body}");
    }
    app.send(create(
        &admin,
        json!({"name": "a", "url": "https://h.example.com/", "extra": 1}),
    ))
    .await
    .problem(StatusCode::BAD_REQUEST, "malformed_body");

    // A development stack may allow a receiver on the developer's machine.
    let dev = spawn_app_with(|state| {
        state.with_webhook_policy(webhooks::TargetPolicy {
            allow_insecure: true,
        })
    })
    .await;
    dev.send(create(
        &dev.admin(),
        json!({"name": "local", "url": "http://127.0.0.1:9999/hook", "after": 0}),
    ))
    .await
    .ok_status(StatusCode::CREATED);
}

#[tokio::test]
async fn a_subscription_pauses_resumes_and_is_deleted() {
    let app = spawn_app().await;
    let admin = app.admin();
    app.send(create(
        &admin,
        json!({"name": "p", "url": "https://h.example.com/"}),
    ))
    .await
    .ok_status(StatusCode::CREATED);
    let paused = app
        .send(Req::post("/api/v1/subscriptions/p/pause").token(&admin))
        .await;
    paused.ok_status(StatusCode::OK);
    assert_eq!(paused.json()["status"], "paused");
    // Pausing again is no error.
    app.send(Req::post("/api/v1/subscriptions/p/pause").token(&admin))
        .await
        .ok_status(StatusCode::OK);
    let resumed = app
        .send(Req::post("/api/v1/subscriptions/p/resume").token(&admin))
        .await;
    assert_eq!(resumed.json()["status"], "active");
    app.send(Req::delete("/api/v1/subscriptions/p").token(&admin))
        .await
        .ok_status(StatusCode::NO_CONTENT);
    for req in [
        Req::get("/api/v1/subscriptions/p"),
        Req::delete("/api/v1/subscriptions/p"),
        Req::post("/api/v1/subscriptions/p/pause"),
        Req::get("/api/v1/subscriptions/NOT%20A%20NAME"),
    ] {
        app.send(req.token(&admin))
            .await
            .problem(StatusCode::NOT_FOUND, "not_found");
    }
}
