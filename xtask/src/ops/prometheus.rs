//! Prometheus: the rules, that every alert has a unit test that fires it, and that the
//! metric names the rules and dashboards use are exported by the code and, in the
//! end-to-end stack, by the running services.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use serde_yaml::Value;

use super::{as_str, observability, promql, read_yaml, seq, yaml_files};
use crate::stack::workspace_root;

/// Series Prometheus makes itself, beside the ones it scrapes.
const PROMETHEUS_SERIES: [&str; 7] = [
    "up",
    "ALERTS",
    "ALERTS_FOR_STATE",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

/// The services' `/metrics` in the end-to-end stack (API.md's addresses; the webhook
/// deliverer's on 9103).
const LIVE_METRICS: [&str; 5] = [
    "127.0.0.1:8081",
    "127.0.0.1:8082",
    "127.0.0.1:9101",
    "127.0.0.1:9102",
    "127.0.0.1:9103",
];

/// Every rule of the rule files: (file name, alert or record name, expression).
fn rules(root: &Path) -> anyhow::Result<Vec<(String, Rule)>> {
    let mut all = Vec::new();
    for file in yaml_files(&observability(root).join("rules"))? {
        let doc = read_yaml(&file)?;
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for group in seq(doc.get("groups")) {
            for rule in seq(group.get("rules")) {
                let expr = as_str(rule.get("expr").unwrap_or(&Value::Null)).to_owned();
                let rule = match (rule.get("alert"), rule.get("record")) {
                    (Some(alert), _) => Rule::Alert(as_str(alert).to_owned(), expr),
                    (None, Some(record)) => Rule::Record(as_str(record).to_owned(), expr),
                    _ => bail!("{name}: a rule with neither alert nor record"),
                };
                all.push((name.clone(), rule));
            }
        }
    }
    Ok(all)
}

enum Rule {
    Alert(String, String),
    Record(String, String),
}

pub(super) fn alerts_are_tested(root: &Path) -> anyhow::Result<()> {
    let alerts: BTreeSet<String> = rules(root)?
        .into_iter()
        .filter_map(|(_, r)| match r {
            Rule::Alert(name, _) => Some(name),
            Rule::Record(..) => None,
        })
        .collect();
    let mut fired = BTreeSet::new();
    for file in yaml_files(&observability(root).join("tests"))? {
        let doc = read_yaml(&file)?;
        for test in seq(doc.get("tests")) {
            for case in seq(test.get("alert_rule_test")) {
                if seq(case.get("exp_alerts")).next().is_some() {
                    fired.insert(as_str(case.get("alertname").unwrap_or(&Value::Null)).to_owned());
                }
            }
        }
    }
    let untested: Vec<&String> = alerts.difference(&fired).collect();
    ensure!(
        untested.is_empty(),
        "alerts no unit test makes fire: {untested:?}"
    );
    Ok(())
}

/// Checks that every metric name the alert rules and the Grafana dashboards refer to is
/// exported: by one of the services (`scraped_metrics_text`: their `/metrics` answers,
/// concatenated), by a recording rule, or by Prometheus itself (`up`, `ALERTS`, ...).
pub(super) fn check_metric_references(scraped_metrics_text: &str) -> anyhow::Result<()> {
    let root = workspace_root();
    let mut known = promql::exported_names(scraped_metrics_text);
    known.extend(PROMETHEUS_SERIES.iter().map(|s| (*s).to_owned()));
    let mut references: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (file, rule) in rules(&root)? {
        let (kind, name, expr) = match &rule {
            Rule::Alert(name, expr) => ("alert", name, expr),
            Rule::Record(name, expr) => {
                known.insert(name.clone());
                ("record", name, expr)
            }
        };
        for metric in promql::metric_names(expr) {
            references
                .entry(metric)
                .or_default()
                .insert(format!("rules/{file} {kind} {name}"));
        }
    }
    for (file, panel, expr) in super::grafana::dashboard_queries(&root)? {
        for metric in promql::metric_names(&expr) {
            references
                .entry(metric)
                .or_default()
                .insert(format!("dashboards/{file} panel \"{panel}\""));
        }
    }
    let missing: Vec<String> = references
        .iter()
        .filter(|(name, _)| !known.contains(*name))
        .map(|(name, places)| {
            format!(
                "{name} (in {})",
                places.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        })
        .collect();
    ensure!(
        missing.is_empty(),
        "metrics that nothing exports:\n  - {}",
        missing.join("\n  - ")
    );
    Ok(())
}

/// In the end-to-end stack: scrapes the four services' `/metrics` and checks the rules
/// and dashboards against what they really export. Retries for a few seconds: a
/// service's metrics may register a moment after it reports ready.
pub(crate) async fn check_live_metrics() -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let client = crate::http::client()?;
    loop {
        let mut text = String::new();
        for addr in LIVE_METRICS {
            text.push_str(
                &scrape(&client, addr)
                    .await
                    .with_context(|| format!("scraping {addr}/metrics"))?,
            );
        }
        match check_metric_references(&text) {
            Ok(()) => {
                println!("metrics: the rules' and dashboards' metric names are all exported");
                return Ok(());
            }
            Err(e) if tokio::time::Instant::now() > deadline => {
                return Err(e.context("checking the live /metrics of the stack"))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// `GET /metrics` of the service at `addr`, within 5 s.
async fn scrape(client: &reqwest::Client, addr: &str) -> anyhow::Result<String> {
    let response = client
        .get(format!("http://{addr}/metrics"))
        .timeout(Duration::from_secs(5))
        .send()
        .await?;
    let status = response.status();
    ensure!(status.is_success(), "answered {}", status.as_u16());
    Ok(response.text().await?)
}
