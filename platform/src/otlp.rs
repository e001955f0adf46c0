//! Span export in OTLP/HTTP with JSON encoding (`POST <endpoint>/v1/traces`, an
//! `ExportTraceServiceRequest`), written as a tracing-subscriber [`Layer`] so that no
//! OpenTelemetry SDK is needed.
//!
//! - **Which spans**: every span the subscriber's filter lets through; the layer has no
//!   filter of its own. Events are not exported (the JSON log lines carry them), except
//!   that an `ERROR` event marks its span's status as an error.
//! - **Trace context**: a span with a `trace_id` field (32 hex digits; the HTTP middleware
//!   sets it from `traceparent`) exports under that trace id, and its children inherit it;
//!   a span without one inherits its parent's, and a root span gets a random one. A span
//!   with a `parent_span_id` field (the caller's span from `traceparent`) names it as its
//!   parent when it has no parent in this process. A span whose own `trace_id` differs from
//!   its in-process parent's starts that trace and links to the parent instead (a batch
//!   span around the messages of several commands). Record both fields before the span
//!   gets children: children take the trace id their parent has when they are created.
//! - **Never blocking**: a closed span goes into a bounded queue with `try_send`; when the
//!   queue is full the span is dropped and counted. A thread of its own, with a
//!   single-threaded runtime, sends batches (at [`OtlpSettings::batch_size`] spans, or every
//!   [`OtlpSettings::flush_every`]) one request at a time, so a slow or absent collector
//!   costs the request path nothing. A failed batch is counted and dropped, not retried.
//! - **Ids**: span ids are random 64-bit numbers from a per-thread generator seeded by the
//!   system's random source; they need to be unique, not secret.

use std::cell::Cell;
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc as std_mpsc, Arc};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::CONTENT_TYPE;
use reqwest::Url;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::correlation;
use crate::http_client::{self, ExchangeError, UrlProblem};

/// The span field whose value is the span's trace id (also lifted into log lines).
pub(crate) const TRACE_ID_FIELD: &str = "trace_id";
/// The span field naming a parent span outside this process (from `traceparent`).
pub(crate) const PARENT_SPAN_ID_FIELD: &str = "parent_span_id";

/// The collector's answer is read (and thrown away) up to this size.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

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
    /// Closed spans waiting for export at most; more are dropped (and counted).
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

/// What the exporter has done with the spans it was given, since it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OtlpStats {
    /// Accepted by the collector (a 2xx answer).
    pub exported: u64,
    /// Dropped because the queue was full.
    pub dropped: u64,
    /// In batches the collector did not accept: unreachable, timing out or not 2xx.
    pub failed: u64,
}

#[derive(Default)]
struct Counters {
    exported: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
}

/// The layer to add to a subscriber; see the module documentation.
pub struct OtlpLayer {
    queue: mpsc::Sender<FinishedSpan>,
    counters: Arc<Counters>,
}

/// The exporter's side: its counters and an explicit flush. Cheap to clone. The exporting
/// thread runs until the [`OtlpLayer`] is dropped, then sends what is left and ends.
#[derive(Clone)]
pub struct OtlpExporter {
    flushes: mpsc::UnboundedSender<std_mpsc::SyncSender<()>>,
    counters: Arc<Counters>,
}

impl fmt::Debug for OtlpExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpExporter")
            .field("stats", &self.stats())
            .finish()
    }
}

impl OtlpExporter {
    pub fn stats(&self) -> OtlpStats {
        OtlpStats {
            exported: self.counters.exported.load(Ordering::Relaxed),
            dropped: self.counters.dropped.load(Ordering::Relaxed),
            failed: self.counters.failed.load(Ordering::Relaxed),
        }
    }

    /// Sends every span queued so far and waits for the answer, at most `timeout`; true
    /// when that happened in time. Blocks the calling thread: for shutdown and tests.
    pub fn flush(&self, timeout: Duration) -> bool {
        let (done, finished) = std_mpsc::sync_channel(1);
        self.flushes.send(done).is_ok() && finished.recv_timeout(timeout).is_ok()
    }
}

