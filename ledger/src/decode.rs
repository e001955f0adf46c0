use serde::de::DeserializeOwned;
use serde::de::Error as _;

use crate::event::{
    Deposited, LedgerEvent, PersonalDataErased, ProfileUpdated, Transferred, UserDeactivated,
    UserRegistered, Withdrawn, EVENT_TYPES,
};
use crate::upcast::upcast;

/// Why stored bytes are not a ledger event. Any of these on a committed event is a bug or
/// a foreign stream, never bad user input: stop and say so, do not skip.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown event type {event_type:?}")]
    UnknownType { event_type: String },
    #[error("{event_type} has no schema version {schema_version}")]
    UnknownVersion {
        event_type: String,
        schema_version: u32,
    },
    #[error("{event_type} v{schema_version} does not match its schema: {source}")]
    Malformed {
        event_type: String,
        schema_version: u32,
        source: serde_json::Error,
    },
}

/// Reads an event as stored (`event_type`, `schema_version`, `data` JSON text) into the
/// current types, upcasting older versions step by step on the way (see `upcast.rs`).
pub fn decode(
    event_type: &str,
    schema_version: u32,
    data: &str,
) -> Result<LedgerEvent, DecodeError> {
    let value = serde_json::from_str(data).map_err(|source| DecodeError::Malformed {
        event_type: event_type.to_owned(),
        schema_version,
        source,
    })?;
    decode_value(event_type, schema_version, value)
}

/// [`decode`] for `data` already parsed, as in a CloudEvents message.
pub fn decode_value(
    event_type: &str,
    schema_version: u32,
    data: serde_json::Value,
) -> Result<LedgerEvent, DecodeError> {
    let info = EVENT_TYPES
        .iter()
        .find(|info| info.event_type == event_type)
        .ok_or_else(|| DecodeError::UnknownType {
            event_type: event_type.to_owned(),
        })?;
    if !(1..=info.latest_version).contains(&schema_version) {
        return Err(DecodeError::UnknownVersion {
            event_type: event_type.to_owned(),
            schema_version,
        });
    }
    let malformed = |source| DecodeError::Malformed {
        event_type: event_type.to_owned(),
        schema_version,
        source,
    };
    let mut data = data;
    for from in schema_version..info.latest_version {
        data = upcast(event_type, from, data).map_err(|e| match e {
            crate::upcast::UpcastError::NoStep => DecodeError::UnknownVersion {
                event_type: event_type.to_owned(),
                schema_version,
            },
            crate::upcast::UpcastError::Shape(reason) => {
                malformed(serde_json::Error::custom(reason))
            }
        })?;
    }
    fn typed<T: DeserializeOwned + Into<LedgerEvent>>(
        data: serde_json::Value,
    ) -> Result<LedgerEvent, serde_json::Error> {
        serde_json::from_value::<T>(data).map(Into::into)
    }
    match info.event_type {
        UserRegistered::TYPE => typed::<UserRegistered>(data),
        ProfileUpdated::TYPE => typed::<ProfileUpdated>(data),
        UserDeactivated::TYPE => typed::<UserDeactivated>(data),
        PersonalDataErased::TYPE => typed::<PersonalDataErased>(data),
        Deposited::TYPE => typed::<Deposited>(data),
        Withdrawn::TYPE => typed::<Withdrawn>(data),
        Transferred::TYPE => typed::<Transferred>(data),
        other => {
            return Err(DecodeError::UnknownType {
                event_type: other.to_owned(),
            })
        }
    }
    .map_err(malformed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ALICE: &str = "0190a8f6-7b2c-7c3e-9f00-00000000a11c";

    #[test]
    fn a_v1_registration_decodes_into_the_current_type() {
        let v1 = json!({
            "user_id": ALICE,
            "email_ciphertext": "sealed-email",
            "name_ciphertext": "sealed-name",
        });
        let event = decode("user.registered", 1, &v1.to_string()).unwrap();
        let LedgerEvent::UserRegistered(e) = event else {
            panic!("not a registration: {event:?}");
        };
        assert_eq!(e.display_name_ciphertext.ciphertext(), "sealed-name");
        assert_eq!(e.email_ciphertext.ciphertext(), "sealed-email");
        assert_eq!(e.user_id.to_string(), ALICE);
    }

    #[test]
    fn a_v1_registration_is_written_back_at_the_latest_version() {
        let v1 = json!({"user_id": ALICE, "email_ciphertext": "e", "name_ciphertext": "n"});
        let event = decode("user.registered", 1, &v1.to_string()).unwrap();
        assert_eq!(event.schema_version(), 2);
        assert_eq!(
            event.data(),
            json!({"user_id": ALICE, "email_ciphertext": "e", "display_name_ciphertext": "n"})
        );
    }

    #[test]
    fn a_v1_registration_without_its_name_is_malformed() {
        let v1 = json!({"user_id": ALICE, "email_ciphertext": "e"});
        let err = decode("user.registered", 1, &v1.to_string()).unwrap_err();
        assert!(
            matches!(
                err,
                DecodeError::Malformed {
                    schema_version: 1,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn a_v2_registration_with_the_old_field_name_is_malformed() {
        let v2 = json!({"user_id": ALICE, "email_ciphertext": "e", "name_ciphertext": "n"});
        let err = decode("user.registered", 2, &v2.to_string()).unwrap_err();
        assert!(matches!(err, DecodeError::Malformed { .. }), "{err}");
    }

    #[test]
    fn an_unknown_type_or_version_is_reported_as_such() {
        assert!(matches!(
            decode("user.renamed", 1, "{}"),
            Err(DecodeError::UnknownType { .. })
        ));
        assert!(matches!(
            decode("user.registered", 3, "{}"),
            Err(DecodeError::UnknownVersion {
                schema_version: 3,
                ..
            })
        ));
        assert!(matches!(
            decode("transaction.deposited", 0, "{}"),
            Err(DecodeError::UnknownVersion {
                schema_version: 0,
                ..
            })
        ));
    }

    #[test]
    fn an_amount_out_of_range_in_stored_data_is_malformed() {
        let data = json!({
            "transaction_id": ALICE, "user_id": ALICE, "amount": 0, "currency": "EUR"
        });
        assert!(matches!(
            decode("transaction.deposited", 1, &data.to_string()),
            Err(DecodeError::Malformed { .. })
        ));
    }

    #[test]
    fn every_type_with_several_versions_has_an_upcaster_for_each_step() {
        for info in EVENT_TYPES {
            for from in 1..info.latest_version {
                assert!(
                    !matches!(
                        upcast(info.event_type, from, json!({})),
                        Err(crate::upcast::UpcastError::NoStep)
                    ),
                    "{} has no upcaster from v{from}",
                    info.event_type
                );
            }
        }
    }
}
