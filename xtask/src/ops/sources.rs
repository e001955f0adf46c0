//! What the code declares, read from its sources: the metrics each service registers
//! (`Metrics::register` / `register_with_unit`) and the environment variables each binary
//! reads (clap's `env = "..."`). The compose files and the observability configuration
//! are checked against these, so a renamed metric or setting cannot leave them behind
//! silently. A textual reading, on purpose simple: it knows the shapes this code uses and
//! fails loudly on one it does not.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{bail, Context};

/// Where services register their metrics.
const METRIC_SOURCES: [&str; 6] = [
    "platform/src",
    "command-api/src",
    "query-api/src",
    "projector/src",
    "event-store/src/bin",
    "webhooks/src",
];

/// The exposition text the sources would produce: one `# TYPE` line per registered
/// metric, with prometheus-client's naming (the unit appended to the name).
pub fn registered_metrics(root: &Path) -> anyhow::Result<String> {
    let mut text = String::new();
    for dir in METRIC_SOURCES {
        for file in rust_files(&root.join(dir))? {
            let source = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let source = without_tests(&source);
            for call in register_calls(source) {
                let kind = metric_kind(source, &call.metric)
                    .with_context(|| format!("metric {} in {}", call.name, file.display()))?;
                let name = match &call.unit {
                    Some(unit) => format!("{}_{unit}", call.name),
                    None => call.name.clone(),
                };
                text.push_str(&format!("# TYPE {name} {kind}\n"));
            }
        }
    }
    if text.is_empty() {
        bail!(
            "found no registered metric under {}",
            METRIC_SOURCES.join(", ")
        );
    }
    Ok(text)
}

/// The environment variables one binary reads: clap `env = "..."` in its config files.
pub fn env_vars(root: &Path, files: &[&str]) -> anyhow::Result<BTreeSet<String>> {
    let mut vars = BTreeSet::new();
    for file in files {
        let source =
            std::fs::read_to_string(root.join(file)).with_context(|| format!("reading {file}"))?;
        let mut rest = source.as_str();
        while let Some(at) = rest.find("env = \"") {
            rest = &rest[at + 7..];
            if let Some(end) = rest.find('"') {
                vars.insert(rest[..end].to_owned());
                rest = &rest[end..];
            }
        }
    }
    if vars.is_empty() {
        bail!("no `env = \"...\"` setting in {}", files.join(", "));
    }
    Ok(vars)
}

fn rust_files(dir: &Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))?
        {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// The file up to its test module: tests register metrics of their own.
fn without_tests(source: &str) -> &str {
    source
        .find("#[cfg(test)]")
        .map_or(source, |at| &source[..at])
}

struct RegisterCall {
    name: String,
    unit: Option<String>,
    /// The field or variable holding the metric (`published` of `o.published.clone()`).
    metric: String,
}

fn register_calls(source: &str) -> Vec<RegisterCall> {
    let mut calls = Vec::new();
    for pattern in [".register(", ".register_with_unit("] {
        let mut from = 0;
        while let Some(at) = source[from..].find(pattern) {
            let open = from + at + pattern.len() - 1;
            from = open + 1;
            let args = split_args(&source[open..]);
            let Some(name) = args.first().and_then(|a| string_literal(a)) else {
                continue; // `register(name, help, metric)` forwarding, not a metric.
            };
            let unit = args
                .iter()
                .find_map(|a| a.split("Unit::").nth(1))
                .map(|u| u.trim().to_ascii_lowercase());
            let metric = args
                .last()
                .map(|a| {
                    let a = a.trim().trim_end_matches(".clone()");
                    a.rsplit('.').next().unwrap_or(a).trim().to_owned()
                })
                .unwrap_or_default();
            calls.push(RegisterCall { name, unit, metric });
        }
    }
    calls
}

/// The top-level arguments of the call whose `(` starts `text`.
fn split_args(text: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut depth = 0;
    let mut current = String::new();
    let mut in_string = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if in_string {
            current.push(c);
            if c == '\\' {
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                current.push(c);
            }
            '(' | '[' | '{' => {
                depth += 1;
                if depth > 1 {
                    current.push(c);
                }
            }
            ')' | ']' | '}' => {
                depth -= 1;
                if depth == 0 {
                    if !current.trim().is_empty() {
                        args.push(current.trim().to_owned());
                    }
                    return args;
                }
                current.push(c);
            }
            ',' if depth == 1 => {
                args.push(current.trim().to_owned());
                current.clear();
            }
            _ => current.push(c),
        }
    }
    args
}

