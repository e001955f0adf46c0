use std::fmt;
use std::str::FromStr;

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, Key, KeyInit, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use uuid::Uuid;

use crate::data_key::DataKey;
use crate::error::KeyringError;
use crate::secret::fresh_nonce;

/// The generation of a subject's data key, written into every sealed text. Each subject
/// has one data key today; the number leaves room to replace a subject's key without a
/// new text format.
pub const DATA_KEY_VERSION: u32 = 1;

const FORMAT: &str = "v1";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Domain separation: these bytes start the associated data of every sealed field.
const SEAL_AAD_PREFIX: &[u8] = b"keyring.field.v1";

/// One encrypted personal field, as it travels in event payloads and read tables:
/// `v1.<data-key-version>.<base64url(nonce || ciphertext || tag)>`.
///
/// Only the subject's data key opens it, and only for the subject and field name it was
/// sealed for, so a value cannot be copied to another user or another field.
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SealedText {
    text: String,
    key_version: u32,
}

impl SealedText {
    /// Checks the shape (format tag, version, base64url, minimum length); whether it
    /// opens is only known with the key.
    pub fn parse(text: &str) -> Result<Self, KeyringError> {
        let malformed = |reason| KeyringError::Malformed { reason };
        let mut parts = text.split('.');
        let (Some(format), Some(version), Some(payload), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed("expected three dot-separated parts"));
        };
        if format != FORMAT {
            return Err(malformed("unknown format tag"));
        }
        if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed("key version is not a number"));
        }
        let key_version = version
            .parse()
            .map_err(|_| malformed("key version is out of range"))?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| malformed("payload is not unpadded base64url"))?;
        if payload.len() < NONCE_LEN + TAG_LEN {
            return Err(malformed("payload is too short"));
        }
        Ok(Self {
            text: text.to_owned(),
            key_version,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn key_version(&self) -> u32 {
        self.key_version
    }

    fn payload(&self) -> Result<Vec<u8>, KeyringError> {
        let encoded = self.text.rsplit('.').next().unwrap_or_default();
        URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| KeyringError::Malformed {
                reason: "payload is not unpadded base64url",
            })
    }
}

impl DataKey {
    /// Encrypts `plaintext` as the field `field` of this key's subject, with a fresh
    /// random nonce: sealing the same text twice gives different results.
    pub fn seal(&self, plaintext: &str, field: &str) -> Result<SealedText, KeyringError> {
        let nonce = fresh_nonce()?;
        let aad = seal_aad(self.subject(), DATA_KEY_VERSION, field);
        let ciphertext = self
            .cipher()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| KeyringError::Seal {
                field: field.into(),
            })?;
        let mut payload = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        payload.extend_from_slice(&nonce);
        payload.extend_from_slice(&ciphertext);
        Ok(SealedText {
            text: format!(
                "{FORMAT}.{DATA_KEY_VERSION}.{}",
                URL_SAFE_NO_PAD.encode(payload)
            ),
            key_version: DATA_KEY_VERSION,
        })
    }

    /// Decrypts a field sealed by [`seal`](Self::seal) for the same subject and field.
    pub fn open(&self, sealed: &SealedText, field: &str) -> Result<String, KeyringError> {
        if sealed.key_version != DATA_KEY_VERSION {
            return Err(KeyringError::UnsupportedKeyVersion {
                version: sealed.key_version,
                supported: DATA_KEY_VERSION,
            });
        }
        let fail = || KeyringError::Open {
            subject: self.subject(),
            field: field.into(),
        };
        let payload = sealed.payload()?;
        let (nonce, ciphertext) = payload.split_at_checked(NONCE_LEN).ok_or_else(fail)?;
        let aad = seal_aad(self.subject(), sealed.key_version, field);
        let plaintext = self
            .cipher()
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| fail())?;
        // Authenticated bytes we sealed from a &str; anything else is someone else's.
        String::from_utf8(plaintext).map_err(|_| fail())
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(self.secret().expose()))
    }
}

/// Subject and key version have fixed widths, so the field name can simply follow.
fn seal_aad(subject: Uuid, key_version: u32, field: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(SEAL_AAD_PREFIX.len() + 20 + field.len());
    aad.extend_from_slice(SEAL_AAD_PREFIX);
    aad.extend_from_slice(subject.as_bytes());
    aad.extend_from_slice(&key_version.to_be_bytes());
    aad.extend_from_slice(field.as_bytes());
    aad
}

impl FromStr for SealedText {
    type Err = KeyringError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl TryFrom<String> for SealedText {
    type Error = KeyringError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::parse(&text)
    }
}

