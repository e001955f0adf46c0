use std::fmt;

use uuid::Uuid;

use crate::error::KeyringError;
use crate::secret::SecretKey;

/// nonce (12) || ciphertext of the 32-byte key || tag (16)
pub(crate) const WRAPPED_LEN: usize = 12 + 32 + 16;

/// A subject's own 256-bit key: seals and opens their personal fields (`sealed.rs`).
/// Only ever stored wrapped; wiped from memory on drop.
pub struct DataKey {
    subject: Uuid,
    key: SecretKey,
}

impl DataKey {
    /// A fresh random key for `subject`.
    pub fn generate(subject: Uuid) -> Result<Self, KeyringError> {
        Ok(Self::from_secret(subject, SecretKey::generate()?))
    }

    pub(crate) fn from_secret(subject: Uuid, key: SecretKey) -> Self {
        Self { subject, key }
    }

    pub fn subject(&self) -> Uuid {
        self.subject
    }

    pub(crate) fn secret(&self) -> &SecretKey {
        &self.key
    }

    /// The key's bytes, for a secret that leaves the keyring by design: a webhook's
    /// signing secret is shown to its creator once and signs every delivery, while it is
    /// stored wrapped like any data key.
    pub fn expose_bytes(&self) -> &[u8; 32] {
        self.key.expose()
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKey")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// A data key encrypted under one master key version, as the `data_keys` table holds
/// it. The bytes are not secret, but they only unwrap for this subject and version.
#[derive(Clone, PartialEq, Eq)]
pub struct WrappedDataKey {
    subject: Uuid,
    master_version: u32,
    bytes: Vec<u8>,
}

impl WrappedDataKey {
    pub fn new(subject: Uuid, master_version: u32, bytes: Vec<u8>) -> Self {
        Self {
            subject,
            master_version,
            bytes,
        }
    }

    pub fn subject(&self) -> Uuid {
        self.subject
    }

    pub fn master_version(&self) -> u32 {
        self.master_version
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl fmt::Debug for WrappedDataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WrappedDataKey")
            .field("subject", &self.subject)
            .field("master_version", &self.master_version)
            .field("len", &self.bytes.len())
            .finish()
    }
}
