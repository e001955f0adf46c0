//! The audit endpoints over the log: roles, paging, hash-chain verification (and a
//! tampered event found), balances replayed as of a position or a time.

use axum::http::StatusCode;
use ledger::{
    Amount, Currency, CurrencySet, Deposited, Direction, LedgerEvent, SealedText, TransactionId,
    Transferred, UserId, UserRegistered, Withdrawn,
};
use platform::Role;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::{spawn_app, Req, TestApp};

pub fn registered(user_id: UserId) -> LedgerEvent {
    UserRegistered {
        user_id,
        email_ciphertext: SealedText::new("v1.1.sealed-email"),
        display_name_ciphertext: SealedText::new("v1.1.sealed-name"),
    }
    .into()
}

fn money(amount: i64, currency: &str) -> (Amount, Currency) {
    (
        Amount::parse(amount).unwrap(),
        Currency::parse(currency, &CurrencySet::default()).unwrap(),
    )
}

pub fn deposited(user_id: UserId, amount: i64, currency: &str) -> LedgerEvent {
    let (amount, currency) = money(amount, currency);
    Deposited {
        transaction_id: TransactionId::from_uuid(Uuid::now_v7()),
        user_id,
        amount,
        currency,
    }
    .into()
}

fn withdrawn(user_id: UserId, amount: i64, currency: &str) -> LedgerEvent {
    let (amount, currency) = money(amount, currency);
    Withdrawn {
        transaction_id: TransactionId::from_uuid(Uuid::now_v7()),
        user_id,
        amount,
        currency,
    }
    .into()
}

/// Both halves of a transfer, payer's first.
fn transfer(from: UserId, to: UserId, amount: i64, currency: &str) -> Vec<LedgerEvent> {
    let (amount, currency) = money(amount, currency);
    let transaction_id = TransactionId::from_uuid(Uuid::now_v7());
    [Direction::Out, Direction::In]
        .into_iter()
        .map(|direction| {
            Transferred {
                transaction_id,
                direction,
                from_user_id: from,
                to_user_id: to,
                amount,
                currency,
            }
            .into()
        })
        .collect()
}

struct History {
    app: TestApp,
    alice: UserId,
    bob: UserId,
}

/// Positions: 1 Alice registers, 2 deposits 100 EUR, 3 Bob registers, 4-5 Alice pays Bob
/// 30 EUR, 6 Alice withdraws 20 EUR, 7 deposits 5 USD.
async fn history() -> History {
    let app = spawn_app().await;
    let alice = UserId::from_uuid(Uuid::now_v7());
    let bob = UserId::from_uuid(Uuid::now_v7());
    app.append(vec![registered(alice)]).await;
    app.append(vec![deposited(alice, 100, "EUR")]).await;
    app.append(vec![registered(bob)]).await;
    app.append(transfer(alice, bob, 30, "EUR")).await;
    app.append(vec![withdrawn(alice, 20, "EUR")]).await;
    let last = app.append(vec![deposited(alice, 5, "USD")]).await;
    assert_eq!(last.last_position, 7);
    History { app, alice, bob }
}

#[tokio::test]
async fn only_auditors_and_admins_read_the_log() {
    let h = history().await;
    for path in [
        "/api/v1/audit/events".to_owned(),
        "/api/v1/audit/verify".to_owned(),
        format!("/api/v1/audit/users/{}/balances?at_position=2", h.alice),
    ] {
        for role in [Role::Auditor, Role::Admin] {
            h.app.get(&path, &h.app.as_role(role)).await.ok();
        }
        for role in [Role::User, Role::Service] {
            h.app
                .get(&path, &h.app.as_role(role))
                .await
                .problem(StatusCode::FORBIDDEN, "forbidden");
        }
        // Even a user asking about itself.
        h.app
            .get(&path, &h.app.token(Role::User, h.alice.as_uuid()))
            .await
            .problem(StatusCode::FORBIDDEN, "forbidden");
        h.app
            .send(Req::get(&path))
            .await
            .problem(StatusCode::UNAUTHORIZED, "unauthenticated");
    }
}

