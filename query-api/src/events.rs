//! Catch-up subscriptions (API.md, "Subscriptions for downstream services"): the log
//! from any position, filtered by type patterns and stream, as the CloudEvents a
//! RabbitMQ subscriber gets — as JSON pages, or as Server-Sent Events that go on live.
//!
//! One connection reads the log itself, in position order, from its own position: the
//! history and the live part are the same loop over `read_all`, so the hand-over between
//! them can neither skip nor repeat an event. Between reads it waits on the process's
//! one [`HeadWatch`] (a single poller for every connection), not on the log.
//!
//! A connection's memory is bounded: events go to the client through a channel of
//! `buffer` events. A client that leaves it full for `slow_after` is cut with a final
//! `event: error` (`subscriber_too_slow`) and resumes with `Last-Event-ID`.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::header::ACCEPT;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use event_store::relay::CloudEvent;
use event_store::{EventStore, HeadWatch, RecordedEvent, StreamId, TypeFilter};
use futures_util::stream::{self, Stream};
use platform::prometheus_client::metrics::counter::Counter;
use platform::prometheus_client::metrics::gauge::Gauge;
use platform::{Metrics, Principal, Problem, Role};
use serde::Serialize;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::params::Params;
use crate::reply::{Meta, NO_STORE};
use crate::state::AppState;

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1_000;
/// Log rows read per round trip.
const PAGE: u32 = 500;
/// A JSON page scans at most this many rows for matches before it answers with fewer.
const SCAN_BUDGET: usize = 10_000;

/// How subscriptions behave.
#[derive(Debug, Clone)]
pub struct SubscriptionSettings {
    /// The CloudEvents `source`: the relay's, so bodies are the same bytes.
    pub source: String,
    /// Open SSE connections at most; more are answered 503.
    pub max_open: usize,
    /// A comment line at least this often on a quiet stream.
    pub keepalive: Duration,
    /// Events held for one client at most.
    pub buffer: usize,
    /// How long a full buffer is tolerated before the client is cut.
    pub slow_after: Duration,
    /// How often the log's head is read while anyone follows it.
    pub head_poll: Duration,
}

impl Default for SubscriptionSettings {
    fn default() -> Self {
        Self {
            source: event_store::relay::DEFAULT_SOURCE.to_owned(),
            max_open: 256,
            keepalive: Duration::from_secs(15),
            buffer: 1_024,
            slow_after: Duration::from_secs(10),
            head_poll: Duration::from_millis(2),
        }
    }
}

/// The subscriptions of one process: its head watch, its connection cap, its metrics.
#[derive(Clone)]
pub(crate) struct Subscriptions {
    settings: Arc<SubscriptionSettings>,
    head: HeadWatch,
    slots: Arc<Semaphore>,
    metrics: SubscriptionMetrics,
}

#[derive(Clone, Default)]
struct SubscriptionMetrics {
    open: Gauge,
    sent: Counter,
    too_slow: Counter,
    /// The largest `head - position` over open connections, refreshed as they read.
    lag: Gauge,
    lags: Arc<std::sync::Mutex<Vec<Arc<AtomicU64>>>>,
}

impl SubscriptionMetrics {
    fn register(metrics: &Metrics) -> Self {
        let this = Self::default();
        metrics.register(
            "event_subscriptions_open",
            "Server-Sent Events subscriptions open now",
            this.open.clone(),
        );
        metrics.register(
            "event_subscription_events_sent",
            "Events sent to subscribers, over JSON pages and Server-Sent Events",
            this.sent.clone(),
        );
        metrics.register(
            "event_subscriptions_too_slow",
            "Subscribers cut because they did not read their events in time",
            this.too_slow.clone(),
        );
        metrics.register(
            "event_subscription_lag_events",
            "The largest distance, in events, between the log's head and an open subscription",
            this.lag.clone(),
        );
        this
    }

    /// The lag slot of a new connection.
    fn follow(&self) -> Arc<AtomicU64> {
        let slot = Arc::new(AtomicU64::new(0));
        if let Ok(mut lags) = self.lags.lock() {
            lags.push(slot.clone());
        }
        slot
    }

    fn refresh_lag(&self) {
        if let Ok(mut lags) = self.lags.lock() {
            // A connection that ended dropped its slot: only ours is left.
            lags.retain(|slot| Arc::strong_count(slot) > 1);
            let max = lags.iter().map(|s| s.load(Ordering::Relaxed)).max();
            self.lag
                .set(i64::try_from(max.unwrap_or(0)).unwrap_or(i64::MAX));
        }
    }
}

impl Subscriptions {
    /// Server-Sent Events subscriptions open now.
    pub(crate) fn open(&self) -> i64 {
        self.metrics.open.get()
    }

