//! Anchors on the wire: a `ledger.anchor.signed` CloudEvent (`schemas/anchor.cloudevents.json`)
//! per anchor on the events exchange, published with confirms, one at a time (anchors are
//! one per thousand events: throughput is not the point, never losing one is).

use std::time::Duration;

use hash_chain::{SignedAnchor, ANCHOR_EVENT_TYPE};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::ShortString;
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::time::timeout;
use uuid::Uuid;

use crate::anchor::table::StoredAnchor;
use crate::anchor::SignerError;
use crate::relay::{Topology, CLOUDEVENTS_CONTENT_TYPE};

/// AMQP `delivery_mode` 2: the broker writes the message to disk.
const PERSISTENT: u8 = 2;

/// The CloudEvent of one anchor. It is not an event of the log: no `position`, no
/// `subject`; its `data` is the anchors list item of API.md.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnchorCloudEvent {
    /// Always `"1.0"`.
    pub specversion: String,
    /// The anchor's message id, the same on every resend (AMQP `message_id` too).
    pub id: Uuid,
    pub source: String,
    /// Always `ledger.anchor.signed`, also the routing key.
    #[serde(rename = "type")]
    pub event_type: String,
    /// When the anchor was signed.
    #[serde(with = "hash_chain::wire_time")]
    pub time: OffsetDateTime,
    /// Always `"application/json"`.
    pub datacontenttype: String,
    pub data: SignedAnchor,
}

impl AnchorCloudEvent {
    pub(crate) fn new(anchor: &StoredAnchor, source: &str) -> Self {
        Self {
            specversion: "1.0".into(),
            id: anchor.event_id,
            source: source.to_owned(),
            event_type: ANCHOR_EVENT_TYPE.into(),
            time: anchor.signed_at,
            datacontenttype: "application/json".into(),
            data: anchor.signed.clone(),
        }
    }
}

/// Where anchors are published.
#[derive(Debug, Clone)]
pub struct AnchorBroker {
    /// `amqp://user:password@host:port/vhost`.
    pub amqp_url: String,
    /// The CloudEvents `source`.
    pub source: String,
    /// The exchange (and the projector's queue, declared as the relay declares it).
    pub topology: Topology,
    /// The longest the broker may take to connect, declare or confirm.
    pub timeout: Duration,
}

/// One broker connection with confirms on.
pub(crate) struct Publisher {
    connection: Connection,
    channel: Channel,
    exchange: ShortString,
}

impl Publisher {
    pub(crate) async fn connect(broker: &AnchorBroker, name: &str) -> Result<Self, SignerError> {
        let seconds = broker.timeout.as_secs();
        let work = async {
            let properties = ConnectionProperties::default()
                .with_connection_name(format!("anchor signer {name}").into());
            let connection = Connection::connect(&broker.amqp_url, properties)
                .await
                .map_err(SignerError::broker("connecting"))?;
            let channel = connection
                .create_channel()
                .await
                .map_err(SignerError::broker("opening a channel"))?;
            broker.topology.declare(&channel).await?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await
                .map_err(SignerError::broker("enabling publisher confirms"))?;
            let exchange =
                ShortString::try_new(broker.topology.exchange.as_str()).map_err(|e| {
                    SignerError::Config {
                        field: "broker.topology.exchange",
                        problem: e.to_string(),
                    }
                })?;
            Ok(Self {
                connection,
                channel,
                exchange,
            })
        };
        timeout(broker.timeout, work)
            .await
            .map_err(|_| SignerError::BrokerTimeout {
                doing: "connecting and declaring the topology",
                seconds,
            })?
    }

    pub(crate) fn connected(&self) -> bool {
        self.connection.status().connected()
    }

    /// Publishes one anchor (mandatory, persistent) and waits for its confirm.
    pub(crate) async fn publish(
        &self,
        anchor: &StoredAnchor,
        broker: &AnchorBroker,
    ) -> Result<(), SignerError> {
        let position = anchor.signed.position;
        let event = AnchorCloudEvent::new(anchor, &broker.source);
        let body = serde_json::to_vec(&event).map_err(|e| SignerError::Refused {
            position,
            why: format!("serialising the anchor failed ({e})"),
        })?;
        let properties = BasicProperties::default()
            .with_content_type(CLOUDEVENTS_CONTENT_TYPE.into())
            .with_delivery_mode(PERSISTENT)
            .with_message_id(anchor.event_id.hyphenated().to_string().into())
            .with_type(ANCHOR_EVENT_TYPE.into())
            .with_timestamp(u64::try_from(anchor.signed_at.unix_timestamp()).unwrap_or(0));
        let seconds = broker.timeout.as_secs();
        let confirmed = async {
            let confirm = self
                .channel
                .basic_publish(
                    self.exchange.clone(),
                    ANCHOR_EVENT_TYPE.into(),
                    BasicPublishOptions {
                        mandatory: true,
                        immediate: false,
                    },
                    &body,
                    properties,
                )
                .await
                .map_err(SignerError::broker("publishing an anchor"))?;
            confirm
                .await
                .map_err(SignerError::broker("waiting for an anchor's confirm"))
        };
        let confirmation = timeout(broker.timeout, confirmed).await.map_err(|_| {
            SignerError::BrokerTimeout {
                doing: "publishing an anchor",
                seconds,
            }
        })??;
        match confirmation {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)) => {
                Err(SignerError::Refused {
                    position,
                    why: format!(
                        "returned {} {}: no queue is bound for {ANCHOR_EVENT_TYPE}",
                        returned.reply_code, returned.reply_text
                    ),
                })
            }
            Confirmation::Nack(None) => Err(SignerError::Refused {
                position,
                why: "nacked".into(),
            }),
            Confirmation::NotRequested => Err(SignerError::Refused {
                position,
                why: "confirms are off".into(),
            }),
        }
    }

    pub(crate) async fn close(self) {
        let _ = timeout(
            Duration::from_secs(2),
            self.connection.close(200, "anchor signer stopping".into()),
        )
        .await;
    }
}
