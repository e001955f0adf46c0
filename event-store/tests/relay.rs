//! The relay against the real MariaDB and RabbitMQ: a fresh database and a fresh vhost
//! per test, the production exchange and queue names inside it. Every wait is on a
//! condition with a deadline.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first surprise

use std::collections::BTreeSet;
use std::future::Future;
use std::path::Path;
use std::time::Duration;

use event_store::relay::testing::TestBroker;
use event_store::relay::{
    CloudEvent, Relay, RelayConfig, RelayStats, Topology, CLOUDEVENTS_CONTENT_TYPE,
    DEFAULT_EXCHANGE, DEFAULT_QUEUE, RELAY_EPOCH, SUBSCRIBER_QUEUE_PREFIX,
};
use event_store::testing::TestDatabase;
use event_store::{
    AppendRequest, EventStore, EventType, ExpectedVersion, Metadata, NewEvent, StreamId,
};
use futures_util::StreamExt;
use jsonschema::{Draft, Validator};
use lapin::options::{BasicAckOptions, BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection};
use serde_json::{json, Value};
use sqlx::MySqlPool;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

const DEADLINE: Duration = Duration::from_secs(60);
const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

// ---------------------------------------------------------------------------------------
// Set-up

struct Harness {
    db: TestDatabase,
    broker: TestBroker,
    /// The relay's broker account, with the rights it has in production.
    relay_url: String,
    /// Appends, as command-api would: a store of its own, not the relay's.
    writer: EventStore,
    admin: MySqlPool,
}

impl Harness {
    async fn new() -> Self {
        let db = TestDatabase::new().await;
        let broker = TestBroker::new().await;
        let relay_url = broker
            .account("relay", &Topology::default().relay_permissions())
            .await;
        let writer = db.store().await;
        let admin = db.pool(2).await;
        Self {
            db,
            broker,
            relay_url,
            writer,
            admin,
        }
    }

    fn config(&self) -> RelayConfig {
        RelayConfig {
            amqp_url: self.relay_url.clone(),
            // Small enough that hundreds of events cycle the window many times.
            window: 16,
            backoff_max: Duration::from_secs(1),
            ..RelayConfig::default()
        }
    }

    async fn start(&self, config: RelayConfig) -> Running {
        Running::start(self.db.store().await, config)
    }

    async fn checkpoint(&self) -> u64 {
        sqlx::query_scalar::<_, u64>("SELECT position FROM relay_checkpoints WHERE name = 'main'")
            .fetch_optional(&self.admin)
            .await
            .unwrap()
            .unwrap_or(0)
    }

    /// The connection id holding relay `main`'s lock, if any.
    async fn lock_holder(&self) -> Option<i64> {
        sqlx::query_scalar("SELECT CAST(IS_USED_LOCK(?) AS SIGNED)")
            .bind(format!("relay:{}:main", self.db.name))
            .fetch_one(&self.admin)
            .await
            .unwrap()
    }

    async fn append(&self, events: Vec<NewEvent>) -> u64 {
        let outcome = self
            .writer
            .append(AppendRequest::single(
                user_stream(),
                ExpectedVersion::Any,
                events,
            ))
            .await
            .unwrap();
        outcome.last_position
    }

    /// Appends `n` events of alternating types, one append each; returns the head.
    async fn append_mixed(&self, n: u64) -> u64 {
        let mut head = 0;
        for i in 0..n {
            let kind = ["transaction.deposited", "user.registered"][usize::from(i % 2 == 1)];
            head = self.append(vec![event(kind, i)]).await;
        }
        head
    }
}

