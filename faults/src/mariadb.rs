//! A MariaDB server of one test's own, which the test may kill, pause and start again: a
//! real database crash or stall that no other test notices, because they all use the
//! machine's shared server (3306), which is never touched.
//!
//! `mariadb-install-db` makes a data directory under the temp dir and `mariadbd` runs on
//! it with its own port, socket and pid file, as a child of the test process. An owner
//! account (`example`/`example`, every privilege, over TCP) is made over the socket as
//! root, the way `cargo xtask` bootstraps the shared server. Drop kills the server and
//! removes the directory, also when the test panics; a test process that died without
//! unwinding leaves both behind, and the next [`PrivateMariaDb::new`] on the machine kills
//! and removes them.

// Test support: a failed set-up should stop the test with its reason.
#![allow(clippy::expect_used)]

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::mysql::MySqlConnectOptions;
use sqlx::{ConnectOptions, Connection};

/// How long a start may take (crash recovery included).
const DEADLINE: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(50);
/// Node directories are `<temp>/<prefix><owner pid>-<uuid>`.
const DIR_PREFIX: &str = "example_t_mariadb_";
/// Ports come from below Linux's ephemeral range, so no outgoing connection takes one
/// while the server is down between a kill and a start.
const PORTS: std::ops::Range<u16> = 33_000..34_000;
pub const OWNER: &str = "example";

pub struct PrivateMariaDb {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
    extra: Vec<String>,
}

impl PrivateMariaDb {
    /// A new server, started, with the owner account.
    pub async fn new() -> Self {
        Self::with_args(&[]).await
    }

