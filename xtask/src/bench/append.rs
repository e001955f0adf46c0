//! `cargo xtask bench`: the system against the machine's raw limits, in one run.
//!
//! `append`: independent one-row `INSERT` + `COMMIT` transactions (autocommit, one round
//! trip each) on N connections, the raw limit of this MariaDB; then the event store
//! appending one event per append on N concurrent appenders, each to its own stream.
//! Each figure is the median of `--runs` runs of `--seconds` each, raw and store runs
//! interleaved so that drift hits both alike. Results: a table, and
//! `target/bench/append.json`.

use std::time::Instant;

use event_store::{
    AppendRequest, EventStore, EventType, ExpectedVersion, NewEvent, StoreOptions, StreamId,
};
use serde::Serialize;
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::{ConnectOptions, Connection, Executor};

use super::{
    median, percentile_ms, round2, write_report, BenchArgs, BenchDatabase, Sample, Window,
};
use crate::database::DbArgs;

#[derive(Serialize)]
struct AppendRow {
    concurrency: usize,
    raw_per_s: f64,
    store_per_s: f64,
    ratio: f64,
    p50_ms: f64,
    p99_ms: f64,
    raw_p50_ms: f64,
    raw_p99_ms: f64,
}

#[derive(Serialize)]
struct AppendReport {
    benchmark: &'static str,
    seconds: f64,
    runs: usize,
    cores: usize,
    results: Vec<AppendRow>,
    /// Rows/s of multi-row INSERTs of 100 rows, one transaction each, one connection:
    /// the most any design with one transaction in flight could reach.
    batched_insert_100_rows_per_s: f64,
}

fn payload(task: usize, i: u64) -> serde_json::Value {
    serde_json::json!({
        "transaction_id": uuid::Uuid::now_v7(),
        "user_id": format!("user-{task}"),
        "amount": 1_000 + i,
        "currency": "EUR",
    })
}

pub(super) async fn raw_run(
    options: &MySqlConnectOptions,
    n: usize,
    seconds: f64,
) -> anyhow::Result<Sample> {
    let pool = MySqlPoolOptions::new()
        .max_connections(n as u32)
        .min_connections(n as u32)
        .connect_with(options.clone())
        .await?;
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(pool.acquire().await?);
    }
    let window = Window::new(seconds);
    let mut tasks = Vec::with_capacity(n);
    for (task, mut conn) in conns.into_iter().enumerate() {
        let window = window.clone();
        tasks.push(tokio::spawn(async move {
            let stream = format!("raw-{task}");
            let mut lat = Vec::new();
            let mut i = 0u64;
            while let Some(measured) = window.next() {
                let data = payload(task, i).to_string();
                let t = Instant::now();
                sqlx::query("INSERT INTO raw_bench (stream_id, data) VALUES (?, ?)")
                    .bind(&stream)
                    .bind(data)
                    .execute(&mut *conn)
                    .await?;
                if measured && window.still_open() {
                    lat.push(t.elapsed().as_micros() as u64);
                }
                i += 1;
            }
            anyhow::Ok(lat)
        }));
    }
    let sample = window.collect(tasks).await?;
    pool.close().await;
    Ok(sample)
}

pub(super) async fn batched_run(
    options: &MySqlConnectOptions,
    rows: usize,
    seconds: f64,
) -> anyhow::Result<f64> {
    let mut conn = options.connect().await?;
    let mut sql = String::from("INSERT INTO raw_bench (stream_id, data) VALUES ");
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str("(?, ?)");
    }
    let window = Window::new(seconds);
    let mut inserted = 0usize;
    let mut i = 0u64;
    while let Some(measured) = window.next() {
        let mut q = sqlx::query(&sql);
        for r in 0..rows {
            q = q
                .bind(format!("batched-{r}"))
                .bind(payload(r, i).to_string());
        }
        q.execute(&mut conn).await?;
        if measured && window.still_open() {
            inserted += rows;
        }
        i += 1;
    }
    let _ = conn.close().await;
    Ok(inserted as f64 / seconds)
}

async fn store_run(
    options: &MySqlConnectOptions,
    n: usize,
    seconds: f64,
    run: usize,
) -> anyhow::Result<Sample> {
    let store = EventStore::connect_with(
        options.clone(),
        StoreOptions {
            read_pool_size: 2,
            ..StoreOptions::default()
        },
    )
    .await?;
    let event_type = EventType::parse("transaction.deposited")?;
    let window = Window::new(seconds);
    let mut tasks = Vec::with_capacity(n);
    for task in 0..n {
        let window = window.clone();
        let store = store.clone();
        let event_type = event_type.clone();
        tasks.push(tokio::spawn(async move {
            let stream = StreamId::parse(format!("bench-{run}-{n}-{task}"))?;
            let mut lat = Vec::new();
            let mut version = 0u64;
            while let Some(measured) = window.next() {
                let event = NewEvent::new(event_type.clone(), 1, payload(task, version));
                let t = Instant::now();
                store
                    .append(AppendRequest::single(
                        stream.clone(),
                        ExpectedVersion::Exact(version),
                        vec![event],
                    ))
                    .await?;
                if measured && window.still_open() {
                    lat.push(t.elapsed().as_micros() as u64);
                }
                version += 1;
            }
            anyhow::Ok(lat)
        }));
    }
    window.collect(tasks).await
}

