//! `cargo xtask bench commands`: deposits and transfers over HTTP against a release build
//! of command-api (real JWTs, real encryption of registrations, the real event store) at
//! N concurrent keep-alive clients, beside the raw one-row-commit limit of the same run.
//! Writes `target/bench/commands.json`.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context};
use serde::Serialize;
use sqlx::mysql::MySqlConnectOptions;

use super::append::raw_run;
use super::client::Client;
use super::release::{build_release, spawn_release, wait_listening, BenchKeys};
use super::{median, percentile_ms, round2, write_report, BenchArgs, BenchDatabase, Window};
use crate::database::DbArgs;

#[derive(Serialize)]
struct Row {
    concurrency: usize,
    raw_per_s: f64,
    commands_per_s: f64,
    ratio: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// CPU µs per command of command-api, mariadbd and the load generator (median run).
    cpu_us_per_command: CpuPerCommand,
}

#[derive(Serialize, Default, Clone, Copy)]
struct CpuPerCommand {
    command_api: f64,
    mariadbd: f64,
    load_generator: f64,
}

#[derive(Serialize)]
struct Report {
    benchmark: &'static str,
    seconds: f64,
    runs: usize,
    cores: usize,
    results: Vec<Row>,
}

pub(super) async fn run(db: &DbArgs, args: &BenchArgs) -> anyhow::Result<()> {
    let root = crate::stack::workspace_root();
    build_release(&root, &["-p", "command-api"])?;
    let bench_db = BenchDatabase::create(db).await?;
    let url = crate::database::with_database(&db.database_url, &bench_db.name);
    let result = measure(&root, &bench_db.options, &url, args).await;
    bench_db.drop_it().await?;
    let report = result?;
    println!();
    println!(
        "commands: deposits and transfers over HTTP, {} runs × {} s each, median",
        args.runs, args.seconds
    );
    println!(
        "{:>11} {:>12} {:>12} {:>7} {:>9} {:>9}",
        "concurrency", "raw/s", "commands/s", "ratio", "p50 ms", "p99 ms"
    );
    for r in &report.results {
        println!(
            "{:>11} {:>12.0} {:>12.0} {:>6.2}× {:>9.2} {:>9.2}",
            r.concurrency, r.raw_per_s, r.commands_per_s, r.ratio, r.p50_ms, r.p99_ms
        );
    }
    let path = write_report("commands.json", &report)?;
    println!("written to {}", path.display());
    Ok(())
}

async fn measure(
    root: &Path,
    options: &MySqlConnectOptions,
    url: &str,
    args: &BenchArgs,
) -> anyhow::Result<Report> {
    let keys = BenchKeys::new(root)?;
    let addr = "127.0.0.1:18081";
    let mut server = spawn_release(
        root,
        "command-api",
        &[
            ("COMMAND_API_ADDR", addr.into()),
            ("DATABASE_URL", url.into()),
            ("DEV_DIR", keys.dir.display().to_string()),
            ("JWKS_FILE", keys.jwks_file()),
        ],
    )?;
    wait_listening(addr, "command-api").await?;
    let result = measure_with(options, args, addr, &keys.token, server.id()).await;
    let _ = server.kill().await;
    result
}

