//! How the read tables' columns decode, by name (query-api's rows) or by index (the
//! projector's text-protocol reads). Text is read as bytes and checked as UTF-8, so a
//! column with a binary collation (which the driver reports as binary) reads the same as
//! any other; `DATETIME(6)` columns hold UTC.

use sqlx::mysql::MySqlRow;
use sqlx::{ColumnIndex, Row};
use time::{OffsetDateTime, PrimitiveDateTime};
use uuid::Uuid;

/// Text stored as bytes, checked as UTF-8.
pub fn utf8(bytes: Vec<u8>) -> Result<String, sqlx::Error> {
    String::from_utf8(bytes).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

pub fn text<I: ColumnIndex<MySqlRow>>(row: &MySqlRow, column: I) -> Result<String, sqlx::Error> {
    utf8(row.try_get(column)?)
}

pub fn optional_text<I: ColumnIndex<MySqlRow>>(
    row: &MySqlRow,
    column: I,
) -> Result<Option<String>, sqlx::Error> {
    let bytes: Option<Vec<u8>> = row.try_get(column)?;
    bytes.map(utf8).transpose()
}

pub fn utc<I: ColumnIndex<MySqlRow>>(
    row: &MySqlRow,
    column: I,
) -> Result<OffsetDateTime, sqlx::Error> {
    let at: PrimitiveDateTime = row.try_get(column)?;
    Ok(at.assume_utc())
}

/// A `BINARY(16)` id; the text protocol returns it as bytes.
pub fn uuid<I: ColumnIndex<MySqlRow>>(row: &MySqlRow, column: I) -> Result<Uuid, sqlx::Error> {
    let bytes: Vec<u8> = row.try_get(column)?;
    Uuid::from_slice(&bytes).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// A row that is not what the table promises.
pub fn corrupt(what: &'static str) -> sqlx::Error {
    sqlx::Error::Decode(what.into())
}
