//! The one typed configuration of the service, parsed by `main` (clap, every field also
//! from the environment). Names match command-api's where they mean the same thing
//! (`DATABASE_URL`, `MASTER_KEYS`, `MASTER_KEYS_FILE`, `DEV_DIR`, the auth and log groups).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use keyring::MasterKeys;
pub use platform::Secret;
use platform::{AuthArgs, ListenerArgs, TelemetryArgs};

use crate::state::Settings;

/// Default address of the service (API.md).
pub const DEFAULT_ADDR: &str = "127.0.0.1:8082";
/// The dev owner account (API.md). Production gives the service an account with SELECT
/// on the read tables, `events` and `data_keys` only: it writes nothing.
pub const DEFAULT_DATABASE_URL: &str = "mysql://example:example@127.0.0.1:3306/example";
/// The dev master keys inside `DEV_DIR`, the file command-api makes on first start.
pub const DEV_MASTER_KEYS_FILE: &str = "master-keys";
/// The dev anchors' JWKS inside `DEV_DIR`, the file the relay's anchor signer makes.
pub const DEV_ANCHOR_JWKS_FILE: &str = "anchor-jwks.json";
/// The projection whose checkpoint the views follow.
pub const DEFAULT_PROJECTION: &str = "main";

#[derive(Clone, clap::Parser)]
#[command(
    name = "query-api",
    about = "The ledger's views and audit endpoints (API.md)"
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "QUERY_API_ADDR", default_value = DEFAULT_ADDR)]
    pub addr: SocketAddr,
    /// The read tables (users_view, balances_view, transactions_view, checkpoints).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = DEFAULT_DATABASE_URL,
        hide_default_value = true,
        hide_env_values = true
    )]
    pub database_url: Secret,
    /// The event log (and `data_keys`, unless KEYS_DATABASE_URL), when it lives in
    /// another database than the read tables; `DATABASE_URL` otherwise.
    #[arg(long, env = "EVENTS_DATABASE_URL", hide_env_values = true)]
    pub events_database_url: Option<Secret>,
    /// The database holding `data_keys`, when command-api keeps the data keys apart
    /// (its KEYS_DATABASE_URL); the event log's database otherwise.
    #[arg(long, env = "KEYS_DATABASE_URL", hide_env_values = true)]
    pub keys_database_url: Option<Secret>,
    /// Connections per database pool.
    #[arg(long, env = "QUERY_API_POOL_SIZE", default_value_t = 8)]
    pub pool_size: u32,
    /// Master keys `1:<base64>,2:<base64>`, to open e-mail addresses and names.
    #[arg(long, env = "MASTER_KEYS", hide_env_values = true)]
    pub master_keys: Option<Secret>,
    /// File holding the master keys in the same format (a mounted secret).
    #[arg(long, env = "MASTER_KEYS_FILE", conflicts_with = "master_keys")]
    pub master_keys_file: Option<PathBuf>,
    /// Where the dev master keys are read from (`<DEV_DIR>/master-keys`) when none are
    /// configured. query-api never makes keys: command-api does, on its first start.
    #[arg(long, env = "DEV_DIR", default_value = ".dev")]
    pub dev_dir: PathBuf,
    /// The anchors' JWKS (public keys only), served at `/api/v1/audit/anchors/jwks`.
    /// Unset: `<DEV_DIR>/anchor-jwks.json`, which the relay's signer makes in dev.
    #[arg(long, env = "ANCHOR_JWKS_FILE")]
    pub anchor_jwks_file: Option<PathBuf>,
    /// The projection (row of `checkpoints`) the views follow.
    #[arg(long, env = "PROJECTION", default_value = DEFAULT_PROJECTION)]
    pub projection: String,
    /// How often the checkpoint is read while a request waits for `X-Min-Position`.
    #[arg(long, env = "CHECKPOINT_POLL_MS", default_value_t = 5)]
    pub checkpoint_poll_ms: u64,
    /// Users and balances kept in memory, per view.
    #[arg(long, env = "VIEW_CACHE_CAPACITY", default_value_t = 10_000)]
    pub view_cache_capacity: usize,
    /// The CloudEvents `source` of `/api/v1/events`: the relay's `RELAY_SOURCE`, so the
    /// bodies are the same bytes a RabbitMQ subscriber gets.
    #[arg(long, env = "EVENTS_SOURCE", default_value = event_store::relay::DEFAULT_SOURCE)]
    pub events_source: String,
    /// Server-Sent Events subscriptions open at most.
    #[arg(long, env = "SUBSCRIPTIONS_MAX", default_value_t = 256)]
    pub subscriptions_max: usize,
    /// Seconds a subscriber may leave its buffer full before it is cut.
    #[arg(long, env = "SUBSCRIBER_SLOW_SECS", default_value_t = 10)]
    pub subscriber_slow_secs: u64,
    #[command(flatten)]
    pub listener: ListenerArgs,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Secrets print as `<redacted>` (see `Secret`).
        f.debug_struct("Config")
            .field("addr", &self.addr)
            .field("database_url", &self.database_url)
            .field("events_database_url", &self.events_database_url)
            .field("keys_database_url", &self.keys_database_url)
            .field("pool_size", &self.pool_size)
            .field("master_keys", &self.master_keys)
            .field("master_keys_file", &self.master_keys_file)
            .field("dev_dir", &self.dev_dir)
            .field("anchor_jwks_file", &self.anchor_jwks_file)
            .field("projection", &self.projection)
            .field("checkpoint_poll_ms", &self.checkpoint_poll_ms)
            .field("view_cache_capacity", &self.view_cache_capacity)
            .field("listener", &self.listener)
            .field("auth", &self.auth)
            .field("telemetry", &self.telemetry)
            .finish()
    }
}

