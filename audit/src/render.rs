//! Reports for people: the verdict first, then what it rests on.

use std::fmt::Write;

use crate::balances::BalancesReport;
use crate::verify::VerifyReport;

pub fn render_verify(r: &VerifyReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", r.verdict);
    let _ = writeln!(out);
    let span = match (r.first_position, r.last_position) {
        (Some(a), Some(b)) => format!("positions {a}..{b}"),
        _ => "empty".to_owned(),
    };
    let _ = writeln!(out, "export:   {} events, {span}", r.events);
    match (&r.chain.first_bad_position, &r.head_hash) {
        (Some(p), _) => {
            let _ = writeln!(
                out,
                "chain:    BROKEN at position {p}: {}",
                r.chain.reason.as_deref().unwrap_or("")
            );
        }
        (None, Some(h)) => {
            let _ = writeln!(out, "chain:    intact; head hash {h}");
        }
        (None, None) => {
            let _ = writeln!(out, "chain:    nothing to check");
        }
    }
    let a = &r.anchors;
    let _ = writeln!(
        out,
        "anchors:  {} given, {} validly signed (keys: {}), {} match, {} do not, {} outside the export",
        a.given,
        a.valid_signatures,
        if a.kids.is_empty() { "-".to_owned() } else { a.kids.join(", ") },
        a.matched,
        a.mismatched.len(),
        a.outside_export
    );
    if let Some(p) = a.last_matching {
        let _ = writeln!(out, "          last matching anchor: position {p}");
    }
    for m in a.mismatched.iter().take(5) {
        let _ = writeln!(
            out,
            "          MISMATCH at {}: signed {}, export {}{}",
            m.position,
            m.signed_hash,
            m.export_hash,
            if m.time_differs {
                " (recorded_at differs too)"
            } else {
                ""
            }
        );
    }
    if a.mismatched.len() > 5 {
        let _ = writeln!(out, "          … and {} more", a.mismatched.len() - 5);
    }
    for bad in a.invalid.iter().take(5) {
        let _ = writeln!(
            out,
            "          INVALID anchor at {}: {}",
            bad.position, bad.reason
        );
    }
    if let Some(p) = r.first_bad_position {
        let _ = writeln!(out, "first bad position: {p}");
    }
    out
}

pub fn render_balances(r: &BalancesReport) -> String {
    let mut out = String::new();
    let point = match (r.at_position, r.as_of) {
        (Some(n), _) => format!("at position {n}"),
        (None, Some(t)) => format!(
            "as of {} (the log through position {})",
            hash_chain::wire_time::format(t),
            r.through_position
        ),
        (None, None) => format!("at the end of the export (position {})", r.through_position),
    };
    let _ = writeln!(out, "user {} {point}:", r.user_id);
    if r.balances.is_empty() {
        let _ = writeln!(out, "  no balances");
    }
    for b in &r.balances {
        let _ = writeln!(out, "  {} {:>20} (minor units)", b.currency, b.amount);
    }
    let _ = writeln!(
        out,
        "from the user's {} event(s), the last at position {} ({}); chain checked over {} events",
        r.stream_version,
        r.last_position,
        hash_chain::wire_time::format(r.last_recorded_at),
        r.events_checked
    );
    out
}
