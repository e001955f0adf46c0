//! Opaque list cursors: the sort key of the last item of a page, so the next page starts
//! strictly after it (keyset pagination). Rows added meanwhile at the top never shift a
//! page: no duplicates and no gaps across pages, whatever is written between requests.
//!
//! On the wire a cursor is lowercase hex of `kind || key`; the kind byte keeps one
//! list's cursor from being read as another's. Clients must treat it as opaque.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::ApiError;

const USERS: u8 = b'u';
const TRANSACTIONS: u8 = b't';

/// Users are listed newest first by `(created_at, user_id)`, both immutable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UserCursor {
    pub created_at: OffsetDateTime,
    pub user_id: Uuid,
}

/// Transactions are listed newest first by `(position, transaction_id)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TransactionCursor {
    pub position: u64,
    pub transaction_id: Uuid,
}

impl UserCursor {
    pub(crate) fn encode(&self) -> String {
        let micros = micros(self.created_at);
        encode(USERS, &micros.to_be_bytes(), self.user_id)
    }

    pub(crate) fn decode(raw: &str) -> Result<Self, ApiError> {
        let (key, id) = decode(USERS, raw)?;
        // Any eight bytes are a cursor: a time beyond what a DATETIME(6) can hold starts
        // the page at the first or the last row, as a time just inside would.
        let micros = i128::from(i64::from_be_bytes(key));
        let nanos = (micros * 1_000).clamp(
            time::macros::datetime!(1000-01-01 00:00 UTC).unix_timestamp_nanos(),
            time::macros::datetime!(9999-12-31 23:59:59.999999 UTC).unix_timestamp_nanos(),
        );
        let created_at = OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(|_| invalid())?;
        Ok(Self {
            created_at,
            user_id: id,
        })
    }
}

impl TransactionCursor {
    pub(crate) fn encode(&self) -> String {
        encode(
            TRANSACTIONS,
            &self.position.to_be_bytes(),
            self.transaction_id,
        )
    }

    pub(crate) fn decode(raw: &str) -> Result<Self, ApiError> {
        let (key, id) = decode(TRANSACTIONS, raw)?;
        Ok(Self {
            position: u64::from_be_bytes(key),
            transaction_id: id,
        })
    }
}

/// Whole microseconds since the epoch: DATETIME(6) holds no more.
fn micros(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000).unwrap_or(i64::MAX)
}

/// The cursor of the list at `path`, as a regular expression for the API document: the
/// kind byte, then 24 bytes, in hex.
pub(crate) fn pattern(path: &str) -> Option<String> {
    let kind = match path {
        "/api/v1/users" => USERS,
        "/api/v1/transactions" => TRANSACTIONS,
        _ => return None,
    };
    Some(format!("^{kind:02x}[0-9a-fA-F]{{48}}$"))
}

fn encode(kind: u8, key: &[u8; 8], id: Uuid) -> String {
    let mut bytes = Vec::with_capacity(25);
    bytes.push(kind);
    bytes.extend_from_slice(key);
    bytes.extend_from_slice(id.as_bytes());
    hex::encode(bytes)
}

fn decode(kind: u8, raw: &str) -> Result<([u8; 8], Uuid), ApiError> {
    let bytes = hex::decode(raw).map_err(|_| invalid())?;
    let (&[found], rest) = bytes.split_first_chunk::<1>().ok_or_else(invalid)?;
    if found != kind {
        return Err(invalid());
    }
    let (key, id) = rest.split_first_chunk::<8>().ok_or_else(invalid)?;
    let id = Uuid::from_slice(id).map_err(|_| invalid())?;
    Ok((*key, id))
}

fn invalid() -> ApiError {
    ApiError::invalid(
        "cursor",
        "invalid_cursor",
        "not a cursor of this list; pass next_cursor as it came",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_string_of_the_documented_pattern_is_a_cursor() {
        let users = pattern("/api/v1/users").unwrap();
        assert_eq!(users, "^75[0-9a-fA-F]{48}$");
        for tail in [
            "0".repeat(48),
            "f".repeat(48),
            "F".repeat(48),
            format!("80{}", "0".repeat(46)),
        ] {
            UserCursor::decode(&format!("75{tail}")).unwrap();
            TransactionCursor::decode(&format!("74{tail}")).unwrap();
        }
        assert!(UserCursor::decode(&format!("74{}", "0".repeat(48))).is_err());
    }

    #[test]
    fn cursors_round_trip() {
        let user = UserCursor {
            created_at: time::macros::datetime!(2025-01-02 03:04:05.123456 UTC),
            user_id: Uuid::now_v7(),
        };
        assert_eq!(UserCursor::decode(&user.encode()).unwrap(), user);
        let tx = TransactionCursor {
            position: 77,
            transaction_id: Uuid::now_v7(),
        };
        assert_eq!(TransactionCursor::decode(&tx.encode()).unwrap(), tx);
    }

    #[test]
    fn a_cursor_of_another_list_or_garbage_is_refused() {
        let tx = TransactionCursor {
            position: 1,
            transaction_id: Uuid::now_v7(),
        };
        assert!(UserCursor::decode(&tx.encode()).is_err());
        for bad in [
            "",
            "zz",
            "75",
            &tx.encode()[..20],
            &format!("{}00", tx.encode()),
        ] {
            assert!(TransactionCursor::decode(bad).is_err(), "{bad}");
        }
    }
}