/// A relay running in this process.
struct Running {
    stats: RelayStats,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Running {
    fn start(store: EventStore, config: RelayConfig) -> Self {
        let stats = RelayStats::default();
        let relay = Relay::new(store, config)
            .unwrap()
            .with_observer(stats.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(relay.run(async move {
            let _ = stopped.await;
        }));
        Self {
            stats,
            stop: Some(stop),
            task,
        }
    }

    /// Graceful stop: returns once `run` did.
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(DEADLINE, &mut self.task)
            .await
            .expect("the relay stops")
            .unwrap();
    }

    /// As if the process died: its connections drop without a goodbye.
    fn kill(self) {
        self.task.abort();
    }
}

fn user_stream() -> StreamId {
    StreamId::parse(format!("user-{}", uuid::Uuid::new_v4())).unwrap()
}

fn event(event_type: &str, n: u64) -> NewEvent {
    // An even event has no causation id, like events recorded before it was required.
    let causation = (!n.is_multiple_of(2)).then(|| format!("cause-{n}"));
    NewEvent::new(
        EventType::parse(event_type).unwrap(),
        1,
        json!({ "n": n, "text": "ünïcode \"quoted\"" }),
    )
    .with_metadata(Metadata {
        correlation_id: Some(format!("corr-{n}")),
        causation_id: causation,
        traceparent: Some(TRACEPARENT.into()),
        ..Metadata::default()
    })
}

/// Waits for `check` to hold, polling, up to the deadline.
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

// ---------------------------------------------------------------------------------------
// Consuming

struct Received {
    routing_key: String,
    body: Value,
    properties: BasicProperties,
}

impl Received {
    fn position(&self) -> u64 {
        self.body["position"].as_u64().unwrap()
    }

    /// The relay epoch, which the header carries; the body is the event's CloudEvent
    /// alone.
    fn epoch(&self) -> u64 {
        assert!(self.body.get(RELAY_EPOCH).is_none(), "{}", self.body);
        let headers = self.properties.headers().as_ref();
        match headers.and_then(|h| h.inner().get(RELAY_EPOCH)) {
            Some(AMQPValue::LongLongInt(e)) => *e as u64,
            other => panic!("{RELAY_EPOCH} header: {other:?}"),
        }
    }
}

async fn declare_topology(conn: &Connection, topology: &Topology) {
    let channel = conn.create_channel().await.unwrap();
    topology.declare(&channel).await.unwrap();
}

/// A queue of the test's own, bound to the events exchange with `pattern`.
async fn bind_queue(channel: &Channel, queue: &str, pattern: &str) {
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
            pattern.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
}

/// Every message of `queue`, acknowledged, as it arrives.
async fn consume(conn: &Connection, queue: &str) -> mpsc::UnboundedReceiver<Received> {
    let channel = conn.create_channel().await.unwrap();
    let mut consumer = channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let _channel = channel;
        while let Some(Ok(delivery)) = consumer.next().await {
            delivery.ack(BasicAckOptions::default()).await.unwrap();
            let received = Received {
                routing_key: delivery.routing_key.to_string(),
                body: serde_json::from_slice(&delivery.data).unwrap(),
                properties: delivery.properties.clone(),
            };
            if tx.send(received).is_err() {
                return;
            }
        }
    });
    rx
}

/// Messages from `rx` until `done` holds for what arrived so far.
async fn receive_until(
    rx: &mut mpsc::UnboundedReceiver<Received>,
    what: &str,
    mut done: impl FnMut(&[Received]) -> bool,
) -> Vec<Received> {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut got = Vec::new();
    while !done(&got) {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(message)) => got.push(message),
            Ok(None) => panic!("the consumer stopped while waiting for {what}"),
            Err(_) => panic!(
                "timed out waiting for {what}; got positions {:?}",
                got.iter().map(Received::position).collect::<Vec<_>>()
            ),
        }
    }
    got
}

/// Whether every one of `positions` arrived.
fn covers(positions: impl IntoIterator<Item = u64>) -> impl FnMut(&[Received]) -> bool {
    let wanted: BTreeSet<u64> = positions.into_iter().collect();
    move |got| {
        let seen: BTreeSet<u64> = got.iter().map(Received::position).collect();
        seen.is_superset(&wanted)
    }
}

