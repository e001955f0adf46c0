//! Raw request input becomes typed values here, once: query parameters, path ids and the
//! `X-Min-Position` / `If-None-Match` headers. Every failure is 422 `validation_failed`
//! naming the parameter (an unknown parameter too: a mistyped `?userid=` must not quietly
//! widen a list to everyone's transactions).

use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use axum::http::HeaderName;
use ledger::{TransactionId, UserId};

use crate::error::ApiError;

/// The header a client sends with the position a command returned.
pub(crate) static X_MIN_POSITION: HeaderName = HeaderName::from_static("x-min-position");

/// A list's page size: `?limit=`, 1 to `max`, `default` when absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limit(u32);

impl Limit {
    pub(crate) fn get(self) -> u32 {
        self.0
    }

    pub(crate) fn as_usize(self) -> usize {
        self.0 as usize
    }
}

/// The query string, checked against the parameters a route knows.
#[derive(Debug, Default)]
pub(crate) struct Params(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Query(pairs) =
            Query::<Vec<(String, String)>>::try_from_uri(&parts.uri).map_err(|_| {
                ApiError::invalid("query", "malformed", "the query string is not URL-encoded")
            })?;
        Ok(Self(pairs))
    }
}

impl Params {
    /// Fails on a parameter outside `known` or given twice.
    pub(crate) fn allow(&self, known: &[&str]) -> Result<&Self, ApiError> {
        for (i, (name, _)) in self.0.iter().enumerate() {
            if !known.contains(&name.as_str()) {
                return Err(ApiError::invalid(
                    name,
                    "unknown_parameter",
                    format!("unknown query parameter; known: {}", known.join(", ")),
                ));
            }
            if self.0[..i].iter().any(|(earlier, _)| earlier == name) {
                return Err(ApiError::invalid(
                    name,
                    "duplicate_parameter",
                    "the parameter is given more than once",
                ));
            }
        }
        Ok(self)
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn limit(&self, default: u32, max: u32) -> Result<Limit, ApiError> {
        let Some(raw) = self.get("limit") else {
            return Ok(Limit(default));
        };
        match raw.parse::<u32>() {
            Ok(n) if (1..=max).contains(&n) => Ok(Limit(n)),
            _ => Err(ApiError::invalid(
                "limit",
                "out_of_range",
                format!("must be an integer from 1 to {max}"),
            )),
        }
    }

    pub(crate) fn user_id(&self, name: &str) -> Result<Option<UserId>, ApiError> {
        self.get(name)
            .map(|raw| {
                UserId::parse(raw).map_err(|e| ApiError::invalid(name, e.code(), e.to_string()))
            })
            .transpose()
    }

    /// A non-negative integer (a log position).
    pub(crate) fn position(&self, name: &str) -> Result<Option<u64>, ApiError> {
        self.get(name)
            .map(|raw| {
                parse_position(raw).ok_or_else(|| {
                    ApiError::invalid(name, "invalid_position", "must be a non-negative integer")
                })
            })
            .transpose()
    }
}

/// Digits only: `+1`, ` 1` and `1.0` are not positions.
fn parse_position(raw: &str) -> Option<u64> {
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse().ok()
}

/// The `{id}` of a user route.
pub(crate) struct UserPath(pub UserId);

impl<S: Send + Sync> FromRequestParts<S> for UserPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let raw = path_id(parts, state).await?;
        UserId::parse(&raw)
            .map(Self)
            .map_err(|e| ApiError::invalid("id", e.code(), e.to_string()))
    }
}

/// The `{id}` of a transaction route.
pub(crate) struct TransactionPath(pub TransactionId);

impl<S: Send + Sync> FromRequestParts<S> for TransactionPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let raw = path_id(parts, state).await?;
        TransactionId::parse(&raw)
            .map(Self)
            .map_err(|e| ApiError::invalid("id", e.code(), e.to_string()))
    }
}

async fn path_id<S: Send + Sync>(parts: &mut Parts, state: &S) -> Result<String, ApiError> {
    let Path(raw) = Path::<String>::from_request_parts(parts, state)
        .await
        .map_err(|_| ApiError::invalid("id", "invalid_uuid", "is not a UUID"))?;
    Ok(raw)
}

/// `X-Min-Position: N`, the position the answer must reflect at least.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MinPosition(pub Option<u64>);

impl<S: Send + Sync> FromRequestParts<S> for MinPosition {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(&X_MIN_POSITION) else {
            return Ok(Self(None));
        };
        value
            .to_str()
            .ok()
            .and_then(|raw| parse_position(raw.trim()))
            .map(|n| Self(Some(n)))
            .ok_or_else(|| {
                ApiError::invalid(
                    "X-Min-Position",
                    "invalid_position",
                    "must be a non-negative integer",
                )
            })
    }
}

/// `If-None-Match`: the entity tags the client already holds.
#[derive(Debug, Clone, Default)]
pub(crate) struct IfNoneMatch(Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IfNoneMatch {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let values: Vec<&str> = parts
            .headers
            .get_all(axum::http::header::IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        Ok(Self((!values.is_empty()).then(|| values.join(","))))
    }
}

impl IfNoneMatch {
    /// Whether the client holds `etag` (a quoted strong tag). If-None-Match compares
    /// weakly (RFC 9110 §13.1.2): `W/"x"` matches `"x"`.
    pub(crate) fn matches(&self, etag: &str) -> bool {
        let Some(list) = &self.0 else {
            return false;
        };
        list.split(',')
            .map(str::trim)
            .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        Params(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    fn field(e: ApiError) -> (String, String) {
        match e {
            ApiError::Invalid(errors) => (errors[0].field.clone(), errors[0].code.clone()),
            other => panic!("not a 422: {other}"),
        }
    }

    #[test]
    fn limits_are_one_to_max_with_a_default() {
        assert_eq!(params(&[]).limit(50, 200).unwrap().get(), 50);
        assert_eq!(
            params(&[("limit", "200")]).limit(50, 200).unwrap().get(),
            200
        );
        for bad in ["0", "201", "-1", "x", ""] {
            let e = params(&[("limit", bad)]).limit(50, 200).unwrap_err();
            assert_eq!(field(e), ("limit".into(), "out_of_range".into()), "{bad}");
        }
    }

    #[test]
    fn unknown_and_repeated_parameters_are_refused() {
        let e = params(&[("userid", "x")]).allow(&["user_id"]).unwrap_err();
        assert_eq!(field(e), ("userid".into(), "unknown_parameter".into()));
        let e = params(&[("limit", "1"), ("limit", "2")])
            .allow(&["limit"])
            .unwrap_err();
        assert_eq!(field(e).1, "duplicate_parameter");
    }

    #[test]
    fn positions_are_plain_digits() {
        assert_eq!(parse_position("42"), Some(42));
        for bad in ["", "+1", "-1", "1.0", " 1", "99999999999999999999"] {
            assert_eq!(parse_position(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn if_none_match_compares_weakly_and_takes_lists_and_star() {
        let inm = |v: &str| IfNoneMatch(Some(v.to_owned()));
        assert!(inm("\"3\"").matches("\"3\""));
        assert!(inm("\"1\", W/\"3\"").matches("\"3\""));
        assert!(inm("*").matches("\"3\""));
        assert!(!inm("\"4\"").matches("\"3\""));
        assert!(!IfNoneMatch::default().matches("\"3\""));
    }
}
