//! A real broker outage. The test starts a RabbitMQ node of its own
//! (`event_store::relay::testing::PrivateBroker`), runs the relay (the library, as the
//! relay binary does) and the projector against it, and stops and starts that node while
//! appends go on. Every other test uses the machine's shared broker, which this one
//! never touches; the log and the read tables are on the test's own database.
//!
//! What must hold (DESIGN.md §4, §5): appends succeed with the broker down (the log is
//! the outbox); the relay and the projector report it (readiness) and recover by
//! themselves; afterwards nothing is lost: the projector's checkpoint is the log's head,
//! its tables equal a rebuild, and a downstream queue bound with its own pattern got
//! every matching event at least once, first seen in position order.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first surprise

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use event_store::relay::testing::PrivateBroker;
use event_store::relay::{Topology, DEFAULT_EXCHANGE};
use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use support::{assert_verified, eventually, Env, RelayTask, Running, Scenario};

const DOWNSTREAM_QUEUE: &str = "downstream.transactions";
const DOWNSTREAM_PATTERN: &str = "transaction.*";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_when_the_broker_stops_and_starts_again_under_appends() {
    let mut broker = PrivateBroker::new().await;
    let mut env = Env::new().await;
    // The projector uses the private node; the vhost Env made on the shared broker
    // stays unused.
    env.config.broker.amqp_url = broker.amqp_url().into();
    let downstream = Downstream::start(&broker).await;
    let relay = RelayTask::start(&env, RelayTask::config(broker.amqp_url())).await;
    let projector = Running::start(&env.config).await;
    let mut scenario = Scenario::new(11);

    // Before: events flow from the log through the broker to both consumers.
    env.append(&scenario.register(8)).await;
    env.append(&scenario.activity(60)).await;
    caught_up(&env, &downstream).await;
    assert!(relay.stats.is_leader() && relay.stats.is_broker_connected());
    assert_eq!(projector.get("/health/ready").await.0, 200);

    // The broker stops while commands keep coming, so events are in flight as it goes.
    // They come from users of their own: whatever prefix gets appended is a valid
    // history, and the main scenario's balances do not depend on it.
    let mut steady = Scenario::new(12);
    let mut stream = steady.register(6);
    stream.extend(steady.activity(5_000));
    let (outage_seen, stop_appending) = watch::channel(false);
    let outage = async {
        broker.stop().await;
        eventually(
            "the relay's readiness to report the broker gone",
            || async { (!relay.stats.is_broker_ready()).then_some(()) },
        )
        .await;
        eventually(
            "the projector's readiness to report the broker gone",
            || async {
                let (status, body) = projector.get("/health/ready").await;
                (status == 503 && body.contains("rabbitmq")).then_some(())
            },
        )
        .await;
        let _ = outage_seen.send(true);
    };
    tokio::join!(env.append_until(&stream, &stop_appending), outage);

    // Commands go on with the broker away; nothing can be confirmed meanwhile.
    let confirmed = relay_checkpoint(&env).await;
    env.append(&scenario.activity(100)).await;
    assert!(confirmed < env.head().await);
    assert_eq!(
        relay_checkpoint(&env).await,
        confirmed,
        "the relay's checkpoint moved with the broker down"
    );
    assert!(relay.stats.is_leader() && !relay.stats.is_broker_ready());
    assert_eq!(projector.get("/health/ready").await.0, 503);
    // And the relay says how far behind it is, measured from the log (lag alerts
    // depend on it while there is no session to measure it).
    let behind = env.head().await - confirmed;
    eventually("the relay's lag to cover the appends", || async {
        (relay.stats.lag_positions() >= behind).then_some(())
    })
    .await;

    // The broker comes back: both reconnect by themselves and catch up.
    broker.start().await;
    eventually("the relay's readiness to return", || async {
        (relay.stats.is_leader() && relay.stats.is_broker_connected()).then_some(())
    })
    .await;
    assert!(relay.stats.is_broker_ready());
    eventually("the projector's readiness to return", || async {
        (projector.get("/health/ready").await.0 == 200).then_some(())
    })
    .await;
    env.append(&scenario.activity(40)).await;
    caught_up(&env, &downstream).await;

    projector.stop().await;
    relay.stop().await;
    let deliveries = downstream.stop().await;
    assert_verified(&env).await;
    assert_eq!(
        first_seen(&deliveries),
        matching_positions(&env).await,
        "the downstream queue's first deliveries, against the log's matching events"
    );
}

