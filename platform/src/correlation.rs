//! The correlation id that follows a command from HTTP to event metadata, the AMQP message
//! and the projector's log lines, and the per-request span that carries it.

use std::convert::Infallible;
use std::fmt;
use std::time::Instant;

use axum::extract::{FromRequestParts, MatchedPath, Request};
use axum::http::header::{HeaderName, HeaderValue};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;
use uuid::Uuid;

use crate::otlp;
use crate::trace_context::TraceParent;

/// Request and response header of the correlation id.
pub const CORRELATION_ID_HEADER: HeaderName = HeaderName::from_static("x-correlation-id");

/// The request span's field with the response status, recorded once the answer is known.
const STATUS_FIELD: &str = "status";

/// 1–128 visible ASCII characters, from the client or made here (a UUIDv7).
///
/// As an extractor it never fails: it takes the id the [`correlate`] middleware stored, or,
/// without the middleware, reads the header or makes a new one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CorrelationId(String);

impl CorrelationId {
    pub const MAX_LEN: usize = 128;

    /// `None` unless 1–128 characters, each visible ASCII (`!` to `~`).
    pub fn parse(value: &str) -> Option<Self> {
        let valid = (1..=Self::MAX_LEN).contains(&value.len())
            && value.bytes().all(|b| b.is_ascii_graphic());
        valid.then(|| Self(value.to_owned()))
    }

    /// A new id: a UUIDv7, so ids sort by time.
    pub fn generate() -> Self {
        Self(Uuid::now_v7().to_string())
    }

    /// The client's valid id, or a new one.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        headers
            .get(CORRELATION_ID_HEADER)
            .and_then(|value| value.to_str().ok())
            .and_then(Self::parse)
            .unwrap_or_else(Self::generate)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for CorrelationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CorrelationId {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(id) = parts.extensions.get::<CorrelationId>() {
            return Ok(id.clone());
        }
        let id = Self::from_headers(&parts.headers);
        parts.extensions.insert(id.clone());
        Ok(id)
    }
}

/// Middleware (`axum::middleware::from_fn(correlate)`): settles the correlation id, stores
/// it in the request extensions, runs the request inside a `request` span carrying it (and,
/// from a W3C `traceparent`, continuing the caller's trace: [`otlp::continue_trace`]),
/// logs one line per request, records the response `status` on the span (an exported
/// server span fails on a 5xx, not on a 4xx), and echoes the id in the response.
pub async fn correlate(mut req: Request, next: Next) -> Response {
    let id = CorrelationId::from_headers(req.headers());
    req.extensions_mut().insert(id.clone());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned());
    let span = tracing::info_span!(
        "request",
        otel.kind = "server",
        method = %req.method(),
        route = route.as_deref().unwrap_or("unmatched"),
        path = req.uri().path(),
        correlation_id = %id,
        trace_id = tracing::field::Empty,
        subject = tracing::field::Empty,
        status = tracing::field::Empty,
    );
    if let Some(caller) = TraceParent::from_headers(req.headers()) {
        otlp::continue_trace(&span, &caller);
    }
    // Probes and scrapes arrive every few seconds; their lines would drown the traffic.
    let routine = route
        .as_deref()
        .is_some_and(|r| r.starts_with("/health/") || r == "/metrics");
    let started = Instant::now();
    let mut response = next.run(req).instrument(span.clone()).await;
    let status = response.status().as_u16();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    if routine && status < 400 {
        tracing::debug!(parent: &span, status, latency_ms, "request completed");
    } else {
        tracing::info!(parent: &span, status, latency_ms, "request completed");
    }
    // After the line, which has the status already, for span export; as an i64, which
    // exports as a number where an unsigned one would be a string.
    span.record(STATUS_FIELD, i64::from(status));
    if status >= 500 {
        otlp::fail(&span, format!("HTTP {status}"));
    }
    if let Ok(value) = HeaderValue::from_str(id.as_str()) {
        response.headers_mut().insert(CORRELATION_ID_HEADER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_visible_ascii_up_to_128() {
        assert!(CorrelationId::parse("abc-123_XYZ:/.").is_some());
        assert!(CorrelationId::parse(&"a".repeat(128)).is_some());
        assert!(CorrelationId::parse(&"a".repeat(129)).is_none());
        assert!(CorrelationId::parse("").is_none());
        assert!(CorrelationId::parse("has space").is_none());
        assert!(CorrelationId::parse("tab\t").is_none());
        assert!(CorrelationId::parse("é").is_none());
    }

    #[test]
    fn generated_ids_are_valid() {
        let id = CorrelationId::generate();
        assert_eq!(CorrelationId::parse(id.as_str()), Some(id));
    }
}
