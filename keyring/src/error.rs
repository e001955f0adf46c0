use std::path::PathBuf;

use uuid::Uuid;

/// Why sealing, opening or managing a data key failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    /// The subject's data key was destroyed: their personal data is unreadable for good.
    #[error("the personal data of subject {subject} has been shredded")]
    Shredded { subject: Uuid },

    #[error("subject {subject} has no data key")]
    NoDataKey { subject: Uuid },

    /// A wrapped key names a master key version this process was not given.
    #[error("master key version {version} is not loaded")]
    UnknownMasterKey { version: u32 },

    /// Wrong master key for that version, or the stored bytes were altered or moved to
    /// another subject.
    #[error(
        "the data key of subject {subject} does not unwrap under master key version {version}"
    )]
    Unwrap { subject: Uuid, version: u32 },

    /// Wrong key, subject or field, or the sealed text was altered.
    #[error("sealed field `{field}` of subject {subject} does not open")]
    Open { subject: Uuid, field: String },

    #[error("malformed sealed text: {reason}")]
    Malformed { reason: &'static str },

    #[error("sealed text names data key version {version}; only version {supported} exists")]
    UnsupportedKeyVersion { version: u32, supported: u32 },

    #[error("sealing field `{field}` failed")]
    Seal { field: String },

    #[error("the operating system's random number generator failed")]
    Randomness(#[source] aes_gcm::aead::rand_core::Error),

    #[error("database error while {doing}")]
    Database {
        doing: &'static str,
        #[source]
        source: sqlx::Error,
    },
}

impl KeyringError {
    pub(crate) fn database(doing: &'static str) -> impl FnOnce(sqlx::Error) -> Self {
        move |source| Self::Database { doing, source }
    }
}

/// Why a master key set or a blind-index key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyConfigError {
    #[error("no keys given")]
    Empty,

    #[error("key entry {index} is not `<version>:<base64>`")]
    Entry { index: usize },

    #[error("key version must be a positive integer, got `{given}`")]
    Version { given: String },

    #[error("master key version {version} appears twice")]
    DuplicateVersion { version: u32 },

    #[error("key {what} is not valid base64")]
    Base64 { what: String },

    #[error("key {what} is {len} bytes; it must be 32")]
    Length { what: String, len: usize },

    #[error("active master key version {version} is not among the loaded keys")]
    ActiveMissing { version: u32 },

    #[error("reading key file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
