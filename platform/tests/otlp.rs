//! Span export: a real OTLP/HTTP receiver on a loopback port collects what the exporter
//! POSTs while requests go through a router wearing platform's middleware; and a collector
//! that is absent or never answers costs the requests nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use platform::{Metrics, OtlpExporter, OtlpSettings};
use prost::Message;
use serde_json::Value;
use tokio::sync::watch;
use tower::ServiceExt;
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::EnvFilter;

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const CALLER_SPAN_ID: &str = "b7ad6b7169203331";
const DEADLINE: Duration = Duration::from_secs(10);

/// One POST the collector received.
#[derive(Clone, Debug)]
struct Post {
    path: String,
    content_type: Option<String>,
    body: Bytes,
}

/// An OTLP/HTTP receiver on a thread and runtime of its own, so that its own work never
/// shows up in the spans under test.
struct Collector {
    endpoint: String,
    posts: watch::Receiver<Vec<Post>>,
}

fn start_collector() -> Collector {
    let (posts_tx, posts) = watch::channel(Vec::new());
    let (addr_tx, addr_rx) = std::sync::mpsc::channel::<SocketAddr>();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            let app = Router::new()
                .route("/v1/traces", post(receive))
                .with_state(Arc::new(posts_tx));
            axum::serve(listener, app).await.unwrap();
        });
    });
    let addr = addr_rx.recv_timeout(DEADLINE).unwrap();
    Collector {
        endpoint: format!("http://{addr}"),
        posts,
    }
}

async fn receive(
    State(posts): State<Arc<watch::Sender<Vec<Post>>>>,
    request: Request<Body>,
) -> (StatusCode, [(&'static str, &'static str); 1], &'static str) {
    let path = request.uri().path().to_owned();
    let content_type = header(request.headers());
    let body = axum::body::to_bytes(request.into_body(), 16 * 1024 * 1024)
        .await
        .unwrap();
    posts.send_modify(|posts| {
        posts.push(Post {
            path,
            content_type,
            body,
        })
    });
    (StatusCode::OK, [("content-type", "application/json")], "{}")
}

