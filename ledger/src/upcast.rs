//! Upcasters: each turns one event type's data from version N into N + 1, as JSON, so
//! old Rust types need not be kept. [`crate::decode`] chains them up to the latest
//! version; writers only ever write the latest.
//!
//! Adding a version: bump the payload's `VERSION`, add its step here, add
//! `schemas/events/<type>.v<N+1>.json`, and keep the old schema file (stored events stay
//! at the version they were written in).

use serde_json::Value;

use crate::event::{UserDeactivated, UserRegistered};

pub(crate) enum UpcastError {
    /// No step from this version: a version the code does not know.
    NoStep,
    /// The data is not an object of the old version's shape.
    Shape(&'static str),
}

pub(crate) fn upcast(
    event_type: &str,
    from_version: u32,
    data: Value,
) -> Result<Value, UpcastError> {
    match (event_type, from_version) {
        (UserRegistered::TYPE, 1) => user_registered_v1_to_v2(data),
        (UserDeactivated::TYPE, 1) => user_deactivated_v1_to_v2(data),
        _ => Err(UpcastError::NoStep),
    }
}

/// v2 seals the reason (`reason_ciphertext`). A v1 reason was written in clear and cannot
/// be sealed here (no keys in the domain): it is left out, as nothing decides on it; the
/// stored v1 event keeps it.
fn user_deactivated_v1_to_v2(data: Value) -> Result<Value, UpcastError> {
    let Value::Object(mut fields) = data else {
        return Err(UpcastError::Shape(
            "user.deactivated v1 data is not an object",
        ));
    };
    fields.remove("reason");
    Ok(Value::Object(fields))
}

/// v2 renamed `name_ciphertext` to `display_name_ciphertext`, the name API.md uses.
fn user_registered_v1_to_v2(data: Value) -> Result<Value, UpcastError> {
    let Value::Object(mut fields) = data else {
        return Err(UpcastError::Shape(
            "user.registered v1 data is not an object",
        ));
    };
    let name = fields.remove("name_ciphertext").ok_or(UpcastError::Shape(
        "user.registered v1 has no name_ciphertext",
    ))?;
    fields.insert("display_name_ciphertext".to_owned(), name);
    Ok(Value::Object(fields))
}
