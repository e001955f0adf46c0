//! `cargo xtask bench pipeline`: the read side, beside the raw limits of the same run.
//!
//! On a database and a RabbitMQ vhost of its own (both removed afterwards), with release
//! builds of every service:
//!
//! 1. **limits**: RabbitMQ persistent publishes with confirms, a window of 256 in flight,
//!    into the same quorum-queue topology the relay declares; MariaDB multi-row INSERTs of
//!    100 rows on one connection;
//! 2. **rebuild**: a valid history of `--events` events (decided by `ledger`, written
//!    through the event store, see `history.rs`), then `projector rebuild` over it;
//! 3. **relay**: `--live-events` more events; the relay, started with its checkpoint at the
//!    old head, publishes them; events/s from its first to its last checkpoint move;
//! 4. **projector live**: the projector, its checkpoint at the old head, drains that
//!    backlog from `queue.example.events`;
//! 5. **visible**: command-api and query-api beside the running relay and projector; the
//!    peak command rate (64 clients, closed loop), then half of it, paced, each command
//!    followed by a read of the user's balances with `X-Min-Position` = the command's
//!    position: command-to-visible latency is from sending the command to that answer.
//!
//! Prints a table and writes `target/bench/pipeline.json`.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use event_store::relay::Topology;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeleteOptions};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde::Serialize;
use sqlx::mysql::MySqlConnectOptions;
use sqlx::MySqlPool;

use super::client::Client;
use super::commands::{closed_loop, command_body, funded_users};
use super::release::{build_release, spawn_release, wait_listening, BenchKeys};
use super::{median, percentile_ms, round2, write_report, BenchArgs, BenchDatabase};
use crate::database::DbArgs;

const COMMAND_ADDR: &str = "127.0.0.1:18081";
const QUERY_ADDR: &str = "127.0.0.1:18082";
const RELAY_METRICS: &str = "127.0.0.1:19101";
const PROJECTOR_METRICS: &str = "127.0.0.1:19102";
/// Clients of the peak load (as `bench commands` at its top concurrency).
const CLIENTS: usize = 64;
/// Clients of the paced load: each waits for its command to become visible before its
/// next one, so reaching half the peak rate at tens of ms per round takes more of them.
const PACED_CLIENTS: usize = 256;
/// One command in this many is probed for visibility.
const PROBE_EVERY: u64 = 8;

#[derive(Serialize, Default)]
struct Report {
    benchmark: &'static str,
    cores: usize,
    /// Events in the log the rebuild replayed.
    events: u64,
    live_events: u64,
    broker_limit_per_s: f64,
    mariadb_batched_rows_per_s: f64,
    rebuild_per_s: f64,
    rebuild_seconds: f64,
    relay_per_s: f64,
    relay_ratio: f64,
    projector_live_per_s: f64,
    command_peak_per_s: f64,
    visible_load_per_s: f64,
    visible_p50_ms: f64,
    visible_p99_ms: f64,
    visible_samples: usize,
    /// The same commands' own latency (send to answer), at the paced load.
    command_p50_ms: f64,
    command_p99_ms: f64,
    /// Command-to-visible latency at a tenth of the peak command rate: the pipeline's own
    /// latency when the machine is not busy.
    light_load_per_s: f64,
    light_visible_p50_ms: f64,
    light_visible_p99_ms: f64,
    /// CPU µs per command of each process during the paced run (the whole pipeline).
    paced_cpu_us_per_command: Vec<(String, f64)>,
    /// Peak resident memory of each process, MiB.
    memory_mib: Vec<(String, f64)>,
}

pub(super) async fn run(db: &DbArgs, args: &BenchArgs) -> anyhow::Result<()> {
    let root = crate::stack::workspace_root();
    build(&root)?;
    let bench_db = BenchDatabase::create(db).await?;
    let url = crate::database::with_database(&db.database_url, &bench_db.name);
    let vhost = bench_db.name.clone();
    crate::e2e::rabbitmqctl(&["add_vhost", &vhost])?;
    crate::e2e::rabbitmqctl(&["set_permissions", "-p", &vhost, "guest", ".*", ".*", ".*"])?;
    let amqp = format!("amqp://guest:guest@127.0.0.1:5672/{vhost}");
    let result = measure(&root, &bench_db.options, &url, &amqp, args).await;
    let _ = crate::e2e::rabbitmqctl(&["delete_vhost", &vhost]);
    bench_db.drop_it().await?;
    let report = result?;
    print(&report);
    let path = write_report("pipeline.json", &report)?;
    println!("written to {}", path.display());
    Ok(())
}

