//! Messages are notifications (DESIGN.md §4, §5): what the projector applies at a
//! position is the log's event there, whatever a message says, and the projector's broker
//! account may consume its queue but publish nothing. The issue that asked for this
//! found a CloudEvent forged with the next position, published with the dev broker
//! account, made a balances view show 1,000,000,000,005 CHF while the log held 5.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first surprise

mod support;

use event_store::RecordedEvent;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use ledger::{
    Amount, Currency, Deposited, LedgerEvent, SealedText, TransactionId, UserId, UserRegistered,
};
use support::{assert_verified, eventually, Env, Running};
use uuid::Uuid;

/// A forged deposit of ten billion CHF (in minor units) at `position`.
const FORGED_AMOUNT: i64 = 1_000_000_000_000;

fn deposit(user: UserId, amount: i64) -> Vec<LedgerEvent> {
    vec![Deposited {
        transaction_id: TransactionId::from_uuid(Uuid::now_v7()),
        user_id: user,
        amount: Amount::parse(amount).unwrap(),
        currency: Currency::CHF,
    }
    .into()]
}

/// A user with 5 CHF, projected, the projector running; the user's events.
async fn funded_user(env: &Env) -> (UserId, Vec<RecordedEvent>, Running) {
    let user = UserId::from_uuid(Uuid::now_v7());
    let registered: LedgerEvent = UserRegistered {
        user_id: user,
        email_ciphertext: SealedText::new(format!("sealed:{user}@example.com")),
        display_name_ciphertext: SealedText::new(format!("sealed:name-{user}")),
    }
    .into();
    let events = env.append(&[vec![registered], deposit(user, 5)]).await;
    env.publisher().await.publish(&events).await;
    let projector = Running::start(&env.config).await;
    env.wait_for_checkpoint(env.head().await).await;
    assert_eq!(chf(env, user).await, 5);
    (user, events, projector)
}

async fn chf(env: &Env, user: UserId) -> i64 {
    sqlx::query_scalar("SELECT amount FROM balances_view WHERE user_id = ? AND currency = 'CHF'")
        .bind(user.as_uuid().as_bytes().as_slice())
        .fetch_optional(&env.pool)
        .await
        .unwrap()
        .unwrap_or(0)
}

/// A `transaction.deposited` CloudEvent for `user` at `position` that the log never
/// held: a new event id, ten billion CHF.
fn forged_deposit(user: UserId, position: u64, stream_version: u64) -> serde_json::Value {
    serde_json::json!({
        "specversion": "1.0",
        "id": Uuid::now_v7().to_string(),
        "source": "urn:example:ledger",
        "type": "transaction.deposited",
        "subject": user.stream_id(),
        "time": "2026-12-01T10:00:00.000000Z",
        "datacontenttype": "application/json",
        "data": {
            "transaction_id": Uuid::now_v7().to_string(),
            "user_id": user.to_string(),
            "amount": FORGED_AMOUNT,
            "currency": "CHF",
        },
        "position": position,
        "streamversion": stream_version,
        "schemaversion": 1,
    })
}

