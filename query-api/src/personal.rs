//! Opening the sealed e-mail address and display name of a user view.
//!
//! The read tables hold the keyring's ciphertext only. A field opens with the user's
//! data key; once the key is shredded (erasure) it never opens again, and the view shows
//! `null` with `erased: true`, even before the projector has applied the erasure event.
//! Opened text lives only inside one answer: it is never cached, logged or put in a span.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use keyring::{KeyStore, KeyringError, MasterKeys, SealedText};
use sqlx::MySqlPool;
use uuid::Uuid;

use crate::error::ApiError;

/// The field names command-api seals under (they are bound into the ciphertext).
pub(crate) const EMAIL_FIELD: &str = ledger::sealed_fields::EMAIL;
pub(crate) const DISPLAY_NAME_FIELD: &str = ledger::sealed_fields::DISPLAY_NAME;

/// The keys that open personal data. Cheap to clone.
#[derive(Clone)]
pub struct PersonalData {
    inner: Arc<Inner>,
}

struct Inner {
    keys: OnceLock<KeyStore>,
    /// Where the dev master keys will appear (and the pool of `data_keys`), when none
    /// were configured.
    dev: Option<(MySqlPool, PathBuf)>,
}

/// A user's personal fields as the caller may see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Profile {
    pub email: Option<String>,
    pub display_name: Option<String>,
    pub erased: bool,
}

impl Profile {
    fn erased() -> Self {
        Self {
            email: None,
            display_name: None,
            erased: true,
        }
    }
}

impl PersonalData {
    /// Opens with `keys` (a store over the database that holds `data_keys`).
    pub fn new(keys: KeyStore) -> Self {
        Self {
            inner: Arc::new(Inner {
                keys: OnceLock::from(keys),
                dev: None,
            }),
        }
    }

    /// Configured master keys over `data_keys` on `pool`.
    pub fn with_master_keys(pool: MySqlPool, master: MasterKeys) -> Self {
        Self::new(KeyStore::new(pool, master))
    }

    /// No master keys configured: load them from `dev_file` (over `data_keys` on
    /// `pool`) as soon as that file exists; command-api makes it on its first start,
    /// which may come after ours. Until then, answers that must open personal data are
    /// 503 `unavailable`.
    pub fn from_dev_file(pool: MySqlPool, dev_file: PathBuf) -> Self {
        Self {
            inner: Arc::new(Inner {
                keys: OnceLock::new(),
                dev: Some((pool, dev_file)),
            }),
        }
    }

    fn keys(&self) -> Result<&KeyStore, ApiError> {
        if let Some(keys) = self.inner.keys.get() {
            return Ok(keys);
        }
        let Some((pool, path)) = &self.inner.dev else {
            return Err(ApiError::KeysUnavailable);
        };
        if !path.exists() {
            return Err(ApiError::KeysUnavailable);
        }
        let master = MasterKeys::from_file(path).map_err(|error| {
            tracing::error!(%error, path = %path.display(), "the dev master keys do not load");
            ApiError::KeysUnavailable
        })?;
        tracing::info!(path = %path.display(), "loaded the dev master keys");
        Ok(self
            .inner
            .keys
            .get_or_init(|| KeyStore::new(pool.clone(), master)))
    }

    /// The fields of user `subject` as sealed in the view; `erased` is the view's flag.
    pub(crate) async fn open_profile(
        &self,
        subject: Uuid,
        email: Option<&str>,
        display_name: Option<&str>,
        erased: bool,
    ) -> Result<Profile, ApiError> {
        if erased {
            return Ok(Profile::erased());
        }
        let email = match email {
            Some(sealed) => match self.open(subject, sealed, EMAIL_FIELD).await? {
                Some(text) => Some(text),
                None => return Ok(Profile::erased()),
            },
            None => None,
        };
        let display_name = match display_name {
            Some(sealed) => match self.open(subject, sealed, DISPLAY_NAME_FIELD).await? {
                Some(text) => Some(text),
                None => return Ok(Profile::erased()),
            },
            None => None,
        };
        Ok(Profile {
            email,
            display_name,
            erased: false,
        })
    }

    /// `None` once the subject's key is shredded.
    async fn open(
        &self,
        subject: Uuid,
        sealed: &str,
        field: &str,
    ) -> Result<Option<String>, ApiError> {
        let sealed = SealedText::parse(sealed)?;
        match self.keys()?.open(subject, &sealed, field).await {
            Ok(text) => Ok(Some(text)),
            Err(KeyringError::Shredded { .. }) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }
}
