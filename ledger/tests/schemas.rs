//! The Rust event types against `schemas/`: every event the code can emit validates
//! against the schema file of its type and version, every known type and version has a
//! file (and every file a known type), the v1 sample of `user.registered` still matches
//! its schema and decodes, and the command and envelope schemas take what API.md says.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use jsonschema::{Draft, Validator};
use ledger::testing::*;
use ledger::{
    decide, decide_transfer, decode, evolve, Amount, Command, Currency, CurrencySet,
    DeactivationReason, DisplayName, Email, LedgerEvent, User, UserId, EVENT_TYPES,
};
use serde_json::{json, Value};
use uuid::Uuid;

fn schemas_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas")
}

fn load(relative: &str) -> Value {
    let path = schemas_dir().join(relative);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn validator(relative: &str) -> Validator {
    let schema = load(relative);
    assert_eq!(
        schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
        "{relative} must declare draft 2020-12"
    );
    if let Err(e) = jsonschema::meta::validate(&schema) {
        panic!("{relative} is not a valid schema: {e}");
    }
    jsonschema::options()
        .with_draft(Draft::Draft202012)
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("{relative}: {e}"))
}

fn event_schema(event_type: &str, version: u32) -> String {
    format!("events/{event_type}.v{version}.json")
}

#[track_caller]
fn assert_valid(validator: &Validator, instance: &Value, what: &str) {
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{what}: {instance} is invalid: {errors:#?}"
    );
}

/// Drives `decide` through every command so that each kind of event is emitted the way
/// production emits it (optional fields both present and absent).
fn emitted_events() -> Vec<LedgerEvent> {
    const CAROL: UserId =
        UserId::from_uuid(Uuid::from_u128(0x0190_a8f6_7b2c_7c3e_9f00_0000_0000_ca01));
    fn run(command: Command, users: &mut BTreeMap<UserId, User>, log: &mut Vec<LedgerEvent>) {
        let id = command.user_id();
        let user = users.remove(&id).unwrap_or_default();
        let events = decide(&user, &command).unwrap_or_else(|r| panic!("{command:?}: {r}"));
        users.insert(id, events.iter().fold(user, evolve));
        log.extend(events);
    }
    let mut users: BTreeMap<UserId, User> = BTreeMap::new();
    let mut log = Vec::new();
    let mut deactivate_bob = deactivate_because("closed at the customer's request");
    deactivate_bob.user_id = BOB;
    let mut deactivate_carol = deactivate();
    deactivate_carol.user_id = CAROL;
    for command in [
        register().into(),
        register_as(BOB).into(),
        register_as(CAROL).into(),
        update_profile(Some("new@example.com"), None).into(),
        update_profile(None, Some("Ada")).into(),
        update_profile(Some("x@example.com"), Some("Ada L.")).into(),
        deposit(500).into(),
        deposit_in(Currency::JPY, 1_000_000_000_000_000).into(),
        withdraw(100).into(),
    ] {
        run(command, &mut users, &mut log);
    }
    let (for_from, for_to) = decide_transfer(&users[&ALICE], &users[&BOB], &transfer(50))
        .unwrap_or_else(|r| panic!("transfer: {r}"));
    log.extend(for_from);
    log.extend(for_to);
    for command in [
        deactivate_bob.into(),
        deactivate_carol.into(),
        erase().into(),
    ] {
        run(command, &mut users, &mut log);
    }
    log
}

#[test]
fn every_emitted_event_matches_the_schema_of_its_type_and_version() {
    let events = emitted_events();
    let mut validators: BTreeMap<String, Validator> = BTreeMap::new();
    for event in &events {
        let file = event_schema(event.event_type(), event.schema_version());
        let validator = validators
            .entry(file.clone())
            .or_insert_with(|| validator(&file));
        assert_valid(validator, &event.data(), &file);
    }
}

#[test]
fn the_events_emitted_are_exactly_the_known_types_at_their_latest_version() {
    let emitted: BTreeSet<(&str, u32)> = emitted_events()
        .iter()
        .map(|e| (e.event_type(), e.schema_version()))
        .collect();
    let known: BTreeSet<(&str, u32)> = EVENT_TYPES
        .iter()
        .map(|t| (t.event_type, t.latest_version))
        .collect();
    assert_eq!(
        emitted, known,
        "an event type is never emitted, or not listed"
    );
}

#[test]
fn every_known_type_and_version_has_a_schema_file_and_no_file_is_stray() {
    let expected: BTreeSet<String> = EVENT_TYPES
        .iter()
        .flat_map(|t| (1..=t.latest_version).map(|v| event_schema(t.event_type, v)))
        .collect();
    let present: BTreeSet<String> = fs::read_dir(schemas_dir().join("events"))
        .expect("schemas/events exists")
        .map(|entry| {
            format!(
                "events/{}",
                entry.expect("dir entry").file_name().to_string_lossy()
            )
        })
        .collect();
    assert_eq!(present, expected);
    for file in &expected {
        let schema = load(file);
        let id = schema["$id"].as_str().unwrap_or_default().to_owned();
        let stem = file.trim_start_matches("events/").trim_end_matches(".json");
        let (event_type, version) = stem.rsplit_once(".v").expect("<type>.v<N>.json");
        assert_eq!(
            id,
            format!("urn:example-ledger:schemas:events:{event_type}:v{version}")
        );
        validator(file);
    }
}

