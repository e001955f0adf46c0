//! An error and its sources on one line, for the one log field that names a failure's
//! cause (`error = %error_chain(&e)`): `appending: database error: connection reset`.

/// `error` and each of its sources, `: `-joined.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("appending")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn every_source_is_named_in_order() {
        let e = Outer(std::io::Error::other("connection reset"));
        assert_eq!(error_chain(&e), "appending: connection reset");
    }
}