/// Publishes `body` to the events exchange as the account of `url`, waiting for the
/// broker's confirm: `Err` when the broker refuses it.
async fn publish_as(url: &str, body: &serde_json::Value) -> Result<(), lapin::Error> {
    let connection = Connection::connect(url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let confirm = channel
        .basic_publish(
            "example.events".into(),
            "transaction.deposited".into(),
            BasicPublishOptions::default(),
            body.to_string().as_bytes(),
            BasicProperties::default()
                .with_content_type("application/cloudevents+json".into())
                .with_delivery_mode(2),
        )
        .await?;
    let confirmation = confirm.await?;
    assert!(confirmation.is_ack(), "the broker nacked the message");
    let _ = connection.close(200, "done".into()).await;
    Ok(())
}

#[tokio::test]
async fn the_projectors_broker_account_may_consume_but_not_publish() {
    let env = Env::new().await;
    let (user, _, projector) = funded_user(&env).await;

    // The projector's own credentials: consuming works (above), publishing does not.
    let forged = forged_deposit(user, env.head().await + 1, 3);
    let refused = publish_as(env.config.broker.amqp_url.expose(), &forged).await;
    let code = match &refused {
        Err(e) => match e.kind() {
            lapin::ErrorKind::ProtocolError(amqp) => amqp.get_id(),
            other => panic!("not refused by the broker but {other:?}"),
        },
        Ok(()) => panic!("the projector's account published a message"),
    };
    assert_eq!(code, 403, "{refused:?}"); // ACCESS_REFUSED

    // Real traffic goes on; the views hold what the log holds.
    let real = env.append(&[deposit(user, 7)]).await;
    env.publisher().await.publish(&real).await;
    env.wait_for_checkpoint(env.head().await).await;
    assert_eq!(chf(&env, user).await, 12);
    projector.stop().await;
    assert_verified(&env).await;
}

#[tokio::test]
async fn a_forged_deposit_from_an_account_that_may_publish_changes_no_view() {
    let env = Env::new().await;
    let (user, _, projector) = funded_user(&env).await;
    let next = env.head().await + 1;

    // Published by an account that may publish (here the test's administrator), with
    // the next position: the log has nothing there yet.
    let received = projector.metric("projector_deliveries_total").await;
    publish_as(&env.broker.url, &forged_deposit(user, next, 3))
        .await
        .unwrap();
    eventually("the forged message to be received", || async {
        (projector.metric("projector_deliveries_total").await > received).then_some(())
    })
    .await;

    // Then the real event at that position, and its real message.
    let real = env.append(&[deposit(user, 7)]).await;
    assert_eq!(real[0].position, next);
    env.publisher().await.publish(&real).await;
    env.wait_for_checkpoint(next).await;
    eventually("every message to be settled", || async {
        (env.queue_depth() == (0, 0)).then_some(())
    })
    .await;

    assert_eq!(
        chf(&env, user).await,
        12,
        "the balance is not what the log says"
    );
    assert_eq!(
        projector
            .metric("projector_disagreeing_messages_total")
            .await,
        1.0,
        "the forged message was not counted as disagreeing with the log"
    );
    projector.stop().await;
    assert_verified(&env).await;
}

/// Relay terms as the log's `relay_checkpoints` records them: `epoch` terms begun.
async fn terms_begun(env: &Env, epoch: u64) {
    sqlx::query(
        "INSERT INTO relay_checkpoints (name, position, epoch, updated_at) \
         VALUES ('main', 0, ?, UTC_TIMESTAMP(6)) ON DUPLICATE KEY UPDATE epoch = VALUES(epoch)",
    )
    .bind(epoch)
    .execute(&env.pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn a_restarted_projector_still_drops_messages_of_an_earlier_relay_term() {
    let env = Env::new().await;
    terms_begun(&env, 2).await;
    let mut scenario = support::Scenario::new(31);
    let first = env.append(&scenario.register(4)).await;
    let publisher = env.publisher().await;
    publisher.publish_in_term(&first, 2).await;
    let projector = Running::start(&env.config).await;
    env.wait_for_checkpoint(env.head().await).await;
    projector.stop().await;

    // While it is down, the deposed leader of term 1 publishes the next event, and the
    // leader of term 2 does too, after it.
    let next = env.append(&scenario.activity(1)).await;
    publisher.publish_in_term(&next, 1).await;
    publisher.publish_in_term(&next, 2).await;
    let projector = Running::start(&env.config).await;
    env.wait_for_checkpoint(env.head().await).await;
    eventually("both messages to be settled", || async {
        (env.queue_depth() == (0, 0)).then_some(())
    })
    .await;
    let stale = projector
        .metric("projector_stale_epoch_messages_total")
        .await;
    let epoch = projector.metric("projector_relay_epoch").await;
    projector.stop().await;
    assert_eq!(stale, 1.0, "the restarted projector forgot term 2");
    assert_eq!(epoch, 2.0);
    assert_verified(&env).await;
}

#[tokio::test]
async fn a_message_claiming_a_relay_term_nobody_began_is_dropped_and_changes_no_epoch() {
    let env = Env::new().await;
    terms_begun(&env, 2).await;
    let mut scenario = support::Scenario::new(32);
    let events = env.append(&scenario.register(4)).await;
    let publisher = env.publisher().await;
    // A forger with the relay's rights copies a real message and claims term 99:
    // were it believed, every real message after it would be dropped as stale.
    publisher.publish_in_term(&events[..1], 99).await;
    publisher.publish_in_term(&events, 2).await;
    let projector = Running::start(&env.config).await;
    env.wait_for_checkpoint(env.head().await).await;
    eventually("every message to be settled", || async {
        (env.queue_depth() == (0, 0)).then_some(())
    })
    .await;
    let more = env.append(&scenario.activity(3)).await;
    publisher.publish_in_term(&more, 2).await;
    env.wait_for_checkpoint(env.head().await).await;
    let disagreeing = projector
        .metric("projector_disagreeing_messages_total")
        .await;
    let stale = projector
        .metric("projector_stale_epoch_messages_total")
        .await;
    let epoch = projector.metric("projector_relay_epoch").await;
    let gap_filled = projector.metric("projector_gap_events_filled_total").await;
    projector.stop().await;
    assert_eq!(disagreeing, 1.0);
    assert_eq!((stale, epoch), (0.0, 2.0));
    assert_eq!(gap_filled, 0.0, "real messages were dropped");
    assert_verified(&env).await;
}
