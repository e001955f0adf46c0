//! A successful command's answer: the body with the events' last `position`, and the same
//! values in `X-Position` and (where one stream's version applies) `ETag: "<version>"`.

use axum::http::header::{HeaderName, HeaderValue, ETAG};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

pub(crate) const X_POSITION: HeaderName = HeaderName::from_static("x-position");
/// Set on an answer replayed from an idempotency record.
pub(crate) const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// What a command answers once committed, before the position is known. This is also
/// what an idempotency record keeps.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    /// A JSON object without `position`.
    pub(crate) body: Value,
    /// The stream version for `ETag`, for commands on one stream.
    pub(crate) version: Option<u64>,
}

impl Answer {
    pub(crate) fn created(body: impl Serialize, version: Option<u64>) -> Self {
        Self::with_status(StatusCode::CREATED, body, version)
    }

    pub(crate) fn ok(body: impl Serialize, version: Option<u64>) -> Self {
        Self::with_status(StatusCode::OK, body, version)
    }

    fn with_status(status: StatusCode, body: impl Serialize, version: Option<u64>) -> Self {
        Self {
            status,
            // The bodies are plain structs of ids and numbers; they always serialise.
            body: serde_json::to_value(body).unwrap_or_default(),
            version,
        }
    }
}

/// An [`Answer`] with the position it was committed at.
#[derive(Debug)]
pub(crate) struct Reply {
    answer: Answer,
    position: u64,
    replayed: bool,
}

impl Reply {
    pub(crate) fn new(answer: Answer, position: u64) -> Self {
        Self {
            answer,
            position,
            replayed: false,
        }
    }

    /// The position the answer was committed at.
    pub(crate) fn position(&self) -> u64 {
        self.position
    }

    pub(crate) fn replayed(answer: Answer, position: u64) -> Self {
        Self {
            answer,
            position,
            replayed: true,
        }
    }
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let Answer {
            status,
            mut body,
            version,
        } = self.answer;
        if let Value::Object(fields) = &mut body {
            fields.insert("position".to_owned(), Value::from(self.position));
        }
        let mut response = (status, platform::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(X_POSITION, HeaderValue::from(self.position));
        if let Some(version) = version {
            if let Ok(tag) = HeaderValue::from_str(&format!("\"{version}\"")) {
                headers.insert(ETAG, tag);
            }
        }
        if self.replayed {
            headers.insert(IDEMPOTENT_REPLAYED, HeaderValue::from_static("true"));
        }
        response
    }
}
