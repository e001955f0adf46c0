//! An in-process cache of hot views (a user, a user's balances), invalidated by the
//! projection, never by a timer.
//!
//! Each entry remembers the checkpoint, generation and position, its row was read at
//! (in one snapshot with it, `snapshot.rs`). The projector moves rows and checkpoint in
//! one transaction, so while the checkpoint is unchanged no row has changed and the
//! entry is exact; once it moves, every entry read before is stale (it may or may not
//! have changed, and only the database knows). A rebuild's swap brings other tables
//! with a new generation, possibly at the same position (a rebuild that repaired a
//! row): entries of the old generation never serve again. A busy ledger thus turns the
//! cache over at each projected batch; a quiet one serves repeated reads without
//! touching the database. Hits and misses are counted per view
//! (`query_view_cache_hits_total`, `query_view_cache_misses_total`) so the saving can be
//! measured.
//!
//! Rows are cached as read (personal data still sealed); opening happens per request.
//!
//! The entries live in a moka cache, least recently used out first: an entry read before
//! the checkpoint moved is never served again, so it is the one that ages out.

use std::future::Future;
use std::sync::Arc;

use moka::ops::compute::Op;
use moka::policy::EvictionPolicy;
use moka::sync::Cache;
use platform::prometheus_client::metrics::counter::Counter;
use platform::prometheus_client::metrics::family::Family;
use platform::Metrics;
use uuid::Uuid;

use read_model::Checkpoint;

type ByView = Family<[(&'static str, &'static str); 1], Counter>;

/// The hit and miss counters every view cache shares.
#[derive(Clone, Default)]
pub(crate) struct CacheCounters {
    hits: ByView,
    misses: ByView,
}

impl CacheCounters {
    pub(crate) fn register(metrics: &Metrics) -> Self {
        let counters = Self::default();
        metrics.register(
            "query_view_cache_hits",
            "View reads answered from the in-process cache, by view",
            counters.hits.clone(),
        );
        metrics.register(
            "query_view_cache_misses",
            "View reads that went to the database, by view",
            counters.misses.clone(),
        );
        counters
    }
}

struct Entry<V> {
    at: Checkpoint,
    value: Arc<V>,
}

impl<V> Clone for Entry<V> {
    fn clone(&self) -> Self {
        Self {
            at: self.at,
            value: Arc::clone(&self.value),
        }
    }
}

/// One view's cache, keyed by user id.
pub(crate) struct ViewCache<V> {
    view: &'static str,
    /// `None` when the capacity is 0: every read is a miss.
    entries: Option<Cache<Uuid, Entry<V>>>,
    counters: CacheCounters,
}

