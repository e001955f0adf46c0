//! Who sends a command and under which conditions: the [`Caller`] extractor (token, role,
//! correlation, trace context, idempotency key) and the [`IfMatch`] precondition. Written
//! once here so no handler repeats a check.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts, Path};
use axum::http::header::IF_MATCH;
use axum::http::request::Parts;
use axum::http::HeaderName;
use event_store::Metadata;
use keyring::BlindIndex;
use ledger::UserId;
use platform::{Authenticator, CorrelationId, Principal, Role, TraceParent};
use serde::Serialize;

use uuid::Uuid;

use crate::error::ApiError;
use crate::idempotency::{Fingerprint, IdempotencyKey, Idempotent};

const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// An authenticated caller whose role may issue commands (admin, user, service; an
/// auditor gets 403 here), with what goes into the events' metadata.
///
/// Rejections, in order: 401 `unauthenticated`, 403 `forbidden`, 422 for a malformed
/// `Idempotency-Key`.
pub(crate) struct Caller {
    principal: Principal,
    correlation_id: CorrelationId,
    /// Kept only when well-formed, so the metadata never carries arbitrary header text.
    traceparent: Option<TraceParent>,
    idempotency_key: Option<IdempotencyKey>,
    /// The server key request fingerprints are made with.
    index: Arc<BlindIndex>,
    method: String,
    path: String,
}

impl<S> FromRequestParts<S> for Caller
where
    Authenticator: FromRef<S>,
    Arc<BlindIndex>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let principal = Principal::from_request_parts(parts, state).await?;
        if !principal.may_command() {
            return Err(ApiError::Forbidden);
        }
        let correlation_id = match CorrelationId::from_request_parts(parts, state).await {
            Ok(id) => id,
            Err(never) => match never {},
        };
        let traceparent = TraceParent::from_headers(&parts.headers);
        let index = Arc::<BlindIndex>::from_ref(state);
        let mut keys = parts.headers.get_all(IDEMPOTENCY_KEY).iter();
        let idempotency_key = match (keys.next(), keys.next()) {
            (None, _) => None,
            (Some(key), None) => Some(key.to_str().map_err(|_| invalid_key()).and_then(|key| {
                IdempotencyKey::parse(key, principal.subject, &index).map_err(ApiError::from)
            })?),
            (Some(_), Some(_)) => return Err(invalid_key()),
        };
        Ok(Self {
            principal,
            correlation_id,
            traceparent,
            idempotency_key,
            index,
            method: parts.method.as_str().to_owned(),
            path: parts.uri.path().to_owned(),
        })
    }
}

fn invalid_key() -> ApiError {
    ApiError::from(IdempotencyKey::invalid())
}

impl Caller {
    /// Whether the caller may act for any user (admin, service), not just itself.
    pub(crate) fn acts_for_anyone(&self) -> bool {
        self.principal.is(Role::Admin) || self.principal.is(Role::Service)
    }

    /// Ownership: 403 unless the caller may issue commands for `user_id`.
    pub(crate) fn authorize(&self, user_id: UserId) -> Result<(), ApiError> {
        if self.principal.may_act_for(user_id.as_uuid()) {
            Ok(())
        } else {
            Err(ApiError::Forbidden)
        }
    }

    /// The user a path segment names, authorised: 403 for someone else's id (whether or
    /// not it exists, so nobody probes), 404 for a segment that is no user id at all.
    pub(crate) fn authorize_path(&self, raw: &str) -> Result<UserId, ApiError> {
        match UserId::parse(raw) {
            Ok(user_id) => self.authorize(user_id).map(|()| user_id),
            Err(_) if self.acts_for_anyone() => Err(ApiError::NotFound),
            Err(_) => Err(ApiError::Forbidden),
        }
    }

    /// The idempotency record's key and this request's fingerprint (method, path and the
    /// body as parsed, so whitespace and key order do not matter), if a key was sent.
    pub(crate) fn idempotent(&self, body: &impl Serialize) -> Option<Idempotent> {
        let key = self.idempotency_key.clone()?;
        Some(self.keyed(key, body))
    }

    /// The records a transaction's command claims: the header's key, if any, and the
    /// client's `transaction_id`, if it chose one.
    pub(crate) fn idempotent_transaction(
        &self,
        transaction_id: Option<Uuid>,
        body: &impl Serialize,
    ) -> Vec<Idempotent> {
        let mut keys: Vec<Idempotent> = self.idempotent(body).into_iter().collect();
        if let Some(id) = transaction_id {
            keys.push(self.keyed(IdempotencyKey::for_transaction(id), body));
        }
        keys
    }

