//! Logging setup: one JSON object per line on stdout, shippable as is.
//!
//! Each line carries `timestamp`, `level`, `target`, the event's fields flattened (with
//! `message`), `spans` (every enclosing span with its fields), and at the top level
//! `service` plus the `correlation_id` and `trace_id` of the nearest enclosing span that
//! has them. Put those ids on a span (the HTTP middleware does; the projector opens one per
//! message), not on single events, so that every line below it is tagged.
//!
//! With [`OtlpSettings`] the same spans are also exported to an OpenTelemetry collector
//! (`crate::otlp`); the filter decides for both.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{Format, Json, JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::otlp::{otlp_layer, OtlpError, OtlpExporter, OtlpSettings};

/// The filter used when the caller has none (`RUST_LOG` syntax).
pub const DEFAULT_LOG_FILTER: &str = "info";

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// JSON lines, for shipping (the default).
    #[default]
    Json,
    /// Human-readable, coloured; for a developer's terminal.
    Text,
}

/// A log format name other than `json` or `text`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown log format {0:?} (expected json or text)")]
pub struct UnknownLogFormat(pub String);

impl FromStr for LogFormat {
    type Err = UnknownLogFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "json" => Ok(Self::Json),
            "text" => Ok(Self::Text),
            other => Err(UnknownLogFormat(other.to_owned())),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Json => "json",
            Self::Text => "text",
        })
    }
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("invalid log filter {filter:?}")]
    Filter {
        filter: String,
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    #[error("a global tracing subscriber is already installed")]
    AlreadyInitialised(#[source] tracing_subscriber::util::TryInitError),
    #[error("setting up span export")]
    Exporter(#[source] OtlpError),
}

/// How long dropping [`Telemetry`] waits for the last spans to reach the collector.
const FINAL_FLUSH_WAIT: Duration = Duration::from_secs(2);

/// What [`init`] started. Keep it for the life of the process (`let _telemetry = …`):
/// dropping it sends the spans still queued, waiting at most 2 s, and ends span export.
#[must_use = "dropping it at once loses the final flush of spans at shutdown"]
#[derive(Debug)]
pub struct Telemetry {
    exporter: Option<OtlpExporter>,
}

impl Telemetry {
    /// The span exporter, when `OTEL_EXPORTER_OTLP_ENDPOINT` was given.
    pub fn exporter(&self) -> Option<&OtlpExporter> {
        self.exporter.as_ref()
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(exporter) = &self.exporter {
            exporter.shutdown(FINAL_FLUSH_WAIT);
        }
    }
}

/// Installs the global subscriber. `filter` is `RUST_LOG` syntax, e.g.
/// `info,sqlx=warn`; the caller reads it from its config ([`DEFAULT_LOG_FILTER`] if none).
/// With `otlp`, spans are exported too.
pub fn init(
    service_name: &str,
    format: LogFormat,
    filter: &str,
    otlp: Option<OtlpSettings>,
) -> Result<Telemetry, TelemetryError> {
    let env_filter = EnvFilter::try_new(filter).map_err(|source| TelemetryError::Filter {
        filter: filter.to_owned(),
        source,
    })?;
    let (export, exporter) = match otlp {
        Some(settings) => {
            let (layer, exporter) = otlp_layer(settings).map_err(TelemetryError::Exporter)?;
            (Some(layer), Some(exporter))
        }
        None => (None, None),
    };
    // The filter comes first, so it decides for every layer after it.
    let registry = tracing_subscriber::registry()
        .with(env_filter)
        .with(CorrelationLayer)
        .with(export);
    match format {
        LogFormat::Json => registry
            .with(json_layer(service_name, std::io::stdout))
            .try_init(),
        LogFormat::Text => registry.with(tracing_subscriber::fmt::layer()).try_init(),
    }
    .map_err(TelemetryError::AlreadyInitialised)?;
    Ok(Telemetry { exporter })
}

/// The JSON formatting layer; public to the crate so tests can aim it at a buffer.
pub(crate) fn json_layer<S, W>(service_name: &str, writer: W) -> impl Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let inner = tracing_subscriber::fmt::format()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(true);
    tracing_subscriber::fmt::layer()
        .fmt_fields(JsonFields::new())
        .event_format(JsonLine {
            inner,
            service: serde_json::Value::from(service_name).to_string(),
        })
        .with_writer(writer)
}

/// The span fields lifted to the top level of every line below the span.
const LIFTED_FIELDS: [&str; 2] = ["correlation_id", "trace_id"];

/// Span extension holding the lifted fields of one span.
#[derive(Default)]
struct LiftedFields([Option<String>; 2]);

impl Visit for LiftedFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field, value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `%id` arrives here as Display wrapped in Debug, so this is the plain string.
        self.set(field, format!("{value:?}"));
    }
}

