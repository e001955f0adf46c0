//! Serving a router: the routes and middleware every service wears
//! ([`service_router`]), the listener's limits, graceful shutdown, and the signals that
//! start it.
//!
//! The listener is our own accept loop over hyper's HTTP/1.1 connections rather than
//! `axum::serve`, which has no header-read timeout and no connection cap: a client that
//! dribbles its headers (slow loris) is closed after [`ServeOptions::header_read_timeout`],
//! a request not answered within [`ServeOptions::request_timeout`] gets 408 (its response
//! head, that is: a streamed body such as server-sent events goes on), and connections
//! past [`ServeOptions::max_connections`] get 503 and are closed at once.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::IntoResponse;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::correlation::correlate;
use crate::health::Readiness;
use crate::metrics::{track_http, Metrics};
use crate::problem::Problem;

/// Why serving stopped with an error.
#[derive(Debug, thiserror::Error)]
#[error("serving HTTP on {addr:?}")]
pub struct ServeError {
    pub addr: Option<SocketAddr>,
    #[source]
    pub source: std::io::Error,
}

/// Wraps every route of `router` in the correlation-id span (outermost) and the latency
/// histogram. Call it last, after all `route`/`merge`/`nest` calls: axum applies a layer
/// only to the routes present when it is added. `Router::layer` runs after routing, so both
/// middlewares see the matched route.
pub fn observe<S>(router: Router<S>, metrics: &Metrics) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    router
        .layer(from_fn_with_state(metrics.clone(), track_http))
        .layer(from_fn(correlate))
}

/// A service's whole HTTP surface: its own `routes`, `GET /health/live` and
/// `GET /health/ready` with `readiness`'s checks, `GET /metrics` from `metrics`, 404 and
/// 405 answered as problem+json, and [`observe`] around all of it.
pub fn service_router(routes: Router, readiness: &Readiness, metrics: &Metrics) -> Router {
    let app = routes
        .merge(readiness.router())
        .merge(metrics.router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    observe(app, metrics)
}

/// [`service_router`] of a process with no routes of its own (a worker's `METRICS_ADDR`).
pub fn operations_router(readiness: &Readiness, metrics: &Metrics) -> Router {
    service_router(Router::new(), readiness, metrics)
}

/// Router fallback: 404 problem+json `not_found` (`router.fallback(platform::not_found)`).
pub async fn not_found() -> Problem {
    Problem::not_found()
}

/// `router.method_not_allowed_fallback(platform::method_not_allowed)`: 405 problem+json.
pub async fn method_not_allowed() -> Problem {
    Problem::method_not_allowed()
}

/// A TLS server configuration for a listener (rustls), from PEM files.
#[derive(Clone)]
pub struct Tls(tokio_rustls::TlsAcceptor);

/// Why the TLS certificate or key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading the certificate chain {path}")]
    Certificates {
        path: std::path::PathBuf,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("{path} holds no certificate")]
    NoCertificate { path: std::path::PathBuf },
    #[error("reading the private key {path}")]
    Key {
        path: std::path::PathBuf,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("the certificate and the key do not make a TLS configuration")]
    Config(#[source] tokio_rustls::rustls::Error),
}

impl Tls {
    /// The certificate chain (PEM, leaf first) and its private key (PEM: PKCS#8, PKCS#1
    /// or SEC1). TLS 1.2 and 1.3, HTTP/1.1.
    pub fn from_pem_files(cert: &std::path::Path, key: &std::path::Path) -> Result<Self, TlsError> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|source| TlsError::Certificates {
                path: cert.to_owned(),
                source,
            })?;
        if chain.is_empty() {
            return Err(TlsError::NoCertificate {
                path: cert.to_owned(),
            });
        }
        let key = PrivateKeyDer::from_pem_file(key).map_err(|source| TlsError::Key {
            path: key.to_owned(),
            source,
        })?;
        // ring: the crypto library already compiled for the token checks (rustls marks its
        // provider deprecated only for lacking post-quantum key exchange).
        #[allow(deprecated)]
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let mut config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(TlsError::Config)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
    }
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls")
    }
}

impl PartialEq for Tls {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(self.0.config(), other.0.config())
    }
}

impl Eq for Tls {}

