use crate::command::{
    Command, DeactivateUser, Deposit, ErasePersonalData, RegisterUser, Transfer, UpdateProfile,
    Withdraw,
};
use crate::event::{
    Deposited, Direction, LedgerEvent, PersonalDataErased, ProfileUpdated, Transferred,
    UserDeactivated, UserRegistered, Withdrawn,
};
use crate::field::FieldError;
use crate::id::UserId;
use crate::money::{Amount, Balance, Currency};
use crate::rejection::Rejection;
use crate::user::{User, UserStatus};

/// Decides a command against the current state of its user's stream: the events to
/// append (at the latest schema version), or why not.
///
/// An empty `Ok` means the command asks for what already holds (deactivating a
/// deactivated user, erasing erased data): append nothing and answer with the current
/// version. Rules:
/// - register: the stream must be empty (`already_exists`);
/// - every other command needs the registered user (`not_found`);
/// - profile changes need the data not erased (`user_erased`), the user active
///   (`user_inactive`) and at least one field (`validation_failed`);
/// - money moves need the user not erased and active (`user_erased`, `user_inactive`);
///   a withdrawal needs the funds (`insufficient_funds`), a deposit room under the
///   balance ceiling (`balance_limit_exceeded`).
pub fn decide(user: &User, command: &Command) -> Result<Vec<LedgerEvent>, Rejection> {
    match command {
        Command::RegisterUser(c) => register_user(user, c),
        Command::UpdateProfile(c) => update_profile(user, c),
        Command::DeactivateUser(c) => deactivate_user(user, c),
        Command::ErasePersonalData(c) => erase_personal_data(user, c),
        Command::Deposit(c) => deposit(user, c),
        Command::Withdraw(c) => withdraw(user, c),
    }
}

/// Decides a transfer against both parties' states. `Ok((for_from, for_to))`: the events
/// for the payer's stream and for the payee's, to be appended in one atomic append with
/// both streams' expected versions.
///
/// Rules: two different users (`validation_failed`, field `to_user_id`, code
/// `same_user`), both registered (`not_found`), neither erased nor deactivated
/// (`user_erased`, `user_inactive`), the payer holds the amount (`insufficient_funds`),
/// the payee's balance stays under the ceiling (`balance_limit_exceeded`). The payer's
/// problems are reported before the payee's.
pub fn decide_transfer(
    from: &User,
    to: &User,
    command: &Transfer,
) -> Result<(Vec<LedgerEvent>, Vec<LedgerEvent>), Rejection> {
    if command.from_user_id == command.to_user_id {
        return Err(Rejection::ValidationFailed(FieldError::new(
            "to_user_id",
            "same_user",
            "a transfer needs two different users",
        )));
    }
    party(from, command.from_user_id)?;
    party(to, command.to_user_id)?;
    debit(from, command.from_user_id, command.currency, command.amount)?;
    credit(to, command.to_user_id, command.currency, command.amount)?;
    let half = |direction| {
        vec![LedgerEvent::Transferred(Transferred {
            transaction_id: command.transaction_id,
            direction,
            from_user_id: command.from_user_id,
            to_user_id: command.to_user_id,
            amount: command.amount,
            currency: command.currency,
        })]
    };
    Ok((half(Direction::Out), half(Direction::In)))
}

fn register_user(user: &User, c: &RegisterUser) -> Result<Vec<LedgerEvent>, Rejection> {
    if user.is_registered() {
        return Err(Rejection::AlreadyExists { user_id: c.user_id });
    }
    Ok(vec![LedgerEvent::UserRegistered(UserRegistered {
        user_id: c.user_id,
        email_ciphertext: c.email.clone(),
        display_name_ciphertext: c.display_name.clone(),
    })])
}

