//! Accounts and databases. The project makes its own MariaDB accounts: an owner that
//! runs migrations (and, in development, creates test databases), and one account per
//! service with only what that service does (DESIGN.md §7, least privilege):
//!
//! | account | may |
//! |---|---|
//! | writer (command-api) | `SELECT, INSERT` on `events`; `SELECT, INSERT, DELETE` on `claims`; `SELECT, INSERT, UPDATE` on `data_keys` |
//! | writer, also | `SELECT, INSERT, UPDATE, DELETE` on `webhook_subscriptions` |
//! | relay | `SELECT` on `events`; `SELECT, INSERT, UPDATE` on `relay_checkpoints` and `anchors` |
//! | projector | `SELECT` on `events`, `parked_events` and `relay_checkpoints` (the highest epoch begun); `SELECT, INSERT, UPDATE` on the three view tables, `checkpoints` and `relay_epochs_seen` |
//! | reader (query-api) | `SELECT` on the view tables, `checkpoints`, `events` (audit, subscriptions), `data_keys`, `anchors`, and `relay_checkpoints` and `parked_events` (the operations page) |
//!
//! `projector rebuild`, `verify` and `park` are operator commands and run as the owner.
//! Table grants name tables, not table objects, so they follow the tables a rebuild swaps
//! in. `compose/mariadb/grants.sh` grants the same in compose; `cargo xtask ops-check`
//! compares the two. It bootstraps as MariaDB's root over the local socket, because sqlx
//! cannot log in as a password-less root over TCP.

use std::path::Path;
use std::str::FromStr;

use anyhow::{bail, Context};
use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sqlx::{ConnectOptions, Connection, Executor, MySqlConnection, Row};

pub const DEFAULT_DATABASE_URL: &str = "mysql://example:example@127.0.0.1:3306/example";
pub const DEFAULT_WRITER_URL: &str = "mysql://example_writer:example_writer@127.0.0.1:3306/example";
pub const DEFAULT_RELAY_URL: &str = "mysql://example_relay:example_relay@127.0.0.1:3306/example";
pub const DEFAULT_PROJECTOR_URL: &str =
    "mysql://example_projector:example_projector@127.0.0.1:3306/example";
pub const DEFAULT_READER_URL: &str = "mysql://example_reader:example_reader@127.0.0.1:3306/example";

/// The projector's account (besides `events`, granted by the event store's rules): the
/// read tables it writes, and the parked positions it only reads. Read tables are named
/// by `read_model`, their owner; the log's tables by the event store's migrations.
pub(crate) fn projector_grants() -> Vec<(&'static str, String)> {
    const WRITE: &str = "SELECT, INSERT, UPDATE";
    vec![
        ("SELECT", "events".into()),
        ("SELECT", read_model::PARKED_EVENTS.to_string()),
        (WRITE, read_model::USERS.to_string()),
        (WRITE, read_model::BALANCES.to_string()),
        (WRITE, read_model::TRANSACTIONS.to_string()),
        (WRITE, read_model::CHECKPOINTS.to_string()),
        // The highest relay epoch accepted, and the highest any relay began (ADR 0013).
        (WRITE, read_model::RELAY_EPOCHS_SEEN.to_string()),
        ("SELECT", "relay_checkpoints".into()),
    ]
}

