//! Tokens already verified, so that a client sending the same bearer token again costs a
//! hash and a lookup instead of a signature check (Ed25519 or RSA: tens of µs, the
//! largest single cost of a command otherwise).
//!
//! What makes it safe: the key is SHA-256 of the whole compact token, so only the very
//! same bytes ever hit; a signature check is a pure function of those bytes and the key
//! set, so the answer cannot differ while the keys stay — and [`VerifiedTokens::clear`]
//! runs whenever the keys are replaced. Time is not cached: `exp` and `nbf` are checked
//! on every hit with the same leeway the full validation uses. Only successes are kept.
//!
//! The entries live in a moka cache, bounded, least recently used out first. An entry
//! found expired is dropped, so a client repeating an expired token does not keep it the
//! recently used one; moka's per-entry expiry would add a timer per entry for what each
//! hit checks anyway.

use std::time::{SystemTime, UNIX_EPOCH};

use moka::policy::EvictionPolicy;
use moka::sync::Cache;
use sha2::{Digest, Sha256};

use crate::principal::Principal;

/// Entries kept at most.
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
    /// `None` when the capacity is 0: nothing is kept.
    entries: Option<Cache<TokenDigest, Verified>>,
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
        let entries = (capacity > 0).then(|| {
            Cache::builder()
                .max_capacity(u64::try_from(capacity).unwrap_or(u64::MAX))
                // The token just verified is kept: its client is about to send it again.
                .eviction_policy(EvictionPolicy::lru())
                .build()
        });
        Self {
            entries,
            leeway: leeway_secs,
        }
    }

    /// Who sent the token, if these very bytes were verified and are within their time.
    pub(crate) fn get(&self, digest: &TokenDigest) -> Option<Principal> {
        let entries = self.entries.as_ref()?;
        let entry = entries.get(digest)?;
        let now = now();
        if entry.expires < now.saturating_sub(self.leeway) {
            entries.invalidate(digest);
            return None;
        }
        let started = entry.not_before.is_none_or(|nbf| nbf <= now + self.leeway);
        started.then_some(entry.principal)
    }

    pub(crate) fn put(
        &self,
        digest: TokenDigest,
        principal: &Principal,
        expires: u64,
        not_before: Option<u64>,
    ) {
        let Some(entries) = &self.entries else {
            return;
        };
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
        if let Some(entries) = &self.entries {
            entries.invalidate_all();
        }
    }

    /// Entries held once moka's pending evictions have run.
    #[cfg(test)]
    fn len(&self) -> u64 {
        self.entries.as_ref().map_or(0, |entries| {
            entries.run_pending_tasks();
            entries.entry_count()
        })
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
