//! What a reader of the views sees while `projector rebuild` replaces the tables under
//! it: query-api (its router, driven in process) in front of the live projector and a
//! rebuild, on the test's own database and vhost.
//!
//! What must hold (DESIGN.md §5, docs/adr/0015): a view never moves backwards. An answer
//! never says a lower `X-Projection-Position` than one given before, an answer to a
//! query with `X-Min-Position: N` holds every event up to N, and a view cached before a
//! swap is never served after it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use event_store::{AppendRequest, EventType, ExpectedVersion, NewEvent, RecordedEvent, StreamId};
use keyring::{KeyStore, MasterKeys};
use ledger::UserRegistered;
use ledger::{Amount, Currency, Deposited, LedgerEvent, SealedText, TransactionId, UserId};
use platform::{DevKeys, Metrics, Role, TokenPolicy, DEV_AUDIENCE, DEV_ISSUER};
use query_api::{AppState, PersonalData, Settings};
use serde_json::Value;
use tokio::sync::watch;
use tower::ServiceExt;
use uuid::Uuid;

use support::{eventually, Env, Publisher, Running, Scenario};

/// Readers, each depositing into a user of its own and reading it back.
const READERS: usize = 4;
/// Reads of each deposit, with `X-Min-Position` of it.
const READS_PER_WRITE: usize = 40;
/// Rebuilds, one after the other, under the same load.
const REBUILDS: usize = 3;

/// query-api over the test's database, as `query_api::run` builds it.
struct Views {
    router: Router,
    token: String,
}

impl Views {
    async fn start(env: &Env) -> Self {
        let keys = KeyStore::new(
            env.store.pool().clone(),
            MasterKeys::from_keys([(1, [7; 32])]).unwrap(),
        );
        let tokens = DevKeys::generate().unwrap();
        let authenticator = tokens
            .authenticator(TokenPolicy::new(DEV_ISSUER, DEV_AUDIENCE))
            .unwrap();
        let state = AppState::new(
            env.db.pool(16).await,
            env.store.clone(),
            PersonalData::new(keys),
            authenticator,
            Metrics::new(),
            Settings::default(),
        );
        let token = tokens
            .mint(
                Uuid::now_v7(),
                &[Role::Service],
                Duration::from_secs(600),
                DEV_ISSUER,
                DEV_AUDIENCE,
            )
            .unwrap();
        Self {
            router: query_api::router(state),
            token,
        }
    }

    /// `GET /api/v1/users/{id}/balances`, with `X-Min-Position: min` if given: the
    /// status, `X-Projection-Position` and the body.
    async fn balances(&self, user: UserId, min: Option<u64>) -> (StatusCode, u64, Value) {
        self.get(&format!("/api/v1/users/{}/balances", user.as_uuid()), min)
            .await
    }

    /// `GET /api/v1/transactions?user_id=&limit=1`: the user's newest transaction.
    async fn newest_transaction(&self, user: UserId, min: Option<u64>) -> (StatusCode, u64, Value) {
        let path = format!("/api/v1/transactions?user_id={}&limit=1", user.as_uuid());
        self.get(&path, min).await
    }

    async fn get(&self, path: &str, min: Option<u64>) -> (StatusCode, u64, Value) {
        let mut request =
            Request::get(path).header("authorization", format!("Bearer {}", self.token));
        if let Some(min) = min {
            request = request.header("x-min-position", min.to_string());
        }
        let response = self
            .router
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let position = response
            .headers()
            .get("x-projection-position")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
        (status, position, body)
    }
}

/// The first of each run of equal lines, at most 20.
fn first_of_each(lines: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in lines {
        if out.last() != Some(line) && out.len() < 20 {
            out.push(line.clone());
        }
    }
    out
}

/// The amount a balances answer shows in `currency` (0 if none).
fn amount(body: &Value, currency: &str) -> i64 {
    body["balances"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|b| b["currency"] == currency)
        .and_then(|b| b["amount"].as_i64())
        .unwrap_or(0)
}

fn new_event(e: &LedgerEvent) -> NewEvent {
    NewEvent::new(
        EventType::parse(e.event_type()).unwrap(),
        e.schema_version(),
        e.data(),
    )
}