pub(super) async fn run(db: &DbArgs, args: &BenchArgs) -> anyhow::Result<()> {
    let bench_db = BenchDatabase::create(db).await?;
    let result = append_in(&bench_db.options, args).await;
    bench_db.drop_it().await?;
    let report = result?;

    println!();
    println!(
        "append: {} runs × {} s each, median; raw = one-row INSERT+COMMIT per transaction",
        args.runs, args.seconds
    );
    println!(
        "{:>11} {:>12} {:>12} {:>7} {:>9} {:>9} {:>10} {:>10}",
        "concurrency", "raw/s", "store/s", "ratio", "p50 ms", "p99 ms", "raw p50", "raw p99"
    );
    for r in &report.results {
        println!(
            "{:>11} {:>12.0} {:>12.0} {:>6.2}× {:>9.2} {:>9.2} {:>10.2} {:>10.2}",
            r.concurrency,
            r.raw_per_s,
            r.store_per_s,
            r.ratio,
            r.p50_ms,
            r.p99_ms,
            r.raw_p50_ms,
            r.raw_p99_ms
        );
    }
    println!(
        "batched ceiling: multi-row INSERT of 100 rows per transaction, one connection: {:.0} rows/s",
        report.batched_insert_100_rows_per_s
    );
    let path = write_report("append.json", &report)?;
    println!("written to {}", path.display());
    Ok(())
}

async fn append_in(
    options: &MySqlConnectOptions,
    args: &BenchArgs,
) -> anyhow::Result<AppendReport> {
    let mut results = Vec::new();
    for &n in &args.concurrency {
        let mut raw = Vec::new();
        let mut store = Vec::new();
        let mut raw_lat = Vec::new();
        let mut store_lat = Vec::new();
        for run in 0..args.runs {
            let r = raw_run(options, n, args.seconds).await?;
            let s = store_run(options, n, args.seconds, run).await?;
            eprintln!(
                "  concurrency {n:>3}, run {}: raw {:>8.0}/s, store {:>8.0}/s",
                run + 1,
                r.per_s,
                s.per_s
            );
            raw.push(r.per_s);
            store.push(s.per_s);
            raw_lat.extend(r.latencies_us);
            store_lat.extend(s.latencies_us);
        }
        raw_lat.sort_unstable();
        store_lat.sort_unstable();
        let raw_per_s = median(raw);
        let store_per_s = median(store);
        results.push(AppendRow {
            concurrency: n,
            raw_per_s: raw_per_s.round(),
            store_per_s: store_per_s.round(),
            ratio: round2(store_per_s / raw_per_s.max(1.0)),
            p50_ms: round2(percentile_ms(&store_lat, 0.50)),
            p99_ms: round2(percentile_ms(&store_lat, 0.99)),
            raw_p50_ms: round2(percentile_ms(&raw_lat, 0.50)),
            raw_p99_ms: round2(percentile_ms(&raw_lat, 0.99)),
        });
    }
    let mut batched = Vec::new();
    for _ in 0..args.runs {
        batched.push(batched_run(options, 100, args.seconds).await?);
    }
    Ok(AppendReport {
        batched_insert_100_rows_per_s: median(batched).round(),
        benchmark: "append",
        seconds: args.seconds,
        runs: args.runs,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        results,
    })
}

/// Where one appender's time goes: the same single-row commit measured step by step,
/// from the raw insert to the store's full path.
pub(super) async fn probe(db: &DbArgs, args: &BenchArgs) -> anyhow::Result<()> {
    let bench_db = BenchDatabase::create(db).await?;
    let result = probe_in(&bench_db.options, args).await;
    bench_db.drop_it().await?;
    result
}

