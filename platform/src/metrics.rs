//! Prometheus metrics: one registry per process, the HTTP latency histogram, and
//! `GET /metrics`.
//!
//! `/metrics` answers in the OpenMetrics text format
//! (`application/openmetrics-text; version=1.0.0`), which is what prometheus-client writes
//! and what Prometheus prefers when it scrapes; it is the Prometheus text format plus
//! `# EOF` and `_total`/unit conventions.
//!
//! Services add their own metrics to the same registry with [`Metrics::register`], using
//! the re-exported `platform::prometheus_client` types so versions cannot drift.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{HeaderValue, CONTENT_TYPE};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Metric, Registry, Unit};

use crate::problem::Problem;

/// Content type of `GET /metrics`.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds in seconds: 1 ms … 10 s, dense where API answers should be.
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 7.5, 10.0,
];

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct HttpLabels {
    method: Cow<'static, str>,
    /// The route template (`/api/v1/users/{id}`), never the raw path, to bound cardinality.
    route: String,
    status: u16,
}

type LatencyFamily = Family<HttpLabels, Histogram, fn() -> Histogram>;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PoolLabels {
    pool: &'static str,
    /// `open` (connections the pool holds), `idle` (of those, not in use) or `max`.
    state: &'static str,
}

/// How often [`Metrics::watch_pool`] samples a pool.
const POOL_SAMPLE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

type Refresh = dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync;

/// The process's metric registry. Cheap to clone; clones share it.
#[derive(Clone, Debug)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: RwLock<Registry>,
    http_duration: LatencyFamily,
    pools: Family<PoolLabels, Gauge>,
    /// Run before each `GET /metrics` renders ([`Metrics::refresh_before_scrape`]).
    refreshes: RwLock<Vec<Arc<Refresh>>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("registry", &self.registry)
            .field("refreshes", &self.refreshes.read().map_or(0, |r| r.len()))
            .finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry holding `http_request_duration_seconds`.
    pub fn new() -> Self {
        let http_duration: LatencyFamily =
            Family::new_with_constructor(|| Histogram::new(LATENCY_BUCKETS));
        let mut registry = Registry::default();
        registry.register_with_unit(
            "http_request_duration",
            "HTTP request latency by method, matched route and status",
            Unit::Seconds,
            http_duration.clone(),
        );
        let pools = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "db_pool_connections",
            "Database connections by pool: open, of those idle, and the pool's maximum",
            pools.clone(),
        );
        Self {
            inner: Arc::new(Inner {
                registry: RwLock::new(registry),
                http_duration,
                pools,
                refreshes: RwLock::default(),
            }),
        }
    }

    /// Samples a connection pool into `db_pool_connections{pool="<name>"}` every second,
    /// from a task of its own (needs a runtime). `sample` answers `(open, idle, max)`, or
    /// `None` once the pool is closed, which ends the task. Takes a closure so that this
    /// crate needs no database driver.
    pub fn watch_pool(
        &self,
        name: &'static str,
        sample: impl Fn() -> Option<(u32, u32, u32)> + Send + 'static,
    ) {
        let pools = self.inner.pools.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(POOL_SAMPLE_EVERY);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some((open, idle, max)) = sample() else {
                    return;
                };
                for (state, value) in [("open", open), ("idle", idle), ("max", max)] {
                    pools
                        .get_or_create(&PoolLabels { pool: name, state })
                        .set(i64::from(value));
                }
            }
        });
    }

    /// Runs `refresh` before each `GET /metrics` renders, for gauges that cost a query
    /// and so are measured only when someone looks (a lag, say). A refresh reports its
    /// own failures; the scrape answers with what the gauges hold.
    pub fn refresh_before_scrape<F, Fut>(&self, refresh: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let refresh: Arc<Refresh> = Arc::new(move || Box::pin(refresh()));
        self.inner
            .refreshes
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(refresh);
    }

    /// Adds a service metric (a `Counter`, `Gauge`, `Histogram` or a `Family` of them).
    /// Keep the metric (they are cheap clones) to update it.
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.registry_mut().register(name, help, metric);
    }

    /// Like [`Metrics::register`], with a unit suffix (`_seconds`, `_bytes`, ...).
    pub fn register_with_unit(&self, name: &str, help: &str, unit: Unit, metric: impl Metric) {
        self.registry_mut()
            .register_with_unit(name, help, unit, metric);
    }

    fn registry_mut(&self) -> std::sync::RwLockWriteGuard<'_, Registry> {
        self.inner
            .registry
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Records one finished HTTP request.
    pub fn observe_http(&self, method: &Method, route: &str, status: u16, seconds: f64) {
        let labels = HttpLabels {
            method: method_label(method),
            route: route.to_owned(),
            status,
        };
        self.inner
            .http_duration
            .get_or_create(&labels)
            .observe(seconds);
    }

    /// The registry in OpenMetrics text.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let registry = self
            .inner
            .registry
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry)?;
        Ok(text)
    }

    /// `GET /metrics`, mergeable into any router.
    pub fn router<S>(&self) -> Router<S> {
        Router::new()
            .route("/metrics", get(render_metrics))
            .with_state(self.clone())
    }
}

/// Middleware recording `http_request_duration_seconds`; install with
/// `axum::middleware::from_fn_with_state(metrics, track_http)` or via
/// [`observe`](crate::observe).
pub async fn track_http(State(metrics): State<Metrics>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(req).await;
    metrics.observe_http(
        &method,
        route.as_deref().unwrap_or("unmatched"),
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

async fn render_metrics(State(metrics): State<Metrics>) -> Response {
    let refreshes = metrics
        .inner
        .refreshes
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    for refresh in refreshes {
        refresh().await;
    }
    match metrics.render() {
        Ok(text) => (
            [(
                CONTENT_TYPE,
                HeaderValue::from_static(OPENMETRICS_CONTENT_TYPE),
            )],
            text,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "encoding metrics failed");
            Problem::internal().into_response()
        }
    }
}

/// Standard methods by name, anything else as `other`: clients choose the method, and a
/// label must not let them mint series.
fn method_label(method: &Method) -> Cow<'static, str> {
    const KNOWN: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    if KNOWN.contains(method) {
        Cow::Owned(method.as_str().to_owned())
    } else {
        Cow::Borrowed("other")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;

    #[test]
    fn renders_http_and_service_metrics() {
        let metrics = Metrics::new();
        let appends: Counter = Counter::default();
        metrics.register("appends", "Events appended", appends.clone());
        appends.inc();
        metrics.observe_http(&Method::GET, "/x/{id}", 200, 0.003);
        metrics.observe_http(
            &Method::from_bytes(b"BREW").unwrap(),
            "unmatched",
            405,
            0.001,
        );
        let text = metrics.render().unwrap();
        assert!(text.contains("# TYPE http_request_duration_seconds histogram"));
        assert!(text.contains(r#"method="GET",route="/x/{id}",status="200""#));
        assert!(text.contains(r#"method="other""#));
        assert!(text.contains("appends_total 1"));
        assert!(text.ends_with("# EOF\n"));
    }
}