fn header(headers: &HeaderMap) -> Option<String> {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The service under test: two routes behind platform's standard middleware.
fn app() -> Router {
    let router = Router::new()
        .route("/accounts/{id}", get(load_account))
        .route(
            "/broken",
            get(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
        );
    platform::observe(router, &Metrics::new())
}

async fn load_account(Path(id): Path<u32>) -> &'static str {
    async {
        // Below the filter's level: never exported.
        tracing::debug_span!("cache_lookup").in_scope(|| {});
        tokio::task::yield_now().await;
        "loaded"
    }
    .instrument(tracing::info_span!("load_account", account = id))
    .await
}

/// The subscriber a service installs, with the `info` filter and without log output.
fn subscriber(settings: OtlpSettings) -> (impl tracing::Subscriber + Send + Sync, OtlpExporter) {
    let (layer, exporter) = platform::otlp_layer(settings).unwrap();
    let subscriber = tracing_subscriber::registry()
        .with(EnvFilter::new("info"))
        .with(layer);
    (subscriber, exporter)
}

async fn get_status(app: &Router, uri: &str, traceparent: Option<&str>) -> StatusCode {
    let mut request = Request::get(uri);
    if let Some(traceparent) = traceparent {
        request = request.header("traceparent", traceparent);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    response.status()
}

/// Every span of every POST, each checked to be a well-formed OTLP/protobuf request whose
/// resource names `service`.
fn spans(posts: &[Post], service: &str) -> Vec<Value> {
    let mut spans = Vec::new();
    for post in posts {
        assert_eq!(post.path, "/v1/traces");
        assert_eq!(post.content_type.as_deref(), Some("application/x-protobuf"));
        let request = ExportTraceServiceRequest::decode(post.body.clone())
            .expect("the body is an ExportTraceServiceRequest");
        // Read as OTLP/JSON: hex ids, 64-bit integers as strings.
        let body = serde_json::to_value(request).unwrap();
        for resource_spans in body["resourceSpans"].as_array().unwrap() {
            let attributes = resource_spans["resource"]["attributes"].as_array().unwrap();
            assert!(
                attributes.contains(&serde_json::json!({
                    "key": "service.name",
                    "value": { "stringValue": service },
                })),
                "{attributes:?}"
            );
            for scope_spans in resource_spans["scopeSpans"].as_array().unwrap() {
                spans.extend(scope_spans["spans"].as_array().unwrap().iter().cloned());
            }
        }
    }
    spans
}

fn attribute<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .map(|a| &a["value"])
}

/// The span's parent, if it has one (none reads as an empty string).
fn parent(span: &Value) -> Option<&str> {
    span["parentSpanId"].as_str().filter(|id| !id.is_empty())
}

fn is_hex(value: &Value, len: usize) -> bool {
    value.as_str().is_some_and(|s| {
        s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

#[tokio::test]
async fn spans_of_a_request_reach_the_collector_under_the_callers_trace() {
    let collector = start_collector();
    let settings = OtlpSettings::new(collector.endpoint.parse().unwrap(), "ledger-test");
    let (subscriber, _exporter) = subscriber(settings);
    let _default = tracing::subscriber::set_default(subscriber);
    let app = app();

    let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN_ID}-01");
    assert_eq!(
        get_status(&app, "/accounts/7", Some(&traceparent)).await,
        StatusCode::OK
    );
    assert_eq!(
        get_status(&app, "/broken", None).await,
        StatusCode::INTERNAL_SERVER_ERROR
    );

    // Exported by the periodic flush, not by anything the test does.
    let mut posts = collector.posts.clone();
    let posts = tokio::time::timeout(
        DEADLINE,
        posts.wait_for(|posts| {
            let spans = spans(posts, "ledger-test");
            spans.iter().filter(|s| s["name"] == "request").count() == 2
                && spans.iter().any(|s| s["name"] == "load_account")
        }),
    )
    .await
    .expect("the spans reach the collector")
    .unwrap()
    .clone();
    let spans = spans(&posts, "ledger-test");

    for span in &spans {
        assert!(is_hex(&span["traceId"], 32), "{span}");
        assert!(is_hex(&span["spanId"], 16), "{span}");
        let start: u64 = span["startTimeUnixNano"].as_str().unwrap().parse().unwrap();
        let end: u64 = span["endTimeUnixNano"].as_str().unwrap().parse().unwrap();
        assert!(start > 0 && end >= start, "{span}");
    }
    let request = spans
        .iter()
        .find(|s| {
            s["name"] == "request"
                && attribute(s, "route").unwrap()["stringValue"] == "/accounts/{id}"
        })
        .unwrap();
    let load = spans.iter().find(|s| s["name"] == "load_account").unwrap();

    // The trace of the caller's traceparent, under the caller's span.
    assert_eq!(request["traceId"], TRACE_ID);
    assert_eq!(parent(request), Some(CALLER_SPAN_ID));
    assert_eq!(request["kind"], 2, "a server span");
    assert_eq!(attribute(request, "method").unwrap()["stringValue"], "GET");
    assert_eq!(attribute(request, "status").unwrap()["intValue"], "200");
    assert!(attribute(request, "correlation_id").unwrap()["stringValue"].is_string());
    // The field the log lines lift goes along as an attribute.
    assert_eq!(
        attribute(request, "trace_id").unwrap()["stringValue"],
        TRACE_ID
    );
    assert_eq!(request["status"]["code"], 0);

    // The handler's span: same trace, a child of the request span.
    assert_eq!(load["traceId"], TRACE_ID);
    assert_eq!(parent(load), request["spanId"].as_str());
    assert_ne!(load["spanId"], request["spanId"]);
    assert_eq!(load["kind"], 1);
    // An unsigned field exports as a string (tracing-opentelemetry's choice).
    assert_eq!(attribute(load, "account").unwrap()["stringValue"], "7");

    assert!(
        spans.iter().all(|s| s["name"] != "cache_lookup"),
        "filtered out"
    );

    // Without a traceparent: a trace of its own, no parent, an error for the 500.
    let broken = spans
        .iter()
        .find(|s| {
            s["name"] == "request" && attribute(s, "route").unwrap()["stringValue"] == "/broken"
        })
        .unwrap();
    assert_ne!(broken["traceId"], TRACE_ID);
    assert_eq!(parent(broken), None);
    assert_eq!(broken["status"]["code"], 2);
}

#[tokio::test]
async fn an_unreachable_collector_fails_batches_without_failing_requests() {
    // A port nobody listens on: connections are refused.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let settings = OtlpSettings::new(format!("http://{addr}").parse().unwrap(), "ledger-test");
    let (subscriber, exporter) = subscriber(settings);
    let _default = tracing::subscriber::set_default(subscriber);
    let app = app();

    for _ in 0..5 {
        assert_eq!(get_status(&app, "/accounts/1", None).await, StatusCode::OK);
    }
    assert!(!exporter.flush(), "the batch failed, and the flush says so");

    // Export goes on trying after failures; requests keep answering.
    assert_eq!(get_status(&app, "/accounts/2", None).await, StatusCode::OK);
    assert!(!exporter.flush());
}

#[test]
fn a_collector_that_never_answers_costs_requests_nothing() {
    // Connections complete in the kernel's backlog, but no answer ever comes.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let settings = OtlpSettings {
        queue_capacity: 2,
        batch_size: 1,
        request_timeout: Duration::from_secs(600),
        ..OtlpSettings::new(format!("http://{addr}").parse().unwrap(), "ledger-test")
    };
    let (subscriber, exporter) = subscriber(settings);

    // The requests run on a thread of their own, so that a request path that waited for
    // the exporter would show as a missed deadline here rather than hang the test.
    let (answered, answers) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _default = tracing::subscriber::set_default(subscriber);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let app = app();
            for id in 0..20 {
                let status = get_status(&app, &format!("/accounts/{id}"), None).await;
                answered.send(status).unwrap();
            }
        });
    });
    // 40 spans: one in the stuck request, two in the queue, the rest dropped unwaited.
    for _ in 0..20 {
        let status = answers
            .recv_timeout(DEADLINE)
            .expect("requests answer while the collector hangs");
        assert_eq!(status, StatusCode::OK);
    }
    // Shutdown waits no longer than it is told to, though the export in flight hangs.
    let asked = Duration::from_millis(200);
    let started = std::time::Instant::now();
    assert!(!exporter.shutdown(asked), "the spans did not get out");
    assert!(started.elapsed() < DEADLINE);
    drop(silent);
}

