//! `webhook_subscriptions`: the one place its SQL lives. command-api creates, pauses,
//! resumes and deletes rows; the deliverer records its progress.

use keyring::WrappedDataKey;
use sqlx::mysql::MySqlRow;
use sqlx::{MySqlPool, Row};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::name::SubscriptionName;

/// Whether a subscription is delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Active,
    Paused,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Paused => "paused",
        }
    }
}

/// A subscription as stored (its secret aside).
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    pub name: SubscriptionName,
    pub url: String,
    pub types: Vec<String>,
    pub status: Status,
    /// Every event up to here was delivered (a 2xx) or did not match.
    pub delivered_position: u64,
    /// Failed attempts at the next event, in a row.
    pub failures: u32,
    pub last_error: Option<String>,
    pub last_delivered_at: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
}

/// A subscription to make.
pub struct NewSubscription {
    pub name: SubscriptionName,
    pub url: String,
    pub types: Vec<String>,
    /// Delivery starts after this position.
    pub after: u64,
    /// The signing secret, wrapped by the keyring's active master key.
    pub secret: WrappedDataKey,
}

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("a subscription with this name exists")]
    AlreadyExists,
    #[error("database error on webhook subscriptions")]
    Database(#[from] sqlx::Error),
    #[error("a stored subscription is corrupt: {0}")]
    Corrupt(&'static str),
}

const COLUMNS: &str = "name, url, types, status, delivered_position, failures, last_error, \
    last_delivered_at, created_at";

/// The table, over a pool of the account that may write it.
#[derive(Clone)]
pub struct SubscriptionTable {
    pool: MySqlPool,
}

impl SubscriptionTable {
    pub fn new(pool: MySqlPool) -> Self {
        Self { pool }
    }

    pub async fn create(&self, new: &NewSubscription) -> Result<(), TableError> {
        let types = serde_json::to_string(&new.types).map_err(|_| TableError::Corrupt("types"))?;
        let done = sqlx::query(
            "INSERT INTO webhook_subscriptions (name, url, types, secret_subject, secret_version, \
             secret_wrapped, status, delivered_position, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, 'active', ?, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))",
        )
        .bind(new.name.as_str())
        .bind(&new.url)
        .bind(types)
        .bind(new.secret.subject().as_bytes().as_slice())
        .bind(new.secret.master_version())
        .bind(new.secret.bytes())
        .bind(new.after)
        .execute(&self.pool)
        .await;
        match done {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                Err(TableError::AlreadyExists)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Every subscription, by name.
    pub async fn list(&self) -> Result<Vec<Subscription>, TableError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM webhook_subscriptions ORDER BY name"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode).collect()
    }

    pub async fn get(&self, name: &SubscriptionName) -> Result<Option<Subscription>, TableError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM webhook_subscriptions WHERE name = ?"
        ))
        .bind(name.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(decode).transpose()
    }

    /// Pauses or resumes; `false` if there is no such subscription.
    pub async fn set_status(
        &self,
        name: &SubscriptionName,
        status: Status,
    ) -> Result<bool, TableError> {
        let done = sqlx::query(
            "UPDATE webhook_subscriptions SET status = ?, updated_at = UTC_TIMESTAMP(6) \
             WHERE name = ?",
        )
        .bind(status.as_str())
        .bind(name.as_str())
        .execute(&self.pool)
        .await?;
        // A row already in that status matches but changes nothing: ask again.
        if done.rows_affected() > 0 {
            return Ok(true);
        }
        Ok(self.get(name).await?.is_some())
    }

    pub async fn delete(&self, name: &SubscriptionName) -> Result<bool, TableError> {
        let done = sqlx::query("DELETE FROM webhook_subscriptions WHERE name = ?")
            .bind(name.as_str())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The subscription's wrapped signing secret.
    pub async fn secret(
        &self,
        name: &SubscriptionName,
    ) -> Result<Option<WrappedDataKey>, TableError> {
        let row: Option<(Vec<u8>, u32, Vec<u8>)> = sqlx::query_as(
            "SELECT secret_subject, secret_version, secret_wrapped FROM webhook_subscriptions \
             WHERE name = ?",
        )
        .bind(name.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|(subject, version, bytes)| {
            let subject =
                Uuid::from_slice(&subject).map_err(|_| TableError::Corrupt("secret subject"))?;
            Ok(WrappedDataKey::new(subject, version, bytes))
        })
        .transpose()
    }

    /// Event `position` was delivered (a 2xx): the checkpoint moves past it and the
    /// failure count clears. Never moves the checkpoint back.
    pub async fn delivered(
        &self,
        name: &SubscriptionName,
        position: u64,
        at: OffsetDateTime,
    ) -> Result<(), TableError> {
        sqlx::query(
            "UPDATE webhook_subscriptions SET \
             delivered_position = GREATEST(delivered_position, ?), failures = 0, \
             last_error = NULL, last_delivered_at = ? WHERE name = ?",
        )
        .bind(position)
        .bind(primitive(at))
        .bind(name.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Events up to `position` did not match the subscription's types.
    pub async fn skipped(&self, name: &SubscriptionName, position: u64) -> Result<(), TableError> {
        sqlx::query(
            "UPDATE webhook_subscriptions SET \
             delivered_position = GREATEST(delivered_position, ?) WHERE name = ?",
        )
        .bind(position)
        .bind(name.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// An attempt at the next event failed for `error`.
    pub async fn failed(&self, name: &SubscriptionName, error: &str) -> Result<(), TableError> {
        let error: String = error.chars().take(500).collect();
        sqlx::query(
            "UPDATE webhook_subscriptions SET failures = failures + 1, last_error = ? \
             WHERE name = ?",
        )
        .bind(error)
        .bind(name.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

fn primitive(at: OffsetDateTime) -> time::PrimitiveDateTime {
    let utc = at.to_offset(time::UtcOffset::UTC);
    time::PrimitiveDateTime::new(utc.date(), utc.time())
}

fn text(row: &MySqlRow, i: usize) -> Result<String, TableError> {
    let bytes: Vec<u8> = row.try_get(i)?;
    String::from_utf8(bytes).map_err(|_| TableError::Corrupt("text column"))
}

fn decode(row: &MySqlRow) -> Result<Subscription, TableError> {
    let name = SubscriptionName::parse(&text(row, 0)?).map_err(|_| TableError::Corrupt("name"))?;
    let types: Vec<String> =
        serde_json::from_str(&text(row, 2)?).map_err(|_| TableError::Corrupt("types"))?;
    let status = match text(row, 3)?.as_str() {
        "active" => Status::Active,
        "paused" => Status::Paused,
        _ => return Err(TableError::Corrupt("status")),
    };
    let last_error: Option<Vec<u8>> = row.try_get(6)?;
    let last_delivered_at: Option<time::PrimitiveDateTime> = row.try_get(7)?;
    let created_at: time::PrimitiveDateTime = row.try_get(8)?;
    Ok(Subscription {
        name,
        url: text(row, 1)?,
        types,
        status,
        delivered_position: row.try_get(4)?,
        failures: row.try_get(5)?,
        last_error: last_error.map(|b| String::from_utf8_lossy(&b).into_owned()),
        last_delivered_at: last_delivered_at.map(|t| t.assume_utc()),
        created_at: created_at.assume_utc(),
    })
}
