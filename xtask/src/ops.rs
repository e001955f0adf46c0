//! The operations checks: `cargo xtask ops-check`, and the `ops` suite of
//! `cargo xtask test`. Everything under compose/ and .github/ is configuration for real
//! tools; these checks run those tools (or read the files as they do) without a Docker
//! engine, so a broken stack fails here and not on a deployment host.
//!
//! - Prometheus: `promtool check config`, `check rules`, `test rules`; every alert has a
//!   unit test that makes it fire; the dashboard's PromQL parses.
//! - Metric names in the alert rules and the dashboard exist: against what the code
//!   registers (`sources.rs`), and in the end-to-end test against real scrapes of the
//!   four services ([`check_live_metrics`], which calls [`check_metric_references`]).
//! - Compose (`compose.rs`): `docker-compose config` of base + dev, staging and prod,
//!   then start order, health checks, replicas, settings, mounts, images, tokens vs the
//!   Keycloak realm, secrets made by gen-secrets.sh, the log shipper's config.
//! - Dockerfiles (`dockerfile.rs`), the gateway's nginx config (plain, TLS, and the
//!   compose image's), the shell scripts, the GitHub workflow.
//!
//! Installs what it needs from Debian's packages when missing: prometheus (promtool),
//! docker-compose, nginx.

mod compose;
mod dockerfile;
mod promql;
mod sources;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use serde_yaml::Value;

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

/// Grafana's interval variables, as promtool should see them.
const GRAFANA_VARIABLES: [(&str, &str); 4] = [
    ("$__rate_interval", "5m"),
    ("$__interval", "1m"),
    ("$__range", "1h"),
    ("$__range_s", "3600"),
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
        alerts_are_tested(&root)
    });
    report.check("the dashboard's PromQL parses (promtool)", || {
        dashboard_promql_parses(&root)
    });
    report.check(
        "Grafana provisioning finds the dashboard and its data source",
        || grafana_provisioning(&root),
    );
    report.check(
        "metric names in the rules and the dashboard are registered by the code",
        || check_metric_references(&sources::registered_metrics(&root)?),
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
        || broker_accounts(&root),
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
        gateway_image_config(&root)
    });
    report.check(
        "compose grants the service accounts what `xtask migrate` grants",
        || problems_to_result("compose/mariadb/grants.sh", compose_grants_match(&root)?),
    );
    report.check(
        "gateway: no admin console, /auth/ rate-limited, security headers in every location, X-Forwarded-For set, /dev/token only in dev",
        || problems_to_result("gateway", gateway_rules(&root)?),
    );
    report.check("every MariaDB that writes binary logs expires them", || {
        problems_to_result("compose/mariadb", binlogs_expire(&root)?)
    });
    report.check("shell scripts parse", || shell_scripts_parse(&root));
    report.check("entrypoint puts secret passwords into URLs", || {
        entrypoint_works(&root)
    });
    report.check("GitHub workflow: jobs, gates and images", || {
        workflow(&root, &configs)
    });
    report.finish()
}

/// `compose/rabbitmq/accounts.sh` gives the relay's and the projector's broker accounts
/// exactly the rights `event_store::relay::Topology` says (which `cargo xtask dev` and
/// the tests give them too).
fn broker_accounts(root: &Path) -> anyhow::Result<()> {
    let path = root.join("compose/rabbitmq/accounts.sh");
    let script =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let topology = event_store::relay::Topology::default();
    for (user, rights) in [
        (crate::broker::RELAY_USER, topology.relay_permissions()),
        (
            crate::broker::PROJECTOR_USER,
            topology.consumer_permissions(),
        ),
    ] {
        let declared = format!(
            "user={user} \\\n    configure='{}' \\\n    write='{}' \\\n    read='{}'\n",
            rights.configure, rights.write, rights.read
        );
        ensure!(
            script.contains(&declared),
            "{} does not declare {user}'s permissions as the code has them:\n{declared}",
            path.display()
        );
    }
    Ok(())
}

