//! `/api/v1/users`: registration, profile changes, deactivation (erasure: `erasure.rs`).

use axum::http::StatusCode;
use keyring::SealedText;
use platform::Role;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::support::{spawn_app, Req};

fn register(email: &str) -> Value {
    json!({"email": email, "display_name": "Ada Lovelace"})
}

#[tokio::test]
async fn an_admin_registers_a_user_under_a_new_id() {
    let app = spawn_app().await;
    let answer = app
        .send(
            Req::post("/api/v1/users")
                .token(&app.admin())
                .json(register("ada@example.com")),
        )
        .await;
    let body = answer.ok(StatusCode::CREATED);
    let user_id: Uuid = body["user_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(user_id.get_version_num(), 7);
    assert_eq!(body["version"], 1);
    let events = app.events(user_id).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_type.as_str(), "user.registered");
    assert_eq!(body["position"], events[0].position);
}

#[tokio::test]
async fn personal_data_enters_the_event_sealed_and_opens_with_the_users_key() {
    let app = spawn_app().await;
    let answer = app
        .send(
            Req::post("/api/v1/users")
                .token(&app.admin())
                .header("x-correlation-id", "corr-42")
                .header(
                    "traceparent",
                    "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                )
                .json(register("Ada@Example.com")),
        )
        .await;
    let user_id: Uuid = answer.ok(StatusCode::CREATED)["user_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let event = &app.events(user_id).await[0];
    assert!(!event.data.to_lowercase().contains("ada@example.com"));
    assert!(!event.data.contains("Lovelace"));
    let data: Value = serde_json::from_str(&event.data).unwrap();
    let keys = app.fresh_key_store();
    let email = SealedText::parse(data["email_ciphertext"].as_str().unwrap()).unwrap();
    let name = SealedText::parse(data["display_name_ciphertext"].as_str().unwrap()).unwrap();
    assert_eq!(
        keys.open(user_id, &email, command_api::EMAIL_FIELD)
            .await
            .unwrap(),
        "Ada@Example.com"
    );
    assert_eq!(
        keys.open(user_id, &name, command_api::DISPLAY_NAME_FIELD)
            .await
            .unwrap(),
        "Ada Lovelace"
    );
    let metadata: Value = serde_json::from_str(&event.metadata).unwrap();
    assert_eq!(metadata["correlation_id"], "corr-42");
    // Without an Idempotency-Key the command is named by its correlation id.
    assert_eq!(metadata["causation_id"], "corr-42");
    assert_eq!(
        metadata["traceparent"],
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    );
    assert!(metadata["actor"].is_string());
    assert!(!event.metadata.to_lowercase().contains("ada"));
}

#[tokio::test]
async fn a_user_registers_itself_under_its_own_id_only() {
    let app = spawn_app().await;
    let me = Uuid::now_v7();
    let token = app.token(Role::User, me);
    let answer = app
        .send(Req::post("/api/v1/users").token(&token).json(
            json!({"user_id": Uuid::now_v7(), "email": "x@example.com", "display_name": "X"}),
        ))
        .await;
    answer.problem(StatusCode::FORBIDDEN, "forbidden");

    let answer = app
        .send(
            Req::post("/api/v1/users")
                .token(&token)
                .json(register("me@example.com")),
        )
        .await;
    assert_eq!(answer.ok(StatusCode::CREATED)["user_id"], me.to_string());

    let explicit = Uuid::now_v7();
    let answer = app
        .send(
            Req::post("/api/v1/users")
                .token(&app.token(Role::User, explicit))
                .json(json!({"user_id": explicit, "email": "e@example.com", "display_name": "E"})),
        )
        .await;
    assert_eq!(
        answer.ok(StatusCode::CREATED)["user_id"],
        explicit.to_string()
    );
}

#[tokio::test]
async fn a_service_registers_any_id_and_an_auditor_none() {
    let app = spawn_app().await;
    let id = Uuid::now_v7();
    let body = json!({"user_id": id, "email": "s@example.com", "display_name": "S"});
    let auditor = app.token(Role::Auditor, Uuid::now_v7());
    app.send(
        Req::post("/api/v1/users")
            .token(&auditor)
            .json(body.clone()),
    )
    .await
    .problem(StatusCode::FORBIDDEN, "forbidden");
    let service = app.token(Role::Service, Uuid::now_v7());
    let answer = app
        .send(Req::post("/api/v1/users").token(&service).json(body))
        .await;
    assert_eq!(answer.ok(StatusCode::CREATED)["user_id"], id.to_string());
}

#[tokio::test]
async fn registering_an_id_twice_is_already_exists() {
    let app = spawn_app().await;
    let id = Uuid::now_v7();
    let admin = app.admin();
    let first = json!({"user_id": id, "email": "one@example.com", "display_name": "One"});
    let again = json!({"user_id": id, "email": "two@example.com", "display_name": "Two"});
    app.send(Req::post("/api/v1/users").token(&admin).json(first))
        .await
        .ok(StatusCode::CREATED);
    app.send(Req::post("/api/v1/users").token(&admin).json(again))
        .await
        .problem(StatusCode::CONFLICT, "already_exists");
    // The refused registration claimed nothing: its address is free.
    app.send(
        Req::post("/api/v1/users")
            .token(&admin)
            .json(register("two@example.com")),
    )
    .await
    .ok(StatusCode::CREATED);
}

#[tokio::test]
async fn an_email_address_is_unique_whatever_its_case() {
    let app = spawn_app().await;
    let admin = app.admin();
    app.send(
        Req::post("/api/v1/users")
            .token(&admin)
            .json(register("Ada@Example.com")),
    )
    .await
    .ok(StatusCode::CREATED);
    let answer = app
        .send(
            Req::post("/api/v1/users")
                .token(&admin)
                .json(register("ada@example.COM")),
        )
        .await;
    answer.problem(StatusCode::CONFLICT, "email_taken");
}

#[tokio::test]
async fn look_alike_addresses_are_one_address() {
    let app = spawn_app().await;
    let admin = app.admin();
    for (first, look_alike) in [
        ("ada@example.com", "ＡＤＡ＠ｅｘａｍｐｌｅ．ｃｏｍ"),
        ("strasse@example.de", "STRAẞE@example.de"),
        ("kelvin@example.org", "\u{212A}elvin@example.org"),
    ] {
        app.send(
            Req::post("/api/v1/users")
                .token(&admin)
                .json(register(first)),
        )
        .await
        .ok(StatusCode::CREATED);
        app.send(
            Req::post("/api/v1/users")
                .token(&admin)
                .json(register(look_alike)),
        )
        .await
        .problem(StatusCode::CONFLICT, "email_taken");
    }
}

#[tokio::test]
async fn registration_fields_are_validated_together() {
    let app = spawn_app().await;
    let answer = app
        .send(
            Req::post("/api/v1/users")
                .token(&app.admin())
                .json(json!({"user_id": "nope", "email": "not-an-address", "display_name": "  "})),
        )
        .await;
    let body = answer.problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let mut fields: Vec<(String, String)> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["field"].as_str().unwrap().to_owned(),
                e["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    fields.sort();
    assert_eq!(
        fields,
        [
            ("display_name".to_owned(), "required".to_owned()),
            ("email".to_owned(), "invalid_email".to_owned()),
            ("user_id".to_owned(), "invalid_uuid".to_owned()),
        ]
    );
    let long = format!("{}@example.com", "a".repeat(250));
    app.send(
        Req::post("/api/v1/users")
            .token(&app.admin())
            .json(register(&long)),
    )
    .await
    .problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}

#[tokio::test]
async fn a_profile_change_needs_the_current_version_in_if_match() {
    let app = spawn_app().await;
    let me = app.someone().await;
    let path = format!("/api/v1/users/{}", me.id);
    let change = json!({"display_name": "Ada King"});

    app.send(Req::patch(&path).token(&me.token).json(change.clone()))
        .await
        .problem(StatusCode::PRECONDITION_REQUIRED, "precondition_required");
    app.send(
        Req::patch(&path)
            .token(&me.token)
            .if_match(7)
            .json(change.clone()),
    )
    .await
    .problem(StatusCode::PRECONDITION_FAILED, "version_mismatch");
    app.send(
        Req::patch(&path)
            .token(&me.token)
            .header("if-match", "W/\"1\"")
            .json(change.clone()),
    )
    .await
    .problem(StatusCode::PRECONDITION_FAILED, "version_mismatch");

    let answer = app
        .send(
            Req::patch(&path)
                .token(&me.token)
                .if_match(1)
                .json(change.clone()),
        )
        .await;
    let body = answer.ok(StatusCode::OK);
    assert_eq!(body["version"], 2);
    assert_eq!(body["user_id"], me.id.to_string());
    // The old version no longer matches.
    app.send(Req::patch(&path).token(&me.token).if_match(1).json(change))
        .await
        .problem(StatusCode::PRECONDITION_FAILED, "version_mismatch");
    app.send(
        Req::patch(&path)
            .token(&me.token)
            .if_match(2)
            .json(json!({})),
    )
    .await
    .problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}

#[tokio::test]
async fn changing_the_email_frees_the_old_address_and_claims_the_new_one() {
    let app = spawn_app().await;
    let admin = app.admin();
    let ada = app.someone().await;
    let bob = app.someone().await;
    let ada_path = format!("/api/v1/users/{}", ada.id);
    let bob_path = format!("/api/v1/users/{}", bob.id);
    let ada_old = format!("{}@example.com", ada.id.simple());

    app.send(
        Req::patch(&ada_path)
            .token(&ada.token)
            .if_match(1)
            .json(json!({"email": "ada@new.example"})),
    )
    .await
    .ok(StatusCode::OK);
    // Bob cannot take Ada's new address, in any case...
    app.send(
        Req::patch(&bob_path)
            .token(&bob.token)
            .if_match(1)
            .json(json!({"email": "ADA@new.example"})),
    )
    .await
    .problem(StatusCode::CONFLICT, "email_taken");
    // ...but her old one is free again.
    app.send(
        Req::patch(&bob_path)
            .token(&bob.token)
            .if_match(1)
            .json(json!({"email": ada_old})),
    )
    .await
    .ok(StatusCode::OK);
    // Setting one's own address again, in another case, is no conflict.
    app.send(
        Req::patch(&ada_path)
            .token(&admin)
            .if_match(2)
            .json(json!({"email": "Ada@New.Example"})),
    )
    .await
    .ok(StatusCode::OK);
}

#[tokio::test]
async fn users_act_on_their_own_profile_only_and_unknown_users_are_not_found() {
    let app = spawn_app().await;
    let ada = app.someone().await;
    let bob = app.someone().await;
    let change = json!({"display_name": "Mallory"});
    for path in [
        format!("/api/v1/users/{}", bob.id),
        format!("/api/v1/users/{}", Uuid::now_v7()),
        "/api/v1/users/not-a-uuid".to_owned(),
    ] {
        app.send(
            Req::patch(&path)
                .token(&ada.token)
                .if_match(1)
                .json(change.clone()),
        )
        .await
        .problem(StatusCode::FORBIDDEN, "forbidden");
    }
    for suffix in ["deactivate", "personal-data"] {
        let path = format!("/api/v1/users/{}/{suffix}", bob.id);
        let req = if suffix == "deactivate" {
            Req::post(path)
        } else {
            Req::delete(path)
        };
        app.send(req.token(&ada.token))
            .await
            .problem(StatusCode::FORBIDDEN, "forbidden");
    }
    let admin = app.admin();
    for path in [
        format!("/api/v1/users/{}", Uuid::now_v7()),
        "/api/v1/users/not-a-uuid".to_owned(),
    ] {
        app.send(
            Req::patch(&path)
                .token(&admin)
                .if_match(1)
                .json(change.clone()),
        )
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");
    }
    app.send(Req::post(format!("/api/v1/users/{}/deactivate", Uuid::now_v7())).token(&admin))
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");
    app.send(Req::delete(format!("/api/v1/users/{}/personal-data", Uuid::now_v7())).token(&admin))
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn a_deactivated_user_changes_nothing_more() {
    let app = spawn_app().await;
    let admin = app.admin();
    let ada = app.someone().await;
    app.deposit(&ada.token, ada.id, 500)
        .await
        .ok(StatusCode::CREATED);
    let path = format!("/api/v1/users/{}/deactivate", ada.id);

    let answer = app
        .send(
            Req::post(&path)
                .token(&admin)
                .json(json!({"reason": "fraud review"})),
        )
        .await;
    let body = answer.ok(StatusCode::OK);
    assert_eq!(body["version"], 3);
    let events = app.events(ada.id).await;
    assert_eq!(
        events.last().unwrap().event_type.as_str(),
        "user.deactivated"
    );

    // Again, with an empty body: nothing to append, the same version and position.
    let again = app
        .send(
            Req::post(&path)
                .token(&admin)
                .raw("application/json", Vec::new()),
        )
        .await;
    let again_body = again.ok(StatusCode::OK);
    assert_eq!(again_body["version"], 3);
    assert_eq!(again_body["position"], body["position"]);
    assert_eq!(app.events(ada.id).await.len(), 3);

    app.deposit(&ada.token, ada.id, 1)
        .await
        .problem(StatusCode::CONFLICT, "user_inactive");
    app.send(
        Req::patch(format!("/api/v1/users/{}", ada.id))
            .token(&ada.token)
            .if_match(3)
            .json(json!({"display_name": "Still Ada"})),
    )
    .await
    .problem(StatusCode::CONFLICT, "user_inactive");
    app.send(Req::post(&path).token(&admin).json(json!({"reason": " "})))
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    app.send(Req::post(&path).token(&admin).if_match(2))
        .await
        .problem(StatusCode::PRECONDITION_FAILED, "version_mismatch");
    app.send(
        Req::post(&path)
            .token(&admin)
            .raw("text/plain", b"x".to_vec()),
    )
    .await
    .problem(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
}

#[tokio::test]
async fn a_user_may_deactivate_itself() {
    let app = spawn_app().await;
    let ada = app.someone().await;
    app.send(Req::post(format!("/api/v1/users/{}/deactivate", ada.id)).token(&ada.token))
        .await
        .ok(StatusCode::OK);
}
