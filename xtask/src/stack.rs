//! `cargo xtask dev`: builds the services, runs them with their names before every log
//! line, and stops them all on Ctrl-C (or when one of them dies).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

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
    /// A program that is not ours to build (the gateway), with its arguments.
    pub program: Option<String>,
    pub args: Vec<String>,
    pub env: Vec<(&'static str, String)>,
    pub url: Option<String>,
}

pub fn workspace_root() -> PathBuf {
    // xtask lives one level below the workspace root.
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Processes started together and stopped together.
pub struct Stack {
    children: Vec<(&'static str, Child)>,
    routine: Routine,
}

/// Whether the services' routine log lines (info and below) are shown, and how many were
/// held back: a task's own progress line stays readable among thousands of request logs.
#[derive(Clone, Default)]
struct Routine {
    hidden: Arc<AtomicBool>,
    held_back: Arc<AtomicUsize>,
}

impl Stack {
    /// Builds what is ours to build and starts every service.
    pub async fn start(services: &[Service]) -> anyhow::Result<Self> {
        let root = workspace_root();
        for s in services.iter().filter(|s| s.program.is_none()) {
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
        let mut stack = Stack {
            children: Vec::new(),
            routine: Routine::default(),
        };
        for s in services {
            let mut cmd = match &s.program {
                Some(program) => Command::new(program),
                None => Command::new(root.join("target").join("debug").join(s.name)),
            };
            cmd.args(&s.args)
                .current_dir(&root)
                .envs(s.env.iter().map(|(k, v)| (*k, v.as_str())))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true);
            let mut child = cmd
                .spawn()
                .with_context(|| format!("starting {}", s.name))?;
            if let Some(out) = child.stdout.take() {
                tokio::spawn(prefix_lines(
                    s.name,
                    BufReader::new(out),
                    stack.routine.clone(),
                ));
            }
            if let Some(err) = child.stderr.take() {
                tokio::spawn(prefix_lines(
                    s.name,
                    BufReader::new(err),
                    stack.routine.clone(),
                ));
            }
            if let Some(url) = &s.url {
                println!("{:>12} | {url}", s.name);
            }
            stack.children.push((s.name, child));
        }
        Ok(stack)
    }

    /// Waits until every URL answers 200 (or a service exits).
    pub async fn wait_ready(&mut self, urls: &[&str], limit: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + limit;
        let client = crate::http::client()?;
        for url in urls {
            loop {
                if let Some((name, status)) = self.exited() {
                    bail!("{name} exited ({status}) before the stack was ready");
                }
                if http_ok(&client, url).await {
                    break;
                }
                if tokio::time::Instant::now() > deadline {
                    bail!("{url} did not become ready within {limit:?}");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Ok(())
    }

    fn exited(&mut self) -> Option<(&'static str, std::process::ExitStatus)> {
        self.children
            .iter_mut()
            .find_map(|(name, child)| match child.try_wait() {
                Ok(Some(status)) => Some((*name, status)),
                _ => None,
            })
    }

    /// Runs until Ctrl-C, SIGTERM or the first service to exit.
    pub async fn supervise(&mut self) -> anyhow::Result<()> {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .context("listening for SIGTERM")?;
        let first_exit = async {
            loop {
                if let Some(exit) = self.exited() {
                    return exit;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => Ok(()),
            _ = terminate.recv() => Ok(()),
            (name, status) = first_exit => Err(anyhow::anyhow!("{name} exited ({status})")),
        }
    }

    /// SIGTERM to every service (they shut down gracefully), SIGKILL after 10 s.
    pub async fn stop(mut self) {
        for (_, child) in self.children.iter_mut() {
            if let Some(pid) = child.id() {
                let _ = std::process::Command::new("kill")
                    .arg(pid.to_string())
                    .status();
            }
        }
        for (name, child) in self.children.iter_mut() {
            if tokio::time::timeout(Duration::from_secs(10), child.wait())
                .await
                .is_err()
            {
                eprintln!("{name} did not stop in 10 s; killing it");
                let _ = child.kill().await;
            }
        }
    }
}

/// Starts the stack and keeps it running until Ctrl-C.
pub async fn run(services: Vec<Service>) -> anyhow::Result<()> {
    run_then(services, &[], async { Ok(()) }).await
}

/// Like [`run`], and once every URL of `ready` answers, runs `task` (e.g. loading seed
/// data) before settling down. Ctrl-C during the task stops everything; a failed task
/// stops everything with its error.
pub async fn run_then(
    services: Vec<Service>,
    ready: &[&str],
    task: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    if services.is_empty() {
        return Ok(());
    }
    let mut stack = Stack::start(&services).await?;
    let prepared = async {
        stack.wait_ready(ready, Duration::from_secs(180)).await?;
        stack.routine.hidden.store(true, Ordering::Relaxed);
        let done = tokio::select! {
            done = task => done.map(|()| true),
            _ = tokio::signal::ctrl_c() => Ok(false),
        };
        stack.routine.hidden.store(false, Ordering::Relaxed);
        let held_back = stack.routine.held_back.swap(0, Ordering::Relaxed);
        if held_back > 0 {
            println!("({held_back} routine log lines of the services were not shown meanwhile; warnings and errors were)");
        }
        done
    }
    .await;
    let outcome = match prepared {
        Ok(true) => {
            println!("running; Ctrl-C stops everything");
            stack.supervise().await
        }
        Ok(false) => Ok(()),
        Err(e) => Err(e),
    };
    stack.stop().await;
    match outcome {
        Ok(()) => {
            println!("stopped");
            Ok(())
        }
        Err(e) => Err(e.context("stopped the rest")),
    }
}

/// A GET; true on a 2xx answer within 2 s.
async fn http_ok(client: &reqwest::Client, url: &str) -> bool {
    client
        .get(url)
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .is_ok_and(|response| response.status().is_success())
}

async fn prefix_lines<R: tokio::io::AsyncRead + Unpin>(
    name: &'static str,
    reader: BufReader<R>,
    routine: Routine,
) {
    let mut lines = reader.lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if routine.hidden.load(Ordering::Relaxed) && is_routine(&line) {
            routine.held_back.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        println!("{name:>12} | {line}");
    }
}

/// An info, debug or trace line of our services' JSON logs, or a gateway access log line.
fn is_routine(line: &str) -> bool {
    [
        "\"level\":\"INFO\"",
        "\"level\":\"DEBUG\"",
        "\"level\":\"TRACE\"",
    ]
    .iter()
    .any(|level| line.contains(level))
        || line.starts_with("{\"time\":") && line.contains("\"upstream\":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routine_lines_are_info_and_below_and_access_logs() {
        assert!(is_routine(
            r#"{"service":"command-api","level":"INFO","message":"request completed"}"#
        ));
        assert!(is_routine(
            r#"{"time":"2026-01-01T00:00:00+00:00","status":200,"upstream":"127.0.0.1:8082"}"#
        ));
        assert!(!is_routine(
            r#"{"service":"projector","level":"WARN","message":"parked"}"#
        ));
        assert!(!is_routine("thread 'main' panicked at src/main.rs:1:1"));
    }
}