/// The GRANT lines of compose/mariadb/grants.sh for the
/// projector and reader accounts, against the tables in xtask/src/database.rs.
fn compose_grants_match(root: &Path) -> anyhow::Result<Vec<String>> {
    let script = std::fs::read_to_string(root.join("compose/mariadb/grants.sh"))
        .context("reading compose/mariadb/grants.sh")?;
    let mut problems = Vec::new();
    for (user, wanted) in [
        ("example_projector", crate::database::PROJECTOR_GRANTS),
        ("example_reader", crate::database::READER_GRANTS),
    ] {
        let mut found: Vec<(String, String)> = script
            .lines()
            .filter_map(|line| {
                let line = line.trim();
                let rest = line.strip_prefix("GRANT ")?;
                let (privileges, rest) = rest.split_once(" ON ")?;
                let (object, grantee) = rest.split_once(" TO ")?;
                if !grantee.starts_with(&format!("'{user}'@")) {
                    return None;
                }
                let table = object
                    .rsplit('.')
                    .next()?
                    .trim_matches(|c| c == '`' || c == '\\');
                Some((privileges.to_owned(), table.to_owned()))
            })
            .collect();
        let mut wanted: Vec<(String, String)> = wanted
            .iter()
            .map(|(p, t)| ((*p).to_owned(), (*t).to_owned()))
            .collect();
        found.sort();
        wanted.sort();
        if found != wanted {
            problems.push(format!(
                "{user}: grants.sh grants {found:?}, xtask migrate grants {wanted:?}"
            ));
        }
    }
    Ok(problems)
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

fn alerts_are_tested(root: &Path) -> anyhow::Result<()> {
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

/// The dashboards' panels with their PromQL: (dashboard file, panel title, expr).
fn dashboard_queries(root: &Path) -> anyhow::Result<Vec<(String, String, String)>> {
    let dir = observability(root).join("grafana/dashboards");
    let mut queries = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    ensure!(!files.is_empty(), "no dashboard in {}", dir.display());
    for file in files {
        let text = std::fs::read_to_string(&file)?;
        let dashboard: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", file.display()))?;
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut pending: Vec<&serde_json::Value> = dashboard["panels"]
            .as_array()
            .into_iter()
            .flatten()
            .collect();
        while let Some(panel) = pending.pop() {
            pending.extend(panel["panels"].as_array().into_iter().flatten());
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    let title = panel["title"].as_str().unwrap_or("(untitled)").to_owned();
                    queries.push((name.clone(), title, expr.to_owned()));
                }
            }
        }
    }
    ensure!(!queries.is_empty(), "the dashboards have no PromQL query");
    Ok(queries)
}

fn without_grafana_variables(expr: &str) -> String {
    let mut expr = expr.to_owned();
    // Longest first: $__range_s before $__range.
    let mut vars = GRAFANA_VARIABLES;
    vars.sort_by_key(|(v, _)| std::cmp::Reverse(v.len()));
    for (var, value) in vars {
        expr = expr.replace(var, value);
    }
    expr
}

/// promtool parses PromQL only in rule files: the dashboard's queries become recording
/// rules of a scratch file.
fn dashboard_promql_parses(root: &Path) -> anyhow::Result<()> {
    let mut rules = Vec::new();
    for (i, (_, _, expr)) in dashboard_queries(root)?.iter().enumerate() {
        let expr = without_grafana_variables(expr);
        ensure!(
            !expr.contains('$'),
            "a dashboard query uses a variable the check does not know: {expr}"
        );
        rules.push(serde_json::json!({"record": format!("dashboard:query_{i}"), "expr": expr}));
    }
    let doc = serde_json::json!({"groups": [{"name": "dashboard", "rules": rules}]});
    let path = std::env::temp_dir().join(format!("ledger-dashboard-{}.yml", uuid::Uuid::new_v4()));
    // JSON is YAML.
    std::fs::write(&path, serde_json::to_string_pretty(&doc)?)?;
    let result = tool(Command::new("promtool").args(["check", "rules"]).arg(&path));
    let _ = std::fs::remove_file(&path);
    result
}

