//! Span export to an OpenTelemetry collector, OTLP/HTTP with protobuf encoding (`POST
//! <endpoint>/v1/traces`), on the ecosystem's crates (ADR 0024): `tracing-opentelemetry`
//! makes OpenTelemetry spans of tracing's, the SDK's batch span processor queues them and
//! sends them from a thread of its own, and `opentelemetry-otlp` encodes and POSTs them.
//!
//! - **Which spans**: every span the subscriber's filter lets through. Events are not
//!   exported (the JSON log lines carry them), except that an `ERROR` event marks its
//!   span's status as an error and goes with it as a span event. The per-request span is a
//!   server span, and a 5xx answer marks it as an error (`correlation.rs`).
//! - **Trace context**: [`continue_trace`] makes a span continue the trace of a
//!   `traceparent` (the HTTP middleware's request span, the projector's span per message):
//!   the W3C propagator turns it into the span's remote parent, so the span exports under
//!   the caller's trace id as a child of the caller's span, and its children inherit both.
//!   A span that has an in-process parent of another trace (a batch span around the
//!   messages of several commands) starts the caller's trace and links to that parent
//!   instead. A root span without one gets a new random trace id.
//! - **Never blocking**: a closed span goes into the processor's bounded queue with
//!   `try_send`; when the queue is full the span is dropped (the SDK warns once, and gives
//!   the count at shutdown). The processor's thread sends a batch at
//!   [`OtlpSettings::batch_size`] spans or every [`OtlpSettings::flush_every`], one
//!   request at a time through a blocking client with its own runtime thread, so a slow or
//!   absent collector costs the request path nothing. A failed batch is logged
//!   (`opentelemetry_sdk`, ERROR) and dropped, not retried.
//! - **Attributes** are the span's fields. Unsigned integers export as strings
//!   (tracing-opentelemetry's choice: a `u64` need not fit OTLP's `int64`); record an
//!   `i64` where a number matters, as the request span's `status` does.
//! - **Configuration** comes from [`OtlpSettings`]; the crates still read the standard
//!   `OTEL_BSP_*` and `OTEL_EXPORTER_OTLP_*HEADERS` / `*COMPRESSION` variables for what
//!   the settings leave open.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{Status, TraceContextExt, TracerProvider};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider,
};
use opentelemetry_sdk::Resource;
use reqwest::Url;
use tracing::{Level, Span, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::http_client::{self, UrlProblem};
use crate::trace_context::{TraceParent, TRACEPARENT_NAME};

/// The span field whose value is the span's trace id, lifted into log lines.
pub(crate) const TRACE_ID_FIELD: &str = "trace_id";

/// An OTLP/HTTP collector's base URL (`OTEL_EXPORTER_OTLP_ENDPOINT`), plain `http://`,
/// e.g. `http://otel-collector:4318`; spans go to `<endpoint>/v1/traces`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpEndpoint {
    text: String,
    traces: Url,
}

/// Why a string is not a usable [`OtlpEndpoint`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{url:?} is not a usable OTLP endpoint: {reason}")]
pub struct InvalidOtlpEndpoint {
    pub url: String,
    pub reason: &'static str,
}

impl FromStr for OtlpEndpoint {
    type Err = InvalidOtlpEndpoint;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |reason| InvalidOtlpEndpoint {
            url: s.to_owned(),
            reason,
        };
        if s.is_empty() {
            return Err(invalid(
                "empty (leave OTEL_EXPORTER_OTLP_ENDPOINT unset to export nothing)",
            ));
        }
        let mut traces = http_client::parse_http(s).map_err(|problem| {
            invalid(match problem {
                UrlProblem::NotHttp => "expected http://host[:port][/path]",
                UrlProblem::Https => {
                    "https is not supported (plain http to a collector on the private network)"
                }
                UrlProblem::Credentials => "credentials in the URL are not accepted",
                UrlProblem::NoHost => "no host",
            })
        })?;
        if traces.query().is_some() {
            return Err(invalid("the base URL takes no query"));
        }
        // The specification's rule for the base URL: the signal's path is appended.
        let path = format!("{}/v1/traces", traces.path().trim_end_matches('/'));
        traces.set_path(&path);
        Ok(Self {
            text: s.to_owned(),
            traces,
        })
    }
}

impl fmt::Display for OtlpEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl OtlpEndpoint {
    /// Where batches are POSTed, e.g. `http://otel-collector:4318/v1/traces`.
    pub fn traces_url(&self) -> String {
        self.traces.to_string()
    }
}

