use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::field::FieldError;

/// Why a number is not an amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be between {min} and {max} minor units", min = Amount::MIN, max = Amount::MAX)]
pub struct AmountError;

impl AmountError {
    pub fn code(&self) -> &'static str {
        "out_of_range"
    }
}

impl From<AmountError> for FieldError {
    fn from(e: AmountError) -> Self {
        FieldError::new("amount", e.code(), e.to_string())
    }
}

/// A positive amount of money in minor units (cents; yen for JPY), 1 ..= 10^15. The
/// currency travels beside it, never inside: the same amount type serves every currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Amount(i64);

impl Amount {
    pub const MIN: i64 = 1;
    pub const MAX: i64 = 1_000_000_000_000_000;

    pub fn parse(minor_units: i64) -> Result<Self, AmountError> {
        if (Self::MIN..=Self::MAX).contains(&minor_units) {
            Ok(Self(minor_units))
        } else {
            Err(AmountError)
        }
    }

    pub const fn minor_units(&self) -> i64 {
        self.0
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        Amount::parse(n).map_err(serde::de::Error::custom)
    }
}

/// Why a string is not a currency we take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CurrencyError {
    #[error("must be an ISO 4217 code of three capital letters")]
    Malformed,
    #[error("is not one of the currencies this ledger holds")]
    Unsupported,
}

impl CurrencyError {
    pub fn code(&self) -> &'static str {
        match self {
            CurrencyError::Malformed => "invalid_currency",
            CurrencyError::Unsupported => "unsupported_currency",
        }
    }
}

impl From<CurrencyError> for FieldError {
    fn from(e: CurrencyError) -> Self {
        FieldError::new("currency", e.code(), e.to_string())
    }
}

/// An ISO 4217 currency code, three capital ASCII letters.
///
/// [`Currency::parse`] is the boundary check and takes the configured [`CurrencySet`].
/// Decoding an event checks the format only: a currency later dropped from the
/// configuration must not make old events unreadable.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Currency([u8; 3]);

impl Currency {
    pub const EUR: Currency = Currency(*b"EUR");
    pub const USD: Currency = Currency(*b"USD");
    pub const GBP: Currency = Currency(*b"GBP");
    pub const CHF: Currency = Currency(*b"CHF");
    pub const JPY: Currency = Currency(*b"JPY");

    /// A code from a request, accepted only if `allowed` holds it.
    pub fn parse(s: &str, allowed: &CurrencySet) -> Result<Self, CurrencyError> {
        let currency = Self::from_code(s)?;
        if allowed.contains(currency) {
            Ok(currency)
        } else {
            Err(CurrencyError::Unsupported)
        }
    }

    /// Three capital ASCII letters; whether the ledger holds it is not asked.
    fn from_code(s: &str) -> Result<Self, CurrencyError> {
        match s.as_bytes() {
            &[a, b, c] if [a, b, c].iter().all(u8::is_ascii_uppercase) => Ok(Self([a, b, c])),
            _ => Err(CurrencyError::Malformed),
        }
    }

    pub fn as_str(&self) -> &str {
        // Only ever built from three ASCII capitals.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Currency::from_code(&s).map_err(serde::de::Error::custom)
    }
}

/// The currencies this deployment holds; a configuration value handed to the boundary.
/// The default is EUR, USD, GBP, CHF, JPY (API.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrencySet(Vec<Currency>);

impl CurrencySet {
    /// From configured codes such as `["EUR", "USD"]`: each must be three capital letters,
    /// and the set must not be empty.
    pub fn new<I, S>(codes: I) -> Result<Self, CurrencyError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut set = Vec::new();
        for code in codes {
            let currency = Currency::from_code(code.as_ref().trim())?;
            if !set.contains(&currency) {
                set.push(currency);
            }
        }
        if set.is_empty() {
            return Err(CurrencyError::Malformed);
        }
        Ok(Self(set))
    }

    pub fn contains(&self, currency: Currency) -> bool {
        self.0.contains(&currency)
    }

    /// In configured order.
    pub fn iter(&self) -> impl Iterator<Item = Currency> + '_ {
        self.0.iter().copied()
    }
}

impl Default for CurrencySet {
    fn default() -> Self {
        Self(vec![
            Currency::EUR,
            Currency::USD,
            Currency::GBP,
            Currency::CHF,
            Currency::JPY,
        ])
    }
}

/// What a user holds in one currency: never below zero, never above [`Balance::MAX`].
///
/// The ceiling is 2^53 − 1 minor units, the largest integer a JSON reader that uses
/// doubles (JavaScript, the UI) still reads exactly; a credit past it is rejected
/// (`balance_limit_exceeded`) rather than shown wrong.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Balance(i64);