/// Where the master keys come from.
pub enum MasterKeySource {
    /// `MASTER_KEYS` or `MASTER_KEYS_FILE`.
    Configured(MasterKeys),
    /// Nothing configured: the dev file, read when it appears (command-api may start
    /// after us and make it).
    DevFile(PathBuf),
}

impl Config {
    pub fn master_key_source(&self) -> anyhow::Result<MasterKeySource> {
        Ok(match (&self.master_keys, &self.master_keys_file) {
            (Some(spec), _) => MasterKeySource::Configured(
                MasterKeys::parse(spec.expose()).context("parsing MASTER_KEYS")?,
            ),
            (None, Some(path)) => MasterKeySource::Configured(
                MasterKeys::from_file(path).context("reading MASTER_KEYS_FILE")?,
            ),
            (None, None) => MasterKeySource::DevFile(self.dev_dir.join(DEV_MASTER_KEYS_FILE)),
        })
    }

    /// The anchors' JWKS file.
    pub fn anchor_jwks(&self) -> PathBuf {
        self.anchor_jwks_file
            .clone()
            .unwrap_or_else(|| self.dev_dir.join(DEV_ANCHOR_JWKS_FILE))
    }

    /// The view settings of the router state.
    pub fn settings(&self) -> Settings {
        Settings {
            projection: self.projection.clone(),
            poll_interval: Duration::from_millis(self.checkpoint_poll_ms.max(1)),
            cache_capacity: self.view_cache_capacity,
            subscriptions: crate::events::SubscriptionSettings {
                source: self.events_source.clone(),
                max_open: self.subscriptions_max,
                slow_after: Duration::from_secs(self.subscriber_slow_secs.max(1)),
                ..crate::events::SubscriptionSettings::default()
            },
            ..Settings::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn defaults_follow_api_md() {
        let config = Config::try_parse_from(["query-api"]).unwrap();
        assert_eq!(config.addr.to_string(), DEFAULT_ADDR);
        assert_eq!(config.database_url.expose(), DEFAULT_DATABASE_URL);
        assert_eq!(config.projection, "main");
        assert!(matches!(
            config.master_key_source().unwrap(),
            MasterKeySource::DevFile(path) if path == std::path::Path::new(".dev/master-keys")
        ));
    }

    #[test]
    fn configured_keys_win_and_secrets_stay_hidden() {
        let config = Config::try_parse_from([
            "query-api",
            "--master-keys",
            "1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            "--database-url",
            "mysql://u:hunter2@h/db",
        ])
        .unwrap();
        assert!(matches!(
            config.master_key_source().unwrap(),
            MasterKeySource::Configured(_)
        ));
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("AAAA"),
            "{shown}"
        );
    }
}