/// Where spans go and how they are batched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpSettings {
    pub endpoint: OtlpEndpoint,
    /// The resource's `service.name`.
    pub service_name: String,
    /// Closed spans waiting for export at most; more are dropped.
    pub queue_capacity: usize,
    /// Spans per request at most; a full batch is sent at once.
    pub batch_size: usize,
    /// A partial batch waits at most this long.
    pub flush_every: Duration,
    /// Limit for one request: connect, send and the answer.
    pub request_timeout: Duration,
}

impl OtlpSettings {
    /// A queue of 2048 spans, batches of 512 or every second, 5 s per request.
    pub fn new(endpoint: OtlpEndpoint, service_name: &str) -> Self {
        Self {
            endpoint,
            service_name: service_name.to_owned(),
            queue_capacity: 2048,
            batch_size: 512,
            flush_every: Duration::from_secs(1),
            request_timeout: Duration::from_secs(5),
        }
    }
}

/// Why span export could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    #[error("building the exporter's HTTP client")]
    Client(#[source] std::io::Error),
    #[error("building the OTLP exporter")]
    Exporter(#[source] opentelemetry_otlp::ExporterBuildError),
}

/// The exporter's side, for shutdown and tests. Cheap to clone. The processor's thread
/// runs until [`OtlpExporter::shutdown`], or until the layer and every clone are gone.
#[derive(Clone, Debug)]
pub struct OtlpExporter {
    provider: SdkTracerProvider,
}

impl OtlpExporter {
    /// Sends every span closed so far and waits for the collector's answer (at most 5 s,
    /// the SDK's limit); true when the collector took them. Blocks the calling thread: for
    /// tests.
    pub fn flush(&self) -> bool {
        self.provider.force_flush().is_ok()
    }

    /// Sends the spans still queued, waiting at most `timeout`, and ends export; true when
    /// the collector took them in time. Blocks the calling thread: for shutdown.
    pub fn shutdown(&self, timeout: Duration) -> bool {
        self.provider.shutdown_with_timeout(timeout).is_ok()
    }
}

/// Starts the exporting thread and returns the layer that feeds it.
pub fn otlp_layer<S>(settings: OtlpSettings) -> Result<(impl Layer<S>, OtlpExporter), OtlpError>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let client =
        http_client::blocking_client(settings.request_timeout).map_err(OtlpError::Client)?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(client)
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(settings.endpoint.traces_url())
        .build()
        .map_err(OtlpError::Exporter)?;
    let batches = BatchConfigBuilder::default()
        .with_max_queue_size(settings.queue_capacity.max(1))
        .with_max_export_batch_size(settings.batch_size.clamp(1, settings.queue_capacity.max(1)))
        .with_scheduled_delay(settings.flush_every)
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(
            BatchSpanProcessor::builder(exporter)
                .with_batch_config(batches)
                .build(),
        )
        // The subscriber's filter decides what is exported, whatever the caller sampled.
        .with_sampler(Sampler::AlwaysOn)
        .with_resource(
            Resource::builder_empty()
                .with_service_name(settings.service_name)
                .build(),
        )
        .build();
    let layer = layer(provider.tracer(env!("CARGO_PKG_NAME")));
    Ok((layer, OtlpExporter { provider }))
}

/// The tracing layer over `tracer`: spans and `ERROR` events only (the others are the log
/// lines' business), with the span's own fields as attributes and nothing added per span
/// (code location, thread, busy and idle time); no OpenTelemetry context is made current
/// on each enter, as nothing here reads it.
fn layer<S>(tracer: SdkTracer) -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_tracked_inactivity(false)
        .with_context_activation(false)
        .with_filter(filter_fn(|metadata| {
            metadata.is_span() || *metadata.level() == Level::ERROR
        }))
}

/// Makes `span` continue the trace of `parent`, a caller's `traceparent`: it records the
/// span's `trace_id` field (declare it `Empty`) for the log lines and, when spans are
/// exported, makes the caller's span the span's parent; when the current span (the one
/// `span` was made under) is of another trace, `span` links to it instead of being its
/// child. Call it where `span` was made, before entering it.
pub fn continue_trace(span: &Span, parent: &TraceParent) {
    span.record(TRACE_ID_FIELD, parent.trace_id());
    let remote = TraceContextPropagator::new().extract(&Carrier(parent));
    let enclosing = Span::current().context().span().span_context().clone();
    if enclosing.is_valid() {
        if enclosing.trace_id() == remote.span().span_context().trace_id() {
            // Already in that trace: the in-process parent stays the parent.
            return;
        }
        span.add_link(enclosing);
    }
    // Fails only without the export layer, or once the span has started.
    let _ = span.set_parent(remote);
}

