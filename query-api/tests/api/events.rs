//! `GET /api/v1/events`: the log as CloudEvents for downstream services, as JSON pages
//! and as Server-Sent Events that go on live (API.md, "Subscriptions for downstream
//! services").

use std::time::Duration;

use axum::http::StatusCode;
use event_store::relay::CloudEvent;
use event_store::{AppendRequest, EventType, ExpectedVersion, NewEvent, StreamId};
use futures_util::StreamExt;
use platform::Role;
use query_api::{Settings, SubscriptionSettings};
use serde_json::{json, Value};

use crate::support::{spawn_app, spawn_app_with_settings, Req, TestApp};

/// Appends `n` events: types alternate `thing.made` / `other.done`, streams `s-<k % 3>`.
async fn append(app: &TestApp, n: usize) {
    for k in 0..n {
        let event_type = if k % 2 == 0 {
            "thing.made"
        } else {
            "other.done"
        };
        let request = AppendRequest::single(
            StreamId::parse(format!("s-{}", k % 3)).unwrap(),
            ExpectedVersion::Any,
            vec![NewEvent::new(
                EventType::parse(event_type).unwrap(),
                1,
                json!({ "k": k }),
            )],
        );
        app.store.append(request).await.unwrap();
    }
}

/// One Server-Sent Event, or a comment.
#[derive(Debug, Default, Clone, PartialEq)]
struct Sse {
    id: Option<u64>,
    event: Option<String>,
    data: String,
    comment: Option<String>,
}

/// Reads Server-Sent Events from a response body as they arrive.
struct SseReader {
    body: axum::body::BodyDataStream,
    text: String,
}

impl SseReader {
    fn new(response: axum::response::Response) -> Self {
        assert_eq!(response.status(), StatusCode::OK);
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        Self {
            body: response.into_body().into_data_stream(),
            text: String::new(),
        }
    }

    /// The next event or comment; `None` when the stream ended.
    async fn next(&mut self) -> Option<Sse> {
        loop {
            if let Some(end) = self.text.find("\n\n") {
                let block: String = self.text.drain(..end + 2).collect();
                let mut sse = Sse::default();
                for line in block.lines() {
                    if let Some(c) = line.strip_prefix(':') {
                        sse.comment = Some(c.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("id:") {
                        sse.id = Some(v.trim().parse().unwrap());
                    } else if let Some(v) = line.strip_prefix("event:") {
                        sse.event = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        sse.data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    }
                }
                return Some(sse);
            }
            let chunk = tokio::time::timeout(Duration::from_secs(30), self.body.next())
                .await
                .expect("no event within 30 s")?;
            self.text
                .push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        }
    }

    /// The next event, skipping comments (keepalives do not keep a test waiting).
    async fn event(&mut self) -> Option<Sse> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let sse = self.next().await?;
            if sse.comment.is_none() {
                return Some(sse);
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no event within 30 s, only comments"
            );
        }
    }
}

fn sse(path: &str, token: &str) -> Req {
    Req::get(path)
        .token(token)
        .header("accept", "text/event-stream")
}

#[tokio::test]
async fn a_page_holds_the_cloud_events_of_the_log_filtered_by_type_and_stream() {
    let app = spawn_app().await;
    append(&app, 12).await;
    let token = app.as_role(Role::Service);

    let page = app.get("/api/v1/events?limit=5", &token).await.ok();
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 5);
    assert_eq!(page["next_after"], 5);
    // Each item is the CloudEvent a RabbitMQ subscriber gets for that event.
    let log = app.store.read_all(0, 5).await.unwrap();
    for (item, e) in items.iter().zip(&log) {
        let expected = CloudEvent::from_recorded(e, event_store::relay::DEFAULT_SOURCE).unwrap();
        assert_eq!(item, &serde_json::to_value(&expected).unwrap());
    }

    let page = app
        .get("/api/v1/events?types=thing.*&stream=s-0&after=0", &token)
        .await
        .ok();
    let positions: Vec<u64> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["position"].as_u64().unwrap())
        .collect();
    // k = 0, 6 are `thing.made` on s-0 (k % 3 == 0 and k even): positions 1 and 7.
    assert_eq!(positions, [1, 7]);
    for item in page["items"].as_array().unwrap() {
        assert_eq!(item["type"], "thing.made");
        assert_eq!(item["subject"], "s-0");
    }

    let at_head = app.get("/api/v1/events?after=12", &token).await.ok();
    assert_eq!(at_head["items"], json!([]));
    assert_eq!(at_head["next_after"], 12);
}