    pub(crate) fn start(
        store: &EventStore,
        settings: SubscriptionSettings,
        metrics: &Metrics,
    ) -> Self {
        Self {
            head: store.watch_head(settings.head_poll),
            slots: Arc::new(Semaphore::new(settings.max_open)),
            metrics: SubscriptionMetrics::register(metrics),
            settings: Arc::new(settings),
        }
    }
}

/// A page of the log as CloudEvents.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EventPage {
    /// The CloudEvents, each exactly the body a RabbitMQ subscriber receives.
    #[schema(value_type = Vec<Object>)]
    items: Vec<CloudEvent>,
    /// Pass as `?after=` for the next page: the last position this page looked at. Equal
    /// to `after` when the log holds nothing newer yet.
    next_after: u64,
}

/// What a request asks for.
struct Query {
    after: u64,
    types: TypeFilter,
    stream: Option<StreamId>,
}

fn may_subscribe(principal: &Principal) -> Result<(), ApiError> {
    if principal.is(Role::Service) || principal.may_audit() {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

fn query(params: &Params, headers: &HeaderMap) -> Result<Query, ApiError> {
    // On a reconnect, the last event the client saw wins over `after`.
    let resumed = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::invalid("Last-Event-ID", "invalid_position", "must be a position")
                })?,
        ),
    };
    // `after` is checked even when Last-Event-ID wins: a malformed one is still refused.
    let after_param = params.position("after")?;
    let after = resumed.or(after_param).unwrap_or(0);
    let types = match params.get("types") {
        None => TypeFilter::default(),
        Some(raw) => TypeFilter::parse_list(raw)
            .map_err(|e| ApiError::invalid("types", "invalid_pattern", e.to_string()))?,
    };
    let stream = params
        .get("stream")
        .map(|raw| {
            StreamId::parse(raw)
                .map_err(|e| ApiError::invalid("stream", "invalid_stream_id", e.to_string()))
        })
        .transpose()?;
    Ok(Query {
        after,
        types,
        stream,
    })
}

fn wants_sse(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream"))
}

/// The log after a position, as CloudEvents: a JSON page, or Server-Sent Events.
#[utoipa::path(get, path = "/api/v1/events", tag = "subscriptions",
    params(
        ("after" = Option<u64>, Query, description = "Events after this position (default 0: from the start)"),
        ("types" = Option<String>, Query, description = "Comma-separated event-type patterns, RabbitMQ topic syntax (`*` one word, `#` any)"),
        ("stream" = Option<String>, Query, description = "Only this stream, e.g. `user-<uuid>`"),
        ("limit" = Option<u32>, Query, description = "JSON page size, 1–1000 (default 100)"),
        ("Last-Event-ID" = Option<u64>, Header, description = "On a reconnect: wins over `after`"),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`application/json`: a page; `text/event-stream`: history, then live events (`id:` position, `event:` type, `data:` the CloudEvent), `: keepalive` comments, a final `event: error` (`subscriber_too_slow`) for a client that does not keep up", body = EventPage),
        (status = 401, response = crate::openapi::Unauthenticated),
        (status = 403, response = crate::openapi::Forbidden),
        (status = 422, response = crate::openapi::ValidationFailed),
        (status = 503, response = crate::openapi::Unavailable),
    ))]
#[tracing::instrument(skip_all)]
pub(crate) async fn list_events(
    State(state): State<AppState>,
    principal: Principal,
    params: Params,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    may_subscribe(&principal)?;
    if wants_sse(&headers) {
        params.allow(&["after", "types", "stream"])?;
        let q = query(&params, &headers)?;
        return stream_events(&state, q);
    }
    params.allow(&["after", "types", "stream", "limit"])?;
    let q = query(&params, &headers)?;
    let limit = params.limit(DEFAULT_LIMIT, MAX_LIMIT)?;
    let subs = &state.subscriptions;
    let mut items = Vec::new();
    let mut next_after = q.after;
    let mut scanned = 0;
    while items.len() < limit.as_usize() && scanned < SCAN_BUDGET {
        let page = state
            .store
            .read_all_of(next_after, PAGE, q.stream.as_ref())
            .await?;
        let full = page.len() == PAGE as usize;
        for e in page {
            scanned += 1;
            next_after = e.position;
            if q.types.matches(e.event_type.as_str()) {
                items.push(cloud_event(&e, &subs.settings.source)?);
                if items.len() == limit.as_usize() {
                    break;
                }
            }
        }
        if !full {
            break;
        }
    }
    subs.metrics.sent.inc_by(items.len() as u64);
    let meta = Meta::at(state.projection.current().await?.position).cache(NO_STORE);
    Ok(meta.ok(EventPage { items, next_after }))
}

