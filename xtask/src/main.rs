//! `cargo xtask`: the developer commands. Never shipped in a service binary.
//!
//! - `dev`: prepares MariaDB (accounts, databases, migrations) and runs the stack;
//!   `--seed` then loads a data set through the command API.
//! - `test`: checks the services, prepares the test account and runs every suite (Rust,
//!   UI, operations, end-to-end).
//! - `migrate`: applies the migration sets to `DATABASE_URL` and grants the writer.
//! - `bench`: measures the system against the machine's raw limits.
//! - `backup` / `restore`: a consistent dump with its binlog position, and a restore
//!   that is verified, checked against the anchors, cleared of erased keys and rebuilt.
//!
//! Modules, one concept each:
//!
//! | module | what |
//! |---|---|
//! | `services` | finds (and starts) the local MariaDB and RabbitMQ |
//! | `database` | the MariaDB accounts, databases, grants and migrations |
//! | `broker` | the relay's and the projector's broker accounts |
//! | `stack` | runs the services of `dev` with prefixed logs; stops them together |
//! | `frontend` | npm, the UI build and tests, the gateway, Chromium |
//! | `http` | the HTTP client settings for the services on loopback (reqwest) |
//! | `seed` | the `dev --seed` data set: its plan and the run that sends it |
//! | `e2e` | the end-to-end test of the whole stack in Chromium |
//! | `e2e_oidc` | the end-to-end test of OpenID Connect sign-in |
//! | `ops` | the operations checks: Prometheus, Grafana, compose, Dockerfiles, nginx, CI |
//! | `schemathesis` | Schemathesis against both APIs: in `test` on the end-to-end stack, and `api-fuzz` against a running one |
//! | `bench` | the benchmarks, each against its raw limit |
//! | `backup` | `backup`: a consistent dump with its binary-log position |
//! | `restore` | `restore`: into a fresh database, proved and made safe |
//! | `mariadb_tools` | MariaDB's command-line tools as backup and restore drive them |
//! | `sqlx_data` | `sqlx-prepare`: the query macros' `.sqlx/` data, made and checked |