#[tokio::test]
async fn subscriptions_are_for_services_admins_and_auditors_and_check_their_parameters() {
    let app = spawn_app().await;
    for role in [Role::Service, Role::Admin, Role::Auditor] {
        app.get("/api/v1/events", &app.as_role(role)).await.ok();
    }
    app.get("/api/v1/events", &app.as_role(Role::User))
        .await
        .problem(StatusCode::FORBIDDEN, "forbidden");
    let token = app.as_role(Role::Service);
    for bad in [
        "/api/v1/events?types=a..b",
        "/api/v1/events?after=-1",
        "/api/v1/events?limit=1001",
        "/api/v1/events?stream=has%20space",
        "/api/v1/events?unknown=1",
        "/api/v1/events?after=1&after=2",
        // Only spaces may stand around a pattern, and 200 characters of patterns in all.
        "/api/v1/events?types=%09thing.made",
        "/api/v1/events?types=a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q,r,s,t,u,v,w,x,y,z,a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q,r,s,t,u,v,w,x,y,z,a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q,r,s,t,u,v,w,x,y,z,a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q,r,s,t,u,v,w,x,y,z,a",
    ] {
        app.get(bad, &token)
            .await
            .problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    let answer = app
        .send(sse("/api/v1/events", &app.as_role(Role::User)))
        .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    // Last-Event-ID wins over `after`, but a malformed `after` is still refused.
    let answer = app
        .send(sse("/api/v1/events?after=", &token).header("last-event-id", "1"))
        .await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    app.get(
        "/api/v1/events?types=%20thing.*%20,%20user.registered",
        &token,
    )
    .await
    .ok();
}

#[tokio::test]
async fn a_stream_sends_the_history_then_goes_on_live_resuming_after_the_last_event_id() {
    let app = spawn_app().await;
    append(&app, 10).await;
    let token = app.as_role(Role::Service);
    let mut reader = SseReader::new(
        app.open(sse("/api/v1/events?after=3&types=thing.made", &token))
            .await,
    );
    // History: thing.made at k = 4, 6, 8 → positions 5, 7, 9.
    for want in [5, 7, 9] {
        let e = reader.event().await.unwrap();
        assert_eq!(e.id, Some(want));
        assert_eq!(e.event.as_deref(), Some("thing.made"));
        let body: Value = serde_json::from_str(&e.data).unwrap();
        assert_eq!(body["position"], want);
    }
    // Live: the next appends arrive as they commit.
    append(&app, 4).await;
    let live = reader.event().await.unwrap();
    assert_eq!(live.id, Some(11));
    let log = app.store.read_all(10, 1).await.unwrap();
    let expected = CloudEvent::from_recorded(&log[0], event_store::relay::DEFAULT_SOURCE).unwrap();
    // The data line is the very body the relay publishes for that event.
    assert_eq!(live.data, serde_json::to_string(&expected).unwrap());

    // A reconnect with Last-Event-ID resumes after it, whatever `after` says.
    let mut again = SseReader::new(
        app.open(sse("/api/v1/events?after=0", &token).header("last-event-id", "12"))
            .await,
    );
    assert_eq!(again.event().await.unwrap().id, Some(13));
}

#[tokio::test]
async fn a_quiet_stream_sends_keepalive_comments() {
    let app = spawn_app_with_settings(Settings {
        subscriptions: SubscriptionSettings {
            keepalive: Duration::from_millis(50),
            ..SubscriptionSettings::default()
        },
        ..Settings::default()
    })
    .await;
    let mut reader = SseReader::new(
        app.open(sse("/api/v1/events", &app.as_role(Role::Service)))
            .await,
    );
    let first = reader.next().await.unwrap();
    assert_eq!(first.comment.as_deref(), Some("keepalive"));
}

/// Appends race the moment a subscriber switches from the history to the live log, many
/// times: every subscriber sees every position exactly once, in order, and reaches the
/// head once the appends stop, with nothing more appended to wake it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_hand_over_from_history_to_live_neither_skips_nor_repeats() {
    let app = std::sync::Arc::new(spawn_app().await);
    let token = app.as_role(Role::Service);
    for round in 0..20 {
        let writer = {
            let app = app.clone();
            tokio::spawn(async move { append(&app, 20).await })
        };
        let mut reader = SseReader::new(app.open(sse("/api/v1/events", &token)).await);
        // The writer ends at 20 more events than the last round: a subscriber must get
        // there with nothing appended after the last one to wake it.
        let head = 20 * (round + 1);
        for expected in 1..=head {
            let e = reader.event().await.unwrap();
            assert_eq!(e.id, Some(expected), "round {round}");
        }
        writer.await.unwrap();
    }
}

