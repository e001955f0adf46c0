//! The one typed configuration of the service, parsed by `main` (clap, every field also
//! from the environment), and the dev fallback for the two secrets.

use std::fmt;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use keyring::{BlindIndex, MasterKeys};
use ledger::CurrencySet;
pub use platform::Secret;
use platform::{AuthArgs, ListenerArgs, TelemetryArgs};

/// Default address of the service (API.md).
pub const DEFAULT_ADDR: &str = "127.0.0.1:8081";
/// The writer account: INSERT/SELECT on `events`, claims and `data_keys` (never the owner).
pub const DEFAULT_DATABASE_URL: &str =
    "mysql://example_writer:example_writer@127.0.0.1:3306/example";
/// File names inside the dev directory.
pub const DEV_MASTER_KEYS_FILE: &str = "master-keys";
pub const DEV_BLIND_INDEX_KEY_FILE: &str = "blind-index-key";
pub const DEV_ERASURE_REGISTER_FILE: &str = "erasure-register.ndjson";

#[derive(Clone, clap::Parser)]
#[command(name = "command-api", about = "The ledger's command API (API.md)")]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "COMMAND_API_ADDR", default_value = DEFAULT_ADDR)]
    pub addr: SocketAddr,
    /// The event store, as the writer account.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = DEFAULT_DATABASE_URL,
        hide_default_value = true,
        hide_env_values = true
    )]
    pub database_url: Secret,
    /// The database holding the data keys (`data_keys`, the keyring migration set), when
    /// it is reached by another route or account than DATABASE_URL, or kept apart from
    /// the log (then out of the log's backups). Erasure shreds there after its append
    /// committed to the log; the erasure sweeper completes any shred that did not
    /// happen. Default: DATABASE_URL.
    #[arg(long, env = "KEYS_DATABASE_URL", hide_env_values = true)]
    pub keys_database_url: Option<Secret>,
    /// Master keys `1:<base64>,2:<base64>` (the highest version wraps new data keys).
    #[arg(long, env = "MASTER_KEYS", hide_env_values = true)]
    pub master_keys: Option<Secret>,
    /// File holding the master keys in the same format (a mounted secret).
    #[arg(long, env = "MASTER_KEYS_FILE", conflicts_with = "master_keys")]
    pub master_keys_file: Option<PathBuf>,
    /// Key of the e-mail blind index: 32 bytes of base64.
    #[arg(long, env = "BLIND_INDEX_KEY", hide_env_values = true)]
    pub blind_index_key: Option<Secret>,
    /// File holding the blind-index key.
    #[arg(long, env = "BLIND_INDEX_KEY_FILE", conflicts_with = "blind_index_key")]
    pub blind_index_key_file: Option<PathBuf>,
    /// The erasure register, a file outside the database and its backups, to which
    /// every erasure is appended (docs/adr/0019). Unset: `<DEV_DIR>/erasure-register.ndjson`.
    #[arg(long, env = "ERASURE_REGISTER_FILE")]
    pub erasure_register_file: Option<PathBuf>,
    /// Where dev secrets are loaded from, or made, when no key is configured.
    #[arg(long, env = "DEV_DIR", default_value = ".dev")]
    pub dev_dir: PathBuf,
    /// Serve `GET /dev/token` (tokens signed with the dev key in `dev_dir`). Development
    /// only.
    #[arg(long, env = "DEV_TOKENS", default_value_t = false)]
    pub dev_tokens: bool,
    /// ISO 4217 codes the ledger holds, comma-separated.
    #[arg(
        long,
        env = "CURRENCIES",
        default_value = "EUR,USD,GBP,CHF,JPY",
        value_delimiter = ','
    )]
    pub currencies: Vec<String>,
    /// Attempts of a command whose streams keep moving under it, before 409
    /// `concurrency_conflict`.
    #[arg(long, env = "COMMAND_MAX_ATTEMPTS", default_value_t = crate::execute::DEFAULT_MAX_ATTEMPTS)]
    pub max_attempts: u32,
    /// How long a command's append may take before it is answered anyway: with 503
    /// `unavailable` when nothing was written, or `outcome_unknown` when its commit was
    /// sent and the log could not be asked in time (docs/adr/0012).
    #[arg(long, env = "COMMAND_DEADLINE_SECS", default_value_t = 10)]
    pub deadline_secs: u64,
    /// How long an `Idempotency-Key` record is kept: a repeat after that runs the command
    /// again. A client's own `transaction_id` never expires.
    #[arg(long, env = "IDEMPOTENCY_TTL_SECS", default_value_t = 24 * 60 * 60)]
    pub idempotency_ttl_secs: u64,
    /// How often expired idempotency records are swept.
    #[arg(long, env = "IDEMPOTENCY_SWEEP_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub idempotency_sweep_secs: u64,
    /// Establishing a database connection, at most.
    #[arg(long, env = "DATABASE_CONNECT_TIMEOUT_SECS", default_value_t = 3)]
    pub connect_timeout_secs: u64,
    /// Waiting for one reply of the database, at most (statements are limited
    /// server-side a little below it).
    #[arg(long, env = "DATABASE_READ_TIMEOUT_SECS", default_value_t = 5)]
    pub read_timeout_secs: u64,
    /// Allow webhook subscriptions to `http` and to loopback or private addresses
    /// (development only; the default refuses them).
    #[arg(long, env = "WEBHOOK_ALLOW_INSECURE", default_value_t = false)]
    pub webhook_allow_insecure: bool,
    /// Seconds between two sweeps for erased users whose data key is still live (an
    /// erasure cut short between its append and its shred); one sweep runs at start.
    #[arg(long, env = "ERASURE_SWEEP_INTERVAL_SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub erasure_sweep_interval_secs: u64,
    #[command(flatten)]
    pub listener: ListenerArgs,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
    /// An operator task instead of serving; none serves the API.
    #[command(subcommand)]
    pub task: Option<Task>,
}

