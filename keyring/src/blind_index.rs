use std::fmt;
use std::path::Path;
use std::str::FromStr;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::error::KeyConfigError;
use crate::secret::SecretKey;

/// Domain separation: a blind index of another kind of value, under the same key, can
/// never equal an e-mail hash.
const EMAIL_LABEL: &[u8] = b"keyring.blind-index.email.v1\0";

/// Keyed hashes for uniqueness indexes: the database can hold `hash_email(address)`
/// under a unique key and look it up, without ever holding the address.
///
/// The key is its own secret, separate from the master keys; changing it means
/// recomputing the index from the (decrypted) addresses. Shredding does not touch the
/// index: remove an erased user's row yourself.
pub struct BlindIndex {
    key: SecretKey,
}

impl BlindIndex {
    pub fn new(key: [u8; 32]) -> Self {
        Self {
            key: SecretKey::from_bytes(key),
        }
    }

    /// A key given as 32 bytes of standard base64.
    pub fn parse(base64: &str) -> Result<Self, KeyConfigError> {
        Ok(Self {
            key: SecretKey::from_base64(base64, "for the blind index")?,
        })
    }

    /// Reads [`parse`](Self::parse)'s format from a file, e.g. a mounted secret.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, KeyConfigError> {
        let path = path.as_ref();
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|source| {
            KeyConfigError::Read {
                path: path.to_owned(),
                source,
            }
        })?);
        Self::parse(&text)
    }

    /// HMAC-SHA256 of an already normalized address (the caller's `Email` type decides
    /// what normalized means; equal addresses must arrive as equal strings).
    pub fn hash_email(&self, normalized: &str) -> [u8; 32] {
        self.hash(EMAIL_LABEL, normalized.as_bytes())
    }

    /// HMAC-SHA256 of `parts` (each length-prefixed, so their boundaries count) for
    /// `purpose`, a name of the caller's kind of value (`b"request"`, …): a keyed
    /// fingerprint that nobody without the key can recompute from a guess, and that
    /// never equals an e-mail hash or a fingerprint of another purpose.
    pub fn fingerprint(&self, purpose: &[u8], parts: &[&[u8]]) -> [u8; 32] {
        let mut label = b"keyring.blind-index.fingerprint.v1\0".to_vec();
        label.extend_from_slice(purpose);
        label.push(0);
        let mut value = Vec::new();
        for part in parts {
            value.extend_from_slice(&(part.len() as u64).to_be_bytes());
            value.extend_from_slice(part);
        }
        self.hash(&label, &value)
    }

    fn hash(&self, label: &[u8], value: &[u8]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.key.expose())
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(label);
        mac.update(value);
        mac.finalize().into_bytes().into()
    }
}

impl FromStr for BlindIndex {
    type Err = KeyConfigError;

    fn from_str(base64: &str) -> Result<Self, Self::Err> {
        Self::parse(base64)
    }
}

impl fmt::Debug for BlindIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlindIndex").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_addresses_hash_equal_and_different_ones_differ() {
        let index = BlindIndex::new([1; 32]);
        let a = index.hash_email("ada@example.org");
        assert_eq!(a, index.hash_email("ada@example.org"));
        assert_ne!(a, index.hash_email("bob@example.org"));
    }

    #[test]
    fn the_hash_depends_on_the_key() {
        let a = BlindIndex::new([1; 32]).hash_email("ada@example.org");
        let b = BlindIndex::new([2; 32]).hash_email("ada@example.org");
        assert_ne!(a, b);
    }

    #[test]
    fn the_hash_is_hmac_sha256_over_label_and_address() {
        let key = [3; 32];
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).unwrap();
        mac.update(b"keyring.blind-index.email.v1\0ada@example.org");
        let expected: [u8; 32] = mac.finalize().into_bytes().into();
        assert_eq!(BlindIndex::new(key).hash_email("ada@example.org"), expected);
    }

    #[test]
    fn fingerprints_are_keyed_separated_by_purpose_and_part_boundaries() {
        let index = BlindIndex::new([4; 32]);
        let a = index.fingerprint(b"request", &[b"POST", b"/a", b"bc"]);
        assert_eq!(a, index.fingerprint(b"request", &[b"POST", b"/a", b"bc"]));
        assert_ne!(a, index.fingerprint(b"request", &[b"POST", b"/ab", b"c"]));
        assert_ne!(a, index.fingerprint(b"other", &[b"POST", b"/a", b"bc"]));
        assert_ne!(
            a,
            BlindIndex::new([5; 32]).fingerprint(b"request", &[b"POST", b"/a", b"bc"])
        );
        assert_ne!(
            index.fingerprint(b"email", &[]),
            index.hash_email(""),
            "never an e-mail hash"
        );
    }

    #[test]
    fn parses_base64_and_hides_the_key() {
        let index: BlindIndex = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="
            .parse()
            .unwrap();
        assert_eq!(
            index.hash_email("x"),
            BlindIndex::new([1; 32]).hash_email("x")
        );
        assert_eq!(format!("{index:?}"), "BlindIndex { .. }");
        assert!(matches!(
            "AAAA".parse::<BlindIndex>(),
            Err(KeyConfigError::Length { len: 3, .. })
        ));
    }
}
