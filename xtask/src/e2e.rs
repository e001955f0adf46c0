//! The end-to-end test: the whole stack started as `cargo xtask dev` starts it, on a
//! database and a RabbitMQ vhost of its own (both removed afterwards), driven by
//! `ui/e2e/e2e.mjs` in real Chromium through the gateway; then, on the same stack,
//! schemathesis against both APIs (`schemathesis.rs`); then `e2e_oidc.rs`.

use std::process::Command;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::mysql::MySqlConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor};

use crate::database::DbArgs;
use crate::stack::Stack;

const VHOST_PREFIX: &str = "example_e2e_";
const COMMAND_API: &str = "http://127.0.0.1:8081";
const QUERY_API: &str = "http://127.0.0.1:8082";
/// The service accounts of the end-to-end stack: writer, relay, projector, reader.
const E2E_ACCOUNTS: [&str; 4] = [
    "example_e2e_w",
    "example_e2e_l",
    "example_e2e_p",
    "example_e2e_r",
];

/// What the stack's two suites found.
pub struct Outcome {
    /// The browser test and the OpenID Connect sign-in.
    pub e2e: anyhow::Result<()>,
    /// Schemathesis against both APIs, a token per role.
    pub api_fuzz: anyhow::Result<()>,
}

pub async fn run(db: &DbArgs) -> Outcome {
    let mut api_fuzz = Err(anyhow::anyhow!("not run: the stack did not come up"));
    let e2e = run_stack(db, &mut api_fuzz).await;
    Outcome { e2e, api_fuzz }
}

async fn run_stack(db: &DbArgs, api_fuzz: &mut anyhow::Result<()>) -> anyhow::Result<()> {
    let id = &uuid::Uuid::new_v4().simple().to_string()[..12];
    let name = format!("example_e2e_{id}");
    let owner = MySqlConnectOptions::from_str(&db.database_url)?;
    let account = |user: &str| format!("mysql://{user}:{user}_pw@127.0.0.1:3306/{name}");
    let e2e_db = DbArgs {
        database_url: crate::database::with_database(&db.database_url, &name),
        writer_url: account(E2E_ACCOUNTS[0]),
        relay_url: account(E2E_ACCOUNTS[1]),
        projector_url: account(E2E_ACCOUNTS[2]),
        reader_url: account(E2E_ACCOUNTS[3]),
    };
    rabbitmqctl(&["add_vhost", &name])?;
    rabbitmqctl(&["set_permissions", "-p", &name, "guest", ".*", ".*", ".*"])?;
    let amqp = format!("amqp://guest:guest@127.0.0.1:5672/{name}");

    let result = async {
        // Installed first: a missing Python or PyPI fails the run before the stack starts.
        let st = crate::schemathesis::ensure_installed()?;
        crate::database::prepare(&e2e_db).await?;
        crate::frontend::build_ui()?;
        let broker = crate::broker::prepare(&amqp)?;
        let services = crate::dev_services(&e2e_db, &broker)?;
        let mut stack = Stack::start(&services).await?;
        let outcome = async {
            stack
                .wait_ready(
                    &[
                        &format!("{COMMAND_API}/health/ready"),
                        &format!("{QUERY_API}/health/ready"),
                        "http://127.0.0.1:9101/health/ready",
                        "http://127.0.0.1:9102/health/ready",
                        "http://127.0.0.1:9103/health/ready",
                        "http://127.0.0.1:8080/gateway/health",
                    ],
                    Duration::from_secs(180),
                )
                .await?;
            // The alert rules and dashboards against what the services really export.
            crate::ops::check_live_metrics().await?;
            let browser = crate::frontend::e2e("http://127.0.0.1:8080");
            // The documents against what the services enforce, on the stack the browser
            // test left (its users and transactions give the stateful phase data).
            *api_fuzz = crate::schemathesis::run_all(
                &st,
                COMMAND_API,
                QUERY_API,
                crate::schemathesis::Phases::Test,
            );
            browser
        }
        .await;
        stack.stop().await;
        outcome?;
        // OpenID Connect sign-in, on the same database, once those ports are free again.
        crate::e2e_oidc::run(&e2e_db).await
    }
    .await;

    // Leave nothing behind, whatever happened.
    let _ = rabbitmqctl(&["delete_vhost", &name]);
    let mut conn = owner.database("").connect().await?;
    conn.execute(format!("DROP DATABASE IF EXISTS `{name}`").as_str())
        .await?;
    for user in E2E_ACCOUNTS {
        conn.execute(format!("DROP USER IF EXISTS '{user}'@'%'").as_str())
            .await?;
    }
    let _ = conn.close().await;
    result
}

pub(crate) fn rabbitmqctl(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("rabbitmqctl")
        .args(args)
        .output()
        .context("running rabbitmqctl (RabbitMQ's CLI, from the rabbitmq-server package)")?;
    if !out.status.success() {
        anyhow::bail!(
            "rabbitmqctl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Vhosts that interrupted end-to-end runs left behind. (Tests' own `example_t_*` vhosts
/// are not touched: nothing tells a stale one from one a parallel run is using.)
pub fn drop_stale_vhosts() {
    let Ok(out) = Command::new("rabbitmqctl")
        .args(["list_vhosts", "--quiet", "--no-table-headers"])
        .output()
    else {
        return;
    };
    for vhost in String::from_utf8_lossy(&out.stdout).lines() {
        let vhost = vhost.trim();
        if vhost.starts_with(VHOST_PREFIX) {
            let _ = rabbitmqctl(&["delete_vhost", vhost]);
        }
    }
}
