use std::fmt;

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::OsRng;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::{KeyConfigError, KeyringError};

/// 256 bits of key material: wiped from memory on drop, never printed.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct SecretKey([u8; 32]);

impl SecretKey {
    pub(crate) fn generate() -> Result<Self, KeyringError> {
        let mut key = Self([0; 32]);
        OsRng
            .try_fill_bytes(&mut key.0)
            .map_err(KeyringError::Randomness)?;
        Ok(key)
    }

    pub(crate) fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Decodes standard base64 (padding optional) of exactly 32 bytes; `what` names the
    /// key in errors and must not contain the key.
    pub(crate) fn from_base64(encoded: &str, what: &str) -> Result<Self, KeyConfigError> {
        let encoded = encoded.trim();
        let decoded = Zeroizing::new(
            STANDARD
                .decode(encoded)
                .or_else(|_| STANDARD_NO_PAD.decode(encoded))
                .map_err(|_| KeyConfigError::Base64 { what: what.into() })?,
        );
        let bytes: [u8; 32] =
            decoded
                .as_slice()
                .try_into()
                .map_err(|_| KeyConfigError::Length {
                    what: what.into(),
                    len: decoded.len(),
                })?;
        Ok(Self(bytes))
    }

    pub(crate) fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// A fresh random 96-bit AES-GCM nonce. Random nonces are safe for up to 2^32 messages
/// per key, far beyond what one user's personal fields or one master key will see.
pub(crate) fn fresh_nonce() -> Result<[u8; 12], KeyringError> {
    let mut nonce = [0; 12];
    OsRng
        .try_fill_bytes(&mut nonce)
        .map_err(KeyringError::Randomness)?;
    Ok(nonce)
}
