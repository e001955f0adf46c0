//! The operations checks: `cargo xtask ops-check`, and the `ops` suite of
//! `cargo xtask test`. Everything under compose/ and .github/ is configuration for real
//! tools; these checks run those tools (or read the files as they do) without a Docker
//! engine, so a broken stack fails here and not on a deployment host.
//!
//! - Prometheus: `promtool check config`, `check rules`, `test rules`; every alert has a
//!   unit test that makes it fire; the dashboard's PromQL parses.
//! - Metric names in the alert rules and the dashboard exist: against what the code
//!   registers (`sources.rs`), and in the end-to-end test against real scrapes of the
//!   four services ([`check_live_metrics`], which calls `prometheus::check_metric_references`).
//! - Compose (`compose.rs`): `docker-compose config` of base + dev, staging and prod,
//!   then start order, health checks, replicas, settings, mounts, images, tokens vs the
//!   Keycloak realm, secrets made by gen-secrets.sh, the log shipper's config.
//! - Dockerfiles (`dockerfile.rs`), the gateway's nginx config (plain, TLS, and the
//!   compose image's), the shell scripts, the GitHub workflow.
//!
//! Modules: `prometheus.rs` (rules, alert tests, metric names against the code and the
//! live services), `grafana.rs` (dashboards and provisioning), `promql.rs` (metric names
//! in PromQL and in `/metrics` text), `sources.rs` (metric names the code registers),
//! `compose.rs` (the stacks), `dockerfile.rs`, `gateway.rs` (nginx), `mariadb.rs`
//! (grants, binary logs), `rabbitmq.rs` (broker accounts), `scripts.rs` (shell scripts,
//! the entrypoint), `workflow.rs` (CI).
//!
//! Installs what it needs from Debian's packages when missing: prometheus (promtool),
//! docker-compose, nginx.

mod compose;
mod dockerfile;
mod gateway;
mod grafana;
mod mariadb;
mod prometheus;
mod promql;
mod rabbitmq;
mod scripts;
mod sources;
mod workflow;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context};
use serde_yaml::Value;

use crate::stack::workspace_root;

pub(crate) use prometheus::check_live_metrics;

fn observability(root: &Path) -> PathBuf {
    root.join("compose/observability")
}