/// Appends one event to its user's stream, as command-api would, and publishes it as
/// the relay would; returns it as the log holds it.
async fn command(env: &Env, publisher: &Publisher, event: LedgerEvent) -> RecordedEvent {
    let outcome = env
        .store
        .append(AppendRequest::single(
            StreamId::parse(event.stream_id()).unwrap(),
            ExpectedVersion::Any,
            vec![new_event(&event)],
        ))
        .await
        .expect("append");
    let recorded = env
        .store
        .read_all(outcome.last_position - 1, 1)
        .await
        .unwrap()
        .remove(0);
    publisher.publish(std::slice::from_ref(&recorded)).await;
    recorded
}

fn registered(user: UserId) -> LedgerEvent {
    UserRegistered {
        user_id: user,
        email_ciphertext: SealedText::new(format!("sealed:{user}@example.com")),
        display_name_ciphertext: SealedText::new(format!("sealed:name-{user}")),
    }
    .into()
}

fn deposited(user: UserId, amount: i64) -> LedgerEvent {
    Deposited {
        transaction_id: TransactionId::from_uuid(Uuid::now_v7()),
        user_id: user,
        amount: Amount::parse(amount).unwrap(),
        currency: Currency::EUR,
    }
    .into()
}

/// One reader: deposits into its own user, then reads its balances and its newest
/// transaction with `X-Min-Position` of that deposit, again and again, until `stop`.
/// Returns every broken promise it saw.
async fn reader(
    env: Arc<Env>,
    views: Arc<Views>,
    user: UserId,
    reads: Arc<AtomicU64>,
    stop: watch::Receiver<bool>,
) -> Vec<String> {
    let publisher = env.publisher().await;
    let mut broken = Vec::new();
    let mut total = 0;
    let mut highest = 0;
    let mut round = 0;
    while !*stop.borrow() {
        round += 1;
        let deposit = 1 + round % 7;
        let written = command(&env, &publisher, deposited(user, deposit)).await;
        total += deposit;
        for read in 0..READS_PER_WRITE {
            // The balances view (cached in query-api) and the transactions list (read
            // from the tables every time), in turn.
            let balances = read % 2 == 0;
            let (status, position, body) = if balances {
                views.balances(user, Some(written.position)).await
            } else {
                views.newest_transaction(user, Some(written.position)).await
            };
            reads.fetch_add(1, Ordering::Relaxed);
            if status != StatusCode::OK {
                broken.push(format!(
                    "{user}: {status} for X-Min-Position {}",
                    written.position
                ));
                continue;
            }
            if position < highest {
                broken.push(format!(
                    "{user}: X-Projection-Position went back from {highest} to {position}"
                ));
            }
            highest = highest.max(position);
            if position < written.position {
                broken.push(format!(
                    "{user}: answered at {position}, below X-Min-Position {}",
                    written.position
                ));
            }
            let seen = if balances {
                (amount(&body, "EUR") == total).then_some(())
            } else {
                (body["items"][0]["position"] == written.position).then_some(())
            };
            if seen.is_none() {
                broken.push(format!(
                    "{user}: own write at {} missing from {} answered at {position}: {body}",
                    written.position,
                    if balances {
                        "the balances"
                    } else {
                        "the transactions"
                    },
                ));
            }
        }
    }
    broken
}

/// The checkpoint row itself, read as fast as it goes until `stop`: every time it was
/// seen lower than before.
async fn watch_checkpoint(env: Arc<Env>, stop: watch::Receiver<bool>) -> Vec<String> {
    let mut broken = Vec::new();
    let mut highest = 0;
    while !*stop.borrow() {
        let position = env.checkpoint().await;
        if position < highest {
            broken.push(format!(
                "the checkpoint row went back from {highest} to {position}"
            ));
        }
        highest = highest.max(position);
    }
    broken
}

