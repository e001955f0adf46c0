//! The services a benchmark measures: release builds, started with a signing key of the
//! benchmark's own, awaited until they listen.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::net::TcpStream;

/// Release builds of `args` (`-p …` and the like): benchmarks measure optimised code.
pub(crate) fn build_release(root: &Path, args: &[&str]) -> anyhow::Result<()> {
    let status = std::process::Command::new(crate::env_cargo())
        .args(["build", "--release", "--quiet"])
        .args(args)
        .current_dir(root)
        .status()
        .with_context(|| format!("building {}", args.join(" ")))?;
    if !status.success() {
        bail!("building {} failed", args.join(" "));
    }
    Ok(())
}

/// A dev signing key of a benchmark's own (its JWKS for the services to trust) and a
/// `service` token signed with it; the directory goes when this is dropped.
pub(crate) struct BenchKeys {
    pub(crate) dir: std::path::PathBuf,
    pub(crate) token: String,
}

impl BenchKeys {
    pub(crate) fn new(root: &Path) -> anyhow::Result<Self> {
        let dir = root
            .join("target")
            .join("bench")
            .join(format!("keys-{}", uuid::Uuid::new_v4().simple()));
        let keys = platform::DevKeys::load_or_create(&dir)?;
        let token = keys.mint(
            uuid::Uuid::now_v7(),
            &[platform::Role::Service],
            Duration::from_secs(3600),
            platform::DEV_ISSUER,
            platform::DEV_AUDIENCE,
        )?;
        Ok(Self { dir, token })
    }

    /// `JWKS_FILE`, for a service that checks this key's tokens.
    pub(crate) fn jwks_file(&self) -> String {
        self.dir.join("jwks.json").display().to_string()
    }
}

impl Drop for BenchKeys {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts `target/release/<binary>` with `env` (quiet logs), killed when dropped.
pub(crate) fn spawn_release(
    root: &Path,
    binary: &str,
    env: &[(&str, String)],
) -> anyhow::Result<tokio::process::Child> {
    let mut cmd = tokio::process::Command::new(root.join("target/release").join(binary));
    cmd.current_dir(root)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true);
    for (name, value) in env {
        cmd.env(name, value);
    }
    cmd.spawn().with_context(|| format!("starting {binary}"))
}

/// Waits until something accepts connections on `addr`.
pub(crate) async fn wait_listening(addr: &str, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(addr).await.is_err() {
        if Instant::now() > deadline {
            bail!("{what} did not start listening on {addr}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}
