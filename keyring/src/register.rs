//! The erasure register: a file outside the database, and so outside its backups, to
//! which every erasure appends one line before the subject's key is shredded. A restore
//! of the database to a point before an erasure brings the subject's data key back; the
//! restore re-applies every erasure of the register ([`reapply`]) before the services
//! start, so the data stays unreadable (ADR 0019).
//!
//! One JSON object per line, `{"subject": "<uuid>", "position": N, "erased_at":
//! "<RFC 3339>"}` (`position`: the log position of the erasure event). Appends are
//! flushed to disk before they return. A line cut short by a crash is skipped when the
//! register is read; the erasure it was for is repeated by the next request or found in
//! the log.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sqlx::MySqlPool;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::KeyringError;

/// One erasure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Erasure {
    pub subject: Uuid,
    /// The log position of the subject's erasure event.
    pub position: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub erased_at: OffsetDateTime,
}

/// Why the register could not be written or read.
#[derive(Debug, thiserror::Error)]
#[error("{action} the erasure register {path}")]
pub struct RegisterError {
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// The register file of one process. Appends of one process are serialised; several
/// processes may append to one file on a local file system (`O_APPEND`, one write per
/// line), or each to a file of its own that the restore reads together.
#[derive(Debug)]
pub struct ErasureRegister {
    path: PathBuf,
    lock: Mutex<()>,
}

impl ErasureRegister {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            lock: Mutex::new(()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `erasure` and flushes it to disk. Blocking: call it off the async
    /// runtime's worker threads.
    pub fn record(&self, erasure: &Erasure) -> Result<(), RegisterError> {
        let io = |action| {
            let path = self.path.clone();
            move |source| RegisterError {
                action,
                path,
                source,
            }
        };
        let mut line = serde_json::to_vec(erasure)
            .map_err(|e| io("encoding a line of")(std::io::Error::other(e)))?;
        line.push(b'\n');
        let _guard = self
            .lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io("creating the directory of"))?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&self.path).map_err(io("opening"))?;
        if !ends_with_newline(&self.path).map_err(io("reading"))? {
            // A line cut short by a crash: never glue this one to it.
            line.insert(0, b'\n');
        }
        file.write_all(&line).map_err(io("appending to"))?;
        file.sync_data().map_err(io("flushing"))
    }

    /// Every erasure in the register at `path` (none if there is no file yet), in the
    /// order written; unreadable lines are counted, not fatal.
    pub fn read(path: &Path) -> Result<(Vec<Erasure>, usize), RegisterError> {
        let file = match std::fs::File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
            Err(source) => {
                return Err(RegisterError {
                    action: "opening",
                    path: path.to_owned(),
                    source,
                })
            }
        };
        let (mut erasures, mut unreadable) = (Vec::new(), 0);
        for line in std::io::BufReader::new(file).lines() {
            let line = line.map_err(|source| RegisterError {
                action: "reading",
                path: path.to_owned(),
                source,
            })?;
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str(&line) {
                Ok(erasure) => erasures.push(erasure),
                Err(_) => unreadable += 1,
            }
        }
        Ok((erasures, unreadable))
    }
}

/// Whether the file is empty or its last byte is a line break.
fn ends_with_newline(path: &Path) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    if file.metadata()?.len() == 0 {
        return Ok(true);
    }
    file.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

/// Destroys the data key of `subject` (a tombstone if it had none), needing no master
/// key: what [`crate::KeyStore::shred`] does, for a process that only shreds (a restore).
pub async fn shred_key(pool: &MySqlPool, subject: Uuid) -> Result<(), KeyringError> {
    sqlx::query(
        "INSERT INTO data_keys (subject, master_version, wrapped, created_at, shredded_at) \
         VALUES (?, NULL, NULL, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6)) \
         ON DUPLICATE KEY UPDATE master_version = NULL, wrapped = NULL, \
         shredded_at = COALESCE(shredded_at, UTC_TIMESTAMP(6))",
    )
    .bind(subject)
    .execute(pool)
    .await
    .map_err(KeyringError::database("shredding a data key"))?;
    Ok(())
}

/// Shreds the key of every subject in `subjects` that still has a live one; returns
/// how many it shredded (already shredded subjects cost a read, not a write).
pub async fn reapply(
    pool: &MySqlPool,
    subjects: impl IntoIterator<Item = Uuid>,
) -> Result<u64, KeyringError> {
    let mut shredded = 0;
    for subject in subjects {
        let live: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM data_keys WHERE subject = ? AND wrapped IS NOT NULL")
                .bind(subject)
                .fetch_optional(pool)
                .await
                .map_err(KeyringError::database("reading a data key"))?;
        if live.is_some() {
            shred_key(pool, subject).await?;
            shredded += 1;
        }
    }
    Ok(shredded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_appended_and_read_back_and_a_torn_line_is_skipped() {
        let path = std::env::temp_dir()
            .join(format!("erasure-register-{}", Uuid::new_v4().simple()))
            .join("register.ndjson");
        assert_eq!(ErasureRegister::read(&path).unwrap(), (Vec::new(), 0));
        let register = ErasureRegister::new(&path);
        let first = Erasure {
            subject: Uuid::now_v7(),
            position: 7,
            erased_at: OffsetDateTime::UNIX_EPOCH,
        };
        let second = Erasure {
            position: 9,
            subject: Uuid::now_v7(),
            ..first.clone()
        };
        register.record(&first).unwrap();
        register.record(&second).unwrap();
        // A crash in the middle of a third line, then another erasure.
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        file.write_all(b"{\"subject\":\"0190").unwrap();
        let third = Erasure {
            position: 11,
            subject: Uuid::now_v7(),
            ..first.clone()
        };
        register.record(&third).unwrap();
        assert_eq!(
            ErasureRegister::read(&path).unwrap(),
            (vec![first, second, third], 1)
        );
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }
}
