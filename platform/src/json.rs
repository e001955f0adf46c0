//! `platform::Json<T>`: the only way a request body enters a handler, and a JSON response.
//!
//! Rejections are problem+json:
//! - no or another `Content-Type` than `application/json` (or `application/*+json`) → 415
//!   `unsupported_media_type`;
//! - more than [`MAX_BODY_BYTES`] → 413 `body_too_large` (checked on `Content-Length` first,
//!   then while reading, so a lying or chunked client is cut off at the limit too);
//! - anything serde refuses → 400 `malformed_body`: broken JSON, wrong types, missing
//!   fields and unknown fields of a `#[serde(deny_unknown_fields)]` DTO alike. The body does
//!   not have the shape of the DTO, so it is "malformed"; 422 `validation_failed` is kept for
//!   values that parse but break a rule (an amount out of range, a bad e-mail), which the
//!   handler finds when it turns the DTO into domain types.
//!
//! The limit is this extractor's own and ignores axum's `DefaultBodyLimit`.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::problem::Problem;

/// Largest request body accepted, per API.md (64 KiB).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// JSON request extractor and JSON response; see the module doc for its rejections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[must_use]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(Problem::unsupported_media_type());
        }
        if declared_length(req.headers()).is_some_and(|len| len > MAX_BODY_BYTES as u64) {
            return Err(Problem::body_too_large(MAX_BODY_BYTES));
        }
        let bytes = read_limited(req).await?;
        parse(&bytes).map(Json)
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        match serde_json::to_vec(&self.0) {
            Ok(body) => (
                [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
                body,
            )
                .into_response(),
            Err(error) => {
                // Only a Serialize impl that fails (or a map with non-string keys) gets here.
                tracing::error!(%error, "serialising a JSON response failed");
                Problem::internal().into_response()
            }
        }
    }
}

/// Deserialises a body, mapping every serde failure to 400 `malformed_body`. The detail
/// names the JSON path, e.g. `amount: invalid type: string "1", expected i64`.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if path == "." {
            Problem::malformed_body(inner.to_string())
        } else {
            Problem::malformed_body(format!("{path}: {inner}"))
        }
    })?;
    // Trailing garbage after the value ("{} x") is malformed too.
    de.end()
        .map_err(|error| Problem::malformed_body(error.to_string()))?;
    Ok(value)
}

fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    // Parameters such as `charset=utf-8` are allowed; JSON is UTF-8 either way.
    let essence = value.split(';').next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    let subtype = subtype.to_ascii_lowercase();
    kind.eq_ignore_ascii_case("application")
        && (subtype == "json" || subtype.len() > 5 && subtype.ends_with("+json"))
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

async fn read_limited(req: Request) -> Result<Bytes, Problem> {
    match Limited::new(req.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
    {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            Err(Problem::body_too_large(MAX_BODY_BYTES))
        }
        Err(error) => {
            // The client went away or sent a broken chunked body.
            tracing::debug!(%error, "reading the request body failed");
            Err(Problem::malformed_body(
                "The request body could not be read.",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    fn headers(content_type: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_str(content_type).unwrap());
        h
    }

    #[test]
    fn json_media_types_are_recognised() {
        assert!(is_json(&headers("application/json")));
        assert!(is_json(&headers("Application/JSON; charset=utf-8")));
        assert!(is_json(&headers("application/merge-patch+json")));
        assert!(!is_json(&headers("text/plain")));
        assert!(!is_json(&headers("application/x-www-form-urlencoded")));
        assert!(!is_json(&headers("application/jsonx")));
        assert!(!is_json(&headers("+json")));
        assert!(!is_json(&HeaderMap::new()));
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Dto {
        amount: i64,
    }

    #[test]
    fn every_serde_failure_is_malformed_body() {
        for body in [
            &br#"{"amount": "#[..],
            br#"{"amount": "1"}"#,
            br#"{}"#,
            br#"{"amount": 1, "extra": true}"#,
            br#"{"amount": 1} x"#,
            b"",
        ] {
            let problem = parse::<Dto>(body).unwrap_err();
            assert_eq!(problem.code(), "malformed_body", "{body:?}");
            assert_eq!(problem.status(), axum::http::StatusCode::BAD_REQUEST);
        }
        assert_eq!(parse::<Dto>(br#"{"amount": 7}"#).unwrap().amount, 7);
    }
}
