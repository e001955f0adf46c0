//! The crate's outgoing HTTP, on reqwest (as the webhooks deliverer's): the URL rules
//! its callers share, the client settings and a body read with a size limit. Used by the
//! JWKS fetcher and, as a blocking client, by the OTLP span exporter.
//!
//! Both callers talk to a service the deployment names (an identity provider, a
//! collector) a few times a minute at most, so the client keeps what the earlier
//! hand-written exchange promised: HTTP/1.1, no redirect followed (a 3xx is an answer,
//! not a new target), no proxy taken from the environment, and each caller bounds the
//! whole exchange in time and the body in size.

use std::time::Duration;

use reqwest::redirect::Policy;
use reqwest::Url;

/// Why a string is no usable URL for a caller; each caller words the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UrlProblem {
    /// Not a URL, or a scheme other than http/https.
    NotHttp,
    Https,
    Credentials,
    NoHost,
}

/// A plain `http://` URL.
pub(crate) fn parse_http(s: &str) -> Result<Url, UrlProblem> {
    let url = parse_any(s)?;
    if url.scheme() == "https" {
        return Err(UrlProblem::Https);
    }
    Ok(url)
}

/// An `http://` or `https://` URL with a host and without credentials.
pub(crate) fn parse_any(s: &str) -> Result<Url, UrlProblem> {
    let url = Url::parse(s).map_err(|e| match e {
        url::ParseError::EmptyHost => UrlProblem::NoHost,
        _ => UrlProblem::NotHttp,
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(UrlProblem::NotHttp);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlProblem::Credentials);
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(UrlProblem::NoHost);
    }
    Ok(url)
}

/// A client with the settings above; `tls`, for an `https://` caller, is the whole TLS
/// configuration (its own roots: nothing from the system or a built-in store).
pub(crate) fn client(
    tls: Option<&tokio_rustls::rustls::ClientConfig>,
) -> Result<reqwest::Client, ExchangeError> {
    let builder = reqwest::Client::builder()
        .http1_only()
        .redirect(Policy::none())
        .no_proxy()
        .user_agent("ledger-platform");
    let builder = match tls {
        Some(config) => builder.use_preconfigured_tls(config.clone()),
        None => builder,
    };
    builder.build().map_err(ExchangeError::from)
}

/// The same settings as a blocking client, each exchange limited to `timeout`: for the
/// span exporter, whose sending thread has no async runtime. Built on a thread of its
/// own, because reqwest refuses to build one inside a runtime.
pub(crate) fn blocking_client(timeout: Duration) -> std::io::Result<reqwest::blocking::Client> {
    std::thread::spawn(move || {
        reqwest::blocking::Client::builder()
            .http1_only()
            .redirect(Policy::none())
            .no_proxy()
            .user_agent("ledger-platform")
            .timeout(timeout)
            .build()
    })
    .join()
    .map_err(|_| std::io::Error::other("building the HTTP client panicked"))?
    .map_err(std::io::Error::other)
}

/// Why an exchange produced no response.
#[derive(Debug)]
pub(crate) enum ExchangeError {
    Connect(Box<dyn std::error::Error + Send + Sync>),
    Http(Box<dyn std::error::Error + Send + Sync>),
}

impl From<reqwest::Error> for ExchangeError {
    fn from(error: reqwest::Error) -> Self {
        if error.is_connect() {
            Self::Connect(Box::new(error))
        } else {
            Self::Http(Box::new(error))
        }
    }
}

/// The body, or `None` once it grows past `max` bytes (the rest is not read).
pub(crate) async fn read_limited(
    mut response: reqwest::Response,
    max: usize,
) -> Result<Option<Vec<u8>>, ExchangeError> {
    if response.content_length().is_some_and(|n| n > max as u64) {
        return Ok(None);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > max {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_urls_parse_with_default_port_and_path() {
        let url = parse_http("http://keycloak:8080/realms/ledger/certs").unwrap();
        assert_eq!(
            (url.host_str(), url.port_or_known_default()),
            (Some("keycloak"), Some(8080))
        );
        assert_eq!(url.path(), "/realms/ledger/certs");
        let url = parse_http("http://idp").unwrap();
        assert_eq!((url.port_or_known_default(), url.path()), (Some(80), "/"));
        let url = parse_http("http://[::1]:9000/jwks?x=1").unwrap();
        assert_eq!(
            url.host(),
            Some(url::Host::Ipv6(std::net::Ipv6Addr::LOCALHOST))
        );
        assert_eq!(
            (url.port(), url.path(), url.query()),
            (Some(9000), "/jwks", Some("x=1"))
        );
    }

    #[test]
    fn other_urls_name_their_problem() {
        assert_eq!(parse_http("https://idp/x"), Err(UrlProblem::Https));
        assert_eq!(parse_http("ftp://idp/x"), Err(UrlProblem::NotHttp));
        assert_eq!(parse_http("/x"), Err(UrlProblem::NotHttp));
        assert_eq!(parse_http("not a url"), Err(UrlProblem::NotHttp));
        assert_eq!(parse_http("http://"), Err(UrlProblem::NoHost));
        assert_eq!(parse_http("http://u:p@idp/x"), Err(UrlProblem::Credentials));
        assert_eq!(parse_http("http://u@idp/x"), Err(UrlProblem::Credentials));
        assert_eq!(
            parse_any("https://idp/x").map(|u| u.port_or_known_default()),
            Ok(Some(443))
        );
    }
}
