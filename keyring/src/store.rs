use std::sync::Arc;
use std::time::Duration;

use sqlx::MySqlPool;
use uuid::Uuid;

use crate::cache::KeyCache;
use crate::data_key::{DataKey, WrappedDataKey};
use crate::error::KeyringError;
use crate::master::MasterKeys;
use crate::sealed::SealedText;

/// How many unwrapped data keys to keep in memory, and for how long.
#[derive(Debug, Clone)]
pub struct KeyStoreOptions {
    /// 0 disables the cache.
    pub cache_capacity: usize,
    /// Also how long another process may keep opening a subject's data after it was
    /// shredded here: the shredding process drops its own entry at once.
    pub cache_ttl: Duration,
    /// The longest one query of a command's path (fetch, create, shred) waits for the
    /// database: a paused server or a half-open link costs one limit, never a hang.
    pub query_timeout: Duration,
}

impl Default for KeyStoreOptions {
    fn default() -> Self {
        Self {
            cache_capacity: 10_000,
            cache_ttl: Duration::from_secs(60),
            query_timeout: Duration::from_secs(5),
        }
    }
}

/// The `data_keys` table plus the master keys: hands out each subject's data key,
/// seals and opens their fields, shreds them, and rewraps after a master-key rotation.
/// Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct KeyStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: MySqlPool,
    master: MasterKeys,
    cache: KeyCache,
    query_timeout: Duration,
}

/// `query`, failing as a timed-out I/O error once `limit` has passed.
async fn bounded<T>(
    limit: Duration,
    query: impl std::future::Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, sqlx::Error> {
    match tokio::time::timeout(limit, query).await {
        Ok(result) => result,
        Err(_) => Err(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no reply from the key database within {limit:?}"),
        ))),
    }
}

/// A `data_keys` row: `None` bytes mean shredded.
type Row = (Option<u32>, Option<Vec<u8>>);

impl KeyStore {
    pub fn new(pool: MySqlPool, master: MasterKeys) -> Self {
        Self::with_options(pool, master, KeyStoreOptions::default())
    }

    pub fn with_options(pool: MySqlPool, master: MasterKeys, options: KeyStoreOptions) -> Self {
        Self {
            inner: Arc::new(Inner {
                pool,
                master,
                cache: KeyCache::new(options.cache_capacity, options.cache_ttl),
                query_timeout: options.query_timeout,
            }),
        }
    }

    pub fn master_keys(&self) -> &MasterKeys {
        &self.inner.master
    }

    /// Seals `plaintext` as `field` of `subject`, creating the subject's data key on
    /// first use.
    pub async fn seal(
        &self,
        subject: Uuid,
        plaintext: &str,
        field: &str,
    ) -> Result<SealedText, KeyringError> {
        self.data_key_for(subject).await?.seal(plaintext, field)
    }

    /// Opens `field` of `subject`; [`KeyringError::Shredded`] once the subject was erased.
    pub async fn open(
        &self,
        subject: Uuid,
        sealed: &SealedText,
        field: &str,
    ) -> Result<String, KeyringError> {
        self.get(subject).await?.open(sealed, field)
    }

    /// The subject's data key, created and stored (wrapped under the active master
    /// version) if it has none. Concurrent first calls agree on one key. A shredded
    /// subject never gets a new key.
    pub async fn data_key_for(&self, subject: Uuid) -> Result<Arc<DataKey>, KeyringError> {
        if let Some(key) = self.inner.cache.get(subject) {
            return Ok(key);
        }
        let epoch = self.inner.cache.epoch();
        let row = match self.fetch(subject).await? {
            Some(row) => row,
            None => {
                let wrapped = self.inner.master.wrap(&DataKey::generate(subject)?)?;
                // The first insert wins; everyone then reads back the winner's key.
                let insert = sqlx::query(
                    "INSERT INTO data_keys (subject, master_version, wrapped, created_at) \
                     VALUES (?, ?, ?, UTC_TIMESTAMP(6)) \
                     ON DUPLICATE KEY UPDATE subject = subject",
                )
                .bind(subject)
                .bind(wrapped.master_version())
                .bind(wrapped.bytes())
                .execute(&self.inner.pool);
                bounded(self.inner.query_timeout, insert)
                    .await
                    .map_err(KeyringError::database("creating a data key"))?;
                self.fetch(subject)
                    .await?
                    .ok_or(KeyringError::NoDataKey { subject })?
            }
        };
        self.unwrap_row(epoch, subject, row)
    }

    /// The subject's existing data key: [`KeyringError::NoDataKey`] if it never had one,
    /// [`KeyringError::Shredded`] if it was erased.
    pub async fn get(&self, subject: Uuid) -> Result<Arc<DataKey>, KeyringError> {
        if let Some(key) = self.inner.cache.get(subject) {
            return Ok(key);
        }
        let epoch = self.inner.cache.epoch();
        let row = self
            .fetch(subject)
            .await?
            .ok_or(KeyringError::NoDataKey { subject })?;
        self.unwrap_row(epoch, subject, row)
    }

