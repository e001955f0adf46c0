//! `cargo xtask bench export`: what auditing beyond the database costs, on a log of
//! `--events` events (1,000,000 by default) written by `history.rs`, in one run:
//!
//! 1. **signer**: the anchor signer (`event_store::anchor`) catching up over the whole
//!    log from no anchor (it recomputes every hash), events/s;
//! 2. **read_all**: the event store reading the log in pages of 1,000, the limit any
//!    export over it has, events/s;
//! 3. **export**: `GET /api/v1/audit/export` from a release query-api, streamed by a
//!    client that keeps the first copy on disk, events/s and MB/s, and query-api's peak
//!    resident memory before and after (constant memory: the peak must not grow with
//!    the log);
//! 4. **verifier**: the release `audit verify` on that export with the anchors and JWKS,
//!    events/s;
//! 5. **backup** and **restore**: `cargo xtask backup` and `restore` (no rebuild) of the
//!    bench database, seconds.
//!
//! Medians of `--runs` runs for 2-4. Prints a table and writes `target/bench/export.json`.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use event_store::anchor::{AnchorConfig, AnchorSigner};
use hash_chain::{Jwks, SignedAnchor, SigningKey};
use serde::Serialize;
use tokio::io::AsyncWriteExt;

use super::pipeline::peak_memory_mib;
use super::release::{build_release, spawn_release, wait_listening, BenchKeys};
use super::{median, round2, write_report, BenchArgs, BenchDatabase};
use crate::database::DbArgs;

/// A port of its own: other benchmarks' query-api may be on 18082.
const QUERY_ADDR: &str = "127.0.0.1:18182";

#[derive(Serialize, Default)]
struct Report {
    benchmark: &'static str,
    cores: usize,
    events: u64,
    runs: usize,
    export_bytes: u64,
    anchors: usize,
    signer_catch_up_per_s: f64,
    read_all_per_s: f64,
    export_per_s: f64,
    export_mb_per_s: f64,
    /// Export events/s over read_all events/s.
    export_ratio: f64,
    /// read_all's rate expressed in the export's bytes, for the same comparison in MB/s.
    read_all_mb_per_s: f64,
    query_api_rss_before_mib: f64,
    query_api_peak_mib: f64,
    verifier_per_s: f64,
    verifier_mb_per_s: f64,
    verifier_peak_mib: f64,
    backup_seconds: f64,
    backup_bytes: u64,
    restore_seconds: f64,
    restore_load_seconds: f64,
    restore_verify_seconds: f64,
}