fn grafana_provisioning(root: &Path) -> anyhow::Result<()> {
    let grafana = observability(root).join("grafana");
    let datasources = yaml_files(&grafana.join("provisioning/datasources"))?;
    let mut uids = BTreeSet::new();
    for file in datasources {
        for ds in seq(read_yaml(&file)?.get("datasources")) {
            uids.insert(as_str(ds.get("uid").unwrap_or(&Value::Null)).to_owned());
        }
    }
    let mut used = BTreeSet::new();
    let dir = grafana.join("dashboards");
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
        ensure!(
            dashboard["uid"].as_str().is_some_and(|u| !u.is_empty()),
            "{} has no uid",
            path.display()
        );
        let mut ids = BTreeSet::new();
        let mut pending: Vec<&serde_json::Value> = dashboard["panels"]
            .as_array()
            .into_iter()
            .flatten()
            .collect();
        while let Some(panel) = pending.pop() {
            pending.extend(panel["panels"].as_array().into_iter().flatten());
            if let Some(id) = panel["id"].as_i64() {
                ensure!(ids.insert(id), "{}: panel id {id} twice", path.display());
            }
            for ds in std::iter::once(&panel["datasource"]).chain(
                panel["targets"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| &t["datasource"]),
            ) {
                if let Some(uid) = ds["uid"].as_str() {
                    used.insert(uid.to_owned());
                }
            }
        }
    }
    let unknown: Vec<&String> = used.difference(&uids).collect();
    ensure!(
        unknown.is_empty(),
        "the dashboards use data sources nothing provisions: {unknown:?}"
    );
    // The provider reads the directory compose mounts the dashboards into.
    let compose = read_yaml(&root.join("compose/compose.yaml"))?;
    let mounts: Vec<String> = seq(compose["services"]["grafana"].get("volumes"))
        .map(|v| as_str(v).to_owned())
        .collect();
    for file in yaml_files(&grafana.join("provisioning/dashboards"))? {
        for provider in seq(read_yaml(&file)?.get("providers")) {
            let path = as_str(&provider["options"]["path"]);
            ensure!(
                mounts
                    .iter()
                    .any(|m| m == &format!("./observability/grafana/dashboards:{path}:ro")),
                "the dashboard provider reads {path}, where compose mounts no dashboards \
                 (grafana volumes: {mounts:?})"
            );
        }
    }
    Ok(())
}

