//! What clients were told, against what the log holds: the check of "every answer is
//! true" after a run under faults.
//!
//! Each command a test sends gets an id of the test's own choosing that reaches the log
//! (a correlation id, a client transaction id) and is recorded with the answer it got.
//! Afterwards the test counts, per id, how often the log applied the command, and
//! [`History::check`] sorts every command into the classes that matter:
//!
//! - **lost**: acknowledged, not in the log;
//! - **doubled**: in the log more than once;
//! - **applied but told failed**: in the log, while the answer was an error other than
//!   `outcome_unknown` (a client that retries as told moves the money twice);
//! - **unexpected**: in the log, never sent;
//! - **views differing** from a rebuild of the same log (counted by the caller).
//!
//! An `outcome_unknown` answer is true whichever way it went; a request that got no
//! answer at all (the client gave up) is counted, never judged.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Mutex;

/// What a client was told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A success: the command was applied (or replayed).
    Applied,
    /// 503 `outcome_unknown`: it may or may not have been applied.
    OutcomeUnknown,
    /// Any other answer: by the contract, nothing was applied. The problem `code`, or the
    /// status when there was none.
    Failed(String),
    /// No answer at all: the connection broke or the client's own deadline passed.
    NoAnswer,
}

impl Answer {
    /// The answer an HTTP response gives: 2xx applied, 503 `outcome_unknown` unknown,
    /// anything else failed with its code.
    pub fn from_http(status: u16, code: Option<&str>) -> Self {
        match (status, code) {
            (200..=299, _) => Answer::Applied,
            (503, Some("outcome_unknown")) => Answer::OutcomeUnknown,
            (_, Some(code)) => Answer::Failed(code.to_owned()),
            (status, None) => Answer::Failed(status.to_string()),
        }
    }

    /// The class a report groups this answer under.
    pub fn class(&self) -> String {
        match self {
            Answer::Applied => "applied".into(),
            Answer::OutcomeUnknown => "outcome_unknown".into(),
            Answer::Failed(code) => format!("failed:{code}"),
            Answer::NoAnswer => "no_answer".into(),
        }
    }
}

/// The commands a run sent, each with its last answer (a client that retries with the
/// same key keeps one id: what counts is what it was told in the end).
#[derive(Debug, Default)]
pub struct History {
    sent: Mutex<Vec<(String, Answer)>>,
}

/// The outcome of [`History::check`]: every class counted, with a few ids of each for the
/// failure message.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub commands: u64,
    /// How many got each answer class (`applied`, `outcome_unknown`, `failed:<code>` …).
    pub answers: BTreeMap<String, u64>,
    pub lost: Vec<String>,
    pub doubled: Vec<String>,
    pub applied_but_told_failed: Vec<String>,
    pub unexpected: Vec<String>,
    /// `outcome_unknown` answers whose command the log holds (true answers, counted).
    pub unknown_applied: u64,
    pub unknown_not_applied: u64,
    /// Read-model rows that differ from a rebuild of the same log (set by the caller
    /// with [`Verdict::with_views_differing`]: the history knows commands, not views).
    pub views_differing: u64,
}

impl Verdict {
    /// No lost, doubled, applied-but-told-failed or unexpected command.
    pub fn is_true(&self) -> bool {
        self.lost.is_empty()
            && self.doubled.is_empty()
            && self.applied_but_told_failed.is_empty()
            && self.unexpected.is_empty()
            && self.views_differing == 0
    }

    /// The verdict with the number of read-model rows a rebuild found different.
    pub fn with_views_differing(mut self, rows: u64) -> Self {
        self.views_differing = rows;
        self
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} commands; answers:", self.commands)?;
        for (class, n) in &self.answers {
            writeln!(f, "  {class}: {n}")?;
        }
        writeln!(
            f,
            "outcome_unknown: {} applied, {} not applied",
            self.unknown_applied, self.unknown_not_applied
        )?;
        for (name, ids) in [
            ("lost", &self.lost),
            ("doubled", &self.doubled),
            ("applied but told failed", &self.applied_but_told_failed),
            ("unexpected", &self.unexpected),
        ] {
            let shown: Vec<&str> = ids.iter().take(5).map(String::as_str).collect();
            writeln!(f, "{name}: {} {shown:?}", ids.len())?;
        }
        writeln!(
            f,
            "view rows differing from a rebuild: {}",
            self.views_differing
        )?;
        Ok(())
    }
}