fn build(root: &Path) -> anyhow::Result<()> {
    build_release(
        root,
        &["-p", "command-api", "-p", "query-api", "-p", "projector"],
    )?;
    build_release(
        root,
        &[
            "-p",
            "event-store",
            "--features",
            "relay-bin",
            "--bin",
            "relay",
        ],
    )
}

fn print(r: &Report) {
    println!();
    println!(
        "pipeline: {} events in the log, {} live",
        r.events, r.live_events
    );
    let rows = [
        (
            "RabbitMQ confirmed publish, window 256",
            r.broker_limit_per_s,
            "/s",
        ),
        (
            "MariaDB multi-row INSERT, 100 rows",
            r.mariadb_batched_rows_per_s,
            "rows/s",
        ),
        ("relay", r.relay_per_s, "events/s"),
        (
            "projector live (backlog)",
            r.projector_live_per_s,
            "events/s",
        ),
        ("projector rebuild", r.rebuild_per_s, "events/s"),
        ("commands, peak at 64 clients", r.command_peak_per_s, "/s"),
        (
            "commands, paced for the visibility run",
            r.visible_load_per_s,
            "/s",
        ),
    ];
    for (what, value, unit) in rows {
        println!("{what:<42} {value:>12.0} {unit}");
    }
    println!(
        "relay / broker limit: {:.2}×; command-to-visible p50 {:.2} ms, p99 {:.2} ms ({} samples)",
        r.relay_ratio, r.visible_p50_ms, r.visible_p99_ms, r.visible_samples
    );
    println!(
        "the same commands answered: p50 {:.2} ms, p99 {:.2} ms",
        r.command_p50_ms, r.command_p99_ms
    );
    println!(
        "at {:.0} commands/s (a tenth of the peak): command-to-visible p50 {:.2} ms, p99 {:.2} ms",
        r.light_load_per_s, r.light_visible_p50_ms, r.light_visible_p99_ms
    );
    let split: Vec<String> = r
        .paced_cpu_us_per_command
        .iter()
        .map(|(p, us)| format!("{p} {us:.0}"))
        .collect();
    println!("CPU µs per command, paced run: {}", split.join(", "));
    for (process, mib) in &r.memory_mib {
        println!("peak memory {process:<12} {mib:>8.1} MiB");
    }
}

