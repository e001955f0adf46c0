//! The anchor signer against the real MariaDB and RabbitMQ: a fresh database (and vhost)
//! per test. Every wait is on a condition with a deadline.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first surprise

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use event_store::anchor::{
    AnchorBroker, AnchorCloudEvent, AnchorConfig, AnchorSigner, AnchorStats,
};
use event_store::relay::testing::TestBroker;
use event_store::relay::{Topology, CLOUDEVENTS_CONTENT_TYPE, DEFAULT_EXCHANGE};
use event_store::testing::TestDatabase;
use event_store::{AppendRequest, EventStore, EventType, ExpectedVersion, NewEvent, StreamId};
use futures_util::StreamExt;
use hash_chain::{Jwks, SignedAnchor, SigningKey};
use jsonschema::{Draft, Validator};
use lapin::options::{BasicAckOptions, BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const DEADLINE: Duration = Duration::from_secs(60);

struct Signing {
    stats: AnchorStats,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Signing {
    fn start(store: EventStore, key: SigningKey, config: AnchorConfig) -> Self {
        let stats = AnchorStats::default();
        let signer = AnchorSigner::new(store, key, config)
            .unwrap()
            .with_observer(stats.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(signer.run(async move {
            let _ = stopped.await;
        }));
        Self {
            stats,
            stop: Some(stop),
            task,
        }
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(DEADLINE, &mut self.task)
            .await
            .expect("the signer stops")
            .unwrap();
    }
}

fn config(every_events: u64, every: Duration) -> AnchorConfig {
    AnchorConfig {
        every_events,
        every,
        check_interval: Duration::from_millis(20),
        ..AnchorConfig::default()
    }
}

async fn append(store: &EventStore, n: u64) -> u64 {
    let mut head = 0;
    for i in 0..n {
        let stream = StreamId::parse(format!("user-{}", uuid::Uuid::now_v7())).unwrap();
        let event = NewEvent::new(
            EventType::parse("transaction.deposited").unwrap(),
            1,
            json!({ "n": i }),
        );
        head = store
            .append(AppendRequest::single(
                stream,
                ExpectedVersion::Any,
                vec![event],
            ))
            .await
            .unwrap()
            .last_position;
    }
    head
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        // A polling period, not a wait for something to happen.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn all_anchors(store: &EventStore) -> Vec<SignedAnchor> {
    store.anchors(0, 1_000).await.unwrap()
}

async fn positions(store: &EventStore) -> Vec<u64> {
    all_anchors(store)
        .await
        .iter()
        .map(|a| a.position)
        .collect()
}

fn jwks(keys: &[&SigningKey]) -> Jwks {
    Jwks {
        keys: keys.iter().map(|k| k.public_jwk()).collect(),
    }
}

/// Every anchor verifies, signs the log's own hash and time at its position, and no two
/// consecutive anchors are more than `every_events` apart.
async fn assert_anchors_sign_the_log(store: &EventStore, jwks: &Jwks, every_events: u64) {
    let anchors = all_anchors(store).await;
    let log = store.read_all(0, 10_000).await.unwrap();
    let mut previous = 0;
    for anchor in &anchors {
        anchor.verify(jwks).unwrap();
        let event = &log[anchor.position as usize - 1];
        assert_eq!(anchor.hash, event.hash, "anchor at {}", anchor.position);
        assert_eq!(anchor.recorded_at, event.recorded_at);
        assert!(anchor.position - previous <= every_events, "{anchors:?}");
        previous = anchor.position;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anchors_come_every_n_events_and_at_the_head_of_a_growing_log() {
    let db = TestDatabase::new().await;
    let writer = db.store().await;
    let key = SigningKey::generate().unwrap();
    let keys = jwks(&[&key]);
    append(&writer, 25).await;
    let signing = Signing::start(
        db.store().await,
        key,
        config(10, Duration::from_millis(300)),
    );
    eventually("anchors at 10, 20 and the head", || async {
        positions(&writer).await == [10, 20, 25]
    })
    .await;
    append(&writer, 12).await;
    eventually("anchors at 35 and the new head", || async {
        positions(&writer).await == [10, 20, 25, 35, 37]
    })
    .await;
    assert_anchors_sign_the_log(&writer, &keys, 10).await;
    assert!(signing.stats.is_leader());
    signing.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_signer_signs_at_a_time_and_a_standby_takes_over() {
    let db = TestDatabase::new().await;
    let writer = db.store().await;
    let (first_key, second_key) = (
        SigningKey::generate().unwrap(),
        SigningKey::generate().unwrap(),
    );
    let keys = jwks(&[&first_key, &second_key]);
    let (first_kid, second_kid) = (first_key.kid().to_owned(), second_key.kid().to_owned());
    let every = Duration::from_millis(100);
    let first = Signing::start(db.store().await, first_key, config(5, every));
    eventually("the first signer leads", || async {
        first.stats.is_leader()
    })
    .await;
    let second = Signing::start(db.store().await, second_key, config(5, every));
    append(&writer, 12).await;
    eventually("anchors up to the head", || async {
        positions(&writer).await.last() == Some(&12)
    })
    .await;
    assert!(!second.stats.is_leader());
    assert_eq!(second.stats.signed(), 0, "a standby signed");
    for anchor in all_anchors(&writer).await {
        assert_eq!(anchor.verify(&keys).unwrap(), first_kid);
    }

    first.stop().await;
    eventually("the standby leads", || async { second.stats.is_leader() }).await;
    append(&writer, 6).await;
    eventually("the standby anchors the new events", || async {
        positions(&writer).await.last() == Some(&18)
    })
    .await;
    let after: Vec<SignedAnchor> = all_anchors(&writer)
        .await
        .into_iter()
        .filter(|a| a.position > 12)
        .collect();
    assert!(!after.is_empty());
    for anchor in after {
        assert_eq!(anchor.verify(&keys).unwrap(), second_kid);
    }
    assert_anchors_sign_the_log(&writer, &keys, 5).await;
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_signer_signs_nothing_past_a_rewritten_chain() {
    let db = TestDatabase::new().await;
    let writer = db.store().await;
    append(&writer, 20).await;
    let signing = Signing::start(
        db.store().await,
        SigningKey::generate().unwrap(),
        config(10, Duration::from_secs(3600)),
    );
    eventually("anchors at 10 and 20", || async {
        positions(&writer).await == [10, 20]
    })
    .await;

    // An attacker rewrites event 5 and recomputes the chain: the log verifies again.
    db.rewrite_event(5, r#"{"n":1000000}"#).await;
    assert!(writer.verify(1, None).await.unwrap().ok);
    append(&writer, 5).await;

    // The event after the last anchor links to a hash the signer never signed.
    eventually("the signer reports the break", || async {
        signing.stats.chain_broken_at() == Some(21)
    })
    .await;
    assert_eq!(
        positions(&writer).await,
        [10, 20],
        "signed past the rewrite"
    );
    signing.stop().await;
}

fn anchor_validator() -> Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/anchor.cloudevents.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::options()
        .with_draft(Draft::Draft202012)
        .should_validate_formats(true)
        .build(&schema)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anchors_are_published_as_cloudevents_of_their_own_type() {
    let db = TestDatabase::new().await;
    let broker = TestBroker::new().await;
    let writer = db.store().await;
    let key = SigningKey::generate().unwrap();
    let keys = jwks(&[&key]);

    // An auditor's own queue, bound to the anchors' routing key only.
    let conn = broker.connect().await;
    let channel = conn.create_channel().await.unwrap();
    Topology::default().declare(&channel).await.unwrap();
    let queue = "auditor.anchors";
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_bind(
            queue.into(),
            DEFAULT_EXCHANGE.into(),
            "ledger.anchor.signed".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut consumer = channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();

    append(&writer, 7).await;
    let signing = Signing::start(
        db.store().await,
        key,
        AnchorConfig {
            broker: Some(AnchorBroker {
                amqp_url: broker.url.clone(),
                source: "urn:example:ledger".into(),
                topology: Topology::default(),
                timeout: Duration::from_secs(10),
            }),
            ..config(5, Duration::from_millis(100))
        },
    );

    let validator = anchor_validator();
    let mut got = Vec::new();
    while got.last().map(|a: &SignedAnchor| a.position) != Some(7) {
        let delivery = tokio::time::timeout(DEADLINE, consumer.next())
            .await
            .expect("an anchor message within the deadline")
            .unwrap()
            .unwrap();
        delivery.ack(BasicAckOptions::default()).await.unwrap();
        assert_eq!(delivery.routing_key.as_str(), "ledger.anchor.signed");
        let props = &delivery.properties;
        assert_eq!(
            props.content_type().as_ref().map(|s| s.as_str()),
            Some(CLOUDEVENTS_CONTENT_TYPE)
        );
        assert_eq!(props.delivery_mode(), &Some(2));
        let body: Value = serde_json::from_slice(&delivery.data).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&body)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{body}: {errors:?}");
        let event: AnchorCloudEvent = serde_json::from_value(body).unwrap();
        assert_eq!(
            props.message_id().as_ref().map(|s| s.to_string()),
            Some(event.id.to_string())
        );
        event.data.verify(&keys).unwrap();
        got.push(event.data);
    }
    assert_eq!(
        got.iter().map(|a| a.position).collect::<Vec<_>>(),
        [5, 7],
        "in position order, each once"
    );
    assert_eq!(got, all_anchors(&writer).await);
    eventually("both marked as published", || async {
        signing.stats.published() == 2
    })
    .await;
    signing.stop().await;
}

#[test]
fn the_anchor_schema_refuses_an_event_of_the_log_and_the_envelope_refuses_an_anchor() {
    let anchor_schema = anchor_validator();
    let key = SigningKey::generate().unwrap();
    let signed = SignedAnchor::sign(
        hash_chain::AnchorPayload {
            position: 3,
            hash: [1; 32],
            recorded_at: time::OffsetDateTime::now_utc(),
        },
        &key,
    );
    let good = json!({
        "specversion": "1.0",
        "id": uuid::Uuid::now_v7().to_string(),
        "source": "urn:example:ledger",
        "type": "ledger.anchor.signed",
        "time": "2026-12-08T10:00:00.000001Z",
        "datacontenttype": "application/json",
        "data": signed,
    });
    assert!(anchor_schema.is_valid(&good), "{good}");
    let mut with_position = good.clone();
    with_position["position"] = json!(3);
    assert!(!anchor_schema.is_valid(&with_position));
    let mut other_type = good.clone();
    other_type["type"] = json!("transaction.deposited");
    assert!(!anchor_schema.is_valid(&other_type));

    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/envelope.cloudevents.json");
    let envelope: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let envelope = jsonschema::options()
        .with_draft(Draft::Draft202012)
        .build(&envelope)
        .unwrap();
    assert!(!envelope.is_valid(&good), "an anchor passes for an event");
}