/// Operator tasks, run once with the service's own settings.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Task {
    /// Rewraps every user's data key under the active (highest) master-key version, so
    /// an older version can be retired from MASTER_KEYS afterwards. Safe while the
    /// service runs and safe to repeat. Prints how many keys moved.
    RewrapKeys {
        /// Data keys per transaction.
        #[arg(long, default_value_t = 500)]
        batch: u32,
    },
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Secrets print as `<redacted>` (see `Secret`).
        f.debug_struct("Config")
            .field("addr", &self.addr)
            .field("database_url", &self.database_url)
            .field("keys_database_url", &self.keys_database_url)
            .field("master_keys", &self.master_keys)
            .field("master_keys_file", &self.master_keys_file)
            .field("blind_index_key", &self.blind_index_key)
            .field("blind_index_key_file", &self.blind_index_key_file)
            .field("dev_dir", &self.dev_dir)
            .field("erasure_register_file", &self.erasure_register_file)
            .field("currencies", &self.currencies)
            .field("max_attempts", &self.max_attempts)
            .field("idempotency_ttl_secs", &self.idempotency_ttl_secs)
            .field(
                "erasure_sweep_interval_secs",
                &self.erasure_sweep_interval_secs,
            )
            .field("listener", &self.listener)
            .field("auth", &self.auth)
            .field("telemetry", &self.telemetry)
            .field("task", &self.task)
            .finish()
    }
}

/// The keys the service needs besides the token keys.
pub struct Secrets {
    pub master_keys: MasterKeys,
    pub blind_index: BlindIndex,
}

impl Config {
    /// How long idempotency records live and how often they are swept.
    pub fn idempotency_expiry(&self) -> crate::idempotency::Expiry {
        crate::idempotency::Expiry {
            keep_for: std::time::Duration::from_secs(self.idempotency_ttl_secs),
            sweep_every: std::time::Duration::from_secs(self.idempotency_sweep_secs.max(1)),
        }
    }

    /// Where the data keys are: KEYS_DATABASE_URL, else DATABASE_URL.
    pub fn keys_database_url(&self) -> &Secret {
        self.keys_database_url
            .as_ref()
            .unwrap_or(&self.database_url)
    }

    /// The erasure register's file.
    pub fn erasure_register(&self) -> PathBuf {
        self.erasure_register_file
            .clone()
            .unwrap_or_else(|| self.dev_dir.join(DEV_ERASURE_REGISTER_FILE))
    }

    pub fn currency_set(&self) -> anyhow::Result<CurrencySet> {
        CurrencySet::new(&self.currencies).context("CURRENCIES must be ISO 4217 codes")
    }

    /// The configured master keys and blind-index key. With neither configured, the
    /// dev ones in `dev_dir` (made on first use); with only one of them, an error: a
    /// deployment that forgot one key must not run on a dev key it made up.
    pub fn secrets(&self) -> anyhow::Result<Secrets> {
        let master = match (&self.master_keys, &self.master_keys_file) {
            (Some(spec), _) => {
                Some(MasterKeys::parse(spec.expose()).context("parsing MASTER_KEYS")?)
            }
            (None, Some(path)) => {
                Some(MasterKeys::from_file(path).context("reading MASTER_KEYS_FILE")?)
            }
            (None, None) => None,
        };
        let index = match (&self.blind_index_key, &self.blind_index_key_file) {
            (Some(key), _) => {
                Some(BlindIndex::parse(key.expose()).context("parsing BLIND_INDEX_KEY")?)
            }
            (None, Some(path)) => {
                Some(BlindIndex::from_file(path).context("reading BLIND_INDEX_KEY_FILE")?)
            }
            (None, None) => None,
        };
        match (master, index) {
            (Some(master_keys), Some(blind_index)) => Ok(Secrets {
                master_keys,
                blind_index,
            }),
            (None, None) => {
                tracing::warn!(
                    dir = %self.dev_dir.display(),
                    "no MASTER_KEYS or BLIND_INDEX_KEY configured: using the dev secrets"
                );
                dev_secrets(&self.dev_dir)
            }
            _ => anyhow::bail!(
                "configure both MASTER_KEYS (or MASTER_KEYS_FILE) and BLIND_INDEX_KEY \
                 (or BLIND_INDEX_KEY_FILE), or neither to use the dev secrets"
            ),
        }
    }
}

