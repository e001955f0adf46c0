//! The broker accounts of the dev stack: the relay's, which may declare the topology and
//! publish, the projector's, which may only consume its queue (ADR 0014), and the one a
//! downstream subscriber gets, which may declare, bind and read `subscriber.*` queues and
//! publish nowhere. Their
//! rights come from `event_store::relay::Topology`, the one place that says them; they
//! are made with `rabbitmqctl`, as the vhosts are. The administrator (`AMQP_URL`,
//! `guest` by default) is used by nothing but the tools.

use anyhow::Context;
use event_store::relay::{Permissions, Topology};
use lapin::uri::AMQPUri;

use crate::e2e::rabbitmqctl;

/// The relay's account: declares the topology, publishes to `example.events`.
pub const RELAY_USER: &str = "example_relay";
/// The projector's account: consumes `queue.example.events`, nothing else.
pub const PROJECTOR_USER: &str = "example_projector";
/// A downstream subscriber's account: its own `subscriber.*` queues, bound to
/// `example.events`; publishes nowhere.
pub const SUBSCRIBER_USER: &str = "example_subscriber";

/// Where the relay and the projector connect, each as its own account.
pub struct BrokerAccounts {
    pub relay_url: String,
    pub projector_url: String,
    /// For downstream subscribers (no service of the stack uses it).
    pub subscriber_url: String,
}

/// Makes both accounts (or resets their passwords) and gives each its rights on the
/// vhost `admin_url` names. In development a password is its account's name, like the
/// MariaDB accounts `cargo xtask` makes.
pub fn prepare(admin_url: &str) -> anyhow::Result<BrokerAccounts> {
    let admin: AMQPUri = admin_url
        .parse()
        .map_err(|e| anyhow::anyhow!("AMQP_URL is not an amqp:// URL: {e}"))?;
    let vhost = admin.vhost.clone();
    let topology = Topology::default();
    let out = std::process::Command::new("rabbitmqctl")
        .args(["list_users", "--quiet", "--no-table-headers"])
        .output()
        .context("running rabbitmqctl list_users")?;
    let existing = String::from_utf8_lossy(&out.stdout).into_owned();
    let exists = |user: &str| {
        existing
            .lines()
            .any(|line| line.split_whitespace().next() == Some(user))
    };
    let url_of = |user: &str, rights: &Permissions| -> anyhow::Result<String> {
        if exists(user) {
            rabbitmqctl(&["change_password", user, user])?;
        } else {
            rabbitmqctl(&["add_user", user, user])?;
        }
        rabbitmqctl(&[
            "set_permissions",
            "-p",
            &vhost,
            user,
            &rights.configure,
            &rights.write,
            &rights.read,
        ])?;
        let mut uri = admin.clone();
        uri.authority.userinfo.username = user.to_owned();
        uri.authority.userinfo.password = user.to_owned();
        Ok(uri.to_string())
    };
    Ok(BrokerAccounts {
        relay_url: url_of(RELAY_USER, &topology.relay_permissions())?,
        projector_url: url_of(PROJECTOR_USER, &topology.consumer_permissions())?,
        subscriber_url: url_of(SUBSCRIBER_USER, &topology.subscriber_permissions())?,
    })
}