#[test]
fn a_stored_v1_registration_matches_the_v1_schema_and_decodes_to_the_current_type() {
    let v1 = json!({
        "user_id": "0190a8f6-7b2c-7c3e-9f00-00000000a11c",
        "email_ciphertext": "v1:sealed-email",
        "name_ciphertext": "v1:sealed-name",
    });
    assert_valid(
        &validator("events/user.registered.v1.json"),
        &v1,
        "v1 sample",
    );
    assert!(!validator("events/user.registered.v2.json").is_valid(&v1));

    let event = decode("user.registered", 1, &v1.to_string()).expect("v1 decodes");
    assert_eq!(event.schema_version(), 2);
    assert_valid(
        &validator("events/user.registered.v2.json"),
        &event.data(),
        "upcast v1",
    );
    assert_eq!(event.data()["display_name_ciphertext"], "v1:sealed-name");
}

#[test]
fn a_stored_v1_deactivation_decodes_without_its_clear_reason() {
    let v1 = json!({
        "user_id": "0190a8f6-7b2c-7c3e-9f00-00000000a11c",
        "reason": "closed at the customer's request",
    });
    assert_valid(
        &validator("events/user.deactivated.v1.json"),
        &v1,
        "v1 sample",
    );
    assert!(!validator("events/user.deactivated.v2.json").is_valid(&v1));
    let event = decode("user.deactivated", 1, &v1.to_string()).expect("v1 decodes");
    assert_eq!(event.schema_version(), 2);
    assert_valid(
        &validator("events/user.deactivated.v2.json"),
        &event.data(),
        "upcast v1",
    );
    assert!(event.data().get("reason").is_none());
    assert!(event.data().get("reason_ciphertext").is_none());
}

#[test]
fn a_deactivation_reason_is_written_sealed() {
    let event = ledger::testing::deactivated_because("fraud review");
    assert_eq!(event.schema_version(), 2);
    let data = event.data();
    assert!(data.get("reason").is_none(), "{data}");
    assert!(data["reason_ciphertext"].is_string(), "{data}");
}

#[test]
fn schemas_and_decoding_both_refuse_unknown_fields() {
    for event in emitted_events() {
        let mut data = event.data();
        data["surprise"] = json!(1);
        let file = event_schema(event.event_type(), event.schema_version());
        assert!(
            !validator(&file).is_valid(&data),
            "{file} takes unknown fields"
        );
        assert!(
            decode(
                event.event_type(),
                event.schema_version(),
                &data.to_string()
            )
            .is_err(),
            "{} decodes unknown fields",
            event.event_type()
        );
    }
}

#[test]
fn schemas_refuse_out_of_range_amounts_and_malformed_currencies() {
    let deposited = validator("events/transaction.deposited.v1.json");
    let base = deposited_to(ALICE, EUR, 100).data();
    for (field, bad) in [
        ("amount", json!(0)),
        ("amount", json!(1_000_000_000_000_001_i64)),
        ("amount", json!(1.5)),
        ("currency", json!("eur")),
        ("user_id", json!("not-a-uuid")),
    ] {
        let mut data = base.clone();
        data[field] = bad.clone();
        assert!(!deposited.is_valid(&data), "{field} = {bad} accepted");
        assert!(decode("transaction.deposited", 1, &data.to_string()).is_err());
    }
}

fn envelope(event: &LedgerEvent, position: u64, stream_version: u64) -> Value {
    json!({
        "specversion": "1.0",
        "id": Uuid::from_u128(u128::from(position)).hyphenated().to_string(),
        "source": "urn:example-ledger:command-api",
        "type": event.event_type(),
        "subject": event.stream_id(),
        "time": "2026-01-02T03:04:05.123456Z",
        "datacontenttype": "application/json",
        "data": event.data(),
        "position": position,
        "streamversion": stream_version,
        "schemaversion": event.schema_version(),
        "correlationid": "c0ffee",
        "causationid": "c0ffee",
    })
}

#[test]
fn every_emitted_event_fits_the_cloudevents_envelope() {
    let envelope_schema = validator("envelope.cloudevents.json");
    let mut versions: BTreeMap<String, u64> = BTreeMap::new();
    for (n, event) in emitted_events().iter().enumerate() {
        let version = versions.entry(event.stream_id()).or_default();
        *version += 1;
        assert_valid(
            &envelope_schema,
            &envelope(event, n as u64 + 1, *version),
            "envelope",
        );
    }
}