#[tokio::test]
async fn the_log_pages_in_position_order_as_stored() {
    let h = history().await;
    let auditor = h.app.as_role(Role::Auditor);
    let mut items: Vec<Value> = Vec::new();
    let mut after = 0;
    loop {
        let page = h
            .app
            .get(
                &format!("/api/v1/audit/events?after={after}&limit=3"),
                &auditor,
            )
            .await
            .ok();
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_after"].as_u64() {
            Some(next) => after = next,
            None => break,
        }
    }
    let positions: Vec<u64> = items
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert_eq!(positions, (1..=7).collect::<Vec<_>>());

    let stored = h.app.store.read_all(0, 100).await.unwrap();
    for (item, event) in items.iter().zip(&stored) {
        assert_eq!(item["event_id"], event.event_id.to_string());
        assert_eq!(item["stream_id"], event.stream_id.as_str());
        assert_eq!(item["stream_version"], event.stream_version);
        assert_eq!(item["event_type"], event.event_type.as_str());
        assert_eq!(item["schema_version"], event.schema_version);
        assert_eq!(
            item["data"],
            serde_json::from_str::<Value>(&event.data).unwrap()
        );
        assert_eq!(
            item["metadata"],
            serde_json::from_str::<Value>(&event.metadata).unwrap()
        );
        assert_eq!(item["hash"], hex::encode(event.hash));
        assert_eq!(item["prev_hash"], hex::encode(event.prev_hash));
        let hash = item["hash"].as_str().unwrap();
        assert!(
            hash.len() == 64
                && hash
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
    }
    // The chain links: each event names its predecessor's hash.
    for pair in items.windows(2) {
        assert_eq!(pair[1]["prev_hash"], pair[0]["hash"]);
    }
    assert_eq!(items[0]["prev_hash"], "0".repeat(64));

    // `data` is sent byte for byte as stored (and hashed).
    let raw = h.app.get("/api/v1/audit/events?limit=1", &auditor).await;
    let text = String::from_utf8(raw.body.clone()).unwrap();
    assert!(
        text.contains(&format!("\"data\":{}", stored[0].data)),
        "{text}"
    );
    assert_eq!(raw.header("cache-control"), Some("no-store"));
}

