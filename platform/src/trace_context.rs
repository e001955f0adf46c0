//! The W3C Trace Context `traceparent`, the one parser of it: HTTP requests (the request
//! span's trace and parent), command-api (what event metadata records) and the projector
//! (the trace a message continues) all read it through [`TraceParent`].

use std::fmt;

use axum::http::header::HeaderName;
use axum::http::HeaderMap;

/// The header (HTTP) and AMQP header name.
pub const TRACEPARENT: HeaderName = HeaderName::from_static(TRACEPARENT_NAME);
pub(crate) const TRACEPARENT_NAME: &str = "traceparent";

/// `<version>-<trace-id>-<parent-id>-<flags>`: 2, 32, 16 and 2 lower-case hex digits, the
/// ids not all zero and the version not `ff` (W3C Trace Context, level 1). Anything else
/// is no trace context at all, as the specification asks, so no arbitrary header text
/// reaches a span, a log line or the log's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TraceParent(String);

impl TraceParent {
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.split('-');
        let (version, trace, parent, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let valid = parts.next().is_none()
            && hex(version, 2)
            && version != "ff"
            && hex(trace, 32)
            && not_zero(trace)
            && hex(parent, 16)
            && not_zero(parent)
            && hex(flags, 2);
        valid.then(|| Self(value.to_owned()))
    }

    /// The request's `traceparent` header, if well-formed.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        headers
            .get(TRACEPARENT)
            .and_then(|v| v.to_str().ok())
            .and_then(Self::parse)
    }

    /// The 32 hex digits of the trace.
    pub fn trace_id(&self) -> &str {
        &self.0[3..35]
    }

    /// The 16 hex digits of the caller's span.
    pub fn parent_id(&self) -> &str {
        &self.0[36..52]
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn not_zero(s: &str) -> bool {
    s.bytes().any(|b| b != b'0')
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_well_formed_traceparent_gives_its_trace_and_parent() {
        let t =
            TraceParent::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").unwrap();
        assert_eq!(t.trace_id(), "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(t.parent_id(), "b7ad6b7169203331");
    }

    #[test]
    fn anything_else_is_no_trace_context() {
        for bad in [
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-B7AD6B7169203331-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0af7651916cd43dd-b7ad6b7169203331-01",
            "00-xyz-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "hello",
            "",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
        }
    }
}
