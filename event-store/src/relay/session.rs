//! One publishing session: a broker connection, a reader of the log from the checkpoint,
//! and a window of outstanding publisher confirms. It ends on shutdown, on the first
//! failure (the leader starts a new session after a backoff) or when the lock is lost.
//!
//! Ordering: events are published in position order on one channel, and the checkpoint
//! only moves past an event once its confirm and every earlier one arrived as a plain
//! ack. A nack or a return ends the session; the next one resends from after the
//! checkpoint, never skipping the refused event.

use std::collections::VecDeque;
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::ShortString;
use lapin::{Channel, Confirmation, Connection, ConnectionProperties, PublisherConfirm};
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{interval, timeout, MissedTickBehavior};

use crate::event::RecordedEvent;
use crate::relay::envelope::Outgoing;
use crate::relay::error::RelayError;
use crate::relay::leader::LockConnection;
use crate::relay::observer::Refusal;
use crate::relay::{Relay, Stop};
use crate::store::EventStore;

/// How a session ended.
pub(crate) enum SessionEnd {
    /// Shutdown: outstanding confirms were awaited briefly and the checkpoint stored.
    Stopped,
    /// The lock connection failed or no longer holds the lock: stop publishing now.
    LockLost(RelayError),
    /// The broker, the reader or an envelope failed; the checkpoint is stored. Whether
    /// any event was confirmed in this session (a reason to reset the backoff).
    Failed { error: RelayError, progressed: bool },
}

/// What stopped the publishing loop.
enum Exit {
    Stopped,
    LockLost(RelayError),
    Failed(RelayError),
}

/// One step of the publishing loop, chosen by `select!` and handled after it, so the
/// handlers may borrow the session freely.
// Lives on the stack for one loop turn: boxing the large variants would only allocate.
#[allow(clippy::large_enum_variant)]
enum Step {
    Stop,
    Settled(lapin::Result<Confirmation>),
    Flush,
    Check,
    Event(Option<Result<RecordedEvent, RelayError>>),
}

/// An event published and not yet confirmed.
struct InFlight {
    position: u64,
    recorded_at: OffsetDateTime,
    routing_key: ShortString,
    confirm: PublisherConfirm,
}

pub(crate) struct Session<'a> {
    relay: &'a Relay,
    lock: &'a mut LockConnection,
    /// The leadership term's epoch, on every message.
    epoch: u64,
    /// Every event up to here is confirmed by the broker.
    confirmed: u64,
    /// What `relay_checkpoints` holds.
    stored: u64,
    progressed: bool,
    last_confirmed_at: Option<OffsetDateTime>,
    pending: VecDeque<InFlight>,
}

impl<'a> Session<'a> {
    /// A session of the term `epoch`, resuming after `checkpoint`, which is stored.
    pub(crate) fn new(
        relay: &'a Relay,
        lock: &'a mut LockConnection,
        epoch: u64,
        checkpoint: u64,
    ) -> Self {
        Self {
            relay,
            lock,
            epoch,
            confirmed: checkpoint,
            stored: checkpoint,
            progressed: false,
            last_confirmed_at: None,
            pending: VecDeque::new(),
        }
    }

    /// The last position confirmed (and stored, unless the lock was lost).
    pub(crate) fn confirmed(&self) -> u64 {
        self.confirmed
    }

    #[tracing::instrument(skip_all, fields(relay = %self.relay.config.name, epoch = self.epoch, after = self.confirmed))]
    pub(crate) async fn run(&mut self, stop: &mut Stop) -> SessionEnd {
        // Never publish without knowing the lock is still ours.
        match self.lock.holds_lock().await {
            Ok(true) => {}
            Ok(false) => return SessionEnd::LockLost(self.lock_lost()),
            Err(error) => return SessionEnd::LockLost(error),
        }
        let connected = tokio::select! {
            biased;
            () = stop.wait() => return SessionEnd::Stopped,
            connected = self.connect() => connected,
        };
        let (connection, channel) = match connected {
            Ok(pair) => pair,
            Err(error) => {
                return SessionEnd::Failed {
                    error,
                    progressed: false,
                }
            }
        };
        self.relay.observer.broker_connected(true);
        tracing::info!("connected to the broker, publishing");
        let exit = self.publish(&connection, &channel, stop).await;
        let end = self.wind_down(exit).await;
        self.relay.observer.broker_connected(false);
        let _ = timeout(
            Duration::from_secs(2),
            connection.close(200, "relay session ended".into()),
        )
        .await;
        end
    }