/// A client that stops reading is cut with a final `subscriber_too_slow` event and
/// resumes with Last-Event-ID.
#[tokio::test]
async fn a_subscriber_that_stops_reading_is_cut_with_a_final_error() {
    let app = spawn_app_with_settings(Settings {
        subscriptions: SubscriptionSettings {
            buffer: 4,
            slow_after: Duration::from_millis(100),
            ..SubscriptionSettings::default()
        },
        ..Settings::default()
    })
    .await;
    let token = app.as_role(Role::Service);
    append(&app, 300).await;
    let mut reader = SseReader::new(app.open(sse("/api/v1/events", &token)).await);
    // Not reading: the feed fills the buffer and gives up on this client.
    crate::support::eventually("the subscriber to be cut", || async {
        app.metric("event_subscriptions_too_slow_total").await >= 1.0
    })
    .await;
    let mut last = 0;
    let end = loop {
        let e = reader.next().await.expect("a final error event");
        if e.event.as_deref() == Some("error") {
            break e;
        }
        if let Some(id) = e.id {
            assert_eq!(id, last + 1);
            last = id;
        }
    };
    let problem: Value = serde_json::from_str(&end.data).unwrap();
    assert_eq!(problem["code"], "subscriber_too_slow");
    assert!(
        reader.next().await.is_none(),
        "the stream ends after the error"
    );
    assert!(last < 300, "the cut came before the end of the log");

    let mut resumed = SseReader::new(
        app.open(sse("/api/v1/events", &token).header("last-event-id", last.to_string()))
            .await,
    );
    assert_eq!(resumed.event().await.unwrap().id, Some(last + 1));
}

#[tokio::test]
async fn the_operations_status_shows_what_is_behind_and_what_is_parked_to_admins_only() {
    let app = spawn_app().await;
    append(&app, 10).await;
    crate::support::set_checkpoint(&app.pool, 7).await;
    sqlx::query(
        "INSERT INTO relay_checkpoints (name, position, epoch, updated_at) \
         VALUES ('main', 9, 3, UTC_TIMESTAMP(6))",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO parked_events (projection, position, event_type, reason, parked_at) \
         VALUES ('main', 4, 'thing.made', 'poison: test', UTC_TIMESTAMP(6))",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let status = app
        .get("/api/v1/operations", &app.as_role(Role::Admin))
        .await
        .ok();
    assert_eq!(status["head_position"], 10);
    assert_eq!(
        status["relays"],
        json!([{"name": "main", "position": 9, "lag": 1, "epoch": 3}])
    );
    assert_eq!(status["projection"]["lag"], 3);
    assert_eq!(status["parked"][0]["position"], 4);
    assert_eq!(status["subscriptions_open"], 0);
    for role in [Role::Service, Role::Auditor, Role::User] {
        app.get("/api/v1/operations", &app.as_role(role))
            .await
            .problem(StatusCode::FORBIDDEN, "forbidden");
    }
}