/// The dev master key (version 1) and blind-index key, loaded from `dir/master-keys` and
/// `dir/blind-index-key`, each made (mode 0600) if missing. Safe to race with another
/// process doing the same: the first file written wins. Never logs key material.
pub fn dev_secrets(dir: &Path) -> anyhow::Result<Secrets> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let master_path = dir.join(DEV_MASTER_KEYS_FILE);
    let index_path = dir.join(DEV_BLIND_INDEX_KEY_FILE);
    create_unless_present(&master_path, || Ok(format!("1:{}\n", random_key()?)))?;
    create_unless_present(&index_path, || Ok(format!("{}\n", random_key()?)))?;
    Ok(Secrets {
        master_keys: MasterKeys::from_file(&master_path)
            .with_context(|| format!("loading dev master keys from {}", master_path.display()))?,
        blind_index: BlindIndex::from_file(&index_path).with_context(|| {
            format!("loading dev blind-index key from {}", index_path.display())
        })?,
    })
}

/// 32 random bytes from the operating system, in standard base64.
fn random_key() -> anyhow::Result<String> {
    let mut key = [0u8; 32];
    getrandom::getrandom(&mut key).context("reading the OS random source")?;
    let encoded = STANDARD.encode(key);
    key.fill(0);
    Ok(encoded)
}

fn create_unless_present(
    path: &Path,
    contents: impl FnOnce() -> anyhow::Result<String>,
) -> anyhow::Result<()> {
    if path.exists() {
        return Ok(());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(contents()?.as_bytes())
                .and_then(|()| file.sync_all())
                .with_context(|| format!("writing {}", path.display()))?;
            tracing::info!(path = %path.display(), "created a dev secret");
            Ok(())
        }
        // Another process made it first; its key is the one.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn defaults_follow_api_md() {
        let config = Config::try_parse_from(["command-api"]).unwrap();
        // The environment of the test run may set some of these (e.g. DATABASE_URL).
        let unset = |var: &str| std::env::var_os(var).is_none();
        if unset("COMMAND_API_ADDR") {
            assert_eq!(config.addr.to_string(), DEFAULT_ADDR);
        }
        if unset("DATABASE_URL") {
            assert_eq!(config.database_url.expose(), DEFAULT_DATABASE_URL);
        }
        if unset("CURRENCIES") {
            assert_eq!(config.currency_set().unwrap(), CurrencySet::default());
        }
        if unset("COMMAND_MAX_ATTEMPTS") {
            assert_eq!(config.max_attempts, 10);
        }
    }

    #[test]
    fn debug_output_hides_secrets() {
        let config = Config::try_parse_from([
            "command-api",
            "--master-keys",
            "1:c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXh4eHg=",
            "--database-url",
            "mysql://u:hunter2@h/db",
        ])
        .unwrap();
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("c2VjcmV0"),
            "{shown}"
        );
    }

    #[test]
    fn one_configured_key_without_the_other_is_an_error() {
        let config = Config::try_parse_from([
            "command-api",
            "--master-keys",
            "1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=",
            "--dev-dir",
            "/nonexistent/never-created",
        ])
        .unwrap();
        assert!(config.secrets().is_err());
        let config = Config::try_parse_from([
            "command-api",
            "--master-keys",
            "1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=",
            "--blind-index-key",
            "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=",
        ])
        .unwrap();
        let secrets = config.secrets().unwrap();
        assert_eq!(secrets.master_keys.active_version(), 1);
    }

    #[test]
    fn dev_secrets_are_made_once_and_then_reused() {
        let dir = std::env::temp_dir().join(format!("command-api-{}", uuid::Uuid::new_v4()));
        let first = dev_secrets(&dir).unwrap();
        let again = dev_secrets(&dir).unwrap();
        assert_eq!(
            first.blind_index.hash_email("a@b.co"),
            again.blind_index.hash_email("a@b.co")
        );
        assert_eq!(first.master_keys.active_version(), 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(DEV_MASTER_KEYS_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
