//! `Idempotency-Key`: a command sent again with the same key gets the first answer back
//! and appends nothing; the same key with another request is 409 `idempotency_key_reused`.
//!
//! The record is a claim in scope `idempotency`, keyed by SHA-256 of the caller's `sub`
//! and the key (so two callers never share a key), made in the same atomic append as the
//! command's events: a command either committed with its record or not at all. The claim
//! keeps the append's last position itself, so the stored answer leaves the position out.
//! Only commands that appended leave a record; one that appended nothing (already done)
//! gives the same answer when repeated anyway.

use event_store::{Claim, ClaimOp, EventStore};
use ledger::FieldError;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::ApiError;
use crate::reply::{Answer, Reply};

pub(crate) const IDEMPOTENCY_SCOPE: &str = "idempotency";

/// A well-formed key (1–128 visible ASCII characters), hashed with its caller.
#[derive(Clone)]
pub(crate) struct IdempotencyKey([u8; 32]);

impl IdempotencyKey {
    pub(crate) const MAX_LEN: usize = 128;

    pub(crate) fn parse(raw: &str, subject: Uuid) -> Result<Self, FieldError> {
        let ok =
            (1..=Self::MAX_LEN).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_graphic());
        if !ok {
            return Err(Self::invalid());
        }
        let mut hash = Sha256::new();
        hash.update(subject.as_bytes());
        hash.update(raw.as_bytes());
        Ok(Self(hash.finalize().into()))
    }

    /// The key a client's own `transaction_id` stands for: one per transaction, whoever
    /// sends it (a transaction id names one transaction in the whole ledger), kept apart
    /// from header keys by its prefix.
    pub(crate) fn for_transaction(id: Uuid) -> Self {
        let mut hash = Sha256::new();
        hash.update(b"transaction_id:");
        hash.update(id.as_bytes());
        Self(hash.finalize().into())
    }

    pub(crate) fn invalid() -> FieldError {
        FieldError::new(
            "Idempotency-Key",
            "invalid_idempotency_key",
            "must be 1 to 128 visible ASCII characters",
        )
    }

    /// Lowercase hex of the hash: what the events' metadata carries (never the raw key).
    pub(crate) fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// SHA-256 of method, path and body: what "the same request" means.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Fingerprint([u8; 32]);

impl Fingerprint {
    pub(crate) fn of(method: &str, path: &str, body: &[u8]) -> Self {
        let mut hash = Sha256::new();
        for part in [method.as_bytes(), path.as_bytes()] {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part);
        }
        hash.update(body);
        Self(hash.finalize().into())
    }

    fn hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// The claim's payload.
#[derive(Serialize, Deserialize)]
struct Record {
    request_hash: String,
    status: u16,
    body: serde_json::Value,
    #[serde(default)]
    version: Option<u64>,
}

/// A request that carries an idempotency key.
pub(crate) struct Idempotent {
    pub(crate) key: IdempotencyKey,
    pub(crate) fingerprint: Fingerprint,
}

impl Idempotent {
    /// The record to claim with the command's append.
    pub(crate) fn claim(&self, answer: &Answer) -> ClaimOp {
        let record = Record {
            request_hash: self.fingerprint.hex(),
            status: answer.status.as_u16(),
            body: answer.body.clone(),
            version: answer.version,
        };
        ClaimOp::Claim(Claim {
            scope: IDEMPOTENCY_SCOPE.to_owned(),
            key: self.key.0.to_vec(),
            payload: serde_json::to_value(record).unwrap_or_default(),
        })
    }

    /// The first answer if this key was used before by the same request; 409
    /// `idempotency_key_reused` if by another; `None` if the key is new.
    pub(crate) async fn recorded(&self, store: &EventStore) -> Result<Option<Reply>, ApiError> {
        let Some(claim) = store.claim(IDEMPOTENCY_SCOPE, &self.key.0).await? else {
            return Ok(None);
        };
        let corrupt = || ApiError::Corrupt {
            what: "idempotency record",
        };
        let record: Record = serde_json::from_value(claim.payload).map_err(|_| corrupt())?;
        if record.request_hash != self.fingerprint.hex() {
            return Err(ApiError::IdempotencyKeyReused);
        }
        let status = axum::http::StatusCode::from_u16(record.status).map_err(|_| corrupt())?;
        let answer = Answer {
            status,
            body: record.body,
            version: record.version,
        };
        Ok(Some(Reply::replayed(answer, claim.position)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii_up_to_128_and_scoped_to_the_caller() {
        let me = Uuid::now_v7();
        assert!(IdempotencyKey::parse("", me).is_err());
        assert!(IdempotencyKey::parse("has space", me).is_err());
        assert!(IdempotencyKey::parse("é", me).is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(129), me).is_err());
        let a = IdempotencyKey::parse(&"k".repeat(128), me).unwrap();
        let b = IdempotencyKey::parse(&"k".repeat(128), Uuid::now_v7()).unwrap();
        assert_ne!(a.hex(), b.hex());
        assert_eq!(IdempotencyKey::invalid().code, "invalid_idempotency_key");
    }

    #[test]
    fn the_fingerprint_separates_method_path_and_body() {
        assert!(Fingerprint::of("POST", "/a", b"bc") != Fingerprint::of("POST", "/ab", b"c"));
        assert!(Fingerprint::of("POST", "/a", b"x") == Fingerprint::of("POST", "/a", b"x"));
    }
}
