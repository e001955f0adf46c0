use std::fmt;
use std::hash::{Hash, Hasher};

use caseless::Caseless;
use unicode_normalization::UnicodeNormalization;

use crate::field::FieldError;

/// Why a string is not an e-mail address we accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("is required")]
    Empty,
    #[error("must be at most {max} characters", max = Email::MAX_LEN)]
    TooLong,
    #[error("is not a valid e-mail address")]
    Invalid,
}

impl EmailError {
    pub fn code(&self) -> &'static str {
        match self {
            EmailError::Empty => "required",
            EmailError::TooLong => "too_long",
            EmailError::Invalid => "invalid_email",
        }
    }
}

impl From<EmailError> for FieldError {
    fn from(e: EmailError) -> Self {
        FieldError::new("email", e.code(), e.to_string())
    }
}

/// A checked e-mail address: at most 254 characters, `local@domain` with a dotted domain.
/// Kept as given (less surrounding whitespace) but compared and hashed in a normalized
/// form, Unicode NFKC with full case folding (`NFKC(casefold(NFKC(s)))`), so that
/// look-alikes a person reads as one address are one: full-width letters and `＠`,
/// ligatures, the Kelvin sign, `ß` and `SS`; [`Email::normalized`] is the form to key
/// uniqueness on. Checks apply to the NFKC form, so `ada＠example．com` is accepted as
/// `ada@example.com` is. Confusables across scripts (a Cyrillic `а`) stay distinct: they
/// are different addresses to a mail server too.
///
/// Personal data: `Debug` does not print it, and it never enters an event in clear (the
/// command side seals it into a [`crate::SealedText`]).
///
/// Accepted: the dot-atom form of RFC 5322 (ASCII `atext` and dots in the local part, no
/// leading, trailing or doubled dot), letters and digits of any script (SMTPUTF8), and a
/// domain of at least two labels of letters, digits and inner hyphens. Rejected on
/// purpose: quoted local parts, comments and IP-literal domains, which real sign-ups do
/// not use and which make a uniqueness key ambiguous.
#[derive(Clone)]
pub struct Email(String);

impl Email {
    /// The SMTP limit of a forward path, RFC 5321 §4.5.3.1.3.
    pub const MAX_LEN: usize = 254;
    const MAX_LOCAL_LEN: usize = 64;
    const MAX_LABEL_LEN: usize = 63;

    pub fn parse(s: &str) -> Result<Self, EmailError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(EmailError::Empty);
        }
        let compatible: String = s.nfkc().collect();
        if s.chars().count() > Self::MAX_LEN || compatible.chars().count() > Self::MAX_LEN {
            return Err(EmailError::TooLong);
        }
        let (local, domain) = compatible.split_once('@').ok_or(EmailError::Invalid)?;
        if !local_ok(local) || !domain_ok(domain) {
            return Err(EmailError::Invalid);
        }
        Ok(Self(s.to_owned()))
    }

    /// The address as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// NFKC with full case folding: the form two addresses are compared in.
    pub fn normalized(&self) -> String {
        self.0.nfkc().default_case_fold().nfkc().collect()
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

fn local_ok(local: &str) -> bool {
    let atext = |c: char| {
        c.is_ascii_alphanumeric()
            || "!#$%&'*+/=?^_`{|}~-".contains(c)
            || (!c.is_ascii() && c.is_alphanumeric())
    };
    !local.is_empty()
        && local.chars().count() <= Email::MAX_LOCAL_LEN
        && local
            .split('.')
            .all(|atom| !atom.is_empty() && atom.chars().all(atext))
}

fn domain_ok(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |label: &&str| {
        !label.is_empty()
            && label.chars().count() <= Email::MAX_LABEL_LEN
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c == '-' || c.is_alphanumeric())
    };
    // A top-level domain is never all digits; that would be an IP address.
    let tld_ok = labels
        .last()
        .is_some_and(|tld| !tld.chars().all(|c| c.is_ascii_digit()));
    labels.len() >= 2 && labels.iter().all(label_ok) && tld_ok
}

impl PartialEq for Email {
    fn eq(&self, other: &Self) -> bool {
        self.normalized() == other.normalized()
    }
}

impl Eq for Email {}

impl Hash for Email {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.normalized().hash(state);
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Email(<redacted>)")
    }
}