async fn measure(
    root: &Path,
    options: &MySqlConnectOptions,
    url: &str,
    amqp: &str,
    args: &BenchArgs,
) -> anyhow::Result<Report> {
    let mut report = Report {
        benchmark: "pipeline",
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        ..Report::default()
    };
    let bench = super::history::Bench::prepare(options).await?;
    let (pool, store, keys) = (&bench.pool, &bench.store, &bench.keys);

    eprintln!("limits …");
    report.broker_limit_per_s = broker_limit(amqp, 50_000).await?.round();
    report.mariadb_batched_rows_per_s = super::append::batched_run(options, 100, args.seconds)
        .await?
        .round();

    eprintln!("writing a history of {} events …", args.events);
    let users = (args.events / 500).clamp(200, 5_000);
    let progress = super::history::progress_bar(args.events)?;
    let head = super::history::write(store, keys, users, args.events, &mut |n| {
        progress.set_position(n as u64);
    })
    .await?;
    progress.finish();
    report.events = head;

    eprintln!("rebuild × {} …", args.runs);
    let mut rebuilds = Vec::new();
    for _ in 0..args.runs {
        let t = Instant::now();
        super::history::rebuild(root, url).await?;
        rebuilds.push(t.elapsed().as_secs_f64());
    }
    report.rebuild_seconds = round2(median(rebuilds));
    report.rebuild_per_s = (head as f64 / report.rebuild_seconds.max(1e-9)).round();
    if checkpoint(pool).await? != head {
        bail!("the rebuild did not reach the head of the log");
    }

    eprintln!(
        "relay and projector over {} live events …",
        args.live_events
    );
    let live_users = (args.live_events / 200).clamp(100, 2_000);
    let new_head =
        super::history::write(store, keys, live_users, args.live_events, &mut |_| {}).await?;
    report.live_events = new_head - head;
    sqlx::query(
        "INSERT INTO relay_checkpoints (name, position, updated_at) \
         VALUES (?, ?, UTC_TIMESTAMP(6))",
    )
    .bind(event_store::relay::DEFAULT_RELAY_NAME)
    .bind(head)
    .execute(pool)
    .await?;
    let relay = spawn_release(
        root,
        "relay",
        &[
            ("DATABASE_URL", url.into()),
            ("AMQP_URL", amqp.into()),
            ("METRICS_ADDR", RELAY_METRICS.into()),
            // The relay alone: its anchor signer would first walk the whole history
            // (bench export measures it) on the same two cores.
            ("ANCHOR_SIGNING", "false".into()),
        ],
    )?;
    report.relay_per_s = rate_until(pool, RELAY_CHECKPOINT, head, new_head).await?;
    report.relay_ratio = round2(report.relay_per_s / report.broker_limit_per_s.max(1.0));
    let projector = spawn_release(
        root,
        "projector",
        &[
            ("DATABASE_URL", url.into()),
            ("AMQP_URL", amqp.into()),
            ("METRICS_ADDR", PROJECTOR_METRICS.into()),
        ],
    )?;
    report.projector_live_per_s = rate_until(pool, PROJECTOR_CHECKPOINT, head, new_head).await?;

    eprintln!("command-to-visible latency …");
    let mut processes = vec![("relay", relay.id()), ("projector", projector.id())];
    let visible = visibility(root, url, args, &processes).await;
    let visible = match visible {
        Ok((v, pids)) => {
            processes.extend(pids);
            v
        }
        Err(e) => return Err(e),
    };
    report.command_peak_per_s = visible.peak.round();
    report.visible_load_per_s = visible.paced.round();
    report.visible_p50_ms = round2(percentile_ms(&visible.latencies_us, 0.50));
    report.visible_p99_ms = round2(percentile_ms(&visible.latencies_us, 0.99));
    report.visible_samples = visible.latencies_us.len();
    report.paced_cpu_us_per_command = visible.cpu_us_per_command.clone();
    report.light_load_per_s = visible.light.per_s.round();
    report.light_visible_p50_ms = round2(percentile_ms(&visible.light.visible_us, 0.50));
    report.light_visible_p99_ms = round2(percentile_ms(&visible.light.visible_us, 0.99));
    report.command_p50_ms = round2(percentile_ms(&visible.command_us, 0.50));
    report.command_p99_ms = round2(percentile_ms(&visible.command_us, 0.99));
    report.memory_mib = processes
        .into_iter()
        .filter_map(|(name, pid)| Some((name.to_owned(), peak_memory_mib(pid?)?)))
        .collect();
    drop((relay, projector, visible.servers));
    pool.close().await;
    Ok(report)
}

/// Confirmed persistent publishes per second of event-sized messages, `WINDOW` in flight,
/// through the relay's own topology (topic exchange, quorum queue bound `#`).
async fn broker_limit(amqp: &str, messages: usize) -> anyhow::Result<f64> {
    const WINDOW: usize = 256;
    let conn = Connection::connect(amqp, ConnectionProperties::default())
        .await
        .context("connecting to RabbitMQ")?;
    let channel = conn.create_channel().await?;
    let topology = Topology::with_suffix(".limit");
    topology.declare(&channel).await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let body = serde_json::json!({
        "specversion": "1.0", "id": uuid::Uuid::now_v7(), "source": "urn:example:ledger",
        "type": "transaction.deposited", "subject": format!("user-{}", uuid::Uuid::now_v7()),
        "time": "2026-12-01T00:00:00.000000Z", "datacontenttype": "application/json",
        "position": 1, "streamversion": 1,
        "correlationid": uuid::Uuid::now_v7(), "causationid": uuid::Uuid::now_v7(),
        "data": {"transaction_id": uuid::Uuid::now_v7(), "user_id": uuid::Uuid::now_v7(),
                 "amount": 12345, "currency": "EUR"},
    })
    .to_string();
    let properties = BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/cloudevents+json".into());
    let mut in_flight = std::collections::VecDeque::with_capacity(WINDOW);
    let started = Instant::now();
    for _ in 0..messages {
        let confirm = channel
            .basic_publish(
                topology.exchange.as_str().into(),
                "transaction.deposited".into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                body.as_bytes(),
                properties.clone(),
            )
            .await?;
        in_flight.push_back(confirm);
        if in_flight.len() > WINDOW {
            if let Some(oldest) = in_flight.pop_front() {
                if !oldest.await?.is_ack() {
                    bail!("the broker nacked a publish");
                }
            }
        }
    }
    for confirm in in_flight {
        if !confirm.await?.is_ack() {
            bail!("the broker nacked a publish");
        }
    }
    let per_s = messages as f64 / started.elapsed().as_secs_f64();
    if let Some(queue) = &topology.queue {
        for name in [&queue.name, &queue.dead_letter_queue] {
            channel
                .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
                .await?;
        }
    }
    let _ = conn.close(200, "done".into()).await;
    Ok(per_s)
}