/// The listener's limits. [`Default`] is what `serve` uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeOptions {
    /// A client has this long to send a request's headers (each request of a kept-alive
    /// connection too); then the connection is closed.
    pub header_read_timeout: Duration,
    /// A request is answered (its response head) within this long, or gets 408
    /// `request_timeout`. A service whose handlers have deadlines of their own keeps them
    /// below it, so that a timeout never hides what a handler did.
    pub request_timeout: Duration,
    /// Connections served at once; one more is answered 503 and closed.
    pub max_connections: usize,
    /// TLS on this listener; `None` serves plain HTTP. The handshake must finish within
    /// the header-read timeout.
    pub tls: Option<Tls>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 1024,
            tls: None,
        }
    }
}

/// How long shutdown waits for open connections (a long stream, say) before it gives up
/// on them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Serves `router` on `listener` with the default [`ServeOptions`] until `shutdown`
/// completes, then stops accepting and waits for in-flight requests to finish.
pub async fn serve<F>(listener: TcpListener, router: Router, shutdown: F) -> Result<(), ServeError>
where
    F: Future<Output = ()> + Send + 'static,
{
    serve_with(listener, router, shutdown, ServeOptions::default()).await
}

/// [`serve`] with the given limits.
pub async fn serve_with<F>(
    listener: TcpListener,
    router: Router,
    shutdown: F,
    options: ServeOptions,
) -> Result<(), ServeError>
where
    F: Future<Output = ()> + Send + 'static,
{
    let addr = listener.local_addr().ok();
    if let Some(addr) = addr {
        tracing::info!(
            %addr,
            header_read_timeout_secs = options.header_read_timeout.as_secs_f64(),
            request_timeout_secs = options.request_timeout.as_secs_f64(),
            max_connections = options.max_connections,
            tls = options.tls.is_some(),
            "listening"
        );
    }
    let permits = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout);
    let limit = options.request_timeout;
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                // Out of file descriptors and the like: the listener itself is fine.
                tracing::warn!(%error, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            match options.tls {
                // A TLS client would not read a plain answer: just close.
                Some(_) => drop(stream),
                None => {
                    tokio::spawn(refuse(stream));
                }
            }
            continue;
        };
        let router = router.clone();
        let service =
            hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let router = router.clone();
                async move {
                    let call = tower::ServiceExt::oneshot(router, request.map(Body::new));
                    let response = match tokio::time::timeout(limit, call).await {
                        Ok(Ok(response)) => response,
                        Ok(Err(never)) => match never {},
                        Err(_) => Problem::request_timeout(limit.as_secs()).into_response(),
                    };
                    Ok::<_, std::convert::Infallible>(response)
                }
            });
        let watcher = graceful.watcher();
        let http = http.clone();
        let tls = options.tls.clone();
        let handshake_limit = options.header_read_timeout;
        tokio::spawn(async move {
            let served = match tls {
                None => {
                    watcher
                        .watch(http.serve_connection(TokioIo::new(stream), service))
                        .await
                }
                Some(Tls(acceptor)) => {
                    match tokio::time::timeout(handshake_limit, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            watcher
                                .watch(http.serve_connection(TokioIo::new(stream), service))
                                .await
                        }
                        Ok(Err(error)) => {
                            tracing::debug!(%error, "TLS handshake failed");
                            Ok(())
                        }
                        Err(_) => {
                            tracing::debug!("TLS handshake not finished in time");
                            Ok(())
                        }
                    }
                }
            };
            if let Err(error) = served {
                tracing::debug!(%error, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the shutdown grace period; leaving them");
    }
    tracing::info!("server stopped");
    Ok(())
}

/// A connection past the cap: a short 503 and close, without reading the request.
async fn refuse(mut stream: TcpStream) {
    let body = serde_json::to_vec(&serde_json::json!({
        "type": format!("{}unavailable", crate::problem::PROBLEM_TYPE_BASE),
        "title": "Service unavailable",
        "status": 503,
        "detail": "Too many connections; retry shortly.",
        "code": "unavailable",
    }))
    .unwrap_or_default();
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: {}\r\nretry-after: 1\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n",
        crate::problem::PROBLEM_CONTENT_TYPE,
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = stream.write_all(head.as_bytes()).await;
        let _ = stream.write_all(&body).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// Completes on Ctrl-C or SIGTERM (what `docker stop` and orchestrators send).
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();

    tokio::select! {
        () = interrupt => tracing::info!("Ctrl-C received, shutting down"),
        () = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
}