/// Starts the exporting thread and returns the layer that feeds it.
pub fn otlp_layer(settings: OtlpSettings) -> std::io::Result<(OtlpLayer, OtlpExporter)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (queue, spans) = mpsc::channel(settings.queue_capacity.max(1));
    let (flushes, flush_requests) = mpsc::unbounded_channel();
    let counters = Arc::new(Counters::default());
    let client = http_client::client(None).map_err(|error| match error {
        ExchangeError::Connect(e) | ExchangeError::Http(e) => std::io::Error::other(e),
    })?;
    let sender = Sender {
        client,
        resource: json!({
            "attributes": [attribute("service.name", &AttributeValue::Str(settings.service_name.clone()))],
        }),
        counters: counters.clone(),
        failing: false,
        dropped_reported: 0,
        settings,
    };
    std::thread::Builder::new()
        .name("otlp-export".to_owned())
        .spawn(move || {
            EXPORTING.with(|exporting| exporting.set(true));
            runtime.block_on(sender.run(spans, flush_requests));
        })?;
    Ok((
        OtlpLayer {
            queue,
            counters: counters.clone(),
        },
        OtlpExporter { flushes, counters },
    ))
}

thread_local! {
    /// Set on the exporting thread: spans made there are not exported, so that exporting
    /// can never feed itself.
    static EXPORTING: Cell<bool> = const { Cell::new(false) };
    /// SplitMix64 state for span and trace ids.
    static IDS: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 8];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_ok() {
        return u64::from_le_bytes(bytes);
    }
    // Uniqueness is all ids need: std's per-process random hash keys and the time will do.
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(unix_nanos());
    hasher.finish()
}