// The default names: `event_store::relay::DEFAULT_RELAY_NAME`, the projector's `main`.
const RELAY_CHECKPOINT: &str = "SELECT position FROM relay_checkpoints WHERE name = 'main'";
const PROJECTOR_CHECKPOINT: &str = "SELECT position FROM checkpoints WHERE projection = 'main'";

async fn checkpoint(pool: &MySqlPool) -> anyhow::Result<u64> {
    read_position(pool, PROJECTOR_CHECKPOINT).await
}

async fn read_position(pool: &MySqlPool, sql: &str) -> anyhow::Result<u64> {
    let row: Option<(u64,)> = sqlx::query_as(sql).fetch_optional(pool).await?;
    Ok(row.map_or(0, |r| r.0))
}

/// Events/s of a checkpoint moving from past `from` to `to`: from the first time it is
/// seen beyond `from` to the first time it is seen at `to`, over the events in between.
async fn rate_until(pool: &MySqlPool, sql: &str, from: u64, to: u64) -> anyhow::Result<f64> {
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut first: Option<(Instant, u64)> = None;
    loop {
        let at = read_position(pool, sql).await?;
        let now = Instant::now();
        if at > from && first.is_none() {
            first = Some((now, at));
        }
        if at >= to {
            let (t0, p0) = first.unwrap_or((now, from));
            let secs = now.duration_since(t0).as_secs_f64();
            // Moving in one observation: too fast to time at this resolution.
            if secs <= 0.0 {
                bail!("{sql}: reached {to} before a rate could be timed; use more --live-events");
            }
            return Ok(((to - p0) as f64 / secs).round());
        }
        if now > deadline {
            bail!("{sql}: stuck at {at}, expected {to}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

struct Visibility {
    peak: f64,
    paced: f64,
    latencies_us: Vec<u64>,
    command_us: Vec<u64>,
    cpu_us_per_command: Vec<(String, f64)>,
    /// The run at a tenth of the peak.
    light: Paced,
    servers: Vec<tokio::process::Child>,
}

async fn visibility(
    root: &Path,
    url: &str,
    args: &BenchArgs,
    pipeline: &[(&'static str, Option<u32>)],
) -> anyhow::Result<(Visibility, Vec<(&'static str, Option<u32>)>)> {
    let keys = BenchKeys::new(root)?;
    let token = keys.token.clone();
    let common = [
        ("DATABASE_URL", url.to_owned()),
        ("DEV_DIR", keys.dir.display().to_string()),
        ("JWKS_FILE", keys.jwks_file()),
    ];
    let mut command_env = common.to_vec();
    command_env.push(("COMMAND_API_ADDR", COMMAND_ADDR.into()));
    let mut query_env = common.to_vec();
    query_env.push(("QUERY_API_ADDR", QUERY_ADDR.into()));
    let command_api = spawn_release(root, "command-api", &command_env)?;
    let query_api = spawn_release(root, "query-api", &query_env)?;
    let mut watched = vec![
        ("command-api", command_api.id()),
        ("query-api", query_api.id()),
    ];
    watched.extend_from_slice(pipeline);
    watched.extend([
        ("mariadbd", super::cpu::pid_of("mariadbd")),
        ("rabbitmq", super::cpu::pid_of("beam.smp")),
        ("load-generator", Some(std::process::id())),
    ]);
    let result = async {
        wait_listening(COMMAND_ADDR, "command-api").await?;
        wait_listening(QUERY_ADDR, "query-api").await?;
        let users = funded_users(COMMAND_ADDR, &token, PACED_CLIENTS * 2).await?;
        let peak = closed_loop(COMMAND_ADDR, &token, &users, CLIENTS, args.seconds)
            .await?
            .per_s;
        let mut latencies = Vec::new();
        let mut command_latencies = Vec::new();
        let mut paced = Vec::new();
        let mut cpu = Vec::new();
        for _ in 0..args.runs {
            let meter = super::cpu::Meter::start(&watched);
            let run = paced_run(&token, &users, peak / 2.0, args.seconds).await?;
            let used = meter.stop();
            cpu.push((
                run.per_s,
                used.iter()
                    .map(|u| {
                        (
                            u.process.to_owned(),
                            round2(u.cores * 1e6 / run.per_s.max(1.0)),
                        )
                    })
                    .collect::<Vec<_>>(),
            ));
            paced.push(run.per_s);
            latencies.extend(run.visible_us);
            command_latencies.extend(run.command_us);
        }
        latencies.sort_unstable();
        command_latencies.sort_unstable();
        // The floor: the same, at a tenth of the peak.
        let light = paced_run(&token, &users, peak / 10.0, args.seconds).await?;
        let paced = median(paced);
        // The CPU split of the run whose rate was the median.
        let cpu = cpu
            .into_iter()
            .min_by(|a, b| (a.0 - paced).abs().total_cmp(&(b.0 - paced).abs()))
            .map(|c| c.1)
            .unwrap_or_default();
        anyhow::Ok((peak, paced, latencies, command_latencies, cpu, light))
    }
    .await;
    drop(keys);
    let (peak, paced, latencies_us, command_us, cpu_us_per_command, light) = result?;
    let pids = vec![
        ("command-api", command_api.id()),
        ("query-api", query_api.id()),
    ];
    Ok((
        Visibility {
            peak,
            paced,
            latencies_us,
            command_us,
            cpu_us_per_command,
            light,
            servers: vec![command_api, query_api],
        },
        pids,
    ))
}

/// `PACED_CLIENTS` clients together sending `rate` commands/s for `seconds`; every
/// `PROBE_EVERY`th command of a client is followed by a read that waits for its position
/// (a probe, light enough not to be the load itself). Returns the rate reached, each
/// command's time from send to answer and each probed command's time from send to
/// visible.
async fn paced_run(
    token: &str,
    users: &[String],
    rate: f64,
    seconds: f64,
) -> anyhow::Result<Paced> {
    let interval = Duration::from_secs_f64(PACED_CLIENTS as f64 / rate.max(1.0));
    let window = super::Window::new(seconds);
    let mut tasks = Vec::new();
    for c in 0..PACED_CLIENTS {
        let users = users.to_vec();
        let token = token.to_owned();
        let window = window.clone();
        tasks.push(tokio::spawn(async move {
            let commands = Client::connect(COMMAND_ADDR)?;
            let queries = Client::connect(QUERY_ADDR)?;
            let me = users[2 * c].clone();
            let mut lat = Vec::new();
            let mut command_lat = Vec::new();
            let mut i = 0u64;
            // Spread the clients over one interval so they do not send in step.
            let mut next =
                tokio::time::Instant::now() + interval.mul_f64(c as f64 / PACED_CLIENTS as f64);
            while let Some(measured) = window.next() {
                tokio::time::sleep_until(next).await;
                next += interval;
                let body = command_body(&users, c, i);
                let probe = (i + c as u64).is_multiple_of(PROBE_EVERY);
                i += 1;
                let t = Instant::now();
                let (status, answer) = commands
                    .send("POST", "/api/v1/transactions", &token, &body)
                    .await?;
                if status != 201 {
                    bail!("a command failed: {status} {answer}");
                }
                let answered = t.elapsed();
                if measured && window.still_open() {
                    command_lat.push(answered.as_micros() as u64);
                }
                if !probe {
                    continue;
                }
                let position = serde_json::from_str::<serde_json::Value>(&answer)?["position"]
                    .as_u64()
                    .context("a position")?;
                let (status, answer) = queries
                    .send_with(
                        "GET",
                        &format!("/api/v1/users/{me}/balances"),
                        &token,
                        &[("X-Min-Position", &position.to_string())],
                        "",
                    )
                    .await?;
                if status != 200 {
                    bail!("a read after a command failed: {status} {answer}");
                }
                if measured && window.still_open() {
                    lat.push(t.elapsed().as_micros() as u64);
                }
            }
            anyhow::Ok((lat, command_lat))
        }));
    }
    let mut visible = Vec::new();
    let mut commands = Vec::new();
    for task in tasks {
        let (v, c) = task.await??;
        visible.extend(v);
        commands.extend(c);
    }
    visible.sort_unstable();
    commands.sort_unstable();
    Ok(Paced {
        per_s: commands.len() as f64 / seconds,
        visible_us: visible,
        command_us: commands,
    })
}

struct Paced {
    per_s: f64,
    visible_us: Vec<u64>,
    /// Of the same commands: send to the command's answer.
    command_us: Vec<u64>,
}

/// `VmHWM` of a process: the most memory it held resident.
pub(crate) fn peak_memory_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(round2(kib / 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_peak_resident_size() {
        let mib = peak_memory_mib(std::process::id()).unwrap();
        assert!(mib > 0.0);
    }
}
