//! The exchanges and queues of the wire, declared idempotently by the relay on every
//! connect (and by the projector, with the same arguments: RabbitMQ refuses a second
//! declaration of a queue whose arguments differ).

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, ExchangeKind};

use crate::relay::error::RelayError;

pub const DEFAULT_EXCHANGE: &str = "example.events";
pub const DEFAULT_QUEUE: &str = "queue.example.events";
pub const DEFAULT_DEAD_LETTER_EXCHANGE: &str = "example.events.dlx";
pub const DEFAULT_DEAD_LETTER_QUEUE: &str = "queue.example.events.dead";
/// Deliveries of one message before the quorum queue parks it in the dead-letter queue.
pub const DEFAULT_DELIVERY_LIMIT: u32 = 20;

/// Where events go: the topic exchange, and optionally the projector's queue with its
/// dead-letter parking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// The durable topic exchange every event is published to (routing key = type).
    pub exchange: String,
    /// The projector's queue, bound with `#`; `None` declares only the exchange.
    pub queue: Option<QueueTopology>,
}

/// A durable quorum queue bound to the exchange with `#`, with a single active consumer,
/// a delivery limit and a dead-letter exchange (fanout) feeding a durable parking queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueTopology {
    pub name: String,
    pub dead_letter_exchange: String,
    pub dead_letter_queue: String,
    pub delivery_limit: u32,
}

impl Default for Topology {
    fn default() -> Self {
        Self {
            exchange: DEFAULT_EXCHANGE.into(),
            queue: Some(QueueTopology::default()),
        }
    }
}

impl Default for QueueTopology {
    fn default() -> Self {
        Self {
            name: DEFAULT_QUEUE.into(),
            dead_letter_exchange: DEFAULT_DEAD_LETTER_EXCHANGE.into(),
            dead_letter_queue: DEFAULT_DEAD_LETTER_QUEUE.into(),
            delivery_limit: DEFAULT_DELIVERY_LIMIT,
        }
    }
}

impl Topology {
    /// Every name with `suffix` appended (tests give each run its own names).
    pub fn with_suffix(suffix: &str) -> Self {
        let d = Self::default();
        Self {
            exchange: format!("{}{suffix}", d.exchange),
            queue: d.queue.map(|q| QueueTopology {
                name: format!("{}{suffix}", q.name),
                dead_letter_exchange: format!("{}{suffix}", q.dead_letter_exchange),
                dead_letter_queue: format!("{}{suffix}", q.dead_letter_queue),
                delivery_limit: q.delivery_limit,
            }),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), RelayError> {
        let mut names = vec![("topology.exchange", &self.exchange)];
        if let Some(q) = &self.queue {
            names.extend([
                ("topology.queue.name", &q.name),
                (
                    "topology.queue.dead_letter_exchange",
                    &q.dead_letter_exchange,
                ),
                ("topology.queue.dead_letter_queue", &q.dead_letter_queue),
            ]);
        }
        for (field, name) in names {
            // Empty names mean the default exchange or a server-named queue: never ours.
            if name.is_empty() || ShortString::try_new(name.as_str()).is_err() {
                return Err(RelayError::Config {
                    field,
                    problem: "must be 1 to 255 bytes".into(),
                });
            }
        }
        Ok(())
    }

    /// Declares the exchange and, if configured, the queue, its binding and its
    /// dead-letter parking. Idempotent while the arguments stay the same.
    pub async fn declare(&self, channel: &Channel) -> Result<(), RelayError> {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        channel
            .exchange_declare(
                name(&self.exchange)?,
                ExchangeKind::Topic,
                durable,
                FieldTable::default(),
            )
            .await
            .map_err(RelayError::broker("declaring the events exchange"))?;
        let Some(q) = &self.queue else {
            return Ok(());
        };
        let durable_queue = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        channel
            .exchange_declare(
                name(&q.dead_letter_exchange)?,
                ExchangeKind::Fanout,
                durable,
                FieldTable::default(),
            )
            .await
            .map_err(RelayError::broker("declaring the dead-letter exchange"))?;
        channel
            .queue_declare(
                name(&q.dead_letter_queue)?,
                durable_queue,
                quorum(FieldTable::default()),
            )
            .await
            .map_err(RelayError::broker("declaring the dead-letter queue"))?;
        channel
            .queue_bind(
                name(&q.dead_letter_queue)?,
                name(&q.dead_letter_exchange)?,
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(RelayError::broker("binding the dead-letter queue"))?;
        channel
            .queue_declare(name(&q.name)?, durable_queue, q.arguments())
            .await
            .map_err(RelayError::broker("declaring the events queue"))?;
        channel
            .queue_bind(
                name(&q.name)?,
                name(&self.exchange)?,
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(RelayError::broker("binding the events queue"))?;
        Ok(())
    }
}

impl QueueTopology {
    /// The queue's declaration arguments. A consumer that declares the queue itself
    /// must pass exactly these.
    pub fn arguments(&self) -> FieldTable {
        let mut args = quorum(FieldTable::default());
        args.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongLongInt(i64::from(self.delivery_limit)),
        );
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(LongString::from(self.dead_letter_exchange.as_str())),
        );
        // The projector applies events in order: one consumer at a time, the others wait.
        args.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
        args
    }
}

fn quorum(mut args: FieldTable) -> FieldTable {
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString(LongString::from("quorum")),
    );
    args
}

fn name(s: &str) -> Result<ShortString, RelayError> {
    ShortString::try_new(s).map_err(|e| RelayError::Config {
        field: "topology",
        problem: e.to_string(),
    })
}
