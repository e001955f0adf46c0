//! Sending a plan to command-api: phase by phase, each phase on several keep-alive
//! connections at once, with a progress bar.

use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::header::CONTENT_TYPE;
use reqwest::Method;

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

/// Sends `plan` to the command API at `base` (`http://host:port`) with `token`, phase by
/// phase.
pub(super) async fn load(plan: &Plan, base: &str, token: &str) -> anyhow::Result<Outcome> {
    let client = crate::http::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .context("making the HTTP client")?;
    let progress = ProgressBar::new(plan.len() as u64).with_style(
        ProgressStyle::with_template(
            "seeding {msg:<9} [{bar:30}] {pos:>5}/{len} {per_sec:>8} {elapsed}",
        )?
        .progress_chars("#-"),
    );
    let mut outcome = Outcome::default();
    let mut offset = 0;
    let result = async {
        for phase in &plan.phases {
            progress.set_message(phase.name);
            let (appended, replayed) =
                run_phase(&client, plan, phase, offset, base, token, &progress)
                    .await
                    .with_context(|| format!("seeding phase {:?}", phase.name))?;
            outcome.appended += appended;
            outcome.replayed += replayed;
            offset += phase.ops.len();
        }
        anyhow::Ok(())
    }
    .await;
    if result.is_ok() {
        progress.finish();
    } else {
        progress.abandon();
    }
    result.map(|()| outcome)
}

async fn run_phase(
    client: &reqwest::Client,
    plan: &Plan,
    phase: &Phase,
    offset: usize,
    base: &str,
    token: &str,
    progress: &ProgressBar,
) -> anyhow::Result<(usize, usize)> {
    let next = AtomicUsize::new(0);
    let appended = AtomicUsize::new(0);
    let replayed = AtomicUsize::new(0);
    let worker = || async {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(op) = phase.ops.get(i) else {
                return anyhow::Ok(());
            };
            let key = plan.key(offset + i);
            let answer = send(client, base, op, token, &key).await?;
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
            progress.inc(1);
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

/// The answer to one command.
struct Answer {
    status: u16,
    replayed: bool,
    body: String,
}

async fn send(
    client: &reqwest::Client,
    base: &str,
    op: &Op,
    token: &str,
    key: &str,
) -> anyhow::Result<Answer> {
    let method = Method::from_bytes(op.method().as_bytes())?;
    let mut request = client
        .request(method, format!("{base}{}", op.path()))
        .bearer_auth(token)
        .header("Idempotency-Key", key);
    if let Some(body) = op.body() {
        request = request.header(CONTENT_TYPE, "application/json").body(body);
    }
    let response = request.send().await.with_context(|| {
        format!(
            "sending {} {} to command-api at {base}",
            op.method(),
            op.path()
        )
    })?;
    let status = response.status().as_u16();
    let replayed = response
        .headers()
        .get("Idempotent-Replayed")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
    let body = response.text().await?;
    Ok(Answer {
        status,
        replayed,
        body,
    })
}
