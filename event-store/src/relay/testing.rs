//! A RabbitMQ virtual host per test, deleted when the test ends (even on panic), so tests
//! run in parallel with the production names (`example.events`, ...) and never see each
//! other's messages. A test that must stop the broker itself starts a [`PrivateBroker`]
//! (`private_broker.rs`), a node of its own.
//!
//! The broker comes from `AMQP_URL` (default: the dev broker, guest on localhost); vhosts
//! are made with `rabbitmqctl` (from `RABBITMQCTL`, else `rabbitmqctl` on the PATH or in
//! `/usr/sbin`), which needs the rights of the broker's Erlang cookie: root on the dev
//! machine and in CI.

// Test support: a failed set-up should stop the test with its reason.
#![allow(clippy::expect_used)]

use lapin::uri::AMQPUri;
use lapin::{Connection, ConnectionProperties};

use crate::relay::DEFAULT_AMQP_URL;

mod private_broker;

pub use private_broker::PrivateBroker;

/// The prefix of every vhost a test makes.
pub const TEST_VHOST_PREFIX: &str = "example_t_";

pub struct TestBroker {
    pub vhost: String,
    /// The broker URL with this test's vhost.
    pub url: String,
    user: String,
}

impl TestBroker {
    /// A new, empty vhost on which the URL's user may do everything.
    pub async fn new() -> Self {
        let base = std::env::var("AMQP_URL").unwrap_or_else(|_| DEFAULT_AMQP_URL.into());
        let mut uri: AMQPUri = base.parse().expect("AMQP_URL is an amqp:// URL");
        let vhost = format!("{TEST_VHOST_PREFIX}{}", uuid::Uuid::new_v4().simple());
        uri.vhost = vhost.clone();
        let broker = Self {
            vhost,
            url: uri.to_string(),
            user: uri.authority.userinfo.username,
        };
        broker.restore().await;
        broker
    }

    /// Takes the vhost away: the broker closes every connection to it and refuses new
    /// ones, and everything in it is gone; as close to "the broker is down" as a test
    /// sharing the broker can get.
    pub async fn outage(&self) {
        rabbitmqctl(&["delete_vhost", &self.vhost]).await;
    }

    /// Makes the (empty) vhost again, as after [`Self::outage`] or at the start.
    pub async fn restore(&self) {
        rabbitmqctl(&["add_vhost", &self.vhost]).await;
        rabbitmqctl(&[
            "set_permissions",
            "-p",
            &self.vhost,
            &self.user,
            ".*",
            ".*",
            ".*",
        ])
        .await;
    }

    /// A connection to this test's vhost.
    pub async fn connect(&self) -> Connection {
        Connection::connect(&self.url, ConnectionProperties::default())
            .await
            .expect("connect to the test vhost")
    }
}

fn rabbitmqctl_path() -> String {
    if let Ok(path) = std::env::var("RABBITMQCTL") {
        return path;
    }
    let sbin = "/usr/sbin/rabbitmqctl";
    if std::path::Path::new(sbin).exists() {
        sbin.into()
    } else {
        "rabbitmqctl".into()
    }
}

async fn rabbitmqctl(args: &[&str]) {
    let output = tokio::process::Command::new(rabbitmqctl_path())
        .args(args)
        .output()
        .await
        .expect("run rabbitmqctl (set RABBITMQCTL if it is not in /usr/sbin)");
    assert!(
        output.status.success(),
        "rabbitmqctl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        let _ = std::process::Command::new(rabbitmqctl_path())
            .args(["delete_vhost", &self.vhost])
            .output();
    }
}
