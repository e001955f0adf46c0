//! `cargo xtask dev`: builds the services, runs them with their names before every log
//! line, and stops them all on Ctrl-C (or when one of them dies).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// One process of the stack.
pub struct Service {
    /// The binary, and the name before its log lines.
    pub name: &'static str,
    /// The package that builds it, and the features it needs.
    pub package: &'static str,
    pub features: &'static str,
    pub env: Vec<(&'static str, String)>,
    pub url: Option<String>,
}

pub fn workspace_root() -> PathBuf {
    // xtask lives one level below the workspace root.
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

pub async fn run(services: Vec<Service>) -> anyhow::Result<()> {
    if services.is_empty() {
        return Ok(());
    }
    let root = workspace_root();
    for s in &services {
        let mut build = std::process::Command::new(crate::env_cargo());
        build
            .args(["build", "--quiet", "-p", s.package, "--bin", s.name])
            .current_dir(&root);
        if !s.features.is_empty() {
            build.args(["--features", s.features]);
        }
        if !build.status().context("building the services")?.success() {
            bail!("building {} failed", s.name);
        }
    }
    let mut children: Vec<(&'static str, Child)> = Vec::new();
    for s in &services {
        let mut cmd = Command::new(root.join("target").join("debug").join(s.name));
        cmd.current_dir(&root)
            .envs(s.env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", s.name))?;
        if let Some(out) = child.stdout.take() {
            tokio::spawn(prefix_lines(s.name, BufReader::new(out)));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(prefix_lines(s.name, BufReader::new(err)));
        }
        if let Some(url) = &s.url {
            println!("{:>12} | {url}", s.name);
        }
        children.push((s.name, child));
    }
    println!("running; Ctrl-C stops everything");

    let first_exit = async {
        loop {
            for (name, child) in children.iter_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    return (*name, status);
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    };
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("listening for SIGTERM")?;
    let outcome = tokio::select! {
        _ = tokio::signal::ctrl_c() => None,
        _ = terminate.recv() => None,
        (name, status) = first_exit => Some((name, status)),
    };
    for (_, child) in children.iter_mut() {
        if let Some(pid) = child.id() {
            // SIGTERM first, so that services shut down gracefully.
            let _ = std::process::Command::new("kill")
                .arg(pid.to_string())
                .status();
        }
    }
    for (name, child) in children.iter_mut() {
        match tokio::time::timeout(std::time::Duration::from_secs(10), child.wait()).await {
            Ok(_) => {}
            Err(_) => {
                eprintln!("{name} did not stop in 10 s; killing it");
                let _ = child.kill().await;
            }
        }
    }
    match outcome {
        Some((name, status)) => bail!("{name} exited ({status}); stopped the rest"),
        None => {
            println!("stopped");
            Ok(())
        }
    }
}

async fn prefix_lines<R: tokio::io::AsyncRead + Unpin>(name: &'static str, reader: BufReader<R>) {
    let mut lines = reader.lines();
    while let Ok(Some(line)) = lines.next_line().await {
        println!("{name:>12} | {line}");
    }
}
