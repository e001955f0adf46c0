//! SQL literals for the read-table writes.
//!
//! A batch's upserts go to the server as text (several statements in one round trip),
//! which carries no bind parameters, and a rebuild writes thousands of rows per
//! statement, where binding would exceed the protocol's 65,535 parameters. So every value
//! from an event is written as a hex literal (`X'…'`, `_utf8mb4 X'…'`) or a number: only
//! hex digits, digits and fixed punctuation reach the SQL text, whatever an event holds.

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

/// A `BINARY(16)` id.
pub(crate) fn uuid(out: &mut String, id: Uuid) {
    push_hex(out, id.as_bytes());
}

/// An id or `NULL`.
pub(crate) fn opt_uuid(out: &mut String, id: Option<Uuid>) {
    match id {
        Some(id) => uuid(out, id),
        None => out.push_str("NULL"),
    }
}

/// A character string in utf8mb4, whatever it holds.
pub(crate) fn text(out: &mut String, value: &str) {
    out.push_str("_utf8mb4 ");
    push_hex(out, value.as_bytes());
}

/// A string or `NULL`.
pub(crate) fn opt_text(out: &mut String, value: Option<&str>) {
    match value {
        Some(v) => text(out, v),
        None => out.push_str("NULL"),
    }
}

pub(crate) fn uint(out: &mut String, value: u64) {
    let _ = write!(out, "{value}");
}

pub(crate) fn int(out: &mut String, value: i64) {
    let _ = write!(out, "{value}");
}

pub(crate) fn boolean(out: &mut String, value: bool) {
    out.push_str(if value { "TRUE" } else { "FALSE" });
}

/// A `DATETIME(6)` in UTC.
pub(crate) fn datetime(out: &mut String, value: OffsetDateTime) {
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

/// A table name we made ourselves (`users_view_rebuild`), quoted. Names come from
/// [`crate::tables`], never from input; the check keeps it that way.
pub(crate) fn ident(out: &mut String, name: &str) {
    debug_assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    out.push('`');
    out.push_str(name);
    out.push('`');
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
        datetime(
            &mut s,
            time::macros::datetime!(2026-11-25 15:04:05.000123 +02:00),
        );
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
