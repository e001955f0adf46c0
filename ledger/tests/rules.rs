//! The ledger's rules, one per test, as given / when / then (see `ledger::testing`).

use ledger::testing::*;
use ledger::{Balance, Currency, Rejection, UserStatus};

const CEILING: i64 = Balance::MAX;
const MAX_AMOUNT: i64 = 1_000_000_000_000_000;

/// Deposits to `user` in EUR that bring the balance to exactly `total`.
fn deposits_totalling(user: ledger::UserId, total: i64) -> Vec<ledger::LedgerEvent> {
    let mut left = total;
    let mut events = Vec::new();
    while left > 0 {
        let n = left.min(MAX_AMOUNT);
        events.push(deposited_to(user, EUR, n));
        left -= n;
    }
    events
}

mod registering {
    use super::*;

    #[test]
    fn a_new_user_is_registered_with_sealed_personal_data() {
        let alice = given([]).when(register()).then_emits([registered()]);
        assert_eq!(alice.status(), UserStatus::Active);
        assert_eq!(alice.id(), Some(ALICE));
        assert!(alice.email().is_some() && alice.display_name().is_some());
    }

    #[test]
    fn a_user_cannot_register_twice() {
        given([registered()])
            .when(register())
            .then_rejects("already_exists");
    }

    #[test]
    fn an_erased_user_cannot_register_again() {
        given([registered(), erased()])
            .when(register())
            .then_rejects("already_exists");
    }
}

mod updating_the_profile {
    use super::*;

    #[test]
    fn a_user_can_change_their_email_alone() {
        given([registered()])
            .when(update_profile(Some("new@example.com"), None))
            .then_emits([profile_updated(Some("new@example.com"), None)]);
    }

    #[test]
    fn a_user_can_change_their_display_name_alone() {
        given([registered()])
            .when(update_profile(None, Some("Ada")))
            .then_emits([profile_updated(None, Some("Ada"))]);
    }

    #[test]
    fn the_latest_update_is_the_current_profile() {
        let alice = given([registered(), profile_updated(None, Some("Ada"))])
            .when(update_profile(Some("b@example.com"), None))
            .then_emits([profile_updated(Some("b@example.com"), None)]);
        assert_eq!(alice.email(), Some(&sealed("b@example.com")));
        assert_eq!(alice.display_name(), Some(&sealed("Ada")));
    }

    #[test]
    fn an_update_that_changes_nothing_fails_validation() {
        let rejection = given([registered()])
            .when(update_profile(None, None))
            .then_rejects("validation_failed");
        let Rejection::ValidationFailed(field) = rejection else {
            panic!("{rejection:?}");
        };
        assert_eq!(field.code, "nothing_to_update");
    }

    #[test]
    fn an_unknown_user_cannot_be_updated() {
        given([])
            .when(update_profile(Some("a@example.com"), None))
            .then_rejects("not_found");
    }

    #[test]
    fn a_deactivated_user_cannot_change_their_profile() {
        given([registered(), deactivated()])
            .when(update_profile(None, Some("Ada")))
            .then_rejects("user_inactive");
    }

    #[test]
    fn erased_personal_data_cannot_be_replaced() {
        given([registered(), erased()])
            .when(update_profile(None, Some("Ada")))
            .then_rejects("user_erased");
    }
}

mod deactivating {
    use super::*;

    #[test]
    fn a_user_can_be_deactivated_with_a_reason() {
        let alice = given([registered()])
            .when(deactivate_because("fraud review"))
            .then_emits([deactivated_because("fraud review")]);
        assert_eq!(alice.status(), UserStatus::Deactivated);
    }

    #[test]
    fn a_user_can_be_deactivated_without_a_reason() {
        given([registered()])
            .when(deactivate())
            .then_emits([deactivated()]);
    }

    #[test]
    fn deactivating_a_deactivated_user_changes_nothing() {
        given([registered(), deactivated()])
            .when(deactivate())
            .then_emits_nothing();
    }

    #[test]
    fn an_unknown_user_cannot_be_deactivated() {
        given([]).when(deactivate()).then_rejects("not_found");
    }

    #[test]
    fn an_erased_user_can_still_be_deactivated() {
        given([registered(), erased()])
            .when(deactivate())
            .then_emits([deactivated()]);
    }
}

mod erasing_personal_data {
    use super::*;

    #[test]
    fn erasing_forgets_the_sealed_email_and_name() {
        let alice = given([registered(), profile_updated(Some("b@example.com"), None)])
            .when(erase())
            .then_emits([erased()]);
        assert!(alice.is_erased());
        assert_eq!(alice.email(), None);
        assert_eq!(alice.display_name(), None);
    }

    #[test]
    fn erasing_keeps_the_money_on_record() {
        let alice = given([registered(), deposited(100)])
            .when(erase())
            .then_emits([erased()]);
        assert_eq!(alice.balance(EUR).minor_units(), 100);
    }

    #[test]
    fn a_deactivated_users_data_can_be_erased() {
        given([registered(), deactivated()])
            .when(erase())
            .then_emits([erased()]);
    }

    #[test]
    fn erasing_twice_changes_nothing() {
        given([registered(), erased()])
            .when(erase())
            .then_emits_nothing();
    }

    #[test]
    fn an_unknown_users_data_cannot_be_erased() {
        given([]).when(erase()).then_rejects("not_found");
    }
}

mod depositing {
    use super::*;

    #[test]
    fn a_deposit_credits_the_balance() {
        let alice = given([registered(), deposited(100)])
            .when(deposit(50))
            .then_emits([deposited(50)]);
        assert_eq!(alice.balance(EUR).minor_units(), 150);
    }

    #[test]
    fn an_unknown_user_cannot_deposit() {
        given([]).when(deposit(50)).then_rejects("not_found");
    }

