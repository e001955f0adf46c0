//! The one HTTP client of the crate: a plain `http://` target and a single HTTP/1.1
//! exchange over a fresh TCP connection, on hyper's own client connection (which axum
//! already compiles). Used by the JWKS fetcher and the OTLP span exporter.
//!
//! No TLS and no pooling: both callers talk to a service on the stack's private network a
//! few times a minute at most; docs/adr/0006-jwks-from-url.md says what TLS would take.

use axum::body::Bytes;
use axum::http::header::HOST;
use axum::http::{Request, Response, Uri};
use hyper::body::{Body, Incoming};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Where an `http://host[:port]/path` URL points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpTarget {
    /// The host as the resolver wants it (`::1`, not `[::1]`).
    pub host: String,
    pub port: u16,
    /// `host[:port]` as written, for the `Host` header and messages.
    pub authority: String,
    pub path_and_query: String,
    /// `https://`: the exchange runs over TLS ([`send_tls`]).
    pub tls: bool,
}

/// Why a string is no usable plain-HTTP URL; each caller words the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UrlProblem {
    /// Not a URL, or a scheme other than http/https.
    NotHttp,
    Https,
    Credentials,
    NoHost,
}

impl HttpTarget {
    /// A plain `http://` URL.
    pub(crate) fn parse(s: &str) -> Result<Self, UrlProblem> {
        let target = Self::parse_any(s)?;
        if target.tls {
            return Err(UrlProblem::Https);
        }
        Ok(target)
    }

    /// An `http://` or `https://` URL.
    pub(crate) fn parse_any(s: &str) -> Result<Self, UrlProblem> {
        let uri: Uri = s.parse().map_err(|_| UrlProblem::NotHttp)?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(UrlProblem::NotHttp),
        };
        let authority = uri.authority().ok_or(UrlProblem::NoHost)?;
        if authority.as_str().contains('@') {
            return Err(UrlProblem::Credentials);
        }
        let host = authority.host();
        if host.is_empty() {
            return Err(UrlProblem::NoHost);
        }
        // `[::1]` in a URL is `::1` to the resolver.
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        Ok(Self {
            host: host.to_owned(),
            port: authority.port_u16().unwrap_or(if tls { 443 } else { 80 }),
            authority: authority.as_str().to_owned(),
            path_and_query: uri
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
            tls,
        })
    }
}

/// Why an exchange produced no response.
#[derive(Debug)]
pub(crate) enum ExchangeError {
    Connect(std::io::Error),
    Http(Box<dyn std::error::Error + Send + Sync>),
}

/// Connects to `target`, sends `request` (its `Host` header set here) and returns the
/// response head with its body still to read. The caller bounds the whole exchange in time.
pub(crate) async fn send<B>(
    target: &HttpTarget,
    request: Request<B>,
) -> Result<Response<Incoming>, ExchangeError>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(ExchangeError::Connect)?;
    exchange(stream, target, request).await
}

/// [`send`] over TLS, the server's certificate checked by `connector` (its roots) for
/// the URL's host.
pub(crate) async fn send_tls<B>(
    target: &HttpTarget,
    connector: &tokio_rustls::TlsConnector,
    request: Request<B>,
) -> Result<Response<Incoming>, ExchangeError>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(ExchangeError::Connect)?;
    let name = rustls_pki_types::ServerName::try_from(target.host.clone())
        .map_err(|e| ExchangeError::Http(Box::new(e)))?;
    let stream = connector
        .connect(name, stream)
        .await
        .map_err(ExchangeError::Connect)?;
    exchange(stream, target, request).await
}

async fn exchange<IO, B>(
    io: IO,
    target: &HttpTarget,
    mut request: Request<B>,
) -> Result<Response<Incoming>, ExchangeError>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let http = |e: hyper::Error| ExchangeError::Http(Box::new(e));
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(http)?;
    // The connection task ends by itself once `sender` is dropped (or the peer closes).
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "HTTP client connection closed with an error");
        }
    });
    let host = target
        .authority
        .parse()
        .map_err(|e| ExchangeError::Http(Box::new(e)))?;
    request.headers_mut().insert(HOST, host);
    sender.send_request(request).await.map_err(http)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_urls_parse_with_default_port_and_path() {
        let target = HttpTarget::parse("http://keycloak:8080/realms/ledger/certs").unwrap();
        assert_eq!((target.host.as_str(), target.port), ("keycloak", 8080));
        assert_eq!(target.authority, "keycloak:8080");
        assert_eq!(target.path_and_query, "/realms/ledger/certs");
        let target = HttpTarget::parse("http://idp").unwrap();
        assert_eq!((target.port, target.path_and_query.as_str()), (80, "/"));
        let target = HttpTarget::parse("http://[::1]:9000/jwks?x=1").unwrap();
        assert_eq!((target.host.as_str(), target.port), ("::1", 9000));
        assert_eq!(target.path_and_query, "/jwks?x=1");
    }

    #[test]
    fn other_urls_name_their_problem() {
        assert_eq!(HttpTarget::parse("https://idp/x"), Err(UrlProblem::Https));
        assert_eq!(HttpTarget::parse("ftp://idp/x"), Err(UrlProblem::NotHttp));
        assert_eq!(HttpTarget::parse("/x"), Err(UrlProblem::NotHttp));
        assert_eq!(HttpTarget::parse("not a url"), Err(UrlProblem::NotHttp));
        assert_eq!(
            HttpTarget::parse("http://u:p@idp/x"),
            Err(UrlProblem::Credentials)
        );
    }
}