impl LiftedFields {
    fn set(&mut self, field: &Field, value: String) {
        if let Some(i) = LIFTED_FIELDS.iter().position(|name| *name == field.name()) {
            self.0[i] = Some(value);
        }
    }
}

/// Remembers `correlation_id` / `trace_id` of spans so [`JsonLine`] can lift them.
struct CorrelationLayer;

impl<S> Layer<S> for CorrelationLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut lifted = LiftedFields::default();
        attrs.record(&mut lifted);
        if lifted.0.iter().any(Option::is_some) {
            if let Some(span) = ctx.span(id) {
                span.extensions_mut().insert(lifted);
            }
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        if let Some(lifted) = extensions.get_mut::<LiftedFields>() {
            values.record(lifted);
        } else {
            let mut lifted = LiftedFields::default();
            values.record(&mut lifted);
            if lifted.0.iter().any(Option::is_some) {
                extensions.insert(lifted);
            }
        }
    }
}

/// tracing-subscriber's JSON line with `service` and the lifted span fields spliced in
/// after the opening brace.
struct JsonLine {
    inner: Format<Json>,
    /// The service name as a JSON string literal.
    service: String,
}

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;

        let mut prefix = format!("{{\"service\":{}", self.service);
        let mut lifted: [Option<String>; 2] = Default::default();
        if let Some(scope) = ctx.event_scope() {
            // Innermost first: a nested span may carry a more specific id.
            for span in scope {
                if let Some(fields) = span.extensions().get::<LiftedFields>() {
                    for (slot, value) in lifted.iter_mut().zip(&fields.0) {
                        if slot.is_none() {
                            slot.clone_from(value);
                        }
                    }
                }
            }
        }
        for (name, value) in LIFTED_FIELDS.iter().zip(lifted) {
            if let Some(value) = value {
                prefix.push_str(&format!(",\"{name}\":{}", serde_json::Value::from(value)));
            }
        }
        match line.strip_prefix('{') {
            Some("}\n") | Some("}") => {
                writer.write_str(&prefix)?;
                writer.write_str("}\n")
            }
            Some(rest) => {
                writer.write_str(&prefix)?;
                writer.write_char(',')?;
                writer.write_str(rest)
            }
            None => writer.write_str(&line),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn capture(f: impl FnOnce()) -> Vec<serde_json::Value> {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::registry()
            .with(CorrelationLayer)
            .with(json_layer("test-svc", move || writer.clone()));
        tracing::subscriber::with_default(subscriber, f);
        let bytes = buffer.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn lines_carry_service_and_the_correlation_id_of_enclosing_spans() {
        let lines = capture(|| {
            let outer = tracing::info_span!("request", correlation_id = %"abc-123", trace_id = tracing::field::Empty);
            let _outer = outer.enter();
            outer.record("trace_id", "0af7651916cd43dd8448eb211c80319c");
            let inner = tracing::info_span!("append", stream_id = 7);
            let _inner = inner.enter();
            tracing::info!(position = 42, "appended");
        });
        let line = &lines[0];
        assert_eq!(line["service"], "test-svc");
        assert_eq!(line["correlation_id"], "abc-123");
        assert_eq!(line["trace_id"], "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(line["message"], "appended");
        assert_eq!(line["position"], 42);
        assert_eq!(line["level"], "INFO");
        assert!(line["timestamp"].is_string());
        assert_eq!(line["spans"][1]["stream_id"], 7);
    }

    #[test]
    fn lines_outside_spans_have_only_the_service() {
        let lines = capture(|| tracing::warn!("alone"));
        assert_eq!(lines[0]["service"], "test-svc");
        assert!(lines[0].get("correlation_id").is_none());
    }

    #[test]
    fn formats_parse() {
        assert_eq!("json".parse::<LogFormat>().unwrap(), LogFormat::Json);
        assert_eq!("text".parse::<LogFormat>().unwrap(), LogFormat::Text);
        assert!("xml".parse::<LogFormat>().is_err());
    }
}
