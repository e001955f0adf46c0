use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use aes_gcm::aead::AeadInPlace;
use aes_gcm::{Aes256Gcm, Key, KeyInit, Nonce, Tag};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::data_key::{DataKey, WrappedDataKey, WRAPPED_LEN};
use crate::error::{KeyConfigError, KeyringError};
use crate::secret::{fresh_nonce, SecretKey};

/// Domain separation: these bytes start the associated data of every wrapped data key.
const WRAP_AAD_PREFIX: &[u8] = b"keyring.data-key.v1";

/// The versioned master keys that wrap data keys. One version is active: new data keys
/// (and [`rewrap`](Self::rewrap)) use it; any loaded version unwraps what it wrapped.
///
/// Rotation: give every process the new version first (still activating the old one),
/// then activate the new one, then run `KeyStore::rewrap_all`, and only then drop the
/// old version.
pub struct MasterKeys {
    keys: BTreeMap<u32, SecretKey>,
    active: u32,
}

impl MasterKeys {
    /// Parses `1:<base64>,2:<base64>` (commas, whitespace or newlines between entries);
    /// each key is 32 bytes in standard base64 (e.g. `openssl rand -base64 32`). The
    /// highest version is active; pin another with [`with_active`](Self::with_active).
    pub fn parse(spec: &str) -> Result<Self, KeyConfigError> {
        let mut keys = BTreeMap::new();
        let entries = spec
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|e| !e.is_empty());
        for (index, entry) in entries.enumerate() {
            let (version, key) = entry
                .split_once(':')
                .ok_or(KeyConfigError::Entry { index })?;
            let version = parse_version(version)?;
            let key = SecretKey::from_base64(key, &format!("for master version {version}"))?;
            if keys.insert(version, key).is_some() {
                return Err(KeyConfigError::DuplicateVersion { version });
            }
        }
        Self::from_map(keys)
    }

    /// Reads [`parse`](Self::parse)'s format from a file, e.g. a mounted secret.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, KeyConfigError> {
        let path = path.as_ref();
        let spec = Zeroizing::new(std::fs::read_to_string(path).map_err(|source| {
            KeyConfigError::Read {
                path: path.to_owned(),
                source,
            }
        })?);
        Self::parse(&spec)
    }

    /// Keys given as raw bytes (tests, or a caller with its own secret store); the
    /// highest version is active.
    pub fn from_keys(
        keys: impl IntoIterator<Item = (u32, [u8; 32])>,
    ) -> Result<Self, KeyConfigError> {
        let mut map = BTreeMap::new();
        for (version, bytes) in keys {
            if version == 0 {
                return Err(KeyConfigError::Version { given: "0".into() });
            }
            if map.insert(version, SecretKey::from_bytes(bytes)).is_some() {
                return Err(KeyConfigError::DuplicateVersion { version });
            }
        }
        Self::from_map(map)
    }

    fn from_map(keys: BTreeMap<u32, SecretKey>) -> Result<Self, KeyConfigError> {
        let active = *keys.keys().next_back().ok_or(KeyConfigError::Empty)?;
        Ok(Self { keys, active })
    }

    /// Makes `version` the one that wraps, e.g. to keep wrapping with the old version
    /// while the new one is still being rolled out.
    pub fn with_active(mut self, version: u32) -> Result<Self, KeyConfigError> {
        if !self.keys.contains_key(&version) {
            return Err(KeyConfigError::ActiveMissing { version });
        }
        self.active = version;
        Ok(self)
    }

    pub fn active_version(&self) -> u32 {
        self.active
    }

    pub fn versions(&self) -> impl Iterator<Item = u32> + '_ {
        self.keys.keys().copied()
    }

    /// Wraps `data_key` under the active version, bound to its subject.
    pub fn wrap(&self, data_key: &DataKey) -> Result<WrappedDataKey, KeyringError> {
        self.wrap_with(self.active, data_key)
    }

    fn wrap_with(&self, version: u32, data_key: &DataKey) -> Result<WrappedDataKey, KeyringError> {
        let subject = data_key.subject();
        let cipher = self.cipher(version)?;
        let nonce = fresh_nonce()?;
        // Holds the plain key until encrypted in place; wiped either way.
        let mut sealed = Zeroizing::new(*data_key.secret().expose());
        let tag = cipher
            .encrypt_in_place_detached(
                Nonce::from_slice(&nonce),
                &wrap_aad(subject, version),
                sealed.as_mut_slice(),
            )
            .map_err(|_| KeyringError::Seal {
                field: "data key".into(),
            })?;
        let mut bytes = Vec::with_capacity(WRAPPED_LEN);
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(sealed.as_slice());
        bytes.extend_from_slice(&tag);
        Ok(WrappedDataKey::new(subject, version, bytes))
    }

    /// Recovers the data key with whichever master version wrapped it.
    pub fn unwrap(&self, wrapped: &WrappedDataKey) -> Result<DataKey, KeyringError> {
        let subject = wrapped.subject();
        let version = wrapped.master_version();
        let cipher = self.cipher(version)?;
        let fail = || KeyringError::Unwrap { subject, version };
        let bytes = wrapped.bytes();
        if bytes.len() != WRAPPED_LEN {
            return Err(fail());
        }
        let (nonce, rest) = bytes.split_at(12);
        let (sealed, tag) = rest.split_at(32);
        let mut key = Zeroizing::new([0u8; 32]);
        key.copy_from_slice(sealed);
        cipher
            .decrypt_in_place_detached(
                Nonce::from_slice(nonce),
                &wrap_aad(subject, version),
                key.as_mut_slice(),
                Tag::from_slice(tag),
            )
            .map_err(|_| fail())?;
        Ok(DataKey::from_secret(subject, SecretKey::from_bytes(*key)))
    }

    /// The same data key, wrapped under the active version (a fresh wrap even if it was
    /// already active).
    pub fn rewrap(&self, wrapped: &WrappedDataKey) -> Result<WrappedDataKey, KeyringError> {
        self.wrap(&self.unwrap(wrapped)?)
    }

    fn cipher(&self, version: u32) -> Result<Aes256Gcm, KeyringError> {
        let key = self
            .keys
            .get(&version)
            .ok_or(KeyringError::UnknownMasterKey { version })?;
        Ok(Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key.expose())))
    }
}

