use std::fmt;

/// A stream's name: 1–200 visible ASCII characters (no spaces), compared byte for byte.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(String);

/// A name that is empty, too long or holds characters outside visible ASCII.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} must be 1 to {max} visible ASCII characters, got {got:?}")]
pub struct InvalidName {
    pub what: &'static str,
    pub max: usize,
    pub got: String,
}

pub(crate) fn check_name(what: &'static str, max: usize, s: &str) -> Result<(), InvalidName> {
    let ok = !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(InvalidName {
            what,
            max,
            got: s.chars().take(max + 1).collect(),
        })
    }
}

impl StreamId {
    pub const MAX_LEN: usize = 200;

    pub fn parse(s: impl Into<String>) -> Result<Self, InvalidName> {
        let s = s.into();
        check_name("stream id", Self::MAX_LEN, &s)?;
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StreamId({})", self.0)
    }
}

/// What the caller believes about a stream before appending to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// Append whatever the stream holds.
    Any,
    /// The stream must not exist yet (the same as `Exact(0)`).
    NoStream,
    /// The stream's last event must have exactly this version.
    Exact(u64),
}

impl ExpectedVersion {
    /// The version the stream must be at, if the caller pinned one.
    pub fn pinned(self) -> Option<u64> {
        match self {
            Self::Any => None,
            Self::NoStream => Some(0),
            Self::Exact(n) => Some(n),
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any"),
            Self::NoStream => f.write_str("no stream"),
            Self::Exact(n) => write!(f, "{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_are_visible_ascii_up_to_200() {
        assert!(StreamId::parse("user-1").is_ok());
        assert!(StreamId::parse("a".repeat(200)).is_ok());
        assert!(StreamId::parse("a".repeat(201)).is_err());
        assert!(StreamId::parse("").is_err());
        assert!(StreamId::parse("has space").is_err());
        assert!(StreamId::parse("é").is_err());
    }

    #[test]
    fn no_stream_pins_version_zero() {
        assert_eq!(ExpectedVersion::NoStream.pinned(), Some(0));
        assert_eq!(ExpectedVersion::Exact(3).pinned(), Some(3));
        assert_eq!(ExpectedVersion::Any.pinned(), None);
    }
}
