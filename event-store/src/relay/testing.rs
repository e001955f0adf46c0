//! A RabbitMQ virtual host per test, deleted when the test ends (even on panic), so tests
//! run in parallel with the production names (`example.events`, ...) and never see each
//! other's messages. A test that must stop the broker itself starts a [`PrivateBroker`]
//! (`private_broker.rs`), a node of its own.
//!
//! [`TestBroker::account`] makes a broker account of the test's own with the rights a
//! service gets in production ([`crate::relay::Topology::relay_permissions`] and
//! [`crate::relay::Topology::consumer_permissions`]), so tests run the relay and the
//! projector with exactly those rights.
//!
//! The broker comes from `AMQP_URL` (default: the dev broker, guest on localhost); vhosts
//! and accounts are made with `rabbitmqctl` (from `RABBITMQCTL`, else `rabbitmqctl` on the PATH or in
//! `/usr/sbin`), which needs the rights of the broker's Erlang cookie: root on the dev
//! machine and in CI.

// Test support: a failed set-up should stop the test with its reason.
#![allow(clippy::expect_used)]

use std::sync::{Mutex, PoisonError};

use lapin::uri::AMQPUri;
use lapin::{Connection, ConnectionProperties};

use crate::relay::{Permissions, DEFAULT_AMQP_URL};

mod private_broker;

pub use private_broker::PrivateBroker;

/// The prefix of every vhost a test makes.
pub const TEST_VHOST_PREFIX: &str = "example_t_";

pub struct TestBroker {
    pub vhost: String,
    /// The broker URL with this test's vhost.
    pub url: String,
    user: String,
    /// The test's own accounts and their rights on the vhost.
    accounts: Mutex<Vec<(String, Permissions)>>,
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
            accounts: Mutex::default(),
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
        // A deleted vhost took the accounts' rights with it.
        let accounts = self
            .accounts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for (user, permissions) in &accounts {
            self.permit(user, permissions).await;
        }
    }

    /// A new broker account, deleted when the test ends, with `permissions` on this
    /// test's vhost (and nowhere else); its URL. `role` ends its name
    /// (`example_t_<uuid>_<role>`), letters, digits and `_` only.
    pub async fn account(&self, role: &str, permissions: &Permissions) -> String {
        let user = format!("{}_{role}", self.vhost);
        let password = uuid::Uuid::new_v4().simple().to_string();
        rabbitmqctl(&["add_user", &user, &password]).await;
        self.accounts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((user.clone(), permissions.clone()));
        self.permit(&user, permissions).await;
        let mut uri: AMQPUri = self.url.parse().expect("the vhost's URL");
        uri.authority.userinfo.username = user;
        uri.authority.userinfo.password = password;
        uri.to_string()
    }

    async fn permit(&self, user: &str, p: &Permissions) {
        rabbitmqctl(&[
            "set_permissions",
            "-p",
            &self.vhost,
            user,
            &p.configure,
            &p.write,
            &p.read,
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
        let accounts = self
            .accounts
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        for (user, _) in accounts.iter() {
            let _ = std::process::Command::new(rabbitmqctl_path())
                .args(["delete_user", user])
                .output();
        }
    }
}
