use std::fmt;

use serde::{Deserialize, Serialize};

use crate::field::FieldError;

/// Why a string is not a deactivation reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReasonError {
    #[error("must not be blank")]
    Blank,
    #[error("must be at most {max} characters", max = DeactivationReason::MAX_LEN)]
    TooLong,
}

impl ReasonError {
    pub fn code(&self) -> &'static str {
        match self {
            ReasonError::Blank => "required",
            ReasonError::TooLong => "too_long",
        }
    }
}

impl From<ReasonError> for FieldError {
    fn from(e: ReasonError) -> Self {
        FieldError::new("reason", e.code(), e.to_string())
    }
}

/// Why an operator deactivated a user: free text, 1–500 characters after trimming.
///
/// It is stored in clear in an immutable log and is not shredded on erasure, so it is
/// meant for an operational reason ("fraud review", "closed at customer's request"), not
/// personal data; the API documentation says so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeactivationReason(String);

impl DeactivationReason {
    pub const MAX_LEN: usize = 500;

    pub fn parse(s: &str) -> Result<Self, ReasonError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(ReasonError::Blank);
        }
        if s.chars().count() > Self::MAX_LEN {
            return Err(ReasonError::TooLong);
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeactivationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_is_trimmed_and_limited_to_500_characters() {
        assert_eq!(
            DeactivationReason::parse("  fraud ").unwrap().as_str(),
            "fraud"
        );
        assert_eq!(DeactivationReason::parse(" "), Err(ReasonError::Blank));
        assert!(DeactivationReason::parse(&"x".repeat(500)).is_ok());
        assert_eq!(
            DeactivationReason::parse(&"x".repeat(501)),
            Err(ReasonError::TooLong)
        );
    }
}