    /// Destroys the subject's data key: the wrapped bytes become NULL and `shredded_at`
    /// is set, so every sealed field of the subject stays unreadable for good. Idempotent;
    /// a subject without a key gets a tombstone so it can never be given one.
    ///
    /// Old row images may linger in InnoDB undo logs, binary logs and backups until they
    /// are purged or expire; their retention bounds how complete the shredding is.
    pub async fn shred(&self, subject: Uuid) -> Result<(), KeyringError> {
        let shred = sqlx::query(
            "INSERT INTO data_keys (subject, master_version, wrapped, created_at, shredded_at) \
             VALUES (?, NULL, NULL, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6)) \
             ON DUPLICATE KEY UPDATE master_version = NULL, wrapped = NULL, \
             shredded_at = COALESCE(shredded_at, UTC_TIMESTAMP(6))",
        )
        .bind(subject)
        .execute(&self.inner.pool);
        bounded(self.inner.query_timeout, shred)
            .await
            .map_err(KeyringError::database("shredding a data key"))?;
        self.inner.cache.forget_shredded(subject);
        Ok(())
    }

    /// Those of `subjects` not shredded: with a live key, or with no key row at all.
    pub async fn unshredded(&self, subjects: &[Uuid]) -> Result<Vec<Uuid>, KeyringError> {
        if subjects.is_empty() {
            return Ok(Vec::new());
        }
        let marks = vec!["?"; subjects.len()].join(", ");
        let sql = format!(
            "SELECT subject FROM data_keys WHERE shredded_at IS NOT NULL AND subject IN ({marks})"
        );
        let mut query = sqlx::query_scalar::<_, Uuid>(&sql);
        for subject in subjects {
            query = query.bind(subject);
        }
        let shredded: std::collections::HashSet<Uuid> =
            bounded(self.inner.query_timeout, query.fetch_all(&self.inner.pool))
                .await
                .map_err(KeyringError::database(
                    "reading which data keys are shredded",
                ))?
                .into_iter()
                .collect();
        let mut out: Vec<Uuid> = subjects
            .iter()
            .copied()
            .filter(|s| !shredded.contains(s))
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Rewraps every live data key not yet under the active master version, `batch`
    /// rows per transaction; returns how many it moved. Safe to run while the store is
    /// in use and to re-run: a key shredded meanwhile stays shredded.
    pub async fn rewrap_all(&self, batch: u32) -> Result<u64, KeyringError> {
        let master = &self.inner.master;
        let active = master.active_version();
        let batch = batch.max(1);
        let mut after: Vec<u8> = Vec::new(); // sorts before every 16-byte subject
        let mut moved = 0;
        loop {
            let rows: Vec<(Uuid, u32, Vec<u8>)> = sqlx::query_as(
                "SELECT subject, master_version, wrapped FROM data_keys \
                 WHERE subject > ? AND wrapped IS NOT NULL AND master_version <> ? \
                 ORDER BY subject LIMIT ?",
            )
            .bind(&after)
            .bind(active)
            .bind(batch)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(KeyringError::database("listing data keys to rewrap"))?;
            let Some(last) = rows.last() else {
                return Ok(moved);
            };
            after = last.0.as_bytes().to_vec();

            let mut tx = self
                .inner
                .pool
                .begin()
                .await
                .map_err(KeyringError::database("rewrapping data keys"))?;
            for (subject, version, bytes) in rows {
                let old = WrappedDataKey::new(subject, version, bytes);
                let new = master.rewrap(&old)?;
                // Compare-and-set: skips a key shredded or rewrapped since the read.
                let done = sqlx::query(
                    "UPDATE data_keys SET master_version = ?, wrapped = ? \
                     WHERE subject = ? AND master_version = ? AND wrapped = ?",
                )
                .bind(new.master_version())
                .bind(new.bytes())
                .bind(subject)
                .bind(old.master_version())
                .bind(old.bytes())
                .execute(&mut *tx)
                .await
                .map_err(KeyringError::database("rewrapping a data key"))?;
                moved += done.rows_affected();
            }
            tx.commit()
                .await
                .map_err(KeyringError::database("committing rewrapped data keys"))?;
        }
    }

    async fn fetch(&self, subject: Uuid) -> Result<Option<Row>, KeyringError> {
        let read =
            sqlx::query_as("SELECT master_version, wrapped FROM data_keys WHERE subject = ?")
                .bind(subject)
                .fetch_optional(&self.inner.pool);
        bounded(self.inner.query_timeout, read)
            .await
            .map_err(KeyringError::database("reading a data key"))
    }

    fn unwrap_row(
        &self,
        epoch: u64,
        subject: Uuid,
        row: Row,
    ) -> Result<Arc<DataKey>, KeyringError> {
        let (Some(version), Some(bytes)) = row else {
            return Err(KeyringError::Shredded { subject });
        };
        let key = Arc::new(
            self.inner
                .master
                .unwrap(&WrappedDataKey::new(subject, version, bytes))?,
        );
        self.inner.cache.insert(epoch, Arc::clone(&key));
        Ok(key)
    }
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyStore")
            .field("master", &self.inner.master)
            .finish_non_exhaustive()
    }
}
