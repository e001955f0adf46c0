//! `Idempotency-Key`: a command sent again with the same key gets the first answer back
//! and appends nothing; the same key with another request is 409 `idempotency_key_reused`.
//!
//! The record is a claim made in the same atomic append as the command's events: a command
//! either committed with its record or not at all. The claim keeps the append's last
//! position itself, so the stored answer leaves the position out. Only commands that
//! appended leave a record; one that appended nothing (already done) gives the same
//! answer when repeated anyway.
//!
//! Nothing in a record lets anyone confirm a guess about the request (DESIGN.md §7): the
//! key is an HMAC of the caller's `sub` and the header, and "the same request" is an HMAC
//! of method, path and body, both under a server key (derived from the blind-index key),
//! never a plain hash of a body that may hold an e-mail address. Records of
//! `Idempotency-Key` headers (scope `idempotency`) expire after `IDEMPOTENCY_TTL_SECS`
//! (swept by [`sweep`]) and are released when their user's personal data is erased. A
//! client's own `transaction_id` (scope `transaction-id`) keeps a transaction id unique
//! for good: its key names only the id, and its body only ids and amounts.
//!
//! Records made before the keyed form (plain SHA-256, scope `idempotency`) are still
//! found and compared in their own form until they expire.

use std::time::Duration;

use event_store::{Claim, ClaimOp, EventStore};
use keyring::BlindIndex;
use ledger::FieldError;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::ApiError;
use crate::reply::{Answer, Reply};

/// Records of `Idempotency-Key` headers: expire, released on erasure.
pub(crate) const IDEMPOTENCY_SCOPE: &str = "idempotency";
/// Records of clients' `transaction_id`s: kept.
pub(crate) const TRANSACTION_ID_SCOPE: &str = "transaction-id";

/// Where a record lives: its scope and key.
#[derive(Clone)]
struct Slot {
    scope: &'static str,
    key: [u8; 32],
}

/// A well-formed key (1–128 visible ASCII characters), hashed with its caller.
#[derive(Clone)]
pub(crate) struct IdempotencyKey {
    slot: Slot,
    /// Where a record made before keyed fingerprints would be.
    legacy: Slot,
}

impl IdempotencyKey {
    pub(crate) const MAX_LEN: usize = 128;

    pub(crate) fn parse(raw: &str, subject: Uuid, index: &BlindIndex) -> Result<Self, FieldError> {
        let ok =
            (1..=Self::MAX_LEN).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_graphic());
        if !ok {
            return Err(Self::invalid());
        }
        let mut hash = Sha256::new();
        hash.update(subject.as_bytes());
        hash.update(raw.as_bytes());
        Ok(Self {
            slot: Slot {
                scope: IDEMPOTENCY_SCOPE,
                key: index.fingerprint(b"idempotency-key", &[subject.as_bytes(), raw.as_bytes()]),
            },
            legacy: Slot {
                scope: IDEMPOTENCY_SCOPE,
                key: hash.finalize().into(),
            },
        })
    }

    /// The key a client's own `transaction_id` stands for: one per transaction, whoever
    /// sends it (a transaction id names one transaction in the whole ledger). Its hash
    /// names only the id, which the log holds anyway.
    pub(crate) fn for_transaction(id: Uuid) -> Self {
        let mut hash = Sha256::new();
        hash.update(b"transaction_id:");
        hash.update(id.as_bytes());
        let key: [u8; 32] = hash.finalize().into();
        let slot = Slot {
            scope: TRANSACTION_ID_SCOPE,
            key,
        };
        Self {
            legacy: slot.clone(),
            slot,
        }
    }

    pub(crate) fn invalid() -> FieldError {
        FieldError::new(
            "Idempotency-Key",
            "invalid_idempotency_key",
            "must be 1 to 128 visible ASCII characters",
        )
    }

    /// Lowercase hex of the keyed hash: what the events' metadata carries (never the raw
    /// key, never a hash anyone could recompute from a guess).
    pub(crate) fn hex(&self) -> String {
        hex::encode(self.slot.key)
    }
}

/// "The same request": method, path and body, keyed (and, for records made before, the
/// plain SHA-256 they were compared by).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Fingerprint {
    keyed: [u8; 32],
    legacy: [u8; 32],
}