async fn probe_in(options: &MySqlConnectOptions, args: &BenchArgs) -> anyhow::Result<()> {
    let mut conn = options.connect().await?;
    let n = (args.seconds * 2000.0) as u64;
    let time = |label: &str, started: Instant, n: u64| {
        let us = started.elapsed().as_micros() as f64 / n as f64;
        println!("{label:<58} {us:>8.1} µs/op");
    };
    let data = payload(0, 0).to_string();

    let t = Instant::now();
    for _ in 0..n {
        sqlx::query("INSERT INTO raw_bench (stream_id, data) VALUES (?, ?)")
            .bind("raw")
            .bind(&data)
            .execute(&mut conn)
            .await?;
    }
    time("raw row, prepared, autocommit", t, n);

    let t = Instant::now();
    for _ in 0..n {
        let sql = format!(
            "INSERT INTO raw_bench (stream_id, data) VALUES ('raw', _utf8mb4 X'{}')",
            hex_of(data.as_bytes())
        );
        conn.execute(sql.as_str()).await?;
    }
    time("raw row, text protocol (hex literal), autocommit", t, n);

    conn.execute("SET SESSION autocommit = 0").await?;
    let t = Instant::now();
    for _ in 0..n {
        let sql = format!(
            "INSERT INTO raw_bench (stream_id, data) VALUES ('raw', _utf8mb4 X'{}');COMMIT",
            hex_of(data.as_bytes())
        );
        let mut s = sqlx::Executor::fetch_many(&mut conn, sql.as_str());
        while let Some(r) = futures_util::StreamExt::next(&mut s).await {
            r?;
        }
    }
    time("raw row, INSERT;COMMIT in one round trip", t, n);

    let t = Instant::now();
    for p in 1..=n {
        let prev = if p == 1 {
            "NULL".to_string()
        } else {
            (p - 1).to_string()
        };
        let pv = if p == 1 {
            "NULL".to_string()
        } else {
            (p - 1).to_string()
        };
        let sql = format!(
            "INSERT INTO events (position, prev_position, event_id, stream_id, stream_version, \
             prev_stream_version, event_type, schema_version, data, metadata, recorded_at, \
             prev_hash, hash) VALUES ({p}, {prev}, X'{}', _utf8mb4 X'{}', {p}, {pv}, \
             _utf8mb4 X'{}', 1, _utf8mb4 X'{}', _utf8mb4 X'7b7d', '2026-11-25 00:00:00.000000', \
             X'{}', X'{}');COMMIT",
            uuid::Uuid::now_v7().simple(),
            hex_of(b"probe-sql"),
            hex_of(b"transaction.deposited"),
            hex_of(data.as_bytes()),
            hex_of(&[0; 32]),
            hex_of(&[1; 32]),
        );
        let mut s = sqlx::Executor::fetch_many(&mut conn, sql.as_str());
        while let Some(r) = futures_util::StreamExt::next(&mut s).await {
            r?;
        }
    }
    time("events row (indexes, FKs, checks), INSERT;COMMIT", t, n);

    conn.execute("SET SESSION autocommit = 1").await?;
    let t = Instant::now();
    for p in n + 1..=2 * n {
        sqlx::query(
            "INSERT INTO events (position, prev_position, event_id, stream_id, stream_version, \
             prev_stream_version, event_type, schema_version, data, metadata, recorded_at, \
             prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, '{}', '2026-11-25 00:00:00', ?, ?)",
        )
        .bind(p)
        .bind(p - 1)
        .bind(uuid::Uuid::now_v7().as_bytes().as_slice())
        .bind("probe-sql")
        .bind(p)
        .bind(p - 1)
        .bind("transaction.deposited")
        .bind(&data)
        .bind([0u8; 32].as_slice())
        .bind([1u8; 32].as_slice())
        .execute(&mut conn)
        .await?;
    }
    time("events row, prepared, autocommit", t, n);
    let t = Instant::now();
    for p in 2 * n + 1..=3 * n {
        let sql = format!(
            "INSERT INTO events (position, prev_position, event_id, stream_id, stream_version, \
             prev_stream_version, event_type, schema_version, data, metadata, recorded_at, \
             prev_hash, hash) VALUES ({p}, {}, X'{}', _utf8mb4 X'{}', {p}, {}, \
             _utf8mb4 X'{}', 1, _utf8mb4 X'{}', _utf8mb4 X'7b7d', '2026-11-25 00:00:00.000000', \
             X'{}', X'{}')",
            p - 1,
            uuid::Uuid::now_v7().simple(),
            hex_of(b"probe-sql"),
            p - 1,
            hex_of(b"transaction.deposited"),
            hex_of(data.as_bytes()),
            hex_of(&[0; 32]),
            hex_of(&[1; 32]),
        );
        conn.execute(sql.as_str()).await?;
    }
    time("events row, text (hex), autocommit", t, n);
    let _ = conn.close().await;

    let store = EventStore::connect_with(options.clone(), StoreOptions::default()).await?;
    let event_type = EventType::parse("transaction.deposited")?;
    let stream = StreamId::parse("probe")?;
    let t = Instant::now();
    for v in 0..n {
        store
            .append(AppendRequest::single(
                stream.clone(),
                ExpectedVersion::Exact(v),
                vec![NewEvent::new(event_type.clone(), 1, payload(0, v))],
            ))
            .await?;
    }
    time("event store append (batcher, hash, FKs, chain)", t, n);
    Ok(())
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
