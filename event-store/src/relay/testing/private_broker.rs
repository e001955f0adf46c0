//! A RabbitMQ node of one test's own, which the test may stop and start again: a real
//! broker outage that no other test notices, because they all use the machine's shared
//! node (`rabbit@localhost` on 5672), which is never touched.
//!
//! The node is started the way the machine's own is (`rabbitmq-server -detached`, from
//! `RABBITMQ_SERVER`, else `/usr/sbin/rabbitmq-server` or the PATH) but with everything
//! of its own: node name, AMQP and Erlang distribution ports, data, logs, pid file,
//! config file, an empty plugin list (the machine's management or Prometheus listeners
//! would clash otherwise) and an empty `rabbitmq-env.conf` (the machine's names its own
//! node). Debian's wrapper runs the node as the `rabbitmq` account when called as root,
//! so both nodes share that account's Erlang cookie, and `rabbitmqctl` reaches either.
//!
//! Everything lives in one directory under the temp dir, named after the process that
//! made it. Drop stops the node and removes the directory, also when the test panics; a
//! process that died without unwinding (SIGKILL, a timeout) leaves both behind, and the
//! next [`PrivateBroker::new`] on the machine stops and removes them.

// Test support: a failed set-up should stop the test with its reason.
#![allow(clippy::expect_used)]

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lapin::{Connection, ConnectionProperties};

use super::rabbitmqctl_path;

/// How long a start or a stop may take; both take seconds (an Erlang VM boots, a node
/// flushes its queues), more on a busy machine.
const DEADLINE: Duration = Duration::from_secs(120);
/// How often the state of the node is looked at while waiting.
const POLL: Duration = Duration::from_millis(50);
/// Node directories are `<temp>/<prefix><owner pid>-<uuid>`.
const DIR_PREFIX: &str = "example_t_rabbitmq_";
/// The node's name is written here, for whoever cleans up after a dead owner.
const NODE_FILE: &str = "nodename";
/// Ports are picked from here: below Linux's ephemeral range (32768 and up), so that no
/// outgoing connection takes one while the node is down between a stop and a start.
const PORTS: std::ops::Range<u16> = 20_000..32_000;

pub struct PrivateBroker {
    node: String,
    port: u16,
    dist_port: u16,
    dir: PathBuf,
    /// Whether the node may be up: set before a start, cleared after a stop succeeded.
    running: bool,
}

impl PrivateBroker {
    /// A new node, started, with nothing in it but the default vhost and `guest`.
    pub async fn new() -> Self {
        remove_abandoned_nodes();
        let id = uuid::Uuid::new_v4().simple().to_string();
        let owner = std::process::id();
        let node = format!("t-{owner}-{id}@localhost");
        let dir = std::env::temp_dir().join(format!("{DIR_PREFIX}{owner}-{id}"));
        let (port, dist_port) = free_ports();
        let mut broker = Self {
            node,
            port,
            dist_port,
            dir,
            running: false,
        };
        broker.prepare_dir();
        broker.start().await;
        broker
    }

    /// `amqp://guest:guest@127.0.0.1:<port>/%2f`: guest may log in from localhost only.
    pub fn amqp_url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A connection to the node's default vhost.
    pub async fn connect(&self) -> Connection {
        Connection::connect(&self.amqp_url(), ConnectionProperties::default())
            .await
            .expect("connect to the private broker")
    }

    /// Stops the node (it closes every connection first) and returns once its AMQP port
    /// refuses connections. Durable queues and their persistent messages stay on disk.
    pub async fn stop(&mut self) {
        let started = Instant::now();
        let output = self.ctl(&["shutdown"]).output().await;
        let output = output.expect("run rabbitmqctl (set RABBITMQCTL if it is not in /usr/sbin)");
        assert!(
            output.status.success(),
            "rabbitmqctl shutdown of {} failed: {}{}",
            self.node,
            String::from_utf8_lossy(&output.stderr),
            self.log_tail(),
        );
        self.wait_until(
            "its AMQP port refuses connections",
            started,
            |b| async move { !b.accepts().await },
        )
        .await;
        self.running = false;
        eprintln!(
            "private broker {} stopped in {:.1} s",
            self.node,
            started.elapsed().as_secs_f64()
        );
    }