mod backup;
mod bench;
mod broker;
mod database;
mod e2e;
mod e2e_oidc;
mod frontend;
mod http;
mod mariadb_tools;
mod ops;
mod restore;
mod schemathesis;
mod seed;
mod services;
mod sqlx_data;
mod stack;

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Developer commands for the ledger")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct DevArgs {
    #[command(flatten)]
    db: database::DbArgs,
    /// Once the stack is up, load a small realistic data set through the command API
    /// (seed.rs); a second run appends nothing.
    #[arg(long)]
    seed: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Prepare the databases and run the whole stack until Ctrl-C.
    Dev(DevArgs),
    /// Run every test against the real MariaDB and RabbitMQ.
    Test {
        #[command(flatten)]
        db: database::DbArgs,
        /// Extra arguments for the test runner (after `--`).
        #[arg(last = true)]
        rest: Vec<String>,
    },
    /// Apply the migrations and (re)create the service accounts with their grants.
    Migrate(database::DbArgs),
    /// Measure throughput and latency; results go to target/bench/.
    Bench {
        #[command(flatten)]
        db: database::DbArgs,
        #[command(flatten)]
        bench: bench::BenchArgs,
    },
    /// Back up the event store (and the keys, if apart) with the binlog position.
    Backup(backup::BackupArgs),
    /// Restore a backup into a new database: verified, checked against the anchors,
    /// erasures re-applied, optionally brought forward through binlogs and rebuilt.
    Restore(restore::RestoreArgs),
    /// Print a JWT that the dev stack accepts.
    Token {
        /// admin, user, service or auditor.
        #[arg(long)]
        role: platform::Role,
        /// The token's subject; a new UUID when not given.
        #[arg(long)]
        sub: Option<uuid::Uuid>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
    },
    /// The benchmark itself, run by `bench` in a release build.
    #[command(hide = true)]
    BenchRun {
        #[command(flatten)]
        db: database::DbArgs,
        #[command(flatten)]
        bench: bench::BenchArgs,
    },
    /// The operations checks alone (compose, Prometheus, Grafana, Dockerfiles, CI), as
    /// `test` runs them.
    #[command(hide = true)]
    OpsCheck,
    /// Remake `.sqlx/` (the query macros' data) from a freshly migrated database.
    SqlxPrepare {
        #[command(flatten)]
        db: database::DbArgs,
        /// Only compare with the committed `.sqlx/`; fail if they differ.
        #[arg(long)]
        check: bool,
    },
    /// Schemathesis against running APIs (a dev stack), a token per role.
    ApiFuzz {
        #[arg(long, default_value = "http://127.0.0.1:8081")]
        command_url: String,
        #[arg(long, default_value = "http://127.0.0.1:8082")]
        query_url: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("xtask: cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Dev(DevArgs { db, seed: seeding }) => {
            services::ensure_mariadb().await?;
            services::ensure_rabbitmq().await?;
            database::prepare(&db).await?;
            println!("database ready: {}", db.database_url_redacted());
            frontend::build_ui()?;
            let broker = broker::prepare(&amqp_url())?;
            println!(
                "downstream subscribers: {} (queues named subscriber.*, bound to example.events)",
                redacted_amqp(&broker.subscriber_url)
            );
            let services = dev_services(&db, &broker)?;
            if seeding {
                stack::run_then(services, &[seed::READY], seed::seed_dev_stack()).await?;
            } else {
                stack::run(services).await?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::SqlxPrepare { db, check } => {
            services::ensure_mariadb().await?;
            let ok = sqlx_data::prepare(&db.database_url, check).await?;
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Migrate(db) => {
            services::ensure_mariadb().await?;
            database::prepare(&db).await?;
            println!("migrated {}", db.database_url_redacted());
            Ok(ExitCode::SUCCESS)
        }
        Command::Test { db, rest } => {
            services::ensure_mariadb().await?;
            services::ensure_rabbitmq().await?;
            database::prepare_test_account(&db).await?;
            database::drop_stale_test_databases(&db).await?;
            e2e::drop_stale_vhosts();
            let mut passed = 0;
            let mut failed = Vec::new();
            let mut suite = |name: &'static str, ok: bool| {
                if ok {
                    passed += 1;
                } else {
                    failed.push(name);
                }
            };
            let sqlx_ok = match sqlx_data::prepare(&db.database_url, true).await {
                Ok(agrees) => agrees,
                Err(e) => {
                    eprintln!("xtask: {e:#}");
                    false
                }
            };
            suite("sqlx", sqlx_ok);
            suite("rust", run_rust_tests(&db, &rest)?);
            suite("ui", report(frontend::ui_unit_tests()));
            suite("ops", report(ops::run()));
            let stack = e2e::run(&db).await;
            suite("e2e", report(stack.e2e));
            suite("api-fuzz", report(stack.api_fuzz));
            println!();
            if !failed.is_empty() {
                println!("failed suites: {}", failed.join(", "));
            }
            println!("suites: {passed} passed, {} failed", failed.len());
            Ok(if failed.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Bench { db, bench } => {
            services::ensure_mariadb().await?;
            database::prepare_test_account(&db).await?;
            // Measure optimised code: run the benchmark from a release build.
            let mut cmd = std::process::Command::new(env_cargo());
            cmd.args([
                "run",
                "--release",
                "--quiet",
                "-p",
                "xtask",
                "--",
                "bench-run",
            ]);
            cmd.args(bench.to_args());
            cmd.env("DATABASE_URL", &db.database_url);
            let status = cmd.status().context("running the benchmark")?;
            Ok(if status.success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Backup(args) => {
            let manifest = backup::run(&args).await?;
            println!(
                "backed up {} ({} bytes){} in {:.1} s to {}{}",
                manifest.eventstore.database,
                manifest.eventstore.bytes,
                manifest.keys.as_ref().map_or_else(String::new, |k| format!(
                    " and {} ({} bytes)",
                    k.database, k.bytes
                )),
                manifest.seconds,
                args.out.display(),
                manifest.binlog.as_ref().map_or_else(
                    || "; binary log off: no point-in-time recovery".to_owned(),
                    |b| format!("; binlog {}:{}", b.file, b.position)
                ),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Restore(args) => {
            let report = restore::run(&args).await?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", restore::render(&report));
            }
            Ok(if report.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Token { role, sub, ttl } => {
            let keys = platform::DevKeys::load_or_create(&stack::workspace_root().join(".dev"))
                .context("loading the dev signing key in .dev/")?;
            let token = keys.mint(
                sub.unwrap_or_else(uuid::Uuid::now_v7),
                &[role],
                std::time::Duration::from_secs(ttl),
                platform::DEV_ISSUER,
                platform::DEV_AUDIENCE,
            )?;
            println!("{token}");
            Ok(ExitCode::SUCCESS)
        }
        Command::BenchRun { db, bench } => {
            bench::run(&db, &bench).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::OpsCheck => {
            ops::run()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::ApiFuzz {
            command_url,
            query_url,
        } => {
            let st = schemathesis::ensure_installed()?;
            schemathesis::run_all(&st, &command_url, &query_url, schemathesis::Phases::All)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn amqp_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

fn report(result: anyhow::Result<()>) -> bool {
    match result {
        Ok(()) => true,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            false
        }
    }
}

/// The processes of the stack (`cargo xtask dev`, and the end-to-end test), with their
/// settings.
fn dev_services(
    db: &database::DbArgs,
    broker: &broker::BrokerAccounts,
) -> anyhow::Result<Vec<stack::Service>> {
    // The services check tokens against `.dev/jwks.json`: make the dev key on first use.
    platform::DevKeys::load_or_create(&stack::workspace_root().join(".dev"))
        .context("making the dev signing key in .dev/")?;
    let service = |name: &'static str, package: &'static str, env: Vec<(&'static str, String)>| {
        stack::Service {
            name,
            package,
            features: "",
            program: None,
            args: Vec::new(),
            env,
            url: None,
        }
    };
    Ok(vec![
        stack::Service {
            url: Some("http://127.0.0.1:8081 (commands; GET /dev/token?role=admin)".into()),
            ..service(
                "command-api",
                "command-api",
                vec![
                    // Commands append as the writer: INSERT/SELECT on the event table.
                    ("DATABASE_URL", db.writer_url.clone()),
                    ("DEV_TOKENS", "true".into()),
                    // A developer's local webhook receiver (http, loopback) works.
                    ("WEBHOOK_ALLOW_INSECURE", "true".into()),
                ],
            )
        },
        stack::Service {
            features: "relay-bin",
            url: Some("http://127.0.0.1:9101/metrics".into()),
            ..service(
                "relay",
                "event-store",
                vec![
                    ("DATABASE_URL", db.relay_url.clone()),
                    // Declares the topology and publishes; consumes nothing.
                    ("AMQP_URL", broker.relay_url.clone()),
                    ("METRICS_ADDR", "127.0.0.1:9101".into()),
                ],
            )
        },
        stack::Service {
            url: Some("http://127.0.0.1:9102/metrics".into()),
            ..service(
                "projector",
                "projector",
                vec![
                    // The running projector writes only the read tables; `projector
                    // rebuild` and `park` are run by hand, as the owner.
                    ("DATABASE_URL", db.projector_url.clone()),
                    // Consumes its queue; may publish nothing.
                    ("AMQP_URL", broker.projector_url.clone()),
                    ("METRICS_ADDR", "127.0.0.1:9102".into()),
                ],
            )
        },
        stack::Service {
            features: "deliverer",
            url: Some("http://127.0.0.1:9103/metrics".into()),
            ..service(
                "webhooks",
                "webhooks",
                vec![
                    ("DATABASE_URL", db.database_url.clone()),
                    ("METRICS_ADDR", "127.0.0.1:9103".into()),
                    ("WEBHOOK_ALLOW_INSECURE", "true".into()),
                ],
            )
        },
        stack::Service {
            url: Some("http://127.0.0.1:8082 (views and audit)".into()),
            ..service(
                "query-api",
                "query-api",
                vec![("DATABASE_URL", db.reader_url.clone())],
            )
        },
        frontend::gateway()?,
    ])
}

/// An AMQP URL without its password, for a line on the terminal.
fn redacted_amqp(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => "(unparsable AMQP URL)".into(),
    }
}

fn env_cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

fn run_rust_tests(db: &database::DbArgs, rest: &[String]) -> anyhow::Result<bool> {
    let nextest = std::process::Command::new(env_cargo())
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    // nextest does not run doc tests: run them first, so that the runner's summary is
    // the last thing printed.
    let doc_ok = !nextest
        || std::process::Command::new(env_cargo())
            .args(["test", "--workspace", "--doc"])
            .env("DATABASE_URL", &db.database_url)
            .status()
            .context("running the doc tests")?
            .success();
    let mut cmd = std::process::Command::new(env_cargo());
    if nextest {
        cmd.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
    } else {
        cmd.args(["test", "--workspace", "--no-fail-fast"]);
    }
    cmd.args(rest);
    cmd.env("DATABASE_URL", &db.database_url);
    println!("running: {cmd:?}");
    let status = cmd.status().context("running the Rust tests")?;
    Ok(status.success() && doc_ok)
}
