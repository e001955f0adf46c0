//! Audit beyond the database (API.md): the NDJSON export, the signed anchors and their
//! JWKS, and what together they prove that `/api/v1/audit/verify` alone cannot. The
//! anchors are signed by the real signer (`event_store::anchor`, no broker); the export is
//! checked with the offline verifier's engine (`audit`) and with the independent Python
//! implementation of ADR 0003.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use axum::http::StatusCode;
use event_store::anchor::{AnchorConfig, AnchorSigner};
use event_store::{AppendRequest, EventType, ExpectedVersion, NewEvent, StreamId};
use hash_chain::{ExportedEvent, Jwks, SignedAnchor, SigningKey};
use ledger::UserId;
use platform::Role;
use serde_json::Value;
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::audit::{deposited, registered};
use crate::support::{eventually, spawn_app, TestApp};

/// Removes the test's JWKS file at the end.
struct JwksFile<'a>(&'a Path);

impl Drop for JwksFile<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.0);
    }
}

/// 2 users, 20 deposits: 22 events.
async fn history(app: &TestApp) -> (UserId, UserId) {
    let alice = UserId::from_uuid(Uuid::now_v7());
    let bob = UserId::from_uuid(Uuid::now_v7());
    app.append(vec![registered(alice)]).await;
    app.append(vec![registered(bob)]).await;
    for i in 0..10 {
        app.append(vec![deposited(alice, 100 + i, "EUR")]).await;
        app.append(vec![deposited(bob, 7, "USD")]).await;
    }
    (alice, bob)
}

/// Runs the signer until it anchored the head, every `every_events`; writes the JWKS
/// file the app serves. Returns the key.
async fn sign_anchors(app: &TestApp, every_events: u64) -> SigningKey {
    let key = SigningKey::generate().unwrap();
    Jwks::add_to_file(&app.anchor_jwks, key.public_jwk()).unwrap();
    let signer = AnchorSigner::new(
        app.database().store().await,
        SigningKey::from_pem(&key.to_pem()).unwrap(),
        AnchorConfig {
            every_events,
            every: Duration::from_millis(50),
            check_interval: Duration::from_millis(20),
            ..AnchorConfig::default()
        },
    )
    .unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(signer.run(async move {
        let _ = stopped.await;
    }));
    let head = app.store.head().await.unwrap().unwrap().0;
    eventually("the head to be anchored", || async {
        app.store
            .latest_anchor()
            .await
            .unwrap()
            .is_some_and(|a| a.position == head)
    })
    .await;
    let _ = stop.send(());
    task.await.unwrap();
    key
}

async fn export(app: &TestApp, query: &str) -> String {
    let answer = app
        .get(
            &format!("/api/v1/audit/export{query}"),
            &app.as_role(Role::Auditor),
        )
        .await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    assert_eq!(answer.content_type(), "application/x-ndjson");
    assert_eq!(answer.header("cache-control"), Some("no-store"));
    assert!(answer.header("x-projection-position").is_some());
    String::from_utf8(answer.body).unwrap()
}

/// Every anchor, page by page.
async fn anchors(app: &TestApp, limit: u32) -> Vec<SignedAnchor> {
    let auditor = app.as_role(Role::Auditor);
    let (mut all, mut after) = (Vec::new(), 0);
    loop {
        let page = app
            .get(
                &format!("/api/v1/audit/anchors?after={after}&limit={limit}"),
                &auditor,
            )
            .await
            .ok();
        for item in page["items"].as_array().unwrap() {
            all.push(serde_json::from_value::<SignedAnchor>(item.clone()).unwrap());
        }
        match page["next_after"].as_u64() {
            Some(next) => after = next,
            None => return all,
        }
    }
}

async fn served_jwks(app: &TestApp) -> Jwks {
    let answer = app
        .get("/api/v1/audit/anchors/jwks", &app.as_role(Role::Auditor))
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.content_type(), "application/jwk-set+json");
    serde_json::from_slice(&answer.body).unwrap()
}

