use crate::event::{Direction, LedgerEvent};
use crate::id::UserId;
use crate::money::{Balance, Balances, Currency};
use crate::sealed::SealedText;

/// A user as their stream tells it: registration, status, sealed profile, and money per
/// currency. Built only by [`evolve`] / [`replay`]; the default is "no such user" (an
/// empty stream).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct User {
    id: Option<UserId>,
    status: UserStatus,
    erased: bool,
    email: Option<SealedText>,
    display_name: Option<SealedText>,
    balances: Balances,
}

/// Where a user stands. API.md shows `active` / `deactivated`; `unregistered` is an
/// empty stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum UserStatus {
    #[default]
    Unregistered,
    Active,
    Deactivated,
}

impl UserStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            UserStatus::Unregistered => "unregistered",
            UserStatus::Active => "active",
            UserStatus::Deactivated => "deactivated",
        }
    }
}

impl User {
    /// `None` until registered.
    pub fn id(&self) -> Option<UserId> {
        self.id
    }

    pub fn status(&self) -> UserStatus {
        self.status
    }

    pub fn is_registered(&self) -> bool {
        self.status != UserStatus::Unregistered
    }

    /// Whether the personal data was erased (crypto-shredded).
    pub fn is_erased(&self) -> bool {
        self.erased
    }

    /// The current e-mail as sealed in the latest event that set it; `None` before
    /// registration and after erasure. The command side opens it to release the old
    /// e-mail's uniqueness claim when the address changes or is erased.
    pub fn email(&self) -> Option<&SealedText> {
        self.email.as_ref()
    }

    /// The current display name, sealed; `None` before registration and after erasure.
    pub fn display_name(&self) -> Option<&SealedText> {
        self.display_name.as_ref()
    }

    pub fn balances(&self) -> &Balances {
        &self.balances
    }

    pub fn balance(&self, currency: Currency) -> Balance {
        self.balances.get(currency)
    }
}

/// Applies one event to a user. Records what happened and cannot fail: the rules were
/// checked by `decide` when the event was written, and history is not re-judged (a rule
/// that tightens later must not make old streams unreadable).
pub fn evolve(mut user: User, event: &LedgerEvent) -> User {
    match event {
        LedgerEvent::UserRegistered(e) => {
            user.id = Some(e.user_id);
            user.status = UserStatus::Active;
            user.email = Some(e.email_ciphertext.clone());
            user.display_name = Some(e.display_name_ciphertext.clone());
        }
        LedgerEvent::ProfileUpdated(e) => {
            if let Some(email) = &e.email_ciphertext {
                user.email = Some(email.clone());
            }
            if let Some(name) = &e.display_name_ciphertext {
                user.display_name = Some(name.clone());
            }
        }
        LedgerEvent::UserDeactivated(_) => user.status = UserStatus::Deactivated,
        LedgerEvent::PersonalDataErased(_) => {
            user.erased = true;
            user.email = None;
            user.display_name = None;
        }
        LedgerEvent::Deposited(_) | LedgerEvent::Withdrawn(_) | LedgerEvent::Transferred(_) => {
            if let Some(currency) = event.currency_moved() {
                let balance = evolve_balance(user.balances.get(currency), event);
                user.balances.set(currency, balance);
            }
        }
    }
    user
}

/// The balance, in the event's currency ([`LedgerEvent::currency_moved`]), after one
/// event: the part of [`evolve`] that moves money, for readers that keep balances apart
/// from a [`User`] (the projector's balance rows). Clamped to `0..=Balance::MAX`, which only
/// a history `decide` would have refused can reach; an event that moves no money leaves
/// the balance as it was.
pub fn evolve_balance(balance: Balance, event: &LedgerEvent) -> Balance {
    match event {
        LedgerEvent::Deposited(e) => balance.saturating_credit(e.amount),
        LedgerEvent::Withdrawn(e) => balance.saturating_debit(e.amount),
        LedgerEvent::Transferred(e) => match e.direction {
            Direction::Out => balance.saturating_debit(e.amount),
            Direction::In => balance.saturating_credit(e.amount),
        },
        LedgerEvent::UserRegistered(_)
        | LedgerEvent::ProfileUpdated(_)
        | LedgerEvent::UserDeactivated(_)
        | LedgerEvent::PersonalDataErased(_) => balance,
    }
}

/// The one fold from events to state: every reader of a user stream (commands, the
/// projector's checks, the auditors' "as of" replays) calls this.
pub fn replay<'a>(events: impl IntoIterator<Item = &'a LedgerEvent>) -> User {
    events.into_iter().fold(User::default(), evolve)
}
