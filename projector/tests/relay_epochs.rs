//! Relay terms never interleave (DESIGN.md §4, ADR 0013). Two relays, the projector and
//! appends that keep coming; the leader's lock connection is killed while it publishes.
//! The standby takes over with the next epoch at once, while the deposed leader, which
//! has not noticed yet, goes on publishing in its old term. What the projector accepts
//! (read from its `event projected` and `duplicate skipped` lines) must never go back to
//! an earlier term, the positions it applies must strictly increase, and the tables must
//! equal a rebuild.
//!
//! This file holds one test: it reads the projector's log lines through a subscriber of
//! the whole test process.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first surprise

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use event_store::relay::{RelayConfig, Topology};
use tokio::sync::watch;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

use support::{assert_verified, eventually, Env, RelayTask, Running, Scenario};

/// One message the projector accepted: `new` when it brought the position the projector
/// then applied, else a duplicate.
#[derive(Debug, Clone, Copy)]
struct Accepted {
    position: u64,
    epoch: u64,
    new: bool,
}

/// Every message the projector accepted, in order, from its debug lines.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Accepted>>>);

impl Capture {
    fn install() -> Self {
        let capture = Self::default();
        tracing::subscriber::set_global_default(
            tracing_subscriber::registry().with(capture.clone()),
        )
        .expect("the only subscriber of this test process");
        capture
    }

    fn accepted(&self) -> Vec<Accepted> {
        self.0.lock().unwrap().clone()
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    position: Option<u64>,
    epoch: Option<u64>,
}

impl Visit for Fields {
    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "position" => self.position = Some(value),
            "epoch" => self.epoch = Some(value),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        }
    }
}

impl<S: tracing::Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if !event.metadata().target().starts_with("projector") {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let new = match fields.message.as_str() {
            "event projected" => true,
            "duplicate skipped" => false,
            _ => return,
        };
        if let (Some(position), Some(epoch)) = (fields.position, fields.epoch) {
            self.0.lock().unwrap().push(Accepted {
                position,
                epoch,
                new,
            });
        }
    }
}

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_relay_cannot_interleave_its_term_with_the_next() {
    let capture = Capture::install();
    let env = Env::new().await;
    let relay_url = env
        .broker
        .account("relay", &Topology::default().relay_permissions())
        .await;
    let mut scenario = Scenario::new(21);
    env.append(&scenario.register(6)).await;

    // A leads. It looks at its lock and stores its checkpoint only once an hour, so once
    // the lock is gone it publishes on until the test stops it: a leader that has not
    // noticed yet, for as long as the test needs one.
    let a = RelayTask::start(
        &env,
        RelayConfig {
            check_interval: HOUR,
            checkpoint_interval: HOUR,
            ..RelayTask::config(relay_url.clone())
        },
    )
    .await;
    eventually("a to lead", || async { a.stats.is_leader().then_some(()) }).await;
    let b = RelayTask::start(&env, RelayTask::config(relay_url)).await;
    let projector = Running::start(&env.config).await;

    // Commands keep coming through all of it, from users of their own.
    let mut steady = Scenario::new(22);
    let mut stream = steady.register(6);
    stream.extend(steady.activity(20_000));
    let (stop_appending, appending) = watch::channel(false);
    let fault = async {
        eventually("the projector to follow a", || async {
            (env.checkpoint().await > 50).then_some(())
        })
        .await;
        let holder: i64 = sqlx::query_scalar("SELECT CAST(IS_USED_LOCK(?) AS SIGNED)")
            .bind(format!("relay:{}:main", env.db.name))
            .fetch_one(&env.pool)
            .await
            .unwrap();
        sqlx::query(&format!("KILL CONNECTION {holder}"))
            .execute(&env.pool)
            .await
            .unwrap();
        eventually("b to take over and publish", || async {
            (b.stats.is_leader() && b.stats.confirmed() > 0).then_some(())
        })
        .await;
        // b's first messages are in the queue; a goes on in its old term, after them.
        let by_a = a.stats.published();
        eventually("a to publish on after b began", || async {
            (a.stats.published() > by_a + 20).then_some(())
        })
        .await;
        let _ = stop_appending.send(true);
    };
    tokio::join!(env.append_until(&stream, &appending), fault);
    assert!(a.stats.is_leader(), "a noticed: the test proves nothing");
    a.stop().await;

    let head = env.head().await;
    env.wait_for_checkpoint(head).await;
    eventually("b to publish everything", || async {
        (b.stats.checkpoint() == head).then_some(())
    })
    .await;
    eventually("every message to be settled", || async {
        (env.queue_depth() == (0, 0)).then_some(())
    })
    .await;
    let stale = projector
        .metric("projector_stale_epoch_messages_total")
        .await;
    let epoch = projector.metric("projector_relay_epoch").await;
    projector.stop().await;
    b.stop().await;

    let accepted = capture.accepted();
    assert!(!accepted.is_empty(), "no accepted message was logged");
    // Terms never interleave: once a message of a term was accepted, nothing of an
    // earlier term is.
    if let Some(back) = accepted.windows(2).find(|w| w[1].epoch < w[0].epoch) {
        panic!(
            "accepted a message of term {} at position {} after one of term {} at {}",
            back[1].epoch, back[1].position, back[0].epoch, back[0].position
        );
    }
    let applied: Vec<u64> = accepted
        .iter()
        .filter(|a| a.new)
        .map(|a| a.position)
        .collect();
    assert!(
        applied.windows(2).all(|w| w[0] < w[1]),
        "the applied positions do not strictly increase"
    );
    assert_eq!(accepted.last().map(|a| a.epoch), Some(2));
    assert!(
        stale > 0.0,
        "the deposed leader's messages were not dropped"
    );
    assert_eq!(epoch, 2.0);
    let remembered: u64 =
        sqlx::query_scalar("SELECT epoch FROM relay_epochs_seen WHERE projection = 'main'")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(remembered, 2);
    assert_verified(&env).await;
}
