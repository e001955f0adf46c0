//! SQL literals for the append's multi-statement round trip.
//!
//! The batch is sent as one text-protocol query (several statements and the COMMIT in
//! one round trip), which cannot carry bind parameters. Every value from outside is
//! therefore written as a hex literal (`X'…'`, `_utf8mb4 X'…'`): only hex digits, digits
//! and fixed punctuation ever reach the SQL text, so no input can change a statement.

use std::fmt::Write;

use time::OffsetDateTime;

const HEX: &[u8; 16] = b"0123456789abcdef";

fn push_hex(out: &mut String, bytes: &[u8]) {
    out.reserve(bytes.len() * 2 + 3);
    out.push_str("X'");
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 0x0f)] as char);
    }
    out.push('\'');
}

/// A binary string literal.
pub(crate) fn bytes(out: &mut String, value: &[u8]) {
    push_hex(out, value);
}

/// A character string literal in utf8mb4, whatever the text holds.
pub(crate) fn text(out: &mut String, value: &str) {
    out.push_str("_utf8mb4 ");
    push_hex(out, value.as_bytes());
}

pub(crate) fn uint(out: &mut String, value: u64) {
    let _ = write!(out, "{value}");
}

/// A `DATETIME(6)` literal in UTC.
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

#[cfg(test)]
mod tests {
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
}
