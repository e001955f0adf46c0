//! Grafana: the dashboards' PromQL parses, and provisioning finds the dashboards and
//! their data sources where compose mounts them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{ensure, Context};
use serde_yaml::Value;

use super::{as_str, observability, read_yaml, seq, tool, yaml_files};

/// Grafana's interval variables, as promtool should see them.
const GRAFANA_VARIABLES: [(&str, &str); 4] = [
    ("$__rate_interval", "5m"),
    ("$__interval", "1m"),
    ("$__range", "1h"),
    ("$__range_s", "3600"),
];

/// The dashboards' panels with their PromQL: (dashboard file, panel title, expr).
pub(super) fn dashboard_queries(root: &Path) -> anyhow::Result<Vec<(String, String, String)>> {
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
pub(super) fn dashboard_promql_parses(root: &Path) -> anyhow::Result<()> {
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

pub(super) fn grafana_provisioning(root: &Path) -> anyhow::Result<()> {
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
