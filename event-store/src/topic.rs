//! Event-type patterns with the syntax of a RabbitMQ topic binding: dot-separated words,
//! `*` for exactly one word, `#` for zero or more. What a downstream service binds its
//! queue with on `example.events`, it may also use to read the log over HTTP
//! (`/api/v1/events?types=`) or to choose the events of a webhook: one meaning for all.

use std::fmt;

/// One pattern, e.g. `transaction.*` or `user.#`.
#[derive(Clone, PartialEq, Eq)]
pub struct TypePattern {
    text: String,
    words: Vec<Word>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Word {
    Exact(String),
    One,
    Any,
}

/// Why a pattern is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidPattern(String);

impl TypePattern {
    /// The longest pattern, and the longest comma-separated list of them.
    pub const MAX_LEN: usize = 200;
    /// What [`TypePattern::parse`] accepts, as a regular expression for API documents
    /// (with [`TypePattern::MAX_LEN`] as its `maxLength`).
    pub const REGEX: &'static str = "^(?:[A-Za-z0-9_-]+|\\*|#)(?:\\.(?:[A-Za-z0-9_-]+|\\*|#))*$";
    /// What [`TypeFilter::parse_list`] accepts: patterns separated by commas, each with
    /// spaces around it if the writer likes.
    pub const LIST_REGEX: &'static str =
        "^ *(?:[A-Za-z0-9_-]+|\\*|#)(?:\\.(?:[A-Za-z0-9_-]+|\\*|#))* *\
        (?:, *(?:[A-Za-z0-9_-]+|\\*|#)(?:\\.(?:[A-Za-z0-9_-]+|\\*|#))* *)*$";

    /// At most 200 characters; words of letters, digits, `_` and `-`, or `*` or `#`.
    pub fn parse(text: &str) -> Result<Self, InvalidPattern> {
        if text.is_empty() || text.len() > Self::MAX_LEN {
            return Err(InvalidPattern("a pattern is 1 to 200 characters".into()));
        }
        let words = text
            .split('.')
            .map(|w| match w {
                "*" => Ok(Word::One),
                "#" => Ok(Word::Any),
                w if !w.is_empty()
                    && w.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
                {
                    Ok(Word::Exact(w.to_owned()))
                }
                _ => Err(InvalidPattern(format!(
                    "`{text}`: each word is letters, digits, `_` or `-`, or `*` or `#`"
                ))),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            text: text.to_owned(),
            words,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether an event type matches.
    pub fn matches(&self, event_type: &str) -> bool {
        let words: Vec<&str> = event_type.split('.').collect();
        matches_from(&self.words, &words)
    }
}

fn matches_from(pattern: &[Word], words: &[&str]) -> bool {
    match pattern.split_first() {
        None => words.is_empty(),
        Some((Word::Any, rest)) => (0..=words.len()).any(|skip| matches_from(rest, &words[skip..])),
        Some((Word::One, rest)) => !words.is_empty() && matches_from(rest, &words[1..]),
        Some((Word::Exact(w), rest)) => {
            words.first().is_some_and(|first| first == w) && matches_from(rest, &words[1..])
        }
    }
}

impl fmt::Debug for TypePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TypePattern({})", self.text)
    }
}

impl fmt::Display for TypePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Several patterns: an event type matches when any does. Empty matches everything
/// (the same as `#`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TypeFilter(Vec<TypePattern>);

impl TypeFilter {
    /// Comma-separated patterns, as in `?types=transaction.*,user.registered`, spaces
    /// allowed around each; at most [`TypePattern::MAX_LEN`] characters in all.
    pub fn parse_list(text: &str) -> Result<Self, InvalidPattern> {
        if text.len() > TypePattern::MAX_LEN {
            return Err(InvalidPattern(format!(
                "at most {} characters of patterns in all",
                TypePattern::MAX_LEN
            )));
        }
        text.split(',')
            .map(|p| TypePattern::parse(p.trim_matches(' ')))
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    pub fn new(patterns: Vec<TypePattern>) -> Self {
        Self(patterns)
    }

    pub fn patterns(&self) -> &[TypePattern] {
        &self.0
    }

    pub fn matches(&self, event_type: &str) -> bool {
        self.0.is_empty() || self.0.iter().any(|p| p.matches(event_type))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn m(pattern: &str, event_type: &str) -> bool {
        TypePattern::parse(pattern).unwrap().matches(event_type)
    }

    #[test]
    fn star_is_one_word_and_hash_is_any_number() {
        assert!(m("transaction.*", "transaction.deposited"));
        assert!(!m("transaction.*", "transaction"));
        assert!(!m("transaction.*", "transaction.deposited.v2"));
        assert!(m("#", "user.registered"));
        assert!(m("user.#", "user"));
        assert!(m("user.#", "user.registered"));
        assert!(m("#.deposited", "transaction.deposited"));
        assert!(m("*.#.b", "a.x.y.b"));
        assert!(!m("user.registered", "user.registered2"));
        assert!(!m("*", "user.registered"));
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in ["", "a..b", "a.*b", "a b", ".a", &"x".repeat(201)] {
            assert!(TypePattern::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_list_matches_when_any_pattern_does() {
        let f = TypeFilter::parse_list("transaction.*, user.registered").unwrap();
        assert!(f.matches("user.registered"));
        assert!(f.matches("transaction.transferred"));
        assert!(!f.matches("user.deactivated"));
        assert!(TypeFilter::default().matches("anything.at.all"));
    }
}
