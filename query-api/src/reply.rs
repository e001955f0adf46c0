//! The success answer of every view: JSON, `X-Projection-Position`, a strong `ETag`, an
//! honest `Cache-Control`, and 304 when the client's `If-None-Match` already names the
//! current tag. The [`stamp_position`] middleware puts `X-Projection-Position` on every
//! other answer (errors included) from the last checkpoint read.

use axum::extract::{Request, State};
use axum::http::header::{CACHE_CONTROL, ETAG, VARY};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::params::IfNoneMatch;
use crate::state::AppState;

pub(crate) static X_PROJECTION_POSITION: HeaderName =
    HeaderName::from_static("x-projection-position");

/// Views that change as events are projected: a client may keep them but must
/// revalidate (cheaply, with the ETag) before each use. `private`: they depend on who
/// asks.
pub(crate) const REVALIDATE: &str = "private, no-cache";
/// A transaction never changes once recorded.
pub(crate) const IMMUTABLE: &str = "private, max-age=86400, immutable";
/// Audit answers: recomputed or paged on demand, never reused.
pub(crate) const NO_STORE: &str = "no-store";

/// A strong entity tag, quoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ETag(String);

impl ETag {
    /// From a row's version or position: the representation changes exactly when it does.
    pub(crate) fn of(n: u64) -> Self {
        Self(format!("\"{n}\""))
    }

    /// From the versions/positions of every row of a list page (and what follows it).
    pub(crate) fn digest(parts: impl IntoIterator<Item = impl AsRef<[u8]>>) -> Self {
        let mut hash = Sha256::new();
        for part in parts {
            let part = part.as_ref();
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part);
        }
        let digest = hash.finalize();
        Self(format!("\"{}\"", hex::encode(&digest[..16])))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// The headers of a view answer.
#[derive(Debug, Clone)]
pub(crate) struct Meta {
    position: u64,
    etag: Option<ETag>,
    cache_control: &'static str,
}

impl Meta {
    /// An answer that reflects the projection at least up to `position`.
    pub(crate) fn at(position: u64) -> Self {
        Self {
            position,
            etag: None,
            cache_control: REVALIDATE,
        }
    }

    pub(crate) fn etag(mut self, etag: ETag) -> Self {
        self.etag = Some(etag);
        self
    }

    pub(crate) fn cache(mut self, cache_control: &'static str) -> Self {
        self.cache_control = cache_control;
        self
    }

    /// 304 if the client already holds this answer's tag.
    pub(crate) fn not_modified(&self, if_none_match: &IfNoneMatch) -> Option<Response> {
        let etag = self.etag.as_ref()?;
        if_none_match
            .matches(etag.as_str())
            .then(|| self.headers(StatusCode::NOT_MODIFIED.into_response()))
    }

    /// 200 with `body`.
    pub(crate) fn ok<T: Serialize>(&self, body: T) -> Response {
        self.headers(platform::Json(body).into_response())
    }

    /// 304 when the tag matches, else 200 with the body `body()` builds.
    pub(crate) fn reply<T: Serialize>(
        &self,
        if_none_match: &IfNoneMatch,
        body: impl FnOnce() -> T,
    ) -> Response {
        self.not_modified(if_none_match)
            .unwrap_or_else(|| self.ok(body()))
    }

    fn headers(&self, mut response: Response) -> Response {
        if !response.status().is_success() && response.status() != StatusCode::NOT_MODIFIED {
            // Serialising failed; the problem answer stands as it is.
            return response;
        }
        let headers = response.headers_mut();
        headers.insert(
            X_PROJECTION_POSITION.clone(),
            HeaderValue::from(self.position),
        );
        headers.insert(CACHE_CONTROL, HeaderValue::from_static(self.cache_control));
        headers.insert(VARY, HeaderValue::from_static("Authorization"));
        if let Some(etag) = &self.etag {
            if let Ok(value) = HeaderValue::from_str(etag.as_str()) {
                headers.insert(ETAG, value);
            }
        }
        response
    }
}

/// Adds `X-Projection-Position` to answers that lack it: errors, and answers produced
/// before anything was read. Costs at most one checkpoint read per poll interval (see
/// `wait.rs`); with the database down the answer goes without it.
pub(crate) async fn stamp_position(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    if !response.headers().contains_key(&X_PROJECTION_POSITION) {
        if let Ok(at) = state.projection.current().await {
            response.headers_mut().insert(
                X_PROJECTION_POSITION.clone(),
                HeaderValue::from(at.position),
            );
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_quoted_and_digests_separate_their_parts() {
        assert_eq!(ETag::of(7).as_str(), "\"7\"");
        assert_ne!(ETag::digest(["ab", "c"]), ETag::digest(["a", "bc"]));
        assert_eq!(ETag::digest(["x"]), ETag::digest(["x"]));
    }

    #[test]
    fn a_matching_tag_gets_304_with_the_headers() {
        let meta = Meta::at(9).etag(ETag::of(3));
        let inm: IfNoneMatch = IfNoneMatch::default();
        let fresh = meta.reply(&inm, || 1);
        assert_eq!(fresh.status(), StatusCode::OK);
        assert_eq!(fresh.headers()[ETAG], "\"3\"");
        assert_eq!(fresh.headers()[&X_PROJECTION_POSITION], "9");
        assert_eq!(fresh.headers()[CACHE_CONTROL], REVALIDATE);
    }
}