impl From<SealedText> for String {
    fn from(sealed: SealedText) -> Self {
        sealed.text
    }
}

impl fmt::Display for SealedText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for SealedText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SealedText").field(&self.text).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretKey;

    fn key_for(subject: Uuid) -> DataKey {
        DataKey::from_secret(subject, SecretKey::from_bytes([7; 32]))
    }

    #[test]
    fn a_sealed_field_opens_to_the_original_text() {
        let key = DataKey::generate(Uuid::new_v4()).unwrap();
        for text in ["ada@example.org", "", "Zoë Ñandú 🦀"] {
            let sealed = key.seal(text, "email").unwrap();
            assert_eq!(key.open(&sealed, "email").unwrap(), text);
        }
    }

    #[test]
    fn the_text_form_is_compact_and_round_trips() {
        let key = DataKey::generate(Uuid::new_v4()).unwrap();
        let sealed = key.seal("Ada", "display_name").unwrap();
        assert!(sealed.as_str().starts_with("v1.1."), "{sealed}");
        let reparsed: SealedText = sealed.as_str().parse().unwrap();
        assert_eq!(reparsed, sealed);
        let json = serde_json::to_string(&sealed).unwrap();
        assert_eq!(serde_json::from_str::<SealedText>(&json).unwrap(), sealed);
        assert!(serde_json::from_str::<SealedText>("\"v1.1.@@\"").is_err());
    }

    #[test]
    fn sealing_the_same_text_twice_gives_different_results() {
        let key = DataKey::generate(Uuid::new_v4()).unwrap();
        let a = key.seal("ada@example.org", "email").unwrap();
        let b = key.seal("ada@example.org", "email").unwrap();
        assert_ne!(a, b);
        assert_ne!(
            a.payload().unwrap()[..NONCE_LEN],
            b.payload().unwrap()[..NONCE_LEN]
        );
    }

    #[test]
    fn any_altered_byte_fails_to_open() {
        let key = DataKey::generate(Uuid::new_v4()).unwrap();
        let sealed = key.seal("ada@example.org", "email").unwrap();
        let payload = sealed.payload().unwrap();
        for i in 0..payload.len() {
            let mut altered = payload.clone();
            altered[i] ^= 0x01;
            let text = format!("v1.1.{}", URL_SAFE_NO_PAD.encode(&altered));
            let tampered = SealedText::parse(&text).unwrap();
            assert!(
                matches!(key.open(&tampered, "email"), Err(KeyringError::Open { .. })),
                "byte {i}"
            );
        }
        let truncated = format!(
            "v1.1.{}",
            URL_SAFE_NO_PAD.encode(&payload[..payload.len() - 1])
        );
        assert!(key
            .open(&SealedText::parse(&truncated).unwrap(), "email")
            .is_err());
    }

    #[test]
    fn another_subject_or_field_fails_to_open() {
        let ada = Uuid::new_v4();
        let sealed = key_for(ada).seal("ada@example.org", "email").unwrap();
        // Same key bytes, another subject: only the associated data differs.
        let err = key_for(Uuid::new_v4()).open(&sealed, "email").unwrap_err();
        assert!(matches!(err, KeyringError::Open { .. }));
        let err = key_for(ada).open(&sealed, "display_name").unwrap_err();
        assert!(matches!(err, KeyringError::Open { ref field, .. } if field == "display_name"));
        let err = DataKey::generate(ada)
            .unwrap()
            .open(&sealed, "email")
            .unwrap_err();
        assert!(matches!(err, KeyringError::Open { .. }));
    }

    #[test]
    fn an_unknown_key_version_is_refused() {
        let key = DataKey::generate(Uuid::new_v4()).unwrap();
        let sealed = key.seal("Ada", "display_name").unwrap();
        let bumped = sealed.as_str().replacen("v1.1.", "v1.2.", 1);
        let err = key.open(&SealedText::parse(&bumped).unwrap(), "display_name");
        assert!(matches!(
            err,
            Err(KeyringError::UnsupportedKeyVersion {
                version: 2,
                supported: 1
            })
        ));
    }

    #[test]
    fn malformed_texts_are_rejected() {
        for text in [
            "",
            "v1",
            "v1.1",
            "v2.1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "v1.x.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "v1.+1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "v1.99999999999.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "v1.1.AAAA",
            "v1.1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",
            "v1.1.AAAA.AAAA",
        ] {
            assert!(
                matches!(SealedText::parse(text), Err(KeyringError::Malformed { .. })),
                "{text}"
            );
        }
    }
}
