//! Consuming `queue.example.events` in batches.
//!
//! One session = one AMQP connection: look for the queue (a passive declare: the relay
//! declares the topology, and the projector's broker account may only consume), then
//! `basic.qos`, consume. Several
//! projector processes may consume; the queue's `x-single-active-consumer` delivers to
//! one, the others wait as hot standbys and take over when its channel closes.
//!
//! Deliveries are gathered until `batch_size`, or for at most `linger` after the batch's
//! first delivery (a backlog fills a batch at once from the prefetched deliveries; a
//! steady trickle must not hold its first event back for a whole batch), applied in one transaction with the checkpoint (`checkpoint.rs`), then acknowledged
//! with one `multiple` ack. A crash before the commit loses nothing (the broker
//! redelivers); a crash between commit and ack redelivers messages the checkpoint
//! already covers, which are skipped.
//!
//! A poison event stops the projection in front of it: readiness 503, the
//! `projector_poisoned` gauge, an error line naming the position. Its message and those
//! after it stay unacknowledged (so neither this process nor a standby skips it) until
//! an operator parks the position; then the projection goes on by itself.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, BasicRejectOptions,
    QueueDeclareOptions,
};
use lapin::types::{FieldTable, ShortString};
use lapin::{Channel, Connection, ConnectionProperties};
use tokio::sync::watch;

use crate::checkpoint::{BatchOutcome, Candidate, Disagreement, Poison, Projection, Stale};
use crate::envelope::{self, Message};
use crate::error::Error;
use crate::health::Health;
use crate::metrics::ProjectorMetrics;

/// The most events one transaction applies when it fills a gap or catches up from the
/// log; a larger gap takes several.
const MAX_TRANSACTION_EVENTS: usize = 5_000;

fn short(name: &str) -> Result<ShortString, Error> {
    ShortString::try_new(name).map_err(|e| Error::Config {
        what: "queue and consumer names",
        problem: e.to_string(),
    })
}

/// How the consumer behaves.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub amqp_url: platform::Secret,
    /// The queue the relay declares and binds.
    pub queue: String,
    pub prefetch: u16,
    pub batch_size: usize,
    /// The longest a batch waits for more deliveries after its first one.
    pub linger: Duration,
    /// How long the queue may stay quiet before the consumer looks at the log itself.
    pub idle: Duration,
}

pub(crate) struct Consumer {
    pub projection: Projection,
    pub settings: Settings,
    pub metrics: ProjectorMetrics,
    pub health: Health,
}

/// Whether to go on after settling a batch.
#[derive(Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

/// What the consumer remembers between quiet spells.
#[derive(Default)]
struct Idle {
    /// This consumer received a delivery: it is the active one, not a standby.
    active: bool,
    /// The checkpoint at the last quiet spell.
    last_checkpoint: Option<u64>,
}

