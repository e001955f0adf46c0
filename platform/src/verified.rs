//! Tokens already verified, so that a client sending the same bearer token again costs a
//! hash and a lookup instead of a signature check (Ed25519 or RSA: tens of µs, the
//! largest single cost of a command otherwise).
//!
//! What makes it safe: the key is SHA-256 of the whole compact token, so only the very
//! same bytes ever hit; a signature check is a pure function of those bytes and the key
//! set, so the answer cannot differ while the keys stay — and [`VerifiedTokens::clear`]
//! runs whenever the keys are replaced. Time is not cached: `exp` and `nbf` are checked
//! on every hit with the same leeway the full validation uses. Only successes are kept.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::principal::Principal;

/// Entries kept before expired ones are swept (and, if that frees nothing, all dropped).
pub(crate) const DEFAULT_CAPACITY: usize = 65_536;

#[derive(Clone)]
struct Verified {
    principal: Principal,
    /// `exp`, seconds since the epoch.
    expires: u64,
    /// `nbf`, seconds since the epoch, when the token has one.
    not_before: Option<u64>,
}

pub(crate) struct VerifiedTokens {
    entries: Mutex<HashMap<[u8; 32], Verified>>,
    capacity: usize,
    leeway: u64,
}

pub(crate) type TokenDigest = [u8; 32];

pub(crate) fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl VerifiedTokens {
    pub(crate) fn new(capacity: usize, leeway_secs: u64) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity,
            leeway: leeway_secs,
        }
    }

    fn current(&self, entry: &Verified, now: u64) -> bool {
        entry.expires >= now.saturating_sub(self.leeway)
            && entry.not_before.is_none_or(|nbf| nbf <= now + self.leeway)
    }

    /// Who sent the token, if these very bytes were verified and are within their time.
    pub(crate) fn get(&self, digest: &TokenDigest) -> Option<Principal> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = entries.get(digest)?;
        self.current(entry, now()).then(|| entry.principal.clone())
    }

    pub(crate) fn put(
        &self,
        digest: TokenDigest,
        principal: &Principal,
        expires: u64,
        not_before: Option<u64>,
    ) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.capacity {
            let now = now();
            entries.retain(|_, e| self.current(e, now));
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(
            digest,
            Verified {
                principal: principal.clone(),
                expires,
                not_before,
            },
        );
    }

    /// Forgets everything: the keys changed.
    pub(crate) fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::principal::Role;

    fn someone() -> Principal {
        Principal {
            subject: uuid::Uuid::now_v7(),
            roles: vec![Role::User],
            token_id: None,
        }
    }

    #[test]
    fn only_the_same_bytes_hit() {
        let cache = VerifiedTokens::new(8, 5);
        let p = someone();
        cache.put(digest("a.b.c"), &p, now() + 60, None);
        assert_eq!(cache.get(&digest("a.b.c")), Some(p));
        assert_eq!(cache.get(&digest("a.b.d")), None);
    }

    #[test]
    fn time_is_checked_on_every_hit_with_the_leeway() {
        let cache = VerifiedTokens::new(8, 5);
        let t = now();
        cache.put(digest("expired"), &someone(), t - 6, None);
        cache.put(digest("in leeway"), &someone(), t - 4, None);
        cache.put(digest("not yet"), &someone(), t + 60, Some(t + 60));
        cache.put(digest("nearly"), &someone(), t + 60, Some(t + 4));
        assert_eq!(cache.get(&digest("expired")), None);
        assert!(cache.get(&digest("in leeway")).is_some());
        assert_eq!(cache.get(&digest("not yet")), None);
        assert!(cache.get(&digest("nearly")).is_some());
    }

    #[test]
    fn it_stays_bounded_and_sweeps_expired_entries_first() {
        let cache = VerifiedTokens::new(3, 0);
        let t = now();
        cache.put(digest("old"), &someone(), t - 100, None);
        cache.put(digest("a"), &someone(), t + 60, None);
        cache.put(digest("b"), &someone(), t + 60, None);
        cache.put(digest("c"), &someone(), t + 60, None);
        assert_eq!(cache.len(), 3);
        assert!(cache.get(&digest("a")).is_some());
        assert!(cache.get(&digest("c")).is_some());
        cache.put(digest("d"), &someone(), t + 60, None);
        assert!(cache.len() <= 3);
        assert!(cache.get(&digest("d")).is_some());
    }

    #[test]
    fn clearing_forgets_everything_and_zero_capacity_keeps_nothing() {
        let cache = VerifiedTokens::new(8, 5);
        cache.put(digest("a"), &someone(), now() + 60, None);
        cache.clear();
        assert_eq!(cache.get(&digest("a")), None);
        let none = VerifiedTokens::new(0, 5);
        none.put(digest("a"), &someone(), now() + 60, None);
        assert_eq!(none.get(&digest("a")), None);
    }

    /// Not a check: prints what a hit costs, to compare implementations (ADR 0025).
    /// `cargo test --release -p platform --lib -- --ignored --nocapture lookup_cost`
    #[test]
    #[ignore]
    fn lookup_cost() {
        let cache = VerifiedTokens::new(DEFAULT_CAPACITY, 5);
        let digests: Vec<TokenDigest> = (0..10_000)
            .map(|i| {
                let d = digest(&format!("token {i}"));
                cache.put(d, &someone(), now() + 600, None);
                d
            })
            .collect();
        let (one, two) = measure(&digests, |d| cache.get(d).is_some());
        println!("VerifiedTokens hit: {one:.0} ns/lookup, {two:.0} ns/lookup with 2 threads");
    }

    /// Nanoseconds per lookup of every key in `keys` in turn, alone and from two threads at
    /// once (asserting every lookup hits).
    fn measure<K: Sync>(keys: &[K], hit: impl Fn(&K) -> bool + Sync) -> (f64, f64) {
        const ROUNDS: usize = 2_000_000;
        let run = |n: usize| {
            let mut hits = 0usize;
            for i in 0..n {
                hits += usize::from(hit(&keys[i % keys.len()]));
            }
            assert_eq!(hits, n);
        };
        run(ROUNDS / 10);
        let started = std::time::Instant::now();
        run(ROUNDS);
        let one = started.elapsed().as_nanos() as f64 / ROUNDS as f64;
        let started = std::time::Instant::now();
        std::thread::scope(|s| {
            s.spawn(|| run(ROUNDS / 2));
            s.spawn(|| run(ROUNDS / 2));
        });
        let two = 2.0 * started.elapsed().as_nanos() as f64 / ROUNDS as f64;
        (one, two)
    }
}