    /// Starts the node on the same ports and data, and returns once its AMQP port
    /// accepts connections and `rabbitmqctl await_startup` says it booted.
    pub async fn start(&mut self) {
        let started = Instant::now();
        self.running = true;
        // The detached node keeps the wrapper's stdout and stderr: a file, never a pipe
        // that would stay open as long as the node runs.
        let out = std::fs::File::create(self.dir.join("server.out")).expect("create server.out");
        let err = out.try_clone().expect("duplicate a file handle");
        let status = self
            .command(&server_path())
            .arg("-detached")
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err)
            .status()
            .await
            .expect("run rabbitmq-server (set RABBITMQ_SERVER if it is not in /usr/sbin)");
        assert!(status.success(), "rabbitmq-server -detached: {status}");
        self.wait_until(
            "its AMQP port to accept connections",
            started,
            |b| async move { b.accepts().await },
        )
        .await;
        // A booting node registers with epmd before it listens; once it listens,
        // await_startup answers as soon as the boot has finished.
        self.wait_until("`rabbitmqctl await_startup`", started, |b| async move {
            b.ctl(&["await_startup"])
                .output()
                .await
                .is_ok_and(|o| o.status.success())
        })
        .await;
        eprintln!(
            "private broker {} on port {} started in {:.1} s",
            self.node,
            self.port,
            started.elapsed().as_secs_f64()
        );
    }

    async fn accepts(&self) -> bool {
        tokio::net::TcpStream::connect(SocketAddr::from((Ipv4Addr::LOCALHOST, self.port)))
            .await
            .is_ok()
    }

    async fn wait_until<'a, F, Fut>(&'a self, what: &str, since: Instant, mut done: F)
    where
        F: FnMut(&'a Self) -> Fut,
        Fut: std::future::Future<Output = bool> + 'a,
    {
        while !done(self).await {
            assert!(
                since.elapsed() < DEADLINE,
                "private broker {}: timed out waiting for {what}{}",
                self.node,
                self.log_tail()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    fn prepare_dir(&self) {
        std::fs::create_dir(&self.dir).expect("create the node's directory");
        // Debian's wrapper runs the node as `rabbitmq` when called as root: it must be
        // able to write here.
        set_mode(&self.dir, 0o777);
        let files = [
            (NODE_FILE, self.node.clone()),
            ("enabled_plugins", "[].\n".to_owned()),
            ("rabbitmq-env.conf", String::new()),
            (
                "rabbitmq.conf",
                format!(
                    "listeners.tcp.1 = 127.0.0.1:{}\nloopback_users.guest = true\n",
                    self.port
                ),
            ),
        ];
        for (name, content) in files {
            let path = self.dir.join(name);
            std::fs::write(&path, content).expect("write the node's files");
            set_mode(&path, 0o644);
        }
    }

    /// `program` with this node's environment.
    fn command(&self, program: &str) -> tokio::process::Command {
        let dir = &self.dir;
        let mut command = tokio::process::Command::new(program);
        command
            .envs([
                ("RABBITMQ_NODENAME", self.node.clone()),
                ("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1".to_owned()),
                ("RABBITMQ_NODE_PORT", self.port.to_string()),
                // Set, not derived: the default is the AMQP port + 20000.
                ("RABBITMQ_DIST_PORT", self.dist_port.to_string()),
                (
                    "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
                    "-kernel inet_dist_use_interface {127,0,0,1}".to_owned(),
                ),
                ("RABBITMQ_CONF_ENV_FILE", path(dir, "rabbitmq-env.conf")),
                ("RABBITMQ_CONFIG_FILE", path(dir, "rabbitmq.conf")),
                ("RABBITMQ_CONFIG_FILES", path(dir, "conf.d")),
                (
                    "RABBITMQ_ADVANCED_CONFIG_FILE",
                    path(dir, "advanced.config"),
                ),
                (
                    "RABBITMQ_ENABLED_PLUGINS_FILE",
                    path(dir, "enabled_plugins"),
                ),
                ("RABBITMQ_MNESIA_BASE", path(dir, "mnesia")),
                ("RABBITMQ_LOG_BASE", path(dir, "log")),
                ("RABBITMQ_PID_FILE", path(dir, "rabbitmq.pid")),
                ("ERL_CRASH_DUMP", path(dir, "erl_crash.dump")),
            ])
            .kill_on_drop(true);
        command
    }

    /// `rabbitmqctl -n <node> <args>`.
    fn ctl(&self, args: &[&str]) -> tokio::process::Command {
        let mut command = self.command(&rabbitmqctl_path());
        command.arg("-n").arg(&self.node).args(args);
        command
    }

    /// The end of the node's log, for a failure message.
    fn log_tail(&self) -> String {
        let log = self.dir.join("log").join(format!("{}.log", self.node));
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(30)..].join("\n");
        format!("\n--- {} (last lines) ---\n{tail}", log.display())
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        if self.running {
            shut_down(&self.node, &self.dir);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn path(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .expect("set the permissions of the node's files");
}

fn server_path() -> String {
    if let Ok(path) = std::env::var("RABBITMQ_SERVER") {
        return path;
    }
    let sbin = "/usr/sbin/rabbitmq-server";
    if Path::new(sbin).exists() {
        sbin.into()
    } else {
        "rabbitmq-server".into()
    }
}

/// Two distinct ports nothing listens on, for AMQP and for Erlang distribution.
fn free_ports() -> (u16, u16) {
    let mut found = Vec::with_capacity(2);
    for _ in 0..1_000 {
        let span = u128::from(PORTS.end - PORTS.start);
        let offset = u16::try_from(uuid::Uuid::new_v4().as_u128() % span).expect("below span");
        let port = PORTS.start + offset;
        let free = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
            && TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).is_ok();
        if free && !found.contains(&port) {
            found.push(port);
            if let [amqp, dist] = found[..] {
                return (amqp, dist);
            }
        }
    }
    panic!("no two free ports in {PORTS:?}");
}

/// Stops `node` however it can, for clean-ups that must not fail: `rabbitmqctl
/// shutdown` (which waits for the process to exit), else a SIGKILL to the pid in its pid
/// file.
fn shut_down(node: &str, dir: &Path) {
    let stopped = std::process::Command::new(rabbitmqctl_path())
        .args(["-n", node, "shutdown"])
        .env("RABBITMQ_CONF_ENV_FILE", dir.join("rabbitmq-env.conf"))
        .output()
        .is_ok_and(|o| o.status.success());
    if stopped {
        return;
    }
    let pid = std::fs::read_to_string(dir.join("rabbitmq.pid")).unwrap_or_default();
    let pid = pid.trim();
    if !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", pid])
            .output();
    }
}

/// Nodes whose owning process is gone (killed before Drop could run): stopped, and
/// their directories removed.
fn remove_abandoned_nodes() {
    // Without /proc every owner would look dead.
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(DIR_PREFIX) else {
            continue;
        };
        let Some((owner, _)) = rest.split_once('-') else {
            continue;
        };
        if owner.is_empty()
            || !owner.bytes().all(|b| b.is_ascii_digit())
            || Path::new("/proc").join(owner).exists()
        {
            continue;
        }
        let dir = entry.path();
        if let Ok(node) = std::fs::read_to_string(dir.join(NODE_FILE)) {
            shut_down(node.trim(), &dir);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