    async fn connect(&self) -> Result<(Connection, Channel), RelayError> {
        let config = &self.relay.config;
        let work = async {
            let properties = ConnectionProperties::default()
                .with_connection_name(format!("relay {}", config.name).into());
            let connection = Connection::connect(&config.amqp_url, properties)
                .await
                .map_err(RelayError::broker("connecting"))?;
            let channel = connection
                .create_channel()
                .await
                .map_err(RelayError::broker("opening a channel"))?;
            config.topology.declare(&channel).await?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await
                .map_err(RelayError::broker("enabling publisher confirms"))?;
            Ok((connection, channel))
        };
        timeout(config.broker_timeout, work)
            .await
            .map_err(|_| RelayError::BrokerTimeout {
                doing: "connecting and declaring the topology",
                seconds: config.broker_timeout.as_secs(),
            })?
    }

    async fn publish(
        &mut self,
        connection: &Connection,
        channel: &Channel,
        stop: &mut Stop,
    ) -> Exit {
        let config = &self.relay.config;
        let exchange = match ShortString::try_new(config.topology.exchange.as_str()) {
            Ok(name) => name,
            Err(e) => {
                return Exit::Failed(RelayError::Config {
                    field: "topology.exchange",
                    problem: e.to_string(),
                })
            }
        };
        let (tx, mut events) = mpsc::channel(config.window.clamp(1, 1024));
        let _reader = AbortOnDrop(tokio::spawn(read_log(
            self.relay.store.clone(),
            self.confirmed,
            tx,
        )));
        let mut flush = interval(config.checkpoint_interval);
        flush.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut check = interval(config.check_interval);
        check.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            let room = self.pending.len() < config.window;
            let step = tokio::select! {
                biased;
                () = stop.wait() => Step::Stop,
                settled = next_confirm(&mut self.pending) => Step::Settled(settled),
                _ = flush.tick() => Step::Flush,
                _ = check.tick() => Step::Check,
                event = events.recv(), if room => Step::Event(event),
            };
            match step {
                Step::Stop => return Exit::Stopped,
                Step::Settled(result) => {
                    if let Err(error) = self.settle(result) {
                        return Exit::Failed(error);
                    }
                }
                Step::Flush => {
                    if let Err(error) = self.store().await {
                        return Exit::LockLost(error);
                    }
                }
                Step::Check => {
                    match self.lock.holds_lock().await {
                        Ok(true) => {}
                        Ok(false) => return Exit::LockLost(self.lock_lost()),
                        Err(error) => return Exit::LockLost(error),
                    }
                    if !connection.status().connected() {
                        return Exit::Failed(RelayError::BrokerDisconnected);
                    }
                    self.measure_lag().await;
                }
                Step::Event(None) => return Exit::Failed(RelayError::ReaderStopped),
                Step::Event(Some(Err(error))) => return Exit::Failed(error),
                Step::Event(Some(Ok(event))) => {
                    if let Err(error) = self.send(channel, &exchange, &event).await {
                        return Exit::Failed(error);
                    }
                }
            }
        }
    }

    /// Publishes one event (mandatory, so an unroutable one comes back as a return).
    async fn send(
        &mut self,
        channel: &Channel,
        exchange: &ShortString,
        event: &RecordedEvent,
    ) -> Result<(), RelayError> {
        let config = &self.relay.config;
        let expected = self.confirmed + self.pending.len() as u64 + 1;
        if event.position != expected {
            return Err(RelayError::Sequence {
                expected,
                got: event.position,
            });
        }
        let out = Outgoing::new(event, &config.source, self.epoch)?;
        let publish = channel.basic_publish(
            exchange.clone(),
            out.routing_key.clone(),
            BasicPublishOptions {
                mandatory: true,
                immediate: false,
            },
            &out.body,
            out.properties,
        );
        let confirm = timeout(config.broker_timeout, publish)
            .await
            .map_err(|_| RelayError::BrokerTimeout {
                doing: "publishing",
                seconds: config.broker_timeout.as_secs(),
            })?
            .map_err(RelayError::broker("publishing"))?;
        self.pending.push_back(InFlight {
            position: out.position,
            recorded_at: out.recorded_at,
            routing_key: out.routing_key,
            confirm,
        });
        self.relay.observer.published(out.position);
        Ok(())
    }

    /// Applies the confirm of the oldest event in flight: a plain ack moves `confirmed`;
    /// anything else fails the session.
    fn settle(&mut self, result: lapin::Result<Confirmation>) -> Result<(), RelayError> {
        let Some(flight) = self.pending.pop_front() else {
            return Ok(());
        };
        let position = flight.position;
        match result {
            Ok(Confirmation::Ack(None)) => {
                self.confirmed = position;
                self.last_confirmed_at = Some(flight.recorded_at);
                self.progressed = true;
                self.relay.observer.confirmed(1);
                Ok(())
            }
            Ok(Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned))) => {
                self.relay.observer.refused(Refusal::Return);
                Err(RelayError::Returned {
                    position,
                    routing_key: flight.routing_key.to_string(),
                    reply_code: returned.reply_code,
                    reply_text: returned.reply_text.to_string(),
                })
            }
            Ok(Confirmation::Nack(None)) => {
                self.relay.observer.refused(Refusal::Nack);
                Err(RelayError::Nacked { position })
            }
            Ok(Confirmation::NotRequested) => Err(RelayError::Unconfirmed { position }),
            Err(source) => Err(RelayError::Broker {
                doing: "waiting for a publisher confirm",
                source,
            }),
        }
    }

    /// Writes the checkpoint if it moved.
    async fn store(&mut self) -> Result<(), RelayError> {
        if self.confirmed <= self.stored {
            return Ok(());
        }
        self.lock
            .store_checkpoint(&self.relay.config.name, self.confirmed)
            .await?;
        self.stored = self.confirmed;
        self.relay.observer.checkpoint(self.confirmed);
        tracing::debug!(position = self.confirmed, "checkpoint advanced");
        Ok(())
    }

    async fn wind_down(&mut self, exit: Exit) -> SessionEnd {
        match exit {
            Exit::LockLost(error) => {
                self.abandon_in_flight();
                SessionEnd::LockLost(error)
            }
            Exit::Stopped => {
                // Confirms already on their way save a resend after the restart.
                let deadline = tokio::time::Instant::now() + self.relay.config.broker_timeout;
                while !self.pending.is_empty() {
                    let Ok(result) =
                        tokio::time::timeout_at(deadline, next_confirm(&mut self.pending)).await
                    else {
                        break;
                    };
                    if self.settle(result).is_err() {
                        break;
                    }
                }
                self.abandon_in_flight();
                if let Err(error) = self.store().await {
                    tracing::warn!(error = %error, "could not store the checkpoint on shutdown");
                }
                SessionEnd::Stopped
            }
            Exit::Failed(error) => {
                self.abandon_in_flight();
                match self.store().await {
                    Ok(()) => SessionEnd::Failed {
                        error,
                        progressed: self.progressed,
                    },
                    Err(lost) => SessionEnd::LockLost(lost),
                }
            }
        }
    }

    /// Forgets the unconfirmed events: the next session sends them again.
    fn abandon_in_flight(&mut self) {
        if !self.pending.is_empty() {
            self.relay.observer.republishing(self.pending.len() as u64);
            self.pending.clear();
        }
    }

    async fn measure_lag(&mut self) {
        match self.relay.store.head().await {
            Ok(head) => {
                let head = head.map_or(0, |(position, _)| position);
                let positions = head.saturating_sub(self.confirmed);
                let seconds = if positions == 0 {
                    0.0
                } else {
                    self.pending
                        .front()
                        .map(|f| f.recorded_at)
                        .or(self.last_confirmed_at)
                        .map_or(0.0, |at| {
                            (OffsetDateTime::now_utc() - at).as_seconds_f64().max(0.0)
                        })
                };
                self.relay.observer.lag(positions, seconds);
            }
            Err(error) => tracing::debug!(error = %error, "cannot read the head to measure lag"),
        }
    }

    fn lock_lost(&self) -> RelayError {
        RelayError::LockLost {
            name: self.relay.config.name.clone(),
        }
    }
}

/// The confirm of the oldest event in flight; never completes while none is. Cancel-safe:
/// the confirm future is polled in place and the caller pops the entry.
async fn next_confirm(pending: &mut VecDeque<InFlight>) -> lapin::Result<Confirmation> {
    match pending.front_mut() {
        Some(flight) => (&mut flight.confirm).await,
        None => std::future::pending().await,
    }
}

/// Feeds the session the log after `after`, in order, until the session drops the
/// receiver (or aborts this task).
async fn read_log(
    store: EventStore,
    after: u64,
    tx: mpsc::Sender<Result<RecordedEvent, RelayError>>,
) {
    let mut tail = store.tail(after);
    loop {
        let item = tail.next().await.map_err(|source| RelayError::Read {
            after: tail.position(),
            source,
        });
        let failed = item.is_err();
        if tx.send(item).await.is_err() || failed {
            return;
        }
    }
}

/// Aborts the task when the session ends, however it ends.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
