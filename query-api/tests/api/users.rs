//! `GET /api/v1/users` and `GET /api/v1/users/{id}`: the view, roles and ownership,
//! personal data opened or erased, cursor pagination.

use std::collections::HashSet;

use axum::http::StatusCode;
use platform::Role;
use uuid::Uuid;

use crate::support::{at, spawn_app, Req, UserSeed};

#[tokio::test]
async fn a_user_reads_as_api_md_shows_it() {
    let app = spawn_app().await;
    let mut user = UserSeed::new(at(1));
    user.version = 3;
    user.position = 4;
    app.seed_user(&user).await;
    app.set_checkpoint(4).await;

    let answer = app
        .get(
            &format!("/api/v1/users/{}", user.id),
            &app.as_role(Role::Admin),
        )
        .await;
    let body = answer.ok();
    assert_eq!(
        body,
        serde_json::json!({
            "user_id": user.id.to_string(),
            "email": user.email,
            "display_name": user.display_name,
            "status": "active",
            "erased": false,
            "version": 3,
            "created_at": "2025-06-15T15:06:40.000001Z",
            "updated_at": "2025-06-15T15:06:40.000001Z",
        })
    );
    assert_eq!(answer.position(), 4);
    assert_eq!(
        answer.etag(),
        "\"3\"",
        "the ETag is the version If-Match wants"
    );
    assert_eq!(answer.header("cache-control"), Some("private, no-cache"));
}

#[tokio::test]
async fn a_user_sees_itself_only_and_others_see_everyone() {
    let app = spawn_app().await;
    let me = app.user_at(at(1)).await;
    let other = app.user_at(at(2)).await;
    app.set_checkpoint(1).await;
    let mine = app.token(Role::User, me);

    app.get(&format!("/api/v1/users/{me}"), &mine).await.ok();
    app.get(&format!("/api/v1/users/{other}"), &mine)
        .await
        .problem(StatusCode::FORBIDDEN, "forbidden");
    // Authorisation comes before existence: a user learns nothing of other ids.
    app.get(&format!("/api/v1/users/{}", Uuid::now_v7()), &mine)
        .await
        .problem(StatusCode::FORBIDDEN, "forbidden");
    for role in [Role::Admin, Role::Service, Role::Auditor] {
        let body = app
            .get(&format!("/api/v1/users/{other}"), &app.as_role(role))
            .await
            .ok();
        assert_eq!(body["user_id"], other.to_string(), "{role}");
    }
}

#[tokio::test]
async fn unknown_ids_bad_ids_and_missing_tokens_get_their_codes() {
    let app = spawn_app().await;
    app.set_checkpoint(0).await;
    let admin = app.as_role(Role::Admin);
    app.get(&format!("/api/v1/users/{}", Uuid::now_v7()), &admin)
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");
    let body = app
        .get("/api/v1/users/not-a-uuid", &admin)
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(body["errors"][0]["field"], "id");
    let answer = app
        .send(Req::get(format!("/api/v1/users/{}", Uuid::now_v7())))
        .await;
    answer.problem(StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_eq!(answer.header("www-authenticate"), Some("Bearer"));
    app.get("/api/v1/users", "not.a.token")
        .await
        .problem(StatusCode::UNAUTHORIZED, "unauthenticated");
}

#[tokio::test]
async fn erased_users_show_no_personal_data_even_before_the_view_says_so() {
    let app = spawn_app().await;
    let mut erased = UserSeed::new(at(1));
    erased.erased = true;
    app.seed_user(&erased).await;
    // Shredded in the keyring, the erasure event not projected yet.
    let shredded = UserSeed::new(at(2));
    app.seed_user(&shredded).await;
    app.keys.shred(shredded.id).await.unwrap();
    app.set_checkpoint(1).await;
    let admin = app.as_role(Role::Admin);

    for id in [erased.id, shredded.id] {
        let body = app.get(&format!("/api/v1/users/{id}"), &admin).await.ok();
        assert_eq!(body["email"], serde_json::Value::Null);
        assert_eq!(body["display_name"], serde_json::Value::Null);
        assert_eq!(body["erased"], true);
    }
}

/// Pages through `/api/v1/users` with `limit`, returning the ids in answer order.
async fn all_pages(app: &crate::support::TestApp, token: &str, limit: u32) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/users?limit={limit}&cursor={c}"),
            None => format!("/api/v1/users?limit={limit}"),
        };
        let page = app.get(&path, token).await.ok();
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= limit as usize);
        ids.extend(
            items
                .iter()
                .map(|u| u["user_id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return ids,
        }
    }
}

