//! How the read tables' columns decode. Text is read as bytes and checked as UTF-8, so a
//! column with a binary collation (which the driver reports as binary) reads the same as
//! any other; `DATETIME(6)` columns hold UTC.

use sqlx::mysql::MySqlRow;
use sqlx::Row;
use time::{OffsetDateTime, PrimitiveDateTime};

pub(crate) fn text(row: &MySqlRow, column: &str) -> Result<String, sqlx::Error> {
    let bytes: Vec<u8> = row.try_get(column)?;
    String::from_utf8(bytes).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

pub(crate) fn optional_text(row: &MySqlRow, column: &str) -> Result<Option<String>, sqlx::Error> {
    let bytes: Option<Vec<u8>> = row.try_get(column)?;
    bytes
        .map(|b| String::from_utf8(b).map_err(|e| sqlx::Error::Decode(Box::new(e))))
        .transpose()
}

pub(crate) fn utc(row: &MySqlRow, column: &str) -> Result<OffsetDateTime, sqlx::Error> {
    let at: PrimitiveDateTime = row.try_get(column)?;
    Ok(at.assume_utc())
}
