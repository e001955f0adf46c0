//! `.sqlx/`: what the `sqlx::query!` macros know of each fixed query (its columns and
//! their types), committed so that every build checks the queries without a database
//! (`SQLX_OFFLINE` in `.cargo/config.toml`, ADR 0004).
//!
//! `sqlx-prepare` makes it from a database migrated here and now; `test` makes it again
//! and fails if it differs from what is committed, so a query changed without its data,
//! or a migration that changes a column a query reads, is caught. This is what
//! `cargo sqlx prepare [--check]` does, without installing sqlx-cli: the macros write
//! their data themselves when `SQLX_OFFLINE_DIR` is set and they run online.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;

use anyhow::{bail, Context};
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::{ConnectOptions, Connection, Executor};

use crate::stack::workspace_root;

/// The crates whose queries are macros.
const CRATES: &[&str] = &["read-model"];

/// Makes the query data; with `check`, compares it with `.sqlx/` and returns whether they
/// agree, else replaces `.sqlx/` with it and returns true.
pub async fn prepare(owner_url: &str, check: bool) -> anyhow::Result<bool> {
    let root = workspace_root();
    let scratch = root.join("target/sqlx-prepare");
    let out = scratch.join(format!("data-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;

    // The test prefix: a run cut short leaves it to `test`'s stale-database sweep.
    let database = format!("example_t_sqlx_{}", uuid::Uuid::new_v4().simple());
    let server = MySqlConnectOptions::from_str(owner_url)
        .context("DATABASE_URL is not a mysql:// URL")?
        .database("");
    let mut conn = server
        .connect()
        .await
        .context("connecting as the owner (DATABASE_URL)")?;
    conn.execute(format!("CREATE DATABASE `{database}`").as_str())
        .await
        .context("creating the database the query data is made from")?;
    let mut url = url::Url::parse(owner_url).context("DATABASE_URL is not a URL")?;
    url.set_path(&database);
    let made = make(&server.clone().database(&database), &url, &out).await;
    let _ = conn
        .execute(format!("DROP DATABASE IF EXISTS `{database}`").as_str())
        .await;
    let _ = conn.close().await;
    made?;

    let committed = root.join(".sqlx");
    let fresh = files(&out)?;
    let _ = std::fs::remove_dir_all(&out);
    if check {
        let old = files(&committed)?;
        if old == fresh {
            println!(
                "sqlx: .sqlx/ agrees with the queries ({} files)",
                fresh.len()
            );
            return Ok(true);
        }
        for name in old.keys().filter(|n| !fresh.contains_key(*n)) {
            println!("sqlx: .sqlx/{name} is for no query any more");
        }
        for (name, text) in &fresh {
            match old.get(name) {
                None => println!("sqlx: .sqlx/{name} is missing"),
                Some(o) if o != text => println!("sqlx: .sqlx/{name} differs"),
                Some(_) => {}
            }
        }
        println!("sqlx: .sqlx/ is stale: run `cargo xtask sqlx-prepare` and commit it");
        return Ok(false);
    }
    let _ = std::fs::remove_dir_all(&committed);
    std::fs::create_dir_all(&committed)?;
    for (name, text) in &fresh {
        std::fs::write(committed.join(name), text)?;
    }
    println!("sqlx: wrote {} files to .sqlx/", fresh.len());
    Ok(true)
}

/// Migrates the database `options` reach and checks the crates online with the macros writing into `out`.
async fn make(options: &MySqlConnectOptions, url: &url::Url, out: &Path) -> anyhow::Result<()> {
    let pool = MySqlPoolOptions::new()
        .max_connections(1)
        .connect_with(options.clone())
        .await?;
    for migrator in [
        event_store::migrator(),
        keyring::migrator(),
        read_model::migrator(),
    ] {
        migrator.run(&pool).await.context("migrating")?;
    }
    pool.close().await;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    for krate in CRATES {
        // A profile of its own: cleaning it makes the macros run again without touching
        // the artifacts of the main build.
        let clean = std::process::Command::new(&cargo)
            .args(["clean", "--quiet", "--profile", "sqlx-prepare", "-p", krate])
            .status()?;
        if !clean.success() {
            bail!("cargo clean -p {krate} failed");
        }
        let status = std::process::Command::new(&cargo)
            .args(["check", "--quiet", "--profile", "sqlx-prepare", "-p", krate])
            .env("SQLX_OFFLINE", "false")
            .env("SQLX_OFFLINE_DIR", out)
            .env("DATABASE_URL", url.as_str())
            .status()
            .context("running cargo check")?;
        if !status.success() {
            bail!("cargo check -p {krate} against a freshly migrated database failed");
        }
    }
    Ok(())
}

fn files(dir: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(out);
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".json") {
            out.insert(name, std::fs::read_to_string(entry.path())?);
        }
    }
    Ok(out)
}
