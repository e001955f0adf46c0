//! The generic error codes of API.md, each as problem+json with its `code`.

use std::time::Duration;

use axum::http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::StatusCode;
use platform::{DEV_AUDIENCE, DEV_ISSUER, MAX_BODY_BYTES};
use serde_json::json;
use uuid::Uuid;

use crate::support::{spawn_app, spawn_app_behind_proxy, Req};

#[tokio::test]
async fn bodies_that_are_not_the_dto_are_malformed() {
    let app = spawn_app().await;
    let ada = app.someone().await;
    for body in [
        &b"{\"type\": \"deposit\","[..],
        b"[]",
        br#"{"type": "deposit", "user_id": "x", "amount": "12", "currency": "EUR"}"#,
        br#"{"type": "deposit", "user_id": "x", "amount": 12, "currency": "EUR", "memo": 1}"#,
        br#"{"type": "gift", "user_id": "x", "amount": 12, "currency": "EUR"}"#,
        br#"{"type": "deposit", "amount": 12, "currency": "EUR"}"#,
        br#"{"type": "deposit", "user_id": "x", "amount": 1.5, "currency": "EUR"}"#,
    ] {
        app.send(
            Req::post("/api/v1/transactions")
                .token(&ada.token)
                .raw("application/json", body.to_vec()),
        )
        .await
        .problem(StatusCode::BAD_REQUEST, "malformed_body");
    }
    app.send(
        Req::post("/api/v1/users")
            .token(&ada.token)
            .json(json!({"email": "a@b.co", "display_name": "A", "role": "admin"})),
    )
    .await
    .problem(StatusCode::BAD_REQUEST, "malformed_body");
}

#[tokio::test]
async fn commands_need_a_valid_unexpired_token() {
    let app = spawn_app().await;
    let body = json!({"email": "a@b.co", "display_name": "A"});
    let answer = app
        .send(Req::post("/api/v1/users").json(body.clone()))
        .await;
    answer.problem(StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_eq!(answer.headers[WWW_AUTHENTICATE], "Bearer");

    let answer = app
        .send(
            Req::post("/api/v1/users")
                .token("not.a.jwt")
                .json(body.clone()),
        )
        .await;
    answer.problem(StatusCode::UNAUTHORIZED, "unauthenticated");
    assert!(answer.headers[WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expired = app
        .tokens
        .sign(&json!({
            "iss": DEV_ISSUER, "aud": DEV_AUDIENCE, "sub": Uuid::now_v7(),
            "iat": now - 3_600, "nbf": now - 3_600, "exp": now - 600, "roles": ["admin"],
        }))
        .unwrap();
    app.send(
        Req::post("/api/v1/users")
            .token(&expired)
            .json(body.clone()),
    )
    .await
    .problem(StatusCode::UNAUTHORIZED, "unauthenticated");

    // Signed by another key.
    let stranger = platform::DevKeys::generate()
        .unwrap()
        .mint(
            Uuid::now_v7(),
            &[platform::Role::Admin],
            std::time::Duration::from_secs(60),
            DEV_ISSUER,
            DEV_AUDIENCE,
        )
        .unwrap();
    app.send(Req::post("/api/v1/users").token(&stranger).json(body))
        .await
        .problem(StatusCode::UNAUTHORIZED, "unauthenticated");
}

#[tokio::test]
async fn bodies_must_be_json_and_at_most_64_kib() {
    let app = spawn_app().await;
    let admin = app.admin();
    app.send(
        Req::post("/api/v1/users")
            .token(&admin)
            .raw("text/plain", b"email=a@b.co".to_vec()),
    )
    .await
    .problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    let mut big = br#"{"email": "a@b.co", "display_name": ""#.to_vec();
    big.extend(std::iter::repeat_n(b'x', MAX_BODY_BYTES));
    big.extend(br#""}"#);
    app.send(
        Req::post("/api/v1/users")
            .token(&admin)
            .raw("application/json", big),
    )
    .await
    .problem(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
}

#[tokio::test]
async fn unknown_routes_and_methods_are_problems_too() {
    let app = spawn_app().await;
    app.send(Req::get("/api/v1/nothing-here"))
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");
    app.send(Req::get("/api/v1/transactions").token(&app.admin()))
        .await
        .problem(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
}

#[tokio::test]
async fn a_malformed_idempotency_key_is_a_validation_failure() {
    let app = spawn_app().await;
    let ada = app.someone().await;
    for key in ["", &"k".repeat(129), "two words"] {
        let body = app
            .send(
                Req::post("/api/v1/transactions")
                    .token(&ada.token)
                    .idempotency_key(key)
                    .json(json!({"type": "deposit", "user_id": ada.id, "amount": 1, "currency": "EUR"})),
            )
            .await
            .problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(body["errors"][0]["field"], "Idempotency-Key");
    }
    assert_eq!(app.events(ada.id).await.len(), 1);
}

#[tokio::test]
async fn a_database_that_is_gone_makes_commands_and_readiness_unavailable() {
    let (app, proxy) = spawn_app_behind_proxy(Duration::from_secs(2)).await;
    let ada = app.someone().await;
    app.send(Req::get("/health/ready"))
        .await
        .ok_status(StatusCode::OK);
    proxy.refuse(true);
    proxy.cut();
    let answer = app.deposit(&ada.token, ada.id, 10).await;
    // The append went out on a connection that turned out dead: whether the database
    // got it cannot be known, and the answer says so.
    let body = answer.json();
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        ["unavailable", "outcome_unknown"].contains(&body["code"].as_str().unwrap_or("")),
        "{body}"
    );
    assert!(answer.headers.contains_key(RETRY_AFTER));
    app.send(Req::get("/health/ready"))
        .await
        .problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
}
