//! [`Secret`]: a setting that holds a password or a key (`DATABASE_URL`, `AMQP_URL`,
//! `MASTER_KEYS`, …). Every service parses such settings into it, with clap's
//! `hide_env_values` (and `hide_default_value` where the default holds a password), so
//! neither `--help`, nor `Debug`, nor a log line ever shows one.

use std::fmt;
use std::str::FromStr;

use secrecy::{ExposeSecret, SecretString};

/// A value that must never be printed: `Debug` and `Display` show `<redacted>`. The
/// memory is wiped when it is dropped.
pub struct Secret(SecretString);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(SecretString::from(value.into()))
    }

    /// The value itself, for the one place that uses it (a connection, a key parser).
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl Clone for Secret {
    fn clone(&self) -> Self {
        Self::new(self.expose())
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for Secret {}

impl FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(s))
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self::new(s)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints() {
        let s: Secret = "mysql://u:hunter2@h/db".parse().unwrap();
        assert_eq!(format!("{s}"), "<redacted>");
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some(<redacted>)");
        assert_eq!(s.expose(), "mysql://u:hunter2@h/db");
        assert_eq!(s, s.clone());
    }
}
