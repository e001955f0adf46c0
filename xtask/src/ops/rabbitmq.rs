//! Compose's RabbitMQ: the broker accounts get the rights the code gives them.

use std::path::Path;

use anyhow::{ensure, Context};

/// `compose/rabbitmq/accounts.sh` gives the relay's, the projector's and a downstream
/// subscriber's broker accounts
/// exactly the rights `event_store::relay::Topology` says (which `cargo xtask dev` and
/// the tests give them too).
pub(super) fn broker_accounts(root: &Path) -> anyhow::Result<()> {
    let path = root.join("compose/rabbitmq/accounts.sh");
    let script =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let topology = event_store::relay::Topology::default();
    for (user, rights) in [
        (crate::broker::RELAY_USER, topology.relay_permissions()),
        (
            crate::broker::PROJECTOR_USER,
            topology.consumer_permissions(),
        ),
        (
            crate::broker::SUBSCRIBER_USER,
            topology.subscriber_permissions(),
        ),
    ] {
        let declared = format!(
            "user={user} \\\n    configure='{}' \\\n    write='{}' \\\n    read='{}'\n",
            rights.configure, rights.write, rights.read
        );
        ensure!(
            script.contains(&declared),
            "{} does not declare {user}'s permissions as the code has them:\n{declared}",
            path.display()
        );
    }
    Ok(())
}
