//! The offline verifier on exports written here by the chain rules: the command as an
//! auditor runs it (the built binary, files in, verdict and exit code out), and the
//! independent Python implementation of ADR 0003 on the same files.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests stop at the first surprise

use std::path::{Path, PathBuf};
use std::process::Command;

use hash_chain::{AnchorPayload, ExportedEvent, Jwks, SignedAnchor, SigningKey, GENESIS_HASH};
use ledger::{
    Amount, Currency, Deposited, Direction, LedgerEvent, SealedText, TransactionId, Transferred,
    UserId, UserRegistered, Withdrawn,
};
use serde_json::value::RawValue;
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

/// A log built event by event as the store builds it.
struct Log {
    events: Vec<ExportedEvent>,
    versions: std::collections::HashMap<String, u64>,
}

fn at(second: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_765_000_000 + second).unwrap()
        + time::Duration::microseconds(42)
}

impl Log {
    fn new() -> Self {
        Self {
            events: Vec::new(),
            versions: Default::default(),
        }
    }

    fn push(&mut self, event: LedgerEvent, recorded_at: OffsetDateTime) {
        let stream_id = event.stream_id();
        let version = self.versions.entry(stream_id.clone()).or_default();
        *version += 1;
        let prev_hash = self.events.last().map_or(GENESIS_HASH, |e| e.hash);
        let mut exported = ExportedEvent {
            position: self.events.len() as u64 + 1,
            event_id: Uuid::now_v7(),
            stream_id,
            stream_version: *version,
            event_type: event.event_type().to_owned(),
            schema_version: event.schema_version(),
            data: RawValue::from_string(event.data().to_string()).unwrap(),
            metadata: RawValue::from_string(r#"{"correlation_id":"c-1","actor":"ünï"}"#.into())
                .unwrap(),
            recorded_at,
            prev_hash,
            hash: GENESIS_HASH,
        };
        exported.hash = exported.canonical().hash(&prev_hash);
        self.events.push(exported);
    }

    fn ndjson(&self) -> String {
        self.events
            .iter()
            .map(|e| serde_json::to_string(e).unwrap() + "\n")
            .collect()
    }

    /// What an attacker with the database does: new data at `position`, every later
    /// hash and link recomputed.
    fn rewrite(&mut self, position: u64, data: &str) {
        let i = position as usize - 1;
        self.events[i].data = RawValue::from_string(data.into()).unwrap();
        for j in i..self.events.len() {
            let prev = if j == 0 {
                GENESIS_HASH
            } else {
                self.events[j - 1].hash
            };
            self.events[j].prev_hash = prev;
            self.events[j].hash = self.events[j].canonical().hash(&prev);
        }
    }

    fn anchor(&self, position: u64, key: &SigningKey) -> SignedAnchor {
        let e = &self.events[position as usize - 1];
        SignedAnchor::sign(
            AnchorPayload {
                position,
                hash: e.hash,
                recorded_at: e.recorded_at,
            },
            key,
        )
    }
}

fn money(amount: i64) -> (Amount, Currency) {
    (Amount::parse(amount).unwrap(), Currency::EUR)
}

/// Alice and Bob, 25 events: deposits, a withdrawal and transfers.
fn history() -> (Log, UserId, UserId) {
    let alice = UserId::from_uuid(Uuid::now_v7());
    let bob = UserId::from_uuid(Uuid::now_v7());
    let mut log = Log::new();
    for (n, user) in [alice, bob].into_iter().enumerate() {
        log.push(
            UserRegistered {
                user_id: user,
                email_ciphertext: SealedText::new("v1.1.sealed"),
                display_name_ciphertext: SealedText::new("v1.1.sealed"),
            }
            .into(),
            at(n as i64),
        );
    }
    for i in 0..10 {
        let (amount, currency) = money(100 + i);
        log.push(
            Deposited {
                transaction_id: TransactionId::from_uuid(Uuid::now_v7()),
                user_id: alice,
                amount,
                currency,
            }
            .into(),
            at(10 + i),
        );
    }
    let (amount, currency) = money(50);
    log.push(
        Withdrawn {
            transaction_id: TransactionId::from_uuid(Uuid::now_v7()),
            user_id: alice,
            amount,
            currency,
        }
        .into(),
        at(30),
    );
    for i in 0..6 {
        let (amount, currency) = money(10);
        let transaction_id = TransactionId::from_uuid(Uuid::now_v7());
        for direction in [Direction::Out, Direction::In] {
            log.push(
                Transferred {
                    transaction_id,
                    direction,
                    from_user_id: alice,
                    to_user_id: bob,
                    amount,
                    currency,
                }
                .into(),
                at(40 + i),
            );
        }
    }
    (log, alice, bob)
}

struct Files {
    dir: PathBuf,
}

impl Files {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("audit-offline-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        Self { dir }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `audit ARGS...`: exit code and stdout.
fn audit(args: &[&Path], extra: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_audit"))
        .args(args)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
    )
}

fn verify(files: &Files, log: &Log, anchors: &[SignedAnchor], jwks: &Jwks) -> (i32, Value, String) {
    let export = files.write("export.ndjson", &log.ndjson());
    let page = serde_json::json!({ "items": anchors, "next_after": null });
    let anchors = files.write("anchors.json", &page.to_string());
    let jwks = files.write("jwks.json", &jwks.to_json());
    let verify = Path::new("verify");
    let (code, json) = audit(
        &[
            verify,
            &export,
            Path::new("--anchors"),
            &anchors,
            Path::new("--jwks"),
            &jwks,
        ],
        &["--json"],
    );
    let (human_code, human) = audit(
        &[
            verify,
            &export,
            Path::new("--anchors"),
            &anchors,
            Path::new("--jwks"),
            &jwks,
        ],
        &[],
    );
    assert_eq!(code, human_code);
    (code, serde_json::from_str(&json).unwrap(), human)
}

fn jwks(keys: &[&SigningKey]) -> Jwks {
    Jwks {
        keys: keys.iter().map(|k| k.public_jwk()).collect(),
    }
}

#[test]
fn an_intact_export_with_matching_anchors_is_verified() {
    let (log, _, _) = history();
    let key = SigningKey::generate().unwrap();
    let anchors = [log.anchor(10, &key), log.anchor(20, &key)];
    let files = Files::new();
    let (code, report, human) = verify(&files, &log, &anchors, &jwks(&[&key]));
    assert_eq!(code, 0, "{human}");
    assert_eq!(report["ok"], true);
    assert_eq!(report["events"], 25);
    assert_eq!(report["anchors"]["matched"], 2);
    assert_eq!(report["anchors"]["last_matching"], 20);
    assert_eq!(report["head_hash"], hex::encode(log.events[24].hash));
    assert!(human.starts_with("VERIFIED: positions 1 to 25"), "{human}");
    assert!(human.contains("21 to 25 after the last anchor"), "{human}");
}

#[test]
fn a_rewritten_and_recomputed_log_fails_at_the_first_anchor_that_no_longer_matches() {
    let (mut log, alice, _) = history();
    let key = SigningKey::generate().unwrap();
    let anchors = [
        log.anchor(5, &key),
        log.anchor(10, &key),
        log.anchor(15, &key),
        log.anchor(20, &key),
    ];
    // Event 7 (a deposit of Alice's) gets a larger amount; the chain is recomputed, so it
    // holds by the rules alone.
    let forged = log.events[6]
        .data
        .get()
        .replace("\"amount\":104", "\"amount\":1000000");
    assert_ne!(forged, log.events[6].data.get());
    log.rewrite(7, &forged);
    let _ = alice;

    let files = Files::new();
    let (code, report, human) = verify(&files, &log, &anchors, &jwks(&[&key]));
    assert_eq!(code, 1, "{human}");
    assert_eq!(report["chain"]["ok"], true, "the rules alone cannot tell");
    assert_eq!(report["first_bad_position"], 10);
    assert_eq!(report["anchors"]["mismatched"][0]["position"], 10);
    assert_eq!(report["anchors"]["last_matching"], 5);
    assert!(
        human.starts_with("NOT THE SIGNED LOG: the anchor at position 10 no longer matches"),
        "{human}"
    );
    assert!(
        human.contains("changed in positions 6 to 10 (the anchor at 5 still matches)"),
        "{human}"
    );

    // The independent implementation agrees the chain holds, and sees the anchors differ.
    let anchors_file = files.write(
        "anchors-page.json",
        &serde_json::json!({ "items": anchors }).to_string(),
    );
    let python = python_check(&files.dir.join("export.ndjson"), Some(&anchors_file));
    assert_eq!(python["first_bad_position"], Value::Null);
    assert_eq!(
        python["anchors_mismatched"],
        serde_json::json!([10, 15, 20])
    );
}

#[test]
fn a_changed_event_whose_hash_was_not_recomputed_breaks_the_chain_at_its_position() {
    let (mut log, _, _) = history();
    let key = SigningKey::generate().unwrap();
    let anchors = [log.anchor(20, &key)];
    log.events[11].data = RawValue::from_string(r#"{"changed":true}"#.into()).unwrap();
    let files = Files::new();
    let (code, report, human) = verify(&files, &log, &anchors, &jwks(&[&key]));
    assert_eq!(code, 1);
    assert_eq!(report["chain"]["first_bad_position"], 12);
    assert_eq!(report["first_bad_position"], 12);
    assert!(human.starts_with("BROKEN CHAIN"), "{human}");
    let python = python_check(&files.dir.join("export.ndjson"), None);
    assert_eq!(python["first_bad_position"], 12);
}

#[test]
fn anchors_signed_by_a_key_outside_the_jwks_are_not_trusted() {
    let (log, _, _) = history();
    let ours = SigningKey::generate().unwrap();
    let forger = SigningKey::generate().unwrap();
    let anchors = [log.anchor(10, &ours), log.anchor(20, &forger)];
    let files = Files::new();
    let (code, report, human) = verify(&files, &log, &anchors, &jwks(&[&ours]));
    assert_eq!(code, 1);
    assert_eq!(report["anchors"]["invalid"][0]["position"], 20);
    assert!(human.starts_with("UNTRUSTED ANCHORS"), "{human}");

    // No anchor at all proves nothing.
    let (code, report, human) = verify(&files, &log, &[], &jwks(&[&ours]));
    assert_eq!(code, 1);
    assert_eq!(report["chain"]["ok"], true);
    assert!(human.starts_with("UNANCHORED"), "{human}");
}

#[test]
fn the_python_implementation_of_adr_0003_agrees_with_ours() {
    let (log, _, _) = history();
    let files = Files::new();
    let export = files.write("export.ndjson", &log.ndjson());
    let report = python_check(&export, None);
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["checked"], 25);
    assert_eq!(report["head_hash"], hex::encode(log.events[24].hash));
}

#[test]
fn balances_replay_at_a_position_a_time_and_the_end() {
    let (log, alice, bob) = history();
    let files = Files::new();
    let export = files.write("export.ndjson", &log.ndjson());
    let balances = Path::new("balances");
    let user = |u: UserId| u.as_uuid().to_string();
    let run = |who: UserId, extra: &[&str]| {
        let alice = user(who);
        let mut args = vec!["--user", alice.as_str(), "--json"];
        args.extend_from_slice(extra);
        let (code, out) = audit(&[balances, &export], &args);
        (code, serde_json::from_str::<Value>(&out).unwrap())
    };
    // Deposits 100..=109 (1045), a withdrawal of 50, six transfers of 10 out.
    let (code, end) = run(alice, &[]);
    assert_eq!(code, 0);
    assert_eq!(
        end["balances"],
        serde_json::json!([{"currency": "EUR", "amount": 1045 - 50 - 60}])
    );
    let (_, bob_end) = run(bob, &[]);
    assert_eq!(bob_end["balances"][0]["amount"], 60);
    // After the fifth deposit (position 7).
    let (_, at7) = run(alice, &["--at-position", "7"]);
    assert_eq!(at7["balances"][0]["amount"], 100 + 101 + 102 + 103 + 104);
    assert_eq!(at7["last_position"], 7);
    // The time of the withdrawal.
    let as_of = hash_chain::wire_time::format(at(30));
    let (_, then) = run(alice, &["--as-of", &as_of]);
    assert_eq!(then["balances"][0]["amount"], 1045 - 50);
    assert_eq!(then["through_position"], 13);
    // Before Bob registered, Bob has no balances to give.
    let (code, before) = run(bob, &["--at-position", "1"]);
    assert_eq!(code, 1);
    assert_eq!(before["ok"], false);

    // A partial export cannot be replayed.
    let partial: String = log
        .ndjson()
        .lines()
        .skip(3)
        .map(|l| format!("{l}\n"))
        .collect();
    let partial = files.write("partial.ndjson", &partial);
    let out = Command::new(env!("CARGO_BIN_EXE_audit"))
        .args(["balances".as_ref(), partial.as_os_str()])
        .args(["--user", &user(alice)])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("starts at position 4"));
}

/// Runs the independent check; its JSON report.
fn python_check(export: &Path, anchors: Option<&Path>) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/verify_export.py");
    let mut command = Command::new(std::env::var("PYTHON").unwrap_or_else(|_| "python3".into()));
    command.arg(script).arg(export);
    if let Some(anchors) = anchors {
        command.arg(anchors);
    }
    let out = command.output().expect("python3 runs");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
