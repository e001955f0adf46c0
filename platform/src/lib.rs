//! Cross-cutting service code: the `Principal` extractor (JWT via JWKS), the
//! problem+json error body, telemetry, configuration helpers and health endpoints.
//!
//! Holds no domain types, no SQL and no broker code.
