//! The hash chain of the event log and the signed anchors over it: the rules that the
//! event store writes by, and that the store's `verify`, query-api's export and the
//! offline `audit` command check by. One implementation, no database client, no HTTP,
//! no async runtime: an auditor's tool links this and `ledger`, nothing of our services.
//!
//! A tour:
//! - `canonical.rs`: [`Canonical`], the documented bytes of an event, and its SHA-256
//!   link to the previous hash (ADR 0003); [`GENESIS_HASH`] stands before position 1.
//! - `walk.rs`: [`Walk`] checks consecutive events (sequence, link, hash) and names the
//!   first [`Break`].
//! - `anchor.rs`: [`SignedAnchor`]s, `(position, hash, recorded_at)` signed as an EdDSA
//!   JWS by a [`SigningKey`], verified with the anchors' [`Jwks`] (ADR 0017).
//! - `export.rs`: [`ExportedEvent`], one line of an export as auditors receive it.

mod anchor;
mod canonical;
mod export;
mod walk;

pub use anchor::{
    AnchorError, AnchorPayload, Jwk, Jwks, SignedAnchor, SigningKey, ANCHOR_EVENT_TYPE,
    ANCHOR_JWS_TYPE,
};
pub use canonical::{micros, Canonical, Hash, GENESIS_HASH};
pub use export::ExportedEvent;
pub use walk::{Break, Walk};

/// A hash as lowercase hex in JSON.
pub mod hexhash {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::canonical::Hash;

    pub fn serialize<S: Serializer>(hash: &Hash, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(hash))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Hash, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let mut hash = [0u8; 32];
        hex::decode_to_slice(text.as_bytes(), &mut hash)
            .map_err(|_| serde::de::Error::custom("a hash is 64 hex digits"))?;
        Ok(hash)
    }
}

/// Times as anchors write them: RFC 3339 in UTC with six fractional digits
/// (`2026-12-07T10:00:00.000042Z`); any RFC 3339 time is read.
pub mod wire_time {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::format_description::well_known::Rfc3339;
    use time::macros::format_description;
    use time::{OffsetDateTime, UtcOffset};

    const FORMAT: &[time::format_description::FormatItem<'static>] =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

    /// `t` in the wire format.
    pub fn format(t: OffsetDateTime) -> String {
        t.to_offset(UtcOffset::UTC)
            .format(FORMAT)
            .unwrap_or_default()
    }

    pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        OffsetDateTime::parse(&text, &Rfc3339).map_err(serde::de::Error::custom)
    }
}
