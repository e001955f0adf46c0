//! `/api/v1/transactions`: deposits, withdrawals, transfers and who may make them.

use axum::http::StatusCode;
use ledger::Currency;
use platform::Role;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::spawn_app;

fn withdrawal(user: Uuid, amount: i64) -> Value {
    json!({"type": "withdrawal", "user_id": user, "amount": amount, "currency": "EUR"})
}

fn transfer(from: Uuid, to: Uuid, amount: i64) -> Value {
    json!({"type": "transfer", "from_user_id": from, "to_user_id": to, "amount": amount, "currency": "EUR"})
}

fn balance(user: &ledger::User) -> i64 {
    user.balance(Currency::EUR).minor_units()
}

#[tokio::test]
async fn a_deposit_completes_and_lands_on_the_users_stream() {
    let app = spawn_app().await;
    let ada = app.someone().await;
    let answer = app.deposit(&ada.token, ada.id, 1_000).await;
    let body = answer.ok(StatusCode::CREATED);
    assert_eq!(body["status"], "completed");
    let transaction_id: Uuid = body["transaction_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(answer.etag(), Some(2));
    let events = app.events(ada.id).await;
    assert_eq!(events[1].event_type.as_str(), "transaction.deposited");
    assert_eq!(events[1].position, answer.position());
    let data: Value = serde_json::from_str(&events[1].data).unwrap();
    assert_eq!(data["transaction_id"], transaction_id.to_string());
    assert_eq!(balance(&app.replayed(ada.id).await), 1_000);
}

#[tokio::test]
async fn a_withdrawal_needs_the_funds() {
    let app = spawn_app().await;
    let ada = app.someone().await;
    app.deposit(&ada.token, ada.id, 300)
        .await
        .ok(StatusCode::CREATED);
    app.money(&ada.token, withdrawal(ada.id, 200))
        .await
        .ok(StatusCode::CREATED);
    app.money(&ada.token, withdrawal(ada.id, 101))
        .await
        .problem(StatusCode::CONFLICT, "insufficient_funds");
    assert_eq!(balance(&app.replayed(ada.id).await), 100);
    assert_eq!(app.events(ada.id).await.len(), 3);
}

#[tokio::test]
async fn a_transfer_moves_money_between_two_streams_in_one_append() {
    let app = spawn_app().await;
    let ada = app.someone().await;
    let bob = app.someone().await;
    app.deposit(&ada.token, ada.id, 1_000)
        .await
        .ok(StatusCode::CREATED);
    let answer = app.money(&ada.token, transfer(ada.id, bob.id, 400)).await;
    let body = answer.ok(StatusCode::CREATED);
    assert_eq!(body["status"], "completed");
    assert_eq!(answer.etag(), None);

    let out = app.events(ada.id).await.pop().unwrap();
    let into = app.events(bob.id).await.pop().unwrap();
    assert_eq!(out.event_type.as_str(), "transaction.transferred");
    assert_eq!(into.event_type.as_str(), "transaction.transferred");
    // One append: consecutive positions, the last one answered.
    assert_eq!(into.position, out.position + 1);
    assert_eq!(answer.position(), into.position);
    let (out, into): (Value, Value) = (
        serde_json::from_str(&out.data).unwrap(),
        serde_json::from_str(&into.data).unwrap(),
    );
    assert_eq!(out["direction"], "out");
    assert_eq!(into["direction"], "in");
    assert_eq!(out["transaction_id"], body["transaction_id"]);
    assert_eq!(into["transaction_id"], body["transaction_id"]);
    assert_eq!(balance(&app.replayed(ada.id).await), 600);
    assert_eq!(balance(&app.replayed(bob.id).await), 400);

    app.money(&ada.token, transfer(ada.id, bob.id, 601))
        .await
        .problem(StatusCode::CONFLICT, "insufficient_funds");
}

#[tokio::test]
async fn a_transfer_needs_two_different_existing_users() {
    let app = spawn_app().await;
    let ada = app.someone().await;
    app.deposit(&ada.token, ada.id, 1_000)
        .await
        .ok(StatusCode::CREATED);
    let body = app
        .money(&ada.token, transfer(ada.id, ada.id, 10))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(body["errors"][0]["field"], "to_user_id");
    assert_eq!(body["errors"][0]["code"], "same_user");
    app.money(&ada.token, transfer(ada.id, Uuid::now_v7(), 10))
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");
    let admin = app.admin();
    app.money(&admin, transfer(Uuid::now_v7(), ada.id, 10))
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");
    app.deposit(&admin, Uuid::now_v7(), 10)
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn a_user_moves_only_its_own_money() {
    let app = spawn_app().await;
    let ada = app.someone().await;
    let bob = app.someone().await;
    app.deposit(&bob.token, bob.id, 1_000)
        .await
        .ok(StatusCode::CREATED);
    app.deposit(&ada.token, bob.id, 10)
        .await
        .problem(StatusCode::FORBIDDEN, "forbidden");
    app.money(&ada.token, withdrawal(bob.id, 10))
        .await
        .problem(StatusCode::FORBIDDEN, "forbidden");
    app.money(&ada.token, transfer(bob.id, ada.id, 10))
        .await
        .problem(StatusCode::FORBIDDEN, "forbidden");
    // A user probing someone who does not exist learns nothing either.
    app.deposit(&ada.token, Uuid::now_v7(), 10)
        .await
        .problem(StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(balance(&app.replayed(bob.id).await), 1_000);
    assert_eq!(balance(&app.replayed(ada.id).await), 0);

    // Service and admin move anyone's money; an auditor nobody's.
    let service = app.token(Role::Service, Uuid::now_v7());
    app.money(&service, transfer(bob.id, ada.id, 10))
        .await
        .ok(StatusCode::CREATED);
    app.money(&app.admin(), withdrawal(bob.id, 10))
        .await
        .ok(StatusCode::CREATED);
    let auditor = app.token(Role::Auditor, Uuid::now_v7());
    app.deposit(&auditor, bob.id, 10)
        .await
        .problem(StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(balance(&app.replayed(bob.id).await), 980);
}

#[tokio::test]
async fn amounts_currencies_and_ids_are_checked_at_the_boundary() {
    let app = spawn_app().await;
    let ada = app.someone().await;
    let body = app
        .money(
            &ada.token,
            json!({"type": "deposit", "user_id": "nope", "amount": 0, "currency": "SEK"}),
        )
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let codes: Vec<(&str, &str)> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["field"].as_str().unwrap(), e["code"].as_str().unwrap()))
        .collect();
    assert_eq!(
        codes,
        [
            ("user_id", "invalid_uuid"),
            ("amount", "out_of_range"),
            ("currency", "unsupported_currency")
        ]
    );
    for (amount, currency) in [(1_000_000_000_000_001_i64, "EUR"), (-5, "EUR"), (5, "eur")] {
        app.money(
            &ada.token,
            json!({"type": "withdrawal", "user_id": ada.id, "amount": amount, "currency": currency}),
        )
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    let body = app
        .money(
            &ada.token,
            json!({"type": "transfer", "from_user_id": ada.id, "to_user_id": "x", "amount": 1, "currency": "JPY"}),
        )
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(body["errors"][0]["field"], "to_user_id");
}

#[tokio::test]
async fn a_balance_stays_under_its_ceiling() {
    let app = spawn_app().await;
    let ada = app.someone().await;
    let max = 1_000_000_000_000_000_i64;
    for _ in 0..9 {
        app.deposit(&ada.token, ada.id, max)
            .await
            .ok(StatusCode::CREATED);
    }
    // 9 × 10^15 is under 2^53 − 1; another 10^15 is not.
    app.deposit(&ada.token, ada.id, max)
        .await
        .problem(StatusCode::CONFLICT, "balance_limit_exceeded");
    app.deposit(&ada.token, ada.id, 7_199_254_740_991)
        .await
        .ok(StatusCode::CREATED);
    assert_eq!(balance(&app.replayed(ada.id).await), (1_i64 << 53) - 1);
}

#[tokio::test]
async fn currencies_are_kept_apart() {
    let app = spawn_app().await;
    let ada = app.someone().await;
    app.money(
        &ada.token,
        json!({"type": "deposit", "user_id": ada.id, "amount": 50, "currency": "JPY"}),
    )
    .await
    .ok(StatusCode::CREATED);
    app.money(&ada.token, withdrawal(ada.id, 1))
        .await
        .problem(StatusCode::CONFLICT, "insufficient_funds");
    assert_eq!(
        app.replayed(ada.id)
            .await
            .balance(Currency::JPY)
            .minor_units(),
        50
    );
}
