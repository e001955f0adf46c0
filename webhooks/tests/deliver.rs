//! The deliverer against a real HTTP receiver started by each test, on the real MariaDB:
//! signatures checked by a Standard Webhooks verification written here independently,
//! order across failing attempts, the whole history with `after: 0`, a killed deliverer
//! (duplicates at most, nothing lost), a standby taking over, pause and resume, and
//! internal targets refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use event_store::relay::CloudEvent;
use event_store::testing::TestDatabase;
use event_store::{AppendRequest, EventStore, EventType, ExpectedVersion, NewEvent, StreamId};
use hmac::{Hmac, Mac};
use http_body_util::BodyExt;
use keyring::{DataKey, MasterKeys};
use serde_json::json;
use sha2::Sha256;
use tokio::sync::watch;
use webhooks::{
    Deliverer, DelivererSettings, DeliveryMetrics, NewSubscription, SigningSecret, Status,
    SubscriptionName, SubscriptionTable, TargetPolicy,
};

const MASTER: [u8; 32] = [9; 32];

fn master() -> MasterKeys {
    MasterKeys::from_keys([(1, MASTER)]).unwrap()
}

/// What the receiver got: each delivery's body, and whether its signature verified.
#[derive(Default)]
struct Received {
    bodies: Vec<serde_json::Value>,
    bad_signatures: usize,
    /// Answers to give, in order, before answering 204 for good.
    script: VecDeque<u16>,
}

/// An HTTP server that verifies and records every POST.
struct Receiver {
    addr: SocketAddr,
    got: Arc<Mutex<Received>>,
}

/// Standard Webhooks verification, written from the specification: base64-decode the
/// secret after `whsec_`, HMAC-SHA256 over `id.timestamp.body`, compare with each `v1,`
/// signature of the header.
fn verify(secret: &str, headers: &hyper::HeaderMap, body: &[u8]) -> bool {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    let Some(key) = secret
        .strip_prefix("whsec_")
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
    else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.", header("webhook-id"), header("webhook-timestamp")).as_bytes());
    mac.update(body);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    header("webhook-signature")
        .split(' ')
        .any(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
}

impl Receiver {
    async fn start(secret: Arc<Mutex<String>>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let got: Arc<Mutex<Received>> = Arc::default();
        let state = got.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (state, secret) = (state.clone(), secret.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let (state, secret) = (state.clone(), secret.clone());
                            async move {
                                let headers = req.headers().clone();
                                let body = req.into_body().collect().await?.to_bytes();
                                let status = {
                                    let mut got = state.lock().unwrap();
                                    let secret = secret.lock().unwrap().clone();
                                    if !verify(&secret, &headers, &body) {
                                        got.bad_signatures += 1;
                                    }
                                    let status = got.script.pop_front().unwrap_or(204);
                                    if (200..300).contains(&status) {
                                        got.bodies.push(serde_json::from_slice(&body).unwrap());
                                    }
                                    status
                                };
                                let mut answer = hyper::Response::new(http_body_util::Empty::<
                                    hyper::body::Bytes,
                                >::new(
                                ));
                                *answer.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                                Ok::<_, hyper::Error>(answer)
                            }
                        },
                    );
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                });
            }
        });
        Self { addr, got }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn positions(&self) -> Vec<u64> {
        let got = self.got.lock().unwrap();
        got.bodies
            .iter()
            .map(|b| b["position"].as_u64().unwrap())
            .collect()
    }
}

struct Setup {
    db: TestDatabase,
    store: EventStore,
    table: SubscriptionTable,
    receiver: Receiver,
    secret: Arc<Mutex<String>>,
}

async fn setup() -> Setup {
    let db = TestDatabase::new().await;
    let store = db.store().await;
    let table = SubscriptionTable::new(store.pool().clone());
    let secret: Arc<Mutex<String>> = Arc::default();
    let receiver = Receiver::start(secret.clone()).await;
    Setup {
        db,
        store,
        table,
        receiver,
        secret,
    }
}

impl Setup {
    /// Appends `n` events: types alternate `thing.made` / `other.done`.
    async fn append(&self, n: usize) {
        for k in 0..n {
            let t = if k % 2 == 0 {
                "thing.made"
            } else {
                "other.done"
            };
            let request = AppendRequest::single(
                StreamId::parse("s-1").unwrap(),
                ExpectedVersion::Any,
                vec![NewEvent::new(
                    EventType::parse(t).unwrap(),
                    1,
                    json!({ "k": k }),
                )],
            );
            self.store.append(request).await.unwrap();
        }
    }

    async fn subscribe(&self, name: &str, url: &str, types: &[&str], after: u64) {
        let key = DataKey::generate(uuid::Uuid::new_v4()).unwrap();
        *self.secret.lock().unwrap() = SigningSecret::from_bytes(key.expose_bytes()).to_text();
        let new = NewSubscription {
            name: SubscriptionName::parse(name).unwrap(),
            url: url.to_owned(),
            types: types.iter().map(|t| (*t).to_owned()).collect(),
            after,
            secret: master().wrap(&key).unwrap(),
        };
        self.table.create(&new).await.unwrap();
    }

    fn deliverer(&self, policy: TargetPolicy) -> Deliverer {
        Deliverer::new(
            self.store.clone(),
            self.table.clone(),
            master(),
            DelivererSettings {
                policy,
                min_backoff: Duration::from_millis(10),
                max_backoff: Duration::from_millis(50),
                reconcile: Duration::from_millis(20),
                timeout: Duration::from_secs(2),
                ..DelivererSettings::default()
            },
            DeliveryMetrics::default(),
        )
        .unwrap()
    }

