//! The deliverer: one leader (a `GET_LOCK` of its own, like the relay's) runs a worker per
//! active subscription. A worker reads the log after the subscription's checkpoint, in
//! position order, and POSTs each matching event as a CloudEvent (HTTP binding,
//! structured mode: the body a RabbitMQ subscriber gets) with the Standard Webhooks
//! headers. The next event goes only after a 2xx for this one; anything else, or no
//! answer within the timeout, is tried again after 1 s, 2 s, 4 s … up to 5 min. The
//! checkpoint moves only past a 2xx (stored in batches): at least once, in order, per
//! subscription.
//!
//! A standby takes over within the lock's wait after the leader's connection ends and
//! resumes every subscription after its stored checkpoint (an event in flight when the
//! leader died is delivered again: at least once).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use event_store::relay::CloudEvent;
use event_store::{EventStore, HeadWatch, LeaderLock, RecordedEvent, TypeFilter, TypePattern};
use keyring::MasterKeys;
use platform::prometheus_client::metrics::counter::Counter;
use platform::prometheus_client::metrics::family::Family;
use platform::prometheus_client::metrics::gauge::Gauge;
use platform::Metrics;
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::name::SubscriptionName;
use crate::signature::SigningSecret;
use crate::table::{Status, Subscription, SubscriptionTable};
use crate::target::{PolicyResolver, TargetPolicy};

/// How the deliverer behaves.
#[derive(Debug, Clone)]
pub struct DelivererSettings {
    /// The leadership lock's name: deliverers of one name share the work.
    pub name: String,
    /// The CloudEvents `source`, the relay's.
    pub source: String,
    pub policy: TargetPolicy,
    /// An attempt without an answer within this is a failure.
    pub timeout: Duration,
    /// The first retry's delay; each next one doubles, up to `max_backoff`.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// How often the leader looks at the subscriptions (new, paused, deleted) and at its
    /// lock.
    pub reconcile: Duration,
    /// How often the log's head is read while workers wait at it.
    pub head_poll: Duration,
}

impl Default for DelivererSettings {
    fn default() -> Self {
        Self {
            name: "main".into(),
            source: event_store::relay::DEFAULT_SOURCE.into(),
            policy: TargetPolicy::default(),
            timeout: Duration::from_secs(10),
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            reconcile: Duration::from_secs(1),
            head_poll: Duration::from_millis(5),
        }
    }
}

