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

/// Everything of `db` as `mariadb-dump` writes it (binary columns as hex), lowercased.
fn full_dump(db: &event_store::testing::TestDatabase) -> String {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| event_store::testing::DEFAULT_DATABASE_URL.into());
    let url = url::Url::parse(&url).unwrap();
    let out = std::process::Command::new("mariadb-dump")
        .arg(format!("--host={}", url.host_str().unwrap_or("127.0.0.1")))
        .arg(format!("--port={}", url.port().unwrap_or(3306)))
        .arg(format!("--user={}", url.username()))
        .env("MYSQL_PWD", url.password().unwrap_or_default())
        .args(["--hex-blob", "--skip-comments", "--databases", &db.name])
        .output()
        .expect("mariadb-dump (from the mariadb-client package) runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_lowercase()
}

/// What someone holding a dump could compute from a guessed address, to see whether it is
/// there: the address in clear, plain hashes of it (as hex and base64), and the plain
/// SHA-256 fingerprint of a request body that held it (the form idempotency records once
/// kept).
fn guesses(address: &str, requests: &[(&str, &str, String)], keys: &[Vec<u8>]) -> Vec<String> {
    use base64::Engine;
    use sha2::{Digest, Sha256, Sha512};
    let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
    let mut digests: Vec<Vec<u8>> = Vec::new();
    for form in [
        address.to_owned(),
        address.to_lowercase(),
        address.trim().to_lowercase(),
    ] {
        digests.push(Sha256::digest(form.as_bytes()).to_vec());
        digests.push(Sha512::digest(form.as_bytes()).to_vec());
    }
    for (method, path, body) in requests {
        let mut hash = Sha256::new();
        for part in [method.as_bytes(), path.as_bytes()] {
            hash.update((part.len() as u64).to_be_bytes());
            hash.update(part);
        }
        hash.update(body.as_bytes());
        digests.push(hash.finalize().to_vec());
    }
    for key in keys {
        digests.push(Sha256::digest(key).to_vec());
    }
    let mut out = vec![address.to_lowercase()];
    for d in digests {
        out.push(hex::encode(&d));
        out.push(b64(&d).to_lowercase());
    }
    out
}