/// Registers `n` users through the API and funds each with 1,000,000.00 EUR.
pub(crate) async fn funded_users(addr: &str, token: &str, n: usize) -> anyhow::Result<Vec<String>> {
    let mut users = Vec::with_capacity(n);
    let client = Client::connect(addr)?;
    for i in 0..n {
        let body = format!(
            r#"{{"email":"bench-{i}-{}@example.com","display_name":"Bench {i}"}}"#,
            uuid::Uuid::new_v4().simple()
        );
        let (status, answer) = client.send("POST", "/api/v1/users", token, &body).await?;
        if status != 201 {
            bail!("registering a user: {status} {answer}");
        }
        let v: serde_json::Value = serde_json::from_str(&answer)?;
        let id = v["user_id"].as_str().context("user_id")?.to_owned();
        let body =
            format!(r#"{{"type":"deposit","user_id":"{id}","amount":100000000,"currency":"EUR"}}"#);
        let (status, answer) = client
            .send("POST", "/api/v1/transactions", token, &body)
            .await?;
        if status != 201 {
            bail!("funding a user: {status} {answer}");
        }
        users.push(id);
    }
    Ok(users)
}

/// Client `c`'s `i`-th command: deposits and transfers between its two users, alternating.
pub(crate) fn command_body(users: &[String], c: usize, i: u64) -> String {
    let (me, other) = (&users[2 * c], &users[2 * c + 1]);
    if i.is_multiple_of(2) {
        format!(r#"{{"type":"deposit","user_id":"{me}","amount":100,"currency":"EUR"}}"#)
    } else {
        format!(
            r#"{{"type":"transfer","from_user_id":"{me}","to_user_id":"{other}","amount":1,"currency":"EUR"}}"#
        )
    }
}

/// `n` clients sending commands back to back for `seconds`.
pub(crate) async fn closed_loop(
    addr: &str,
    token: &str,
    users: &[String],
    n: usize,
    seconds: f64,
) -> anyhow::Result<super::Sample> {
    let window = Window::new(seconds);
    let mut tasks = Vec::new();
    for c in 0..n {
        let users = users.to_vec();
        let token = token.to_owned();
        let addr = addr.to_owned();
        let window = window.clone();
        tasks.push(tokio::spawn(async move {
            let client = Client::connect(&addr)?;
            let mut lat = Vec::new();
            let mut i = 0u64;
            while let Some(measured) = window.next() {
                let body = command_body(&users, c, i);
                let t = Instant::now();
                let (status, answer) = client
                    .send("POST", "/api/v1/transactions", &token, &body)
                    .await?;
                if status != 201 {
                    bail!("a command failed: {status} {answer}");
                }
                if measured && window.still_open() {
                    lat.push(t.elapsed().as_micros() as u64);
                }
                i += 1;
            }
            anyhow::Ok(lat)
        }));
    }
    window.collect(tasks).await
}

async fn measure_with(
    options: &MySqlConnectOptions,
    args: &BenchArgs,
    addr: &str,
    token: &str,
    server_pid: Option<u32>,
) -> anyhow::Result<Report> {
    let processes = [
        ("command-api", server_pid),
        ("mariadbd", super::cpu::pid_of("mariadbd")),
        ("load-generator", Some(std::process::id())),
    ];
    // Two users per client, funded, before anything is measured.
    let max = args.concurrency.iter().copied().max().unwrap_or(1);
    let users = funded_users(addr, token, max * 2).await?;

    let mut results = Vec::new();
    for &n in &args.concurrency {
        let mut raw = Vec::new();
        let mut commands = Vec::new();
        let mut latencies = Vec::new();
        let mut cpu = Vec::new();
        for _ in 0..args.runs {
            raw.push(raw_run(options, n, args.seconds).await?.per_s);
            let meter = super::cpu::Meter::start(&processes);
            let sample = closed_loop(addr, token, &users, n, args.seconds).await?;
            let used = meter.stop();
            let per_command = |name: &str| {
                used.iter()
                    .find(|u| u.process == name)
                    .map_or(0.0, |u| round2(u.cores * 1e6 / sample.per_s.max(1.0)))
            };
            let run_cpu = CpuPerCommand {
                command_api: per_command("command-api"),
                mariadbd: per_command("mariadbd"),
                load_generator: per_command("load-generator"),
            };
            eprintln!(
                "  concurrency {n:>3}: {:>8.0} commands/s; CPU µs per command: command-api {:.0}, \
                 mariadbd {:.0}, load generator {:.0}",
                sample.per_s, run_cpu.command_api, run_cpu.mariadbd, run_cpu.load_generator
            );
            cpu.push((sample.per_s, run_cpu));
            commands.push(sample.per_s);
            latencies.extend(sample.latencies_us);
        }
        latencies.sort_unstable();
        let raw_per_s = median(raw);
        let commands_per_s = median(commands);
        // The CPU split of the run whose rate was the median.
        let cpu_us_per_command = cpu
            .iter()
            .min_by(|a, b| {
                (a.0 - commands_per_s)
                    .abs()
                    .total_cmp(&(b.0 - commands_per_s).abs())
            })
            .map(|c| c.1)
            .unwrap_or_default();
        results.push(Row {
            concurrency: n,
            raw_per_s: raw_per_s.round(),
            commands_per_s: commands_per_s.round(),
            ratio: round2(commands_per_s / raw_per_s.max(1.0)),
            p50_ms: round2(percentile_ms(&latencies, 0.50)),
            p99_ms: round2(percentile_ms(&latencies, 0.99)),
            cpu_us_per_command,
        });
    }
    Ok(Report {
        benchmark: "commands",
        seconds: args.seconds,
        runs: args.runs,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        results,
    })
}
