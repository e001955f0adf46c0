//! MariaDB's own command-line tools (`mariadb-dump`, `mariadb`, `mariadb-binlog`) as the
//! backup and restore drive them: the account's password in a temporary option file (never
//! on a command line), and byte counts with a progress bar (indicatif) while data streams through.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use sqlx::mysql::MySqlConnectOptions;

/// Where a database is, parsed once from its URL.
#[derive(Clone)]
pub(crate) struct Target {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) user: String,
    pub(crate) password: String,
    pub(crate) database: String,
    pub(crate) url: String,
}

impl Target {
    pub(crate) fn parse(url: &str, what: &str) -> anyhow::Result<Self> {
        let parsed = url::Url::parse(url).with_context(|| format!("parsing the {what} URL"))?;
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        let database = parsed.path().trim_start_matches('/').to_owned();
        let ident_ok =
            |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !ident_ok(&database) {
            bail!("the {what} URL must name a database of [A-Za-z0-9_]");
        }
        Ok(Self {
            host: parsed.host_str().unwrap_or("127.0.0.1").to_owned(),
            port: parsed.port().unwrap_or(3306),
            user: decode(parsed.username()),
            password: decode(parsed.password().unwrap_or_default()),
            database,
            url: url.to_owned(),
        })
    }

    pub(crate) fn options(&self) -> anyhow::Result<MySqlConnectOptions> {
        use std::str::FromStr;
        MySqlConnectOptions::from_str(&self.url).context("parsing a database URL")
    }
}

/// A `[client]` option file with the account's credentials, mode 0600, removed on drop.
pub(crate) struct OptionFile {
    path: PathBuf,
}

impl OptionFile {
    pub(crate) fn new(target: &Target) -> anyhow::Result<Self> {
        let path = std::env::temp_dir().join(format!(
            "xtask-mariadb-{}.cnf",
            uuid::Uuid::new_v4().simple()
        ));
        let quote = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
        let text = format!(
            "[client]\nhost=\"{}\"\nport={}\nuser=\"{}\"\npassword=\"{}\"\nprotocol=tcp\n",
            quote(&target.host),
            target.port,
            quote(&target.user),
            quote(&target.password)
        );
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        file.write_all(text.as_bytes())?;
        Ok(Self { path })
    }

    /// The first argument of every tool.
    pub(crate) fn arg(&self) -> String {
        format!("--defaults-extra-file={}", self.path.display())
    }
}

impl Drop for OptionFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A tool of MariaDB's, from `MARIADB_BIN_DIR` if set, else the PATH.
pub(crate) fn tool(name: &str) -> PathBuf {
    match std::env::var_os("MARIADB_BIN_DIR") {
        Some(dir) => Path::new(&dir).join(name),
        None => PathBuf::from(name),
    }
}

/// The progress of bytes streaming through, as an indicatif bar on stderr (hidden when
/// stderr is no terminal), and one summary line at the end.
pub(crate) struct Progress {
    what: String,
    bar: ProgressBar,
}

impl Progress {
    /// `total` is the server's size estimate, if it has one: it can be stale, so the bar
    /// grows past it rather than claim more than 100%.
    pub(crate) fn new(what: impl Into<String>, total: Option<u64>) -> Self {
        let what = what.into();
        let template = match total {
            Some(_) => "{msg}: {bytes} of ≈{total_bytes} [{bar:30}] {binary_bytes_per_sec}",
            None => "{msg}: {bytes} {binary_bytes_per_sec}",
        };
        let bar = match total {
            Some(total) => ProgressBar::new(total),
            None => ProgressBar::no_length(),
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("#-"));
        }
        bar.set_message(what.clone());
        Self { what, bar }
    }

    pub(crate) fn show(&mut self, done: u64) {
        if self.bar.length().is_some_and(|total| done > total) {
            self.bar.set_length(done);
        }
        self.bar.set_position(done);
    }

    /// Clears the bar and prints the summary line; returns the seconds taken.
    pub(crate) fn finish(&mut self, done: u64) -> f64 {
        let seconds = self.bar.elapsed().as_secs_f64();
        self.bar.finish_and_clear();
        let mib = done as f64 / (1024.0 * 1024.0);
        eprintln!(
            "{}: {mib:.1} MiB in {seconds:.1} s ({:.1} MiB/s)",
            self.what,
            mib / seconds.max(1e-3)
        );
        seconds
    }
}

/// Copies `from` into `to` in chunks, showing progress; returns the bytes copied and
/// the first `keep` bytes (for a header to read).
pub(crate) async fn pump(
    mut from: impl tokio::io::AsyncRead + Unpin,
    mut to: impl tokio::io::AsyncWrite + Unpin,
    progress: &mut Progress,
    keep: usize,
) -> anyhow::Result<(u64, Vec<u8>)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = vec![0u8; 1 << 20];
    let mut head = Vec::new();
    let mut total = 0u64;
    loop {
        let n = from.read(&mut buffer).await.context("reading the stream")?;
        if n == 0 {
            break;
        }
        if head.len() < keep {
            let take = (keep - head.len()).min(n);
            head.extend_from_slice(&buffer[..take]);
        }
        to.write_all(&buffer[..n])
            .await
            .context("writing the stream")?;
        total += n as u64;
        progress.show(total);
    }
    to.flush().await.context("flushing the stream")?;
    to.shutdown().await.ok();
    Ok((total, head))
}

/// Waits for a tool and fails with its error output if it failed.
pub(crate) async fn finished(child: tokio::process::Child, name: &str) -> anyhow::Result<()> {
    let out = child
        .wait_with_output()
        .await
        .with_context(|| format!("waiting for {name}"))?;
    if !out.status.success() {
        bail!(
            "{name} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// A tool with piped standard streams as the backup and restore use them.
pub(crate) fn command(name: &str, options: &OptionFile) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(tool(name));
    command
        .arg(options.arg())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}