#[tokio::test]
async fn the_log_filters_by_stream_and_checks_its_parameters() {
    let h = history().await;
    let auditor = h.app.as_role(Role::Auditor);
    let page = h
        .app
        .get(
            &format!("/api/v1/audit/events?stream=user-{}", h.bob),
            &auditor,
        )
        .await
        .ok();
    let positions: Vec<u64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert_eq!(positions, vec![3, 5]);
    assert_eq!(page["next_after"], Value::Null);
    let page = h
        .app
        .get("/api/v1/audit/events?after=7", &auditor)
        .await
        .ok();
    assert_eq!(page, json!({"items": [], "next_after": null}));

    for (query, field) in [
        ("after=-1", "after"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("stream=has%20space", "stream"),
        ("from=1", "from"),
    ] {
        let body = h
            .app
            .get(&format!("/api/v1/audit/events?{query}"), &auditor)
            .await
            .problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(body["errors"][0]["field"], field, "{query}");
    }
}

#[tokio::test]
async fn verify_finds_the_chain_intact_and_then_a_tampered_event() {
    let h = history().await;
    let auditor = h.app.as_role(Role::Auditor);
    let head = h.app.store.read_all(6, 1).await.unwrap().remove(0);
    let report = h.app.get("/api/v1/audit/verify", &auditor).await.ok();
    assert_eq!(
        report,
        json!({
            "ok": true,
            "checked": 7,
            "head_position": 7,
            "head_hash": hex::encode(head.hash),
            "first_bad_position": null,
        })
    );

    // The owner rewrites an amount behind the log's back.
    let updated = sqlx::query(
        "UPDATE events SET data = JSON_SET(data, '$.amount', 1000000) WHERE position = 2",
    )
    .execute(&h.app.pool)
    .await
    .unwrap();
    assert_eq!(updated.rows_affected(), 1);
    let report = h.app.get("/api/v1/audit/verify", &auditor).await.ok();
    assert_eq!(report["ok"], false);
    assert_eq!(report["first_bad_position"], 2);
    assert_eq!(report["head_position"], 1, "the last good position");
    assert_eq!(report["checked"], 1);
}

async fn balances_at(h: &History, user: UserId, query: &str) -> Value {
    h.app
        .get(
            &format!("/api/v1/audit/users/{user}/balances?{query}"),
            &h.app.as_role(Role::Auditor),
        )
        .await
        .ok()
}

#[tokio::test]
async fn balances_replay_from_the_log_at_a_position() {
    let h = history().await;
    let eur = |n: i64| json!([{"currency": "EUR", "amount": n}]);
    for (position, balances, version, last) in [
        (1, json!([]), 1, 1),
        (2, eur(100), 2, 2),
        (3, eur(100), 2, 2),
        (4, eur(70), 3, 4),
        (6, eur(50), 4, 6),
        (
            7,
            json!([{"currency": "EUR", "amount": 50}, {"currency": "USD", "amount": 5}]),
            5,
            7,
        ),
    ] {
        let body = balances_at(&h, h.alice, &format!("at_position={position}")).await;
        assert_eq!(body["balances"], balances, "at {position}");
        assert_eq!(body["stream_version"], version, "at {position}");
        assert_eq!(body["last_position"], last, "at {position}");
        assert_eq!(body["at_position"], position);
        assert_eq!(body["as_of"], Value::Null);
        assert_eq!(body["user_id"], h.alice.to_string());
    }
    // Bob is registered at 3, and paid at 5 (the payee's half).
    assert_eq!(
        balances_at(&h, h.bob, "at_position=4").await["balances"],
        json!([])
    );
    assert_eq!(
        balances_at(&h, h.bob, "at_position=5").await["balances"],
        eur(30)
    );

    // Before registration there is no such user.
    let auditor = h.app.as_role(Role::Auditor);
    for (user, position) in [(h.alice, 0), (h.bob, 2)] {
        h.app
            .get(
                &format!("/api/v1/audit/users/{user}/balances?at_position={position}"),
                &auditor,
            )
            .await
            .problem(StatusCode::NOT_FOUND, "not_found");
    }
    h.app
        .get(
            &format!(
                "/api/v1/audit/users/{}/balances?at_position=7",
                Uuid::now_v7()
            ),
            &auditor,
        )
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn balances_replay_from_the_log_as_of_a_time() {
    let h = history().await;
    let stored = h.app.store.read_all(0, 100).await.unwrap();
    let alice_stream = h.alice.stream_id();
    for event in stored
        .iter()
        .filter(|e| e.stream_id.as_str() == alice_stream)
    {
        let as_of = event
            .recorded_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        // As of an event's time: everything of Alice's recorded by then, whatever
        // position that is (several events may share a time).
        let last_by_then = stored
            .iter()
            .filter(|e| e.stream_id.as_str() == alice_stream && e.recorded_at <= event.recorded_at)
            .map(|e| e.position)
            .max()
            .unwrap();
        let by_time = balances_at(&h, h.alice, &format!("as_of={as_of}")).await;
        let by_position = balances_at(&h, h.alice, &format!("at_position={last_by_then}")).await;
        assert_eq!(
            by_time["balances"], by_position["balances"],
            "as of {as_of}"
        );
        assert_eq!(by_time["last_position"], last_by_then);
        assert_eq!(by_time["as_of"], as_of, "the time asked for is echoed");
        assert_eq!(by_time["at_position"], Value::Null);
    }
    // Before the first event: no such user yet.
    let before = (stored[0].recorded_at - time::Duration::seconds(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    h.app
        .get(
            &format!("/api/v1/audit/users/{}/balances?as_of={before}", h.alice),
            &h.app.as_role(Role::Auditor),
        )
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[tokio::test]
async fn a_replay_says_the_log_position_its_answer_reflects() {
    let h = history().await;
    let stored = h.app.store.read_all(0, 100).await.unwrap();
    let head = stored.last().unwrap();
    // As of the head's time or later: the head's state, the whole log up to 7, though
    // Bob's own last event is at 5.
    for as_of in [head.recorded_at, time::OffsetDateTime::now_utc()] {
        let body = balances_at(&h, h.bob, &format!("as_of={}", rfc3339(as_of))).await;
        assert_eq!(body["position"], 7, "as of {as_of}");
        assert_eq!(body["last_position"], 5);
        assert_eq!(body["balances"], json!([{"currency": "EUR", "amount": 30}]));
    }
    // As of an earlier time: the last position recorded by then.
    let third = &stored[2];
    let by_then = stored
        .iter()
        .filter(|e| e.recorded_at <= third.recorded_at)
        .map(|e| e.position)
        .max()
        .unwrap();
    let body = balances_at(
        &h,
        h.alice,
        &format!("as_of={}", rfc3339(third.recorded_at)),
    )
    .await;
    assert_eq!(body["position"], by_then);
    // At a position: that position.
    assert_eq!(balances_at(&h, h.bob, "at_position=6").await["position"], 6);
}

#[tokio::test]
async fn as_of_a_head_recorded_ahead_of_this_clock_answers_the_head() {
    // An earlier writer's clock was an hour ahead: the head was recorded later than
    // this process's now, and the store clamps every later append to it.
    let h = history().await;
    let ahead = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    let ahead = ahead
        .replace_nanosecond(ahead.microsecond() * 1_000)
        .unwrap();
    let carol = UserId::from_uuid(Uuid::now_v7());
    let head = h.app.append_recorded_at(registered(carol), ahead).await;
    assert_eq!(head, 8);
    let auditor = h.app.as_role(Role::Auditor);
    assert_eq!(
        h.app.get("/api/v1/audit/verify", &auditor).await.ok()["ok"],
        true,
        "a row as the store writes it"
    );

    let alice_now = json!([{"currency": "EUR", "amount": 50}, {"currency": "USD", "amount": 5}]);
    let body = balances_at(&h, h.alice, &format!("as_of={}", rfc3339(ahead))).await;
    assert_eq!(body["position"], 8, "the head's state");
    assert_eq!(body["balances"], alice_now);
    // Between this clock and the head: the log already holds that time.
    let between = ahead - time::Duration::minutes(30);
    let body = balances_at(&h, h.alice, &format!("as_of={}", rfc3339(between))).await;
    assert_eq!(body["position"], 7);
    assert_eq!(body["balances"], alice_now);
    // Past both: the log cannot say yet.
    let later = rfc3339(ahead + time::Duration::seconds(1));
    let body = h
        .app
        .get(
            &format!("/api/v1/audit/users/{}/balances?as_of={later}", h.alice),
            &auditor,
        )
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(body["errors"][0]["code"], "in_future");
}

#[tokio::test]
async fn a_replay_needs_exactly_one_point_within_the_log() {
    let h = history().await;
    let auditor = h.app.as_role(Role::Auditor);
    let future = (time::OffsetDateTime::now_utc() + time::Duration::days(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    for (query, field, code) in [
        ("", "as_of", "one_of_required"),
        (
            "as_of=2025-01-01T00:00:00Z&at_position=1",
            "as_of",
            "one_of_required",
        ),
        ("at_position=8", "at_position", "beyond_head"),
        ("at_position=x", "at_position", "invalid_position"),
        ("as_of=yesterday", "as_of", "invalid_time"),
        (&format!("as_of={future}"), "as_of", "in_future"),
    ] {
        let body = h
            .app
            .get(
                &format!("/api/v1/audit/users/{}/balances?{query}", h.alice),
                &auditor,
            )
            .await
            .problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(body["errors"][0]["field"], field, "{query}");
        assert_eq!(body["errors"][0]["code"], code, "{query}");
    }
}
