//! A JWKS fetched from an identity provider over plain HTTP/1.1 (Keycloak's
//! `…/realms/<realm>/protocol/openid-connect/certs`): the URL type, the timings and the one
//! GET that fetches the document. The [`Authenticator`](crate::Authenticator) decides when
//! to fetch (startup, a periodic refresh, an unknown `kid`).
//!
//! Only `http://`: inside compose the services reach the identity provider on the private
//! network, and the keys themselves are public. docs/adr/0006-jwks-from-url.md says why
//! there is no TLS client here and what adding one would take.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::header::{ACCEPT, USER_AGENT};
use axum::http::Request;
use http_body_util::{BodyExt, Empty, Limited};

use crate::http_client::{self, ExchangeError, HttpTarget, UrlProblem};

/// A JWKS larger than this is refused: real ones are a few KiB.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// An `http://host[:port]/path` URL of a JWKS document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksUrl {
    text: String,
    target: HttpTarget,
}

/// Why a string is not a usable [`JwksUrl`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{url:?} is not a usable JWKS URL: {reason}")]
pub struct InvalidJwksUrl {
    pub url: String,
    pub reason: &'static str,
}

impl FromStr for JwksUrl {
    type Err = InvalidJwksUrl;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let target = HttpTarget::parse(s).map_err(|problem| InvalidJwksUrl {
            url: s.to_owned(),
            reason: match problem {
                UrlProblem::NotHttp => "expected http://host[:port]/path",
                UrlProblem::Https => "https is not supported (plain http on the private network; see docs/adr/0006-jwks-from-url.md)",
                UrlProblem::Credentials => "credentials in the URL are not accepted",
                UrlProblem::NoHost => "no host",
            },
        })?;
        Ok(Self {
            text: s.to_owned(),
            target,
        })
    }
}

impl fmt::Display for JwksUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Where a JWKS lives and how it is kept fresh.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteJwks {
    pub url: JwksUrl,
    /// Period of the background refresh (keys the provider adds or retires).
    pub refresh_every: Duration,
    /// A token with an unknown `kid` triggers at most one fetch per this interval, so a
    /// flood of made-up tokens cannot hammer the provider.
    pub min_refetch_interval: Duration,
    /// How long startup keeps retrying an unreachable or failing provider.
    pub startup_wait: Duration,
    /// Limit for one fetch: connect, request and the whole answer.
    pub request_timeout: Duration,
    /// How long keys stay trusted without a successful fetch (the provider down, or
    /// answering errors); then they are dropped until it answers again.
    pub max_stale: Duration,
}

impl RemoteJwks {
    /// Refresh every 5 minutes, at most one unknown-kid fetch per 10 s, 30 s of retries at
    /// startup, 5 s per request.
    pub fn new(url: JwksUrl) -> Self {
        Self {
            url,
            refresh_every: Duration::from_secs(300),
            min_refetch_interval: Duration::from_secs(10),
            startup_wait: Duration::from_secs(30),
            request_timeout: Duration::from_secs(5),
            max_stale: Duration::from_secs(3600),
        }
    }
}

/// Why one fetch of the JWKS failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("connecting to {authority}")]
    Connect {
        authority: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no complete answer within {0:?}")]
    Timeout(Duration),
    #[error("the HTTP exchange failed")]
    Http(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("the server answered HTTP {status}")]
    Status { status: u16 },
    #[error("the answer is not UTF-8 or is over {MAX_JWKS_BYTES} bytes")]
    Body,
}

/// One GET of the document, bounded by `timeout` as a whole.
pub(crate) async fn fetch(url: &JwksUrl, timeout: Duration) -> Result<String, FetchError> {
    tokio::time::timeout(timeout, fetch_unbounded(url))
        .await
        .map_err(|_| FetchError::Timeout(timeout))?
}

async fn fetch_unbounded(url: &JwksUrl) -> Result<String, FetchError> {
    let request = Request::get(url.target.path_and_query.as_str())
        .header(ACCEPT, "application/json")
        .header(USER_AGENT, "ledger-platform")
        .body(Empty::<Bytes>::new())
        .map_err(|e| FetchError::Http(Box::new(e)))?;
    let response = http_client::send(&url.target, request)
        .await
        .map_err(|error| match error {
            ExchangeError::Connect(source) => FetchError::Connect {
                authority: url.target.authority.clone(),
                source,
            },
            ExchangeError::Http(source) => FetchError::Http(source),
        })?;
    if !response.status().is_success() {
        return Err(FetchError::Status {
            status: response.status().as_u16(),
        });
    }
    let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
        .collect()
        .await
        .map_err(|_| FetchError::Body)?
        .to_bytes();
    String::from_utf8(body.to_vec()).map_err(|_| FetchError::Body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_urls_parse_with_default_port_and_path() {
        let url: JwksUrl = "http://keycloak:8080/realms/ledger/protocol/openid-connect/certs"
            .parse()
            .unwrap();
        assert_eq!(
            (url.target.host.as_str(), url.target.port),
            ("keycloak", 8080)
        );
        assert_eq!(url.target.authority, "keycloak:8080");
        assert_eq!(
            url.target.path_and_query,
            "/realms/ledger/protocol/openid-connect/certs"
        );
        let url: JwksUrl = "http://idp".parse().unwrap();
        assert_eq!(
            (url.target.port, url.target.path_and_query.as_str()),
            (80, "/")
        );
        let url: JwksUrl = "http://[::1]:9000/jwks?x=1".parse().unwrap();
        assert_eq!((url.target.host.as_str(), url.target.port), ("::1", 9000));
        assert_eq!(url.target.path_and_query, "/jwks?x=1");
        assert_eq!(url.to_string(), "http://[::1]:9000/jwks?x=1");
    }

    #[test]
    fn other_schemes_credentials_and_garbage_are_refused() {
        for bad in [
            "https://idp/certs",
            "ftp://idp/certs",
            "/certs",
            "idp:8080/certs",
            "http://user:pw@idp/certs",
            "not a url",
            "",
        ] {
            assert!(bad.parse::<JwksUrl>().is_err(), "{bad}");
        }
        let err = "https://idp/certs".parse::<JwksUrl>().unwrap_err();
        assert!(err.reason.contains("https"));
    }
}
