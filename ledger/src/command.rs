use crate::id::{TransactionId, UserId};
use crate::money::{Amount, Currency};
use crate::sealed::SealedText;

/// A command on one user's stream, decided by [`crate::decide`]. Values arrive parsed
/// (newtypes) and personal data sealed: the domain never sees plaintext.
///
/// Not here: e-mail uniqueness (the command side claims a keyed hash of
/// [`crate::Email::normalized`] in the same append), `If-Match` versions (the command
/// side compares them with the stream version) and who may issue what (roles).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    RegisterUser(RegisterUser),
    UpdateProfile(UpdateProfile),
    DeactivateUser(DeactivateUser),
    ErasePersonalData(ErasePersonalData),
    Deposit(Deposit),
    Withdraw(Withdraw),
}

/// `POST /api/v1/users`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterUser {
    pub user_id: UserId,
    pub email: SealedText,
    pub display_name: SealedText,
}

/// `PATCH /api/v1/users/{id}`: the fields to change; at least one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateProfile {
    pub user_id: UserId,
    pub email: Option<SealedText>,
    pub display_name: Option<SealedText>,
}

/// `POST /api/v1/users/{id}/deactivate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeactivateUser {
    pub user_id: UserId,
    /// The reason, checked as a [`crate::DeactivationReason`] and sealed by the command side.
    pub reason: Option<SealedText>,
}

/// `DELETE /api/v1/users/{id}/personal-data`. The command side destroys the user's data
/// key in the keyring once the event is appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasePersonalData {
    pub user_id: UserId,
}

/// `POST /api/v1/transactions` with `type: "deposit"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deposit {
    pub transaction_id: TransactionId,
    pub user_id: UserId,
    pub amount: Amount,
    pub currency: Currency,
}

/// `POST /api/v1/transactions` with `type: "withdrawal"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withdraw {
    pub transaction_id: TransactionId,
    pub user_id: UserId,
    pub amount: Amount,
    pub currency: Currency,
}

/// `POST /api/v1/transactions` with `type: "transfer"`. Decided against both users'
/// states by [`crate::decide_transfer`], never by `decide`: it is not a [`Command`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    pub transaction_id: TransactionId,
    pub from_user_id: UserId,
    pub to_user_id: UserId,
    pub amount: Amount,
    pub currency: Currency,
}

impl Command {
    /// The user whose stream the command is decided on and appended to.
    pub fn user_id(&self) -> UserId {
        match self {
            Command::RegisterUser(c) => c.user_id,
            Command::UpdateProfile(c) => c.user_id,
            Command::DeactivateUser(c) => c.user_id,
            Command::ErasePersonalData(c) => c.user_id,
            Command::Deposit(c) => c.user_id,
            Command::Withdraw(c) => c.user_id,
        }
    }
}

macro_rules! into_command {
    ($($variant:ident),* $(,)?) => {
        $(impl From<$variant> for Command {
            fn from(c: $variant) -> Self {
                Command::$variant(c)
            }
        })*
    };
}

into_command!(
    RegisterUser,
    UpdateProfile,
    DeactivateUser,
    ErasePersonalData,
    Deposit,
    Withdraw,
);