/// The projector's and the relay's checkpoints reach the log's head, and the downstream
/// queue has delivered every matching event.
async fn caught_up(env: &Env, downstream: &Downstream) {
    let head = env.head().await;
    env.wait_for_checkpoint(head).await;
    eventually(&format!("the relay's checkpoint {head}"), || async {
        (relay_checkpoint(env).await == head).then_some(())
    })
    .await;
    let wanted = matching_positions(env).await;
    eventually(
        "the downstream queue to deliver every matching event",
        || {
            let seen = downstream.deliveries();
            let wanted = &wanted;
            async move { wanted.iter().all(|p| seen.contains(p)).then_some(()) }
        },
    )
    .await;
}

async fn relay_checkpoint(env: &Env) -> u64 {
    sqlx::query_scalar::<_, u64>("SELECT position FROM relay_checkpoints WHERE name = 'main'")
        .fetch_optional(&env.pool)
        .await
        .unwrap()
        .unwrap_or(0)
}

/// The positions of the log's events that `DOWNSTREAM_PATTERN` routes, in order.
async fn matching_positions(env: &Env) -> Vec<u64> {
    env.log_after(0)
        .await
        .iter()
        .filter(|e| matches_pattern(e.event_type.as_str()))
        .map(|e| e.position)
        .collect()
}

/// `transaction.*`: the word `transaction`, then exactly one word.
fn matches_pattern(event_type: &str) -> bool {
    event_type
        .strip_prefix("transaction.")
        .is_some_and(|rest| !rest.is_empty() && !rest.contains('.'))
}

/// Each position once, where it first arrived.
fn first_seen(deliveries: &[u64]) -> Vec<u64> {
    let mut seen = std::collections::HashSet::new();
    deliveries
        .iter()
        .copied()
        .filter(|p| seen.insert(*p))
        .collect()
}

/// A downstream service: a durable queue of its own bound to the events exchange with
/// its own pattern, consumed with acknowledgements, reconnecting whenever the broker
/// goes away (deliveries unacknowledged then come again: at least once).
struct Downstream {
    deliveries: Arc<Mutex<Vec<u64>>>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Downstream {
    /// Binds the queue (before any event is published, so it misses none) and starts
    /// consuming.
    async fn start(broker: &PrivateBroker) -> Self {
        let conn = broker.connect().await;
        let channel = conn.create_channel().await.unwrap();
        Topology::default().declare(&channel).await.unwrap();
        channel
            .queue_declare(
                DOWNSTREAM_QUEUE.into(),
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
                DOWNSTREAM_QUEUE.into(),
                DEFAULT_EXCHANGE.into(),
                DOWNSTREAM_PATTERN.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let _ = conn.close(200, "bound".into()).await;

        let deliveries = Arc::new(Mutex::new(Vec::new()));
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(consume_until_stopped(
            broker.amqp_url(),
            deliveries.clone(),
            stopped,
        ));
        Self {
            deliveries,
            stop,
            task,
        }
    }

    /// The position of every delivery so far, in arrival order, repeats included.
    fn deliveries(&self) -> Vec<u64> {
        self.deliveries.lock().unwrap().clone()
    }

    async fn stop(self) -> Vec<u64> {
        let _ = self.stop.send(true);
        self.task.await.unwrap();
        let deliveries = self.deliveries.lock().unwrap();
        deliveries.clone()
    }
}

async fn consume_until_stopped(
    url: String,
    deliveries: Arc<Mutex<Vec<u64>>>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => return,
            () = consume(&url, &deliveries) => {}
        }
        // The broker is away: a polling period before the next attempt.
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => return,
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}

/// Consumes until the connection fails.
async fn consume(url: &str, deliveries: &Mutex<Vec<u64>>) {
    let Ok(conn) = Connection::connect(url, ConnectionProperties::default()).await else {
        return;
    };
    let Ok(channel) = conn.create_channel().await else {
        return;
    };
    let Ok(mut consumer) = channel
        .basic_consume(
            DOWNSTREAM_QUEUE.into(),
            "downstream".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
    else {
        return;
    };
    while let Some(Ok(delivery)) = consumer.next().await {
        let body: serde_json::Value =
            serde_json::from_slice(&delivery.data).expect("a JSON CloudEvent");
        let position = body["position"].as_u64().expect("a position");
        deliveries.lock().unwrap().push(position);
        if delivery.ack(BasicAckOptions::default()).await.is_err() {
            return;
        }
    }
}