/// query-api's account: what it serves, and nothing else (no claims): the views, the log
/// (audit, subscriptions), the keys that open personal data, the anchors, and what the
/// operations page shows (the relay's progress, parked positions).
pub(crate) fn reader_grants() -> Vec<(&'static str, String)> {
    let mut grants: Vec<(&'static str, String)> = read_model::TableSet::live()
        .names()
        .into_iter()
        .map(|table| ("SELECT", table.to_string()))
        .collect();
    grants.extend([
        ("SELECT", "events".into()),
        ("SELECT", "data_keys".into()),
        ("SELECT", "anchors".into()),
        ("SELECT", "relay_checkpoints".into()),
        ("SELECT", read_model::PARKED_EVENTS.to_string()),
    ]);
    grants
}
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
    /// The relay's account: reads events, writes its checkpoint.
    #[arg(long, env = "RELAY_DATABASE_URL", default_value = DEFAULT_RELAY_URL)]
    pub relay_url: String,
    /// The running projector's account: reads events, writes the read tables.
    #[arg(long, env = "PROJECTOR_DATABASE_URL", default_value = DEFAULT_PROJECTOR_URL)]
    pub projector_url: String,
    /// query-api's account: reads what it serves.
    #[arg(long, env = "READER_DATABASE_URL", default_value = DEFAULT_READER_URL)]
    pub reader_url: String,
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
/// (re)creates the service accounts with their grants.
pub async fn prepare(db: &DbArgs) -> anyhow::Result<()> {
    prepare_test_account(db).await?;
    let owner = account(&db.database_url, "DATABASE_URL")?;
    let accounts = ServiceAccounts::from_args(db)?;
    for (what, other) in accounts.named() {
        if other.database != owner.database {
            bail!("{what} must name the same database as DATABASE_URL");
        }
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
    read_model::migrator()
        .run(&pool)
        .await
        .context("applying migrations/readmodel")?;
    grant_service_accounts(&pool, &owner.database, &accounts).await?;
    pool.close().await;
    Ok(())
}

/// The four service accounts of one database.
pub(crate) struct ServiceAccounts {
    writer: Account,
    relay: Account,
    projector: Account,
    reader: Account,
}

impl ServiceAccounts {
    pub(crate) fn from_args(db: &DbArgs) -> anyhow::Result<Self> {
        Ok(Self {
            writer: account(&db.writer_url, "WRITER_DATABASE_URL")?,
            relay: account(&db.relay_url, "RELAY_DATABASE_URL")?,
            projector: account(&db.projector_url, "PROJECTOR_DATABASE_URL")?,
            reader: account(&db.reader_url, "READER_DATABASE_URL")?,
        })
    }

    fn named(&self) -> [(&'static str, &Account); 4] {
        [
            ("WRITER_DATABASE_URL", &self.writer),
            ("RELAY_DATABASE_URL", &self.relay),
            ("PROJECTOR_DATABASE_URL", &self.projector),
            ("READER_DATABASE_URL", &self.reader),
        ]
    }
}

/// (Re)creates each service account with exactly its grants on `database` (the table in
/// this module's map). Passwords are reset to the URLs' ones. Run as the owner.
pub(crate) async fn grant_service_accounts(
    pool: &sqlx::MySqlPool,
    database: &str,
    accounts: &ServiceAccounts,
) -> anyhow::Result<()> {
    let ServiceAccounts {
        writer,
        relay,
        projector,
        reader,
    } = accounts;
    event_store::grant_writer(pool, database, &writer.user, &writer.password)
        .await
        .context("granting the writer account")?;
    // Shredding a user's data key overwrites it: the writer may UPDATE `data_keys`.
    grant_tables(
        pool,
        database,
        writer,
        &[
            ("SELECT, INSERT, UPDATE", "data_keys"),
            // command-api makes, pauses, resumes and deletes webhook subscriptions.
            ("SELECT, INSERT, UPDATE, DELETE", "webhook_subscriptions"),
        ],
    )
    .await
    .context("granting the writer the keyring and the webhook subscriptions")?;
    event_store::relay::grant_relay(pool, database, &relay.user, &relay.password)
        .await
        .context("granting the relay account")?;
    for (what, account, grants) in [
        ("projector", projector, projector_grants()),
        ("reader", reader, reader_grants()),
    ] {
        let (u, p) = (&account.user, quote(&account.password));
        for sql in [
            format!("CREATE USER IF NOT EXISTS '{u}'@'%' IDENTIFIED BY '{p}'"),
            format!("ALTER USER '{u}'@'%' IDENTIFIED BY '{p}'"),
        ] {
            pool.execute(sql.as_str())
                .await
                .with_context(|| format!("creating the {what} account"))?;
        }
        grant_tables(pool, database, account, &grants)
            .await
            .with_context(|| format!("granting the {what} account"))?;
    }
    Ok(())
}

async fn grant_tables(
    pool: &sqlx::MySqlPool,
    database: &str,
    account: &Account,
    grants: &[(&str, impl AsRef<str>)],
) -> anyhow::Result<()> {
    for (privileges, table) in grants {
        let table = table.as_ref();
        let sql = format!(
            "GRANT {privileges} ON `{database}`.`{table}` TO '{}'@'%'",
            account.user
        );
        pool.execute(sql.as_str()).await?;
    }
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

#[cfg(test)]
mod tests {
    //! One test per service account: what its service does works, and a statement outside
    //! its job is refused by MariaDB with 1142 (command denied).

    use super::*;
    use event_store::testing::TestDatabase;

    /// A migrated database of the test's own and one account of `kind` with its grants;
    /// the account is dropped at the end.
    struct Harness {
        db: TestDatabase,
        admin: sqlx::MySqlPool,
        users: Vec<String>,
    }

    impl Harness {
        async fn new() -> Self {
            let db = TestDatabase::with_migrations(&[
                event_store::migrator(),
                keyring::migrator(),
                read_model::migrator(),
            ])
            .await;
            let admin = db.pool(1).await;
            Self {
                db,
                admin,
                users: Vec::new(),
            }
        }

        /// Grants every service account (with names of this test's own) and returns the
        /// options of the one asked for: 0 writer, 1 relay, 2 projector, 3 reader.
        async fn account(&mut self, which: usize) -> MySqlConnectOptions {
            let suffix = &uuid::Uuid::new_v4().simple().to_string()[..12];
            let (host, port) = (self.db.options.get_host(), self.db.options.get_port());
            let url = |kind: &str| {
                let user = format!("t{kind}_{suffix}");
                format!("mysql://{user}:pw_{kind}'x@{host}:{port}/{}", self.db.name)
            };
            let args = DbArgs {
                database_url: String::new(),
                writer_url: url("w"),
                relay_url: url("l"),
                projector_url: url("p"),
                reader_url: url("r"),
            };
            let accounts = ServiceAccounts::from_args(&args).unwrap();
            self.users = accounts
                .named()
                .iter()
                .map(|(_, a)| a.user.clone())
                .collect();
            grant_service_accounts(&self.admin, &self.db.name, &accounts)
                .await
                .unwrap();
            let chosen = accounts.named()[which].1;
            chosen
                .options
                .clone()
                .password(&chosen.password)
                .database(&self.db.name)
        }

        /// Each allowed statement runs; each denied one fails with 1142.
        async fn check(self, options: MySqlConnectOptions, allowed: &[&str], denied: &[&str]) {
            let outcome = async {
                let mut conn = options.connect().await?;
                let mut problems = Vec::new();
                for sql in allowed {
                    if let Err(e) = conn.execute(*sql).await {
                        problems.push(format!("allowed statement refused: {sql}: {e}"));
                    }
                }
                for sql in denied {
                    match conn.execute(*sql).await {
                        Ok(_) => problems.push(format!("forbidden statement ran: {sql}")),
                        Err(e) => {
                            let number = e
                                .as_database_error()
                                .and_then(|d| {
                                    d.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                                })
                                .map(|m| m.number());
                            if number != Some(1142) {
                                problems.push(format!("{sql}: not 1142 but {e}"));
                            }
                        }
                    }
                }
                let _ = conn.close().await;
                anyhow::Ok(problems)
            }
            .await;
            for user in &self.users {
                let _ = self
                    .admin
                    .execute(format!("DROP USER IF EXISTS '{user}'@'%'").as_str())
                    .await;
            }
            let problems = outcome.unwrap();
            assert!(problems.is_empty(), "{problems:#?}");
        }
    }

    #[tokio::test]
    async fn the_writer_appends_and_claims_but_never_changes_events_or_reads_views() {
        let mut h = Harness::new().await;
        let writer = h.account(0).await;
        h.check(
            writer,
            &[
                "SELECT COUNT(*) FROM events",
                "SELECT COUNT(*) FROM claims",
                "DELETE FROM claims WHERE scope = 'none'",
                "SELECT COUNT(*) FROM data_keys",
                "DELETE FROM webhook_subscriptions WHERE name = 'none'",
            ],
            &[
                "UPDATE events SET event_type = event_type",
                "DELETE FROM events",
                "UPDATE claims SET payload = payload",
                "DELETE FROM data_keys",
                "SELECT COUNT(*) FROM users_view",
                "INSERT INTO checkpoints (projection, position, updated_at) VALUES ('x', 1, NOW())",
                "SELECT COUNT(*) FROM relay_checkpoints",
                "CREATE TABLE scratch (a INT)",
            ],
        )
        .await;
    }

    #[tokio::test]
    async fn the_relay_reads_events_and_keeps_its_checkpoint_only() {
        let mut h = Harness::new().await;
        let relay = h.account(1).await;
        h.check(
            relay,
            &[
                "SELECT COUNT(*) FROM events",
                "INSERT INTO relay_checkpoints (name, position, updated_at) VALUES ('t', 0, NOW())",
                "UPDATE relay_checkpoints SET position = 1 WHERE name = 't'",
            ],
            &[
                "INSERT INTO events (position) VALUES (1)",
                "DELETE FROM events",
                "DELETE FROM relay_checkpoints",
                "SELECT COUNT(*) FROM claims",
                "SELECT COUNT(*) FROM data_keys",
                "SELECT COUNT(*) FROM users_view",
            ],
        )
        .await;
    }

    #[tokio::test]
    async fn the_projector_writes_only_the_read_tables_and_its_checkpoint() {
        let mut h = Harness::new().await;
        let projector = h.account(2).await;
        h.check(
            projector,
            &[
                "SELECT COUNT(*) FROM events",
                "SELECT COUNT(*) FROM parked_events",
                "INSERT INTO checkpoints (projection, position, updated_at) VALUES ('t', 0, UTC_TIMESTAMP(6))",
                "UPDATE checkpoints SET position = 1 WHERE projection = 't'",
                "SELECT position FROM checkpoints WHERE projection = 't' FOR UPDATE",
                "UPDATE users_view SET version = version",
                "UPDATE balances_view SET amount = amount",
                "UPDATE transactions_view SET amount = amount",
                // The relay epochs (ADR 0013): the highest begun, the highest accepted.
                "SELECT MAX(epoch) FROM relay_checkpoints",
                "SELECT COUNT(*) FROM relay_epochs_seen",
            ],
            &[
                "INSERT INTO events (position) VALUES (1)",
                "DELETE FROM events",
                "INSERT INTO parked_events (projection, position) VALUES ('t', 1)",
                "SELECT COUNT(*) FROM claims",
                "SELECT COUNT(*) FROM data_keys",
                "UPDATE relay_checkpoints SET epoch = epoch + 1",
                "DELETE FROM users_view",
                "DROP TABLE users_view",
                "CREATE TABLE users_view_rebuild (a INT)",
            ],
        )
        .await;
    }

    #[tokio::test]
    async fn the_reader_reads_what_query_api_serves_and_writes_nothing() {
        let mut h = Harness::new().await;
        let reader = h.account(3).await;
        h.check(
            reader,
            &[
                "SELECT COUNT(*) FROM users_view",
                "SELECT COUNT(*) FROM balances_view",
                "SELECT COUNT(*) FROM transactions_view",
                "SELECT COUNT(*) FROM checkpoints",
                "SELECT COUNT(*) FROM events",
                "SELECT COUNT(*) FROM data_keys",
                "SELECT COUNT(*) FROM anchors",
                // The operations page.
                "SELECT COUNT(*) FROM relay_checkpoints",
                "SELECT COUNT(*) FROM parked_events",
            ],
            &[
                "INSERT INTO checkpoints (projection, position, updated_at) VALUES ('x', 1, NOW())",
                "UPDATE users_view SET version = version",
                "DELETE FROM events",
                "UPDATE data_keys SET wrapped = NULL",
                "SELECT COUNT(*) FROM claims",
                "SELECT COUNT(*) FROM webhook_subscriptions",
                "UPDATE relay_checkpoints SET position = 0",
                "INSERT INTO parked_events (projection, position) VALUES ('t', 1)",
            ],
        )
        .await;
    }

    #[tokio::test]
    async fn table_grants_follow_the_tables_a_rebuild_swaps_in() {
        let mut h = Harness::new().await;
        let reader = h.account(3).await;
        // What `projector rebuild` does, as the owner: a new table renamed into place.
        for sql in [
            "CREATE TABLE users_view_rebuild LIKE users_view",
            "RENAME TABLE users_view TO users_view_old, users_view_rebuild TO users_view",
            "DROP TABLE users_view_old",
        ] {
            h.admin.execute(sql).await.unwrap();
        }
        h.check(
            reader,
            &["SELECT COUNT(*) FROM users_view"],
            &["DELETE FROM users_view"],
        )
        .await;
    }
}
