//! `cargo xtask bench views`: what query-api's view cache saves. The same read load
//! (64 keep-alive clients reading a hot set of users and their balances) against a
//! release query-api with the cache on and with `VIEW_CACHE_CAPACITY=0`, on a read
//! model rebuilt from a history of `--events` events, with the CPU each read costs
//! query-api and MariaDB. The projection does not move during the runs: the case the
//! cache is for (a moving checkpoint turns every entry over; the hit counters say how
//! often that happens in production). Writes `target/bench/views.json`.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;
use base64::Engine;
use serde::Serialize;
use sqlx::mysql::MySqlConnectOptions;

use super::client::Client;
use super::release::{build_release, spawn_release, wait_listening, BenchKeys};
use super::{median, percentile_ms, round2, write_report, BenchArgs, BenchDatabase, Window};
use crate::database::DbArgs;

const QUERY_ADDR: &str = "127.0.0.1:18082";
const CLIENTS: usize = 64;
/// Users the clients read, round robin.
const HOT_USERS: usize = 256;

#[derive(Serialize)]
struct Row {
    cache: &'static str,
    reads_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    query_api_cpu_us_per_read: f64,
    mariadbd_cpu_us_per_read: f64,
}

#[derive(Serialize)]
struct Report {
    benchmark: &'static str,
    cores: usize,
    events: u64,
    seconds: f64,
    runs: usize,
    results: Vec<Row>,
}

pub(super) async fn run(db: &DbArgs, args: &BenchArgs) -> anyhow::Result<()> {
    let root = crate::stack::workspace_root();
    build_release(&root, &["-p", "query-api", "-p", "projector"])?;
    let bench_db = BenchDatabase::create(db).await?;
    let url = crate::database::with_database(&db.database_url, &bench_db.name);
    let result = measure(&root, &bench_db.options, &url, args).await;
    bench_db.drop_it().await?;
    let report = result?;
    println!();
    println!(
        "views: {CLIENTS} clients reading {HOT_USERS} users and their balances, {} runs × {} s, median",
        args.runs, args.seconds
    );
    println!(
        "{:>6} {:>10} {:>8} {:>8} {:>16} {:>14}",
        "cache", "reads/s", "p50 ms", "p99 ms", "query-api µs/read", "mariadbd µs/read"
    );
    for r in &report.results {
        println!(
            "{:>6} {:>10.0} {:>8.2} {:>8.2} {:>16.0} {:>14.0}",
            r.cache,
            r.reads_per_s,
            r.p50_ms,
            r.p99_ms,
            r.query_api_cpu_us_per_read,
            r.mariadbd_cpu_us_per_read
        );
    }
    let path = write_report("views.json", &report)?;
    println!("written to {}", path.display());
    Ok(())
}

async fn measure(
    root: &Path,
    options: &MySqlConnectOptions,
    url: &str,
    args: &BenchArgs,
) -> anyhow::Result<Report> {
    let bench = super::history::Bench::prepare(options).await?;
    let (pool, key) = (&bench.pool, bench.master_key);
    let events = args.events.min(200_000);
    eprintln!("writing a history of {events} events and rebuilding the read model …");
    let head = super::history::write(&bench.store, &bench.keys, 2_000, events, &mut |_| {}).await?;
    super::history::rebuild(root, url).await?;
    let users: Vec<(String,)> = sqlx::query_as(
        "SELECT LOWER(CONCAT_WS('-', HEX(SUBSTR(user_id, 1, 4)), HEX(SUBSTR(user_id, 5, 2)), \
         HEX(SUBSTR(user_id, 7, 2)), HEX(SUBSTR(user_id, 9, 2)), HEX(SUBSTR(user_id, 11, 6)))) \
         FROM users_view ORDER BY user_id LIMIT ?",
    )
    .bind(HOT_USERS as u64)
    .fetch_all(pool)
    .await?;
    let users: Vec<String> = users.into_iter().map(|(u,)| u).collect();
    pool.close().await;

    let bench_keys = BenchKeys::new(root)?;
    let token = bench_keys.token.clone();
    let master = format!(
        "1:{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    );
    let mut results = Vec::new();
    for (cache, capacity) in [("on", "10000"), ("off", "0")] {
        let server = spawn_release(
            root,
            "query-api",
            &[
                ("QUERY_API_ADDR", QUERY_ADDR.into()),
                ("DATABASE_URL", url.into()),
                ("MASTER_KEYS", master.clone()),
                ("JWKS_FILE", bench_keys.jwks_file()),
                ("VIEW_CACHE_CAPACITY", capacity.into()),
            ],
        )?;
        let row = async {
            wait_listening(QUERY_ADDR, "query-api").await?;
            let processes = [
                ("query-api", server.id()),
                ("mariadbd", super::cpu::pid_of("mariadbd")),
            ];
            let mut rates = Vec::new();
            let mut latencies = Vec::new();
            let mut cpu = Vec::new();
            for _ in 0..args.runs {
                let meter = super::cpu::Meter::start(&processes);
                let sample = reads(&token, &users, args.seconds).await?;
                let used = meter.stop();
                let per_read = |name: &str| {
                    used.iter()
                        .find(|u| u.process == name)
                        .map_or(0.0, |u| u.cores * 1e6 / sample.per_s.max(1.0))
                };
                cpu.push((sample.per_s, per_read("query-api"), per_read("mariadbd")));
                rates.push(sample.per_s);
                latencies.extend(sample.latencies_us);
            }
            latencies.sort_unstable();
            let reads_per_s = median(rates);
            let (_, api_us, db_us) = cpu
                .iter()
                .copied()
                .min_by(|a, b| {
                    (a.0 - reads_per_s)
                        .abs()
                        .total_cmp(&(b.0 - reads_per_s).abs())
                })
                .unwrap_or_default();
            anyhow::Ok(Row {
                cache,
                reads_per_s: reads_per_s.round(),
                p50_ms: round2(percentile_ms(&latencies, 0.50)),
                p99_ms: round2(percentile_ms(&latencies, 0.99)),
                query_api_cpu_us_per_read: api_us.round(),
                mariadbd_cpu_us_per_read: db_us.round(),
            })
        }
        .await;
        drop(server);
        results.push(row?);
        // The port must be free before the next server binds it.
        let deadline = Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(QUERY_ADDR).await.is_ok() && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    drop(bench_keys);
    Ok(Report {
        benchmark: "views",
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        events: head,
        seconds: args.seconds,
        runs: args.runs,
        results,
    })
}

/// `CLIENTS` clients reading users and balances of `users`, round robin, for `seconds`.
async fn reads(token: &str, users: &[String], seconds: f64) -> anyhow::Result<super::Sample> {
    let window = Window::new(seconds);
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let users = users.to_vec();
        let token = token.to_owned();
        let window = window.clone();
        tasks.push(tokio::spawn(async move {
            let client = Client::connect(QUERY_ADDR)?;
            let mut lat = Vec::new();
            let mut i = c;
            while let Some(measured) = window.next() {
                let user = &users[(i / 2) % users.len()];
                let path = if i.is_multiple_of(2) {
                    format!("/api/v1/users/{user}")
                } else {
                    format!("/api/v1/users/{user}/balances")
                };
                i += 1;
                let t = Instant::now();
                let (status, answer) = client.send("GET", &path, &token, "").await?;
                if status != 200 {
                    bail!("GET {path}: {status} {answer}");
                }
                if measured && window.still_open() {
                    lat.push(t.elapsed().as_micros() as u64);
                }
            }
            anyhow::Ok(lat)
        }));
    }
    window.collect(tasks).await
}