/// At-least-once and in order: no position arrives before its predecessor did, and the
/// sequence only ever counts up by one or starts again at a position already seen (a
/// resend after a failover). Returns how many times it started again.
fn assert_in_order_without_gaps(positions: &[u64], head: u64) -> usize {
    let (mut max, mut prev, mut restarts) = (0, 0, 0);
    for &p in positions {
        assert!(
            p <= max + 1,
            "gap: {p} arrived before {} in {positions:?}",
            max + 1
        );
        if p != prev + 1 {
            assert!(p <= max, "reordered at {p} in {positions:?}");
            restarts += 1;
        }
        max = max.max(p);
        prev = p;
    }
    assert_eq!(max, head, "not every event arrived: {positions:?}");
    restarts
}

fn envelope_validator() -> Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/envelope.cloudevents.json");
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::options()
        .with_draft(Draft::Draft202012)
        .should_validate_formats(true)
        .build(&schema)
        .unwrap()
}

// ---------------------------------------------------------------------------------------
// Tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_arrives_once_in_position_order_as_a_valid_cloudevent() {
    let h = Harness::new().await;
    h.append_mixed(100).await;
    // A multi-event append: consecutive positions from one transaction.
    let head = h
        .append((0..20).map(|i| event("transaction.withdrawn", i)).collect())
        .await;

    let conn = h.broker.connect().await;
    declare_topology(&conn, &Topology::default()).await;
    let mut rx = consume(&conn, DEFAULT_QUEUE).await;
    let relay = h.start(h.config()).await;

    let got = receive_until(&mut rx, "every event", |got| got.len() as u64 >= head).await;
    let positions: Vec<u64> = got.iter().map(Received::position).collect();
    assert_eq!(positions, (1..=head).collect::<Vec<_>>());

    let validator = envelope_validator();
    let log = h.writer.read_all(0, 1000).await.unwrap();
    for (message, recorded) in got.iter().zip(&log) {
        let errors: Vec<String> = validator
            .iter_errors(&message.body)
            .map(|e| format!("{e} at {}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}: {errors:?}", message.body);
        let body = &message.body;
        let id = recorded.event_id.to_string();
        assert_eq!(body["id"], id);
        assert_eq!(body["specversion"], "1.0");
        assert_eq!(body["source"], "urn:example:ledger");
        assert_eq!(body["type"], recorded.event_type.as_str());
        assert_eq!(body["subject"], recorded.stream_id.as_str());
        assert_eq!(body["datacontenttype"], "application/json");
        assert_eq!(
            body["data"],
            serde_json::from_str::<Value>(&recorded.data).unwrap()
        );
        assert_eq!(body["streamversion"], recorded.stream_version);
        assert_eq!(body["schemaversion"], 1);
        let n = body["data"]["n"].as_u64().unwrap();
        assert_eq!(body["correlationid"], format!("corr-{n}"));
        if n.is_multiple_of(2) {
            assert_eq!(
                body["causationid"],
                format!("corr-{n}"),
                "no causation recorded: the correlation id"
            );
        } else {
            assert_eq!(body["causationid"], format!("cause-{n}"));
        }
        let time = body["time"].as_str().unwrap();
        assert_eq!(time.len(), "2026-11-25T09:30:00.000000Z".len(), "{time}");
        let decoded: CloudEvent = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(decoded.time, recorded.recorded_at);

        assert_eq!(message.routing_key, recorded.event_type.as_str());
        let p = &message.properties;
        assert_eq!(
            p.content_type().as_ref().map(|s| s.as_str()),
            Some(CLOUDEVENTS_CONTENT_TYPE)
        );
        assert_eq!(p.delivery_mode(), &Some(2));
        assert_eq!(p.message_id().as_ref().map(|s| s.as_str()), Some(&*id));
        assert_eq!(
            p.kind().as_ref().map(|s| s.as_str()),
            Some(recorded.event_type.as_str())
        );
        assert_eq!(
            *p.timestamp(),
            Some(recorded.recorded_at.unix_timestamp() as u64)
        );
        let headers = p.headers().as_ref().unwrap();
        match headers.inner().get("traceparent") {
            Some(AMQPValue::LongString(s)) => assert_eq!(s.to_string(), TRACEPARENT),
            other => panic!("traceparent header: {other:?}"),
        }
        // The first term of this relay name.
        assert_eq!(message.epoch(), 1);
    }
    assert_eq!(relay.stats.epoch(), 1);

    eventually("the checkpoint to reach the head", || async {
        h.checkpoint().await == head
    })
    .await;
    assert_eq!(relay.stats.checkpoint(), head);

    // The relay follows the log as it grows.
    let head = h.append_mixed(5).await;
    let more = receive_until(&mut rx, "the new events", |got| got.len() == 5).await;
    let positions: Vec<u64> = more.iter().map(Received::position).collect();
    assert_eq!(positions, (head - 4..=head).collect::<Vec<_>>());
    eventually("lag to drop to zero", || async {
        relay.stats.lag_positions() == 0 && h.checkpoint().await == head
    })
    .await;
    assert_eq!(relay.stats.nacks() + relay.stats.returns(), 0);

    relay.stop().await;
    assert_eq!(
        h.lock_holder().await,
        None,
        "a stopped relay gives the lock up"
    );
    assert_eq!(h.checkpoint().await, head);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_publishes_nothing_until_the_leader_dies_then_takes_over_in_order() {
    let h = Harness::new().await;
    let conn = h.broker.connect().await;
    declare_topology(&conn, &Topology::default()).await;
    let mut rx = consume(&conn, DEFAULT_QUEUE).await;

    let a = h.start(h.config()).await;
    eventually("relay a to lead", || async { a.stats.is_leader() }).await;
    let b = h.start(h.config()).await;

    let first = h.append_mixed(60).await;
    let mut got = receive_until(&mut rx, "the leader's events", covers(1..=first)).await;
    assert!(!b.stats.is_leader());
    assert_eq!(b.stats.published(), 0, "the standby published");

    // Kill the leader while events keep coming.
    let appending = {
        let writer = h.writer.clone();
        tokio::spawn(async move {
            let mut head = 0;
            for i in 0..60 {
                let request = AppendRequest::single(
                    user_stream(),
                    ExpectedVersion::Any,
                    vec![event("transaction.deposited", i)],
                );
                head = writer.append(request).await.unwrap().last_position;
            }
            head
        })
    };
    a.kill();
    eventually("relay b to take over", || async { b.stats.is_leader() }).await;
    let head = appending.await.unwrap();

    got.extend(receive_until(&mut rx, "every event", covers(first + 1..=head)).await);
    let positions: Vec<u64> = got.iter().map(Received::position).collect();
    let restarts = assert_in_order_without_gaps(&positions, head);
    assert!(
        restarts <= 1,
        "one failover, {restarts} restarts: {positions:?}"
    );
    eventually("b's checkpoint to reach the head", || async {
        h.checkpoint().await == head
    })
    .await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_whose_lock_connection_dies_stops_publishing_and_the_standby_continues() {
    let h = Harness::new().await;
    let conn = h.broker.connect().await;
    declare_topology(&conn, &Topology::default()).await;
    let mut rx = consume(&conn, DEFAULT_QUEUE).await;

    let a = h.start(h.config()).await;
    eventually("relay a to lead", || async { a.stats.is_leader() }).await;
    let b = h.start(h.config()).await;
    let first = h.append_mixed(20).await;
    let mut got = receive_until(&mut rx, "the first events", covers(1..=first)).await;

    let holder = h.lock_holder().await.unwrap();
    sqlx::query(&format!("KILL CONNECTION {holder}"))
        .execute(&h.admin)
        .await
        .unwrap();
    eventually("b to lead and a to step down", || async {
        b.stats.is_leader() && !a.stats.is_leader()
    })
    .await;
    let published_by_a = a.stats.published();

    let head = h.append_mixed(20).await;
    got.extend(
        receive_until(
            &mut rx,
            "the events after the failover",
            covers(first + 1..=head),
        )
        .await,
    );
    let positions: Vec<u64> = got.iter().map(Received::position).collect();
    assert_in_order_without_gaps(&positions, head);
    assert_eq!(
        a.stats.published(),
        published_by_a,
        "a published after losing the lock"
    );
    // Each term has its epoch, taken with the lock: b's is the next one.
    assert_eq!((a.stats.epoch(), b.stats.epoch()), (1, 2));
    let epochs: BTreeSet<u64> = got.iter().map(Received::epoch).collect();
    assert_eq!(epochs, BTreeSet::from([1, 2]));
    assert_eq!(got.last().map(Received::epoch), Some(2));
    assert!(!a.stats.is_leader(), "a took the lock back while b held it");
    eventually("the checkpoint to reach the head", || async {
        h.checkpoint().await == head
    })
    .await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_downstream_queue_receives_only_the_types_its_pattern_matches() {
    let h = Harness::new().await;
    let conn = h.broker.connect().await;
    declare_topology(&conn, &Topology::default()).await;
    let channel = conn.create_channel().await.unwrap();
    bind_queue(&channel, "downstream.transactions", "transaction.*").await;

    let relay = h.start(h.config()).await;
    let head = h.append_mixed(30).await;
    eventually("every event to be confirmed", || async {
        h.checkpoint().await == head
    })
    .await;
    // Confirmed means routed to every bound queue: the count is final.
    let queue = channel
        .queue_declare(
            "downstream.transactions".into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    assert_eq!(queue.message_count(), 15);

    let mut rx = consume(&conn, "downstream.transactions").await;
    let got = receive_until(&mut rx, "the transaction events", |got| got.len() == 15).await;
    let positions: Vec<u64> = got.iter().map(Received::position).collect();
    assert_eq!(positions, (1..=head).step_by(2).collect::<Vec<_>>());
    for message in &got {
        assert_eq!(message.body["type"], "transaction.deposited");
        assert_eq!(message.routing_key, "transaction.deposited");
    }
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returned_event_holds_the_checkpoint_until_a_queue_is_bound_for_it() {
    let h = Harness::new().await;
    let conn = h.broker.connect().await;
    // Only the exchange and a queue for user events: transaction events have no route.
    let topology = Topology {
        queue: None,
        ..Topology::default()
    };
    declare_topology(&conn, &topology).await;
    let channel = conn.create_channel().await.unwrap();
    bind_queue(&channel, "users", "user.*").await;

    let relay = h
        .start(RelayConfig {
            topology,
            ..h.config()
        })
        .await;
    h.append(vec![
        event("user.registered", 1),
        event("user.registered", 2),
    ])
    .await;
    let unroutable = h.append(vec![event("transaction.deposited", 3)]).await;
    let head = h.append(vec![event("user.registered", 4)]).await;

    eventually("the relay to retry the returned event", || async {
        relay.stats.returns() >= 2 && h.checkpoint().await == unroutable - 1
    })
    .await;
    assert_eq!(relay.stats.checkpoint(), unroutable - 1);
    assert!(h.checkpoint().await < unroutable);

    bind_queue(&channel, "transactions", "transaction.*").await;
    let mut rx = consume(&conn, "transactions").await;
    eventually("the checkpoint to pass the event", || async {
        h.checkpoint().await == head
    })
    .await;
    let got = receive_until(&mut rx, "the formerly returned event", |got| {
        !got.is_empty()
    })
    .await;
    assert_eq!(got[0].position(), unroutable);

    let mut users = consume(&conn, "users").await;
    let got = receive_until(&mut users, "the user events", covers([1, 2, head])).await;
    let positions: Vec<u64> = got.iter().map(Received::position).collect();
    assert_eq!(
        &positions[..2],
        &[1, 2],
        "confirmed events are not sent again"
    );
    assert!(positions[2..].iter().all(|&p| p == head), "{positions:?}");
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_succeed_while_the_broker_is_away_and_the_relay_catches_up() {
    let h = Harness::new().await;
    let relay = h.start(h.config()).await;
    let first = h.append_mixed(10).await;
    eventually("the first events to be confirmed", || async {
        h.checkpoint().await == first
    })
    .await;

    h.broker.outage().await;
    eventually("the relay to notice the broker is gone", || async {
        !relay.stats.is_broker_connected()
    })
    .await;
    // The log is the outbox: commands go on.
    let head = h.append_mixed(10).await;
    assert!(relay.stats.is_leader());
    assert_eq!(h.checkpoint().await, first);

    h.broker.restore().await;
    let conn = h.broker.connect().await;
    declare_topology(&conn, &Topology::default()).await;
    let mut rx = consume(&conn, DEFAULT_QUEUE).await;
    let got = receive_until(
        &mut rx,
        "the events from the outage",
        covers(first + 1..=head),
    )
    .await;
    let positions: Vec<u64> = got.iter().map(Received::position).collect();
    assert_eq!(positions, (first + 1..=head).collect::<Vec<_>>());
    eventually("the checkpoint to catch up", || async {
        h.checkpoint().await == head
    })
    .await;
    relay.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_account_may_read_the_log_and_keep_its_checkpoint_but_not_write_events() {
    let h = Harness::new().await;
    let user = format!("r_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    event_store::relay::grant_relay(&h.admin, &h.db.name, &user, "s3cret'pw")
        .await
        .unwrap();
    let account = h.db.options.clone().username(&user).password("s3cret'pw");

    let result = async {
        let store = EventStore::connect_with(account.clone(), Default::default()).await?;
        let relay = Running::start(store.clone(), h.config());
        let head = h.append_mixed(5).await;
        eventually("the relay account's checkpoint", || async {
            h.checkpoint().await == head
        })
        .await;
        relay.stop().await;
        let delete = sqlx::query("DELETE FROM events")
            .execute(store.pool())
            .await;
        anyhow::Ok(delete)
    }
    .await;
    sqlx::query(&format!("DROP USER '{user}'@'%'"))
        .execute(&h.admin)
        .await
        .unwrap();
    let denied = result
        .unwrap()
        .expect_err("the relay account changed the log");
    let code = denied
        .as_database_error()
        .and_then(|d| d.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>())
        .map(|m| m.number());
    assert_eq!(code, Some(1142), "{denied}"); // command denied to user
}

/// The broker's answer code when it closed the channel over `result`'s operation.
fn refusal<T: std::fmt::Debug>(result: Result<T, lapin::Error>) -> u16 {
    match result {
        Err(e) => match e.kind() {
            lapin::ErrorKind::ProtocolError(amqp) => amqp.get_id(),
            other => panic!("not refused by the broker but {other:?}"),
        },
        Ok(answer) => panic!("allowed: {answer:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_broker_account_declares_and_publishes_but_may_not_consume_or_reach_elsewhere() {
    let h = Harness::new().await;
    // An empty vhost: the relay's account declares the whole topology itself.
    let relay = h.start(h.config()).await;
    let head = h.append_mixed(10).await;
    eventually("every event to be confirmed", || async {
        h.checkpoint().await == head
    })
    .await;
    relay.stop().await;

    let conn = lapin::Connection::connect(&h.relay_url, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let parked = conn.create_channel().await.unwrap();
    let consumed = parked
        .basic_consume(
            event_store::relay::DEFAULT_DEAD_LETTER_QUEUE.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await;
    assert_eq!(refusal(consumed), 403, "consumed the parking queue");
    let other = conn.create_channel().await.unwrap();
    let declared = other
        .queue_declare(
            "elsewhere".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await;
    assert_eq!(refusal(declared), 403, "declared a queue of its own");
    let topic = conn.create_channel().await.unwrap();
    topic
        .confirm_select(lapin::options::ConfirmSelectOptions::default())
        .await
        .unwrap();
    let published = async {
        topic
            .basic_publish(
                "amq.topic".into(),
                "transaction.deposited".into(),
                lapin::options::BasicPublishOptions::default(),
                b"{}",
                BasicProperties::default(),
            )
            .await?
            .await
    }
    .await;
    assert_eq!(refusal(published), 403, "published to another exchange");

    // What it published is in the projector's queue.
    let admin = h.broker.connect().await;
    let channel = admin.create_channel().await.unwrap();
    let queue = channel
        .queue_declare(
            DEFAULT_QUEUE.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    assert_eq!(u64::from(queue.message_count()), head);
}

/// A downstream subscriber's account (API.md: subscribe with a queue of your own): it
/// declares `subscriber.<name>`, binds it to the events exchange and reads every event
/// there; it may not publish to the exchange, declare other names or read the projector's
/// queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_downstream_subscriber_reads_its_own_queue_but_may_not_publish() {
    let h = Harness::new().await;
    let relay = h.start(h.config()).await;
    // The relay declares the exchange before the subscriber binds to it.
    h.append_mixed(1).await;
    eventually("the first event to be confirmed", || async {
        h.checkpoint().await == 1
    })
    .await;
    let url = h
        .broker
        .account("subscriber", &Topology::default().subscriber_permissions())
        .await;
    let conn = lapin::Connection::connect(&url, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let own = format!("{SUBSCRIBER_QUEUE_PREFIX}audit-feed");
    let channel = conn.create_channel().await.unwrap();
    channel
        .queue_declare(
            own.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_bind(
            own.as_str().into(),
            DEFAULT_EXCHANGE.into(),
            "#".into(),
            lapin::options::QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let head = h.append_mixed(5).await;
    eventually("every event to be confirmed", || async {
        h.checkpoint().await == head
    })
    .await;
    relay.stop().await;
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while got.len() < 5 {
        assert!(tokio::time::Instant::now() < deadline, "got only {got:?}");
        let message = channel
            .basic_get(
                own.as_str().into(),
                lapin::options::BasicGetOptions { no_ack: true },
            )
            .await
            .unwrap();
        match message {
            Some(m) => {
                let event: serde_json::Value = serde_json::from_slice(&m.delivery.data).unwrap();
                got.push(event["position"].as_u64().unwrap());
            }
            None => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    assert_eq!(got, (2..=head).collect::<Vec<_>>());

    let publisher = conn.create_channel().await.unwrap();
    publisher
        .confirm_select(lapin::options::ConfirmSelectOptions::default())
        .await
        .unwrap();
    let published = async {
        publisher
            .basic_publish(
                DEFAULT_EXCHANGE.into(),
                "transaction.deposited".into(),
                lapin::options::BasicPublishOptions::default(),
                b"{}",
                BasicProperties::default(),
            )
            .await?
            .await
    }
    .await;
    assert_eq!(refusal(published), 403, "published to the events exchange");
    let other = conn.create_channel().await.unwrap();
    let declared = other
        .queue_declare(
            "not-a-subscriber-queue".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await;
    assert_eq!(
        refusal(declared),
        403,
        "declared a queue outside its prefix"
    );
    let projectors = conn.create_channel().await.unwrap();
    let consumed = projectors
        .basic_consume(
            DEFAULT_QUEUE.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await;
    assert_eq!(refusal(consumed), 403, "read the projector's queue");
}
