//! Envelope encryption of personal data: a data key per user, wrapped by a versioned
//! master key; destroying a user's data key shreds their personal data everywhere.
//!
//! Knows nothing of HTTP or of the ledger. Never reads the environment: callers hand
//! in the keys. Never prints or logs key material (every `Debug` is redacted) and wipes
//! it from memory on drop.
//!
//! A tour:
//! - [`KeyStore`] (`store.rs`) is the handle over the `data_keys` table: a subject's
//!   data key (created on first use), `seal`/`open`, `shred`, and `rewrap_all` after a
//!   master-key rotation. `cache.rs` keeps unwrapped keys in a moka cache, bounded in
//!   count and age; its shred epoch keeps a key read before a shred out of it.
//! - [`MasterKeys`] (`master.rs`) are the versioned master keys; they wrap and unwrap
//!   [`DataKey`]s (`data_key.rs`) with AES-256-GCM bound to the subject.
//! - [`SealedText`] (`sealed.rs`) is one encrypted field, `v1.<key-version>.<base64url>`,
//!   bound to its subject and field name.
//! - [`BlindIndex`] (`blind_index.rs`) is a keyed hash for uniqueness lookups, so the
//!   database indexes e-mail addresses it cannot read.
//! - `schema.rs` embeds the `keyring/migrations` set; `error.rs` holds the typed errors.
//! - [`ErasureRegister`] (`register.rs`): every erasure also goes to a file outside the
//!   database, so a restore to an older point can shred again ([`reapply`]); and
//!   [`shred_key`], shredding without the master keys.
//!
//! Crypto-shredding (DESIGN.md §7): events keep their sealed fields forever and the log
//! stays intact; shredding destroys only the wrapped key, after which every copy of the
//! subject's fields fails to open with [`KeyringError::Shredded`].

mod blind_index;
mod cache;
mod data_key;
mod error;
mod master;
mod register;
mod schema;
mod sealed;
mod secret;
mod store;

pub use blind_index::BlindIndex;
pub use data_key::{DataKey, WrappedDataKey};
pub use error::{KeyConfigError, KeyringError};
pub use master::MasterKeys;
pub use register::{reapply, shred_key, Erasure, ErasureRegister, RegisterError};
pub use schema::migrator;
pub use sealed::{SealedText, DATA_KEY_VERSION};
pub use store::{KeyStore, KeyStoreOptions};
