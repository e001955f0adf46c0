//! Given / when / then for the ledger's rules, and fixtures that read like the spec:
//!
//! ```
//! use ledger::testing::*;
//! given([registered(), deposited(100)]).when(withdraw(150)).then_rejects("insufficient_funds");
//! given_parties([registered(), deposited(100)], [registered_as(BOB)])
//!     .when(transfer(40))
//!     .then_emits([transferred_out(40)], [transferred_in(40)]);
//! ```
//!
//! Fixtures act on Alice's stream in EUR with transaction `TX` unless their name says
//! otherwise (`_as`, `_to`, `_in`). Sealed values are fake (`sealed:<plaintext>`): the
//! domain never opens them. Every emitted event is also round-tripped through
//! `data()` / [`crate::decode`], so each rule test checks the encoding too.
//! Compiled for this crate's tests and with the `testing` feature.

use uuid::Uuid;

use crate::{
    decide, decide_transfer, decode, evolve, replay, Amount, Command, Currency, DeactivateUser,
    DeactivationReason, Deposit, Deposited, Direction, ErasePersonalData, LedgerEvent,
    PersonalDataErased, ProfileUpdated, RegisterUser, Rejection, SealedText, TransactionId,
    Transfer, Transferred, UpdateProfile, User, UserDeactivated, UserId, UserRegistered, Withdraw,
    Withdrawn,
};

pub const ALICE: UserId =
    UserId::from_uuid(Uuid::from_u128(0x0190_a8f6_7b2c_7c3e_9f00_0000_0000_a11c));
pub const BOB: UserId =
    UserId::from_uuid(Uuid::from_u128(0x0190_a8f6_7b2c_7c3e_9f00_0000_0000_0b0b));
pub const TX: TransactionId =
    TransactionId::from_uuid(Uuid::from_u128(0x0190_a8f6_7b2c_7c3e_9f00_0000_0000_7777));
pub const EUR: Currency = Currency::EUR;

/// An amount known to be valid; panics otherwise (fixtures only).
#[track_caller]
pub fn amount(minor_units: i64) -> Amount {
    match Amount::parse(minor_units) {
        Ok(a) => a,
        Err(e) => panic!("fixture amount {minor_units}: {e}"),
    }
}

/// A stand-in for what the keyring would return for `plaintext`.
pub fn sealed(plaintext: &str) -> SealedText {
    SealedText::new(format!("sealed:{plaintext}"))
}

// ----- events -----

pub fn registered() -> LedgerEvent {
    registered_as(ALICE)
}

pub fn registered_as(user_id: UserId) -> LedgerEvent {
    UserRegistered {
        user_id,
        email_ciphertext: sealed(&format!("{user_id}@example.com")),
        display_name_ciphertext: sealed("A. User"),
    }
    .into()
}

pub fn profile_updated(email: Option<&str>, display_name: Option<&str>) -> LedgerEvent {
    ProfileUpdated {
        user_id: ALICE,
        email_ciphertext: email.map(sealed),
        display_name_ciphertext: display_name.map(sealed),
    }
    .into()
}

pub fn deactivated() -> LedgerEvent {
    deactivated_as(ALICE)
}

pub fn deactivated_as(user_id: UserId) -> LedgerEvent {
    UserDeactivated {
        user_id,
        reason_ciphertext: None,
    }
    .into()
}

pub fn deactivated_because(reason: &str) -> LedgerEvent {
    UserDeactivated {
        user_id: ALICE,
        reason_ciphertext: Some(reason_of(reason)),
    }
    .into()
}

pub fn erased() -> LedgerEvent {
    erased_as(ALICE)
}

pub fn erased_as(user_id: UserId) -> LedgerEvent {
    PersonalDataErased { user_id }.into()
}

pub fn deposited(minor_units: i64) -> LedgerEvent {
    deposited_to(ALICE, EUR, minor_units)
}

pub fn deposited_in(currency: Currency, minor_units: i64) -> LedgerEvent {
    deposited_to(ALICE, currency, minor_units)
}

pub fn deposited_to(user_id: UserId, currency: Currency, minor_units: i64) -> LedgerEvent {
    Deposited {
        transaction_id: TX,
        user_id,
        amount: amount(minor_units),
        currency,
    }
    .into()
}

pub fn withdrawn(minor_units: i64) -> LedgerEvent {
    Withdrawn {
        transaction_id: TX,
        user_id: ALICE,
        amount: amount(minor_units),
        currency: EUR,
    }
    .into()
}

/// The payer's half of a transfer from Alice to Bob.
pub fn transferred_out(minor_units: i64) -> LedgerEvent {
    transferred(Direction::Out, minor_units)
}

/// The payee's half of a transfer from Alice to Bob.
pub fn transferred_in(minor_units: i64) -> LedgerEvent {
    transferred(Direction::In, minor_units)
}

fn transferred(direction: Direction, minor_units: i64) -> LedgerEvent {
    Transferred {
        transaction_id: TX,
        direction,
        from_user_id: ALICE,
        to_user_id: BOB,
        amount: amount(minor_units),
        currency: EUR,
    }
    .into()
}

// ----- commands -----

pub fn register() -> RegisterUser {
    register_as(ALICE)
}

pub fn register_as(user_id: UserId) -> RegisterUser {
    RegisterUser {
        user_id,
        email: sealed(&format!("{user_id}@example.com")),
        display_name: sealed("A. User"),
    }
}

pub fn update_profile(email: Option<&str>, display_name: Option<&str>) -> UpdateProfile {
    UpdateProfile {
        user_id: ALICE,
        email: email.map(sealed),
        display_name: display_name.map(sealed),
    }
}