    fn keyed(&self, key: IdempotencyKey, body: &impl Serialize) -> Idempotent {
        let body = serde_json::to_vec(body).unwrap_or_default();
        Idempotent {
            key,
            fingerprint: Fingerprint::of(&self.index, &self.method, &self.path, &body),
        }
    }

    /// The metadata of every event this request appends. Never personal data: ids and
    /// hashes only.
    pub(crate) fn metadata(&self) -> Metadata {
        let key = self.idempotency_key.as_ref().map(IdempotencyKey::hex);
        // What caused the events: the command, named by its key, or else by its
        // correlation id (API.md: `causationid` is always present).
        let causation = key
            .clone()
            .unwrap_or_else(|| self.correlation_id.as_str().to_owned());
        Metadata {
            actor: Some(self.principal.subject),
            causation_id: Some(causation),
            correlation_id: Some(self.correlation_id.as_str().to_owned()),
            idempotency_key: key,
            traceparent: self.traceparent.as_ref().map(|t| t.as_str().to_owned()),
            tracestate: None,
        }
    }

    pub(crate) fn subject(&self) -> Uuid {
        self.principal.subject
    }
}

/// The `{id}` of a user path, as sent. A segment that does not even decode (bad
/// percent-encoding) is kept as empty text, which names no user: `authorize_path` then
/// answers 403 or 404 like for any other non-id, never axum's plain-text 400.
pub(crate) struct UserPath(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for UserPath {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let id = Path::<String>::from_request_parts(parts, state)
            .await
            .map_or_else(|_| String::new(), |Path(id)| id);
        Ok(Self(id))
    }
}

/// The `If-Match` precondition: `*` or a list of strong entity tags `"<version>"`.
/// Absent, it holds; present, it holds only if it names the stream's current version
/// (weak tags never match, RFC 9110 §13.1.1).
pub(crate) struct IfMatch(Option<Vec<Tag>>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Any,
    Version(u64),
    /// A weak or unparsable tag: matches nothing.
    Other,
}

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let mut tags = Vec::new();
        let mut present = false;
        for value in parts.headers.get_all(IF_MATCH) {
            present = true;
            let Ok(value) = value.to_str() else {
                tags.push(Tag::Other);
                continue;
            };
            tags.extend(value.split(',').map(|t| parse_tag(t.trim())));
        }
        Ok(Self(present.then_some(tags)))
    }
}

fn parse_tag(tag: &str) -> Tag {
    if tag == "*" {
        return Tag::Any;
    }
    tag.strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|t| t.parse().ok())
        .map_or(Tag::Other, Tag::Version)
}

impl IfMatch {
    pub(crate) fn is_present(&self) -> bool {
        self.0.is_some()
    }

    /// 428 `precondition_required` when absent (commands that need it).
    pub(crate) fn required(&self) -> Result<(), ApiError> {
        if self.is_present() {
            Ok(())
        } else {
            Err(ApiError::PreconditionRequired)
        }
    }

    /// 412 `version_mismatch` unless absent or naming `current`.
    pub(crate) fn check(&self, current: u64) -> Result<(), ApiError> {
        match &self.0 {
            None => Ok(()),
            Some(tags) if tags.contains(&Tag::Any) || tags.contains(&Tag::Version(current)) => {
                Ok(())
            }
            Some(_) => Err(ApiError::VersionMismatch { current }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_takes_star_and_strong_version_tags() {
        assert_eq!(parse_tag("*"), Tag::Any);
        assert_eq!(parse_tag("\"7\""), Tag::Version(7));
        assert_eq!(parse_tag("W/\"7\""), Tag::Other);
        assert_eq!(parse_tag("7"), Tag::Other);
        assert_eq!(parse_tag("\"\""), Tag::Other);
        let condition = IfMatch(Some(vec![Tag::Version(3), Tag::Other]));
        assert!(condition.check(3).is_ok());
        assert!(matches!(
            condition.check(4),
            Err(ApiError::VersionMismatch { current: 4 })
        ));
        assert!(IfMatch(None).check(9).is_ok());
        assert!(matches!(
            IfMatch(None).required(),
            Err(ApiError::PreconditionRequired)
        ));
    }
}