impl Fingerprint {
    pub(crate) fn of(index: &BlindIndex, method: &str, path: &str, body: &[u8]) -> Self {
        let mut hash = Sha256::new();
        for part in [method.as_bytes(), path.as_bytes()] {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part);
        }
        hash.update(body);
        Self {
            keyed: index.fingerprint(b"request", &[method.as_bytes(), path.as_bytes(), body]),
            legacy: hash.finalize().into(),
        }
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
            request_hash: hex::encode(self.fingerprint.keyed),
            status: answer.status.as_u16(),
            body: answer.body.clone(),
            version: answer.version,
        };
        ClaimOp::Claim(Claim {
            scope: self.key.slot.scope.to_owned(),
            key: self.key.slot.key.to_vec(),
            payload: serde_json::to_value(record).unwrap_or_default(),
        })
    }

    /// The first answer if this key was used before by the same request; 409
    /// `idempotency_key_reused` if by another; `None` if the key is new.
    pub(crate) async fn recorded(&self, store: &EventStore) -> Result<Option<Reply>, ApiError> {
        let (claim, request_hash) =
            match store.claim(self.key.slot.scope, &self.key.slot.key).await? {
                Some(claim) => (claim, self.fingerprint.keyed),
                None => match store
                    .claim(self.key.legacy.scope, &self.key.legacy.key)
                    .await?
                {
                    Some(claim) => (claim, self.fingerprint.legacy),
                    None => return Ok(None),
                },
            };
        let corrupt = || ApiError::Corrupt {
            what: "idempotency record",
        };
        let record: Record = serde_json::from_value(claim.payload).map_err(|_| corrupt())?;
        if record.request_hash != hex::encode(request_hash) {
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

/// How long `Idempotency-Key` records are kept, and how often the sweeper looks.
#[derive(Debug, Clone, Copy)]
pub struct Expiry {
    pub keep_for: Duration,
    pub sweep_every: Duration,
}

/// Rows one sweeping statement deletes at most.
const SWEEP_BATCH: u32 = 1000;

/// Deletes every `Idempotency-Key` record older than `keep_for`; returns how many went.
pub async fn sweep(store: &EventStore, keep_for: Duration) -> Result<u64, event_store::StoreError> {
    let mut total = 0;
    loop {
        let gone = store
            .expire_claims(IDEMPOTENCY_SCOPE, keep_for, SWEEP_BATCH)
            .await?;
        total += gone;
        if gone < u64::from(SWEEP_BATCH) {
            return Ok(total);
        }
    }
}

/// Sweeps every `expiry.sweep_every` until the process ends. Several replicas sweeping
/// the same rows is harmless: each row goes once.
pub async fn sweep_forever(store: EventStore, expiry: Expiry) {
    let mut every = tokio::time::interval(expiry.sweep_every);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        match sweep(&store, expiry.keep_for).await {
            Ok(0) => {}
            Ok(expired) => tracing::info!(expired, "idempotency records expired"),
            Err(error) => tracing::warn!(%error, "sweeping idempotency records failed; next time"),
        }
    }
}

/// Gives up the `Idempotency-Key` records the user's own commands left (an erasure: their
/// request fingerprints are no one's business once the person is gone).
pub(crate) async fn release_for(
    store: &EventStore,
    user_id: ledger::UserId,
) -> Result<u64, ApiError> {
    let stream = crate::stream::stream_id(user_id)?;
    Ok(store
        .release_claims_of_stream(IDEMPOTENCY_SCOPE, &stream)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii_up_to_128_and_scoped_to_the_caller() {
        let index = BlindIndex::new([7; 32]);
        let me = Uuid::now_v7();
        assert!(IdempotencyKey::parse("", me, &index).is_err());
        assert!(IdempotencyKey::parse("has space", me, &index).is_err());
        assert!(IdempotencyKey::parse("é", me, &index).is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(129), me, &index).is_err());
        let a = IdempotencyKey::parse(&"k".repeat(128), me, &index).unwrap();
        let b = IdempotencyKey::parse(&"k".repeat(128), Uuid::now_v7(), &index).unwrap();
        assert_ne!(a.hex(), b.hex());
        assert_eq!(IdempotencyKey::invalid().code, "invalid_idempotency_key");
    }

    #[test]
    fn the_key_and_the_fingerprint_are_keyed_not_plain_hashes() {
        let me = Uuid::now_v7();
        let raw = "register-ada@example.org";
        let one = IdempotencyKey::parse(raw, me, &BlindIndex::new([1; 32])).unwrap();
        let two = IdempotencyKey::parse(raw, me, &BlindIndex::new([2; 32])).unwrap();
        assert_ne!(one.hex(), two.hex());
        let mut plain = Sha256::new();
        plain.update(me.as_bytes());
        plain.update(raw.as_bytes());
        assert_ne!(one.hex(), hex::encode(plain.finalize()));

        let body = br#"{"email":"ada@example.org"}"#;
        let f1 = Fingerprint::of(&BlindIndex::new([1; 32]), "POST", "/u", body);
        let f2 = Fingerprint::of(&BlindIndex::new([2; 32]), "POST", "/u", body);
        assert!(f1.keyed != f2.keyed);
        assert!(f1.keyed != f1.legacy);
    }

    #[test]
    fn the_fingerprint_separates_method_path_and_body() {
        let index = BlindIndex::new([7; 32]);
        assert!(
            Fingerprint::of(&index, "POST", "/a", b"bc")
                != Fingerprint::of(&index, "POST", "/ab", b"c")
        );
        assert!(
            Fingerprint::of(&index, "POST", "/a", b"x")
                == Fingerprint::of(&index, "POST", "/a", b"x")
        );
    }
}
