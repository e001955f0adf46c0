use hash_chain::Walk;
use serde::Serialize;

use crate::chain::{Hash, GENESIS_HASH};
use crate::error::StoreError;
use crate::store::EventStore;

/// The result of recomputing the hash chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    /// Events whose hash was recomputed.
    pub checked: u64,
    /// The last position checked and its stored hash (lowercase hex).
    pub head_position: u64,
    pub head_hash: String,
    /// The first position whose stored hash, previous hash or place in the sequence is
    /// wrong.
    pub first_bad_position: Option<u64>,
}

impl EventStore {
    /// Recomputes the chain from `from` (1 for the whole log) to `to` (inclusive; the
    /// head when `None`) and stops at the first bad event.
    #[tracing::instrument(skip(self))]
    pub async fn verify(&self, from: u64, to: Option<u64>) -> Result<VerifyReport, StoreError> {
        let from = from.max(1);
        let prev: Hash = if from == 1 {
            GENESIS_HASH
        } else {
            match self.read_all(from - 2, 1).await?.pop() {
                Some(e) if e.position == from - 1 => e.hash,
                _ => {
                    return Err(StoreError::Invalid(format!(
                        "position {} is not in the log",
                        from - 1
                    )))
                }
            }
        };
        let mut report = VerifyReport {
            ok: true,
            checked: 0,
            head_position: from - 1,
            head_hash: hex::encode(prev),
            first_bad_position: None,
        };
        let mut walk = Walk::after(from - 1, prev);
        loop {
            let page = self.read_all(walk.position(), 1_000).await?;
            if page.is_empty() {
                return Ok(report);
            }
            for e in page {
                if to.is_some_and(|to| e.position > to) {
                    return Ok(report);
                }
                if let Err(broken) = walk.step(&e.canonical(), &e.prev_hash, &e.hash) {
                    report.ok = false;
                    report.first_bad_position = Some(broken.position());
                    return Ok(report);
                }
                report.checked = walk.checked();
                report.head_position = e.position;
                report.head_hash = hex::encode(e.hash);
            }
        }
    }
}