    #[test]
    fn a_deactivated_user_cannot_deposit() {
        given([registered(), deactivated()])
            .when(deposit(50))
            .then_rejects("user_inactive");
    }

    #[test]
    fn an_erased_user_cannot_deposit() {
        given([registered(), erased()])
            .when(deposit(50))
            .then_rejects("user_erased");
    }

    #[test]
    fn a_deposit_may_bring_the_balance_exactly_to_its_ceiling() {
        let history = [vec![registered()], deposits_totalling(ALICE, CEILING - 1)].concat();
        let alice = given(history).when(deposit(1)).then_emits([deposited(1)]);
        assert_eq!(alice.balance(EUR).minor_units(), CEILING);
    }

    #[test]
    fn a_deposit_past_the_balance_ceiling_is_rejected() {
        let history = [vec![registered()], deposits_totalling(ALICE, CEILING)].concat();
        given(history)
            .when(deposit(1))
            .then_rejects("balance_limit_exceeded");
    }
}

mod withdrawing {
    use super::*;

    #[test]
    fn a_withdrawal_within_the_balance_debits_it() {
        let alice = given([registered(), deposited(100)])
            .when(withdraw(30))
            .then_emits([withdrawn(30)]);
        assert_eq!(alice.balance(EUR).minor_units(), 70);
    }

    #[test]
    fn the_whole_balance_can_be_withdrawn() {
        let alice = given([registered(), deposited(100)])
            .when(withdraw(100))
            .then_emits([withdrawn(100)]);
        assert_eq!(alice.balance(EUR), Balance::ZERO);
    }

    #[test]
    fn withdrawing_more_than_the_balance_is_rejected() {
        given([registered(), deposited(100)])
            .when(withdraw(150))
            .then_rejects("insufficient_funds");
    }

    #[test]
    fn money_in_another_currency_does_not_count() {
        given([registered(), deposited_in(Currency::USD, 500)])
            .when(withdraw_in(EUR, 1))
            .then_rejects("insufficient_funds");
    }

    #[test]
    fn an_unknown_user_cannot_withdraw() {
        given([]).when(withdraw(1)).then_rejects("not_found");
    }

    #[test]
    fn a_deactivated_user_cannot_withdraw() {
        given([registered(), deposited(100), deactivated()])
            .when(withdraw(10))
            .then_rejects("user_inactive");
    }

    #[test]
    fn an_erased_user_cannot_withdraw() {
        given([registered(), deposited(100), erased()])
            .when(withdraw(10))
            .then_rejects("user_erased");
    }

    #[test]
    fn a_state_of_another_user_is_not_this_user() {
        given([registered_as(BOB), deposited_to(BOB, EUR, 100)])
            .when(withdraw(10))
            .then_rejects("not_found");
    }
}

mod transferring {
    use super::*;

    #[test]
    fn a_transfer_debits_the_payer_and_credits_the_payee() {
        let (alice, bob) = given_parties([registered(), deposited(100)], [registered_as(BOB)])
            .when(transfer(40))
            .then_emits([transferred_out(40)], [transferred_in(40)]);
        assert_eq!(alice.balance(EUR).minor_units(), 60);
        assert_eq!(bob.balance(EUR).minor_units(), 40);
    }

    #[test]
    fn a_transfer_needs_two_different_users() {
        let mut to_self = transfer(10);
        to_self.to_user_id = ALICE;
        let rejection = given_parties(
            [registered(), deposited(100)],
            [registered(), deposited(100)],
        )
        .when(to_self)
        .then_rejects("validation_failed");
        let Rejection::ValidationFailed(field) = rejection else {
            panic!("{rejection:?}");
        };
        assert_eq!((field.field, field.code), ("to_user_id", "same_user"));
    }

    #[test]
    fn a_transfer_beyond_the_payers_balance_is_rejected() {
        given_parties([registered(), deposited(100)], [registered_as(BOB)])
            .when(transfer(101))
            .then_rejects("insufficient_funds");
    }

    #[test]
    fn a_transfer_from_an_unknown_user_is_not_found() {
        given_parties([], [registered_as(BOB)])
            .when(transfer(1))
            .then_rejects("not_found");
    }

    #[test]
    fn a_transfer_to_an_unknown_user_is_not_found() {
        let rejection = given_parties([registered(), deposited(100)], [])
            .when(transfer(1))
            .then_rejects("not_found");
        assert_eq!(rejection, Rejection::NotFound { user_id: BOB });
    }

    #[test]
    fn a_deactivated_payer_cannot_transfer() {
        given_parties(
            [registered(), deposited(100), deactivated()],
            [registered_as(BOB)],
        )
        .when(transfer(1))
        .then_rejects("user_inactive");
    }

    #[test]
    fn a_deactivated_payee_cannot_receive() {
        given_parties(
            [registered(), deposited(100)],
            [registered_as(BOB), deactivated_as(BOB)],
        )
        .when(transfer(1))
        .then_rejects("user_inactive");
    }

    #[test]
    fn an_erased_payee_cannot_receive() {
        given_parties(
            [registered(), deposited(100)],
            [registered_as(BOB), erased_as(BOB)],
        )
        .when(transfer(1))
        .then_rejects("user_erased");
    }

    #[test]
    fn a_transfer_past_the_payees_ceiling_is_rejected() {
        let bob = [vec![registered_as(BOB)], deposits_totalling(BOB, CEILING)].concat();
        given_parties([registered(), deposited(100)], bob)
            .when(transfer(1))
            .then_rejects("balance_limit_exceeded");
    }
}

#[test]
fn every_rejection_code_is_a_stable_snake_case_word() {
    for code in Rejection::CODES {
        assert!(
            code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{code}"
        );
    }
}