type BySubscription = Family<[(&'static str, String); 1], Counter>;
type GaugeBySubscription = Family<[(&'static str, String); 1], Gauge>;

/// The deliverer's metrics.
#[derive(Clone, Default)]
pub struct DeliveryMetrics {
    delivered: BySubscription,
    failures: BySubscription,
    lag_events: GaugeBySubscription,
    lag_seconds: GaugeBySubscription,
    leader: Gauge,
    delivering: Gauge,
}

impl DeliveryMetrics {
    pub fn register(metrics: &Metrics) -> Self {
        let this = Self::default();
        metrics.register(
            "webhook_deliveries",
            "Events delivered (answered 2xx), by subscription",
            this.delivered.clone(),
        );
        metrics.register(
            "webhook_delivery_failures",
            "Attempts that got no 2xx (retried), by subscription",
            this.failures.clone(),
        );
        metrics.register(
            "webhook_lag_events",
            "Events in the log after the subscription's checkpoint",
            this.lag_events.clone(),
        );
        metrics.register(
            "webhook_lag_seconds",
            "Age of the oldest event not yet delivered (0 when caught up)",
            this.lag_seconds.clone(),
        );
        metrics.register(
            "webhook_deliverer_leader",
            "1 while this process leads the delivery",
            this.leader.clone(),
        );
        metrics.register(
            "webhook_subscriptions_delivering",
            "Subscriptions this process is delivering now (the leader's active ones)",
            this.delivering.clone(),
        );
        this
    }

    /// Subscriptions being delivered by this process now.
    pub fn delivering(&self) -> i64 {
        self.delivering.get()
    }

    fn label(name: &SubscriptionName) -> [(&'static str, String); 1] {
        [("subscription", name.as_str().to_owned())]
    }
}

/// What one deliverer process needs.
#[derive(Clone)]
pub struct Deliverer {
    pub store: EventStore,
    pub table: SubscriptionTable,
    pub master: Arc<MasterKeys>,
    pub settings: Arc<DelivererSettings>,
    pub metrics: DeliveryMetrics,
    client: reqwest::Client,
}

#[derive(Debug, thiserror::Error)]
pub enum DelivererError {
    #[error("building the HTTP client")]
    Client(#[from] reqwest::Error),
}

impl Deliverer {
    pub fn new(
        store: EventStore,
        table: SubscriptionTable,
        master: MasterKeys,
        settings: DelivererSettings,
        metrics: DeliveryMetrics,
    ) -> Result<Self, DelivererError> {
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(PolicyResolver(settings.policy)))
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            // A redirect could lead anywhere, past the target checks.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("ledger-webhooks/1")
            .build()?;
        Ok(Self {
            store,
            table,
            master: Arc::new(master),
            settings: Arc::new(settings),
            metrics,
            client,
        })
    }

    /// Campaigns for the lock and delivers while leading, until `stop` turns true.
    pub async fn run(&self, mut stop: watch::Receiver<bool>) {
        let mut pause = Duration::from_millis(100);
        while !*stop.borrow() {
            match self.campaign(&mut stop).await {
                Some(lock) => {
                    pause = Duration::from_millis(100);
                    self.lead(lock, &mut stop).await;
                }
                None => {
                    tokio::select! {
                        _ = stop.changed() => {}
                        () = tokio::time::sleep(pause) => {}
                    }
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    async fn campaign(&self, stop: &mut watch::Receiver<bool>) -> Option<LeaderLock> {
        let mut lock =
            match LeaderLock::open(self.store.pool(), "webhooks", &self.settings.name).await {
                Ok(lock) => lock,
                Err(e) => {
                    tracing::warn!(error = %e, "connecting for the deliverer's lock failed");
                    return None;
                }
            };
        loop {
            if *stop.borrow() {
                lock.release().await;
                return None;
            }
            match lock.try_lock(1).await {
                Ok(true) => {
                    tracing::info!(name = %self.settings.name, "leading webhook delivery");
                    return Some(lock);
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "waiting for the deliverer's lock failed");
                    return None;
                }
            }
        }
    }

    async fn lead(&self, mut lock: LeaderLock, stop: &mut watch::Receiver<bool>) {
        self.metrics.leader.set(1);
        let head = self.store.watch_head(self.settings.head_poll);
        let mut workers: HashMap<SubscriptionName, Worker> = HashMap::new();
        loop {
            match lock.holds().await {
                Ok(true) => {}
                Ok(false) | Err(_) => {
                    tracing::warn!("the deliverer lost its lock; stopping every delivery");
                    break;
                }
            }
            match self.table.list().await {
                Ok(subscriptions) => self.reconcile(&mut workers, subscriptions, &head),
                Err(e) => tracing::warn!(error = %e, "reading the webhook subscriptions failed"),
            }
            tokio::select! {
                _ = stop.changed() => if *stop.borrow() { break },
                () = tokio::time::sleep(self.settings.reconcile) => {}
            }
        }
        for (_, worker) in workers.drain() {
            worker.stop().await;
        }
        self.metrics.delivering.set(0);
        self.metrics.leader.set(0);
        lock.release().await;
    }

    /// One worker per active subscription; the others' workers stop.
    fn reconcile(
        &self,
        workers: &mut HashMap<SubscriptionName, Worker>,
        subscriptions: Vec<Subscription>,
        head: &HeadWatch,
    ) {
        let active: HashMap<SubscriptionName, Subscription> = subscriptions
            .into_iter()
            .filter(|s| s.status == Status::Active)
            .map(|s| (s.name.clone(), s))
            .collect();
        workers.retain(|name, worker| {
            let keep = active.contains_key(name) && !worker.handle.is_finished();
            if !keep {
                let _ = worker.stop.send(true);
                self.metrics
                    .lag_events
                    .remove(&DeliveryMetrics::label(name));
                self.metrics
                    .lag_seconds
                    .remove(&DeliveryMetrics::label(name));
            }
            keep
        });
        for (name, subscription) in active {
            if workers.contains_key(&name) {
                continue;
            }
            let (stop, stopped) = watch::channel(false);
            let this = self.clone();
            let head = head.subscribe();
            let handle = tokio::spawn(async move {
                if let Err(e) = this.deliver(subscription, head, stopped).await {
                    tracing::warn!(error = %e, "a webhook worker stopped; it starts again");
                }
            });
            workers.insert(name, Worker { handle, stop });
        }
        self.metrics
            .delivering
            .set(i64::try_from(workers.len()).unwrap_or(i64::MAX));
    }

    /// Delivers one subscription from its checkpoint until told to stop.
    async fn deliver(
        &self,
        subscription: Subscription,
        mut head: watch::Receiver<u64>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), String> {
        let name = subscription.name.clone();
        let label = DeliveryMetrics::label(&name);
        let wrapped = self
            .table
            .secret(&name)
            .await
            .map_err(|e| e.to_string())?
            .ok_or("the subscription is gone")?;
        let key = self.master.unwrap(&wrapped).map_err(|e| e.to_string())?;
        let secret = SigningSecret::from_bytes(key.expose_bytes());
        let types = TypeFilter::new(
            subscription
                .types
                .iter()
                .filter_map(|t| TypePattern::parse(t).ok())
                .collect(),
        );
        let mut progress = Progress::new(&self.table, &name, subscription.delivered_position);
        let url = subscription.url.clone();
        loop {
            if *stop.borrow() {
                return progress.flush().await;
            }
            let head_before = *head.borrow_and_update();
            let position = progress.position;
            let page = self
                .store
                .read_all(position, 200)
                .await
                .map_err(|e| e.to_string())?;
            let log_head = page
                .last()
                .map_or(head_before, |e| e.position)
                .max(head_before);
            self.metrics
                .lag_events
                .get_or_create(&label)
                .set(i64::try_from(log_head.saturating_sub(position)).unwrap_or(i64::MAX));
            if page.is_empty() {
                // Caught up: what was delivered is stored before waiting.
                progress.flush().await?;
                self.metrics.lag_seconds.get_or_create(&label).set(0);
                if *head.borrow() > head_before {
                    continue;
                }
                tokio::select! {
                    changed = head.changed() => if changed.is_err() { return Ok(()) },
                    _ = stop.changed() => {}
                }
                continue;
            }
            for event in page {
                if !types.matches(event.event_type.as_str()) {
                    progress.passed(event.position, false).await?;
                    continue;
                }
                let age = (OffsetDateTime::now_utc() - event.recorded_at).whole_seconds();
                self.metrics
                    .lag_seconds
                    .get_or_create(&label)
                    .set(age.max(0));
                if !self
                    .deliver_one(&name, &url, &secret, &event, &mut progress, &mut stop)
                    .await?
                {
                    return progress.flush().await;
                }
                progress.passed(event.position, true).await?;
                self.metrics.delivered.get_or_create(&label).inc();
            }
        }
    }

    /// Sends `event` until a 2xx (`true`) or until told to stop (`false`).
    async fn deliver_one(
        &self,
        name: &SubscriptionName,
        url: &str,
        secret: &SigningSecret,
        event: &RecordedEvent,
        progress: &mut Progress<'_>,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<bool, String> {
        let cloud_event =
            CloudEvent::from_recorded(event, &self.settings.source).map_err(|e| e.to_string())?;
        let body = serde_json::to_vec(&cloud_event).map_err(|e| e.to_string())?;
        let id = event.event_id.to_string();
        let label = DeliveryMetrics::label(name);
        let mut pause = self.settings.min_backoff;
        loop {
            let outcome = match self.settings.policy.check_url(url) {
                Err(refused) => Err(refused.to_string()),
                Ok(target) => self.post(target, &id, secret, &body).await,
            };
            match outcome {
                Ok(()) => return Ok(true),
                Err(why) => {
                    self.metrics.failures.get_or_create(&label).inc();
                    tracing::info!(subscription = %name, position = event.position, error = %why, retry_in_ms = pause.as_millis() as u64, "webhook delivery failed");
                    // What came before this event is delivered: store it, then why not.
                    progress.flush().await?;
                    self.table
                        .failed(name, &why)
                        .await
                        .map_err(|e| e.to_string())?;
                }
            }
            tokio::select! {
                _ = stop.changed() => if *stop.borrow() { return Ok(false) },
                () = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(self.settings.max_backoff);
        }
    }

    async fn post(
        &self,
        url: url::Url,
        id: &str,
        secret: &SigningSecret,
        body: &[u8],
    ) -> Result<(), String> {
        let timestamp = OffsetDateTime::now_utc().unix_timestamp();
        let answer = self
            .client
            .post(url)
            .header("content-type", "application/cloudevents+json")
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", secret.sign(id, timestamp, body))
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| format!("no answer: {e}"))?;
        let status = answer.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("answered {}", status.as_u16()))
        }
    }
}

/// A subscription's checkpoint as delivered, stored every `FLUSH_EVENTS` events or
/// `FLUSH_AFTER`, when caught up, before a failure is recorded and when stopping: one
/// write per event would bound delivery at the database's commit rate. A crash sends
/// what was delivered since the last store again (at least once).
struct Progress<'a> {
    table: &'a SubscriptionTable,
    name: &'a SubscriptionName,
    position: u64,
    stored: u64,
    delivered: bool,
    since: std::time::Instant,
}

const FLUSH_EVENTS: u64 = 100;
const FLUSH_AFTER: Duration = Duration::from_millis(250);

impl<'a> Progress<'a> {
    fn new(table: &'a SubscriptionTable, name: &'a SubscriptionName, position: u64) -> Self {
        Self {
            table,
            name,
            position,
            stored: position,
            delivered: false,
            since: std::time::Instant::now(),
        }
    }

    /// Event `position` is done: delivered, or `false` when it did not match.
    async fn passed(&mut self, position: u64, delivered: bool) -> Result<(), String> {
        self.position = position;
        self.delivered |= delivered;
        if position - self.stored >= FLUSH_EVENTS || self.since.elapsed() >= FLUSH_AFTER {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), String> {
        if self.position > self.stored {
            let stored = if self.delivered {
                self.table
                    .delivered(self.name, self.position, OffsetDateTime::now_utc())
                    .await
            } else {
                self.table.skipped(self.name, self.position).await
            };
            stored.map_err(|e| e.to_string())?;
            self.stored = self.position;
            self.delivered = false;
        }
        self.since = std::time::Instant::now();
        Ok(())
    }
}

/// A subscription's delivery task. Dropped (the leader's task ended, or was cancelled
/// with its process), it is aborted: no worker outlives its leader's term.
struct Worker {
    handle: JoinHandle<()>,
    stop: watch::Sender<bool>,
}

impl Worker {
    async fn stop(mut self) {
        let _ = self.stop.send(true);
        let handle = std::mem::replace(&mut self.handle, tokio::spawn(async {}));
        let _ = handle.await;
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.handle.abort();
    }
}