/// Every check; fails when any does, after running them all.
pub fn run() -> anyhow::Result<()> {
    crate::frontend::apt_install("promtool", "prometheus")?;
    crate::frontend::apt_install("docker-compose", "docker-compose")?;
    crate::frontend::apt_install("nginx", "nginx")?;
    crate::frontend::apt_install("openssl", "openssl")?;
    let root = workspace_root();
    let mut report = Report::default();

    let obs = observability(&root);
    report.check("promtool check config", || {
        tool(
            Command::new("promtool")
                .args(["check", "config"])
                .arg(obs.join("prometheus.yml")),
        )
    });
    report.check("promtool check rules", || {
        tool(
            Command::new("promtool")
                .args(["check", "rules"])
                .args(yaml_files(&obs.join("rules"))?),
        )
    });
    report.check("promtool test rules", || {
        tool(
            Command::new("promtool")
                .args(["test", "rules"])
                .args(yaml_files(&obs.join("tests"))?),
        )
    });
    report.check("every alert has a unit test that fires it", || {
        prometheus::alerts_are_tested(&root)
    });
    report.check("the dashboard's PromQL parses (promtool)", || {
        grafana::dashboard_promql_parses(&root)
    });
    report.check(
        "Grafana provisioning finds the dashboard and its data source",
        || grafana::grafana_provisioning(&root),
    );
    report.check(
        "metric names in the rules and the dashboard are registered by the code",
        || prometheus::check_metric_references(&sources::registered_metrics(&root)?),
    );

    report.check("compose files parse without duplicate keys", || {
        compose::parse_sources(&root)
    });
    let mut configs = Vec::new();
    for (stack, file) in compose::STACKS {
        report.check(
            &format!("docker-compose config: compose.yaml + {file}"),
            || {
                let config = compose::merged(&root, file)?;
                let problems = compose::check_stack(&root, &config)?;
                configs.push(config);
                problems_to_result(&format!("the {stack} stack"), problems)
            },
        );
    }
    report.check("gen-secrets.sh makes every secret the stacks use", || {
        problems_to_result("secrets", compose::check_secrets(&root, &configs)?)
    });
    report.check(
        "the broker accounts get the rights the code gives them (rabbitmq/accounts.sh)",
        || rabbitmq::broker_accounts(&root),
    );
    report.check("the Keycloak realm gives the APIs what they check", || {
        problems_to_result(
            "ledger-realm.json",
            compose::check_realm(&compose::realm(&root)?),
        )
    });
    report.check("the Fluent Bit configuration is consistent", || {
        let base = configs.first().context("no merged stack to read")?;
        problems_to_result("fluent-bit", compose::check_fluent_bit(&root, base)?)
    });

    report.check("gateway: nginx -t (compose/gateway/check.sh)", || {
        tool(Command::new("sh").arg(root.join("compose/gateway/check.sh")))
    });
    report.check("gateway image: nginx -t with TLS and /auth/", || {
        gateway::gateway_image_config(&root)
    });
    report.check(
        "compose grants the service accounts what `xtask migrate` grants",
        || {
            problems_to_result(
                "compose/mariadb/grants.sh",
                mariadb::compose_grants_match(&root)?,
            )
        },
    );
    report.check(
        "gateway: no admin console, /auth/ rate-limited, security headers in every location, X-Forwarded-For set, /dev/token only in dev",
        || problems_to_result("gateway", gateway::gateway_rules(&root)?),
    );
    report.check("every MariaDB that writes binary logs expires them", || {
        problems_to_result("compose/mariadb", mariadb::binlogs_expire(&root)?)
    });
    report.check("shell scripts parse", || {
        scripts::shell_scripts_parse(&root)
    });
    report.check("entrypoint puts secret passwords into URLs", || {
        scripts::entrypoint_works(&root)
    });
    report.check("GitHub workflow: jobs, gates and images", || {
        workflow::workflow(&root, &configs)
    });
    report.finish()
}

#[derive(Default)]
struct Report {
    passed: usize,
    failed: Vec<String>,
}

impl Report {
    fn check(&mut self, name: &str, check: impl FnOnce() -> anyhow::Result<()>) {
        match check() {
            Ok(()) => {
                println!("ops: ok   {name}");
                self.passed += 1;
            }
            Err(e) => {
                println!("ops: FAIL {name}\n{e:#}\n");
                self.failed.push(name.to_owned());
            }
        }
    }

    fn finish(self) -> anyhow::Result<()> {
        println!(
            "ops: {} checks ok, {} failing",
            self.passed,
            self.failed.len()
        );
        if !self.failed.is_empty() {
            bail!("operations checks failing: {}", self.failed.join("; "));
        }
        Ok(())
    }
}

fn problems_to_result(what: &str, problems: Vec<String>) -> anyhow::Result<()> {
    if problems.is_empty() {
        return Ok(());
    }
    bail!("{what}:\n  - {}", problems.join("\n  - "))
}

/// Runs a tool; its output becomes the error when it fails.
fn tool(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("running {:?}", cmd.get_program()))?;
    if !out.status.success() {
        bail!(
            "{:?} failed ({}):\n{}{}",
            cmd,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn yaml_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
        .collect();
    files.sort();
    ensure!(!files.is_empty(), "no YAML file in {}", dir.display());
    Ok(files)
}

fn read_yaml(path: &Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_yaml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

fn as_str(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

fn seq(value: Option<&Value>) -> impl Iterator<Item = &Value> {
    value.and_then(Value::as_sequence).into_iter().flatten()
}
