use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use moka::policy::EvictionPolicy;
use moka::sync::Cache;
use uuid::Uuid;

use crate::data_key::DataKey;

/// Unwrapped data keys, bounded in count and age (moka: least recently used out first,
/// `time_to_live`). The age bound is what limits how long another process that cached a
/// key keeps decrypting after a shred.
pub(crate) struct KeyCache {
    /// `None` when the capacity is 0: nothing is kept.
    keys: Option<Cache<Uuid, Arc<DataKey>>>,
    /// Bumped by every shred. A key read from the database before a shred must not be
    /// cached after it, so inserts carry the epoch seen before the read. The lock is held
    /// across the check and the insert, and across the bump and the removal: moka makes
    /// each of insert and invalidate atomic, not "compare the epoch, then insert", and a
    /// shred between those two steps would leave the shredded key cached.
    shred_epoch: Mutex<u64>,
}

impl KeyCache {
    pub(crate) fn new(capacity: usize, ttl: Duration) -> Self {
        let keys = (capacity > 0).then(|| {
            Cache::builder()
                .max_capacity(u64::try_from(capacity).unwrap_or(u64::MAX))
                .time_to_live(ttl)
                // The newest key is kept: it is the one a request is about to use.
                .eviction_policy(EvictionPolicy::lru())
                .build()
        });
        Self {
            keys,
            shred_epoch: Mutex::new(0),
        }
    }

    pub(crate) fn get(&self, subject: Uuid) -> Option<Arc<DataKey>> {
        self.keys.as_ref()?.get(&subject)
    }

    /// Take this before reading a key from the database; pass it to `insert`.
    pub(crate) fn epoch(&self) -> u64 {
        *self.lock()
    }

    pub(crate) fn insert(&self, epoch: u64, key: Arc<DataKey>) {
        let Some(keys) = &self.keys else {
            return;
        };
        let current = self.lock();
        if *current == epoch {
            keys.insert(key.subject(), key);
        }
    }

    pub(crate) fn forget_shredded(&self, subject: Uuid) {
        let mut current = self.lock();
        *current += 1;
        if let Some(keys) = &self.keys {
            keys.invalidate(&subject);
        }
    }

    fn lock(&self) -> MutexGuard<'_, u64> {
        // A counter cannot be left half-updated by a panic elsewhere.
        self.shred_epoch
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs moka's pending evictions now, so a test sees the bound applied.
    #[cfg(test)]
    fn settle(&self) {
        if let Some(keys) = &self.keys {
            keys.run_pending_tasks();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Arc<DataKey> {
        Arc::new(DataKey::generate(Uuid::new_v4()).unwrap())
    }

    #[test]
    fn holds_at_most_capacity_keys_evicting_the_oldest() {
        let cache = KeyCache::new(2, Duration::from_secs(60));
        let (a, b, c) = (key(), key(), key());
        for k in [&a, &b, &c] {
            cache.insert(cache.epoch(), Arc::clone(k));
        }
        cache.settle();
        assert!(cache.get(a.subject()).is_none());
        assert!(cache.get(b.subject()).is_some());
        assert!(cache.get(c.subject()).is_some());
    }

    #[test]
    fn a_key_read_before_a_shred_is_not_cached_after_it() {
        let cache = KeyCache::new(10, Duration::from_secs(60));
        let k = key();
        let epoch = cache.epoch();
        cache.forget_shredded(k.subject());
        cache.insert(epoch, Arc::clone(&k));
        assert!(cache.get(k.subject()).is_none());
    }

    #[test]
    fn expired_and_disabled_entries_are_not_served() {
        let expired = KeyCache::new(10, Duration::ZERO);
        let k = key();
        expired.insert(expired.epoch(), Arc::clone(&k));
        assert!(expired.get(k.subject()).is_none());
        let disabled = KeyCache::new(0, Duration::from_secs(60));
        disabled.insert(disabled.epoch(), Arc::clone(&k));
        assert!(disabled.get(k.subject()).is_none());
    }

    /// Not a check: prints what a hit costs, to compare implementations (ADR 0025).
    /// `cargo test --release -p keyring --lib -- --ignored --nocapture lookup_cost`
    #[test]
    #[ignore]
    fn lookup_cost() {
        let cache = KeyCache::new(10_000, Duration::from_secs(60));
        let subjects: Vec<Uuid> = (0..10_000)
            .map(|_| {
                let k = key();
                cache.insert(cache.epoch(), Arc::clone(&k));
                k.subject()
            })
            .collect();
        let (one, two) = measure(&subjects, |s| cache.get(*s).is_some());
        println!("KeyCache hit: {one:.0} ns/lookup, {two:.0} ns/lookup with 2 threads");
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
