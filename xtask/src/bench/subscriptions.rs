//! `cargo xtask bench subscriptions`: downstream delivery against the log's own limit,
//! in one run. On a log of `--events` events (a valid history written straight into the
//! store):
//!
//! - `read_all`: the whole log paged with `EventStore::read_all` (1,000 a page), the
//!   rate any reader of the log is bound by;
//! - SSE catch-up: a release query-api streaming `/api/v1/events` from position 0 to the
//!   head to one client (events/s and MB/s);
//! - live latency: events appended one at a time at a steady pace while an SSE client
//!   and a webhook receiver (a release `webhooks` deliverer) follow; from each append's
//!   commit to its SSE line and to its webhook request (p50/p99);
//! - webhook throughput: a subscription made `--live-events` behind the head delivering
//!   to a local receiver that answers 204 at once.
//!
//! Writes `target/bench/subscriptions.json`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use base64::Engine;
use event_store::{AppendRequest, EventStore, EventType, ExpectedVersion, NewEvent, StreamId};
use serde::Serialize;
use sqlx::mysql::MySqlConnectOptions;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use super::release::{build_release, spawn_release, wait_listening, BenchKeys};
use super::{percentile_ms, round2, write_report, BenchArgs, BenchDatabase};
use crate::database::DbArgs;

const QUERY_ADDR: &str = "127.0.0.1:18092";
const WEBHOOKS_METRICS: &str = "127.0.0.1:18093";
/// Appends per second while latency is measured: a light load, where latency is the
/// pipeline's own and not queueing.
const PACE_PER_S: u64 = 200;

#[derive(Serialize, Default)]
struct Report {
    benchmark: &'static str,
    cores: usize,
    events: u64,
    read_all_events_per_s: f64,
    sse_catch_up_events_per_s: f64,
    sse_catch_up_mb_per_s: f64,
    sse_vs_read_all: f64,
    live_appends: usize,
    sse_latency_p50_ms: f64,
    sse_latency_p99_ms: f64,
    webhook_latency_p50_ms: f64,
    webhook_latency_p99_ms: f64,
    webhook_deliveries: u64,
    webhook_deliveries_per_s: f64,
}

pub(super) async fn run(db: &DbArgs, args: &BenchArgs) -> anyhow::Result<()> {
    let root = crate::stack::workspace_root();
    build_release(&root, &["-p", "query-api"])?;
    build_release(&root, &["-p", "webhooks", "--features", "deliverer"])?;
    let bench_db = BenchDatabase::create(db).await?;
    let url = crate::database::with_database(&db.database_url, &bench_db.name);
    let result = measure(&root, &bench_db.options, &url, args).await;
    bench_db.drop_it().await?;
    let r = result?;
    println!();
    println!(
        "subscriptions, log of {} events ({} cores)",
        r.events, r.cores
    );
    println!(
        "  read_all            {:>10.0} events/s (the limit)",
        r.read_all_events_per_s
    );
    println!(
        "  SSE catch-up        {:>10.0} events/s, {:.1} MB/s = {:.2}× read_all",
        r.sse_catch_up_events_per_s, r.sse_catch_up_mb_per_s, r.sse_vs_read_all
    );
    println!(
        "  commit → SSE line   p50 {:.2} ms, p99 {:.2} ms ({} appends at {PACE_PER_S}/s)",
        r.sse_latency_p50_ms, r.sse_latency_p99_ms, r.live_appends
    );
    println!(
        "  commit → webhook    p50 {:.2} ms, p99 {:.2} ms",
        r.webhook_latency_p50_ms, r.webhook_latency_p99_ms
    );
    println!(
        "  webhook deliveries  {:>10.0} /s ({} to a local receiver)",
        r.webhook_deliveries_per_s, r.webhook_deliveries
    );
    let path = write_report("subscriptions.json", &r)?;
    println!("written to {}", path.display());
    Ok(())
}

