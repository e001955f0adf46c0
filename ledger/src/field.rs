use std::fmt;

use serde::Serialize;

/// One input that failed its check at the boundary: which field, a stable machine code,
/// and a message for people. It becomes one entry of a 422 answer's `errors` array.
///
/// Every newtype's `parse` error converts into it (`From`), so a handler can collect the
/// problems of a whole body before answering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
pub struct FieldError {
    pub field: &'static str,
    pub code: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &'static str, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            code,
            message: message.into(),
        }
    }

    /// The same problem reported under another field name (for example a `UserId`
    /// parsed from `from_user_id`).
    pub fn at(mut self, field: &'static str) -> Self {
        self.field = field;
        self
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} ({})", self.field, self.message, self.code)
    }
}
