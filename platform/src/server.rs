//! Serving a router: the middleware every service wears, graceful shutdown, and the
//! signals that start it.

use std::future::Future;
use std::net::SocketAddr;

use axum::middleware::{from_fn, from_fn_with_state};
use axum::Router;
use tokio::net::TcpListener;

use crate::correlation::correlate;
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

/// Router fallback: 404 problem+json `not_found` (`router.fallback(platform::not_found)`).
pub async fn not_found() -> Problem {
    Problem::not_found()
}

/// `router.method_not_allowed_fallback(platform::method_not_allowed)`: 405 problem+json.
pub async fn method_not_allowed() -> Problem {
    Problem::method_not_allowed()
}

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting and waits
/// for in-flight requests to finish.
pub async fn serve<F>(listener: TcpListener, router: Router, shutdown: F) -> Result<(), ServeError>
where
    F: Future<Output = ()> + Send + 'static,
{
    let addr = listener.local_addr().ok();
    if let Some(addr) = addr {
        tracing::info!(%addr, "listening");
    }
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| ServeError { addr, source })?;
    tracing::info!("server stopped");
    Ok(())
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