/// Checks that every metric name the alert rules and the Grafana dashboards refer to is
/// exported: by one of the services (`scraped_metrics_text`: their `/metrics` answers,
/// concatenated), by a recording rule, or by Prometheus itself (`up`, `ALERTS`, ...).
pub(crate) fn check_metric_references(scraped_metrics_text: &str) -> anyhow::Result<()> {
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
    for (file, panel, expr) in dashboard_queries(&root)? {
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
    loop {
        let mut text = String::new();
        for addr in LIVE_METRICS {
            text.push_str(
                &scrape(addr)
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

/// `GET /metrics` over HTTP/1.0 (the server closes the connection after the body).
async fn scrape(addr: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let io = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream
            .write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
            .await?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await?;
        anyhow::Ok(answer)
    };
    let answer = tokio::time::timeout(Duration::from_secs(5), io)
        .await
        .context("timed out")??;
    let answer = String::from_utf8(answer).context("not UTF-8")?;
    let (head, body) = answer.split_once("\r\n\r\n").context("no HTTP header")?;
    let status = head.split_whitespace().nth(1).unwrap_or_default();
    ensure!(status == "200", "answered {status}");
    Ok(body.to_owned())
}

/// The compose gateway image's start script renders the shared templates, adds /auth/
/// and runs `nginx -t`, with a throw-away certificate like the stacks' secrets.
fn gateway_image_config(root: &Path) -> anyhow::Result<()> {
    let scratch = std::env::temp_dir().join(format!("ledger-gateway-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(scratch.join("ui"))?;
    let result = (|| {
        tool(
            Command::new("openssl")
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                ])
                .args(["-subj", "/CN=localhost", "-keyout"])
                .arg(scratch.join("key.pem"))
                .arg("-out")
                .arg(scratch.join("cert.pem")),
        )?;
        tool(
            Command::new("sh")
                .arg(root.join("compose/docker/gateway/start.sh"))
                .arg("--check")
                .env("GATEWAY_TEMPLATES", root.join("compose/gateway"))
                .env("GATEWAY_UI_ROOT", scratch.join("ui"))
                .env("GATEWAY_LISTEN", "127.0.0.1:18080")
                .env("GATEWAY_TLS_LISTEN", "127.0.0.1:18443")
                .env("GATEWAY_TLS_CERT", scratch.join("cert.pem"))
                .env("GATEWAY_TLS_KEY", scratch.join("key.pem"))
                .env("GATEWAY_KEYCLOAK", "keycloak:8080")
                .env(
                    "GATEWAY_OIDC_ISSUER",
                    "https://ledger.example/auth/realms/ledger",
                ),
        )
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

/// Binary logs keep row images (wrapped keys of erased users among them): every server
/// configuration that turns them on also expires them.
fn binlogs_expire(root: &Path) -> anyhow::Result<Vec<String>> {
    let mut problems = Vec::new();
    let mut files = vec![
        root.join("compose/mariadb/primary.cnf"),
        root.join("compose/mariadb/replica.cnf"),
    ];
    for entry in std::fs::read_dir(root.join("compose/mariadb/conf.d"))? {
        files.push(entry?.path());
    }
    for file in files {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        let setting = |name: &str| {
            text.lines()
                .any(|l| l.trim_start().starts_with(name) && l.contains('='))
        };
        if setting("log_bin")
            && !setting("expire_logs_days")
            && !setting("binlog_expire_logs_seconds")
        {
            problems.push(format!(
                "{} writes binary logs and never expires them",
                file.display()
            ));
        }
    }
    Ok(problems)
}

/// The `location` blocks of an nginx file: (the line that opens it, its text).
fn location_blocks(conf: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut rest = conf;
    while let Some(start) = rest.find("\nlocation ") {
        let block = &rest[start + 1..];
        let mut depth = 0usize;
        let mut end = block.len();
        for (i, c) in block.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        let head = block.lines().next().unwrap_or_default().trim().to_owned();
        blocks.push((head, block[..end].to_owned()));
        rest = &block[end..];
    }
    blocks
}

/// The gateway as compose renders it (start.sh, with Keycloak under /auth/ and TLS) and as
/// the dev stack renders it (GATEWAY_DEV_TOKENS=true), read back.
fn gateway_rules(root: &Path) -> anyhow::Result<Vec<String>> {
    let scratch =
        std::env::temp_dir().join(format!("ledger-gateway-rules-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(scratch.join("ui"))?;
    let result = (|| {
        tool(
            Command::new("sh")
                .arg(root.join("compose/docker/gateway/start.sh"))
                .arg("--render")
                .arg(scratch.join("compose"))
                .env("GATEWAY_TEMPLATES", root.join("compose/gateway"))
                .env("GATEWAY_UI_ROOT", scratch.join("ui"))
                .env("GATEWAY_KEYCLOAK", "keycloak:8080")
                .env(
                    "GATEWAY_OIDC_ISSUER",
                    "https://ledger.example/auth/realms/ledger",
                ),
        )?;
        tool(
            Command::new("sh")
                .arg(root.join("compose/gateway/render.sh"))
                .arg(scratch.join("dev"))
                .env("GATEWAY_UI_ROOT", scratch.join("ui"))
                .env("GATEWAY_DEV_TOKENS", "true"),
        )?;
        let read = |path: &str| {
            std::fs::read_to_string(scratch.join(path)).with_context(|| format!("reading {path}"))
        };
        let routes = read("compose/conf/routes.conf")?;
        let proxy = read("compose/conf/proxy.conf")?;
        let dev_routes = read("dev/conf/routes.conf")?;
        let mut problems = Vec::new();
        if !routes
            .lines()
            .any(|l| l.trim() == "include security_headers.conf;")
        {
            problems
                .push("routes.conf does not include security_headers.conf at server level".into());
        }
        let blocks = location_blocks(&format!("\n{routes}"));
        for (head, block) in &blocks {
            if !block.contains("add_header") || block.contains("include security_headers.conf;") {
                continue;
            }
            for header in [
                "X-Content-Type-Options",
                "X-Frame-Options",
                "Referrer-Policy",
                "Strict-Transport-Security",
            ] {
                if !block.contains(header) {
                    problems.push(format!(
                        "`{head}` has add_header lines of its own, which drop the server's, \
                         and not {header}: include security_headers.conf"
                    ));
                }
            }
        }
        for prefix in ["/auth/admin", "/auth/realms/master"] {
            let closed = blocks.iter().any(|(head, block)| {
                head.starts_with(&format!("location ^~ {prefix}")) && block.contains("return 404")
            });
            if !closed {
                problems.push(format!(
                    "{prefix} is not closed with `location ^~ {prefix}` (404)"
                ));
            }
        }
        match blocks
            .iter()
            .find(|(head, _)| head.starts_with("location /auth/ "))
        {
            Some((_, block)) if block.contains("limit_req zone=auth_per_ip") => {}
            Some(_) => {
                problems.push("/auth/ is not rate-limited (limit_req zone=auth_per_ip)".into())
            }
            None => problems.push("no /auth/ location in the compose gateway".into()),
        }
        if routes.contains("location = /dev/token") {
            problems.push("/dev/token is routed in compose".into());
        }
        if !dev_routes.contains("location = /dev/token") {
            problems.push("/dev/token is not routed in the dev stack".into());
        }
        if proxy.contains("$proxy_add_x_forwarded_for")
            || !proxy.contains("proxy_set_header X-Forwarded-For $remote_addr;")
        {
            problems.push("X-Forwarded-For must be set to $remote_addr, not appended to".into());
        }
        Ok(problems)
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

fn shell_scripts_parse(root: &Path) -> anyhow::Result<()> {
    let mut scripts = vec![root.join(".github/workflows/deploy.sh")];
    let mut pending = vec![root.join("compose")];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() && !path.ends_with("secrets") {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "sh") {
                scripts.push(path);
            }
        }
    }
    scripts.sort();
    for script in scripts {
        let text = std::fs::read_to_string(&script)?;
        let shell = if text.starts_with("#!/bin/bash") {
            "bash"
        } else {
            "sh"
        };
        tool(Command::new(shell).arg("-n").arg(&script))
            .with_context(|| format!("{} does not parse", script.display()))?;
    }
    Ok(())
}

/// compose/docker/entrypoint.sh: a password file becomes the URL's password; an unsafe
/// password or a URL without a user is refused.
fn entrypoint_works(root: &Path) -> anyhow::Result<()> {
    let script = root.join("compose/docker/entrypoint.sh");
    let scratch = std::env::temp_dir().join(format!("ledger-entry-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&scratch)?;
    let result = (|| {
        std::fs::write(scratch.join("good"), "s3cret-Pw.1\n")?;
        std::fs::write(scratch.join("bad"), "pa'ss\n")?;
        let run = |url: &str, file: &str| {
            Command::new("sh")
                .arg(&script)
                .args(["sh", "-c", "printf %s \"$DATABASE_URL\""])
                .env("DATABASE_URL", url)
                .env("DATABASE_PASSWORD_FILE", scratch.join(file))
                .output()
        };
        let out = run("mysql://example_writer@mariadb:3306/example", "good")?;
        ensure!(
            out.status.success()
                && out.stdout == b"mysql://example_writer:s3cret-Pw.1@mariadb:3306/example",
            "got {:?} ({})",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        ensure!(
            !run("mysql://example_writer@mariadb/example", "bad")?
                .status
                .success(),
            "a password with a quote was accepted"
        );
        ensure!(
            !run("mysql://mariadb/example", "good")?.status.success(),
            "a URL without a user was accepted"
        );
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

/// .github/workflows/ci.yml: lint with fmt and clippy -D warnings, `cargo xtask test`,
/// images for exactly the images compose builds, staging after the images, production
/// after staging behind its environment.
fn workflow(root: &Path, configs: &[Value]) -> anyhow::Result<()> {
    let doc = read_yaml(&root.join(".github/workflows/ci.yml"))?;
    let jobs = doc
        .get("jobs")
        .and_then(Value::as_mapping)
        .context("no jobs")?;
    let job = |name: &str| jobs.get(name).with_context(|| format!("no job {name}"));
    let runs = |name: &str| -> anyhow::Result<String> {
        Ok(seq(job(name)?.get("steps"))
            .filter_map(|s| s.get("run").map(as_str))
            .collect::<Vec<_>>()
            .join("\n"))
    };
    let needs = |name: &str| -> anyhow::Result<Vec<String>> {
        let needs = job(name)?.get("needs");
        Ok(match needs {
            Some(Value::String(s)) => vec![s.clone()],
            other => seq(other).map(|v| as_str(v).to_owned()).collect(),
        })
    };
    let environment = |name: &str| -> anyhow::Result<String> {
        let env = job(name)?.get("environment").context("no environment")?;
        Ok(env
            .get("name")
            .map_or_else(|| as_str(env), as_str)
            .to_owned())
    };
    let lint = runs("lint")?;
    ensure!(
        lint.contains("cargo fmt") && lint.contains("--check"),
        "lint runs no `cargo fmt --check`"
    );
    ensure!(
        lint.contains("cargo clippy") && lint.contains("-D warnings"),
        "lint runs no clippy -D warnings"
    );
    ensure!(
        runs("test")?.contains("cargo xtask test"),
        "the test job does not run `cargo xtask test`"
    );
    ensure!(
        ["lint", "test"]
            .iter()
            .all(|j| needs("images").is_ok_and(|n| n.iter().any(|x| x == j))),
        "images must wait for lint and test"
    );
    ensure!(
        needs("deploy-staging")? == ["images"],
        "deploy-staging must follow images"
    );
    ensure!(
        needs("deploy-production")? == ["deploy-staging"],
        "deploy-production must follow deploy-staging"
    );
    ensure!(
        environment("deploy-staging")? == "staging",
        "deploy-staging runs outside the staging environment"
    );
    ensure!(
        environment("deploy-production")? == "production",
        "deploy-production runs outside the production environment (its required reviewers are the gate)"
    );
    // The matrix builds what compose builds.
    let built: BTreeSet<(String, String)> =
        seq(job("images")?["strategy"]["matrix"].get("include"))
            .map(|e| {
                (
                    as_str(&e["dockerfile"]).to_owned(),
                    as_str(&e["target"]).to_owned(),
                )
            })
            .collect();
    let mut wanted = BTreeSet::new();
    for config in configs {
        for (_, service) in config
            .get("services")
            .and_then(Value::as_mapping)
            .into_iter()
            .flatten()
        {
            if let Some(build) = service.get("build") {
                wanted.insert((
                    as_str(&build["dockerfile"]).to_owned(),
                    build
                        .get("target")
                        .map(as_str)
                        .unwrap_or_default()
                        .to_owned(),
                ));
            }
        }
    }
    ensure!(
        !wanted.is_empty(),
        "no compose stack to compare the images with"
    );
    ensure!(
        built == wanted,
        "the images job builds {built:?}, compose builds {wanted:?}"
    );
    Ok(())
}
