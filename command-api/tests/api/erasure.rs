//! `DELETE /api/v1/users/{id}/personal-data`: crypto-shredding. The log stays as it was,
//! but nothing in it opens to the address or the name any more.

use axum::http::StatusCode;
use keyring::{KeyringError, SealedText};
use platform::Role;
use serde_json::{json, Value};
use sqlx::Row;
use uuid::Uuid;

use crate::support::{spawn_app, Req};

const ADDRESS: &str = "Ada.Erased@Example.com";
const NAME: &str = "Ada Erasable";

#[tokio::test]
async fn after_erasure_no_copy_of_the_address_or_name_opens() {
    let app = spawn_app().await;
    let id = Uuid::now_v7();
    let token = app.token(Role::User, id);
    app.send(
        Req::post("/api/v1/users")
            .token(&token)
            .json(json!({"email": ADDRESS, "display_name": NAME})),
    )
    .await
    .ok(StatusCode::CREATED);
    app.send(
        Req::patch(format!("/api/v1/users/{id}"))
            .token(&token)
            .if_match(1)
            .json(json!({"display_name": "Ada Again", "email": "second@example.com"})),
    )
    .await
    .ok(StatusCode::OK);
    app.deposit(&token, id, 10).await.ok(StatusCode::CREATED);

    let erased = app
        .send(Req::delete(format!("/api/v1/users/{id}/personal-data")).token(&token))
        .await;
    let body = erased.ok(StatusCode::OK);
    assert_eq!(body["version"], 4);
    let events = app.events(id).await;
    assert_eq!(
        events.last().unwrap().event_type.as_str(),
        "user.personal_data_erased"
    );

    // Every sealed field of every event fails to open, even with the right master key.
    let keys = app.fresh_key_store();
    let mut sealed_fields = 0;
    for event in &events {
        let data: Value = serde_json::from_str(&event.data).unwrap();
        for (field, name) in [
            ("email_ciphertext", command_api::EMAIL_FIELD),
            ("display_name_ciphertext", command_api::DISPLAY_NAME_FIELD),
        ] {
            let Some(text) = data.get(field).and_then(Value::as_str) else {
                continue;
            };
            sealed_fields += 1;
            let sealed = SealedText::parse(text).unwrap();
            let opened = keys.open(id, &sealed, name).await;
            assert!(
                matches!(opened, Err(KeyringError::Shredded { .. })),
                "{opened:?}"
            );
        }
    }
    assert_eq!(sealed_fields, 4);

    // The data key is gone; no plaintext is anywhere in the log or the claims.
    let pool = app.store.pool();
    let row =
        sqlx::query("SELECT wrapped, shredded_at IS NOT NULL FROM data_keys WHERE subject = ?")
            .bind(id)
            .fetch_one(pool)
            .await
            .unwrap();
    assert!(row.get::<Option<Vec<u8>>, _>(0).is_none());
    assert!(row.get::<bool, _>(1));
    for sql in [
        "SELECT data, metadata FROM events",
        "SELECT payload, scope FROM claims",
    ] {
        for row in sqlx::query(sql).fetch_all(pool).await.unwrap() {
            for i in 0..2 {
                let text = String::from_utf8(row.get::<Vec<u8>, _>(i))
                    .unwrap()
                    .to_lowercase();
                for secret in [ADDRESS, NAME, "second@example.com", "Ada Again"] {
                    assert!(!text.contains(&secret.to_lowercase()), "{sql}: {text}");
                }
            }
        }
    }
}

#[tokio::test]
async fn an_erased_user_is_closed_and_its_address_free() {
    let app = spawn_app().await;
    let id = Uuid::now_v7();
    let token = app.token(Role::User, id);
    app.send(
        Req::post("/api/v1/users")
            .token(&token)
            .json(json!({"email": ADDRESS, "display_name": NAME})),
    )
    .await
    .ok(StatusCode::CREATED);
    let admin = app.admin();
    let path = format!("/api/v1/users/{id}/personal-data");
    let first = app.send(Req::delete(&path).token(&admin)).await;
    let first = first.ok(StatusCode::OK);

    // Repeating it changes nothing.
    let again = app
        .send(Req::delete(&path).token(&admin))
        .await
        .ok(StatusCode::OK);
    assert_eq!(again, first);
    assert_eq!(app.events(id).await.len(), 2);

    app.send(
        Req::patch(format!("/api/v1/users/{id}"))
            .token(&token)
            .if_match(2)
            .json(json!({"display_name": "Back"})),
    )
    .await
    .problem(StatusCode::CONFLICT, "user_erased");
    app.deposit(&token, id, 10)
        .await
        .problem(StatusCode::CONFLICT, "user_erased");
    app.send(
        Req::post("/api/v1/users")
            .token(&token)
            .json(json!({"email": "new@example.com", "display_name": NAME})),
    )
    .await
    .problem(StatusCode::CONFLICT, "already_exists");

    // The address was released in the erasure's append.
    app.send(
        Req::post("/api/v1/users")
            .token(&admin)
            .json(json!({"email": ADDRESS.to_uppercase(), "display_name": "Someone Else"})),
    )
    .await
    .ok(StatusCode::CREATED);
}

#[tokio::test]
async fn every_erasure_is_recorded_in_the_register_outside_the_database() {
    let path = std::env::temp_dir().join(format!("erasure-register-{}.ndjson", Uuid::new_v4()));
    let register_path = path.clone();
    let app = crate::support::spawn_app_with(move |state| {
        state.with_erasure_register(keyring::ErasureRegister::new(register_path))
    })
    .await;
    let id = Uuid::now_v7();
    let token = app.token(Role::User, id);
    app.send(
        Req::post("/api/v1/users")
            .token(&token)
            .json(json!({"email": ADDRESS, "display_name": NAME})),
    )
    .await
    .ok(StatusCode::CREATED);
    let erase = || Req::delete(format!("/api/v1/users/{id}/personal-data")).token(&token);
    let erased = app.send(erase()).await.ok(StatusCode::OK);
    let position = erased["position"].as_u64().unwrap();

    let (lines, unreadable) = keyring::ErasureRegister::read(&path).unwrap();
    assert_eq!(unreadable, 0);
    assert_eq!(lines.len(), 1);
    assert_eq!((lines[0].subject, lines[0].position), (id, position));

    // A repeat records again (it may be completing an interrupted erasure): a restore
    // reads the register as a set.
    app.send(erase()).await.ok(StatusCode::OK);
    let (lines, _) = keyring::ErasureRegister::read(&path).unwrap();
    assert_eq!(lines.len(), 2);
    assert!(lines
        .iter()
        .all(|l| l.subject == id && l.position == position));
    std::fs::remove_file(&path).unwrap();
}
