use std::fmt;

/// A subscription's name: 1–64 of `[a-z0-9-]` (API.md), unique.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriptionName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a subscription name is 1 to 64 of a-z, 0-9 and -")]
pub struct InvalidName;

impl SubscriptionName {
    pub fn parse(s: &str) -> Result<Self, InvalidName> {
        let ok = (1..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidName)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SubscriptionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SubscriptionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SubscriptionName({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lowercase_letters_digits_and_dashes() {
        assert!(SubscriptionName::parse("billing-2").is_ok());
        assert!(SubscriptionName::parse(&"a".repeat(64)).is_ok());
        for bad in ["", "Billing", "a_b", "a b", "é", &"a".repeat(65)] {
            assert!(SubscriptionName::parse(bad).is_err(), "{bad:?}");
        }
    }
}