#[tokio::test]
async fn the_list_pages_newest_first_without_duplicates_or_gaps() {
    let app = spawn_app().await;
    let mut expected = Vec::new();
    // Equal creation times too: the id breaks the tie.
    for created in [1, 2, 2, 2, 3, 5, 5] {
        let id = app.user_at(at(created)).await;
        expected.push((created, id));
    }
    app.set_checkpoint(1).await;
    expected.sort_by(|a, b| b.cmp(a));
    let expected: Vec<String> = expected.iter().map(|(_, id)| id.to_string()).collect();
    let admin = app.as_role(Role::Admin);

    for limit in [1, 2, 3, 7, 200] {
        assert_eq!(
            all_pages(&app, &admin, limit).await,
            expected,
            "limit {limit}"
        );
    }

    // A user registered between two pages lands on top; the pages after the first do
    // not shift.
    let first = app.get("/api/v1/users?limit=3", &admin).await.ok();
    app.user_at(at(9)).await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let rest = app
        .get(&format!("/api/v1/users?limit=200&cursor={cursor}"), &admin)
        .await
        .ok();
    let mut seen: Vec<String> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .chain(rest["items"].as_array().unwrap())
        .map(|u| u["user_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(seen, expected);
    seen.dedup();
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), expected.len());
    assert_eq!(rest["next_cursor"], serde_json::Value::Null);
}

#[tokio::test]
async fn a_user_listing_users_sees_only_itself() {
    let app = spawn_app().await;
    let me = app.user_at(at(1)).await;
    app.user_at(at(2)).await;
    app.set_checkpoint(1).await;
    let body = app
        .get("/api/v1/users", &app.token(Role::User, me))
        .await
        .ok();
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["user_id"], me.to_string());
    assert!(items[0]["email"].is_string());
    let all = app
        .get("/api/v1/users", &app.as_role(Role::Service))
        .await
        .ok();
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn bad_limits_cursors_and_parameters_are_validation_failures() {
    let app = spawn_app().await;
    app.set_checkpoint(0).await;
    let admin = app.as_role(Role::Admin);
    for (query, field, code) in [
        ("limit=0", "limit", "out_of_range"),
        ("limit=201", "limit", "out_of_range"),
        ("limit=ten", "limit", "out_of_range"),
        ("cursor=zz", "cursor", "invalid_cursor"),
        ("cursor=", "cursor", "invalid_cursor"),
        ("page=2", "page", "unknown_parameter"),
        ("limit=1&limit=2", "limit", "duplicate_parameter"),
    ] {
        let body = app
            .get(&format!("/api/v1/users?{query}"), &admin)
            .await
            .problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(body["errors"][0]["field"], field, "{query}");
        assert_eq!(body["errors"][0]["code"], code, "{query}");
    }
    // A transactions cursor is not a users cursor.
    let tx_cursor = {
        let a = app.user_at(at(1)).await;
        for p in 1..=3 {
            app.seed_transaction("deposit", (Some(a), None, None), 10, p)
                .await;
        }
        let page = app.get("/api/v1/transactions?limit=1", &admin).await.ok();
        page["next_cursor"].as_str().unwrap().to_owned()
    };
    app.get(&format!("/api/v1/users?cursor={tx_cursor}"), &admin)
        .await
        .problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}

#[tokio::test]
async fn an_unchanged_user_answers_304_to_its_etag() {
    let app = spawn_app().await;
    let id = app.user_at(at(1)).await;
    app.set_checkpoint(1).await;
    let admin = app.as_role(Role::Admin);
    let path = format!("/api/v1/users/{id}");
    let first = app.get(&path, &admin).await;
    first.ok();
    let etag = first.etag().to_owned();

    let again = app
        .send(Req::get(&path).token(&admin).if_none_match(&etag))
        .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert!(again.body.is_empty());
    assert_eq!(again.etag(), etag);
    assert_eq!(again.position(), 1);

    // A new version is a new tag.
    sqlx::query("UPDATE users_view SET version = 2, position = 2 WHERE user_id = ?")
        .bind(id)
        .execute(&app.pool)
        .await
        .unwrap();
    app.set_checkpoint(2).await;
    // Position 2 exists in the log (X-Min-Position beyond its head is refused at once).
    app.grow_log_to(2).await;
    let changed = app
        .send(
            Req::get(&path)
                .token(&admin)
                .if_none_match(&etag)
                .min_position(2),
        )
        .await;
    assert_eq!(changed.ok()["version"], 2);
    assert_eq!(changed.etag(), "\"2\"");

    // Lists have tags too.
    let list = app.get("/api/v1/users", &admin).await;
    list.ok();
    let same = app
        .send(
            Req::get("/api/v1/users")
                .token(&admin)
                .if_none_match(list.etag()),
        )
        .await;
    assert_eq!(same.status, StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn without_master_keys_personal_data_is_unavailable_until_the_dev_keys_appear() {
    let dir = std::env::temp_dir().join(format!("query-api-keys-{}", Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join(query_api::DEV_MASTER_KEYS_FILE);
    let pool_file = file.clone();
    // No keys configured, and command-api has not made the dev keys yet.
    let app = crate::support::spawn_app_with(|store, _| {
        query_api::PersonalData::from_dev_file(store.pool().clone(), pool_file)
    })
    .await;
    let id = app.user_at(at(1)).await;
    app.set_checkpoint(1).await;
    let admin = app.as_role(Role::Admin);
    let path = format!("/api/v1/users/{id}");
    let answer = app.get(&path, &admin).await;
    answer.problem(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    assert!(answer.header("retry-after").is_some());

    // What command-api writes on its first start: version 1, the test's master key.
    std::fs::write(&file, "1:BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n").unwrap();
    let body = app.get(&path, &admin).await.ok();
    assert!(body["email"].as_str().unwrap().ends_with("@example.com"));
    std::fs::remove_dir_all(&dir).unwrap();
}
