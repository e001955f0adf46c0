//! `cargo xtask restore`: a backup of `cargo xtask backup` into a fresh database, brought
//! forward through the source's binary logs if given (to their end, or `--until` a
//! time), then proved and made safe before any service starts (ADR 0019):
//!
//! 1. load the dump (and the keys' dump), progress shown;
//! 2. replay the binlogs from the backup's position (`mariadb-binlog`, rewritten to the
//!    new database's name, filtered to it);
//! 3. verify the hash chain of the restored log (`EventStore::verify`);
//! 4. check it against the anchors: every anchor at or below the restored head must
//!    match it; anchors above it name events that were acknowledged and are not in this
//!    restore (reported, not hidden);
//! 5. re-apply every erasure: those in the restored log, and those of the erasure
//!    registers (kept outside the database, so they hold erasures made after the backup
//!    point when the restore goes back before them): each subject's data key is shredded;
//! 6. with `--rebuild`, `projector rebuild` builds the read tables from the restored log.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use event_store::{EventStore, EventType, StoreOptions};
use hash_chain::{Jwks, SignedAnchor};
use serde::Serialize;
use sqlx::{ConnectOptions, Connection, Executor};

use crate::backup::{read_manifest, Manifest};
use crate::mariadb_tools::{command, finished, pump, OptionFile, Progress, Target};