pub fn deactivate() -> DeactivateUser {
    DeactivateUser {
        user_id: ALICE,
        reason: None,
    }
}

pub fn deactivate_because(reason: &str) -> DeactivateUser {
    DeactivateUser {
        user_id: ALICE,
        reason: Some(reason_of(reason)),
    }
}

pub fn erase() -> ErasePersonalData {
    ErasePersonalData { user_id: ALICE }
}

pub fn deposit(minor_units: i64) -> Deposit {
    deposit_in(EUR, minor_units)
}

pub fn deposit_in(currency: Currency, minor_units: i64) -> Deposit {
    Deposit {
        transaction_id: TX,
        user_id: ALICE,
        amount: amount(minor_units),
        currency,
    }
}

pub fn withdraw(minor_units: i64) -> Withdraw {
    withdraw_in(EUR, minor_units)
}

pub fn withdraw_in(currency: Currency, minor_units: i64) -> Withdraw {
    Withdraw {
        transaction_id: TX,
        user_id: ALICE,
        amount: amount(minor_units),
        currency,
    }
}

/// Alice pays Bob, in EUR.
pub fn transfer(minor_units: i64) -> Transfer {
    Transfer {
        transaction_id: TX,
        from_user_id: ALICE,
        to_user_id: BOB,
        amount: amount(minor_units),
        currency: EUR,
    }
}

#[track_caller]
fn reason_of(reason: &str) -> SealedText {
    match DeactivationReason::parse(reason).map(|r| SealedText::new(format!("sealed:{r}"))) {
        Ok(r) => r,
        Err(e) => panic!("fixture reason {reason:?}: {e}"),
    }
}

// ----- the framework -----

/// A user whose stream holds `history`.
pub fn given(history: impl IntoIterator<Item = LedgerEvent>) -> Given {
    let history: Vec<LedgerEvent> = history.into_iter().collect();
    Given {
        user: replay(&history),
    }
}

pub struct Given {
    user: User,
}

impl Given {
    pub fn when(self, command: impl Into<Command>) -> Then {
        let result = decide(&self.user, &command.into());
        Then {
            user: self.user,
            result,
        }
    }
}

pub struct Then {
    user: User,
    result: Result<Vec<LedgerEvent>, Rejection>,
}

impl Then {
    /// Asserts the events decided, and returns the user after them.
    #[track_caller]
    pub fn then_emits(self, expected: impl IntoIterator<Item = LedgerEvent>) -> User {
        let expected: Vec<LedgerEvent> = expected.into_iter().collect();
        let events = match self.result {
            Ok(events) => events,
            Err(r) => panic!("expected {expected:?}, but rejected: {} ({r})", r.code()),
        };
        assert_eq!(events, expected);
        assert_round_trips(&events);
        events.iter().fold(self.user, evolve)
    }

    /// Asserts the command is accepted and changes nothing.
    #[track_caller]
    pub fn then_emits_nothing(self) {
        self.then_emits([]);
    }

    /// Asserts a rejection with this code, and returns it for closer looks.
    #[track_caller]
    pub fn then_rejects(self, code: &str) -> Rejection {
        match self.result {
            Ok(events) => panic!("expected rejection {code:?}, but emitted {events:?}"),
            Err(r) => {
                assert_eq!(r.code(), code, "rejected for another reason: {r}");
                r
            }
        }
    }
}

/// The payer's history and the payee's.
pub fn given_parties(
    from: impl IntoIterator<Item = LedgerEvent>,
    to: impl IntoIterator<Item = LedgerEvent>,
) -> GivenParties {
    GivenParties {
        from: given(from).user,
        to: given(to).user,
    }
}

pub struct GivenParties {
    from: User,
    to: User,
}

impl GivenParties {
    pub fn when(self, transfer: Transfer) -> ThenTransfer {
        let result = decide_transfer(&self.from, &self.to, &transfer);
        ThenTransfer {
            from: self.from,
            to: self.to,
            result,
        }
    }
}

type TransferResult = Result<(Vec<LedgerEvent>, Vec<LedgerEvent>), Rejection>;

pub struct ThenTransfer {
    from: User,
    to: User,
    result: TransferResult,
}

impl ThenTransfer {
    /// Asserts the events for each stream, and returns both users after them.
    #[track_caller]
    pub fn then_emits(
        self,
        for_from: impl IntoIterator<Item = LedgerEvent>,
        for_to: impl IntoIterator<Item = LedgerEvent>,
    ) -> (User, User) {
        let expected: (Vec<_>, Vec<_>) =
            (for_from.into_iter().collect(), for_to.into_iter().collect());
        let events = match self.result {
            Ok(events) => events,
            Err(r) => panic!("expected {expected:?}, but rejected: {} ({r})", r.code()),
        };
        assert_eq!(events, expected);
        assert_round_trips(&events.0);
        assert_round_trips(&events.1);
        (
            events.0.iter().fold(self.from, evolve),
            events.1.iter().fold(self.to, evolve),
        )
    }

    #[track_caller]
    pub fn then_rejects(self, code: &str) -> Rejection {
        match self.result {
            Ok(events) => panic!("expected rejection {code:?}, but emitted {events:?}"),
            Err(r) => {
                assert_eq!(r.code(), code, "rejected for another reason: {r}");
                r
            }
        }
    }
}

/// Encodes each event as it would be stored and decodes it back.
#[track_caller]
pub fn assert_round_trips(events: &[LedgerEvent]) {
    for event in events {
        let data = event.data().to_string();
        match decode(event.event_type(), event.schema_version(), &data) {
            Ok(back) => assert_eq!(&back, event, "round trip through {data}"),
            Err(e) => panic!("{} does not decode: {e}; data {data}", event.event_type()),
        }
    }
}