fn string_literal(arg: &str) -> Option<String> {
    let arg = arg.trim();
    arg.strip_prefix('"')?.strip_suffix('"').map(str::to_owned)
}

/// counter, gauge or histogram: from a declared type of `ident` in the same file (the
/// first declaration that is a metric: `position: u64` elsewhere in the file is not),
/// following `type Alias = ...;` definitions.
fn metric_kind(source: &str, ident: &str) -> anyhow::Result<&'static str> {
    let declared = declared_types(source, ident);
    if declared.is_empty() {
        bail!("no `{ident}: Type` declaration found");
    }
    for ty in &declared {
        let mut ty = ty.clone();
        for _ in 0..4 {
            for (word, kind) in [
                ("Histogram", "histogram"),
                ("Counter", "counter"),
                ("Gauge", "gauge"),
            ] {
                if ty.contains(word) {
                    return Ok(kind);
                }
            }
            match type_alias(source, ty.trim()) {
                Some(aliased) => ty = aliased,
                None => break,
            }
        }
    }
    bail!("`{ident}` is declared as {declared:?}: none is a Counter, Gauge or Histogram")
}

/// The text after each `ident: ` up to the end of the type (a top-level `,`, `=`, `;`,
/// `)`, `{` or newline).
fn declared_types(source: &str, ident: &str) -> Vec<String> {
    let needle = format!("{ident}: ");
    let mut types = Vec::new();
    let mut from = 0;
    while let Some(at) = source[from..].find(&needle) {
        let start = from + at;
        from = start + needle.len();
        let before = source[..start].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let mut depth = 0;
        let mut ty = String::new();
        for c in source[from..].chars() {
            match c {
                '<' | '(' | '[' => depth += 1,
                '>' | ']' => depth -= 1,
                ')' if depth == 0 => break,
                ')' => depth -= 1,
                ',' | '=' | ';' | '\n' | '{' if depth == 0 => break,
                _ => {}
            }
            ty.push(c);
        }
        types.push(ty);
    }
    types
}

fn type_alias(source: &str, alias: &str) -> Option<String> {
    let needle = format!("type {alias} = ");
    let start = source.find(&needle)? + needle.len();
    // The `;` that ends the item, not one inside `[T; N]`.
    let mut depth = 0;
    let mut previous = ' ';
    for (i, c) in source[start..].char_indices() {
        let arrow = previous == '-';
        previous = c;
        match c {
            '<' | '(' | '[' => depth += 1,
            '>' if arrow => {}
            '>' | ')' | ']' => depth -= 1,
            ';' if depth == 0 => return Some(source[start..start + i].to_owned()),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_names_units_and_kinds() {
        let source = r#"
type ByCommand = Family<[(&'static str, &'static str); 1], Counter>;
type Latency = Family<Labels, Histogram, fn() -> Histogram>;
struct M { appends: ByCommand, lag: Gauge<f64, AtomicU64>, batch: Histogram }
fn register(metrics: &Metrics, m: &M) {
    metrics.register("command_appends", "Appends, by command", m.appends.clone());
    metrics.register_with_unit("relay_lag", "Age", Unit::Seconds, m.lag.clone());
    metrics.register("batch_events", "Per batch", m.batch.clone());
    self.registry_mut().register(name, help, metric);
}
"#;
        let calls = register_calls(source);
        let shown: Vec<(String, Option<String>, &str)> = calls
            .iter()
            .map(|c| {
                (
                    c.name.clone(),
                    c.unit.clone(),
                    metric_kind(source, &c.metric).unwrap(),
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                ("command_appends".into(), None, "counter"),
                ("batch_events".into(), None, "histogram"),
                ("relay_lag".into(), Some("seconds".into()), "gauge"),
            ]
        );
    }
}
