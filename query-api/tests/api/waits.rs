//! Read-your-writes: `X-Projection-Position` on every answer, and `X-Min-Position`
//! waiting for the projection (up to 5 s, then 503 `projection_lagging`).

use axum::http::StatusCode;
use platform::Role;

use crate::support::{at, eventually, set_checkpoint, spawn_app, Req};

const WAITING: &str = "query_read_your_writes_waiting";

#[tokio::test]
async fn every_answer_says_how_far_the_projection_got() {
    let app = spawn_app().await;
    let id = app.user_at(at(1)).await;
    app.set_checkpoint(41).await;
    let admin = app.as_role(Role::Admin);
    assert_eq!(
        app.get(&format!("/api/v1/users/{id}"), &admin)
            .await
            .position(),
        41
    );
    assert_eq!(
        app.get("/api/v1/transactions?limit=5", &admin)
            .await
            .position(),
        41
    );
    let missing = app.get("/api/v1/transactions/not-an-id", &admin).await;
    missing.problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(missing.position(), 41);
}

#[tokio::test]
async fn a_reached_position_answers_at_once() {
    let app = spawn_app().await;
    let id = app.user_at(at(1)).await;
    app.set_checkpoint(9).await;
    let answer = app
        .send(
            Req::get(format!("/api/v1/users/{id}/balances"))
                .token(&app.as_role(Role::Admin))
                .min_position(9),
        )
        .await;
    answer.ok();
    assert_eq!(answer.position(), 9);
}

#[tokio::test]
async fn a_query_waits_until_the_projection_reaches_the_position() {
    let app = spawn_app().await;
    let id = app.user_at(at(1)).await;
    app.set_balance(id, "EUR", 100, 5).await;
    app.set_checkpoint(5).await;
    app.grow_log_to(6).await;
    let admin = app.as_role(Role::Admin);
    let path = format!("/api/v1/users/{id}/balances");
    // Cached at 5, so the answer after the wait must come from the newer rows.
    assert_eq!(
        app.get(&path, &admin).await.ok()["balances"][0]["amount"],
        100
    );

    let request = app.send(Req::get(&path).token(&admin).min_position(6));
    let projector = async {
        eventually("the request to wait", || async {
            app.metric(WAITING).await == 1.0
        })
        .await;
        // What the projector does: rows and checkpoint in one transaction.
        let mut tx = app.pool.begin().await.unwrap();
        sqlx::query("UPDATE balances_view SET amount = 70, position = 6 WHERE user_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await
            .unwrap();
        sqlx::query("UPDATE checkpoints SET position = 6 WHERE projection = 'main'")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
    };
    let (answer, ()) = tokio::join!(request, projector);
    let body = answer.ok();
    assert_eq!(answer.position(), 6);
    assert_eq!(body["balances"][0]["amount"], 70);
    assert_eq!(app.metric(WAITING).await, 0.0);
}

#[tokio::test]
async fn a_waiter_is_woken_by_a_checkpoint_moved_from_another_task() {
    let app = spawn_app().await;
    app.user_at(at(1)).await;
    app.set_checkpoint(1).await;
    app.grow_log_to(3).await;
    let pool = app.pool.clone();
    let metrics_app = &app;
    let mover = async move {
        eventually("the request to wait", || async {
            metrics_app.metric(WAITING).await == 1.0
        })
        .await;
        tokio::spawn(async move { set_checkpoint(&pool, 3).await })
            .await
            .unwrap();
    };
    let request = app.send(
        Req::get("/api/v1/users")
            .token(&app.as_role(Role::Auditor))
            .min_position(3),
    );
    let (answer, ()) = tokio::join!(request, mover);
    answer.ok();
    assert!(answer.position() >= 3);
}

#[tokio::test]
async fn a_position_never_reached_is_projection_lagging() {
    let app = spawn_app().await;
    let id = app.user_at(at(1)).await;
    app.set_checkpoint(2).await;
    app.grow_log_to(3).await;
    let answer = app
        .send(
            Req::get(format!("/api/v1/users/{id}"))
                .token(&app.as_role(Role::Admin))
                .min_position(3),
        )
        .await;
    answer.problem(StatusCode::SERVICE_UNAVAILABLE, "projection_lagging");
    assert!(answer.header("retry-after").is_some());
    assert_eq!(answer.position(), 2);
    assert_eq!(app.metric(WAITING).await, 0.0);
}

/// A position the log has not reached yet was returned by no command: a client's
/// mistake, answered at once rather than after the wait.
#[tokio::test]
async fn a_position_beyond_the_log_head_is_a_validation_failure_without_a_wait() {
    let app = spawn_app().await;
    let id = app.user_at(at(1)).await;
    app.grow_log_to(4).await;
    app.set_checkpoint(2).await;
    let body = app
        .send(
            Req::get(format!("/api/v1/users/{id}"))
                .token(&app.as_role(Role::Admin))
                .min_position(5),
        )
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(body["errors"][0]["field"], "X-Min-Position");
    assert_eq!(body["errors"][0]["code"], "beyond_log_head");
    assert_eq!(app.metric(WAITING).await, 0.0);
}

#[tokio::test]
async fn a_bad_min_position_is_a_validation_failure() {
    let app = spawn_app().await;
    app.set_checkpoint(0).await;
    for bad in ["-1", "soon", "1.5", ""] {
        let body = app
            .send(
                Req::get("/api/v1/users")
                    .token(&app.as_role(Role::Admin))
                    .header("x-min-position", bad),
            )
            .await
            .problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(body["errors"][0]["field"], "X-Min-Position", "{bad:?}");
    }
}

#[tokio::test]
async fn a_forbidden_request_does_not_wait() {
    let app = spawn_app().await;
    let other = app.user_at(at(1)).await;
    app.set_checkpoint(1).await;
    app.send(
        Req::get(format!("/api/v1/users/{other}"))
            .token(&app.as_role(Role::User))
            .min_position(1_000),
    )
    .await
    .problem(StatusCode::FORBIDDEN, "forbidden");
}