#[test]
fn the_envelope_schema_requires_position_and_a_cloudevents_shape() {
    let envelope_schema = validator("envelope.cloudevents.json");
    let good = envelope(&deposited(1), 1, 1);
    // API.md: every extension is always present, causation included (the command's
    // Idempotency-Key or, without one, its correlation id).
    for (attribute, bad) in [
        ("position", Value::Null),
        ("schemaversion", Value::Null),
        ("correlationid", Value::Null),
        ("causationid", Value::Null),
        ("causationid", json!("")),
        ("specversion", json!("0.3")),
        ("subject", json!("account-1")),
        ("time", json!("yesterday")),
        ("Bad_Name", json!("x")),
    ] {
        let mut message = good.clone();
        if bad.is_null() {
            message.as_object_mut().expect("object").remove(attribute);
        } else {
            message[attribute] = bad;
        }
        assert!(!envelope_schema.is_valid(&message), "{attribute} accepted");
    }
}

/// A sample body, whether the schema takes it, and whether the domain's newtypes do (for
/// the fields they parse). The two must agree.
#[test]
fn command_schemas_agree_with_the_boundary_types() {
    let alice = ALICE.to_string();
    let bob = BOB.to_string();
    let long_email = format!(
        "{}@{}.{}.{}.com",
        "a".repeat(64),
        "b".repeat(63),
        "c".repeat(63),
        "d".repeat(58)
    );
    assert_eq!(long_email.len(), 255);
    let cases: Vec<(&str, Value, bool)> = vec![
        (
            "register_user",
            json!({"email": "a@example.com", "display_name": "Ada"}),
            true,
        ),
        (
            "register_user",
            json!({"user_id": alice, "email": "a@example.com", "display_name": " Ada "}),
            true,
        ),
        ("register_user", json!({"email": "a@example.com"}), false),
        (
            "register_user",
            json!({"email": "not-an-email", "display_name": "Ada"}),
            false,
        ),
        (
            "register_user",
            json!({"email": long_email, "display_name": "Ada"}),
            false,
        ),
        (
            "register_user",
            json!({"email": "a@example.com", "display_name": "   "}),
            false,
        ),
        (
            "register_user",
            json!({"email": "a@example.com", "display_name": "Ada", "admin": true}),
            false,
        ),
        (
            "register_user",
            json!({"user_id": "123", "email": "a@example.com", "display_name": "Ada"}),
            false,
        ),
        ("update_profile", json!({"display_name": "Ada"}), true),
        (
            "update_profile",
            json!({"email": "b@example.com", "display_name": "Ada"}),
            true,
        ),
        ("update_profile", json!({}), false),
        ("deactivate_user", json!({}), true),
        ("deactivate_user", json!({"reason": "fraud review"}), true),
        ("deactivate_user", json!({"reason": " "}), false),
        (
            "create_transaction",
            json!({"type": "deposit", "user_id": alice, "amount": 100, "currency": "EUR"}),
            true,
        ),
        (
            "create_transaction",
            json!({"type": "withdrawal", "user_id": alice, "amount": 1_000_000_000_000_000_i64, "currency": "JPY"}),
            true,
        ),
        (
            "create_transaction",
            json!({"type": "transfer", "from_user_id": alice, "to_user_id": bob, "amount": 1, "currency": "CHF"}),
            true,
        ),
        (
            "create_transaction",
            json!({"type": "deposit", "user_id": alice, "amount": 0, "currency": "EUR"}),
            false,
        ),
        (
            "create_transaction",
            json!({"type": "deposit", "user_id": alice, "amount": 100, "currency": "eur"}),
            false,
        ),
        (
            "create_transaction",
            json!({"type": "transfer", "from_user_id": alice, "amount": 1, "currency": "EUR"}),
            false,
        ),
        (
            "create_transaction",
            json!({"type": "refund", "user_id": alice, "amount": 1, "currency": "EUR"}),
            false,
        ),
        (
            "create_transaction",
            json!({"type": "deposit", "user_id": alice, "to_user_id": bob, "amount": 1, "currency": "EUR"}),
            false,
        ),
    ];
    let currencies = CurrencySet::default();
    for (command, body, valid) in cases {
        let schema = validator(&format!("commands/{command}.json"));
        assert_eq!(schema.is_valid(&body), valid, "{command}: {body}");

        // Field by field, the boundary types must accept what the schema accepts and
        // refuse the field-level problems it refuses.
        let field_ok = |name: &str, value: &Value| -> bool {
            let s = value.as_str().unwrap_or_default();
            match name {
                "email" => Email::parse(s).is_ok(),
                "display_name" => DisplayName::parse(s).is_ok(),
                "reason" => DeactivationReason::parse(s).is_ok(),
                "user_id" | "from_user_id" | "to_user_id" => UserId::parse(s).is_ok(),
                "amount" => value.as_i64().is_some_and(|n| Amount::parse(n).is_ok()),
                "currency" => Currency::parse(s, &currencies).is_ok(),
                _ => true,
            }
        };
        let fields = body.as_object().expect("object body");
        let all_fields_ok = fields.iter().all(|(k, v)| field_ok(k, v));
        if valid {
            assert!(
                all_fields_ok,
                "{command}: schema takes {body} but a boundary type does not"
            );
        }
        if !all_fields_ok {
            assert!(
                !valid,
                "{command}: a boundary type refuses {body} but the schema takes it"
            );
        }
    }
}