/// Marks an exported span as failed, saying why.
pub(crate) fn fail(span: &Span, description: String) {
    span.set_status(Status::error(description));
}

/// A validated `traceparent` as the W3C propagator's carrier.
struct Carrier<'a>(&'a TraceParent);

impl Extractor for Carrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key == TRACEPARENT_NAME).then(|| self.0.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT_NAME]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanId, SpanKind, TraceId};
    use opentelemetry_sdk::error::OTelSdkResult;
    use opentelemetry_sdk::trace::{SimpleSpanProcessor, SpanData, SpanExporter};
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn endpoints_get_the_traces_path_appended() {
        let traces = |s: &str| s.parse::<OtlpEndpoint>().unwrap().traces_url();
        assert_eq!(
            traces("http://otel-collector:4318"),
            "http://otel-collector:4318/v1/traces"
        );
        assert_eq!(
            traces("http://collector:4318/"),
            "http://collector:4318/v1/traces"
        );
        assert_eq!(traces("http://gw/otlp/"), "http://gw/otlp/v1/traces");
        for bad in [
            "",
            "https://c:4318",
            "c:4318",
            "http://u:p@c:4318",
            "http://c/?x=1",
        ] {
            assert!(bad.parse::<OtlpEndpoint>().is_err(), "{bad}");
        }
    }

    /// Keeps what it is given, for the test to read.
    #[derive(Debug, Clone, Default)]
    struct Captured(Arc<Mutex<Vec<SpanData>>>);

    impl SpanExporter for Captured {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            self.0.lock().unwrap().extend(batch);
            Ok(())
        }
    }

    /// The layer's spans and events, exported at once to memory: no thread, no HTTP.
    fn capture(f: impl FnOnce()) -> Vec<SpanData> {
        let captured = Captured::default();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(SimpleSpanProcessor::new(captured.clone()))
            .with_sampler(Sampler::AlwaysOn)
            .build();
        let subscriber = tracing_subscriber::registry().with(layer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, f);
        let spans = captured.0.lock().unwrap().clone();
        spans
    }

    fn named<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
        spans.iter().find(|s| s.name == name).unwrap()
    }

    #[test]
    fn a_span_continuing_a_callers_trace_starts_it_and_links_to_its_batch() {
        let caller =
            TraceParent::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").unwrap();
        let spans = capture(|| {
            let batch = tracing::info_span!("batch", deliveries = 2i64);
            let _batch = batch.enter();
            let message = tracing::info_span!("message", trace_id = tracing::field::Empty);
            continue_trace(&message, &caller);
            let _message = message.enter();
            tracing::info_span!("apply").in_scope(|| {
                tracing::info!("not exported");
                tracing::error!("constraint violated");
            });
        });
        let (batch, message, apply) = (
            named(&spans, "batch"),
            named(&spans, "message"),
            named(&spans, "apply"),
        );
        let trace = TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap();
        assert_eq!(message.span_context.trace_id(), trace);
        assert_ne!(batch.span_context.trace_id(), trace);
        assert_eq!(batch.parent_span_id, SpanId::INVALID);
        assert_eq!(
            message.parent_span_id,
            SpanId::from_hex("b7ad6b7169203331").unwrap()
        );
        assert_eq!(message.links.len(), 1);
        assert_eq!(message.links[0].span_context, batch.span_context);
        assert_eq!(apply.span_context.trace_id(), trace);
        assert_eq!(apply.parent_span_id, message.span_context.span_id());
        assert!(apply.links.is_empty());
        assert!(matches!(apply.status, Status::Error { .. }));
        let events: Vec<_> = apply.events.iter().map(|e| e.name.as_ref()).collect();
        assert_eq!(events, ["constraint violated"]);
        assert_eq!(message.status, Status::Unset);
        assert_eq!(apply.span_kind, SpanKind::Internal);
    }

    #[test]
    fn a_span_already_in_the_callers_trace_keeps_its_parent() {
        let caller =
            TraceParent::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").unwrap();
        let spans = capture(|| {
            let request = tracing::info_span!("request", trace_id = tracing::field::Empty);
            continue_trace(&request, &caller);
            let _request = request.enter();
            let inner = tracing::info_span!("inner", trace_id = tracing::field::Empty);
            continue_trace(&inner, &caller);
            inner.in_scope(|| {});
        });
        let (request, inner) = (named(&spans, "request"), named(&spans, "inner"));
        assert_eq!(inner.parent_span_id, request.span_context.span_id());
        assert!(inner.links.is_empty());
    }
}
