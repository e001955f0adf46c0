//! The in-process view cache: repeated reads at one checkpoint are served from memory
//! (counted as hits), and a moved checkpoint invalidates every entry.

use platform::Role;

use crate::support::{at, spawn_app, Req};

#[tokio::test]
async fn repeated_reads_hit_and_a_moved_checkpoint_invalidates() {
    let app = spawn_app().await;
    let id = app.user_at(at(1)).await;
    app.set_balance(id, "EUR", 10, 1).await;
    app.set_checkpoint(1).await;
    let admin = app.as_role(Role::Admin);
    let hits = r#"query_view_cache_hits_total{view="balances"}"#;
    let misses = r#"query_view_cache_misses_total{view="balances"}"#;
    let path = format!("/api/v1/users/{id}/balances");

    let first = app.get(&path, &admin).await.ok();
    let second = app.get(&path, &admin).await.ok();
    assert_eq!(first, second);
    assert_eq!(app.metric(misses).await, 1.0);
    assert_eq!(app.metric(hits).await, 1.0);

    // The projector moves the row and the checkpoint; the entry read at 1 is stale.
    app.set_balance(id, "EUR", 25, 2).await;
    app.set_checkpoint(2).await;
    // Position 2 exists in the log (X-Min-Position beyond its head is refused at once).
    app.grow_log_to(2).await;
    let fresh = app
        .send(Req::get(&path).token(&admin).min_position(2))
        .await
        .ok();
    assert_eq!(fresh["balances"][0]["amount"], 25);
    assert_eq!(app.metric(misses).await, 2.0);

    // The user view has its own entries and counters.
    let user = format!("/api/v1/users/{id}");
    app.get(&user, &admin).await.ok();
    app.get(&user, &admin).await.ok();
    assert_eq!(
        app.metric(r#"query_view_cache_hits_total{view="user"}"#)
            .await,
        1.0
    );
}

#[tokio::test]
async fn metrics_show_the_projection_position_and_lag() {
    let app = spawn_app().await;
    let alice = ledger::UserId::from_uuid(uuid::Uuid::now_v7());
    app.append(vec![crate::audit::registered(alice)]).await;
    app.append(vec![crate::audit::deposited(alice, 5, "EUR")])
        .await;
    app.set_checkpoint(1).await;
    assert_eq!(app.metric("query_projection_lag_events").await, 1.0);
    assert_eq!(app.metric("query_projection_position").await, 1.0);
    assert!(app.metric("query_projection_lag_seconds").await >= 0.0);
    app.set_checkpoint(2).await;
    assert_eq!(app.metric("query_projection_lag_events").await, 0.0);
    assert_eq!(app.metric("query_projection_lag_seconds").await, 0.0);
}
