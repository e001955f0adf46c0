//! E-mail uniqueness, enforced in the same append as the events that set an address
//! (DESIGN.md §3), never by querying a projection.
//!
//! Two claims per user, both keyed so the database never holds an address:
//! - scope `email`, key = the keyring's blind index of the normalized (lowercase)
//!   address, payload `{user_id}`: a second user with the same address, in any case,
//!   fails the append with `ClaimTaken` → 409 `email_taken`;
//! - scope `user-email`, key = the user's id, payload `{email_hash}`: which `email` key
//!   the user holds, so a change of address or an erasure releases it without opening
//!   the sealed address (after erasure it cannot be opened at all).

use event_store::{Claim, ClaimOp, EventStore};
use keyring::BlindIndex;
use ledger::{Email, UserId};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

pub(crate) const EMAIL_SCOPE: &str = "email";
pub(crate) const USER_EMAIL_SCOPE: &str = "user-email";

/// The blind index of one normalized address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EmailHash([u8; 32]);

impl EmailHash {
    pub(crate) fn of(index: &BlindIndex, email: &Email) -> Self {
        Self(index.hash_email(&email.normalized()))
    }
}

#[derive(Serialize, Deserialize)]
struct UserEmail {
    email_hash: String,
}

#[derive(Serialize)]
struct EmailOwner {
    user_id: UserId,
}

/// The claims that give `user_id` the address hashed `new`, releasing `old` (the one it
/// holds, if any) first: the store runs an append's releases before its claims.
pub(crate) fn claim_email(user_id: UserId, new: EmailHash, old: Option<EmailHash>) -> Vec<ClaimOp> {
    let mut ops = release_email(user_id, old);
    ops.push(ClaimOp::Claim(Claim {
        scope: EMAIL_SCOPE.to_owned(),
        key: new.0.to_vec(),
        payload: serde_json::json!(EmailOwner { user_id }),
    }));
    ops.push(ClaimOp::Claim(Claim {
        scope: USER_EMAIL_SCOPE.to_owned(),
        key: user_id.as_uuid().as_bytes().to_vec(),
        payload: serde_json::json!(UserEmail {
            email_hash: hex::encode(new.0)
        }),
    }));
    ops
}

/// The claims that give up the address `user_id` holds.
pub(crate) fn release_email(user_id: UserId, old: Option<EmailHash>) -> Vec<ClaimOp> {
    let Some(old) = old else {
        return Vec::new();
    };
    vec![
        ClaimOp::Release {
            scope: EMAIL_SCOPE.to_owned(),
            key: old.0.to_vec(),
        },
        ClaimOp::Release {
            scope: USER_EMAIL_SCOPE.to_owned(),
            key: user_id.as_uuid().as_bytes().to_vec(),
        },
    ]
}

/// The hash of the address `user_id` holds now. Read after the user's stream, so it is
/// at least as new as the state decided on; if it is newer, the stream moved too and
/// the append fails its expected version.
pub(crate) async fn current_email(
    store: &EventStore,
    user_id: UserId,
) -> Result<Option<EmailHash>, ApiError> {
    let Some(claim) = store
        .claim(USER_EMAIL_SCOPE, user_id.as_uuid().as_bytes())
        .await?
    else {
        return Ok(None);
    };
    let corrupt = || ApiError::Corrupt {
        what: "user-email claim",
    };
    let record: UserEmail = serde_json::from_value(claim.payload).map_err(|_| corrupt())?;
    let bytes = hex::decode(record.email_hash).map_err(|_| corrupt())?;
    let hash = bytes.try_into().map_err(|_| corrupt())?;
    Ok(Some(EmailHash(hash)))
}
