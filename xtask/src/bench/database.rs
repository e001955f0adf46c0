//! A database of the benchmark's own, with the event store's and the keyring's tables
//! and a `raw_bench` table for the raw limit; dropped at the end.

use std::str::FromStr;

use anyhow::Context;
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::{ConnectOptions, Connection, Executor};

use crate::database::DbArgs;

/// A database of its own for the benchmark, dropped at the end.
pub(crate) struct BenchDatabase {
    server: MySqlConnectOptions,
    pub(crate) options: MySqlConnectOptions,
    pub(crate) name: String,
}

impl BenchDatabase {
    pub(crate) async fn create(db: &DbArgs) -> anyhow::Result<Self> {
        let owner = MySqlConnectOptions::from_str(&db.database_url)?;
        let server = owner.clone().database("");
        let name = format!("example_bench_{}", uuid::Uuid::new_v4().simple());
        let mut conn = server.connect().await.context("connecting as the owner")?;
        conn.execute(format!("CREATE DATABASE `{name}`").as_str())
            .await?;
        let _ = conn.close().await;
        let options = server.clone().database(&name);
        let pool = MySqlPoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        event_store::migrator().run(&pool).await?;
        keyring::migrator().run(&pool).await?;
        pool.execute(
            "CREATE TABLE raw_bench (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, \
             stream_id VARCHAR(200) NOT NULL, data LONGTEXT NOT NULL) ENGINE = InnoDB",
        )
        .await?;
        pool.close().await;
        Ok(Self {
            server,
            options,
            name,
        })
    }

    pub(crate) async fn drop_it(self) -> anyhow::Result<()> {
        let mut conn = self.server.connect().await?;
        conn.execute(format!("DROP DATABASE IF EXISTS `{}`", self.name).as_str())
            .await?;
        Ok(())
    }
}
