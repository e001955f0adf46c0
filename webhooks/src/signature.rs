//! The Standard Webhooks signature (<https://www.standardwebhooks.com/>): `webhook-id`,
//! `webhook-timestamp` (Unix seconds) and `webhook-signature` = `v1,` + base64 of
//! HMAC-SHA256(secret, `"{id}.{timestamp}.{body}"`), where the secret is the bytes whose
//! base64 follows `whsec_` in the text shown to the subscriber.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A subscription's signing secret (32 random bytes when the ledger makes one).
pub struct SigningSecret(Vec<u8>);

impl SigningSecret {
    pub fn from_bytes(bytes: &[u8]) -> Self {
        Self(bytes.to_vec())
    }

    /// The secret of a `whsec_<base64>` text.
    pub fn parse_text(text: &str) -> Option<Self> {
        let b64 = text.strip_prefix("whsec_")?;
        STANDARD.decode(b64).ok().map(Self)
    }

    /// `whsec_<base64>`: what the subscriber is shown once and verifies with.
    pub fn to_text(&self) -> String {
        format!("whsec_{}", STANDARD.encode(&self.0))
    }

    /// The `webhook-signature` header value for one delivery.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.0) else {
            // An HMAC takes a key of any length; this never happens.
            return String::new();
        };
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vector of the Standard Webhooks reference libraries.
    #[test]
    fn signs_the_reference_example() {
        let secret = SigningSecret::parse_text("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let signature = secret.map(|s| {
            s.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#,
            )
        });
        assert_eq!(
            signature.as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
    }

    #[test]
    fn the_text_round_trips_and_hides_in_debug() {
        let secret = SigningSecret::from_bytes(&[7; 32]);
        let again = SigningSecret::parse_text(&secret.to_text()).map(|s| s.0);
        assert_eq!(again, Some(vec![7; 32]));
        assert_eq!(format!("{secret:?}"), "SigningSecret(<redacted>)");
        assert!(SigningSecret::parse_text("nope").is_none());
    }
}
