//! What `/health/ready` says: the database answers, the broker is connected, and the
//! projection is not stopped in front of a poison event.

use std::sync::{Arc, Mutex, PoisonError};

use lapin::ConnectionStatus;
use platform::Readiness;
use sqlx::MySqlPool;

use crate::checkpoint::Poison;
use crate::metrics::{gauge, ProjectorMetrics};

/// Shared between the consumer (which sets it) and the readiness checks (which read it).
#[derive(Clone, Default)]
pub(crate) struct Health {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// The consuming session's connection, while it consumes: readiness asks it whether
    /// it is still open, so a connection the broker closed reads as gone at once, even
    /// while the consumer is busy elsewhere (a batch, a catch-up from the log).
    broker: Mutex<Option<ConnectionStatus>>,
    poison: Mutex<Option<Poison>>,
}

/// Why the projection is not ready.
#[derive(Debug, thiserror::Error)]
enum NotReady {
    #[error("not connected to the broker")]
    Broker,
    #[error(
        "stopped in front of poison event at position {} ({}): {}",
        .0.position, .0.event_type, .0.reason
    )]
    Poisoned(Poison),
}

impl Health {
    /// The connection a session consumes on (`None` once it ended).
    pub fn set_broker(&self, status: Option<ConnectionStatus>) {
        *self
            .inner
            .broker
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = status;
    }

    /// A session reached consuming (its connection may have closed since).
    pub fn consuming(&self) -> bool {
        self.inner
            .broker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// A session consumes and its connection is open.
    pub fn broker_connected(&self) -> bool {
        self.inner
            .broker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(ConnectionStatus::connected)
    }

    pub fn set_poison(&self, poison: Option<Poison>, metrics: &ProjectorMetrics) {
        metrics.poisoned.set(i64::from(poison.is_some()));
        metrics
            .poison_position
            .set(poison.as_ref().map_or(0, |p| gauge(p.position)));
        *self
            .inner
            .poison
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = poison;
    }

    pub fn poison(&self) -> Option<Poison> {
        self.inner
            .poison
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The readiness checks: `mariadb`, `rabbitmq`, `projection`.
    pub fn readiness(&self, pool: MySqlPool) -> Readiness {
        let broker = self.clone();
        let projection = self.clone();
        Readiness::new()
            .with_check("mariadb", move || {
                let pool = pool.clone();
                async move { event_store::ping(&pool).await }
            })
            .with_check("rabbitmq", move || {
                let connected = broker.broker_connected();
                async move {
                    if connected {
                        Ok(())
                    } else {
                        Err(NotReady::Broker)
                    }
                }
            })
            .with_check("projection", move || {
                let poison = projection.poison();
                async move {
                    match poison {
                        None => Ok(()),
                        Some(p) => Err(NotReady::Poisoned(p)),
                    }
                }
            })
    }
}
