//! The exchanges and queues of the wire, declared idempotently by the relay on every
//! connect (RabbitMQ refuses a second declaration of a queue whose arguments differ, so
//! whoever else declares them must use [`Topology::declare`] too), and the broker rights
//! of the two accounts that use them ([`Permissions`]): the relay may declare and
//! publish, the projector may only consume its queue.

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
/// The names a downstream subscriber's queues must start with: its broker account may
/// declare, bind and consume those, and nothing else ([`Topology::subscriber_permissions`]).
pub const SUBSCRIBER_QUEUE_PREFIX: &str = "subscriber.";

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

/// An account's rights on one RabbitMQ vhost: regular expressions over the names of the
/// exchanges and queues it may configure (declare, delete), write (publish to an
/// exchange, bind a queue) and read (consume from a queue, bind from an exchange), as
/// `rabbitmqctl set_permissions -p <vhost> <user> <configure> <write> <read>` takes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permissions {
    pub configure: String,
    pub write: String,
    pub read: String,
}

/// `name` as a regular expression that matches it literally.
fn escaped(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}

/// A regular expression that matches exactly one of `names` (RabbitMQ's are PCRE; every
/// character that is not a letter or a digit is escaped).
fn exactly(names: &[&str]) -> String {
    if names.is_empty() {
        // Matches no name: a permission that grants nothing.
        return "^$".into();
    }
    let alternatives: Vec<String> = names.iter().map(|name| escaped(name)).collect();
    format!("^({})$", alternatives.join("|"))
}

impl Topology {
    /// What the relay's broker account needs, and nothing more: declare the topology
    /// (configure on every name; write on the queues to bind them, read on the exchanges
    /// they are bound to; a queue with a dead-letter exchange also needs write on that
    /// exchange and read on the queue itself), and publish to the events exchange. It
    /// cannot consume the dead-letter queue; it could consume the projector's queue,
    /// which RabbitMQ requires for declaring its dead-lettering, and never does.
    pub fn relay_permissions(&self) -> Permissions {
        let exchange = self.exchange.as_str();
        match &self.queue {
            None => Permissions {
                configure: exactly(&[exchange]),
                write: exactly(&[exchange]),
                read: exactly(&[]),
            },
            Some(q) => {
                let all = [
                    exchange,
                    q.dead_letter_exchange.as_str(),
                    q.name.as_str(),
                    q.dead_letter_queue.as_str(),
                ];
                Permissions {
                    configure: exactly(&all),
                    write: exactly(&all),
                    read: exactly(&[exchange, q.dead_letter_exchange.as_str(), q.name.as_str()]),
                }
            }
        }
    }

    /// What the projector's broker account needs, and nothing more: consume its queue.
    /// It declares nothing (the relay does) and publishes nowhere, so a message on the
    /// exchange can never come from it.
    pub fn consumer_permissions(&self) -> Permissions {
        let queue: Vec<&str> = self.queue.iter().map(|q| q.name.as_str()).collect();
        Permissions {
            configure: exactly(&[]),
            write: exactly(&[]),
            read: exactly(&queue),
        }
    }

    /// What a downstream subscriber's broker account needs: declare, bind and consume
    /// queues of its own, named `<SUBSCRIBER_QUEUE_PREFIX><anything>`, bound to the events
    /// exchange. It reads the exchange (binding needs it) but may write to no exchange, so
    /// nothing it sends can reach another consumer, and it cannot touch the projector's
    /// queue.
    pub fn subscriber_permissions(&self) -> Permissions {
        let own = escaped(SUBSCRIBER_QUEUE_PREFIX);
        Permissions {
            configure: format!("^{own}.*$"),
            write: format!("^{own}.*$"),
            read: format!("^({own}.*|{})$", escaped(&self.exchange)),
        }
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_name_exactly_the_topologys_names() {
        let relay = Topology::default().relay_permissions();
        assert_eq!(
            relay.configure,
            "^(example\\.events|example\\.events\\.dlx|queue\\.example\\.events|queue\\.example\\.events\\.dead)$"
        );
        assert_eq!(relay.write, relay.configure);
        assert_eq!(
            relay.read,
            "^(example\\.events|example\\.events\\.dlx|queue\\.example\\.events)$"
        );
        let projector = Topology::default().consumer_permissions();
        assert_eq!(projector.configure, "^$");
        assert_eq!(projector.write, "^$");
        assert_eq!(projector.read, "^(queue\\.example\\.events)$");
    }
}