/// What span export costs a request: the same request (a traceparent, two spans) through
/// the standard middleware on one thread, with the `info` filter and no log output, once
/// without an exporter and once exporting to a collector that accepts everything. Two
/// figures per request: the CPU time of the thread that serves it (from
/// `/proc/thread-self/schedstat`: the request path's own cost, whatever else the machine
/// runs) and the wall time (which also pays for the exporter's threads competing for the
/// cores). Rounds alternate and medians are printed; nothing is asserted, a timing is no
/// test. Run it by name in a release build:
///
/// `cargo test --release -p platform --test otlp -- --ignored --nocapture export_cost`
#[test]
#[ignore = "a measurement: run it by name in a release build"]
fn export_cost_per_request() {
    const REQUESTS: u32 = 20_000;
    const ROUNDS: usize = 9;
    let (endpoint, received) = start_discarding_collector();
    let off = tracing::Dispatch::new(tracing_subscriber::registry().with(EnvFilter::new("info")));
    let (on, _exporter) = subscriber(OtlpSettings::new(endpoint.parse().unwrap(), "bench"));
    let on = tracing::Dispatch::new(on);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let app = app();
    let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN_ID}-01");
    // Per setting: CPU and wall µs per request of each round.
    let mut figures = [(Vec::new(), Vec::new()), (Vec::new(), Vec::new())];
    // Round 0 warms up and is not counted.
    for round in 0..=ROUNDS {
        for (dispatch, (cpu, wall)) in [&off, &on].into_iter().zip(figures.iter_mut()) {
            let _default = tracing::dispatcher::set_default(dispatch);
            let (cpu_before, started) = (thread_cpu_ns(), std::time::Instant::now());
            runtime.block_on(async {
                for _ in 0..REQUESTS {
                    get_status(&app, "/accounts/7", Some(&traceparent)).await;
                }
            });
            if round > 0 {
                let per_request = |ns: f64| ns / 1e3 / f64::from(REQUESTS);
                cpu.push(per_request((thread_cpu_ns() - cpu_before) as f64));
                wall.push(per_request(started.elapsed().as_nanos() as f64));
            }
        }
    }
    let median = |mut f: Vec<f64>| {
        f.sort_by(f64::total_cmp);
        f[f.len() / 2]
    };
    let [(cpu_off, wall_off), (cpu_on, wall_on)] =
        figures.map(|(cpu, wall)| (median(cpu), median(wall)));
    println!("µs per request, median of {ROUNDS} rounds of {REQUESTS}:");
    println!(
        "  CPU of the serving thread: export off {cpu_off:.2}, on {cpu_on:.2}, export costs {:.2}",
        cpu_on - cpu_off
    );
    println!(
        "  wall time:                 export off {wall_off:.2}, on {wall_on:.2}, export costs {:.2}",
        wall_on - wall_off
    );
    let (posts, bytes) = received();
    println!("the collector received {posts} POSTs, {bytes} bytes");
}

/// Nanoseconds this thread has run on a CPU (the first field of its schedstat).
fn thread_cpu_ns() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap();
    stat.split_whitespace().next().unwrap().parse().unwrap()
}

/// A collector that answers every POST with 200 and keeps only counts.
fn start_discarding_collector() -> (String, impl Fn() -> (u64, u64)) {
    use std::sync::atomic::{AtomicU64, Ordering};
    let counts = Arc::new((AtomicU64::new(0), AtomicU64::new(0)));
    let (addr_tx, addr_rx) = std::sync::mpsc::channel::<SocketAddr>();
    let received = counts.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            let app = Router::new().route(
                "/v1/traces",
                post(|body: Bytes| async move {
                    received.0.fetch_add(1, Ordering::Relaxed);
                    received.1.fetch_add(body.len() as u64, Ordering::Relaxed);
                    "{}"
                }),
            );
            axum::serve(listener, app).await.unwrap();
        });
    });
    let addr = addr_rx.recv_timeout(DEADLINE).unwrap();
    (format!("http://{addr}"), move || {
        (
            counts.0.load(Ordering::Relaxed),
            counts.1.load(Ordering::Relaxed),
        )
    })
}
