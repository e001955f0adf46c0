use std::fmt;

use serde::{Deserialize, Serialize};

/// Personal data as the keyring sealed it: an opaque string (the keyring's format carries
/// its own key version, nonce and tag). The domain stores and moves it, never opens it,
/// and never sees the plaintext: events hold only this. Destroying the user's data key
/// makes every copy unreadable (crypto-shredding), so the immutable log keeps no readable
/// personal data after erasure.
///
/// On the wire it is a plain JSON string.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SealedText(String);

impl SealedText {
    /// Wraps what the keyring returned. Not checked: its format is the keyring's business.
    pub fn new(ciphertext: impl Into<String>) -> Self {
        Self(ciphertext.into())
    }

    pub fn ciphertext(&self) -> &str {
        &self.0
    }

    pub fn into_ciphertext(self) -> String {
        self.0
    }
}

impl fmt::Debug for SealedText {
    // Short on purpose: ciphertexts are long and say nothing to a reader of a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealedText({} bytes)", self.0.len())
    }
}

/// The field names personal data is sealed under. They are bound into the ciphertext
/// (associated data), so whoever seals and whoever opens must use the same names.
pub mod fields {
    pub const EMAIL: &str = "email";
    pub const DISPLAY_NAME: &str = "display_name";
    /// The free text of a deactivation (`user.deactivated` v2).
    pub const DEACTIVATION_REASON: &str = "deactivation_reason";
}