impl Consumer {
    /// Consumes until `stop` turns true, reconnecting with backoff after broker errors.
    pub async fn run(&self, mut stop: watch::Receiver<bool>) -> Result<(), Error> {
        let mut backoff = Duration::from_millis(100);
        loop {
            if *stop.borrow() {
                return Ok(());
            }
            let result = self.session(&mut stop).await;
            // Connected long enough to consume: the backoff starts again from its least.
            let was_connected = self.health.consuming();
            self.health.set_broker(None);
            match result {
                Ok(()) => return Ok(()),
                Err(error) => {
                    if was_connected {
                        backoff = Duration::from_millis(100);
                    }
                    tracing::warn!(
                        error = %platform::error_chain(&error),
                        retry_in_ms = backoff.as_millis() as u64,
                        "consumer session ended; reconnecting"
                    );
                    if wait(&mut stop, backoff).await == Flow::Stop {
                        return Ok(());
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    async fn session(&self, stop: &mut watch::Receiver<bool>) -> Result<(), Error> {
        let properties = ConnectionProperties::default()
            .with_connection_name(format!("projector {}", self.projection.name).into());
        let connection = Connection::connect(self.settings.amqp_url.expose(), properties)
            .await
            .map_err(Error::broker("connecting to RabbitMQ"))?;
        let result = self.consume(&connection, stop).await;
        // Closing returns our unacknowledged deliveries to the queue at once.
        let _ = connection.close(200, "projector stopping".into()).await;
        result
    }

    async fn consume(
        &self,
        connection: &Connection,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), Error> {
        let channel = connection
            .create_channel()
            .await
            .map_err(Error::broker("opening a channel"))?;
        let queue = self.settings.queue.clone();
        // Fails (404) until the relay has declared it: the session is retried.
        channel
            .queue_declare(
                short(&queue)?,
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(Error::broker(
                "looking for the queue (the relay declares it when it connects)",
            ))?;
        channel
            .basic_qos(self.settings.prefetch, BasicQosOptions::default())
            .await
            .map_err(Error::broker("setting the prefetch"))?;
        let tag = format!(
            "projector-{}-{}",
            self.projection.name,
            uuid::Uuid::now_v7().simple()
        );
        let mut consumer = channel
            .basic_consume(
                short(&queue)?,
                short(&tag)?,
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(Error::broker("starting the consumer"))?;
        self.health.set_broker(Some(connection.status().clone()));
        tracing::info!(
            queue = %queue,
            consumer_tag = %tag,
            "consuming (a standby until the broker makes this consumer the active one)"
        );
        let cancelled = || Error::ConsumerCancelled {
            queue: queue.clone(),
        };
        let mut idle = Idle::default();
        loop {
            if *stop.borrow() {
                return Ok(());
            }
            let next = tokio::select! {
                _ = stop.changed() => return Ok(()),
                next = tokio::time::timeout(self.settings.idle, consumer.next()) => next,
            };
            let first = match next {
                Err(_quiet) => {
                    if self.on_idle(&mut idle, stop).await == Flow::Stop {
                        return Ok(());
                    }
                    continue;
                }
                Ok(None) => return Err(cancelled()),
                Ok(Some(Err(e))) => return Err(Error::broker("receiving deliveries")(e)),
                Ok(Some(Ok(delivery))) => delivery,
            };
            idle.active = true;
            let mut batch = vec![first];
            let closes = tokio::time::Instant::now() + self.settings.linger;
            while batch.len() < self.settings.batch_size {
                match tokio::time::timeout_at(closes, consumer.next()).await {
                    Err(_lingered) => break,
                    Ok(Some(Ok(delivery))) => batch.push(delivery),
                    Ok(Some(Err(e))) => return Err(Error::broker("receiving deliveries")(e)),
                    Ok(None) => return Err(cancelled()),
                }
            }
            if self.settle(&channel, batch, stop).await? == Flow::Stop {
                return Ok(());
            }
        }
    }

    /// Applies a batch of deliveries and acknowledges what the checkpoint now covers and
    /// what was dropped.
    #[tracing::instrument(skip_all, fields(deliveries = batch.len()))]
    async fn settle(
        &self,
        channel: &Channel,
        batch: Vec<Delivery>,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<Flow, Error> {
        let mut pending: Vec<(Delivery, Message)> = Vec::with_capacity(batch.len());
        for delivery in batch {
            self.metrics.deliveries.inc();
            if delivery.redelivered {
                self.metrics.redeliveries.inc();
            }
            if is_anchor(&delivery) {
                // A signed anchor (ADR 0017) shares the exchange but is not an event of
                // the log: nothing to apply, nothing to park.
                self.metrics.ignored.inc();
                channel
                    .basic_ack(delivery.delivery_tag, BasicAckOptions { multiple: false })
                    .await
                    .map_err(Error::broker("acknowledging an anchor"))?;
                continue;
            }
            let epoch = envelope::epoch(&delivery.properties);
            match envelope::parse(&delivery.data, epoch) {
                Ok(message) => pending.push((delivery, message)),
                Err(error) => {
                    // Not an event of the log: nothing to apply and nothing to wait for.
                    // Dead-lettered (parked in the dead-letter queue), not dropped.
                    self.metrics.unplaceable.inc();
                    tracing::error!(
                        error = %error,
                        delivery_tag = delivery.delivery_tag,
                        "unplaceable message dead-lettered"
                    );
                    channel
                        .basic_reject(delivery.delivery_tag, BasicRejectOptions { requeue: false })
                        .await
                        .map_err(Error::broker("dead-lettering a message"))?;
                }
            }
        }
        while !pending.is_empty() {
            let wanted = pending.iter().map(|(_, m)| m.position).max().unwrap_or(0);
            let candidates: Vec<Candidate> = pending
                .iter()
                .map(|(d, m)| Candidate {
                    tag: d.delivery_tag,
                    position: m.position,
                    claim: m.claim.clone(),
                    epoch: m.epoch,
                })
                .collect();
            let Some(outcome) = self.apply_through(&candidates, wanted, stop).await else {
                return Ok(Flow::Stop);
            };
            let dropped: HashSet<u64> = outcome
                .disagreeing
                .iter()
                .map(|d| d.tag)
                .chain(outcome.stale.iter().map(|s| s.tag))
                .collect();
            for disagreement in &outcome.disagreeing {
                if let Some((delivery, message)) = pending
                    .iter()
                    .find(|(d, _)| d.delivery_tag == disagreement.tag)
                {
                    log_disagreement(delivery, message, disagreement);
                }
            }
            log_stale(&outcome.stale);
            let (done, rest): (Vec<_>, Vec<_>) = pending.into_iter().partition(|(d, m)| {
                m.position <= outcome.checkpoint || dropped.contains(&d.delivery_tag)
            });
            // What this batch accepted: each applied position once (the first message
            // that brought it), then the duplicates.
            let mut applied: HashSet<u64> = HashSet::new();
            for (delivery, message) in &done {
                if dropped.contains(&delivery.delivery_tag) {
                    continue;
                }
                let new = message.position > outcome.before && applied.insert(message.position);
                log_accepted(delivery, message, new);
            }
            if let Some(last) = done.iter().map(|(d, _)| d.delivery_tag).max() {
                if rest.is_empty() {
                    channel
                        .basic_ack(last, BasicAckOptions { multiple: true })
                        .await
                        .map_err(Error::broker("acknowledging a batch"))?;
                } else {
                    for (d, _) in &done {
                        channel
                            .basic_ack(d.delivery_tag, BasicAckOptions { multiple: false })
                            .await
                            .map_err(Error::broker("acknowledging a delivery"))?;
                    }
                }
            }
            pending = rest;
            if pending.is_empty() {
                break;
            }
            match outcome.poison {
                Some(poison) => {
                    let correlation_id = pending
                        .iter()
                        .find(|(_, m)| m.position == poison.position)
                        .and_then(|(_, m)| m.correlation_id.clone());
                    if self.stop_at_poison(poison, correlation_id, stop).await == Flow::Stop {
                        return Ok(Flow::Stop);
                    }
                }
                None => {
                    // Messages ahead of the log's head: back to the queue after a pause.
                    // (The relay publishes committed events only, so this means the log
                    // and the queue belong to different databases, or a forgery.)
                    if wait(stop, self.settings.idle).await == Flow::Stop {
                        return Ok(Flow::Stop);
                    }
                    for (d, _) in &pending {
                        channel
                            .basic_nack(
                                d.delivery_tag,
                                BasicNackOptions {
                                    multiple: false,
                                    requeue: true,
                                },
                            )
                            .await
                            .map_err(Error::broker("returning a delivery"))?;
                    }
                    break;
                }
            }
        }
        Ok(Flow::Continue)
    }

    /// Applies until the checkpoint reaches `wanted`, a poison event stops it, or the
    /// log has nothing more; database errors are retried with backoff. `None`: told to
    /// stop.
    async fn apply_through(
        &self,
        candidates: &[Candidate],
        wanted: u64,
        stop: &mut watch::Receiver<bool>,
    ) -> Option<BatchOutcome> {
        let mut backoff = Duration::from_millis(50);
        // After a partial round (a gap wider than one transaction), only what is left.
        let mut applied_through = 0;
        // Messages dropped in earlier rounds: reported once, with the last.
        let mut disagreeing: Vec<Disagreement> = Vec::new();
        let mut stale: Vec<Stale> = Vec::new();
        // The checkpoint before the first round.
        let mut first_before = None;
        loop {
            let started = Instant::now();
            let remaining: Vec<Candidate> = candidates
                .iter()
                .filter(|c| c.position > applied_through)
                .filter(|c| !disagreeing.iter().any(|d| d.tag == c.tag))
                .filter(|c| !stale.iter().any(|s| s.tag == c.tag))
                .cloned()
                .collect();
            match self
                .projection
                .apply_batch(remaining, wanted, MAX_TRANSACTION_EVENTS)
                .await
            {
                Ok(mut outcome) => {
                    self.metrics
                        .record_batch(&outcome, started.elapsed().as_secs_f64());
                    tracing::debug!(
                        checkpoint = outcome.checkpoint,
                        applied = outcome.applied,
                        duplicates = outcome.duplicates,
                        gap_filled = outcome.gap_filled,
                        disagreeing = outcome.disagreeing.len(),
                        stale = outcome.stale.len(),
                        epoch = outcome.epoch,
                        "batch applied"
                    );
                    disagreeing.append(&mut outcome.disagreeing);
                    stale.append(&mut outcome.stale);
                    let before = *first_before.get_or_insert(outcome.before);
                    let stuck = outcome.checkpoint == outcome.before;
                    if outcome.poison.is_some() || outcome.checkpoint >= wanted || stuck {
                        outcome.disagreeing = disagreeing;
                        outcome.stale = stale;
                        outcome.before = before;
                        return Some(outcome);
                    }
                    applied_through = outcome.checkpoint;
                    backoff = Duration::from_millis(50);
                }
                Err(error) => {
                    tracing::warn!(
                        error = %platform::error_chain(&error),
                        retry_in_ms = backoff.as_millis() as u64,
                        "applying a batch failed; retrying"
                    );
                    if wait(stop, backoff).await == Flow::Stop {
                        return None;
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Holds the projection in front of a poison event until it is parked (or someone
    /// else applied past it).
    async fn stop_at_poison(
        &self,
        poison: Poison,
        correlation_id: Option<String>,
        stop: &mut watch::Receiver<bool>,
    ) -> Flow {
        let position = poison.position;
        tracing::error!(
            projection = %self.projection.name,
            position,
            event_type = %poison.event_type,
            reason = %poison.reason,
            correlation_id = correlation_id.as_deref().unwrap_or(""),
            "POISON EVENT: the projection stopped in front of it and acknowledges nothing \
             from here on; `projector park --position {position}` skips it"
        );
        self.health.set_poison(Some(poison), &self.metrics);
        loop {
            if wait(stop, Duration::from_secs(1)).await == Flow::Stop {
                return Flow::Stop;
            }
            let parked = self.projection.is_parked(position).await;
            let checkpoint = self.projection.checkpoint().await;
            match (parked, checkpoint) {
                (Ok(true), _) => {
                    tracing::warn!(position, "the poison event was parked; going on without it");
                    break;
                }
                (_, Ok(c)) if c >= position => {
                    tracing::warn!(position, "the projection moved past the poison event");
                    break;
                }
                (Err(error), _) | (_, Err(error)) => {
                    tracing::warn!(error = %platform::error_chain(&error), "checking for a parked position failed");
                }
                _ => {}
            }
        }
        self.health.set_poison(None, &self.metrics);
        Flow::Continue
    }

    /// A quiet queue while the log is ahead (the relay down or behind, a rebuild's swap
    /// left the tables a little behind): the active consumer catches up from the log.
    /// Waits one quiet spell first, so events the relay is about to publish arrive as
    /// messages rather than being read twice.
    async fn on_idle(&self, idle: &mut Idle, stop: &mut watch::Receiver<bool>) -> Flow {
        if !idle.active || self.health.poison().is_some() {
            return Flow::Continue;
        }
        let (checkpoint, head) = match (
            self.projection.checkpoint().await,
            self.projection.store.head().await,
        ) {
            (Ok(c), Ok(h)) => (c, h.map_or(0, |(position, _)| position)),
            (Err(error), _) => {
                tracing::warn!(error = %platform::error_chain(&error), "reading the checkpoint failed");
                return Flow::Continue;
            }
            (_, Err(error)) => {
                tracing::warn!(error = %platform::error_chain(&error), "reading the log's head failed");
                return Flow::Continue;
            }
        };
        if head > checkpoint && idle.last_checkpoint == Some(checkpoint) {
            tracing::info!(
                checkpoint,
                head,
                "the queue is quiet but the log is ahead; catching up from the log"
            );
            loop {
                let Some(outcome) = self.apply_through(&[], head, stop).await else {
                    return Flow::Stop;
                };
                match outcome.poison {
                    Some(poison) => {
                        if self.stop_at_poison(poison, None, stop).await == Flow::Stop {
                            return Flow::Stop;
                        }
                    }
                    None => break,
                }
            }
        }
        idle.last_checkpoint = self.projection.checkpoint().await.ok();
        Flow::Continue
    }
}

/// A `ledger.anchor.signed` message, by its routing key or AMQP type.
fn is_anchor(delivery: &Delivery) -> bool {
    delivery.routing_key.as_str() == hash_chain::ANCHOR_EVENT_TYPE
        || delivery
            .properties
            .kind()
            .as_ref()
            .is_some_and(|kind| kind.as_str() == hash_chain::ANCHOR_EVENT_TYPE)
}

/// Sleeps for `period` unless told to stop first.
async fn wait(stop: &mut watch::Receiver<bool>, period: Duration) -> Flow {
    if *stop.borrow() {
        return Flow::Stop;
    }
    tokio::select! {
        _ = stop.changed() => Flow::Stop,
        () = tokio::time::sleep(period) => Flow::Continue,
    }
}

/// One line per message accepted: `event projected` for the one that brought a position
/// the batch applied, `duplicate skipped` for the others, under a span with the
/// command's correlation and trace ids, so that a command can be followed from its HTTP
/// request to here (an exported span continues the command's trace and links to the
/// batch's span: `platform::continue_trace`). At debug level: a projector applying tens of thousands of events a
/// second logs them only when asked (`RUST_LOG=projector=debug`); the spans are cheap
/// when off.
fn log_accepted(delivery: &Delivery, message: &Message, new: bool) {
    let span = tracing::debug_span!(
        "apply",
        correlation_id = message.correlation_id.as_deref().unwrap_or(""),
        trace_id = tracing::field::Empty,
    );
    if span.is_disabled() {
        return;
    }
    if let Some(caller) = envelope::traceparent(&delivery.properties) {
        platform::continue_trace(&span, &caller);
    }
    let event_type = message.claim.as_ref().map_or("", |c| c.event_type.as_str());
    let epoch = message.epoch.unwrap_or(0);
    span.in_scope(|| {
        if new {
            tracing::debug!(
                position = message.position,
                epoch,
                event_type,
                redelivered = delivery.redelivered,
                "event projected"
            );
        } else {
            tracing::debug!(
                position = message.position,
                epoch,
                event_type,
                redelivered = delivery.redelivered,
                "duplicate skipped"
            );
        }
    });
}

/// One warning per batch that dropped messages of an earlier relay term: a deposed
/// leader that went on publishing until it noticed, or stragglers of its last term. A
/// few after a failover are expected; a steady stream means two relays each believe
/// they lead (ADR 0013).
fn log_stale(stale: &[Stale]) {
    let (Some(first), Some(last)) = (stale.first(), stale.last()) else {
        return;
    };
    let oldest = stale.iter().map(|s| s.epoch).min().unwrap_or(first.epoch);
    tracing::warn!(
        dropped = stale.len(),
        first_position = first.position,
        last_position = last.position,
        epoch = oldest,
        seen = last.seen,
        "STALE RELAY EPOCH: messages of an earlier leadership term dropped; the current \
         term's relay sends these positions again"
    );
}

/// One warning per message dropped for disagreeing with the log: a forgery, a message
/// from another log's relay, or a bug worth finding. The values compared are ids,
/// versions and times, never `data` (only whether it differs).
fn log_disagreement(delivery: &Delivery, message: &Message, disagreement: &Disagreement) {
    let (field, claimed, logged) = match &disagreement.mismatch {
        Some(m) => (m.field, m.claimed.as_str(), m.logged.as_str()),
        None => (
            "envelope",
            "no checkable event (id, type, subject, time, data, versions)",
            "",
        ),
    };
    tracing::warn!(
        position = disagreement.position,
        field,
        claimed,
        logged,
        message_id = delivery
            .properties
            .message_id()
            .as_ref()
            .map_or("", |id| id.as_str()),
        routing_key = delivery.routing_key.as_str(),
        redelivered = delivery.redelivered,
        correlation_id = message.correlation_id.as_deref().unwrap_or(""),
        "MESSAGE DISAGREES WITH THE LOG: dropped; the log's event at its position is what \
         gets applied"
    );
}