impl<V: Send + Sync + 'static> ViewCache<V> {
    /// `capacity` 0 disables caching (every read is a miss).
    pub(crate) fn new(view: &'static str, capacity: usize, counters: CacheCounters) -> Self {
        let entries = (capacity > 0).then(|| {
            Cache::builder()
                .max_capacity(u64::try_from(capacity).unwrap_or(u64::MAX))
                .eviction_policy(EvictionPolicy::lru())
                .build()
        });
        Self {
            view,
            entries,
            counters,
        }
    }

    /// The value as of `at`, from memory if an entry was read at exactly `at`; else
    /// what `load` reads, with the checkpoint it read it at (`None`: no such row, which
    /// is not cached).
    pub(crate) async fn get_or_load<F, Fut, E>(
        &self,
        key: Uuid,
        at: Checkpoint,
        load: F,
    ) -> Result<(Checkpoint, Option<Arc<V>>), E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(Checkpoint, Option<V>), E>>,
    {
        if let Some(value) = self.get(key, at) {
            self.counters
                .hits
                .get_or_create(&[("view", self.view)])
                .inc();
            return Ok((at, Some(value)));
        }
        self.counters
            .misses
            .get_or_create(&[("view", self.view)])
            .inc();
        let (read_at, value) = load().await?;
        let Some(value) = value else {
            return Ok((read_at, None));
        };
        let value = Arc::new(value);
        self.insert(key, read_at, Arc::clone(&value));
        Ok((read_at, Some(value)))
    }

    fn get(&self, key: Uuid, at: Checkpoint) -> Option<Arc<V>> {
        let entry = self.entries.as_ref()?.get(&key)?;
        (entry.at == at).then_some(entry.value)
    }

    fn insert(&self, key: Uuid, at: Checkpoint, value: Arc<V>) {
        let Some(entries) = &self.entries else {
            return;
        };
        entries.entry(key).and_compute_with(|kept| match kept {
            // A racing reader already stored a read at a later checkpoint.
            Some(kept) if kept.value().at > at => Op::Nop,
            _ => Op::Put(Entry { at, value }),
        });
    }

    /// The entries once moka's pending evictions have run.
    #[cfg(test)]
    fn settled(&self) -> Option<&Cache<Uuid, Entry<V>>> {
        let entries = self.entries.as_ref()?;
        entries.run_pending_tasks();
        Some(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(capacity: usize) -> ViewCache<u32> {
        ViewCache::new("test", capacity, CacheCounters::default())
    }

    fn at(generation: u64, position: u64) -> Checkpoint {
        Checkpoint {
            generation,
            position,
        }
    }

    async fn load(cache: &ViewCache<u32>, key: Uuid, when: Checkpoint, value: u32) -> u32 {
        let (_, got) = cache
            .get_or_load(key, when, || async {
                Ok::<_, std::convert::Infallible>((when, Some(value)))
            })
            .await
            .unwrap();
        *got.unwrap()
    }

    #[tokio::test]
    async fn an_entry_serves_its_checkpoint_only() {
        let cache = cache(10);
        let key = Uuid::now_v7();
        assert_eq!(load(&cache, key, at(0, 5), 1).await, 1);
        assert_eq!(
            load(&cache, key, at(0, 5), 2).await,
            1,
            "same checkpoint: cached"
        );
        assert_eq!(
            load(&cache, key, at(0, 6), 3).await,
            3,
            "newer checkpoint: reloaded"
        );
        assert_eq!(load(&cache, key, at(0, 6), 4).await, 3);
    }

    #[tokio::test]
    async fn a_new_generation_at_the_same_position_is_read_again() {
        let cache = cache(10);
        let key = Uuid::now_v7();
        assert_eq!(load(&cache, key, at(0, 5), 1).await, 1);
        assert_eq!(load(&cache, key, at(1, 5), 2).await, 2, "swapped tables");
        assert_eq!(load(&cache, key, at(1, 5), 3).await, 2);
    }

    #[tokio::test]
    async fn an_entry_is_kept_under_the_checkpoint_it_was_read_at() {
        let cache = cache(10);
        let key = Uuid::now_v7();
        // Asked at 5, read in a snapshot at 7.
        let (read_at, _) = cache
            .get_or_load(key, at(0, 5), || async {
                Ok::<_, std::convert::Infallible>((at(0, 7), Some(1)))
            })
            .await
            .unwrap();
        assert_eq!(read_at, at(0, 7));
        assert_eq!(load(&cache, key, at(0, 7), 2).await, 1);
        assert_eq!(load(&cache, key, at(0, 5), 3).await, 3);
    }

    #[tokio::test]
    async fn a_full_cache_drops_stale_entries_first() {
        let cache = cache(2);
        let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        load(&cache, a, at(0, 1), 1).await;
        load(&cache, b, at(0, 2), 2).await;
        load(&cache, c, at(0, 2), 3).await;
        // The stale entry is the one not read since: least recently used, it goes.
        let entries = cache.settled().unwrap();
        assert_eq!(entries.entry_count(), 2);
        assert!(!entries.contains_key(&a));
        assert_eq!(load(&cache, b, at(0, 2), 9).await, 2);
    }

    #[tokio::test]
    async fn missing_rows_and_capacity_zero_are_not_cached() {
        let cache = cache(0);
        let key = Uuid::now_v7();
        assert_eq!(load(&cache, key, at(0, 1), 1).await, 1);
        assert_eq!(load(&cache, key, at(0, 1), 2).await, 2);
        let (_, none) = cache
            .get_or_load(key, at(0, 1), || async {
                Ok::<(Checkpoint, Option<u32>), ()>((at(0, 1), None))
            })
            .await
            .unwrap();
        assert!(none.is_none());
    }
}
