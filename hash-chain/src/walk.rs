//! Checking a run of consecutive events against the chain rules: each event sits at the
//! next position, links to the hash before it, and its stored hash is the one its bytes
//! give. The event store's `verify` and the offline verifier both walk with [`Walk`], so
//! the rules exist once.

use crate::canonical::{Canonical, Hash, GENESIS_HASH};

/// Where a run of events stops obeying the chain rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Break {
    /// The event found is not at the next position (a hole, a repeat, a reordering).
    #[error("position {expected} expected, {found} found")]
    OutOfSequence { expected: u64, found: u64 },
    /// The event's `prev_hash` is not the hash of the event before it.
    #[error("position {position} does not link to the hash before it")]
    BrokenLink { position: u64 },
    /// The event's stored hash is not the hash of its bytes.
    #[error("position {position}'s stored hash is not the hash of its contents")]
    WrongHash { position: u64 },
}

impl Break {
    /// The first position that is not as it should be.
    pub fn position(&self) -> u64 {
        match *self {
            Break::OutOfSequence { expected, .. } => expected,
            Break::BrokenLink { position } | Break::WrongHash { position } => position,
        }
    }
}

/// A walk along the chain, one event at a time, in position order.
#[derive(Debug, Clone)]
pub struct Walk {
    /// The last position checked (0 before the first event).
    position: u64,
    /// Its hash, recomputed (the genesis hash before the first event).
    hash: Hash,
    checked: u64,
}

impl Walk {
    /// A walk from the start of the log: the first event must be position 1 and link to
    /// the genesis hash.
    pub fn from_genesis() -> Self {
        Self::after(0, GENESIS_HASH)
    }

    /// A walk that resumes after `position`, whose hash is `hash` (known from an earlier
    /// walk, an anchor, or the first event of a partial export taken on trust).
    pub fn after(position: u64, hash: Hash) -> Self {
        Self {
            position,
            hash,
            checked: 0,
        }
    }

    /// Checks the next event; on success it becomes the walk's head. On a break the walk
    /// stays where it was.
    pub fn step(
        &mut self,
        event: &Canonical<'_>,
        prev_hash: &Hash,
        hash: &Hash,
    ) -> Result<(), Break> {
        let expected = self.position + 1;
        if event.position != expected {
            return Err(Break::OutOfSequence {
                expected,
                found: event.position,
            });
        }
        if *prev_hash != self.hash {
            return Err(Break::BrokenLink { position: expected });
        }
        let recomputed = event.hash(&self.hash);
        if recomputed != *hash {
            return Err(Break::WrongHash { position: expected });
        }
        self.position = expected;
        self.hash = recomputed;
        self.checked += 1;
        Ok(())
    }

    /// The last position checked.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The hash at [`Self::position`], recomputed.
    pub fn hash(&self) -> Hash {
        self.hash
    }

    /// Events checked so far.
    pub fn checked(&self) -> u64 {
        self.checked
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn event(position: u64, data: &str) -> Canonical<'_> {
        Canonical {
            position,
            event_id: Uuid::from_u128(u128::from(position)),
            stream_id: "s",
            stream_version: position,
            event_type: "t",
            schema_version: 1,
            data,
            metadata: "{}",
            recorded_at_micros: 0,
        }
    }

    /// Three events chained as the store would write them: (canonical, prev, hash).
    fn chain() -> Vec<(Canonical<'static>, Hash, Hash)> {
        let mut prev = GENESIS_HASH;
        (1..=3)
            .map(|p| {
                let e = event(p, "{}");
                let h = e.hash(&prev);
                let row = (e, prev, h);
                prev = h;
                row
            })
            .collect()
    }

    #[test]
    fn a_chain_written_by_the_rules_walks_to_its_head() {
        let mut walk = Walk::from_genesis();
        for (e, prev, hash) in chain() {
            walk.step(&e, &prev, &hash).unwrap();
        }
        assert_eq!((walk.position(), walk.checked()), (3, 3));
        assert_eq!(walk.hash(), chain()[2].2);
    }

    #[test]
    fn each_kind_of_break_names_the_first_bad_position() {
        let rows = chain();
        let mut walk = Walk::from_genesis();
        walk.step(&rows[0].0, &rows[0].1, &rows[0].2).unwrap();
        // A hole: position 3 after 1.
        let hole = walk.step(&rows[2].0, &rows[2].1, &rows[2].2).unwrap_err();
        assert_eq!(
            hole,
            Break::OutOfSequence {
                expected: 2,
                found: 3
            }
        );
        // Changed contents, stored hash kept.
        let changed = event(2, r#"{"x":1}"#);
        let wrong = walk.step(&changed, &rows[1].1, &rows[1].2).unwrap_err();
        assert_eq!(wrong, Break::WrongHash { position: 2 });
        // A link to something else.
        let link = walk.step(&rows[1].0, &[9; 32], &rows[1].2).unwrap_err();
        assert_eq!(link.position(), 2);
        assert_eq!(walk.position(), 1, "a break does not move the walk");
    }

    #[test]
    fn a_walk_resumes_after_a_known_hash() {
        let rows = chain();
        let mut walk = Walk::after(1, rows[0].2);
        walk.step(&rows[1].0, &rows[1].1, &rows[1].2).unwrap();
        assert_eq!(walk.position(), 2);
    }
}
