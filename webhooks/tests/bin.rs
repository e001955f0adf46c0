//! The `webhooks` binary as the dev stack starts it: beside command-api, before the dev
//! master keys exist. It waits for them instead of exiting.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use event_store::testing::{TestDatabase, DEFAULT_DATABASE_URL};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The next log line whose `message` contains `wanted`; panics if the process ends first.
fn wait_for_line(lines: &mpsc::Receiver<String>, wanted: &str) -> String {
    loop {
        match lines.recv_timeout(Duration::from_secs(120)) {
            Ok(line) if line.contains(wanted) => return line,
            Ok(_) => continue,
            Err(e) => panic!("no log line with {wanted:?} ({e}): the deliverer ended or hung"),
        }
    }
}

#[tokio::test]
async fn without_keys_it_waits_for_the_dev_keys_and_then_leads() {
    let db = TestDatabase::new().await;
    let mut url = url::Url::parse(
        &std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_DATABASE_URL.into()),
    )
    .unwrap();
    url.set_path(&db.name);
    let dev_dir = std::env::temp_dir().join(format!("webhooks-dev-{}", db.name));
    std::fs::create_dir_all(&dev_dir).unwrap();

    let mut child = Killed(
        Command::new(env!("CARGO_BIN_EXE_webhooks"))
            .env("DATABASE_URL", url.as_str())
            .env("DEV_DIR", &dev_dir)
            .env_remove("MASTER_KEYS")
            .env_remove("MASTER_KEYS_FILE")
            .env("METRICS_ADDR", "127.0.0.1:0")
            .env("WEBHOOKS_NAME", &db.name)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the webhooks binary"),
    );
    let (tx, lines) = mpsc::channel();
    for stream in [
        Box::new(child.0.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.0.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    drop(tx);

    wait_for_line(&lines, "waiting for command-api");
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "it exited instead of waiting"
    );
    // What command-api writes on its first start.
    std::fs::write(
        dev_dir.join("master-keys"),
        "1:CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=\n",
    )
    .unwrap();
    wait_for_line(&lines, "leading webhook delivery");
    std::fs::remove_dir_all(&dev_dir).unwrap();
}