    fn start(&self, policy: TargetPolicy) -> Running {
        let deliverer = self.deliverer(policy);
        let metrics = deliverer.metrics.clone();
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(async move { deliverer.run(stopped).await });
        Running {
            stop,
            task,
            metrics,
        }
    }
}

struct Running {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
    metrics: DeliveryMetrics,
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(true);
        self.task.await.unwrap();
    }
}

const INSECURE: TargetPolicy = TargetPolicy {
    allow_insecure: true,
};

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn subscription(s: &Setup, name: &str) -> webhooks::Subscription {
    let name = SubscriptionName::parse(name).unwrap();
    s.table.get(&name).await.unwrap().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_from_zero_gets_the_whole_matching_history_signed_and_in_order() {
    let s = setup().await;
    s.append(10).await;
    s.subscribe("all-things", &s.receiver.url(), &["thing.*"], 0)
        .await;
    let running = s.start(INSECURE);
    eventually("the history", || s.receiver.positions().len() == 5).await;
    assert_eq!(s.receiver.positions(), [1, 3, 5, 7, 9]);
    // Then live.
    s.append(2).await;
    eventually("the live event", || s.receiver.positions().len() == 6).await;
    assert_eq!(s.receiver.positions()[5], 11);
    // Caught up, the worker stores its checkpoint past the event no one subscribed to.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while subscription(&s, "all-things").await.delivered_position < 12 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out: the checkpoint"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    running.stop().await;

    // Each body is the CloudEvent a RabbitMQ subscriber gets for that event.
    let log = s.store.read_all(0, 1).await.unwrap();
    let expected = CloudEvent::from_recorded(&log[0], event_store::relay::DEFAULT_SOURCE).unwrap();
    {
        let got = s.receiver.got.lock().unwrap();
        assert_eq!(got.bad_signatures, 0);
        assert_eq!(got.bodies[0], serde_json::to_value(&expected).unwrap());
    }
    let sub = subscription(&s, "all-things").await;
    assert_eq!(
        sub.delivered_position, 12,
        "the checkpoint passes matching and other events"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_holds_across_a_receiver_that_fails_the_first_attempts() {
    let s = setup().await;
    s.receiver
        .got
        .lock()
        .unwrap()
        .script
        .extend([500, 503, 502, 404]);
    s.append(6).await;
    s.subscribe("flaky", &s.receiver.url(), &["#"], 0).await;
    let running = s.start(INSECURE);
    eventually("every event", || s.receiver.positions().len() == 6).await;
    running.stop().await;
    assert_eq!(s.receiver.positions(), [1, 2, 3, 4, 5, 6]);
    let sub = subscription(&s, "flaky").await;
    assert_eq!((sub.delivered_position, sub.failures), (6, 0));
    assert_eq!(sub.last_error, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_deliverer_duplicates_at_most_and_a_standby_takes_over() {
    let s = setup().await;
    s.subscribe("handover", &s.receiver.url(), &["#"], 0).await;
    let first = s.start(INSECURE);
    let standby = s.start(INSECURE);
    s.append(30).await;
    eventually("some deliveries", || s.receiver.positions().len() >= 10).await;
    // The leader dies without a word: its task is gone, its lock connection closes.
    first.task.abort();
    let _ = first.task.await;
    s.append(30).await;
    eventually("the standby to deliver the rest", || {
        s.receiver.positions().last() == Some(&60)
    })
    .await;
    standby.stop().await;
    let positions = s.receiver.positions();
    // A repeat is possible (what was delivered since the last stored checkpoint is sent
    // again), a gap never: no event arrives before every earlier one has.
    let mut highest = 0;
    for p in &positions {
        assert!(
            *p <= highest + 1,
            "{p} arrived before {}: {positions:?}",
            highest + 1
        );
        highest = highest.max(*p);
    }
    let mut distinct = positions.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct, (1..=60).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_subscription_waits_and_resumes_where_it_stopped() {
    let s = setup().await;
    let name = SubscriptionName::parse("pausable").unwrap();
    s.subscribe("pausable", &s.receiver.url(), &["#"], 0).await;
    let running = s.start(INSECURE);
    s.append(3).await;
    eventually("first events", || s.receiver.positions().len() == 3).await;
    s.table.set_status(&name, Status::Paused).await.unwrap();
    // The leader stops the worker at its next look at the subscriptions.
    eventually("the worker to stop", || running.metrics.delivering() == 0).await;
    s.append(3).await;
    // A second, active subscription to another receiver shows the events went by.
    let canary = Receiver::start(s.secret.clone()).await;
    s.subscribe("canary", &canary.url(), &["#"], 3).await;
    eventually("the canary's events", || canary.positions().len() == 3).await;
    assert_eq!(s.receiver.positions().len(), 3, "nothing while paused");
    s.table.set_status(&name, Status::Active).await.unwrap();
    eventually("the rest after resuming", || {
        s.receiver.positions().len() == 6
    })
    .await;
    running.stop().await;
    assert_eq!(s.receiver.positions(), [1, 2, 3, 4, 5, 6]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_internal_target_is_refused_unless_insecure_targets_are_allowed() {
    let s = setup().await;
    let name = SubscriptionName::parse("inward").unwrap();
    s.append(2).await;
    s.subscribe("inward", &s.receiver.url(), &["#"], 0).await;
    let running = s.start(TargetPolicy::default());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while s.table.get(&name).await.unwrap().unwrap().failures == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no refusal recorded"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    running.stop().await;
    let sub = s.table.get(&name).await.unwrap().unwrap();
    assert_eq!(sub.delivered_position, 0);
    assert!(s.receiver.positions().is_empty());
    assert!(
        sub.last_error.unwrap().contains("scheme"),
        "http refused first"
    );
    drop(s.db);
}
