use serde::{Deserialize, Serialize};

use crate::id::{TransactionId, UserId};
use crate::money::{Amount, Currency};
use crate::sealed::SealedText;

/// Everything that can happen on a user stream (`user-<uuid>`), past tense. Money lives on
/// the user's stream, so a transfer is one atomic append of one event to each of two
/// streams.
///
/// On the wire each variant is its `event_type()` (also the RabbitMQ routing key), its
/// `schema_version()` (always the latest: new events are written at the latest version,
/// older versions are upcast when read, see [`crate::decode`]) and `data()`, a JSON
/// object whose schema is `schemas/events/<type>.v<version>.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerEvent {
    UserRegistered(UserRegistered),
    ProfileUpdated(ProfileUpdated),
    UserDeactivated(UserDeactivated),
    PersonalDataErased(PersonalDataErased),
    Deposited(Deposited),
    Withdrawn(Withdrawn),
    Transferred(Transferred),
}

/// `user.registered` v2. v1 called the display name `name_ciphertext`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRegistered {
    pub user_id: UserId,
    pub email_ciphertext: SealedText,
    pub display_name_ciphertext: SealedText,
}

/// `user.profile_updated` v1: the fields that changed, at least one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileUpdated {
    pub user_id: UserId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_ciphertext: Option<SealedText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name_ciphertext: Option<SealedText>,
}

/// `user.deactivated` v2: the reason, free text a person wrote, is sealed like the other
/// personal fields, so an erasure makes it unreadable too. v1 carried it in clear
/// (`reason`); its upcaster drops it (it stays in the stored v1 event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserDeactivated {
    pub user_id: UserId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_ciphertext: Option<SealedText>,
}

/// `user.personal_data_erased` v1: the user's data key is destroyed (by the command
/// side, in the keyring); every ciphertext of their e-mail and name is unreadable from
/// now on. The event itself carries no personal data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonalDataErased {
    pub user_id: UserId,
}

/// `transaction.deposited` v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deposited {
    pub transaction_id: TransactionId,
    pub user_id: UserId,
    pub amount: Amount,
    pub currency: Currency,
}

/// `transaction.withdrawn` v1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Withdrawn {
    pub transaction_id: TransactionId,
    pub user_id: UserId,
    pub amount: Amount,
    pub currency: Currency,
}

/// `transaction.transferred` v1, one on each party's stream with the same
/// `transaction_id`: `direction` says which half this stream holds (`out` on the payer's
/// stream, `in` on the payee's).
///
/// One type with a direction rather than `transferred_out` / `transferred_in`: a
/// transfer is one business fact, consumers bind one routing key for it, and each half
/// still carries the whole transfer (both parties), so a projector can build the
/// transaction row from either half.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transferred {
    pub transaction_id: TransactionId,
    pub direction: Direction,
    pub from_user_id: UserId,
    pub to_user_id: UserId,
    pub amount: Amount,
    pub currency: Currency,
}

/// Which half of a transfer a stream holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Out,
    In,
}

/// An event type the ledger writes or reads, with its latest schema version. Versions
/// `1..=latest_version` all decode (older ones through upcasting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTypeInfo {
    pub event_type: &'static str,
    pub latest_version: u32,
}

impl UserRegistered {
    pub const TYPE: &'static str = "user.registered";
    pub const VERSION: u32 = 2;
}
impl ProfileUpdated {
    pub const TYPE: &'static str = "user.profile_updated";
    pub const VERSION: u32 = 1;
}
impl UserDeactivated {
    pub const TYPE: &'static str = "user.deactivated";
    pub const VERSION: u32 = 2;
}
impl PersonalDataErased {
    pub const TYPE: &'static str = "user.personal_data_erased";
    pub const VERSION: u32 = 1;
}
impl Deposited {
    pub const TYPE: &'static str = "transaction.deposited";
    pub const VERSION: u32 = 1;
}
impl Withdrawn {
    pub const TYPE: &'static str = "transaction.withdrawn";
    pub const VERSION: u32 = 1;
}
impl Transferred {
    pub const TYPE: &'static str = "transaction.transferred";
    pub const VERSION: u32 = 1;
}

/// Every event type of the ledger. The schema test checks each version of each has a
/// schema file, and that the events `decide` emits are exactly these types.
pub const EVENT_TYPES: &[EventTypeInfo] = &[
    EventTypeInfo {
        event_type: UserRegistered::TYPE,
        latest_version: UserRegistered::VERSION,
    },
    EventTypeInfo {
        event_type: ProfileUpdated::TYPE,
        latest_version: ProfileUpdated::VERSION,
    },
    EventTypeInfo {
        event_type: UserDeactivated::TYPE,
        latest_version: UserDeactivated::VERSION,
    },
    EventTypeInfo {
        event_type: PersonalDataErased::TYPE,
        latest_version: PersonalDataErased::VERSION,
    },
    EventTypeInfo {
        event_type: Deposited::TYPE,
        latest_version: Deposited::VERSION,
    },
    EventTypeInfo {
        event_type: Withdrawn::TYPE,
        latest_version: Withdrawn::VERSION,
    },
    EventTypeInfo {
        event_type: Transferred::TYPE,
        latest_version: Transferred::VERSION,
    },
];

