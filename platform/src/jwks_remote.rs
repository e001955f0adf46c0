//! A JWKS fetched from an identity provider over HTTP/1.1, plain or TLS (Keycloak's
//! `…/realms/<realm>/protocol/openid-connect/certs`): the URL type, the timings and the one
//! GET that fetches the document. The [`Authenticator`](crate::Authenticator) decides when
//! to fetch (startup, a periodic refresh, an unknown `kid`).
//!
//! `http://` inside compose (the private network), or `https://` with the certificate
//! checked against the CA certificates of `JWKS_CA_FILE` (rustls; no system roots, so the
//! trust is exactly what the deployment names).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use reqwest::header::ACCEPT;
use reqwest::Url;

use crate::http_client::{self, ExchangeError, UrlProblem};

/// A JWKS larger than this is refused: real ones are a few KiB.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// An `http://host[:port]/path` URL of a JWKS document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksUrl {
    text: String,
    url: Url,
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
        let url = http_client::parse_any(s).map_err(|problem| InvalidJwksUrl {
            url: s.to_owned(),
            reason: match problem {
                UrlProblem::NotHttp => "expected http(s)://host[:port]/path",
                UrlProblem::Https => "https is not supported here",
                UrlProblem::Credentials => "credentials in the URL are not accepted",
                UrlProblem::NoHost => "no host",
            },
        })?;
        Ok(Self {
            text: s.to_owned(),
            url,
        })
    }
}

impl JwksUrl {
    pub fn is_https(&self) -> bool {
        self.url.scheme() == "https"
    }

    /// `host[:port]` as the URL names it, for messages.
    fn authority(&self) -> String {
        let host = self.url.host_str().unwrap_or_default();
        match self.url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        }
    }
}

/// The CA certificates an `https://` JWKS server's certificate is checked against.
#[derive(Clone)]
pub struct JwksCa(std::sync::Arc<tokio_rustls::rustls::ClientConfig>);

impl JwksCa {
    /// Every certificate of a PEM file becomes a trust anchor.
    pub fn from_pem_file(path: &std::path::Path) -> Result<Self, crate::AuthSetupError> {
        use rustls_pki_types::pem::PemObject;
        let failed =
            |source: Box<dyn std::error::Error + Send + Sync>| crate::AuthSetupError::JwksCa {
                path: path.to_owned(),
                source,
            };
        let mut roots = tokio_rustls::rustls::RootCertStore::empty();
        let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
            .map_err(|e| failed(Box::new(e)))?;
        for cert in certs {
            roots
                .add(cert.map_err(|e| failed(Box::new(e)))?)
                .map_err(|e| failed(Box::new(e)))?;
        }
        if roots.is_empty() {
            return Err(failed("no certificate in the file".into()));
        }
        // ring, as for the listeners (see server.rs).
        #[allow(deprecated)]
        let provider = std::sync::Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| failed(Box::new(e)))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self(std::sync::Arc::new(config)))
    }
}

impl fmt::Debug for JwksCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JwksCa")
    }
}

impl PartialEq for JwksCa {
    fn eq(&self, other: &Self) -> bool {
        std::sync::Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for JwksCa {}

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
    /// For an `https://` URL: the CA certificates its server is checked against.
    pub ca: Option<JwksCa>,
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
            ca: None,
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
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("no complete answer within {0:?}")]
    Timeout(Duration),
    #[error("the HTTP exchange failed")]
    Http(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("the server answered HTTP {status}")]
    Status { status: u16 },
    #[error("the answer is not UTF-8 or is over {MAX_JWKS_BYTES} bytes")]
    Body,
    #[error("an https URL needs CA certificates (JWKS_CA_FILE)")]
    NoCa,
}

/// One GET of the document, bounded by `timeout` as a whole.
pub(crate) async fn fetch(
    url: &JwksUrl,
    ca: Option<&JwksCa>,
    timeout: Duration,
) -> Result<String, FetchError> {
    tokio::time::timeout(timeout, fetch_unbounded(url, ca))
        .await
        .map_err(|_| FetchError::Timeout(timeout))?
}

async fn fetch_unbounded(url: &JwksUrl, ca: Option<&JwksCa>) -> Result<String, FetchError> {
    let tls = match (url.is_https(), ca) {
        (false, _) => None,
        (true, Some(ca)) => Some(&*ca.0),
        (true, None) => return Err(FetchError::NoCa),
    };
    let exchange = |error: ExchangeError| match error {
        ExchangeError::Connect(source) => FetchError::Connect {
            authority: url.authority(),
            source,
        },
        ExchangeError::Http(source) => FetchError::Http(source),
    };
    // A client per fetch, as there was a connection per fetch: one every few minutes
    // leaves nothing worth pooling.
    let client = http_client::client(tls).map_err(exchange)?;
    let response = client
        .get(url.url.clone())
        .header(ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| exchange(e.into()))?;
    if !response.status().is_success() {
        return Err(FetchError::Status {
            status: response.status().as_u16(),
        });
    }
    let body = http_client::read_limited(response, MAX_JWKS_BYTES)
        .await
        .map_err(exchange)?
        .ok_or(FetchError::Body)?;
    String::from_utf8(body).map_err(|_| FetchError::Body)
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
            (url.url.host_str(), url.url.port_or_known_default()),
            (Some("keycloak"), Some(8080))
        );
        assert_eq!(url.authority(), "keycloak:8080");
        assert_eq!(
            url.url.path(),
            "/realms/ledger/protocol/openid-connect/certs"
        );
        let url: JwksUrl = "http://idp".parse().unwrap();
        assert_eq!(
            (url.url.port_or_known_default(), url.url.path()),
            (Some(80), "/")
        );
        let url: JwksUrl = "http://[::1]:9000/jwks?x=1".parse().unwrap();
        assert_eq!(url.authority(), "[::1]:9000");
        assert_eq!((url.url.path(), url.url.query()), ("/jwks", Some("x=1")));
        assert_eq!(url.to_string(), "http://[::1]:9000/jwks?x=1");
    }

    #[test]
    fn other_schemes_credentials_and_garbage_are_refused() {
        for bad in [
            "ftp://idp/certs",
            "/certs",
            "idp:8080/certs",
            "http://user:pw@idp/certs",
            "not a url",
            "",
        ] {
            assert!(bad.parse::<JwksUrl>().is_err(), "{bad}");
        }
        let url: JwksUrl = "https://idp/certs".parse().unwrap();
        assert!(url.is_https());
        assert_eq!(url.url.port_or_known_default(), Some(443));
    }
}