pub(super) async fn run(db: &DbArgs, args: &BenchArgs) -> anyhow::Result<()> {
    let root = crate::stack::workspace_root();
    build_release(&root, &["-p", "query-api", "-p", "audit"])?;
    let bench_db = BenchDatabase::create(db).await?;
    let url = crate::database::with_database(&db.database_url, &bench_db.name);
    let restored = format!("{}_restored", bench_db.name);
    let work = root
        .join("target/bench")
        .join(format!("export-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&work)?;
    let result = measure(&root, &bench_db, &url, &restored, &work, args).await;
    let _ = std::fs::remove_dir_all(&work);
    if let Ok(mut conn) = sqlx::ConnectOptions::connect(&bench_db.options).await {
        let _ = sqlx::Executor::execute(
            &mut conn,
            format!("DROP DATABASE IF EXISTS `{restored}`").as_str(),
        )
        .await;
    }
    bench_db.drop_it().await?;
    let r = result?;
    println!();
    println!(
        "export: a log of {} events ({:.0} MB as NDJSON, {} anchors), {} runs, median",
        r.events,
        r.export_bytes as f64 / 1e6,
        r.anchors,
        r.runs
    );
    println!("{:<34} {:>12} {:>10}", "", "events/s", "MB/s");
    let row = |name: &str, per_s: f64, mb: f64| println!("{name:<34} {per_s:>12.0} {mb:>10.1}");
    row(
        "event store read_all (the limit)",
        r.read_all_per_s,
        r.read_all_mb_per_s,
    );
    row(
        "GET /audit/export (streamed)",
        r.export_per_s,
        r.export_mb_per_s,
    );
    row(
        "audit verify (offline)",
        r.verifier_per_s,
        r.verifier_mb_per_s,
    );
    row("anchor signer catching up", r.signer_catch_up_per_s, 0.0);
    println!(
        "export/read_all: {:.2}×; query-api resident {:.1} MiB before, peak {:.1} MiB after \
         the exports; verifier peak {:.1} MiB",
        r.export_ratio, r.query_api_rss_before_mib, r.query_api_peak_mib, r.verifier_peak_mib
    );
    println!(
        "backup: {:.1} s ({:.0} MB); restore: {:.1} s (load {:.1} s, chain verify {:.1} s)",
        r.backup_seconds,
        r.backup_bytes as f64 / 1e6,
        r.restore_seconds,
        r.restore_load_seconds,
        r.restore_verify_seconds
    );
    let path = write_report("export.json", &r)?;
    println!("written to {}", path.display());
    Ok(())
}

async fn measure(
    root: &Path,
    bench_db: &BenchDatabase,
    url: &str,
    restored: &str,
    work: &Path,
    args: &BenchArgs,
) -> anyhow::Result<Report> {
    let bench = super::history::Bench::prepare(&bench_db.options).await?;
    eprintln!("writing a history of {} events …", args.events);
    let progress = super::history::progress_bar(args.events)?;
    let head = super::history::write(&bench.store, &bench.keys, 2_000, args.events, &mut |n| {
        progress.set_position(n as u64);
    })
    .await?;
    progress.finish();
    let mut report = Report {
        benchmark: "export",
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        events: head,
        runs: args.runs,
        ..Report::default()
    };

    // 1. The signer, from no anchor to the head.
    eprintln!("signing anchors over the whole log …");
    let key = SigningKey::generate()?;
    let jwks_file = work.join("anchor-jwks.json");
    Jwks::add_to_file(&jwks_file, key.public_jwk())?;
    let signer = AnchorSigner::new(
        bench.store.clone(),
        key,
        AnchorConfig {
            every: Duration::from_secs(1),
            check_interval: Duration::from_millis(50),
            ..AnchorConfig::default()
        },
    )?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let signing = tokio::spawn(signer.run(async move {
        let _ = stopped.await;
    }));
    while bench.store.latest_anchor().await?.map(|a| a.position) != Some(head) {
        if started.elapsed() > Duration::from_secs(3_600) {
            bail!("the signer did not anchor the head within an hour");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    report.signer_catch_up_per_s = (head as f64 / started.elapsed().as_secs_f64()).round();
    let _ = stop.send(());
    signing.await.context("the signer panicked")?;
    let mut anchors: Vec<SignedAnchor> = Vec::new();
    loop {
        let after = anchors.last().map_or(0, |a| a.position);
        let page = bench.store.anchors(after, 1_000).await?;
        if page.is_empty() {
            break;
        }
        anchors.extend(page);
    }
    report.anchors = anchors.len();
    let anchors_file = work.join("anchors.json");
    std::fs::write(
        &anchors_file,
        serde_json::json!({ "items": anchors, "next_after": null }).to_string(),
    )?;

    // 2. read_all, the limit.
    let mut rates = Vec::new();
    for run in 0..args.runs {
        eprintln!("read_all run {} …", run + 1);
        let started = Instant::now();
        let (mut after, mut events) = (0, 0u64);
        loop {
            let page = bench.store.read_all(after, 1_000).await?;
            let Some(last) = page.last() else { break };
            after = last.position;
            events += page.len() as u64;
        }
        rates.push(events as f64 / started.elapsed().as_secs_f64());
    }
    report.read_all_per_s = median(rates).round();

    // 3. The export over HTTP.
    let keys = BenchKeys::new(root)?;
    let auditor = platform::DevKeys::load_or_create(&keys.dir)?.mint(
        uuid::Uuid::now_v7(),
        &[platform::Role::Auditor],
        Duration::from_secs(3_600),
        platform::DEV_ISSUER,
        platform::DEV_AUDIENCE,
    )?;
    let master = format!(
        "1:{}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, bench.master_key)
    );
    if tokio::net::TcpStream::connect(QUERY_ADDR).await.is_ok() {
        bail!("{QUERY_ADDR} is taken: another process would answer the benchmark");
    }
    let mut server = spawn_release(
        root,
        "query-api",
        &[
            ("QUERY_API_ADDR", QUERY_ADDR.into()),
            ("DATABASE_URL", url.into()),
            ("MASTER_KEYS", master),
            ("JWKS_FILE", keys.jwks_file()),
            ("ANCHOR_JWKS_FILE", jwks_file.display().to_string()),
        ],
    )?;
    let exported = async {
        wait_listening(QUERY_ADDR, "query-api").await?;
        let client = crate::http::client()?;
        let pid = server.id().context("query-api's pid")?;
        // A request that touches the log, so the baseline includes the pools.
        fetch(&client, &auditor, "/api/v1/audit/export?to=1", None).await?;
        report.query_api_rss_before_mib = resident_mib(pid).unwrap_or(0.0);
        let export_file = work.join("export.ndjson");
        let mut rates = Vec::new();
        for run in 0..args.runs {
            eprintln!("export run {} …", run + 1);
            let started = Instant::now();
            let keep = (run == 0).then_some(export_file.as_path());
            let bytes = fetch(&client, &auditor, "/api/v1/audit/export", keep).await?;
            let seconds = started.elapsed().as_secs_f64();
            report.export_bytes = bytes;
            rates.push(seconds);
        }
        report.query_api_peak_mib = peak_memory_mib(pid).unwrap_or(0.0);
        let seconds = median(rates);
        report.export_per_s = (head as f64 / seconds).round();
        report.export_mb_per_s = round2(report.export_bytes as f64 / 1e6 / seconds);
        anyhow::Ok(export_file)
    }
    .await;
    let _ = server.kill().await;
    let export_file = exported?;
    report.read_all_mb_per_s =
        round2(report.read_all_per_s * report.export_bytes as f64 / head.max(1) as f64 / 1e6);
    report.export_ratio = round2(report.export_per_s / report.read_all_per_s.max(1.0));

    // 4. The offline verifier on that export.
    let mut rates = Vec::new();
    for run in 0..args.runs {
        eprintln!("verifier run {} …", run + 1);
        let started = Instant::now();
        let child = tokio::process::Command::new(root.join("target/release/audit"))
            .arg("verify")
            .arg(&export_file)
            .arg("--anchors")
            .arg(&anchors_file)
            .arg("--jwks")
            .arg(&jwks_file)
            .arg("--json")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .context("running audit verify")?;
        let out = child.wait_with_output().await?;
        rates.push(started.elapsed().as_secs_f64());
        let verdict: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        if verdict["ok"] != true {
            bail!(
                "the verifier refused the bench's export: {}",
                verdict["verdict"]
            );
        }
    }
    let seconds = median(rates);
    report.verifier_per_s = (head as f64 / seconds).round();
    report.verifier_mb_per_s = round2(report.export_bytes as f64 / 1e6 / seconds);
    report.verifier_peak_mib = verifier_peak(root, &export_file, &anchors_file, &jwks_file)?;
    std::fs::remove_file(&export_file).ok();

    // 5. Backup and restore.
    eprintln!("backup …");
    let backup_dir = work.join("backup");
    let manifest = crate::backup::run(&crate::backup::BackupArgs {
        database_url: url.to_owned(),
        keys_database_url: None,
        out: backup_dir.clone(),
    })
    .await?;
    report.backup_seconds = round2(manifest.seconds);
    report.backup_bytes = manifest.eventstore.bytes;
    eprintln!("restore …");
    let restore = crate::restore::run(&crate::restore::RestoreArgs {
        from: backup_dir,
        database_url: crate::database::with_database(url, restored),
        keys_database_url: None,
        binlogs: Vec::new(),
        until: None,
        erasure_registers: Vec::new(),
        anchors: None,
        jwks: Some(jwks_file.clone()),
        rebuild: false,
        projector: None,
        json: false,
    })
    .await?;
    if !restore.ok || restore.head_position != head {
        bail!(
            "the restore is not the log: {}",
            crate::restore::render(&restore)
        );
    }
    report.restore_seconds = round2(restore.seconds);
    report.restore_load_seconds = round2(restore.load_seconds);
    report.restore_verify_seconds = round2(restore.verify_seconds);
    drop(keys);
    Ok(report)
}

/// `VmRSS` of a process, MiB.
fn resident_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(round2(kib / 1024.0))
}

/// The verifier's peak resident memory (`VmHWM`, polled while it runs: the kernel
/// keeps it until the process is reaped).
fn verifier_peak(root: &Path, export: &Path, anchors: &Path, jwks: &Path) -> anyhow::Result<f64> {
    let mut child = std::process::Command::new(root.join("target/release/audit"))
        .arg("verify")
        .arg(export)
        .arg("--anchors")
        .arg(anchors)
        .arg("--jwks")
        .arg(jwks)
        .stdout(std::process::Stdio::null())
        .spawn()
        .context("running audit verify")?;
    let pid = child.id();
    let mut peak = 0.0f64;
    loop {
        if let Some(mib) = peak_memory_mib(pid) {
            peak = peak.max(mib);
        }
        if child.try_wait()?.is_some() {
            return Ok(peak);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `GET path` from query-api, the body read as it streams; kept in `keep` if given.
/// Returns the body's bytes.
async fn fetch(
    client: &reqwest::Client,
    token: &str,
    path: &str,
    keep: Option<&Path>,
) -> anyhow::Result<u64> {
    let mut response = client
        .get(format!("http://{QUERY_ADDR}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| format!("GET {path}"))?;
    if response.status() != reqwest::StatusCode::OK {
        bail!("GET {path}: {}", response.status());
    }
    let mut out = match keep {
        Some(path) => Some(tokio::io::BufWriter::with_capacity(
            1 << 20,
            tokio::fs::File::create(path).await?,
        )),
        None => None,
    };
    let mut total = 0u64;
    while let Some(chunk) = response.chunk().await? {
        if let Some(out) = out.as_mut() {
            out.write_all(&chunk).await?;
        }
        total += chunk.len() as u64;
    }
    if let Some(mut out) = out {
        out.flush().await?;
    }
    Ok(total)
}