fn update_profile(user: &User, c: &UpdateProfile) -> Result<Vec<LedgerEvent>, Rejection> {
    registered(user, c.user_id)?;
    not_erased(user, c.user_id)?;
    active(user, c.user_id)?;
    if c.email.is_none() && c.display_name.is_none() {
        return Err(Rejection::ValidationFailed(FieldError::new(
            "body",
            "nothing_to_update",
            "give email, display_name or both",
        )));
    }
    // Ciphertexts are not compared with the current ones: sealing is randomised, so
    // equal plaintexts seal differently. An unchanged value is still recorded.
    Ok(vec![LedgerEvent::ProfileUpdated(ProfileUpdated {
        user_id: c.user_id,
        email_ciphertext: c.email.clone(),
        display_name_ciphertext: c.display_name.clone(),
    })])
}

fn deactivate_user(user: &User, c: &DeactivateUser) -> Result<Vec<LedgerEvent>, Rejection> {
    registered(user, c.user_id)?;
    if user.status() == UserStatus::Deactivated {
        return Ok(Vec::new());
    }
    Ok(vec![LedgerEvent::UserDeactivated(UserDeactivated {
        user_id: c.user_id,
        reason_ciphertext: c.reason.clone(),
    })])
}

fn erase_personal_data(user: &User, c: &ErasePersonalData) -> Result<Vec<LedgerEvent>, Rejection> {
    // Allowed whatever the status: the right to erasure does not wait for a deactivation.
    registered(user, c.user_id)?;
    if user.is_erased() {
        return Ok(Vec::new());
    }
    Ok(vec![LedgerEvent::PersonalDataErased(PersonalDataErased {
        user_id: c.user_id,
    })])
}

fn deposit(user: &User, c: &Deposit) -> Result<Vec<LedgerEvent>, Rejection> {
    party(user, c.user_id)?;
    credit(user, c.user_id, c.currency, c.amount)?;
    Ok(vec![LedgerEvent::Deposited(Deposited {
        transaction_id: c.transaction_id,
        user_id: c.user_id,
        amount: c.amount,
        currency: c.currency,
    })])
}

fn withdraw(user: &User, c: &Withdraw) -> Result<Vec<LedgerEvent>, Rejection> {
    party(user, c.user_id)?;
    debit(user, c.user_id, c.currency, c.amount)?;
    Ok(vec![LedgerEvent::Withdrawn(Withdrawn {
        transaction_id: c.transaction_id,
        user_id: c.user_id,
        amount: c.amount,
        currency: c.currency,
    })])
}

/// The state must be this user's, registered. A state of another user is treated as
/// "this user not found" rather than trusted: it means the caller loaded the wrong
/// stream.
fn registered(user: &User, user_id: UserId) -> Result<(), Rejection> {
    if user.is_registered() && user.id() == Some(user_id) {
        Ok(())
    } else {
        Err(Rejection::NotFound { user_id })
    }
}

fn not_erased(user: &User, user_id: UserId) -> Result<(), Rejection> {
    if user.is_erased() {
        Err(Rejection::UserErased { user_id })
    } else {
        Ok(())
    }
}

fn active(user: &User, user_id: UserId) -> Result<(), Rejection> {
    if user.status() == UserStatus::Active {
        Ok(())
    } else {
        Err(Rejection::UserInactive { user_id })
    }
}

/// May be a party to a transaction. An erased user's account is closed to money moves
/// too: nobody could tell whose it is any more.
fn party(user: &User, user_id: UserId) -> Result<(), Rejection> {
    registered(user, user_id)?;
    not_erased(user, user_id)?;
    active(user, user_id)
}

fn debit(
    user: &User,
    user_id: UserId,
    currency: Currency,
    amount: Amount,
) -> Result<Balance, Rejection> {
    let balance = user.balance(currency);
    balance
        .checked_debit(amount)
        .ok_or(Rejection::InsufficientFunds {
            user_id,
            currency,
            balance,
            requested: amount,
        })
}

fn credit(
    user: &User,
    user_id: UserId,
    currency: Currency,
    amount: Amount,
) -> Result<Balance, Rejection> {
    let balance = user.balance(currency);
    balance
        .checked_credit(amount)
        .ok_or(Rejection::BalanceLimitExceeded {
            user_id,
            currency,
            balance,
            amount,
        })
}
