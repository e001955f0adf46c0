//! Anchors travel on the events exchange (ADR 0017) and so reach the projector's queue,
//! bound with `#`. They are not events of the log: the projector acknowledges and skips
//! them, never dead-letters them as unplaceable, and the views do not move.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first surprise

mod support;

use std::time::Duration;

use event_store::anchor::{AnchorBroker, AnchorConfig, AnchorSigner, AnchorStats};
use event_store::relay::Topology;
use hash_chain::SigningKey;
use support::{assert_verified, eventually, queue_depth, Env, Running, Scenario};
use tokio::sync::oneshot;

#[tokio::test]
async fn anchor_messages_are_acknowledged_and_skipped() {
    let env = Env::new().await;
    let mut scenario = Scenario::new(7);
    let mut events = env.append(&scenario.register(4)).await;
    events.extend(env.append(&scenario.activity(40)).await);
    let head = env.head().await;
    env.publisher().await.publish(&events).await;

    // The signer publishes its anchors through the same exchange, as in production.
    let stats = AnchorStats::default();
    let signer = AnchorSigner::new(
        env.db.store().await,
        SigningKey::generate().unwrap(),
        AnchorConfig {
            every_events: 10,
            every: Duration::from_millis(100),
            check_interval: Duration::from_millis(20),
            broker: Some(AnchorBroker {
                amqp_url: env.broker.url.clone(),
                source: "urn:example:ledger".into(),
                topology: Topology::default(),
                timeout: Duration::from_secs(10),
            }),
            ..AnchorConfig::default()
        },
    )
    .unwrap()
    .with_observer(stats.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    let signing = tokio::spawn(signer.run(async move {
        let _ = stopped.await;
    }));
    let anchors = head.div_ceil(10);
    eventually("the anchors to be published", || async {
        (stats.published() >= anchors).then_some(())
    })
    .await;

    let projector = Running::start(&env.config).await;
    env.wait_for_checkpoint(head).await;
    eventually("the queue to drain", || async {
        (env.queue_depth() == (0, 0)).then_some(())
    })
    .await;
    let ignored = projector.metric("projector_ignored_messages_total").await;
    assert!(
        ignored >= anchors as f64,
        "{ignored} anchor messages skipped"
    );
    assert_eq!(
        projector
            .metric("projector_unplaceable_messages_total")
            .await,
        0.0,
        "an anchor was taken for a broken event message"
    );
    let parking = Topology::default().queue.unwrap().dead_letter_queue;
    assert_eq!(queue_depth(&env.broker.vhost, &parking), (0, 0));
    assert_eq!(env.checkpoint().await, head);
    assert_verified(&env).await;

    projector.stop().await;
    let _ = stop.send(());
    signing.await.unwrap();
}