fn python_check(export: &str, anchors: Option<&[SignedAnchor]>) -> Value {
    let dir = std::env::temp_dir().join(format!("query-api-export-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("export.ndjson");
    std::fs::write(&file, export).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../audit/python/verify_export.py");
    let mut command = Command::new(std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()));
    command.arg(script).arg(&file);
    if let Some(anchors) = anchors {
        let path = dir.join("anchors.json");
        std::fs::write(&path, serde_json::json!({ "items": anchors }).to_string()).unwrap();
        command.arg(path);
    }
    let out = command.output().expect("python3 runs");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn the_export_is_the_log_line_by_line_as_the_events_pages_give_it() {
    let app = spawn_app().await;
    history(&app).await;
    let head = app.store.head().await.unwrap().unwrap();
    let auditor = app.as_role(Role::Auditor);

    let answer = app.get("/api/v1/audit/export", &auditor).await;
    assert_eq!(answer.header("x-export-to"), Some("22"));
    let text = export(&app, "").await;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 22);
    let page = app
        .get("/api/v1/audit/events?limit=1000", &auditor)
        .await
        .ok();
    let items = page["items"].as_array().unwrap();
    let stored = app.store.read_all(0, 100).await.unwrap();
    for ((line, item), event) in lines.iter().zip(items).zip(&stored) {
        assert_eq!(&serde_json::from_str::<Value>(line).unwrap(), item);
        // Byte for byte as stored, and the chain recomputes from it.
        assert!(
            line.contains(&format!("\"data\":{},", event.data)),
            "{line}"
        );
        let exported = ExportedEvent::parse(line).unwrap();
        assert_eq!(exported.canonical().hash(&exported.prev_hash), event.hash);
    }

    // A range, and an empty one past the head.
    let range: Vec<u64> = export(&app, "?from=3&to=5")
        .await
        .lines()
        .map(|l| ExportedEvent::parse(l).unwrap().position)
        .collect();
    assert_eq!(range, [3, 4, 5]);
    assert_eq!(export(&app, "?from=23").await, "");

    // The specification, implemented again in Python, agrees with the whole export.
    let python = python_check(&text, None);
    assert_eq!(python["ok"], true, "{python}");
    assert_eq!(python["checked"], 22);
    assert_eq!(python["head_hash"], hex::encode(head.1));
}

#[tokio::test]
async fn the_export_checks_its_range_and_its_callers() {
    let app = spawn_app().await;
    history(&app).await;
    let auditor = app.as_role(Role::Auditor);
    for query in ["?to=23", "?from=0", "?from=6&to=3", "?from=x", "?after=1"] {
        app.get(&format!("/api/v1/audit/export{query}"), &auditor)
            .await
            .problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    for path in [
        "/api/v1/audit/export",
        "/api/v1/audit/anchors",
        "/api/v1/audit/anchors/jwks",
    ] {
        for role in [Role::User, Role::Service] {
            app.get(path, &app.as_role(role))
                .await
                .problem(StatusCode::FORBIDDEN, "forbidden");
        }
    }
    let admin = app
        .get("/api/v1/audit/export", &app.as_role(Role::Admin))
        .await;
    assert_eq!(admin.status, StatusCode::OK);
}

#[tokio::test]
async fn an_export_of_several_pages_streams_every_event_once() {
    let app = spawn_app().await;
    // 2,500 events in appends of 500: the export reads and sends three pages of 1,000.
    for _ in 0..5 {
        let stream = StreamId::parse(format!("user-{}", Uuid::now_v7())).unwrap();
        let events = (0..500)
            .map(|n| {
                NewEvent::new(
                    EventType::parse("transaction.deposited").unwrap(),
                    1,
                    serde_json::json!({ "n": n, "text": "ünïcode \"quoted\"\n" }),
                )
            })
            .collect();
        app.store
            .append(AppendRequest::single(stream, ExpectedVersion::Any, events))
            .await
            .unwrap();
    }
    let text = export(&app, "").await;
    let positions: Vec<u64> = text
        .lines()
        .map(|l| ExportedEvent::parse(l).unwrap().position)
        .collect();
    assert_eq!(positions, (1..=2_500).collect::<Vec<_>>());
    let key = sign_anchors(&app, 1_000).await;
    let _jwks = JwksFile(&app.anchor_jwks);
    let report = audit::verify(
        text.as_bytes(),
        &anchors(&app, 1_000).await,
        &Jwks {
            keys: vec![key.public_jwk()],
        },
    )
    .unwrap();
    assert!(report.ok, "{}", report.verdict);
    assert_eq!(report.anchors.matched, 3, "1,000, 2,000 and the head");
}

#[tokio::test]
async fn anchors_page_in_position_order_and_verify_with_the_served_jwks() {
    let app = spawn_app().await;
    history(&app).await;
    let auditor = app.as_role(Role::Auditor);
    // No JWKS yet: the keys are unavailable, not an empty set.
    app.get("/api/v1/audit/anchors/jwks", &auditor)
        .await
        .problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable");

    let key = sign_anchors(&app, 5).await;
    let _jwks = JwksFile(&app.anchor_jwks);
    let jwks = served_jwks(&app).await;
    assert_eq!(jwks.keys.len(), 1);
    assert_eq!(jwks.keys[0].kid, key.kid());
    assert_eq!(jwks.keys[0].alg.as_deref(), Some("EdDSA"));

    let anchors = anchors(&app, 2).await;
    let positions: Vec<u64> = anchors.iter().map(|a| a.position).collect();
    assert_eq!(positions, [5, 10, 15, 20, 22]);
    let log = app.store.read_all(0, 100).await.unwrap();
    for anchor in &anchors {
        assert_eq!(anchor.verify(&jwks).unwrap(), key.kid());
        assert_eq!(anchor.hash, log[anchor.position as usize - 1].hash);
    }
    app.get("/api/v1/audit/anchors?limit=0", &auditor)
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}

#[tokio::test]
async fn a_rewrite_with_a_recomputed_chain_passes_verify_but_not_the_anchors() {
    let app = spawn_app().await;
    let (alice, _) = history(&app).await;
    sign_anchors(&app, 5).await;
    let _jwks = JwksFile(&app.anchor_jwks);
    let auditor = app.as_role(Role::Auditor);

    // The owner rewrites Alice's third deposit (position 7: 102 EUR becomes a million)
    // and recomputes every later hash and link, as an attacker with the database can.
    let rewritten = app.store.read_all(6, 1).await.unwrap().remove(0);
    assert!(
        rewritten.data.contains("\"amount\":102"),
        "{}",
        rewritten.data
    );
    app.database()
        .rewrite_event(
            7,
            &rewritten
                .data
                .replace("\"amount\":102", "\"amount\":1000000"),
        )
        .await;

    // What `/audit/verify` alone says: the chain rules hold.
    let verify = app.get("/api/v1/audit/verify", &auditor).await.ok();
    assert_eq!(verify["ok"], true, "{verify}");
    assert_eq!(verify["first_bad_position"], Value::Null);
    // The replay believes the forged amount.
    let balances = app
        .get(
            &format!("/api/v1/audit/users/{alice}/balances?at_position=22"),
            &auditor,
        )
        .await
        .ok();
    assert_eq!(balances["balances"][0]["amount"], 1045 - 102 + 1_000_000);

    // With the anchors and their keys, the rewrite is found at the first anchor after it:
    // between the anchor at 5, which still matches, and the one at 10.
    let text = export(&app, "").await;
    let anchors = anchors(&app, 100).await;
    let jwks = served_jwks(&app).await;
    let report = audit::verify(text.as_bytes(), &anchors, &jwks).unwrap();
    assert!(!report.ok);
    assert!(report.chain.ok, "the chain itself was recomputed");
    assert_eq!(report.first_bad_position, Some(10));
    assert_eq!(report.anchors.mismatched[0].position, 10);
    assert_eq!(report.anchors.last_matching, Some(5));
    assert!(
        report
            .verdict
            .starts_with("NOT THE SIGNED LOG: the anchor at position 10"),
        "{}",
        report.verdict
    );

    // The independent implementation sees the same: an intact chain, anchors that differ.
    let python = python_check(&text, Some(&anchors));
    assert_eq!(python["first_bad_position"], Value::Null);
    assert_eq!(python["anchors_mismatched"][0], 10);
}