async fn measure(
    root: &Path,
    options: &MySqlConnectOptions,
    url: &str,
    args: &BenchArgs,
) -> anyhow::Result<Report> {
    let mut report = Report {
        benchmark: "subscriptions",
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        ..Report::default()
    };
    let bench = super::history::Bench::prepare(options).await?;
    eprintln!("writing a history of {} events …", args.events);
    let users = (args.events / 500).clamp(200, 5_000);
    let head =
        super::history::write(&bench.store, &bench.keys, users, args.events, &mut |_| {}).await?;
    report.events = head;

    eprintln!("read_all over the log …");
    let started = Instant::now();
    let mut after = 0;
    loop {
        let page = bench.store.read_all(after, 1_000).await?;
        let Some(last) = page.last() else { break };
        after = last.position;
    }
    report.read_all_events_per_s = (head as f64 / started.elapsed().as_secs_f64()).round();

    let keys = BenchKeys::new(root)?;
    let token = keys.token.clone();
    let server = spawn_release(
        root,
        "query-api",
        &[
            ("QUERY_API_ADDR", QUERY_ADDR.into()),
            ("DATABASE_URL", url.into()),
            ("JWKS_FILE", keys.jwks_file()),
        ],
    )?;
    wait_listening(QUERY_ADDR, "query-api").await?;

    eprintln!("SSE catch-up from 0 …");
    let started = Instant::now();
    let mut stream = SseStream::open(&token, 0).await?;
    let mut bytes = 0u64;
    loop {
        let (position, n) = stream.next_event().await?;
        bytes += n;
        if position >= head {
            break;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    report.sse_catch_up_events_per_s = (head as f64 / secs).round();
    report.sse_catch_up_mb_per_s = round2(bytes as f64 / secs / 1e6);
    report.sse_vs_read_all =
        round2(report.sse_catch_up_events_per_s / report.read_all_events_per_s.max(1.0));

    // The webhook receiver, and a deliverer following a subscription from the head.
    let receiver = Receiver::start().await?;
    let table = webhooks::SubscriptionTable::new(bench.store.pool().clone());
    let master = keyring::MasterKeys::from_keys([(1, bench.master_key)])?;
    let subscribe = |name: &'static str, after: u64, url: String| {
        let table = table.clone();
        let wrapped =
            keyring::DataKey::generate(uuid::Uuid::new_v4()).and_then(|key| master.wrap(&key));
        async move {
            let new = webhooks::NewSubscription {
                name: webhooks::SubscriptionName::parse(name)?,
                url,
                types: vec!["#".into()],
                after,
                secret: wrapped?,
            };
            table.create(&new).await?;
            anyhow::Ok(())
        }
    };
    subscribe("live", head, receiver.url()).await?;
    let master_text = format!(
        "1:{}",
        base64::engine::general_purpose::STANDARD.encode(bench.master_key)
    );
    let deliverer = spawn_release(
        root,
        "webhooks",
        &[
            ("DATABASE_URL", url.into()),
            ("MASTER_KEYS", master_text),
            ("WEBHOOK_ALLOW_INSECURE", "true".into()),
            ("METRICS_ADDR", WEBHOOKS_METRICS.into()),
        ],
    )?;
    wait_listening(WEBHOOKS_METRICS, "the webhook deliverer").await?;

    eprintln!(
        "live latency: appends at {PACE_PER_S}/s for {} s …",
        args.seconds
    );
    let mut live = SseStream::open(&token, head).await?;
    let sse_seen: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let reader = {
        let seen = sse_seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((position, _)) = live.next_event().await else {
                    return;
                };
                if let Ok(mut s) = seen.lock() {
                    s.insert(position, Instant::now());
                }
            }
        })
    };
    let committed = paced_appends(&bench.store, args.seconds).await?;
    let last = committed.keys().max().copied().unwrap_or(head);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(seen_up_to(&sse_seen, last) && receiver.seen_up_to(last)) {
        if Instant::now() > deadline {
            bail!("the live events did not all arrive within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    reader.abort();
    report.live_appends = committed.len();
    let latencies = |arrived: &HashMap<u64, Instant>| {
        let mut us: Vec<u64> = committed
            .iter()
            .filter_map(|(p, at)| arrived.get(p).map(|a| a.saturating_duration_since(*at)))
            .map(|d| d.as_micros() as u64)
            .collect();
        us.sort_unstable();
        us
    };
    let sse = latencies(&sse_seen.lock().map(|s| s.clone()).unwrap_or_default());
    let hook = latencies(&receiver.arrivals());
    report.sse_latency_p50_ms = round2(percentile_ms(&sse, 0.5));
    report.sse_latency_p99_ms = round2(percentile_ms(&sse, 0.99));
    report.webhook_latency_p50_ms = round2(percentile_ms(&hook, 0.5));
    report.webhook_latency_p99_ms = round2(percentile_ms(&hook, 0.99));

    let behind = (args.live_events as u64).min(head);
    eprintln!("webhook throughput: {behind} events behind the head …");
    let catching_up = Receiver::start().await?;
    let started = Instant::now();
    subscribe("catch-up", last.saturating_sub(behind), catching_up.url()).await?;
    let deadline = Instant::now() + Duration::from_secs(600);
    while catching_up.count() < behind {
        if Instant::now() > deadline {
            bail!("the catch-up subscription did not finish within 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    report.webhook_deliveries = behind;
    report.webhook_deliveries_per_s = (behind as f64 / started.elapsed().as_secs_f64()).round();

    drop(deliverer);
    drop(server);
    Ok(report)
}

fn seen_up_to(seen: &Mutex<HashMap<u64, Instant>>, last: u64) -> bool {
    seen.lock().is_ok_and(|s| s.contains_key(&last))
}

/// One event appended at a time, `PACE_PER_S` a second: each one's position and the
/// moment its commit was acknowledged.
async fn paced_appends(store: &EventStore, seconds: f64) -> anyhow::Result<HashMap<u64, Instant>> {
    let mut committed = HashMap::new();
    let gap = Duration::from_micros(1_000_000 / PACE_PER_S);
    let end = Instant::now() + Duration::from_secs_f64(seconds);
    let mut next = Instant::now();
    let event_type = EventType::parse("bench.pinged")?;
    let stream = StreamId::parse("bench-live")?;
    while Instant::now() < end {
        let request = AppendRequest::single(
            stream.clone(),
            ExpectedVersion::Any,
            vec![NewEvent::new(event_type.clone(), 1, serde_json::json!({}))],
        );
        let outcome = store.append(request).await?;
        committed.insert(outcome.last_position, Instant::now());
        next += gap;
        tokio::time::sleep_until(next.into()).await;
    }
    Ok(committed)
}

/// A Server-Sent Events stream from query-api; only the `id:` lines matter here.
struct SseStream {
    response: reqwest::Response,
    /// Received and not yet read, from `start` on.
    buffer: Vec<u8>,
    start: usize,
}

impl SseStream {
    async fn open(token: &str, after: u64) -> anyhow::Result<Self> {
        let response = crate::http::client()?
            .get(format!("http://{QUERY_ADDR}/api/v1/events?after={after}"))
            .bearer_auth(token)
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .send()
            .await
            .context("opening the event stream")?;
        if response.status() != reqwest::StatusCode::OK {
            bail!("the event stream answered {}", response.status());
        }
        Ok(Self {
            response,
            buffer: Vec::new(),
            start: 0,
        })
    }

    /// The next event's position, and the body bytes read for it.
    async fn next_event(&mut self) -> anyhow::Result<(u64, u64)> {
        let mut bytes = 0u64;
        loop {
            while let Some(n) = self.buffer[self.start..].iter().position(|&b| b == b'\n') {
                let line = &self.buffer[self.start..=self.start + n];
                self.start += n + 1;
                bytes += line.len() as u64;
                if let Some(id) = line.strip_prefix(b"id:") {
                    let position = std::str::from_utf8(id)?
                        .trim()
                        .parse()
                        .context("an SSE id that is no position")?;
                    return Ok((position, bytes));
                }
            }
            self.buffer.drain(..self.start);
            self.start = 0;
            let chunk = self
                .response
                .chunk()
                .await?
                .context("the event stream ended")?;
            self.buffer.extend_from_slice(&chunk);
        }
    }
}

/// An HTTP/1.1 server answering 204 to every POST at once, recording when each event (by
/// the body's `position`) arrived.
#[derive(Clone)]
struct Receiver {
    addr: std::net::SocketAddr,
    arrivals: Arc<Mutex<HashMap<u64, Instant>>>,
}

impl Receiver {
    async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let arrivals: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
        let seen = arrivals.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let seen = seen.clone();
                tokio::spawn(async move {
                    let _ = serve(conn, seen).await;
                });
            }
        });
        Ok(Self { addr, arrivals })
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn count(&self) -> u64 {
        self.arrivals.lock().map_or(0, |a| a.len() as u64)
    }

    fn seen_up_to(&self, last: u64) -> bool {
        self.arrivals.lock().is_ok_and(|a| a.contains_key(&last))
    }

    fn arrivals(&self) -> HashMap<u64, Instant> {
        self.arrivals.lock().map(|a| a.clone()).unwrap_or_default()
    }
}

async fn serve(conn: TcpStream, seen: Arc<Mutex<HashMap<u64, Instant>>>) -> anyhow::Result<()> {
    conn.set_nodelay(true)?;
    let mut reader = BufReader::new(conn);
    loop {
        let mut length = 0usize;
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body).await?;
        let at = Instant::now();
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        if let (Some(position), Ok(mut s)) = (value["position"].as_u64(), seen.lock()) {
            s.entry(position).or_insert(at);
        }
        reader
            .get_mut()
            .write_all(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
            .await?;
    }
}
