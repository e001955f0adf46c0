//! Finds the local MariaDB and RabbitMQ, starts them when they are installed but down,
//! and says what to install when they are not.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};

const MARIADB_ADDR: &str = "127.0.0.1:3306";
const RABBITMQ_ADDR: &str = "127.0.0.1:5672";

async fn answers(addr: &str) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr)).await,
        Ok(Ok(_))
    )
}

async fn wait_for(addr: &str, what: &str, limit: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + limit;
    while !answers(addr).await {
        if tokio::time::Instant::now() > deadline {
            bail!("{what} was started but does not answer on {addr} after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(())
}

pub async fn ensure_mariadb() -> anyhow::Result<()> {
    if answers(MARIADB_ADDR).await {
        return Ok(());
    }
    let daemon = "/usr/sbin/mariadbd";
    if !Path::new(daemon).exists() {
        bail!(
            "MariaDB does not answer on {MARIADB_ADDR} and is not installed \
             (no {daemon}): install it with `apt-get install mariadb-server`"
        );
    }
    println!("starting MariaDB ({daemon})");
    let status = std::process::Command::new("start-stop-daemon")
        .args(["--start", "--oknodo", "--background", "--exec", daemon])
        .status()
        .context("running start-stop-daemon for MariaDB")?;
    if !status.success() {
        bail!("start-stop-daemon could not start {daemon}: {status}");
    }
    wait_for(MARIADB_ADDR, "MariaDB", Duration::from_secs(60)).await
}

pub async fn ensure_rabbitmq() -> anyhow::Result<()> {
    if answers(RABBITMQ_ADDR).await {
        return Ok(());
    }
    let server = "/usr/sbin/rabbitmq-server";
    if !Path::new(server).exists() {
        bail!(
            "RabbitMQ does not answer on {RABBITMQ_ADDR} and is not installed \
             (no {server}): install it with `apt-get install rabbitmq-server`"
        );
    }
    println!("starting RabbitMQ ({server} -detached)");
    let status = std::process::Command::new(server)
        .arg("-detached")
        .status()
        .context("running rabbitmq-server -detached")?;
    if !status.success() {
        bail!("{server} -detached failed: {status}");
    }
    wait_for(RABBITMQ_ADDR, "RabbitMQ", Duration::from_secs(120)).await
}
