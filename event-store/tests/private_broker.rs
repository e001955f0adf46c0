//! The test helper that gives a test a RabbitMQ node of its own: it runs beside the
//! machine's shared node, keeps durable messages across a stop and a start, and leaves
//! nothing behind.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first surprise

use event_store::relay::testing::PrivateBroker;
use lapin::options::{BasicGetOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::BasicProperties;

const QUEUE: &str = "kept";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_broker_keeps_durable_messages_across_a_restart_and_leaves_nothing_behind() {
    let mut broker = PrivateBroker::new().await;
    assert_ne!(broker.port(), 5672, "the machine's port");
    let node = broker.node().to_owned();

    let conn = broker.connect().await;
    let channel = conn.create_channel().await.unwrap();
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(QUEUE.into(), durable, FieldTable::default())
        .await
        .unwrap();
    channel.confirm_select(Default::default()).await.unwrap();
    let confirm = channel
        .basic_publish(
            "".into(),
            QUEUE.into(),
            BasicPublishOptions::default(),
            b"survives",
            BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirm.is_ack());

    broker.stop().await;
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", broker.port()))
            .await
            .is_err(),
        "the port still accepts after stop"
    );
    assert!(!conn.status().connected());

    broker.start().await;
    let channel = broker.connect().await.create_channel().await.unwrap();
    let message = channel
        .basic_get(QUEUE.into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("the message survived the restart");
    assert_eq!(message.delivery.data, b"survives");

    let dirs_before = node_dirs(&node);
    assert_eq!(dirs_before.len(), 1, "{dirs_before:?}");
    let port = broker.port();
    drop(broker);
    assert!(node_dirs(&node).is_empty(), "the node's directory remains");
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err(),
        "the node still listens after the drop"
    );
}

/// Directories under the temp dir named for `node`'s id.
fn node_dirs(node: &str) -> Vec<std::path::PathBuf> {
    let id = node
        .trim_start_matches("t-")
        .trim_end_matches("@localhost")
        .to_owned();
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(&id))
        .map(|e| e.path())
        .collect()
}
