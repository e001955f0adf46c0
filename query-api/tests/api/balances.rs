//! `GET /api/v1/users/{id}/balances`: the view, ownership, ETag and 304.

use axum::http::StatusCode;
use platform::Role;
use serde_json::json;
use uuid::Uuid;

use crate::support::{at, spawn_app, Req};

#[tokio::test]
async fn balances_read_per_currency_in_code_order() {
    let app = spawn_app().await;
    let id = app.user_at(at(1)).await;
    app.set_balance(id, "USD", 250, 5).await;
    app.set_balance(id, "EUR", 1_000, 7).await;
    app.set_balance(id, "CHF", 0, 6).await;
    app.set_checkpoint(7).await;

    let answer = app
        .get(
            &format!("/api/v1/users/{id}/balances"),
            &app.token(Role::User, id),
        )
        .await;
    assert_eq!(
        answer.ok(),
        json!({
            "user_id": id.to_string(),
            "balances": [
                {"currency": "CHF", "amount": 0},
                {"currency": "EUR", "amount": 1000},
                {"currency": "USD", "amount": 250},
            ]
        })
    );
    assert_eq!(answer.position(), 7);
    assert_eq!(
        answer.etag(),
        "\"7\"",
        "the last position that changed them"
    );
    assert_eq!(answer.header("cache-control"), Some("private, no-cache"));

    let again = app
        .send(
            Req::get(format!("/api/v1/users/{id}/balances"))
                .token(&app.as_role(Role::Auditor))
                .if_none_match(answer.etag()),
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert_eq!(again.position(), 7);
}

#[tokio::test]
async fn a_user_without_money_has_no_balances() {
    let app = spawn_app().await;
    let id = app.user_at(at(1)).await;
    app.set_checkpoint(1).await;
    let body = app
        .get(
            &format!("/api/v1/users/{id}/balances"),
            &app.as_role(Role::Service),
        )
        .await
        .ok();
    assert_eq!(body, json!({"user_id": id.to_string(), "balances": []}));
}

#[tokio::test]
async fn a_user_reading_another_users_balances_is_forbidden() {
    let app = spawn_app().await;
    let me = app.user_at(at(1)).await;
    let other = app.user_at(at(2)).await;
    app.set_balance(other, "EUR", 5, 2).await;
    app.set_checkpoint(2).await;
    let answer = app
        .get(
            &format!("/api/v1/users/{other}/balances"),
            &app.token(Role::User, me),
        )
        .await;
    answer.problem(StatusCode::FORBIDDEN, "forbidden");
    // Error answers say how far the projection had got too.
    assert_eq!(answer.position(), 2);
}

#[tokio::test]
async fn balances_of_an_unknown_user_are_not_found() {
    let app = spawn_app().await;
    app.set_checkpoint(0).await;
    app.get(
        &format!("/api/v1/users/{}/balances", Uuid::now_v7()),
        &app.as_role(Role::Admin),
    )
    .await
    .problem(StatusCode::NOT_FOUND, "not_found");
    app.get("/api/v1/users/123/balances", &app.as_role(Role::Admin))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}
