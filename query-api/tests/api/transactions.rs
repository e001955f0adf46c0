//! `GET /api/v1/transactions?user_id=` and `GET /api/v1/transactions/{id}`: newest first,
//! cursor pages, a user's own only.

use std::collections::HashSet;

use axum::http::StatusCode;
use platform::Role;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::{at, spawn_app, Req, TestApp};

/// Pages through `path` (which has a `?`) with `limit`; the positions in answer order.
async fn positions(app: &TestApp, path: &str, token: &str, limit: u32) -> Vec<u64> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}&limit={limit}&cursor={c}"),
            None => format!("{path}&limit={limit}"),
        };
        let page = app.get(&url, token).await.ok();
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= limit as usize);
        out.extend(items.iter().map(|t| t["position"].as_u64().unwrap()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return out,
        }
    }
}

struct World {
    app: TestApp,
    alice: Uuid,
    bob: Uuid,
    carol: Uuid,
    /// Position of each transaction, by who takes part.
    of_alice: Vec<u64>,
    all: Vec<u64>,
}

async fn world() -> World {
    let app = spawn_app().await;
    let alice = app.user_at(at(1)).await;
    let bob = app.user_at(at(2)).await;
    let carol = app.user_at(at(3)).await;
    let mut of_alice = Vec::new();
    let mut all = Vec::new();
    for position in 10..30u64 {
        let (parties, alice_in) = match position % 4 {
            0 => ((Some(alice), None, None), true),
            1 => ((None, Some(alice), Some(bob)), true),
            2 => ((None, Some(bob), Some(alice)), true),
            _ => ((Some(carol), None, None), false),
        };
        let kind = if parties.0.is_some() {
            "deposit"
        } else {
            "transfer"
        };
        app.seed_transaction(kind, parties, 10, position).await;
        all.push(position);
        if alice_in {
            of_alice.push(position);
        }
    }
    all.reverse();
    of_alice.reverse();
    app.set_checkpoint(30).await;
    World {
        app,
        alice,
        bob,
        carol,
        of_alice,
        all,
    }
}

#[tokio::test]
async fn every_transaction_pages_newest_first_without_duplicates_or_gaps() {
    let w = world().await;
    let admin = w.app.as_role(Role::Admin);
    for limit in [1, 3, 7, 20, 200] {
        let seen = positions(&w.app, "/api/v1/transactions?", &admin, limit).await;
        assert_eq!(seen, w.all, "limit {limit}");
        assert_eq!(seen.iter().collect::<HashSet<_>>().len(), seen.len());
    }
}

#[tokio::test]
async fn a_users_transactions_are_those_it_takes_part_in() {
    let w = world().await;
    let path = format!("/api/v1/transactions?user_id={}", w.alice);
    for limit in [2, 5, 200] {
        let seen = positions(&w.app, &path, &w.app.as_role(Role::Auditor), limit).await;
        assert_eq!(seen, w.of_alice, "limit {limit}");
    }
    // A user without ?user_id= gets its own, and may name itself.
    let alice = w.app.token(Role::User, w.alice);
    assert_eq!(
        positions(&w.app, "/api/v1/transactions?", &alice, 4).await,
        w.of_alice
    );
    assert_eq!(positions(&w.app, &path, &alice, 4).await, w.of_alice);
    // Carol took part in the others only.
    let carol = w.app.token(Role::User, w.carol);
    let hers = positions(&w.app, "/api/v1/transactions?", &carol, 50).await;
    assert!(hers.iter().all(|p| p % 4 == 3) && hers.len() == 5);
}

#[tokio::test]
async fn a_user_asking_for_another_users_transactions_is_forbidden() {
    let w = world().await;
    let alice = w.app.token(Role::User, w.alice);
    w.app
        .get(&format!("/api/v1/transactions?user_id={}", w.bob), &alice)
        .await
        .problem(StatusCode::FORBIDDEN, "forbidden");
    for (query, field) in [
        ("user_id=nope", "user_id"),
        ("userid=x", "userid"),
        ("limit=500", "limit"),
        ("cursor=00", "cursor"),
    ] {
        let body = w
            .app
            .get(&format!("/api/v1/transactions?{query}"), &alice)
            .await
            .problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(body["errors"][0]["field"], field, "{query}");
    }
}

#[tokio::test]
async fn one_transaction_reads_as_api_md_shows_it() {
    let app = spawn_app().await;
    let (a, b) = (app.user_at(at(1)).await, app.user_at(at(2)).await);
    let transfer = app
        .seed_transaction("transfer", (None, Some(a), Some(b)), 3_000, 12)
        .await;
    let deposit = app
        .seed_transaction("deposit", (Some(a), None, None), 500, 11)
        .await;
    app.set_checkpoint(12).await;

    let answer = app
        .get(
            &format!("/api/v1/transactions/{transfer}"),
            &app.token(Role::User, b),
        )
        .await;
    assert_eq!(
        answer.ok(),
        json!({
            "transaction_id": transfer.to_string(),
            "type": "transfer",
            "from_user_id": a.to_string(),
            "to_user_id": b.to_string(),
            "user_id": null,
            "amount": 3000,
            "currency": "EUR",
            "position": 12,
            "recorded_at": "2025-06-15T15:06:40.000012Z",
        })
    );
    assert_eq!(answer.etag(), "\"12\"");
    assert!(answer
        .header("cache-control")
        .unwrap()
        .contains("immutable"));
    let again = app
        .send(
            Req::get(format!("/api/v1/transactions/{transfer}"))
                .token(&app.as_role(Role::Service))
                .if_none_match(answer.etag()),
        )
        .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);

    let body: Value = app
        .get(
            &format!("/api/v1/transactions/{deposit}"),
            &app.as_role(Role::Auditor),
        )
        .await
        .ok();
    assert_eq!(body["user_id"], a.to_string());
    assert_eq!(body["from_user_id"], Value::Null);
    // Not a party: forbidden; no such transaction: not found; not an id: 422.
    app.get(
        &format!("/api/v1/transactions/{deposit}"),
        &app.token(Role::User, b),
    )
    .await
    .problem(StatusCode::FORBIDDEN, "forbidden");
    app.get(
        &format!("/api/v1/transactions/{}", Uuid::now_v7()),
        &app.token(Role::User, b),
    )
    .await
    .problem(StatusCode::NOT_FOUND, "not_found");
    app.get("/api/v1/transactions/x", &app.as_role(Role::Admin))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}