fn cloud_event(e: &RecordedEvent, source: &str) -> Result<CloudEvent, ApiError> {
    CloudEvent::from_recorded(e, source).map_err(|_| ApiError::Corrupt { what: "event JSON" })
}

fn stream_events(state: &AppState, q: Query) -> Result<Response, ApiError> {
    let subs = state.subscriptions.clone();
    let Ok(permit) = subs.slots.clone().try_acquire_owned() else {
        return Err(ApiError::Problem(Problem::unavailable(
            "Too many open subscriptions; retry later.",
            5,
        )));
    };
    let (tx, rx) = mpsc::channel(subs.settings.buffer.max(1));
    let (slow_tx, slow_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(feed(state.store.clone(), subs.clone(), q, tx, slow_tx));
    let keepalive = KeepAlive::new()
        .interval(subs.settings.keepalive)
        .text(" keepalive");
    let body = deliver(rx, slow_rx, permit, subs);
    Ok((StatusCode::OK, Sse::new(body).keep_alive(keepalive)).into_response())
}

/// Reads the log from the query's position for as long as the client stays, and sends
/// every matching event. Ends when the client has gone or was too slow.
async fn feed(
    store: EventStore,
    subs: Subscriptions,
    q: Query,
    tx: mpsc::Sender<Event>,
    slow: tokio::sync::watch::Sender<bool>,
) {
    let mut head = subs.head.subscribe();
    let lag = subs.metrics.follow();
    let mut position = q.after;
    loop {
        // Every event up to the head seen before a read is visible to that read (the
        // log becomes visible in position order), so an empty read means: nothing
        // before that head, wait for a newer one.
        let head_before = *head.borrow_and_update();
        let page = match store.read_all_of(position, PAGE, q.stream.as_ref()).await {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(error = %e, position, "a subscription could not read the log");
                // The client reconnects with Last-Event-ID; closing says so.
                return;
            }
        };
        if page.is_empty() {
            lag.store(0, Ordering::Relaxed);
            if *head.borrow() > head_before {
                continue;
            }
            tokio::select! {
                changed = head.changed() => if changed.is_err() { return },
                () = tx.closed() => return,
            }
            continue;
        }
        for e in page {
            position = e.position;
            if !q.types.matches(e.event_type.as_str()) {
                continue;
            }
            let Ok(ce) = CloudEvent::from_recorded(&e, &subs.settings.source) else {
                tracing::error!(
                    position,
                    "an event of the log is not JSON; subscription ends"
                );
                return;
            };
            let Ok(data) = serde_json::to_string(&ce) else {
                return;
            };
            let event = Event::default()
                .id(position.to_string())
                .event(ce.event_type.as_str())
                .data(data);
            match tx.send_timeout(event, subs.settings.slow_after).await {
                Ok(()) => {
                    subs.metrics.sent.inc();
                }
                Err(mpsc::error::SendTimeoutError::Timeout(_)) => {
                    subs.metrics.too_slow.inc();
                    tracing::info!(position, "a subscriber did not keep up; cut");
                    let _ = slow.send(true);
                    return;
                }
                Err(mpsc::error::SendTimeoutError::Closed(_)) => return,
            }
        }
        let head_now = *head.borrow();
        lag.store(head_now.saturating_sub(position), Ordering::Relaxed);
        subs.metrics.refresh_lag();
    }
}

/// The response body: the events as the client reads them, and a final `error` event if
/// the feed found the client too slow (whatever is still queued is dropped: the client
/// resumes after the last id it got).
fn deliver(
    rx: mpsc::Receiver<Event>,
    slow: tokio::sync::watch::Receiver<bool>,
    permit: OwnedSemaphorePermit,
    subs: Subscriptions,
) -> impl Stream<Item = Result<Event, Infallible>> {
    subs.metrics.open.inc();
    let guard = OpenGuard {
        subs: subs.clone(),
        _slot: permit,
    };
    stream::unfold(
        (rx, slow, Some(guard)),
        |(mut rx, mut slow, guard)| async move {
            guard.as_ref()?;
            // Resolves once the feed found the client too slow; never if the feed just
            // ended (the channel then drains and closes).
            let too_slow = async {
                if slow.wait_for(|s| *s).await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                biased;
                () = too_slow => {
                    let problem = ApiError::SubscriberTooSlow.to_problem();
                    let data = serde_json::to_string(&problem).unwrap_or_default();
                    let last = Event::default().event("error").data(data);
                    Some((Ok(last), (rx, slow, None)))
                }
                next = rx.recv() => next.map(|e| (Ok(e), (rx, slow, guard))),
            }
        },
    )
}

/// Counts a connection open while its body lives, and holds its slot.
struct OpenGuard {
    subs: Subscriptions,
    _slot: OwnedSemaphorePermit,
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.subs.metrics.open.dec();
        self.subs.metrics.refresh_lag();
    }
}