impl AsRef<str> for Email {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_addresses_are_accepted_as_given() {
        for ok in [
            "a@b.co",
            "Jane.Doe+ledger@Example.COM",
            "o'brien@mail.example.org",
            "  padded@example.com ",
            "jürgen@bücher.de",
            "x@sub-domain.example",
        ] {
            let email = Email::parse(ok).unwrap();
            assert_eq!(email.as_str(), ok.trim());
        }
    }

    #[test]
    fn malformed_addresses_are_rejected_as_invalid() {
        for bad in [
            "plainaddress",
            "@example.com",
            "a@",
            "a@b",
            "a@@b.com",
            "a@b@c.com",
            ".a@b.com",
            "a.@b.com",
            "a..b@c.com",
            "a b@c.com",
            "a@-b.com",
            "a@b-.com",
            "a@b..com",
            "a@1.2.3.4",
            "\"quoted\"@b.com",
            "a\u{0}@b.com",
        ] {
            let got = Email::parse(bad).map(|e| e.into_inner());
            assert_eq!(got, Err(EmailError::Invalid), "{bad:?}");
        }
    }

    #[test]
    fn an_empty_address_is_required() {
        assert_eq!(Email::parse("   ").map(|_| ()), Err(EmailError::Empty));
        assert_eq!(FieldError::from(EmailError::Empty).code, "required");
    }

    #[test]
    fn an_address_may_have_254_characters_but_not_255() {
        let local = "a".repeat(64);
        let domain_of = |len: usize| {
            // labels of 63 characters joined by dots, ending in ".com"
            let mut d = String::new();
            while d.len() + 4 < len {
                if !d.is_empty() {
                    d.push('.');
                }
                let take = (len - 4 - d.len()).min(63);
                d.push_str(&"b".repeat(take));
            }
            d.push_str(".com");
            d
        };
        let at_limit = format!("{local}@{}", domain_of(254 - 65));
        assert_eq!(at_limit.len(), 254);
        assert!(Email::parse(&at_limit).is_ok());
        let over = format!("{local}@{}", domain_of(255 - 65));
        assert_eq!(over.len(), 255);
        assert_eq!(Email::parse(&over).map(|_| ()), Err(EmailError::TooLong));
    }

    #[test]
    fn addresses_compare_case_insensitively() {
        let a = Email::parse("Jane@Example.com").unwrap();
        let b = Email::parse("jane@example.COM").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.normalized(), "jane@example.com");
        assert_eq!(a.as_str(), "Jane@Example.com");
    }

    /// Look-alikes that are one address to a person (and to a mail server that applies
    /// Unicode compatibility forms) are one address to the uniqueness index.
    #[test]
    fn look_alike_addresses_normalize_to_one_form() {
        for (given, same_as) in [
            // Full-width Latin letters (an East Asian keyboard's wide mode).
            ("ａｄａ@example.com", "ada@example.com"),
            ("ADA@ＥＸＡＭＰＬＥ.ＣＯＭ", "ada@example.com"),
            // Full-width at sign and full stop.
            ("ada＠example．com", "ada@example.com"),
            // The Kelvin sign and the ligature fi.
            ("\u{212A}elvin@example.com", "kelvin@example.com"),
            ("\u{FB01}nn@example.com", "finn@example.com"),
            // Case folding, not just lowercasing: sharp s and a final sigma.
            ("STRASSE@example.de", "straße@example.de"),
            ("ΟΔΥΣΣΕΥΣ@example.gr", "οδυσσευς@example.gr"),
            // Mathematical bold letters.
            ("\u{1D41A}\u{1D41D}\u{1D41A}@example.com", "ada@example.com"),
        ] {
            let a = Email::parse(given).unwrap_or_else(|e| panic!("{given:?}: {e}"));
            let b = Email::parse(same_as).unwrap();
            assert_eq!(a.normalized(), b.normalized(), "{given:?} vs {same_as:?}");
            assert_eq!(a, b);
            assert_eq!(a.as_str(), given, "kept as given");
        }
        // Different addresses stay different.
        let a = Email::parse("ada@example.com").unwrap();
        for other in ["adа@example.com", "ada@example.co", "ada1@example.com"] {
            assert_ne!(a, Email::parse(other).unwrap(), "{other:?}");
        }
    }

    #[test]
    fn debug_output_does_not_reveal_the_address() {
        let a = Email::parse("secret@example.com").unwrap();
        assert!(!format!("{a:?}").contains("secret"));
    }
}