fn random_u64() -> u64 {
    IDS.with(|state| {
        let next = state.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        state.set(next);
        let mut z = next;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

/// A random id that is not zero (zero means "none" in W3C trace context and OTLP).
fn span_id() -> u64 {
    loop {
        let id = random_u64();
        if id != 0 {
            return id;
        }
    }
}

fn trace_id() -> u128 {
    loop {
        let id = (u128::from(random_u64()) << 64) | u128::from(random_u64());
        if id != 0 {
            return id;
        }
    }
}

/// `len` hex digits (either case), not all zero.
fn parse_hex_id(value: &str, len: usize) -> Option<u128> {
    if value.len() != len || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u128::from_str_radix(value, 16).ok().filter(|id| *id != 0)
}

#[derive(Debug, Clone, PartialEq)]
enum AttributeValue {
    Str(String),
    Int(i64),
    Double(f64),
    Bool(bool),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Internal = 1,
    Server = 2,
}

/// What the layer keeps about an open span (in the span's extensions).
struct OpenSpan {
    trace_id: u128,
    span_id: u64,
    /// The enclosing span in this process: its trace and span id.
    parent: Option<(u128, u64)>,
    remote_parent: Option<u64>,
    kind: Kind,
    start_unix_nanos: u64,
    attributes: Vec<(&'static str, AttributeValue)>,
    error: Option<String>,
}

impl OpenSpan {
    fn set(&mut self, key: &'static str, value: AttributeValue) {
        match self.attributes.iter_mut().find(|(k, _)| *k == key) {
            Some((_, slot)) => *slot = value,
            None => self.attributes.push((key, value)),
        }
    }

    fn record_text(&mut self, key: &'static str, value: String) {
        match key {
            TRACE_ID_FIELD => {
                if let Some(id) = parse_hex_id(&value, 32) {
                    self.trace_id = id;
                }
            }
            PARENT_SPAN_ID_FIELD => {
                if let Some(id) = parse_hex_id(&value, 16) {
                    self.remote_parent = u64::try_from(id).ok();
                }
            }
            _ => self.set(key, AttributeValue::Str(value)),
        }
    }
}

impl Visit for OpenSpan {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record_text(field.name(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `%x` arrives as Display wrapped in Debug, so this is the plain text.
        self.record_text(field.name(), format!("{value:?}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.set(field.name(), AttributeValue::Int(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        match i64::try_from(value) {
            Ok(value) => self.set(field.name(), AttributeValue::Int(value)),
            Err(_) => self.set(field.name(), AttributeValue::Str(value.to_string())),
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.set(field.name(), AttributeValue::Double(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.set(field.name(), AttributeValue::Bool(value));
    }
}

/// A closed span on its way to the collector.
struct FinishedSpan {
    name: &'static str,
    kind: Kind,
    trace_id: u128,
    span_id: u64,
    parent_span_id: Option<u64>,
    link: Option<(u128, u64)>,
    start_unix_nanos: u64,
    end_unix_nanos: u64,
    attributes: Vec<(&'static str, AttributeValue)>,
    error: Option<String>,
}

fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl<S> Layer<S> for OtlpLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if EXPORTING.with(Cell::get) {
            return;
        }
        let Some(span) = ctx.span(id) else { return };
        let parent = span.scope().skip(1).find_map(|ancestor| {
            ancestor
                .extensions()
                .get::<OpenSpan>()
                .map(|open| (open.trace_id, open.span_id))
        });
        let metadata = span.metadata();
        let kind = if metadata.name() == correlation::REQUEST_SPAN
            && metadata.target() == correlation::REQUEST_SPAN_TARGET
        {
            Kind::Server
        } else {
            Kind::Internal
        };
        let mut open = OpenSpan {
            trace_id: parent.map_or_else(trace_id, |(trace, _)| trace),
            span_id: span_id(),
            parent,
            remote_parent: None,
            kind,
            start_unix_nanos: unix_nanos(),
            attributes: Vec::new(),
            error: None,
        };
        attrs.record(&mut open);
        span.extensions_mut().insert(open);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(open) = extensions.get_mut::<OpenSpan>() {
            values.record(open);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if *event.metadata().level() != Level::ERROR {
            return;
        }
        let Some(span) = ctx.event_span(event) else {
            return;
        };
        let mut extensions = span.extensions_mut();
        let Some(open) = extensions.get_mut::<OpenSpan>() else {
            return;
        };
        if open.error.is_none() {
            let mut message = Message(None);
            event.record(&mut message);
            open.error = Some(message.0.unwrap_or_else(|| "error".to_owned()));
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(open) = span.extensions_mut().remove::<OpenSpan>() else {
            return;
        };
        let same_trace_parent = open.parent.filter(|(trace, _)| *trace == open.trace_id);
        let mut error = open.error;
        if open.kind == Kind::Server && error.is_none() {
            // HTTP semantics: a server span fails on a 5xx answer, not on a 4xx.
            let status = open.attributes.iter().find_map(|(key, value)| match value {
                AttributeValue::Int(code) if *key == correlation::STATUS_FIELD => Some(*code),
                _ => None,
            });
            if let Some(status) = status.filter(|status| *status >= 500) {
                error = Some(format!("HTTP {status}"));
            }
        }
        let finished = FinishedSpan {
            name: span.metadata().name(),
            kind: open.kind,
            trace_id: open.trace_id,
            span_id: open.span_id,
            parent_span_id: same_trace_parent
                .map(|(_, span)| span)
                .or(open.remote_parent),
            link: open.parent.filter(|_| same_trace_parent.is_none()),
            start_unix_nanos: open.start_unix_nanos,
            end_unix_nanos: unix_nanos().max(open.start_unix_nanos),
            attributes: open.attributes,
            error,
        };
        // Full or gone: the span is lost, never waited for.
        if self.queue.try_send(finished).is_err() {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The `message` of an event.
struct Message(Option<String>);

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0 = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

fn attribute(key: &str, value: &AttributeValue) -> Value {
    let value = match value {
        AttributeValue::Str(s) => json!({ "stringValue": s }),
        // Protobuf JSON writes 64-bit integers as decimal strings.
        AttributeValue::Int(i) => json!({ "intValue": i.to_string() }),
        AttributeValue::Double(d) if d.is_finite() => json!({ "doubleValue": d }),
        AttributeValue::Double(d) => json!({ "stringValue": d.to_string() }),
        AttributeValue::Bool(b) => json!({ "boolValue": b }),
    };
    json!({ "key": key, "value": value })
}

fn span_json(span: &FinishedSpan) -> Value {
    let mut value = json!({
        "traceId": format!("{:032x}", span.trace_id),
        "spanId": format!("{:016x}", span.span_id),
        "name": span.name,
        "kind": span.kind as u8,
        "startTimeUnixNano": span.start_unix_nanos.to_string(),
        "endTimeUnixNano": span.end_unix_nanos.to_string(),
        "attributes": span
            .attributes
            .iter()
            .map(|(key, value)| attribute(key, value))
            .collect::<Vec<_>>(),
        "status": match &span.error {
            None => json!({ "code": 0 }),
            Some(message) => json!({ "code": 2, "message": message }),
        },
    });
    if let Some(parent) = span.parent_span_id {
        value["parentSpanId"] = json!(format!("{parent:016x}"));
    }
    if let Some((trace, span)) = span.link {
        value["links"] = json!([{
            "traceId": format!("{trace:032x}"),
            "spanId": format!("{span:016x}"),
        }]);
    }
    value
}

/// One `ExportTraceServiceRequest`.
fn request_body(resource: &Value, spans: &[FinishedSpan]) -> Vec<u8> {
    let body = json!({
        "resourceSpans": [{
            "resource": resource,
            "scopeSpans": [{
                "scope": { "name": env!("CARGO_PKG_NAME"), "version": env!("CARGO_PKG_VERSION") },
                "spans": spans.iter().map(span_json).collect::<Vec<_>>(),
            }],
        }],
    });
    body.to_string().into_bytes()
}

/// Why one batch did not reach the collector.
#[derive(Debug, thiserror::Error)]
enum ExportError {
    #[error("connecting failed")]
    Connect(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("the HTTP exchange failed")]
    Http(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("the collector answered HTTP {0}")]
    Status(u16),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

/// The exporting thread's state.
struct Sender {
    /// Kept across batches: its pooled connection saves a handshake a second.
    client: reqwest::Client,
    settings: OtlpSettings,
    resource: Value,
    counters: Arc<Counters>,
    /// The last batch failed: the next failure is not logged again.
    failing: bool,
    dropped_reported: u64,
}

impl Sender {
    async fn run(
        mut self,
        mut spans: mpsc::Receiver<FinishedSpan>,
        mut flush_requests: mpsc::UnboundedReceiver<std_mpsc::SyncSender<()>>,
    ) {
        let batch_size = self.settings.batch_size.max(1);
        let mut batch = Vec::with_capacity(batch_size);
        let every = self.settings.flush_every;
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                received = spans.recv() => match received {
                    Some(span) => {
                        batch.push(span);
                        if batch.len() >= batch_size {
                            self.export(&mut batch).await;
                        }
                    }
                    None => break,
                },
                Some(done) = flush_requests.recv() => {
                    while let Ok(span) = spans.try_recv() {
                        batch.push(span);
                        if batch.len() >= batch_size {
                            self.export(&mut batch).await;
                        }
                    }
                    self.export(&mut batch).await;
                    let _ = done.try_send(());
                }
                _ = ticks.tick() => {
                    self.report_drops();
                    self.export(&mut batch).await;
                }
            }
        }
        // The layer is gone: send what is left.
        self.export(&mut batch).await;
        self.report_drops();
    }

    fn report_drops(&mut self) {
        let dropped = self.counters.dropped.load(Ordering::Relaxed);
        if dropped > self.dropped_reported {
            tracing::warn!(
                dropped = dropped - self.dropped_reported,
                dropped_total = dropped,
                "span export queue full; spans dropped"
            );
            self.dropped_reported = dropped;
        }
    }

    async fn export(&mut self, batch: &mut Vec<FinishedSpan>) {
        if batch.is_empty() {
            return;
        }
        let count = batch.len() as u64;
        let body = request_body(&self.resource, batch);
        batch.clear();
        let timeout = self.settings.request_timeout;
        let outcome = match tokio::time::timeout(timeout, self.post(body)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(ExportError::Timeout(timeout)),
        };
        match outcome {
            Ok(()) => {
                self.counters.exported.fetch_add(count, Ordering::Relaxed);
                if self.failing {
                    self.failing = false;
                    tracing::info!(endpoint = %self.settings.endpoint, "exporting spans again");
                }
            }
            Err(error) => {
                self.counters.failed.fetch_add(count, Ordering::Relaxed);
                if !self.failing {
                    self.failing = true;
                    tracing::warn!(
                        endpoint = %self.settings.endpoint,
                        error = &error as &dyn std::error::Error,
                        spans = count,
                        "exporting spans failed; failed batches are dropped until it works again"
                    );
                }
            }
        }
    }

    async fn post(&self, body: Vec<u8>) -> Result<(), ExportError> {
        let exchange = |error: ExchangeError| match error {
            ExchangeError::Connect(source) => ExportError::Connect(source),
            ExchangeError::Http(source) => ExportError::Http(source),
        };
        let response = self
            .client
            .post(self.settings.endpoint.traces.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| exchange(e.into()))?;
        let status = response.status();
        // Read the answer (a partial-success note at most) so the exchange completes.
        let _ = http_client::read_limited(response, MAX_RESPONSE_BYTES).await;
        if status.is_success() {
            Ok(())
        } else {
            Err(ExportError::Status(status.as_u16()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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

    #[test]
    fn hex_ids_have_their_length_and_are_not_zero() {
        assert_eq!(
            parse_hex_id("0af7651916cd43dd8448eb211c80319c", 32),
            Some(0x0af7651916cd43dd8448eb211c80319c)
        );
        assert_eq!(
            parse_hex_id("B7AD6B7169203331", 16),
            Some(0xb7ad6b7169203331)
        );
        assert_eq!(parse_hex_id(&"0".repeat(32), 32), None);
        assert_eq!(parse_hex_id("b7ad6b716920333", 16), None);
        assert_eq!(parse_hex_id("b7ad6b716920333g", 16), None);
        assert_eq!(parse_hex_id("+7ad6b7169203331", 16), None);
    }

    /// The layer with a queue the test reads itself, no thread.
    fn capture(f: impl FnOnce()) -> Vec<FinishedSpan> {
        let (queue, mut spans) = mpsc::channel(64);
        let layer = OtlpLayer {
            queue,
            counters: Arc::default(),
        };
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, f);
        let mut finished = Vec::new();
        while let Ok(span) = spans.try_recv() {
            finished.push(span);
        }
        finished
    }

    fn named<'a>(spans: &'a [FinishedSpan], name: &str) -> &'a FinishedSpan {
        spans.iter().find(|s| s.name == name).unwrap()
    }

    #[test]
    fn a_span_with_its_own_trace_id_starts_that_trace_and_links_to_its_parent() {
        let spans = capture(|| {
            let batch = tracing::info_span!("batch", deliveries = 2);
            let _batch = batch.enter();
            let message = tracing::info_span!(
                "message",
                trace_id = "0AF7651916CD43DD8448EB211C80319C",
                parent_span_id = "b7ad6b7169203331"
            );
            let _message = message.enter();
            tracing::info_span!("apply").in_scope(|| tracing::error!("constraint violated"));
        });
        let (batch, message, apply) = (
            named(&spans, "batch"),
            named(&spans, "message"),
            named(&spans, "apply"),
        );
        assert_eq!(message.trace_id, 0x0af7651916cd43dd8448eb211c80319c);
        assert_ne!(batch.trace_id, message.trace_id);
        assert_eq!(batch.parent_span_id, None);
        assert_eq!(message.parent_span_id, Some(0xb7ad6b7169203331));
        assert_eq!(message.link, Some((batch.trace_id, batch.span_id)));
        assert_eq!(apply.trace_id, message.trace_id);
        assert_eq!(apply.parent_span_id, Some(message.span_id));
        assert_eq!(apply.link, None);
        assert_eq!(apply.error.as_deref(), Some("constraint violated"));
        assert_eq!(message.error, None);
        assert!(message.attributes.iter().all(|(k, _)| !k.contains("_id")));
        assert_eq!(
            batch.attributes,
            vec![("deliveries", AttributeValue::Int(2))]
        );
    }

    #[test]
    fn spans_encode_as_otlp_json() {
        let spans = capture(|| {
            let span = tracing::info_span!(
                "append",
                stream = "account-1",
                version = 3u64,
                big = u64::MAX,
                ratio = 0.5,
                first = true
            );
            span.in_scope(|| {});
        });
        let resource = json!({ "attributes": [attribute("service.name", &AttributeValue::Str("svc".into()))] });
        let body: Value = serde_json::from_slice(&request_body(&resource, &spans)).unwrap();
        let span = &body["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
        assert_eq!(span["name"], "append");
        assert_eq!(span["kind"], 1);
        assert_eq!(span["traceId"].as_str().unwrap().len(), 32);
        assert_eq!(span["spanId"].as_str().unwrap().len(), 16);
        assert!(span.get("parentSpanId").is_none());
        let start: u64 = span["startTimeUnixNano"].as_str().unwrap().parse().unwrap();
        let end: u64 = span["endTimeUnixNano"].as_str().unwrap().parse().unwrap();
        assert!(start > 0 && end >= start);
        assert_eq!(
            span["attributes"],
            json!([
                { "key": "stream", "value": { "stringValue": "account-1" } },
                { "key": "version", "value": { "intValue": "3" } },
                { "key": "big", "value": { "stringValue": u64::MAX.to_string() } },
                { "key": "ratio", "value": { "doubleValue": 0.5 } },
                { "key": "first", "value": { "boolValue": true } },
            ])
        );
        assert_eq!(span["status"], json!({ "code": 0 }));
        assert_eq!(
            body["resourceSpans"][0]["resource"]["attributes"][0],
            json!({ "key": "service.name", "value": { "stringValue": "svc" } })
        );
    }
}