#[tokio::test]
async fn after_erasure_nothing_in_a_full_dump_confirms_a_guessed_address() {
    let app = spawn_app().await;
    let id = Uuid::now_v7();
    let token = app.token(Role::User, id);
    let first = "Grace.Dump@Example.org";
    let second = "grace.second@example.org";
    let register_key = format!("register-{first}");
    app.send(
        Req::post("/api/v1/users")
            .token(&token)
            .idempotency_key(&register_key)
            .json(json!({"email": first, "display_name": "Grace Dump"})),
    )
    .await
    .ok(StatusCode::CREATED);
    app.send(
        Req::patch(format!("/api/v1/users/{id}"))
            .token(&token)
            .idempotency_key(&format!("change-{second}"))
            .if_match(1)
            .json(json!({"email": second})),
    )
    .await
    .ok(StatusCode::OK);
    app.send(
        Req::post(format!("/api/v1/users/{id}/deactivate"))
            .token(&token)
            .idempotency_key("deactivate-1")
            .json(json!({"reason": format!("asked by {first} in a letter")})),
    )
    .await
    .ok(StatusCode::OK);
    app.send(Req::delete(format!("/api/v1/users/{id}/personal-data")).token(&token))
        .await
        .ok(StatusCode::OK);

    let dump = full_dump(&app.db);
    let user = "/api/v1/users".to_owned();
    let requests = [
        (
            "POST",
            user.as_str(),
            format!(r#"{{"user_id":null,"email":"{first}","display_name":"Grace Dump"}}"#),
        ),
        (
            "PATCH",
            &format!("/api/v1/users/{id}") as &str,
            format!(r#"{{"email":"{second}","display_name":null}}"#),
        ),
        (
            "POST",
            &format!("/api/v1/users/{id}/deactivate") as &str,
            format!(r#"{{"reason":"asked by {first} in a letter"}}"#),
        ),
    ];
    // The plain hash an idempotency key was once stored as: SHA-256(sub || key).
    let subject_keys: Vec<Vec<u8>> = [register_key.clone(), format!("change-{second}")]
        .iter()
        .map(|k| [id.as_bytes().as_slice(), k.as_bytes()].concat())
        .collect();
    let mut found = Vec::new();
    for address in [first, second] {
        for guess in guesses(address, &requests, &subject_keys) {
            if dump.contains(&guess) {
                found.push(format!("{address}: {guess}"));
            }
        }
    }
    assert!(found.is_empty(), "the dump confirms: {found:#?}");
}

/// `(wrapped key present, shredded_at set)` of `subject`'s data key.
async fn key_state(pool: &sqlx::MySqlPool, subject: Uuid) -> (bool, bool) {
    let row = sqlx::query(
        "SELECT wrapped IS NOT NULL, shredded_at IS NOT NULL FROM data_keys WHERE subject = ?",
    )
    .bind(subject)
    .fetch_one(pool)
    .await
    .unwrap();
    (row.get::<bool, _>(0), row.get::<bool, _>(1))
}

/// Erasure heals itself: a command-api killed between the erasure's append and its
/// shred leaves a live key behind, and the next one to start shreds it.
///
/// How "between" is made certain: command-api runs as the shipped binary, a process of
/// its own, and reaches its data keys (KEYS_DATABASE_URL) through a fault proxy while
/// the log is reached directly. After the registration (whose key went through the
/// proxy), the proxy holds everything sent to MariaDB: the erasure's append commits on
/// the log's connection, and its shred goes into the proxy and never reaches the server.
/// Once the log holds the erasure and the proxy has swallowed the shred's bytes, the
/// process gets SIGKILL, as a crash at that moment would. Holding (rather than refusing
/// or cutting) keeps the shred in flight instead of failing it, so no error path of the
/// handler runs, and nothing the server could still complete after the kill exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erasure_cut_short_by_a_crash_is_completed_after_a_restart() {
    let app = spawn_app().await;
    let pool = app.store.pool().clone();
    let (host, port) = (
        app.db.options.get_host().to_owned(),
        app.db.options.get_port(),
    );
    let proxy = faults::FaultProxy::to(&host, port).await.unwrap();
    let keys_url = app.database_url(Some(proxy.addr()));
    let first = app.start_binary(&[("KEYS_DATABASE_URL", &keys_url)]);

    let id = Uuid::now_v7();
    let token = app.token(Role::User, id);
    let body = json!({"email": ADDRESS, "display_name": NAME}).to_string();
    let (status, _) = first
        .send("POST", "/api/v1/users", &token, &body)
        .await
        .unwrap();
    assert_eq!(status, 201);
    assert_eq!(key_state(&pool, id).await, (true, false));

    proxy.set(faults::Direction::ToServer, faults::Flow::Hold);
    let erasing = tokio::spawn({
        let path = format!("/api/v1/users/{id}/personal-data");
        let token = token.clone();
        let addr = first.addr;
        async move {
            // Answered only if the shred completed, which the proxy prevents.
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            let request = format!(
                "DELETE {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
                 Authorization: Bearer {token}\r\nContent-Length: 0\r\n\r\n"
            );
            tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes())
                .await
                .unwrap();
            let mut answer = Vec::new();
            let _ = tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut answer).await;
            answer
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let erased = app
            .events(id)
            .await
            .iter()
            .any(|e| e.event_type.as_str() == "user.personal_data_erased");
        if erased && proxy.stats().held_bytes > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the erasure's append and its held shred"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    first.kill();
    let answer = erasing.await.unwrap();
    assert!(answer.is_empty(), "no answer came before the crash");
    assert_eq!(
        key_state(&pool, id).await,
        (true, false),
        "the crash left the erased user's key live"
    );

    // A restart, the keys' database reachable again.
    drop(proxy);
    let second = app.start_binary(&[]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while key_state(&pool, id).await != (false, true) {
        assert!(
            std::time::Instant::now() < deadline,
            "the restarted command-api did not shred the erased user's key"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // The sweep counts a shred once it returned, a moment after the row changed.
    while second.metric("erasure_sweeper_shredded_total").await != 1.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the sweep did not count its shred"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    second.kill();
}

/// The periodic sweep: an erasure whose shred hangs on a dead connection to the keys'
/// database (the proxy swallowing what is sent, as a half-open link does) is completed
/// by the running service's next sweep once the database is reachable again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shred_stuck_on_a_dead_connection_is_completed_by_a_later_sweep() {
    let app = spawn_app().await;
    let pool = app.store.pool().clone();
    let (host, port) = (
        app.db.options.get_host().to_owned(),
        app.db.options.get_port(),
    );
    let proxy = faults::FaultProxy::to(&host, port).await.unwrap();
    let keys_url = app.database_url(Some(proxy.addr()));
    let server = app.start_binary(&[
        ("KEYS_DATABASE_URL", &keys_url),
        ("ERASURE_SWEEP_INTERVAL_SECS", "1"),
    ]);
    let id = Uuid::now_v7();
    let token = app.token(Role::User, id);
    let body = json!({"email": ADDRESS, "display_name": NAME}).to_string();
    let (status, _) = server
        .send("POST", "/api/v1/users", &token, &body)
        .await
        .unwrap();
    assert_eq!(status, 201);

    proxy.set(faults::Direction::ToServer, faults::Flow::Hold);
    let path = format!("/api/v1/users/{id}/personal-data");
    let erasing = server.send("DELETE", &path, &token, "");
    let stuck = async {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let erased = app
                .events(id)
                .await
                .iter()
                .any(|e| e.event_type.as_str() == "user.personal_data_erased");
            if erased && proxy.stats().held_bytes > 0 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "the held shred");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        // The link comes back for new connections; the stuck one stays stuck.
        proxy.set(faults::Direction::ToServer, faults::Flow::Pass);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while key_state(&pool, id).await != (false, true) {
            assert!(
                std::time::Instant::now() < deadline,
                "no sweep shredded the erased user's key"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    // The erasure is recorded while its shred hangs: it is answered within the key
    // database's limit, and never with an error that says "not applied".
    let (answer, ()) = tokio::join!(erasing, stuck);
    let (status, body) = answer.unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "outcome_unknown", "{body}");
    assert_eq!(server.metric("erasure_sweeper_shredded_total").await, 1.0);
    server.kill();
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
