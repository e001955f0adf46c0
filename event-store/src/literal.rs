//! SQL literals, for statements sent as text: the append's multi-statement round trip
//! (several statements and the COMMIT in one query) and the read model's multi-row
//! upserts and rebuild pages (thousands of rows per statement, past the protocol's 65,535
//! bind parameters). Neither can carry bind parameters, so every value from outside is
//! written as a hex literal (`X'…'`, `_utf8mb4 X'…'`) or a number: only hex digits,
//! digits and fixed punctuation ever reach the SQL text, whatever a value holds.
//!
//! The one writer of literals in the workspace; identifiers are `read_model::TableName`'s.

use std::fmt::Write;

use time::OffsetDateTime;
use uuid::Uuid;

const HEX: &[u8; 16] = b"0123456789abcdef";

fn push_hex(out: &mut String, bytes: &[u8]) {
    out.reserve(bytes.len() * 2 + 3);
    out.push_str("X'");
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out.push('\'');
}

/// A binary string.
pub fn bytes(out: &mut String, value: &[u8]) {
    push_hex(out, value);
}

/// A `BINARY(16)` id.
pub fn uuid(out: &mut String, id: Uuid) {
    push_hex(out, id.as_bytes());
}

/// An id or `NULL`.
pub fn opt_uuid(out: &mut String, id: Option<Uuid>) {
    match id {
        Some(id) => uuid(out, id),
        None => out.push_str("NULL"),
    }
}

/// A character string in utf8mb4, whatever it holds.
pub fn text(out: &mut String, value: &str) {
    out.push_str("_utf8mb4 ");
    push_hex(out, value.as_bytes());
}

/// A string or `NULL`.
pub fn opt_text(out: &mut String, value: Option<&str>) {
    match value {
        Some(v) => text(out, v),
        None => out.push_str("NULL"),
    }
}

pub fn uint(out: &mut String, value: u64) {
    let _ = write!(out, "{value}");
}

pub fn int(out: &mut String, value: i64) {
    let _ = write!(out, "{value}");
}

pub fn boolean(out: &mut String, value: bool) {
    out.push_str(if value { "TRUE" } else { "FALSE" });
}

/// A `DATETIME(6)` in UTC.
pub fn datetime(out: &mut String, value: OffsetDateTime) {
    let v = value.to_offset(time::UtcOffset::UTC);
    let _ = write!(
        out,
        "'{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:06}'",
        v.year(),
        u8::from(v.month()),
        v.day(),
        v.hour(),
        v.minute(),
        v.second(),
        v.microsecond()
    );
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn quotes_and_backslashes_become_hex() {
        let mut s = String::new();
        text(&mut s, "a'b\\c");
        assert_eq!(s, "_utf8mb4 X'6127625c63'");
    }

    #[test]
    fn datetimes_are_utc_with_microseconds() {
        let mut s = String::new();
        let t = time::macros::datetime!(2026-11-25 15:04:05.000123 +02:00);
        datetime(&mut s, t);
        assert_eq!(s, "'2026-11-25 13:04:05.000123'");
    }

    #[test]
    fn ids_are_sixteen_bytes_of_hex() {
        let mut s = String::new();
        let id = Uuid::parse_str("0190a8f6-7b2c-7c3e-9f00-0123456789ab").unwrap();
        opt_uuid(&mut s, Some(id));
        s.push(',');
        opt_uuid(&mut s, None);
        assert_eq!(s, "X'0190a8f67b2c7c3e9f000123456789ab',NULL");
    }
}
