//! Accounts and databases. The project makes its own MariaDB accounts: an owner that
//! runs migrations (and, in development, creates test databases) and a writer limited to
//! INSERT/SELECT on the event table. It bootstraps them as MariaDB's root over the local
//! socket, because sqlx cannot log in as a password-less root over TCP.

use std::path::Path;
use std::str::FromStr;

use anyhow::{bail, Context};
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::{ConnectOptions, Connection, Executor, MySqlConnection, Row};

/// The read tables (owned by the projector), applied from the files: xtask depends on
/// no service crate.
static READ_MODEL: sqlx::migrate::Migrator = sqlx::migrate::Migrator {
    ignore_missing: true,
    ..sqlx::migrate!("../migrations/readmodel")
};

/// The read-model migration set, for benchmarks that prepare databases of their own.
pub(crate) fn read_model() -> &'static sqlx::migrate::Migrator {
    &READ_MODEL
}

pub const DEFAULT_DATABASE_URL: &str = "mysql://example:example@127.0.0.1:3306/example";
pub const DEFAULT_WRITER_URL: &str = "mysql://example_writer:example_writer@127.0.0.1:3306/example";
const SOCKETS: [&str; 3] = [
    "/run/mysqld/mysqld.sock",
    "/var/run/mysqld/mysqld.sock",
    "/tmp/mysql.sock",
];

#[derive(clap::Args, Clone)]
pub struct DbArgs {
    /// The owner account and the event-store database.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// The writer account the services append with (INSERT/SELECT on events only).
    #[arg(long, env = "WRITER_DATABASE_URL", default_value = DEFAULT_WRITER_URL)]
    pub writer_url: String,
}

impl DbArgs {
    pub fn database_url_redacted(&self) -> String {
        match MySqlConnectOptions::from_str(&self.database_url) {
            Ok(o) => format!(
                "mysql://{}@{}:{}/{}",
                o.get_username(),
                o.get_host(),
                o.get_port(),
                o.get_database().unwrap_or_default()
            ),
            Err(_) => "(unparsable DATABASE_URL)".into(),
        }
    }
}

/// The same URL naming another database.
pub fn with_database(url: &str, name: &str) -> String {
    match url.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{name}"),
        None => url.to_owned(),
    }
}

struct Account {
    user: String,
    password: String,
    database: String,
    options: MySqlConnectOptions,
}

fn account(url: &str, what: &str) -> anyhow::Result<Account> {
    let options =
        MySqlConnectOptions::from_str(url).with_context(|| format!("parsing {what} URL"))?;
    // The password is not readable from the options; take it from the URL itself.
    let parsed = url::Url::parse(url).with_context(|| format!("parsing {what} URL"))?;
    let password = percent_encoding::percent_decode_str(parsed.password().unwrap_or_default())
        .decode_utf8_lossy()
        .into_owned();
    let user = options.get_username().to_owned();
    let database = options.get_database().unwrap_or_default().to_owned();
    let ident_ok =
        |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !ident_ok(&user) || !ident_ok(&database) {
        bail!("the {what} URL needs a user and a database named with [A-Za-z0-9_]");
    }
    Ok(Account {
        user,
        password,
        database,
        options,
    })
}

fn quote(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\'', "\\'")
}

async fn root_connection() -> Option<MySqlConnection> {
    for socket in SOCKETS {
        if !Path::new(socket).exists() {
            continue;
        }
        let options = MySqlConnectOptions::new().socket(socket).username("root");
        if let Ok(conn) = options.connect().await {
            return Some(conn);
        }
    }
    None
}

