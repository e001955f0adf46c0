use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::data_key::DataKey;

/// Unwrapped data keys, bounded in count and age. The age bound is what limits how long
/// another process that cached a key keeps decrypting after a shred.
pub(crate) struct KeyCache {
    capacity: usize,
    ttl: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    entries: HashMap<Uuid, Entry>,
    /// Insertion order for eviction; may hold subjects already removed.
    order: VecDeque<Uuid>,
    /// Bumped by every shred. A key read from the database before a shred must not be
    /// cached after it, so inserts carry the epoch seen before the read.
    shred_epoch: u64,
}

struct Entry {
    key: Arc<DataKey>,
    loaded: Instant,
}

impl KeyCache {
    pub(crate) fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            capacity,
            ttl,
            state: Mutex::default(),
        }
    }

    pub(crate) fn get(&self, subject: Uuid) -> Option<Arc<DataKey>> {
        let mut state = self.lock();
        let entry = state.entries.get(&subject)?;
        if entry.loaded.elapsed() < self.ttl {
            return Some(Arc::clone(&entry.key));
        }
        state.entries.remove(&subject);
        None
    }

    /// Take this before reading a key from the database; pass it to `insert`.
    pub(crate) fn epoch(&self) -> u64 {
        self.lock().shred_epoch
    }

    pub(crate) fn insert(&self, epoch: u64, key: Arc<DataKey>) {
        let mut state = self.lock();
        if self.capacity == 0 || state.shred_epoch != epoch {
            return;
        }
        let subject = key.subject();
        let entry = Entry {
            key,
            loaded: Instant::now(),
        };
        if state.entries.insert(subject, entry).is_none() {
            state.order.push_back(subject);
        }
        while state.entries.len() > self.capacity || state.order.len() > 2 * self.capacity {
            let Some(oldest) = state.order.pop_front() else {
                break;
            };
            state.entries.remove(&oldest);
        }
    }

    pub(crate) fn forget_shredded(&self, subject: Uuid) {
        let mut state = self.lock();
        state.shred_epoch += 1;
        state.entries.remove(&subject);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent at every await-free step, so a panic elsewhere
        // while holding the lock leaves nothing half-done.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
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
