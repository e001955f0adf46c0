//! `Idempotency-Key`: replays answer the first answer and append nothing; a reused key
//! with another request is 409 `idempotency_key_reused`.

use axum::http::StatusCode;
use futures_util::future::join_all;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::{spawn_app, Req};

fn deposit(user: Uuid, amount: i64) -> Value {
    json!({"type": "deposit", "user_id": user, "amount": amount, "currency": "EUR"})
}

#[tokio::test]
async fn the_same_request_with_the_same_key_is_answered_again_without_a_new_event() {
    let app = spawn_app().await;
    let ada = app.someone().await;
    let send = || {
        app.send(
            Req::post("/api/v1/transactions")
                .token(&ada.token)
                .idempotency_key("deposit-1")
                .json(deposit(ada.id, 250)),
        )
    };
    let first = send().await;
    let first_body = first.ok(StatusCode::CREATED);
    app.deposit(&ada.token, ada.id, 1)
        .await
        .ok(StatusCode::CREATED);
    let again = send().await;
    assert_eq!(again.ok(StatusCode::CREATED), first_body);
    assert_eq!(again.etag(), first.etag());
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(app.events(ada.id).await.len(), 3);

    // The metadata carries the key's hash, never the key.
    let events = app.events(ada.id).await;
    let metadata: Value = serde_json::from_str(&events[1].metadata).unwrap();
    let hash = metadata["idempotency_key"].as_str().unwrap();
    assert_eq!(hash.len(), 64);
    assert_eq!(metadata["causation_id"], hash);
    assert!(!events[1].metadata.contains("deposit-1"));
}

#[tokio::test]
async fn the_same_key_with_another_request_is_refused() {
    let app = spawn_app().await;
    let ada = app.someone().await;
    let with_key = |body: Value| {
        Req::post("/api/v1/transactions")
            .token(&ada.token)
            .idempotency_key("k-1")
            .json(body)
    };
    app.send(with_key(deposit(ada.id, 100)))
        .await
        .ok(StatusCode::CREATED);
    app.send(with_key(deposit(ada.id, 101)))
        .await
        .problem(StatusCode::CONFLICT, "idempotency_key_reused");
    // Another path with the same key is another request too.
    app.send(
        Req::post(format!("/api/v1/users/{}/deactivate", ada.id))
            .token(&ada.token)
            .idempotency_key("k-1"),
    )
    .await
    .problem(StatusCode::CONFLICT, "idempotency_key_reused");
    assert_eq!(app.events(ada.id).await.len(), 2);
}

#[tokio::test]
async fn keys_belong_to_their_caller() {
    let app = spawn_app().await;
    let ada = app.someone().await;
    let bob = app.someone().await;
    for who in [&ada, &bob] {
        app.send(
            Req::post("/api/v1/transactions")
                .token(&who.token)
                .idempotency_key("same-key")
                .json(deposit(who.id, 5)),
        )
        .await
        .ok(StatusCode::CREATED);
    }
    assert_eq!(app.events(ada.id).await.len(), 2);
    assert_eq!(app.events(bob.id).await.len(), 2);
}

#[tokio::test]
async fn a_registration_is_replayed_even_though_the_user_now_exists() {
    let app = spawn_app().await;
    let admin = app.admin();
    let send = || {
        app.send(
            Req::post("/api/v1/users")
                .token(&admin)
                .idempotency_key("signup-7")
                .json(json!({"email": "grace@example.com", "display_name": "Grace"})),
        )
    };
    let first = send().await.ok(StatusCode::CREATED);
    let again = send().await;
    assert_eq!(again.ok(StatusCode::CREATED), first);
    let id: Uuid = first["user_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(app.events(id).await.len(), 1);
}

#[tokio::test]
async fn concurrent_repeats_of_one_request_commit_it_once() {
    let app = spawn_app().await;
    let ada = app.someone().await;
    let bob = app.someone().await;
    app.deposit(&ada.token, ada.id, 1_000)
        .await
        .ok(StatusCode::CREATED);
    let body = json!({"type": "transfer", "from_user_id": ada.id, "to_user_id": bob.id,
        "amount": 100, "currency": "EUR"});
    let answers = join_all((0..8).map(|_| {
        app.send(
            Req::post("/api/v1/transactions")
                .token(&ada.token)
                .idempotency_key("pay-bob")
                .json(body.clone()),
        )
    }))
    .await;
    let bodies: Vec<Value> = answers.iter().map(|a| a.ok(StatusCode::CREATED)).collect();
    assert!(bodies.iter().all(|b| *b == bodies[0]), "{bodies:?}");
    assert_eq!(app.events(ada.id).await.len(), 3);
    assert_eq!(app.events(bob.id).await.len(), 2);
}

#[tokio::test]
async fn key_records_expire_after_their_time_but_a_clients_transaction_id_is_kept() {
    let app = spawn_app().await;
    let ada = app.someone().await;
    let keyed = || {
        Req::post("/api/v1/transactions")
            .token(&ada.token)
            .idempotency_key("deposit-expiring")
            .json(deposit(ada.id, 5))
    };
    let chosen = Uuid::now_v7();
    let by_id = || {
        Req::post("/api/v1/transactions").token(&ada.token).json(
            json!({"type": "deposit", "transaction_id": chosen, "user_id": ada.id,
                         "amount": 7, "currency": "EUR"}),
        )
    };
    app.send(keyed()).await.ok(StatusCode::CREATED);
    app.send(by_id()).await.ok(StatusCode::CREATED);
    let day = std::time::Duration::from_secs(24 * 60 * 60);
    // Nothing is old enough yet.
    assert_eq!(
        command_api::sweep_idempotency_records(&app.store, day)
            .await
            .unwrap(),
        0
    );
    sqlx::query("UPDATE claims SET claimed_at = claimed_at - INTERVAL 25 HOUR")
        .execute(app.store.pool())
        .await
        .unwrap();
    assert_eq!(
        command_api::sweep_idempotency_records(&app.store, day)
            .await
            .unwrap(),
        1,
        "only the Idempotency-Key record"
    );
    let events = app.events(ada.id).await.len();
    // The key is forgotten: the command runs again.
    let again = app.send(keyed()).await;
    again.ok(StatusCode::CREATED);
    assert!(!again.headers.contains_key("idempotent-replayed"));
    // The transaction id still names its one transaction.
    let replay = app.send(by_id()).await;
    replay.ok(StatusCode::CREATED);
    assert_eq!(replay.headers["idempotent-replayed"], "true");
    assert_eq!(app.events(ada.id).await.len(), events + 1);
}

#[tokio::test]
async fn an_erasure_releases_the_users_key_records() {
    let app = spawn_app().await;
    let ada = app.someone().await;
    app.send(
        Req::post("/api/v1/transactions")
            .token(&ada.token)
            .idempotency_key("before-erasure")
            .json(deposit(ada.id, 5)),
    )
    .await
    .ok(StatusCode::CREATED);
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM claims WHERE scope = 'idempotency'")
            .fetch_one(app.store.pool())
            .await
            .unwrap()
    };
    assert_eq!(count().await, 1);
    app.send(
        Req::delete(format!("/api/v1/users/{}/personal-data", ada.id))
            .token(&ada.token)
            .idempotency_key("erase"),
    )
    .await
    .ok(StatusCode::OK);
    assert_eq!(count().await, 0);
}