/// Makes sure the owner account exists with what it needs: everything on `example` and
/// `example_*` databases (the event store, the read model, test databases), and CREATE
/// USER to provision the writer.
pub async fn prepare_test_account(db: &DbArgs) -> anyhow::Result<()> {
    let owner = account(&db.database_url, "DATABASE_URL")?;
    if let Some(mut root) = root_connection().await {
        let (u, p) = (&owner.user, quote(&owner.password));
        let prefix = owner.database.replace('_', "\\_");
        for host in ["%", "localhost"] {
            for sql in [
                format!("CREATE USER IF NOT EXISTS '{u}'@'{host}' IDENTIFIED BY '{p}'"),
                format!("ALTER USER '{u}'@'{host}' IDENTIFIED BY '{p}'"),
                format!("GRANT ALL PRIVILEGES ON `{prefix}`.* TO '{u}'@'{host}' WITH GRANT OPTION"),
                format!(
                    "GRANT ALL PRIVILEGES ON `{prefix}\\_%`.* TO '{u}'@'{host}' WITH GRANT OPTION"
                ),
                format!("GRANT CREATE USER ON *.* TO '{u}'@'{host}'"),
            ] {
                root.execute(sql.as_str())
                    .await
                    .with_context(|| format!("bootstrapping account {u} as root"))?;
            }
        }
        let _ = root.close().await;
    }
    let server = owner.options.clone().database("");
    match server.connect().await {
        Ok(conn) => {
            let _ = conn.close().await;
            Ok(())
        }
        Err(e) => bail!(
            "cannot log in to MariaDB as {} ({e}); and MariaDB's root is not reachable over \
             the local socket ({}) to create that account: create it, or run as a user \
             that may use the root socket",
            owner.user,
            SOCKETS.join(", ")
        ),
    }
}

/// Creates the database, applies the event-store, keyring and read-model migrations and
/// grants the writer.
pub async fn prepare(db: &DbArgs) -> anyhow::Result<()> {
    prepare_test_account(db).await?;
    let owner = account(&db.database_url, "DATABASE_URL")?;
    let writer = account(&db.writer_url, "WRITER_DATABASE_URL")?;
    if writer.database != owner.database {
        bail!("WRITER_DATABASE_URL must name the same database as DATABASE_URL");
    }
    let mut server = owner.options.clone().database("").connect().await?;
    server
        .execute(format!("CREATE DATABASE IF NOT EXISTS `{}`", owner.database).as_str())
        .await
        .context("creating the database")?;
    let _ = server.close().await;
    let pool = MySqlPoolOptions::new()
        .max_connections(2)
        .connect_with(owner.options.clone())
        .await
        .context("connecting as the owner")?;
    event_store::migrator()
        .run(&pool)
        .await
        .context("applying migrations/eventstore")?;
    keyring::migrator()
        .run(&pool)
        .await
        .context("applying keyring/migrations")?;
    READ_MODEL
        .run(&pool)
        .await
        .context("applying migrations/readmodel")?;
    event_store::grant_writer(&pool, &owner.database, &writer.user, &writer.password)
        .await
        .context("granting the writer account")?;
    // Shredding a user's data key overwrites it: the writer may UPDATE `data_keys`.
    (&pool)
        .execute(
            format!(
                "GRANT SELECT, INSERT, UPDATE ON `{}`.`data_keys` TO '{}'@'%'",
                owner.database, writer.user
            )
            .as_str(),
        )
        .await
        .context("granting the writer the keyring")?;
    // command-api makes, pauses, resumes and deletes webhook subscriptions.
    (&pool)
        .execute(
            format!(
                "GRANT SELECT, INSERT, UPDATE, DELETE ON `{}`.`webhook_subscriptions` TO '{}'@'%'",
                owner.database, writer.user
            )
            .as_str(),
        )
        .await
        .context("granting the writer the webhook subscriptions")?;
    pool.close().await;
    Ok(())
}

/// Drops test and benchmark databases an interrupted run left behind (none of their
/// tables is newer than an hour).
pub async fn drop_stale_test_databases(db: &DbArgs) -> anyhow::Result<()> {
    let owner = account(&db.database_url, "DATABASE_URL")?;
    let mut conn = owner.options.clone().database("").connect().await?;
    let stale = sqlx::query(
        "SELECT s.SCHEMA_NAME FROM information_schema.SCHEMATA s \
         LEFT JOIN information_schema.TABLES t ON t.TABLE_SCHEMA = s.SCHEMA_NAME \
         WHERE s.SCHEMA_NAME LIKE 'example\\_t\\_%' OR s.SCHEMA_NAME LIKE 'example\\_bench\\_%' \
         GROUP BY s.SCHEMA_NAME \
         HAVING COALESCE(MAX(t.CREATE_TIME), '1970-01-01') < NOW() - INTERVAL 1 HOUR",
    )
    .fetch_all(&mut conn)
    .await
    .context("listing stale test databases")?;
    for row in stale {
        let name: String = row.try_get(0)?;
        if name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            conn.execute(format!("DROP DATABASE IF EXISTS `{name}`").as_str())
                .await?;
        }
    }
    let _ = conn.close().await;
    Ok(())
}
