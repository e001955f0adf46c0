//! The ledger domain: users who hold balances per currency and move money between them.
//!
//! Commands are imperative (`Withdraw`), events past tense (`Withdrawn`); all business
//! rules live in `decide`, which may reject, and `evolve` folds events into state and
//! cannot fail. Pure: no I/O, no sqlx, axum, tokio or event-store here.
//!
//! A tour:
//! - Values parsed once at the boundary, each `parse` failing with a typed error that
//!   converts into a [`FieldError`] (`field`, stable `code`, message): [`UserId`],
//!   [`TransactionId`] (`id.rs`), [`Email`] (`email.rs`), [`DisplayName`]
//!   (`display_name.rs`), [`Amount`], [`Currency`] with the configured [`CurrencySet`]
//!   and [`Balance`] (`money.rs`), [`DeactivationReason`] (`reason.rs`). Personal data
//!   travels only as [`SealedText`] (`sealed.rs`), ciphertext the keyring made.
//! - [`Command`] and [`Transfer`] (`command.rs`): what the command side asks for.
//! - [`LedgerEvent`] (`event.rs`): what happened, one user stream `user-<uuid>` each; the
//!   wire names, versions and JSON payloads; [`EVENT_TYPES`] lists them all.
//! - [`decide`] and [`decide_transfer`] (`decide.rs`): the rules; [`Rejection`]
//!   (`rejection.rs`) with API.md's stable codes.
//! - [`User`], [`evolve`] and [`replay`] (`user.rs`): the one fold from events to state,
//!   used by commands, the projector's checks and the auditors' replays alike.
//! - [`decode`] (`decode.rs`, `upcast.rs`): stored type + version + JSON into the current
//!   types, upcasting old versions.
//! - `testing` (feature `testing`): given / when / then and fixtures.
//!
//! Money lives on the user's stream, so a transfer is one atomic append to two streams:
//! `decide_transfer` returns the events for each. JSON Schemas of every event version,
//! command body and the CloudEvents envelope are in `schemas/`; `tests/schemas.rs` checks
//! the emitted events against them.

mod command;
mod decide;
mod decode;
mod display_name;
mod email;
mod event;
mod field;
mod id;
mod money;
mod reason;
mod rejection;
mod sealed;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod upcast;
mod user;

pub use command::{
    Command, DeactivateUser, Deposit, ErasePersonalData, RegisterUser, Transfer, UpdateProfile,
    Withdraw,
};
pub use decide::{decide, decide_transfer};
pub use decode::{decode, decode_value, DecodeError};
pub use display_name::{DisplayName, DisplayNameError};
pub use email::{Email, EmailError};
pub use event::{
    Deposited, Direction, EventTypeInfo, LedgerEvent, PersonalDataErased, ProfileUpdated,
    Transferred, UserDeactivated, UserRegistered, Withdrawn, EVENT_TYPES,
};
pub use field::FieldError;
pub use id::{IdError, TransactionId, UserId};
pub use money::{Amount, AmountError, Balance, Balances, Currency, CurrencyError, CurrencySet};
pub use reason::{DeactivationReason, ReasonError};
pub use rejection::Rejection;
pub use sealed::{fields as sealed_fields, SealedText};
pub use user::{evolve, evolve_balance, replay, User, UserStatus};