impl History {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the answer command `id` got (a later record of the same id replaces it).
    pub fn record(&self, id: impl Into<String>, answer: Answer) {
        if let Ok(mut sent) = self.sent.lock() {
            sent.push((id.into(), answer));
        }
    }

    pub fn len(&self) -> usize {
        self.sent.lock().map(|s| s.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many commands got `answer`'s class so far.
    pub fn count(&self, class: &str) -> u64 {
        self.last_answers()
            .values()
            .filter(|a| a.class() == class)
            .count() as u64
    }

    fn last_answers(&self) -> HashMap<String, Answer> {
        let sent = self.sent.lock().map(|s| s.clone()).unwrap_or_default();
        sent.into_iter().collect()
    }

    /// Sorts every command by `applied`: how many times the log applied each id.
    pub fn check(&self, applied: &HashMap<String, u64>) -> Verdict {
        let last = self.last_answers();
        let mut v = Verdict {
            commands: last.len() as u64,
            ..Verdict::default()
        };
        let mut ids: Vec<&String> = last.keys().collect();
        ids.sort();
        for id in ids {
            let answer = &last[id];
            *v.answers.entry(answer.class()).or_default() += 1;
            let times = applied.get(id).copied().unwrap_or(0);
            if times > 1 {
                v.doubled.push(id.clone());
            }
            match (answer, times) {
                (Answer::Applied, 0) => v.lost.push(id.clone()),
                (Answer::Failed(_), 1..) => v.applied_but_told_failed.push(id.clone()),
                (Answer::OutcomeUnknown, 0) => v.unknown_not_applied += 1,
                (Answer::OutcomeUnknown, _) => v.unknown_applied += 1,
                _ => {}
            }
        }
        let mut unexpected: Vec<String> = applied
            .iter()
            .filter(|(id, n)| **n > 0 && !last.contains_key(*id))
            .map(|(id, _)| id.clone())
            .collect();
        unexpected.sort();
        v.unexpected = unexpected;
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(pairs: &[(&str, u64)]) -> HashMap<String, u64> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    #[test]
    fn every_class_is_counted() {
        let h = History::new();
        h.record("ok", Answer::Applied);
        h.record("lost", Answer::Applied);
        h.record("told-failed", Answer::Failed("unavailable".into()));
        h.record("really-failed", Answer::Failed("insufficient_funds".into()));
        h.record("unknown-yes", Answer::OutcomeUnknown);
        h.record("unknown-no", Answer::OutcomeUnknown);
        h.record("twice", Answer::Applied);
        let v = h.check(&applied(&[
            ("ok", 1),
            ("told-failed", 1),
            ("unknown-yes", 1),
            ("twice", 2),
            ("ghost", 1),
        ]));
        assert_eq!(v.lost, ["lost"]);
        assert_eq!(v.doubled, ["twice"]);
        assert_eq!(v.applied_but_told_failed, ["told-failed"]);
        assert_eq!(v.unexpected, ["ghost"]);
        assert_eq!((v.unknown_applied, v.unknown_not_applied), (1, 1));
        assert_eq!(v.answers["applied"], 3);
        assert!(!v.is_true());
    }

    #[test]
    fn views_that_differ_from_a_rebuild_make_a_verdict_false() {
        let h = History::new();
        h.record("a", Answer::Applied);
        let v = h.check(&applied(&[("a", 1)]));
        assert!(v.is_true());
        assert!(!v.with_views_differing(2).is_true());
    }

    #[test]
    fn a_retry_replaces_the_first_answer() {
        let h = History::new();
        h.record("a", Answer::OutcomeUnknown);
        h.record("a", Answer::Applied);
        let v = h.check(&applied(&[("a", 1)]));
        assert!(v.is_true(), "{v}");
        assert_eq!(v.answers["applied"], 1);
        assert_eq!(v.commands, 1);
    }

    #[test]
    fn http_answers_are_classified_by_code() {
        assert_eq!(Answer::from_http(201, None), Answer::Applied);
        assert_eq!(
            Answer::from_http(503, Some("outcome_unknown")),
            Answer::OutcomeUnknown
        );
        assert_eq!(
            Answer::from_http(503, Some("unavailable")),
            Answer::Failed("unavailable".into())
        );
        assert_eq!(Answer::from_http(502, None), Answer::Failed("502".into()));
    }
}
