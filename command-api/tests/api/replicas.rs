//! Two instances of the service on one log, each with its own cached states: what one
//! appends, the other's stale cache must never turn into a wrong answer. Commands are
//! decided on cached states first; the log's expected versions catch a stale append, and
//! a rejection decided on a cached state is decided again on the log before it is given.

use axum::http::StatusCode;
use ledger::Currency;
use serde_json::json;

use crate::support::{spawn_app, Req};

fn withdrawal(user: uuid::Uuid, amount: i64) -> serde_json::Value {
    json!({"type": "withdrawal", "user_id": user, "amount": amount, "currency": "EUR"})
}

#[tokio::test]
async fn a_stale_cache_never_refuses_money_the_log_holds() {
    let a = spawn_app().await;
    let b = a.replica().await;
    let ada = a.someone().await;
    a.deposit(&ada.token, ada.id, 100)
        .await
        .ok(StatusCode::CREATED);
    // b learns ada at balance 50.
    b.money(&ada.token, withdrawal(ada.id, 50))
        .await
        .ok(StatusCode::CREATED);
    // a's cached ada (balance 100, version 2) is stale now: its append must not commit
    // on it, and it is decided again on the log.
    a.deposit(&ada.token, ada.id, 1_000)
        .await
        .ok(StatusCode::CREATED);
    // b's cached ada says 50: refusing 500 on that would be wrong, the log holds 1,050.
    b.money(&ada.token, withdrawal(ada.id, 500))
        .await
        .ok(StatusCode::CREATED);
    let replayed = a.replayed(ada.id).await;
    assert_eq!(replayed.balance(Currency::EUR).minor_units(), 550);
    // And a real shortfall is still refused, by either instance.
    for app in [&a, &b] {
        app.money(&ada.token, withdrawal(ada.id, 551))
            .await
            .problem(StatusCode::CONFLICT, "insufficient_funds");
    }
    assert_eq!(a.events(ada.id).await.len(), 5);
}

#[tokio::test]
async fn a_stale_cache_never_answers_version_mismatch_for_the_current_version() {
    let a = spawn_app().await;
    let b = a.replica().await;
    let ada = a.someone().await;
    let path = format!("/api/v1/users/{}", ada.id);
    // b caches ada at version 1; a then moves the stream to version 2.
    b.deposit(&ada.token, ada.id, 1)
        .await
        .ok(StatusCode::CREATED);
    let version = a
        .deposit(&ada.token, ada.id, 1)
        .await
        .etag()
        .expect("a deposit's ETag");
    assert_eq!(version, 3);
    // b's cache says version 2: the client's If-Match of 3 is right.
    let answer = b
        .send(
            Req::patch(&path)
                .token(&ada.token)
                .if_match(version)
                .json(json!({"display_name": "Ada"})),
        )
        .await;
    answer.ok(StatusCode::OK);
    assert_eq!(answer.etag(), Some(4));
    // An If-Match that really is behind is still 412.
    b.send(
        Req::patch(&path)
            .token(&ada.token)
            .if_match(version)
            .json(json!({"display_name": "Ada L."})),
    )
    .await
    .problem(StatusCode::PRECONDITION_FAILED, "version_mismatch");
}

#[tokio::test]
async fn transfers_between_instances_keep_both_balances_exact() {
    let a = spawn_app().await;
    let b = a.replica().await;
    let (ada, bob) = (a.someone().await, a.someone().await);
    a.deposit(&ada.token, ada.id, 1_000)
        .await
        .ok(StatusCode::CREATED);
    let transfer = |amount: i64| {
        json!({"type": "transfer", "from_user_id": ada.id, "to_user_id": bob.id,
               "amount": amount, "currency": "EUR"})
    };
    for round in 0..4 {
        let (first, second) = if round % 2 == 0 { (&a, &b) } else { (&b, &a) };
        first
            .money(&ada.token, transfer(100))
            .await
            .ok(StatusCode::CREATED);
        second
            .deposit(&bob.token, bob.id, 7)
            .await
            .ok(StatusCode::CREATED);
    }
    let (ada_now, bob_now) = (a.replayed(ada.id).await, a.replayed(bob.id).await);
    assert_eq!(ada_now.balance(Currency::EUR).minor_units(), 600);
    assert_eq!(bob_now.balance(Currency::EUR).minor_units(), 428);
}
