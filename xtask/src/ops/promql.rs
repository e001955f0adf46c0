//! Metric names: the ones a PromQL expression refers to, and the ones a `/metrics` text
//! exports. A small scanner, not a PromQL parser: `promtool` checks the syntax; this only
//! has to tell metric names from functions, keywords, label names and literals.
//!
//! Why not promtool here too: the promtool this suite installs (Debian's prometheus
//! package, 2.42) has no command that lists the metrics an expression selects or the
//! names a `/metrics` text exports (`check metrics` only lints it; the `promql`
//! subcommands came later and are experimental).

use std::collections::BTreeSet;

/// Aggregation operators and keywords: identifiers that are never metric names.
const KEYWORDS: [&str; 22] = [
    "sum",
    "avg",
    "count",
    "min",
    "max",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "group",
    "limitk",
    "limit_ratio",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "atan2",
    "inf",
    "nan",
];

/// Keywords followed by a parenthesised list of label names.
const GROUPING: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The metric names `expr` selects. Grafana's `$variables` are skipped.
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => i = skip_string(&chars, i),
            '{' => i = skip_balanced(&chars, i, '{', '}'),
            '[' => i = skip_balanced(&chars, i, '[', ']'),
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '$' => {
                i += 1;
                if chars.get(i) == Some(&'{') {
                    i = skip_balanced(&chars, i, '{', '}');
                } else {
                    while i < chars.len() && is_ident(chars[i]) {
                        i += 1;
                    }
                }
            }
            c if c.is_ascii_digit() || c == '.' => {
                // Numbers and durations: 0.25, 1e-3, 0x1f, 5m, 1h30m.
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            c if is_ident_start(c) => {
                let start = i;
                while i < chars.len() && is_ident(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let mut next = i;
                while next < chars.len() && chars[next].is_whitespace() {
                    next += 1;
                }
                let lower = word.to_ascii_lowercase();
                if GROUPING.contains(&lower.as_str()) {
                    if chars.get(next) == Some(&'(') {
                        i = skip_balanced(&chars, next, '(', ')');
                    }
                } else if chars.get(next) == Some(&'(') || KEYWORDS.contains(&lower.as_str()) {
                    // A function call or an operator.
                } else {
                    names.insert(word);
                }
            }
            _ => i += 1,
        }
    }
    names
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// Index just past the string literal starting at `start`.
fn skip_string(chars: &[char], start: usize) -> usize {
    let quote = chars[start];
    let mut i = start + 1;
    while i < chars.len() {
        if chars[i] == '\\' && quote != '`' {
            i += 2;
            continue;
        }
        if chars[i] == quote {
            return i + 1;
        }
        i += 1;
    }
    i
}

/// Index just past the bracket that closes the one at `start` (strings inside skipped).
fn skip_balanced(chars: &[char], start: usize, open: char, close: char) -> usize {
    let mut depth = 0;
    let mut i = start;
    while i < chars.len() {
        match chars[i] {
            '"' | '\'' | '`' => {
                i = skip_string(chars, i);
                continue;
            }
            c if c == open => depth += 1,
            c if c == close => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    i
}

/// The sample names a Prometheus or OpenMetrics text exports. A `# TYPE` line stands for
/// every series of its family, present or not yet observed: a counter `x` exports
/// `x_total` (and `x_created`), a histogram `_bucket`, `_sum`, `_count`, a summary its
/// name, `_sum` and `_count`; sample lines add their own names.
pub fn exported_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            let suffixes: &[&str] = match kind {
                "counter" => &["_total", "_created"],
                "histogram" | "gaugehistogram" => &["_bucket", "_sum", "_count", "_created"],
                "summary" => &["", "_sum", "_count", "_created"],
                "info" => &["_info"],
                "stateset" | "gauge" | "unknown" | "untyped" => &[""],
                _ => &[""],
            };
            for suffix in suffixes {
                // A counter family may be registered with its `_total` already.
                let base = name.strip_suffix("_total").filter(|_| kind == "counter");
                names.insert(format!("{}{suffix}", base.unwrap_or(name)));
            }
        } else if !line.starts_with('#') && !line.trim().is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_owned());
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(expr: &str) -> Vec<String> {
        metric_names(expr).into_iter().collect()
    }

    #[test]
    fn finds_metrics_not_functions_keywords_or_labels() {
        assert_eq!(
            names(
                r#"histogram_quantile(0.99, sum by (job, le) (rate(http_request_duration_seconds_bucket{job=~"a|b",route=~"/api/.*"}[5m])))"#
            ),
            ["http_request_duration_seconds_bucket"]
        );
        assert_eq!(
            names("max(relay_lag_positions) > 0 and sum(rate(relay_confirms_total[5m])) == 0"),
            ["relay_confirms_total", "relay_lag_positions"]
        );
        assert_eq!(
            names(r#"sum(x) by (job) / on (job) group_left(instance) up offset 5m > bool 1e-3"#),
            ["up", "x"]
        );
        assert_eq!(
            names("job:http_request_error_ratio:rate1h > (14.4 * 0.001)"),
            ["job:http_request_error_ratio:rate1h"]
        );
        assert_eq!(
            names(
                r#"rate(a_total[$__rate_interval]) + label_replace(b, "dst", "$1", "src", "(.*)")"#
            ),
            ["a_total", "b"]
        );
        assert_eq!(
            names(r#"absent(up{job="relay"}) or ALERTS{alertstate="firing"}"#),
            ["ALERTS", "up"]
        );
    }

    #[test]
    fn exported_names_follow_the_openmetrics_suffixes() {
        let text = "# HELP c Things.\n# TYPE c counter\nc_total 3\n\
                    # TYPE h_seconds histogram\n# UNIT h_seconds seconds\n\
                    # TYPE g gauge\ng{x=\"1\"} 2\n# EOF\n";
        let names = exported_names(text);
        for name in [
            "c_total",
            "h_seconds_bucket",
            "h_seconds_sum",
            "h_seconds_count",
            "g",
        ] {
            assert!(names.contains(name), "{name} in {names:?}");
        }
        assert!(!names.contains("c"));
    }
}
