use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::field::FieldError;

/// Why a string is not an id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("is not a UUID")]
    Malformed,
    #[error("must not be the nil UUID")]
    Nil,
}

impl IdError {
    /// Stable machine code for the `errors` entry.
    pub fn code(&self) -> &'static str {
        match self {
            IdError::Malformed | IdError::Nil => "invalid_uuid",
        }
    }
}

/// The hyphenated form only (either case), as the schemas say: `Uuid::parse_str` would
/// also take the simple, braced and URN forms, which no client of ours sends.
fn parse_uuid(s: &str) -> Result<Uuid, IdError> {
    if s.len() != 36 {
        return Err(IdError::Malformed);
    }
    let id = Uuid::parse_str(s).map_err(|_| IdError::Malformed)?;
    if id.is_nil() {
        return Err(IdError::Nil);
    }
    Ok(id)
}

/// A user's id; their stream is `user-<uuid>`. The command side mints it (UUIDv7) or takes
/// it from the body or the token's `sub`; the domain never generates ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserId(Uuid);

impl UserId {
    /// Stream ids of users start with this.
    pub const STREAM_PREFIX: &'static str = "user-";

    pub fn parse(s: &str) -> Result<Self, IdError> {
        parse_uuid(s).map(Self)
    }

    pub const fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    pub const fn as_uuid(&self) -> Uuid {
        self.0
    }

    /// The stream holding this user's events, money included: `user-<uuid>` (lowercase,
    /// hyphenated).
    pub fn stream_id(&self) -> String {
        format!("{}{}", Self::STREAM_PREFIX, self.0.hyphenated())
    }

    /// The user a stream id names, if it is a user stream.
    pub fn from_stream_id(stream_id: &str) -> Option<Self> {
        let rest = stream_id.strip_prefix(Self::STREAM_PREFIX)?;
        Uuid::parse_str(rest).ok().map(Self)
    }
}

impl FromStr for UserId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl From<IdError> for FieldError {
    /// Reported under `user_id` or `transaction_id` by the caller via [`FieldError::at`];
    /// `id` until then.
    fn from(e: IdError) -> Self {
        FieldError::new("id", e.code(), e.to_string())
    }
}

/// A transaction's id, shared by both halves of a transfer. Minted by the command side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TransactionId(Uuid);

impl TransactionId {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        parse_uuid(s).map(Self)
    }

    pub const fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    pub const fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl FromStr for TransactionId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_stream_id_round_trips() {
        let id = UserId::parse("0190a8f6-7b2c-7c3e-9f00-0123456789ab").unwrap();
        assert_eq!(id.stream_id(), "user-0190a8f6-7b2c-7c3e-9f00-0123456789ab");
        assert_eq!(UserId::from_stream_id(&id.stream_id()), Some(id));
        assert_eq!(UserId::from_stream_id("account-1"), None);
    }

    #[test]
    fn an_id_must_be_a_non_nil_uuid() {
        assert_eq!(UserId::parse("nope"), Err(IdError::Malformed));
        for other_form in [
            "0190a8f67b2c7c3e9f000123456789ab",
            "{0190a8f6-7b2c-7c3e-9f00-0123456789ab}",
            "urn:uuid:0190a8f6-7b2c-7c3e-9f00-0123456789ab",
            " 0190a8f6-7b2c-7c3e-9f00-0123456789ab",
        ] {
            assert_eq!(
                UserId::parse(other_form),
                Err(IdError::Malformed),
                "{other_form}"
            );
        }
        assert!(UserId::parse("0190A8F6-7B2C-7C3E-9F00-0123456789AB").is_ok());
        assert_eq!(
            TransactionId::parse("00000000-0000-0000-0000-000000000000"),
            Err(IdError::Nil)
        );
        let field = FieldError::from(IdError::Malformed).at("user_id");
        assert_eq!((field.field, field.code), ("user_id", "invalid_uuid"));
    }
}