impl FromStr for MasterKeys {
    type Err = KeyConfigError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        Self::parse(spec)
    }
}

impl fmt::Debug for MasterKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKeys")
            .field("versions", &self.keys.keys().collect::<Vec<_>>())
            .field("active", &self.active)
            .finish_non_exhaustive()
    }
}

fn parse_version(given: &str) -> Result<u32, KeyConfigError> {
    match given.trim().parse::<u32>() {
        Ok(v) if v > 0 => Ok(v),
        _ => Err(KeyConfigError::Version {
            given: given.into(),
        }),
    }
}

/// The wrapped key is bound to its subject and to the version label stored beside it,
/// so neither can be swapped in the table without unwrapping failing.
fn wrap_aad(subject: Uuid, version: u32) -> Vec<u8> {
    let mut aad = Vec::with_capacity(WRAP_AAD_PREFIX.len() + 20);
    aad.extend_from_slice(WRAP_AAD_PREFIX);
    aad.extend_from_slice(subject.as_bytes());
    aad.extend_from_slice(&version.to_be_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> [u8; 32] {
        [b; 32]
    }

    fn b64(b: u8) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(key(b))
    }

    #[test]
    fn parses_versions_and_activates_the_highest() {
        let keys = MasterKeys::parse(&format!("2:{}, 1:{}\n", b64(2), b64(1))).unwrap();
        assert_eq!(keys.versions().collect::<Vec<_>>(), [1, 2]);
        assert_eq!(keys.active_version(), 2);
        assert_eq!(keys.with_active(1).unwrap().active_version(), 1);
    }

    #[test]
    fn rejects_bad_specs() {
        assert!(matches!(MasterKeys::parse(" "), Err(KeyConfigError::Empty)));
        assert!(matches!(
            MasterKeys::parse("nocolon"),
            Err(KeyConfigError::Entry { index: 0 })
        ));
        assert!(matches!(
            MasterKeys::parse(&format!("0:{}", b64(1))),
            Err(KeyConfigError::Version { .. })
        ));
        assert!(matches!(
            MasterKeys::parse(&format!("1:{},1:{}", b64(1), b64(2))),
            Err(KeyConfigError::DuplicateVersion { version: 1 })
        ));
        assert!(matches!(
            MasterKeys::parse("1:AAAA"),
            Err(KeyConfigError::Length { len: 3, .. })
        ));
        assert!(matches!(
            MasterKeys::parse("1:!!"),
            Err(KeyConfigError::Base64 { .. })
        ));
        assert!(matches!(
            MasterKeys::from_keys([(1, key(1))]).unwrap().with_active(2),
            Err(KeyConfigError::ActiveMissing { version: 2 })
        ));
    }

    #[test]
    fn debug_never_prints_key_material() {
        let keys = MasterKeys::from_keys([(7, key(0xAB))]).unwrap();
        let shown = format!("{keys:?}");
        assert!(shown.contains('7'), "{shown}");
        assert!(!shown.contains("171"), "{shown}");
    }

    #[test]
    fn wrap_then_unwrap_returns_the_same_key() {
        let keys = MasterKeys::from_keys([(1, key(1))]).unwrap();
        let data_key = DataKey::generate(Uuid::new_v4()).unwrap();
        let wrapped = keys.wrap(&data_key).unwrap();
        assert_eq!(wrapped.master_version(), 1);
        assert_eq!(wrapped.bytes().len(), WRAPPED_LEN);
        let unwrapped = keys.unwrap(&wrapped).unwrap();
        assert_eq!(unwrapped.secret().expose(), data_key.secret().expose());
    }

    #[test]
    fn a_wrapped_key_moved_to_another_subject_does_not_unwrap() {
        let keys = MasterKeys::from_keys([(1, key(1))]).unwrap();
        let wrapped = keys
            .wrap(&DataKey::generate(Uuid::new_v4()).unwrap())
            .unwrap();
        let other = Uuid::new_v4();
        let moved = WrappedDataKey::new(other, 1, wrapped.bytes().to_vec());
        assert!(matches!(
            keys.unwrap(&moved),
            Err(KeyringError::Unwrap { subject, version: 1 }) if subject == other
        ));
    }

    #[test]
    fn rotation_keeps_old_versions_readable_and_rewrap_moves_to_the_active_one() {
        let old = MasterKeys::from_keys([(1, key(1))]).unwrap();
        let data_key = DataKey::generate(Uuid::new_v4()).unwrap();
        let wrapped_v1 = old.wrap(&data_key).unwrap();

        let rotated = MasterKeys::from_keys([(1, key(1)), (2, key(2))]).unwrap();
        let still = rotated.unwrap(&wrapped_v1).unwrap();
        assert_eq!(still.secret().expose(), data_key.secret().expose());

        let wrapped_v2 = rotated.rewrap(&wrapped_v1).unwrap();
        assert_eq!(wrapped_v2.master_version(), 2);

        let only_new = MasterKeys::from_keys([(2, key(2))]).unwrap();
        let unwrapped = only_new.unwrap(&wrapped_v2).unwrap();
        assert_eq!(unwrapped.secret().expose(), data_key.secret().expose());
        assert!(matches!(
            only_new.unwrap(&wrapped_v1),
            Err(KeyringError::UnknownMasterKey { version: 1 })
        ));
    }

    #[test]
    fn relabelling_the_version_or_using_the_wrong_key_fails() {
        let keys = MasterKeys::from_keys([(1, key(1)), (2, key(2))]).unwrap();
        let data_key = DataKey::generate(Uuid::new_v4()).unwrap();
        let wrapped = keys.with_active(1).unwrap().wrap(&data_key).unwrap();
        let relabelled = WrappedDataKey::new(data_key.subject(), 2, wrapped.bytes().to_vec());
        let keys = MasterKeys::from_keys([(1, key(1)), (2, key(2))]).unwrap();
        assert!(matches!(
            keys.unwrap(&relabelled),
            Err(KeyringError::Unwrap { version: 2, .. })
        ));
        let impostor = MasterKeys::from_keys([(1, key(9))]).unwrap();
        assert!(matches!(
            impostor.unwrap(&wrapped),
            Err(KeyringError::Unwrap { version: 1, .. })
        ));
    }
}