    /// A new server started with extra `mariadbd` options (for example `--log-bin`).
    pub async fn with_args(extra: &[&str]) -> Self {
        remove_abandoned();
        let dir = std::env::temp_dir().join(format!(
            "{DIR_PREFIX}{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        // Temporary files of its own too: servers set up side by side must not meet in /tmp.
        std::fs::create_dir_all(dir.join("tmp")).expect("create the private MariaDB's directory");
        let out = Command::new(tool("MARIADB_INSTALL_DB", "mariadb-install-db"))
            .env("TMPDIR", dir.join("tmp"))
            .args([
                "--no-defaults",
                &format!("--datadir={}", dir.join("data").display()),
                "--user=root",
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
                &format!("--tmpdir={}", dir.join("tmp").display()),
            ])
            .output()
            .expect("run mariadb-install-db (package mariadb-server)");
        assert!(
            out.status.success(),
            "mariadb-install-db failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut db = Self {
            dir,
            port: free_port(),
            child: None,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
        };
        db.start().await;
        let mut root = MySqlConnectOptions::from_str(&format!(
            "mysql://root@localhost/?socket={}",
            db.socket().display()
        ))
        .expect("a socket URL")
        .connect()
        .await
        .expect("connect to the private MariaDB as root over its socket");
        sqlx::raw_sql(&format!(
            "CREATE USER '{OWNER}'@'%' IDENTIFIED BY '{OWNER}'; \
             GRANT ALL PRIVILEGES ON *.* TO '{OWNER}'@'%' WITH GRANT OPTION"
        ))
        .execute(&mut root)
        .await
        .expect("create the owner account");
        let _ = root.close().await;
        db
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("mysqld.sock")
    }

    /// The owner account over TCP, no database selected.
    pub fn owner(&self) -> MySqlConnectOptions {
        MySqlConnectOptions::new()
            .host("127.0.0.1")
            .port(self.port)
            .username(OWNER)
            .password(OWNER)
    }

    /// `mysql://example:example@127.0.0.1:<port>/<database>`.
    pub fn url(&self, database: &str) -> String {
        format!("mysql://{OWNER}:{OWNER}@127.0.0.1:{}/{database}", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Starts the server on its data directory and returns once it accepts the owner.
    pub async fn start(&mut self) {
        assert!(
            self.child.is_none(),
            "the private MariaDB is running already"
        );
        let data = self.dir.join("data");
        let mut args = vec![
            "--no-defaults".to_owned(),
            format!("--datadir={}", data.display()),
            format!("--port={}", self.port),
            "--bind-address=127.0.0.1".into(),
            format!("--socket={}", self.socket().display()),
            format!("--pid-file={}", self.dir.join("mysqld.pid").display()),
            format!("--log-error={}", self.dir.join("error.log").display()),
            "--user=root".into(),
            "--skip-name-resolve".into(),
            format!("--tmpdir={}", self.dir.join("tmp").display()),
            "--innodb-buffer-pool-size=64M".into(),
            "--max-connections=500".into(),
        ];
        args.extend(self.extra.iter().cloned());
        let child = Command::new(tool("MARIADBD", "/usr/sbin/mariadbd"))
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mariadbd");
        self.child = Some(child);
        let started = Instant::now();
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!(
                        "the private mariadbd exited at start ({status}): {}",
                        self.log_tail()
                    );
                }
            }
            if self.accepts().await {
                return;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "the private MariaDB did not start within {DEADLINE:?}: {}",
                self.log_tail()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    async fn accepts(&self) -> bool {
        // Before the owner exists, root over the socket says the server is up.
        let socket = MySqlConnectOptions::new()
            .socket(self.socket())
            .username("root");
        for options in [self.owner(), socket] {
            if let Ok(Ok(conn)) =
                tokio::time::timeout(Duration::from_secs(2), options.connect()).await
            {
                let _ = conn.close().await;
                return true;
            }
        }
        false
    }

    /// SIGKILL: the server dies without flushing anything; [`Self::start`] recovers it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGSTOP: the server keeps its connections open and answers nothing.
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// SIGCONT after [`Self::pause`].
    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, name: &str) {
        let Some(pid) = self.pid() else {
            panic!("the private MariaDB is not running");
        };
        let status = Command::new("kill")
            .args([&format!("-{name}"), &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} {pid} failed");
    }

    /// The last lines of the server's error log, for a failure message.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for PrivateMariaDb {
    fn drop(&mut self) {
        // SIGKILL ends a paused server too.
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_file(port_marker(self.port));
    }
}

fn tool(env: &str, default: &str) -> String {
    std::env::var(env).unwrap_or_else(|_| default.to_owned())
}

fn free_port() -> u16 {
    let start = PORTS.start + (std::process::id() % 500) as u16;
    (start..PORTS.end)
        .chain(PORTS.start..start)
        .find(|p| TcpListener::bind((Ipv4Addr::LOCALHOST, *p)).is_ok() && claim_port(*p))
        .expect("a free port for the private MariaDB")
}

fn port_marker(port: u16) -> PathBuf {
    std::env::temp_dir().join(format!("{DIR_PREFIX}port-{port}"))
}

/// Ports are claimed by a marker file holding the owner's pid, so two tests never pick
/// the same one between the check and the server's bind. A dead owner's claim is taken.
fn claim_port(port: u16) -> bool {
    let marker = port_marker(port);
    let me = std::process::id().to_string();
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&marker)
        .and_then(|mut f| std::io::Write::write_all(&mut f, me.as_bytes()));
    if created.is_ok() {
        return true;
    }
    let owner = std::fs::read_to_string(&marker).unwrap_or_default();
    let alive = owner
        .trim()
        .parse::<u32>()
        .is_ok_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
    !alive && std::fs::write(&marker, me).is_ok()
}

/// Servers and directories of test processes that are gone.
fn remove_abandoned() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(DIR_PREFIX) else {
            continue;
        };
        let Some(owner) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if Path::new(&format!("/proc/{owner}")).exists() {
            continue;
        }
        let dir = entry.path();
        if let Ok(pid) = std::fs::read_to_string(dir.join("mysqld.pid")) {
            let _ = Command::new("kill").args(["-9", pid.trim()]).status();
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