#[derive(clap::Args, Clone)]
pub struct RestoreArgs {
    /// The backup's directory.
    #[arg(long)]
    pub from: PathBuf,
    /// The database to restore into, as an owner: created, and refused if it holds tables.
    #[arg(long, env = "DATABASE_URL", default_value = crate::database::DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// Where to restore the keys' dump, when the backup has one.
    #[arg(long, env = "KEYS_DATABASE_URL")]
    pub keys_database_url: Option<String>,
    /// The source's binary logs to bring the restore forward through, in order, the
    /// first being the one the backup's manifest names.
    #[arg(long, num_args = 1..)]
    pub binlogs: Vec<PathBuf>,
    /// Stop the binlog replay at this time (`YYYY-MM-DD hh:mm:ss`, the server's time).
    #[arg(long)]
    pub until: Option<String>,
    /// Erasure registers to re-apply (every file the command-api replicas append to).
    #[arg(long = "erasure-register")]
    pub erasure_registers: Vec<PathBuf>,
    /// Anchors kept outside the database (saved pages of /audit/anchors, broker copies);
    /// without it, the restored `anchors` table.
    #[arg(long)]
    pub anchors: Option<PathBuf>,
    /// The anchors' JWKS, to check their signatures.
    #[arg(long)]
    pub jwks: Option<PathBuf>,
    /// Rebuild the read tables with `projector rebuild` afterwards.
    #[arg(long)]
    pub rebuild: bool,
    /// The projector binary `--rebuild` runs; unset: the workspace's debug build.
    #[arg(long, env = "PROJECTOR_BIN")]
    pub projector: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct RestoreReport {
    /// The chain holds and every anchor at or below the head matches.
    pub ok: bool,
    pub database: String,
    pub load_seconds: f64,
    pub binlog_seconds: Option<f64>,
    pub head_position: u64,
    pub head_hash: String,
    pub chain_ok: bool,
    pub first_bad_position: Option<u64>,
    pub verify_seconds: f64,
    pub anchors: AnchorCheck,
    pub erasures: Reapplied,
    pub rebuilt: bool,
    pub seconds: f64,
}

#[derive(Debug, Default, Serialize)]
pub struct AnchorCheck {
    /// Where the anchors came from.
    pub source: String,
    pub signatures_checked: bool,
    pub invalid_signatures: usize,
    /// Anchors at or below the restored head that match it.
    pub matched: usize,
    pub latest_matching: Option<u64>,
    /// Anchors at or below the head that do not match: the restored log is not the
    /// signed one.
    pub mismatched: Vec<u64>,
    /// Anchors above the restored head: acknowledged events this restore lost.
    pub beyond_head: usize,
    pub latest_beyond_head: Option<u64>,
}

#[derive(Debug, Default, Serialize)]
pub struct Reapplied {
    /// Erasure events in the restored log.
    pub in_log: usize,
    /// Erasures in the registers (lines), and lines that could not be read.
    pub in_registers: usize,
    pub unreadable_register_lines: usize,
    /// Subjects whose live data key was shredded now.
    pub shredded: u64,
}

pub async fn run(args: &RestoreArgs) -> anyhow::Result<RestoreReport> {
    let started = Instant::now();
    let manifest = read_manifest(&args.from)?;
    let target = Target::parse(&args.database_url, "DATABASE_URL")?;
    create_empty(&target).await?;
    let loading = Instant::now();
    load(
        &target,
        &args.from.join(&manifest.eventstore.file),
        manifest.eventstore.bytes,
    )
    .await?;
    let keys_target = match (&manifest.keys, &args.keys_database_url) {
        (Some(dump), Some(url)) => {
            let keys = Target::parse(url, "KEYS_DATABASE_URL")?;
            create_empty(&keys).await?;
            load(&keys, &args.from.join(&dump.file), dump.bytes).await?;
            Some(keys)
        }
        (Some(_), None) => bail!("the backup has a keys dump: give --keys-database-url"),
        (None, _) => None,
    };
    let load_seconds = loading.elapsed().as_secs_f64();
    let binlog_seconds = if args.binlogs.is_empty() {
        None
    } else {
        Some(replay_binlogs(args, &manifest, &target).await?)
    };

    let store = EventStore::connect_with(
        target.options()?,
        StoreOptions {
            read_pool_size: 2,
            // Operator scans of a large log: no per-statement limit worth having.
            read_timeout: Duration::from_secs(3_600),
            ..StoreOptions::default()
        },
    )
    .await
    .context("connecting to the restored log")?;
    eprintln!("restore: verifying the hash chain …");
    let verifying = Instant::now();
    let verified = store.verify(1, None).await.context("verifying the chain")?;
    let verify_seconds = verifying.elapsed().as_secs_f64();
    let anchors = check_anchors(args, &store, verified.head_position).await?;
    let erasures = reapply_erasures(args, &store, keys_target.as_ref().unwrap_or(&target)).await?;
    let rebuilt = if args.rebuild {
        rebuild(&target, args.projector.as_deref())?;
        true
    } else {
        false
    };
    let ok = verified.ok && anchors.mismatched.is_empty() && anchors.invalid_signatures == 0;
    Ok(RestoreReport {
        ok,
        database: target.database.clone(),
        load_seconds,
        binlog_seconds,
        head_position: verified.head_position,
        head_hash: verified.head_hash,
        chain_ok: verified.ok,
        first_bad_position: verified.first_bad_position,
        verify_seconds,
        anchors,
        erasures,
        rebuilt,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Creates the database; refuses one that holds tables already.
async fn create_empty(target: &Target) -> anyhow::Result<()> {
    let mut server = target
        .options()?
        .database("")
        .connect()
        .await
        .context("connecting to the server to restore to")?;
    server
        .execute(format!("CREATE DATABASE IF NOT EXISTS `{}`", target.database).as_str())
        .await
        .context("creating the database to restore into")?;
    let tables: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = ?")
            .bind(&target.database)
            .fetch_one(&mut server)
            .await?;
    let _ = server.close().await;
    if tables > 0 {
        bail!(
            "database {} holds {tables} tables: restore into a new database, then point \
             the services at it",
            target.database
        );
    }
    Ok(())
}

/// Feeds a dump to `mariadb`.
async fn load(target: &Target, file: &std::path::Path, bytes: u64) -> anyhow::Result<()> {
    let options = OptionFile::new(target)?;
    let mut client = command("mariadb", &options);
    client
        .args(["--binary-mode", "--max-allowed-packet=512M"])
        .arg(&target.database)
        .stdin(std::process::Stdio::piped());
    let mut child = client
        .spawn()
        .context("starting mariadb (package mariadb-client)")?;
    let stdin = child.stdin.take().context("mariadb's input")?;
    let input = tokio::fs::File::open(file)
        .await
        .with_context(|| format!("opening {}", file.display()))?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut progress = Progress::new(
        format!("loading {name} into {}", target.database),
        Some(bytes),
    );
    let (done, _) = pump(input, stdin, &mut progress, 0).await?;
    finished(child, "mariadb").await?;
    progress.finish(done);
    Ok(())
}

/// `mariadb-binlog` from the backup's position, rewritten to the new database, into it.
async fn replay_binlogs(
    args: &RestoreArgs,
    manifest: &Manifest,
    target: &Target,
) -> anyhow::Result<f64> {
    let Some(position) = &manifest.binlog else {
        bail!("the backup was taken with the binary log off: there is nothing to replay from");
    };
    let first = args.binlogs[0]
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if first != position.file {
        bail!(
            "the backup stands at {}:{}; give the binlogs from {} on (got {first} first)",
            position.file,
            position.position,
            position.file
        );
    }
    let source = &manifest.eventstore.database;
    let options = OptionFile::new(target)?;
    let mut binlog = tokio::process::Command::new(crate::mariadb_tools::tool("mariadb-binlog"));
    binlog
        .arg(format!("--start-position={}", position.position))
        .arg(format!("--rewrite-db={source}->{}", target.database))
        // MariaDB's mariadb-binlog filters on the name as logged, before the rewrite
        // (MySQL's filters after it): only the source database's events, renamed.
        .arg(format!("--database={source}"))
        .args(&args.binlogs)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    if let Some(until) = &args.until {
        binlog.arg(format!("--stop-datetime={until}"));
    }
    let mut reader = binlog
        .spawn()
        .context("starting mariadb-binlog (package mariadb-client)")?;
    let mut client = command("mariadb", &options);
    client
        .args(["--binary-mode", "--max-allowed-packet=512M"])
        .arg(&target.database)
        .stdin(std::process::Stdio::piped());
    let mut writer = client.spawn().context("starting mariadb")?;
    let from = reader.stdout.take().context("mariadb-binlog's output")?;
    let to = writer.stdin.take().context("mariadb's input")?;
    let mut progress = Progress::new(format!("replaying binlogs into {}", target.database), None);
    let (done, _) = pump(from, to, &mut progress, 0).await?;
    finished(reader, "mariadb-binlog").await?;
    finished(writer, "mariadb").await?;
    Ok(progress.finish(done))
}

async fn check_anchors(
    args: &RestoreArgs,
    store: &EventStore,
    head: u64,
) -> anyhow::Result<AnchorCheck> {
    let (anchors, source): (Vec<SignedAnchor>, String) = match &args.anchors {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            (
                audit::parse_anchors(&text).context("reading the anchors")?,
                path.display().to_string(),
            )
        }
        None => {
            let mut all = Vec::new();
            loop {
                let after = all.last().map_or(0, |a: &SignedAnchor| a.position);
                let page = store.anchors(after, 1_000).await?;
                if page.is_empty() {
                    break;
                }
                all.extend(page);
            }
            (all, "the restored anchors table".into())
        }
    };
    let jwks = args
        .jwks
        .as_ref()
        .map(|path| Jwks::from_file(path).context("reading the anchors' JWKS"))
        .transpose()?;
    let mut check = AnchorCheck {
        source,
        signatures_checked: jwks.is_some(),
        ..AnchorCheck::default()
    };
    for anchor in anchors {
        if let Some(jwks) = &jwks {
            if anchor.verify(jwks).is_err() {
                check.invalid_signatures += 1;
                continue;
            }
        }
        if anchor.position > head {
            check.beyond_head += 1;
            check.latest_beyond_head = check.latest_beyond_head.max(Some(anchor.position));
            continue;
        }
        let event = store.read_all(anchor.position - 1, 1).await?;
        let matches = event
            .first()
            .is_some_and(|e| e.hash == anchor.hash && e.recorded_at == anchor.recorded_at);
        if matches {
            check.matched += 1;
            check.latest_matching = check.latest_matching.max(Some(anchor.position));
        } else {
            check.mismatched.push(anchor.position);
        }
    }
    Ok(check)
}

async fn reapply_erasures(
    args: &RestoreArgs,
    store: &EventStore,
    keys: &Target,
) -> anyhow::Result<Reapplied> {
    let mut subjects = std::collections::BTreeSet::new();
    let erased = EventType::parse("user.personal_data_erased")?;
    let in_log = store.events_of_type(&erased).await?;
    for (position, stream) in &in_log {
        let user = ledger::UserId::from_stream_id(stream.as_str())
            .with_context(|| format!("the erasure at {position} is not on a user stream"))?;
        subjects.insert(user.as_uuid());
    }
    let mut reapplied = Reapplied {
        in_log: in_log.len(),
        ..Reapplied::default()
    };
    for path in &args.erasure_registers {
        let (erasures, unreadable) = keyring::ErasureRegister::read(path)?;
        reapplied.in_registers += erasures.len();
        reapplied.unreadable_register_lines += unreadable;
        subjects.extend(erasures.into_iter().map(|e| e.subject));
    }
    let pool = sqlx::mysql::MySqlPoolOptions::new()
        .max_connections(1)
        .connect_with(keys.options()?)
        .await
        .context("connecting to the restored keys")?;
    reapplied.shredded = keyring::reapply(&pool, subjects)
        .await
        .context("shredding the erased subjects' keys")?;
    pool.close().await;
    Ok(reapplied)
}

/// `projector rebuild` on the restored database: `projector`, or the workspace's own
/// build.
fn rebuild(target: &Target, projector: Option<&std::path::Path>) -> anyhow::Result<()> {
    let program = match projector {
        Some(bin) => bin.to_owned(),
        None => {
            let root = crate::stack::workspace_root();
            let status = std::process::Command::new(crate::env_cargo())
                .args(["build", "--quiet", "-p", "projector", "--bin", "projector"])
                .current_dir(&root)
                .status()
                .context("building the projector")?;
            if !status.success() {
                bail!("building the projector failed");
            }
            root.join("target/debug/projector")
        }
    };
    eprintln!("restore: rebuilding the read tables …");
    let status = std::process::Command::new(&program)
        .arg("rebuild")
        .env("DATABASE_URL", &target.url)
        // Its report joins the progress on stderr: stdout is the restore's report.
        .stdout(std::io::stderr())
        .status()
        .with_context(|| format!("running {} rebuild", program.display()))?;
    if !status.success() {
        bail!("projector rebuild failed");
    }
    Ok(())
}

/// The report for people.
pub fn render(report: &RestoreReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let verdict = if report.ok {
        "RESTORED"
    } else {
        "RESTORED BUT NOT TRUSTWORTHY"
    };
    let _ = writeln!(
        out,
        "{verdict}: database {} holds the log up to position {} (head hash {})",
        report.database, report.head_position, report.head_hash
    );
    let _ = writeln!(
        out,
        "  loaded in {:.1} s{}; chain {} ({:.1} s)",
        report.load_seconds,
        report
            .binlog_seconds
            .map_or_else(String::new, |s| format!(", binlogs replayed in {s:.1} s")),
        match report.first_bad_position {
            None => "intact".to_owned(),
            Some(p) => format!("BROKEN at position {p}"),
        },
        report.verify_seconds
    );
    let a = &report.anchors;
    let _ = writeln!(
        out,
        "  anchors ({}{}): {} match, latest at {}{}",
        a.source,
        if a.signatures_checked {
            ", signatures checked"
        } else {
            ", signatures NOT checked: give --jwks"
        },
        a.matched,
        a.latest_matching
            .map_or_else(|| "-".to_owned(), |p| p.to_string()),
        if a.mismatched.is_empty() {
            String::new()
        } else {
            format!("; MISMATCH at {:?}", a.mismatched)
        }
    );
    if a.invalid_signatures > 0 {
        let _ = writeln!(
            out,
            "  {} anchors do NOT verify with the JWKS",
            a.invalid_signatures
        );
    }
    if let Some(latest) = a.latest_beyond_head {
        let _ = writeln!(
            out,
            "  LOST: {} anchor(s) were signed after this restore's head, the latest at {latest}: \
             events {} to at least {latest} were acknowledged and are not in this restore",
            a.beyond_head,
            report.head_position + 1
        );
    }
    let e = &report.erasures;
    let _ = writeln!(
        out,
        "  erasures: {} in the log, {} in the registers{}; {} keys shredded again",
        e.in_log,
        e.in_registers,
        if e.unreadable_register_lines > 0 {
            format!(" ({} unreadable lines)", e.unreadable_register_lines)
        } else {
            String::new()
        },
        e.shredded
    );
    let _ = writeln!(
        out,
        "  read tables: {}; {:.1} s in all",
        if report.rebuilt {
            "rebuilt from the restored log"
        } else {
            "NOT rebuilt: run `projector rebuild` before starting the services"
        },
        report.seconds
    );
    out
}