impl LedgerEvent {
    /// The wire name and routing key, e.g. `transaction.deposited`.
    pub fn event_type(&self) -> &'static str {
        match self {
            LedgerEvent::UserRegistered(_) => UserRegistered::TYPE,
            LedgerEvent::ProfileUpdated(_) => ProfileUpdated::TYPE,
            LedgerEvent::UserDeactivated(_) => UserDeactivated::TYPE,
            LedgerEvent::PersonalDataErased(_) => PersonalDataErased::TYPE,
            LedgerEvent::Deposited(_) => Deposited::TYPE,
            LedgerEvent::Withdrawn(_) => Withdrawn::TYPE,
            LedgerEvent::Transferred(_) => Transferred::TYPE,
        }
    }

    /// The version `data()` is written in: always the type's latest.
    pub fn schema_version(&self) -> u32 {
        match self {
            LedgerEvent::UserRegistered(_) => UserRegistered::VERSION,
            LedgerEvent::ProfileUpdated(_) => ProfileUpdated::VERSION,
            LedgerEvent::UserDeactivated(_) => UserDeactivated::VERSION,
            LedgerEvent::PersonalDataErased(_) => PersonalDataErased::VERSION,
            LedgerEvent::Deposited(_) => Deposited::VERSION,
            LedgerEvent::Withdrawn(_) => Withdrawn::VERSION,
            LedgerEvent::Transferred(_) => Transferred::VERSION,
        }
    }

    /// The payload as a JSON object, at `schema_version()`.
    pub fn data(&self) -> serde_json::Value {
        let encoded = match self {
            LedgerEvent::UserRegistered(e) => serde_json::to_value(e),
            LedgerEvent::ProfileUpdated(e) => serde_json::to_value(e),
            LedgerEvent::UserDeactivated(e) => serde_json::to_value(e),
            LedgerEvent::PersonalDataErased(e) => serde_json::to_value(e),
            LedgerEvent::Deposited(e) => serde_json::to_value(e),
            LedgerEvent::Withdrawn(e) => serde_json::to_value(e),
            LedgerEvent::Transferred(e) => serde_json::to_value(e),
        };
        // Serializing these structs cannot fail (string keys, no fallible Serialize
        // impls); every variant's round trip is tested.
        encoded.unwrap_or(serde_json::Value::Null)
    }

    /// The currency whose balance this event changes; `None` for events that move no
    /// money.
    pub fn currency_moved(&self) -> Option<Currency> {
        match self {
            LedgerEvent::Deposited(e) => Some(e.currency),
            LedgerEvent::Withdrawn(e) => Some(e.currency),
            LedgerEvent::Transferred(e) => Some(e.currency),
            LedgerEvent::UserRegistered(_)
            | LedgerEvent::ProfileUpdated(_)
            | LedgerEvent::UserDeactivated(_)
            | LedgerEvent::PersonalDataErased(_) => None,
        }
    }

    /// Whose stream the event belongs on: for a transfer, the payer's for `out` and the
    /// payee's for `in`.
    pub fn user_id(&self) -> UserId {
        match self {
            LedgerEvent::UserRegistered(e) => e.user_id,
            LedgerEvent::ProfileUpdated(e) => e.user_id,
            LedgerEvent::UserDeactivated(e) => e.user_id,
            LedgerEvent::PersonalDataErased(e) => e.user_id,
            LedgerEvent::Deposited(e) => e.user_id,
            LedgerEvent::Withdrawn(e) => e.user_id,
            LedgerEvent::Transferred(e) => match e.direction {
                Direction::Out => e.from_user_id,
                Direction::In => e.to_user_id,
            },
        }
    }

    /// `user-<uuid>` of [`LedgerEvent::user_id`].
    pub fn stream_id(&self) -> String {
        self.user_id().stream_id()
    }

    /// The transaction an event records, for the money events.
    pub fn transaction_id(&self) -> Option<TransactionId> {
        match self {
            LedgerEvent::Deposited(e) => Some(e.transaction_id),
            LedgerEvent::Withdrawn(e) => Some(e.transaction_id),
            LedgerEvent::Transferred(e) => Some(e.transaction_id),
            LedgerEvent::UserRegistered(_)
            | LedgerEvent::ProfileUpdated(_)
            | LedgerEvent::UserDeactivated(_)
            | LedgerEvent::PersonalDataErased(_) => None,
        }
    }
}

macro_rules! from_payload {
    ($($variant:ident),* $(,)?) => {
        $(impl From<$variant> for LedgerEvent {
            fn from(e: $variant) -> Self {
                LedgerEvent::$variant(e)
            }
        })*
    };
}

from_payload!(
    UserRegistered,
    ProfileUpdated,
    UserDeactivated,
    PersonalDataErased,
    Deposited,
    Withdrawn,
    Transferred,
);