/// Other users' commands, steadily, so the live projector keeps moving.
async fn background(env: Arc<Env>, seed: u64, stop: watch::Receiver<bool>) {
    let publisher = env.publisher().await;
    let mut scenario = Scenario::new(seed);
    let users = env.append(&scenario.register(20)).await;
    publisher.publish(&users).await;
    while !*stop.borrow() {
        let events = env.append(&scenario.activity(5)).await;
        publisher.publish(&events).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_never_see_a_view_move_backwards_during_a_rebuild_under_load() {
    let env = Env::new().await;
    // A log large enough that the rebuild takes a while: the live projector moves on
    // meanwhile.
    let mut scenario = Scenario::new(15);
    env.append(&scenario.register(100)).await;
    env.append_bulk(&scenario.activity(30_000)).await;
    let publisher = env.publisher().await;
    let users: Vec<UserId> = (0..READERS)
        .map(|_| UserId::from_uuid(Uuid::now_v7()))
        .collect();
    for user in &users {
        command(&env, &publisher, registered(*user)).await;
    }
    let projector = Running::start(&env.config).await;
    env.wait_for_checkpoint(env.head().await).await;

    let env = Arc::new(env);
    let views = Arc::new(Views::start(&env).await);
    let reads = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop) = watch::channel(false);
    let readers: Vec<_> = users
        .iter()
        .map(|user| {
            tokio::spawn(reader(
                env.clone(),
                views.clone(),
                *user,
                reads.clone(),
                stop.clone(),
            ))
        })
        .collect();
    let checkpoint = tokio::spawn(watch_checkpoint(env.clone(), stop.clone()));
    let load: Vec<_> = (0..3)
        .map(|i| tokio::spawn(background(env.clone(), 16 + i, stop.clone())))
        .collect();

    let reads_before = eventually("the readers to get going", || async {
        let n = reads.load(Ordering::Relaxed);
        (n >= 60).then_some(n)
    })
    .await;
    // Several rebuilds, each swapping while commands and reads go on, and reads after
    // each swap.
    let mut reports = Vec::new();
    for _ in 0..REBUILDS {
        reports.push(
            projector::rebuild(&env.config, &mut |_| {})
                .await
                .expect("rebuild"),
        );
        let after_swap = reads.load(Ordering::Relaxed);
        eventually("reads after the swap", || async {
            (reads.load(Ordering::Relaxed) >= after_swap + 1_000).then_some(())
        })
        .await;
    }
    stop_tx.send(true).unwrap();
    let mut broken = Vec::new();
    for reader in readers {
        broken.extend(reader.await.unwrap());
    }
    for task in load {
        task.await.unwrap();
    }
    broken.extend(checkpoint.await.unwrap());

    for report in &reports {
        assert!(report.swapped_at > reads_before);
    }
    assert!(
        broken.is_empty(),
        "{} broken promises (rebuilds: {reports:?}), the first ones:\n{}",
        broken.len(),
        first_of_each(&broken).join("\n")
    );
    env.wait_for_checkpoint(env.head().await).await;
    support::assert_verified(&env).await;
    projector.stop().await;
}

#[tokio::test]
async fn a_rebuild_that_repairs_a_view_is_served_at_once_not_the_cached_copy() {
    let env = Env::new().await;
    let mut scenario = Scenario::new(17);
    let publisher = env.publisher().await;
    let user = UserId::from_uuid(Uuid::now_v7());
    command(&env, &publisher, registered(user)).await;
    command(&env, &publisher, deposited(user, 40)).await;
    let events = env.append(&scenario.register(5)).await;
    publisher.publish(&events).await;
    let events = env.append(&scenario.activity(100)).await;
    publisher.publish(&events).await;
    let projector = Running::start(&env.config).await;
    let head = env.head().await;
    env.wait_for_checkpoint(head).await;
    // Nothing moves the checkpoint from here on.
    projector.stop().await;

    // A damaged row (what `projector verify` reports and a rebuild repairs) is read
    // and kept by the view cache at the current checkpoint.
    sqlx::query("UPDATE balances_view SET amount = 999999 WHERE user_id = ? AND currency = 'EUR'")
        .bind(user.as_uuid())
        .execute(&env.pool)
        .await
        .unwrap();
    let views = Views::start(&env).await;
    let (status, position, body) = views.balances(user, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(position, head);
    assert_eq!(amount(&body, "EUR"), 999_999);

    let report = projector::rebuild(&env.config, &mut |_| {})
        .await
        .expect("rebuild");
    assert_eq!(report.swapped_at, head);

    let (status, position, body) = views.balances(user, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        position, head,
        "the rebuilt tables are at the same position"
    );
    assert_eq!(
        amount(&body, "EUR"),
        40,
        "the repaired row, not the copy cached before the swap"
    );
}
