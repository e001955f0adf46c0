//! `cargo xtask backup`: a consistent copy of the event store's database (the log, the
//! claims, the relay checkpoints, the anchors, and the data keys when they live there)
//! and, if it lives elsewhere, of the keyring's, with the binary-log position the copy
//! stands at, so a restore can be brought forward to any later moment (ADR 0019).
//!
//! `mariadb-dump --single-transaction` reads every table in one consistent snapshot
//! without locking writers; with the server's binary log on, `--master-data=2` writes the
//! snapshot's binlog file and position into the dump, which the manifest repeats. The
//! directory holds `eventstore.sql`, `keys.sql` (if separate) and `manifest.json`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use sqlx::{ConnectOptions, Connection, Row};

use crate::mariadb_tools::{command, finished, pump, OptionFile, Progress, Target};

#[derive(clap::Args, Clone)]
pub struct BackupArgs {
    /// The event store's database, as its owner.
    #[arg(long, env = "DATABASE_URL", default_value = crate::database::DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// The keyring's database, when `data_keys` lives apart from the log.
    #[arg(long, env = "KEYS_DATABASE_URL")]
    pub keys_database_url: Option<String>,
    /// A new directory for the backup.
    #[arg(long)]
    pub out: PathBuf,
}

/// What a backup holds and where it stands; `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub created_at: String,
    pub tool: String,
    pub server_version: String,
    pub eventstore: Dump,
    pub keys: Option<Dump>,
    /// The snapshot's place in the source's binary log; `None` when it is off (then no
    /// point-in-time recovery past the backup is possible).
    pub binlog: Option<BinlogPosition>,
    /// The log's head read just before the snapshot: the backup holds at least this.
    pub head_before: Option<Head>,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dump {
    /// The source database's name (binlog events name it).
    pub database: String,
    pub file: String,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BinlogPosition {
    pub file: String,
    pub position: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Head {
    pub position: u64,
    pub hash: String,
}

pub const MANIFEST: &str = "manifest.json";

pub async fn run(args: &BackupArgs) -> anyhow::Result<Manifest> {
    let started = std::time::Instant::now();
    let source = Target::parse(&args.database_url, "DATABASE_URL")?;
    if args.out.exists()
        && std::fs::read_dir(&args.out)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!(
            "{} exists and is not empty: a backup goes into a new directory",
            args.out.display()
        );
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    // The dumps hold wrapped data keys and every event: the owner's eyes only.
    #[cfg(unix)]
    std::fs::set_permissions(
        &args.out,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .with_context(|| format!("restricting {}", args.out.display()))?;

    let (server_version, log_bin, head) = look(&source).await?;
    if !log_bin {
        eprintln!(
            "backup: the server's binary log is off: this backup can be restored to the \
             moment it was taken, not brought forward"
        );
    }
    let (eventstore, binlog) = dump(&source, &args.out, "eventstore.sql", log_bin).await?;
    if log_bin && binlog.is_none() {
        bail!("mariadb-dump wrote no binlog position although the binary log is on");
    }
    let keys = match &args.keys_database_url {
        Some(url) => {
            let keys = Target::parse(url, "KEYS_DATABASE_URL")?;
            if keys.database == source.database && keys.host == source.host {
                None
            } else {
                // After the log's snapshot: any key shredded for an erasure in that
                // snapshot is shredded here too (the restore re-applies erasures anyway).
                Some(dump(&keys, &args.out, "keys.sql", false).await?.0)
            }
        }
        None => None,
    };
    let manifest = Manifest {
        created_at: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        tool: "mariadb-dump --single-transaction".into(),
        server_version,
        eventstore,
        keys,
        binlog,
        head_before: head,
        seconds: started.elapsed().as_secs_f64(),
    };
    let path = args.out.join(MANIFEST);
    std::fs::write(&path, serde_json::to_string_pretty(&manifest)? + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(manifest)
}

pub fn read_manifest(dir: &Path) -> anyhow::Result<Manifest> {
    let path = dir.join(MANIFEST);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a manifest", path.display()))
}

/// The server's version, whether its binary log is on, and the log's head.
async fn look(source: &Target) -> anyhow::Result<(String, bool, Option<Head>)> {
    let mut conn = source
        .options()?
        .connect()
        .await
        .context("connecting to the event store's database")?;
    let row = sqlx::query("SELECT VERSION(), @@log_bin")
        .fetch_one(&mut conn)
        .await?;
    let version: String = row.try_get(0)?;
    let log_bin: i64 = row.try_get(1)?;
    let head = sqlx::query("SELECT position, hash FROM events ORDER BY position DESC LIMIT 1")
        .fetch_optional(&mut conn)
        .await
        .context("reading the log's head")?
        .map(|row| -> anyhow::Result<Head> {
            Ok(Head {
                position: row.try_get(0)?,
                hash: hex::encode(row.try_get::<Vec<u8>, _>(1)?),
            })
        })
        .transpose()?;
    let _ = conn.close().await;
    Ok((version, log_bin == 1, head))
}

/// The tables' size as the server estimates it, for the progress line.
async fn estimate(target: &Target) -> Option<u64> {
    let mut conn = target.options().ok()?.connect().await.ok()?;
    let bytes: Option<i64> = sqlx::query_scalar(
        "SELECT CAST(SUM(data_length) AS SIGNED) FROM information_schema.tables \
         WHERE table_schema = DATABASE()",
    )
    .fetch_one(&mut conn)
    .await
    .ok()?;
    let _ = conn.close().await;
    bytes.and_then(|b| u64::try_from(b).ok())
}

/// `mariadb-dump` of `target`'s database into `dir/file`; the binlog position it wrote.
async fn dump(
    target: &Target,
    dir: &Path,
    file: &str,
    master_data: bool,
) -> anyhow::Result<(Dump, Option<BinlogPosition>)> {
    let options = OptionFile::new(target)?;
    let mut dump = command("mariadb-dump", &options);
    dump.args([
        "--single-transaction",
        "--quick",
        "--hex-blob",
        "--no-tablespaces",
        "--routines",
        "--default-character-set=utf8mb4",
        "--max-allowed-packet=512M",
    ]);
    if master_data {
        dump.arg("--master-data=2");
    }
    dump.arg(&target.database);
    let mut child = dump
        .spawn()
        .context("starting mariadb-dump (package mariadb-client)")?;
    let stdout = child.stdout.take().context("mariadb-dump's output")?;
    let path = dir.join(file);
    let mut create = tokio::fs::OpenOptions::new();
    create.write(true).create_new(true);
    #[cfg(unix)]
    create.mode(0o600);
    let out = create
        .open(&path)
        .await
        .with_context(|| format!("creating {}", path.display()))?;
    let mut progress = Progress::new(
        format!("dumping {} to {file}", target.database),
        estimate(target).await,
    );
    let (bytes, head) = pump(stdout, out, &mut progress, 64 * 1024).await?;
    finished(child, "mariadb-dump").await?;
    progress.finish(bytes);
    // Flushed to disk before the manifest names it.
    std::fs::File::open(&path)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("flushing {}", path.display()))?;
    let binlog = master_data
        .then(|| binlog_position(&String::from_utf8_lossy(&head)))
        .flatten();
    Ok((
        Dump {
            database: target.database.clone(),
            file: file.to_owned(),
            bytes,
        },
        binlog,
    ))
}

/// `-- CHANGE MASTER TO MASTER_LOG_FILE='mysql-bin.000003', MASTER_LOG_POS=385;`
fn binlog_position(header: &str) -> Option<BinlogPosition> {
    let line = header
        .lines()
        .find(|l| l.contains("CHANGE MASTER TO") && l.contains("MASTER_LOG_FILE"))?;
    let file = line.split("MASTER_LOG_FILE='").nth(1)?.split('\'').next()?;
    let position = line
        .split("MASTER_LOG_POS=")
        .nth(1)?
        .trim_end_matches(|c: char| !c.is_ascii_digit())
        .parse()
        .ok()?;
    Some(BinlogPosition {
        file: file.to_owned(),
        position,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_binlog_position_is_read_from_the_dump_header() {
        let header = "-- MariaDB dump\n--\n-- Position to start replication or point-in-time recovery from\n--\n\n-- CHANGE MASTER TO MASTER_LOG_FILE='binlog.000002', MASTER_LOG_POS=1234;\n";
        assert_eq!(
            binlog_position(header),
            Some(BinlogPosition {
                file: "binlog.000002".into(),
                position: 1234
            })
        );
        assert_eq!(binlog_position("-- nothing"), None);
    }
}