impl Balance {
    pub const ZERO: Balance = Balance(0);
    pub const MAX: i64 = (1 << 53) - 1;

    pub const fn minor_units(&self) -> i64 {
        self.0
    }

    /// A balance as a store holds it; `None` outside `0..=Balance::MAX`, which no fold
    /// produces (a stored value there is corrupt).
    pub fn from_minor_units(minor: i64) -> Option<Balance> {
        (0..=Self::MAX).contains(&minor).then_some(Balance(minor))
    }

    /// `None` if the result would pass [`Balance::MAX`].
    pub fn checked_credit(self, amount: Amount) -> Option<Balance> {
        let sum = self.0.checked_add(amount.minor_units())?;
        (sum <= Self::MAX).then_some(Balance(sum))
    }

    /// `None` if the result would be below zero.
    pub fn checked_debit(self, amount: Amount) -> Option<Balance> {
        let rest = self.0.checked_sub(amount.minor_units())?;
        (rest >= 0).then_some(Balance(rest))
    }

    // `evolve` cannot fail: for a history `decide` could not have produced, these keep
    // the invariant (0 ..= MAX) rather than panic or wrap.
    pub(crate) fn saturating_credit(self, amount: Amount) -> Balance {
        Balance(self.0.saturating_add(amount.minor_units()).min(Self::MAX))
    }

    pub(crate) fn saturating_debit(self, amount: Amount) -> Balance {
        Balance(self.0.saturating_sub(amount.minor_units()).max(0))
    }
}

impl fmt::Display for Balance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A user's balances by currency. A currency never touched reads as zero.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Balances(BTreeMap<Currency, Balance>);

impl Balances {
    pub fn get(&self, currency: Currency) -> Balance {
        self.0.get(&currency).copied().unwrap_or_default()
    }

    /// Every currency the user ever held, in code order, zeros included.
    pub fn iter(&self) -> impl Iterator<Item = (Currency, Balance)> + '_ {
        self.0.iter().map(|(c, b)| (*c, *b))
    }

    pub(crate) fn set(&mut self, currency: Currency, balance: Balance) {
        self.0.insert(currency, balance);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_amount_is_between_one_and_ten_to_the_fifteen() {
        assert_eq!(Amount::parse(0), Err(AmountError));
        assert_eq!(Amount::parse(-5), Err(AmountError));
        assert_eq!(Amount::parse(1).unwrap().minor_units(), 1);
        assert!(Amount::parse(1_000_000_000_000_000).is_ok());
        assert_eq!(Amount::parse(1_000_000_000_000_001), Err(AmountError));
        assert_eq!(FieldError::from(AmountError).code, "out_of_range");
    }

    #[test]
    fn an_amount_out_of_range_does_not_deserialize() {
        assert!(serde_json::from_str::<Amount>("0").is_err());
        assert_eq!(serde_json::from_str::<Amount>("42").unwrap(), Amount(42));
    }

    #[test]
    fn a_currency_must_be_three_capital_letters() {
        let set = CurrencySet::default();
        for bad in ["eur", "EU", "EURO", "E1R", "", "ÉUR"] {
            assert_eq!(
                Currency::parse(bad, &set),
                Err(CurrencyError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_currency_outside_the_configured_set_is_unsupported() {
        let set = CurrencySet::new(["EUR", "SEK"]).unwrap();
        assert_eq!(Currency::parse("SEK", &set).unwrap().as_str(), "SEK");
        assert_eq!(
            Currency::parse("USD", &set),
            Err(CurrencyError::Unsupported)
        );
        assert_eq!(
            Currency::parse("USD", &CurrencySet::default()),
            Ok(Currency::USD)
        );
    }

    #[test]
    fn a_currency_set_needs_valid_codes_and_at_least_one() {
        assert!(CurrencySet::new(["EUR", "xx"]).is_err());
        assert!(CurrencySet::new(Vec::<String>::new()).is_err());
    }

    #[test]
    fn a_dropped_currency_still_decodes_from_history() {
        assert_eq!(
            serde_json::from_str::<Currency>("\"SEK\"")
                .unwrap()
                .as_str(),
            "SEK"
        );
        assert!(serde_json::from_str::<Currency>("\"sek\"").is_err());
    }

    #[test]
    fn a_balance_stays_between_zero_and_its_ceiling() {
        let one = Amount::parse(1).unwrap();
        assert_eq!(Balance::ZERO.checked_debit(one), None);
        assert_eq!(Balance(Balance::MAX).checked_credit(one), None);
        assert_eq!(Balance::ZERO.saturating_debit(one), Balance::ZERO);
        assert_eq!(
            Balance(Balance::MAX).saturating_credit(one),
            Balance(Balance::MAX)
        );
    }
}
