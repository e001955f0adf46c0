//! RFC 9457 problem details: the one error body every API answers with.
//!
//! A service keeps its own `ApiError` enum and maps each variant to a [`Problem`] in one
//! place; the generic constructors here cover the codes of API.md that are not a service's
//! business (malformed bodies, auth, limits, dependencies).

use axum::http::header::{HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// Media type of every 4xx/5xx body.
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// Base of the `type` URI; the stable `code` is appended. A constant rather than a setting:
/// clients key on `code`, and the URI only has to be stable and unique.
pub const PROBLEM_TYPE_BASE: &str = "https://example.com/problems/";

/// An RFC 9457 problem+json body with this project's `code` (and, for 422, `errors`).
///
/// Boxed inside, so a `Result<T, Problem>` stays one pointer wide on the error side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Problem {
    body: Box<ProblemBody>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ProblemBody {
    /// `PROBLEM_TYPE_BASE` + `code`.
    #[serde(rename = "type")]
    type_uri: String,
    title: String,
    status: u16,
    detail: String,
    code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    errors: Option<Vec<FieldProblem>>,
    /// Response headers that belong to the problem (`WWW-Authenticate`, `Retry-After`).
    #[serde(skip)]
    headers: HeaderMap,
}

/// One failed field of a 422 `validation_failed` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldProblem {
    /// JSON path of the field as the client sent it, e.g. `amount` or `items[2].currency`.
    pub field: String,
    /// Stable snake_case code, e.g. `out_of_range`, `invalid_email`.
    pub code: String,
    pub message: String,
}

impl FieldProblem {
    pub fn new(
        field: impl Into<String>,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            code: code.into(),
            message: message.into(),
        }
    }
}

impl Problem {
    /// A problem with an arbitrary status and code; services use this for their own codes
    /// (`insufficient_funds`, `version_mismatch`, `projection_lagging`, ...).
    pub fn new(
        status: StatusCode,
        code: impl Into<String>,
        title: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        let code = code.into();
        Self {
            body: Box::new(ProblemBody {
                type_uri: format!("{PROBLEM_TYPE_BASE}{code}"),
                title: title.into(),
                status: status.as_u16(),
                detail: detail.into(),
                code,
                errors: None,
                headers: HeaderMap::new(),
            }),
        }
    }

    /// The `type` URI.
    pub fn type_uri(&self) -> &str {
        &self.body.type_uri
    }

    pub fn title(&self) -> &str {
        &self.body.title
    }

