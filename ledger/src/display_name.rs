use std::fmt;

use crate::field::FieldError;

/// Why a string is not a display name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DisplayNameError {
    #[error("is required")]
    Empty,
    #[error("must be at most {max} characters", max = DisplayName::MAX_LEN)]
    TooLong,
    #[error("must not contain control characters")]
    ControlCharacter,
}

impl DisplayNameError {
    pub fn code(&self) -> &'static str {
        match self {
            DisplayNameError::Empty => "required",
            DisplayNameError::TooLong => "too_long",
            DisplayNameError::ControlCharacter => "invalid_characters",
        }
    }
}

impl From<DisplayNameError> for FieldError {
    fn from(e: DisplayNameError) -> Self {
        FieldError::new("display_name", e.code(), e.to_string())
    }
}

/// A display name: 1–100 characters (Unicode scalar values) after trimming, stored
/// trimmed, no control characters (they break every list it is shown in).
///
/// Personal data: `Debug` does not print it; events carry it sealed.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct DisplayName(String);

impl DisplayName {
    pub const MAX_LEN: usize = 100;

    pub fn parse(s: &str) -> Result<Self, DisplayNameError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(DisplayNameError::Empty);
        }
        if s.chars().count() > Self::MAX_LEN {
            return Err(DisplayNameError::TooLong);
        }
        if s.chars().any(char::is_control) {
            return Err(DisplayNameError::ControlCharacter);
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

impl fmt::Debug for DisplayName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DisplayName(<redacted>)")
    }
}

impl AsRef<str> for DisplayName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_stored_trimmed() {
        assert_eq!(
            DisplayName::parse("  Ada Lovelace ").unwrap().as_str(),
            "Ada Lovelace"
        );
    }

    #[test]
    fn a_blank_name_is_required() {
        assert_eq!(DisplayName::parse(" \t "), Err(DisplayNameError::Empty));
    }

    #[test]
    fn a_name_may_have_100_characters_after_trimming_but_not_101() {
        let hundred = "é".repeat(100);
        assert!(DisplayName::parse(&format!("  {hundred}  ")).is_ok());
        assert_eq!(
            DisplayName::parse(&format!("{hundred}x")),
            Err(DisplayNameError::TooLong)
        );
        assert_eq!(FieldError::from(DisplayNameError::TooLong).code, "too_long");
    }

    #[test]
    fn a_name_with_control_characters_is_rejected() {
        assert_eq!(
            DisplayName::parse("Ada\u{7}"),
            Err(DisplayNameError::ControlCharacter)
        );
        assert_eq!(
            DisplayName::parse("Ada\nLovelace"),
            Err(DisplayNameError::ControlCharacter)
        );
    }
}
