//! Sending a plan to command-api: phase by phase, each phase on several keep-alive
//! connections at once, with a progress line.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::op::Op;
use super::plan::{Phase, Plan};

/// Connections in flight inside a phase.
const CONCURRENCY: usize = 8;

/// What a run did.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    pub(super) appended: usize,
    pub(super) replayed: usize,
}

/// Sends `plan` to the command API at `addr` (host:port) with `token`, phase by phase.
pub(super) async fn load(plan: &Plan, addr: &str, token: &str) -> anyhow::Result<Outcome> {
    let total = plan.len();
    let progress = Arc::new(Progress::new(total));
    let ticker = {
        let progress = progress.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(150)).await;
                progress.draw(false);
            }
        })
    };
    let mut outcome = Outcome::default();
    let mut offset = 0;
    let result = async {
        for phase in &plan.phases {
            progress.set_phase(phase.name);
            let (appended, replayed) = run_phase(plan, phase, offset, addr, token, &progress)
                .await
                .with_context(|| format!("seeding phase {:?}", phase.name))?;
            outcome.appended += appended;
            outcome.replayed += replayed;
            offset += phase.ops.len();
        }
        anyhow::Ok(())
    }
    .await;
    ticker.abort();
    progress.draw(true);
    result.map(|()| outcome)
}

async fn run_phase(
    plan: &Plan,
    phase: &Phase,
    offset: usize,
    addr: &str,
    token: &str,
    progress: &Progress,
) -> anyhow::Result<(usize, usize)> {
    let next = AtomicUsize::new(0);
    let appended = AtomicUsize::new(0);
    let replayed = AtomicUsize::new(0);
    let worker = || async {
        let mut client = Client::connect(addr).await?;
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(op) = phase.ops.get(i) else {
                return anyhow::Ok(());
            };
            let key = plan.key(offset + i);
            let answer = client.send(op, token, &key).await?;
            if answer.status != op.expected_status() {
                bail!(
                    "{} {} answered {} (expected {}): {}",
                    op.method(),
                    op.path(),
                    answer.status,
                    op.expected_status(),
                    answer.body
                );
            }
            if answer.replayed {
                replayed.fetch_add(1, Ordering::Relaxed);
            } else {
                appended.fetch_add(1, Ordering::Relaxed);
            }
            progress.advance();
        }
    };
    let workers: Vec<_> = (0..CONCURRENCY.min(phase.ops.len().max(1)))
        .map(|_| worker())
        .collect();
    for result in futures_util::future::join_all(workers).await {
        result?;
    }
    Ok((appended.into_inner(), replayed.into_inner()))
}

/// A redrawn status line: phase, bar, count of total, rate.
struct Progress {
    total: usize,
    done: AtomicUsize,
    phase: std::sync::Mutex<&'static str>,
    started: Instant,
    terminal: bool,
}

impl Progress {
    fn new(total: usize) -> Self {
        Self {
            total,
            done: AtomicUsize::new(0),
            phase: std::sync::Mutex::new(""),
            started: Instant::now(),
            terminal: std::io::stderr().is_terminal(),
        }
    }

    fn set_phase(&self, name: &'static str) {
        *self
            .phase
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = name;
    }

    fn advance(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    /// Redraws the line on a terminal; elsewhere prints only the final line.
    fn draw(&self, last: bool) {
        if !self.terminal && !last {
            return;
        }
        let done = self.done.load(Ordering::Relaxed);
        let phase = *self
            .phase
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let line = progress_line(
            phase,
            done,
            self.total,
            self.started.elapsed().as_secs_f64(),
        );
        if self.terminal {
            eprint!("\r{line}\x1b[K{}", if last { "\n" } else { "" });
        } else {
            eprintln!("{line}");
        }
    }
}

fn progress_line(phase: &str, done: usize, total: usize, seconds: f64) -> String {
    const WIDTH: usize = 30;
    let filled = (done * WIDTH)
        .checked_div(total)
        .unwrap_or(WIDTH)
        .min(WIDTH);
    let rate = if seconds > 0.0 {
        done as f64 / seconds
    } else {
        0.0
    };
    format!(
        "seeding {phase:<9} [{}{}] {done:>5}/{total} {rate:>6.0}/s",
        "#".repeat(filled),
        "-".repeat(WIDTH - filled),
    )
}

/// The answer to one command.
struct Answer {
    status: u16,
    replayed: bool,
    body: String,
}

/// A small HTTP/1.1 keep-alive client for our own command API, which always answers with
/// `Content-Length`.
struct Client {
    addr: String,
    stream: BufReader<TcpStream>,
}

impl Client {
    async fn connect(addr: &str) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to command-api at {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            addr: addr.to_owned(),
            stream: BufReader::new(stream),
        })
    }

    async fn send(&mut self, op: &Op, token: &str, key: &str) -> anyhow::Result<Answer> {
        let body = op.body().unwrap_or_default();
        let content_type = if op.body().is_some() {
            "Content-Type: application/json\r\n"
        } else {
            ""
        };
        let request = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {token}\r\n\
             Idempotency-Key: {key}\r\n{content_type}Content-Length: {}\r\n\r\n{body}",
            op.method(),
            op.path(),
            self.addr,
            body.len(),
        );
        self.stream.get_mut().write_all(request.as_bytes()).await?;
        let mut line = String::new();
        self.stream.read_line(&mut line).await?;
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("no HTTP status line in {line:?}"))?;
        let (mut length, mut replayed, mut close) = (None, false, false);
        loop {
            line.clear();
            self.stream.read_line(&mut line).await?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let Some((name, value)) = header.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse::<usize>()?);
            } else if name.eq_ignore_ascii_case("idempotent-replayed") {
                replayed = value.eq_ignore_ascii_case("true");
            } else if name.eq_ignore_ascii_case("connection") {
                close = value.eq_ignore_ascii_case("close");
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                bail!("command-api answered with Transfer-Encoding {value}; expected a Content-Length");
            }
        }
        let mut bytes = vec![0; length.unwrap_or(0)];
        self.stream.read_exact(&mut bytes).await?;
        if close {
            *self = Self::connect(&self.addr).await?;
        }
        Ok(Answer {
            status,
            replayed,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_line_shows_count_total_and_rate() {
        let line = progress_line("everyday", 1_000, 4_000, 2.0);
        assert!(line.contains("1000/4000"), "{line}");
        assert!(line.contains("500/s"), "{line}");
        assert!(line.contains(&format!("[{}{}]", "#".repeat(7), "-".repeat(23))));
        assert!(progress_line("users", 0, 0, 0.0).contains("0/0"));
    }
}