    /// The HTTP status; an out-of-range `status` (from a deserialised body) reads as 500.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.body.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    pub fn detail(&self) -> &str {
        &self.body.detail
    }

    /// The stable snake_case machine code; the part of the body clients may rely on.
    pub fn code(&self) -> &str {
        &self.body.code
    }

    /// The failed fields of a 422.
    pub fn errors(&self) -> Option<&[FieldProblem]> {
        self.body.errors.as_deref()
    }

    /// Attaches per-field failures (normally only with 422).
    pub fn with_errors(mut self, errors: Vec<FieldProblem>) -> Self {
        self.body.errors = Some(errors);
        self
    }

    /// Replaces the human-readable explanation.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.body.detail = detail.into();
        self
    }

    /// 400 `malformed_body`: not JSON, or JSON of the wrong shape or types.
    pub fn malformed_body(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "malformed_body",
            "Malformed request body",
            detail,
        )
    }

    /// 401 `unauthenticated` with `WWW-Authenticate: Bearer`. When the client sent a token
    /// that failed validation, the challenge says `error="invalid_token"` (RFC 6750 §3.1);
    /// a request without credentials gets the bare challenge.
    pub fn unauthenticated(token_given: bool) -> Self {
        let (challenge, detail) = if token_given {
            (
                r#"Bearer error="invalid_token""#,
                "The bearer token is invalid, expired or not meant for this service.",
            )
        } else {
            ("Bearer", "A bearer token is required.")
        };
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "Authentication required",
            detail,
        )
        .with_header(WWW_AUTHENTICATE, HeaderValue::from_static(challenge))
    }

    /// 403 `forbidden`: authenticated, but role or ownership forbids it.
    pub fn forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Forbidden",
            "Your role or ownership does not allow this request.",
        )
    }

    /// 404 `not_found`; also the router fallback.
    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "Not found",
            "No such resource.",
        )
    }

    /// 405 `method_not_allowed`, for `Router::method_not_allowed_fallback`.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "Method not allowed",
            "This resource does not support the request method.",
        )
    }

    /// 408 `request_timeout`: the request was not received and answered within the
    /// listener's limit; nothing was done for it.
    pub fn request_timeout(limit_secs: u64) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "Request timeout",
            format!("The request took longer than {limit_secs} s; nothing was done for it."),
        )
    }

    /// 413 `body_too_large`.
    pub fn body_too_large(limit_bytes: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "Request body too large",
            format!("The request body exceeds {limit_bytes} bytes."),
        )
    }

    /// 415 `unsupported_media_type`.
    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Unsupported media type",
            "The request body must be sent as Content-Type: application/json.",
        )
    }

    /// 422 `validation_failed` with one entry per failed field.
    pub fn validation_failed(errors: Vec<FieldProblem>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "Validation failed",
            "One or more fields are invalid.",
        )
        .with_errors(errors)
    }

    /// 429 `rate_limited`, telling the client when to come back.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "Too many requests",
            "The rate limit was exceeded; retry later.",
        )
        .with_retry_after(retry_after_secs)
    }

    /// 503 `unavailable`: a dependency is down. `detail` may name the dependency, never
    /// the underlying error.
    pub fn unavailable(detail: impl Into<String>, retry_after_secs: u64) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
            detail,
        )
        .with_retry_after(retry_after_secs)
    }

    /// 500 `internal` with a generic body. The caller logs the cause once; it never goes
    /// to the client.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Internal server error",
            "The server failed to handle the request.",
        )
    }

    /// Adds a `Retry-After` header (delay in seconds).
    pub fn with_retry_after(self, secs: u64) -> Self {
        self.with_header(RETRY_AFTER, HeaderValue::from(secs))
    }

    /// Adds a response header, replacing one of the same name.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.body.headers.insert(name, value);
        self
    }

    /// Response headers this problem carries besides `Content-Type`.
    pub fn headers(&self) -> &HeaderMap {
        &self.body.headers
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.body.status, self.body.code, self.body.detail
        )
    }
}

impl std::error::Error for Problem {}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = match serde_json::to_vec(&self) {
            Ok(body) => body,
            // Unreachable for this struct (string keys, no maps); still answer in the
            // promised media type.
            Err(_) => br#"{"type":"https://example.com/problems/internal","title":"Internal server error","status":500,"detail":"The server failed to handle the request.","code":"internal"}"#.to_vec(),
        };
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_CONTENT_TYPE));
        headers.extend(self.body.headers);
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_uri_ends_with_code() {
        let p = Problem::forbidden();
        assert_eq!(p.type_uri(), "https://example.com/problems/forbidden");
        assert_eq!(p.status(), StatusCode::FORBIDDEN);
    }

    #[test]
    fn validation_failed_serialises_errors_and_others_omit_them() {
        let p = Problem::validation_failed(vec![FieldProblem::new(
            "amount",
            "out_of_range",
            "must be 1..=10^15",
        )]);
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["errors"][0]["field"], "amount");
        assert_eq!(v["code"], "validation_failed");
        let v = serde_json::to_value(Problem::not_found()).unwrap();
        assert!(v.get("errors").is_none());
        assert!(v.get("headers").is_none());
    }

    #[test]
    fn round_trips_through_json() {
        let p = Problem::validation_failed(vec![FieldProblem::new("email", "invalid", "bad")]);
        let back: Problem = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
        assert_eq!(back.errors().unwrap()[0].field, "email");
    }

    #[test]
    fn stays_small() {
        assert_eq!(std::mem::size_of::<Problem>(), std::mem::size_of::<usize>());
    }

    #[test]
    fn response_has_media_type_and_headers() {
        let r = Problem::unavailable("mariadb is not ready", 5).into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[CONTENT_TYPE], PROBLEM_CONTENT_TYPE);
        assert_eq!(r.headers()[RETRY_AFTER], "5");

        let r = Problem::unauthenticated(true).into_response();
        assert_eq!(
            r.headers()[WWW_AUTHENTICATE],
            r#"Bearer error="invalid_token""#
        );
        let r = Problem::unauthenticated(false).into_response();
        assert_eq!(r.headers()[WWW_AUTHENTICATE], "Bearer");
    }
}
