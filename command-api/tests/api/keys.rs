//! `command-api rewrap-keys`: rotating the master key. After the rewrap every data key is
//! under the new version, and the personal data in the log opens with the new master key
//! alone, so the old version can be retired.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use clap::Parser;
use command_api::{Config, Task};
use keyring::{KeyStore, KeyStoreOptions, MasterKeys, SealedText};
use serde_json::Value;

use crate::support::{random_key, spawn_app};

#[tokio::test]
async fn a_rewrap_moves_every_data_key_to_the_new_master_key() {
    let app = spawn_app().await;
    let (ada, bob) = (app.someone().await, app.someone().await);
    let new_key = random_key();
    let base = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| event_store::testing::DEFAULT_DATABASE_URL.to_owned());
    let (server, _) = base.rsplit_once('/').unwrap();
    let url = format!("{server}/{}", app.db.name);
    let masters = format!(
        "1:{},2:{}",
        STANDARD.encode(app.master_key),
        STANDARD.encode(new_key)
    );
    let index = STANDARD.encode(random_key());
    let config = Config::try_parse_from([
        "command-api",
        "--database-url",
        &url,
        "--master-keys",
        &masters,
        "--blind-index-key",
        &index,
        "rewrap-keys",
        "--batch",
        "1",
    ])
    .unwrap();
    let Some(Task::RewrapKeys { batch }) = config.task else {
        panic!("rewrap-keys parses as the task");
    };
    assert_eq!(command_api::rewrap_keys(&config, batch).await.unwrap(), 2);
    // Again: nothing left to move.
    assert_eq!(command_api::rewrap_keys(&config, batch).await.unwrap(), 0);

    let versions: Vec<(u32,)> = sqlx::query_as("SELECT master_version FROM data_keys")
        .fetch_all(app.store.pool())
        .await
        .unwrap();
    assert_eq!(versions, vec![(2,), (2,)]);

    // Only the new master key now: every sealed field in the log still opens.
    let only_new = KeyStore::with_options(
        app.store.pool().clone(),
        MasterKeys::from_keys([(2, new_key)]).unwrap(),
        KeyStoreOptions {
            cache_capacity: 0,
            ..KeyStoreOptions::default()
        },
    );
    for user in [ada.id, bob.id] {
        let events = app.events(user).await;
        let data: Value = serde_json::from_str(&events[0].data).unwrap();
        let sealed = SealedText::parse(data["email_ciphertext"].as_str().unwrap()).unwrap();
        let email = only_new
            .open(user, &sealed, command_api::EMAIL_FIELD)
            .await
            .unwrap();
        assert_eq!(email.as_str(), format!("{}@example.com", user.simple()));
    }
}
