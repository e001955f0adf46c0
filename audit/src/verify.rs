//! `audit verify`: an export against the chain rules and the signed anchors.
//!
//! One pass over the export, in constant memory (the anchors are held, one per thousand
//! events): every line is read, every hash recomputed and every link checked with
//! `hash_chain::Walk`; at each anchored position the export's hash and time must be the
//! signed ones. Every anchor's signature is checked with the JWKS by its `kid` first.

use std::collections::BTreeMap;
use std::io::BufRead;

use hash_chain::{ExportedEvent, Hash, Jwks, SignedAnchor, Walk};
use serde::Serialize;

/// Why the export could not be read at all (as opposed to read and found wrong).
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("reading the export failed at line {line}")]
    Io {
        line: u64,
        #[source]
        source: std::io::Error,
    },
}

/// What `verify` found.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// The export is a well-formed chain and every anchor that covers it is validly
    /// signed and matches it, and at least one does.
    pub ok: bool,
    /// One sentence for people.
    pub verdict: String,
    /// Events read and checked.
    pub events: u64,
    pub first_position: Option<u64>,
    pub last_position: Option<u64>,
    /// The hash at `last_position`, recomputed (lowercase hex), when the chain holds.
    pub head_hash: Option<String>,
    /// The first position where something is wrong: the chain breaks there, or the
    /// first anchor that no longer matches is there.
    pub first_bad_position: Option<u64>,
    pub chain: ChainFinding,
    pub anchors: AnchorFindings,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChainFinding {
    /// Every line is an event, every event at its position, linked and hashed right.
    pub ok: bool,
    pub first_bad_position: Option<u64>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct AnchorFindings {
    /// Anchors given.
    pub given: usize,
    /// Signatures that verify with the JWKS.
    pub valid_signatures: usize,
    /// Anchors whose signature does not verify (forged, or the JWKS lacks their key).
    pub invalid: Vec<InvalidAnchor>,
    /// Validly signed anchors inside the export that match it.
    pub matched: usize,
    /// Validly signed anchors inside the export that do not match it, first first.
    pub mismatched: Vec<Mismatch>,
    /// Validly signed anchors of positions the export does not hold.
    pub outside_export: usize,
    /// The last anchor that matches: everything up to it is the signed log.
    pub last_matching: Option<u64>,
    /// Key ids that signed the matching anchors.
    pub kids: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct InvalidAnchor {
    pub position: u64,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Mismatch {
    pub position: u64,
    /// The hash the anchor signs.
    pub signed_hash: String,
    /// The hash the export holds there.
    pub export_hash: String,
    /// Whether `recorded_at` differs too.
    pub time_differs: bool,
}

/// Checks `export` (NDJSON) against the chain rules and `anchors`.
pub fn verify(
    export: impl BufRead,
    anchors: &[SignedAnchor],
    jwks: &Jwks,
) -> Result<VerifyReport, ReadError> {
    let mut findings = AnchorFindings {
        given: anchors.len(),
        ..AnchorFindings::default()
    };
    // Validly signed anchors by position. Two different ones for one position (a fork)
    // cannot both match: the export's hash decides which is listed as a mismatch.
    let mut signed: BTreeMap<u64, Vec<(&SignedAnchor, String)>> = BTreeMap::new();
    for anchor in anchors {
        match anchor.verify(jwks) {
            Ok(kid) => {
                findings.valid_signatures += 1;
                signed
                    .entry(anchor.position)
                    .or_default()
                    .push((anchor, kid));
            }
            Err(error) => findings.invalid.push(InvalidAnchor {
                position: anchor.position,
                reason: error.to_string(),
            }),
        }
    }

    let mut walk: Option<Walk> = None;
    let mut chain = ChainFinding {
        ok: true,
        first_bad_position: None,
        reason: None,
    };
    let (mut events, mut first, mut last) = (0u64, None, None);
    let mut line = String::new();
    let mut reader = export;
    let mut number = 0u64;
    loop {
        line.clear();
        number += 1;
        let read = reader
            .read_line(&mut line)
            .map_err(|source| ReadError::Io {
                line: number,
                source,
            })?;
        if read == 0 {
            break;
        }
        let text = line.trim_end_matches(['\n', '\r']);
        if text.is_empty() {
            continue;
        }
        let event = match ExportedEvent::parse(text) {
            Ok(event) => event,
            Err(error) => {
                if chain.ok {
                    let position = last.map_or(1, |p: u64| p + 1);
                    chain = broken(position, format!("line {number} is not an event ({error})"));
                }
                continue;
            }
        };
        events += 1;
        first.get_or_insert(event.position);
        last = Some(event.position);
        if chain.ok {
            let walk = walk.get_or_insert_with(|| {
                // An export that starts after position 1 takes its first link on trust;
                // the anchors inside it are what proves it.
                Walk::after(event.position.saturating_sub(1), event.prev_hash)
            });
            if let Err(broke) = walk.step(&event.canonical(), &event.prev_hash, &event.hash) {
                chain = broken(broke.position(), broke.to_string());
            }
        }
        if let Some(at) = signed.remove(&event.position) {
            for (anchor, kid) in at {
                check(anchor, kid, &event, &mut findings);
            }
        }
    }
    findings.outside_export = signed.values().map(Vec::len).sum();

    let head_hash = walk
        .as_ref()
        .filter(|_| chain.ok)
        .map(|w| hex::encode(w.hash()));
    let first_mismatch = findings.mismatched.first().map(|m| m.position);
    let first_bad_position = match (chain.first_bad_position, first_mismatch) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let ok = chain.ok
        && findings.invalid.is_empty()
        && findings.mismatched.is_empty()
        && findings.matched > 0;
    let mut report = VerifyReport {
        ok,
        verdict: String::new(),
        events,
        first_position: first,
        last_position: last,
        head_hash,
        first_bad_position,
        chain,
        anchors: findings,
    };
    report.verdict = verdict(&report);
    Ok(report)
}

fn broken(position: u64, reason: String) -> ChainFinding {
    ChainFinding {
        ok: false,
        first_bad_position: Some(position),
        reason: Some(reason),
    }
}

/// Compares one validly signed anchor with the export's event at its position.
fn check(anchor: &SignedAnchor, kid: String, event: &ExportedEvent, findings: &mut AnchorFindings) {
    let hash_matches = anchor.hash == event.hash;
    let time_matches = anchor.recorded_at == event.recorded_at;
    if hash_matches && time_matches {
        findings.matched += 1;
        findings.last_matching = Some(event.position);
        if !findings.kids.contains(&kid) {
            findings.kids.push(kid);
        }
    } else {
        findings.mismatched.push(Mismatch {
            position: event.position,
            signed_hash: hex(&anchor.hash),
            export_hash: hex(&event.hash),
            time_differs: !time_matches,
        });
    }
}

fn hex(hash: &Hash) -> String {
    hex::encode(hash)
}

fn verdict(r: &VerifyReport) -> String {
    let span = match (r.first_position, r.last_position) {
        (Some(a), Some(b)) => format!("positions {a} to {b}"),
        _ => "no events".to_owned(),
    };
    if let Some(m) = r.anchors.mismatched.first() {
        let since = r
            .anchors
            .last_matching
            .filter(|p| *p < m.position)
            .map_or_else(
                || format!("at or before position {}", m.position),
                |p| {
                    format!(
                        "in positions {} to {} (the anchor at {p} still matches)",
                        p + 1,
                        m.position
                    )
                },
            );
        return format!(
            "NOT THE SIGNED LOG: the anchor at position {} no longer matches the export \
             (signed hash {}, the export holds {}); the log was changed {since}",
            m.position, m.signed_hash, m.export_hash
        );
    }
    if !r.chain.ok {
        return format!(
            "BROKEN CHAIN: the export breaks the chain rules at position {} ({})",
            r.chain.first_bad_position.unwrap_or(0),
            r.chain.reason.as_deref().unwrap_or("")
        );
    }
    if let Some(bad) = r.anchors.invalid.first() {
        return format!(
            "UNTRUSTED ANCHORS: {} of {} anchors do not verify with the JWKS (first: position {}, {})",
            r.anchors.invalid.len(),
            r.anchors.given,
            bad.position,
            bad.reason
        );
    }
    if r.anchors.matched == 0 {
        return format!(
            "UNANCHORED: {span} form an intact chain, but no signed anchor covers them, so \
             nothing proves they are the log that was signed"
        );
    }
    let tail = match (r.anchors.last_matching, r.last_position) {
        (Some(anchored), Some(last)) if last > anchored => format!(
            "; positions {} to {last} after the last anchor are linked to it but not yet anchored",
            anchored + 1
        ),
        _ => String::new(),
    };
    format!(
        "VERIFIED: {span} ({} events) recompute and link, and {} signed anchor(s) match{tail}",
        r.events, r.anchors.matched
    )
}
