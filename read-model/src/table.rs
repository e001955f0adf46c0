//! The read tables by name. A [`TableName`] is made only here, from the fixed names
//! below and the fixed suffixes of [`TableSet`]: it is safe to splice into SQL text as an
//! identifier, which is why nothing else may make one.

use std::borrow::Cow;
use std::fmt;

/// The name of one read table (or of a rebuild's copy of it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableName(Cow<'static, str>);

impl TableName {
    const fn fixed(name: &'static str) -> Self {
        Self(Cow::Borrowed(name))
    }

    fn with_suffix(&self, suffix: &'static str) -> Self {
        if suffix.is_empty() {
            return self.clone();
        }
        Self(Cow::Owned(format!("{}{suffix}", self.0)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The bare name (letters and `_` only), to be used as `` `{name}` ``.
impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for TableName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Users as of their stream's last event.
pub const USERS: TableName = TableName::fixed("users_view");
/// Balances per user and currency.
pub const BALANCES: TableName = TableName::fixed("balances_view");
/// One row per deposit, withdrawal or transfer.
pub const TRANSACTIONS: TableName = TableName::fixed("transactions_view");
/// How far each projection has got.
pub const CHECKPOINTS: TableName = TableName::fixed("checkpoints");
/// Positions an operator parked (skipped on purpose). Never swapped by a rebuild.
pub const PARKED_EVENTS: TableName = TableName::fixed("parked_events");
/// The highest relay epoch each projection has seen. Like [`PARKED_EVENTS`], never
/// swapped by a rebuild.
pub const RELAY_EPOCHS_SEEN: TableName = TableName::fixed("relay_epochs_seen");

/// One set of the tables a rebuild swaps: the live ones, or a rebuild's, a verify's or
/// the retired copies (`users_view_rebuild`, ...), which have the live tables'
/// definitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSet {
    pub users: TableName,
    pub balances: TableName,
    pub transactions: TableName,
    pub checkpoints: TableName,
}

impl TableSet {
    /// The tables query-api reads.
    pub fn live() -> Self {
        Self::with_suffix("")
    }

    /// Where `projector rebuild` builds, before the swap.
    pub fn rebuild() -> Self {
        Self::with_suffix("_rebuild")
    }

    /// Where `projector verify` builds, to compare with the live tables.
    pub fn verify() -> Self {
        Self::with_suffix("_verify")
    }

    /// The live tables a rebuild's swap retires, dropped right after it.
    pub fn retired() -> Self {
        Self::with_suffix("_old")
    }

    fn with_suffix(suffix: &'static str) -> Self {
        Self {
            users: USERS.with_suffix(suffix),
            balances: BALANCES.with_suffix(suffix),
            transactions: TRANSACTIONS.with_suffix(suffix),
            checkpoints: CHECKPOINTS.with_suffix(suffix),
        }
    }

    /// The four names; the checkpoint last, as a rebuild swaps them.
    pub fn names(&self) -> [&TableName; 4] {
        [
            &self.users,
            &self.balances,
            &self.transactions,
            &self.checkpoints,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_a_plain_identifier() {
        for set in [
            TableSet::live(),
            TableSet::rebuild(),
            TableSet::verify(),
            TableSet::retired(),
        ] {
            for name in set
                .names()
                .into_iter()
                .chain([&PARKED_EVENTS, &RELAY_EPOCHS_SEEN])
            {
                assert!(
                    name.as_str()
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b == b'_'),
                    "{name}"
                );
            }
        }
        assert_eq!(TableSet::rebuild().users.as_str(), "users_view_rebuild");
        assert_eq!(TableSet::live().checkpoints, CHECKPOINTS);
    }
}
