//! The dev signing key is readable by the standard tools (RFC 8410 / PKCS#8 v1), so a
//! token can be signed outside the project with it: here with `openssl`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use platform::{DevKeys, TokenPolicy, DEV_AUDIENCE, DEV_ISSUER, DEV_SIGNING_KEY_FILE};
use uuid::Uuid;

fn openssl(args: &[&str], input: Option<&[u8]>) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("openssl (the openssl package) runs");
    if let Some(input) = input {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn fresh_dir() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("platform-dev-key-tools-{}", Uuid::new_v4()))
}

#[test]
fn openssl_reads_the_dev_key_and_a_token_it_signs_is_accepted() {
    let dir = fresh_dir();
    let keys = DevKeys::load_or_create(&dir).unwrap();
    let key_file = dir.join(DEV_SIGNING_KEY_FILE);
    let key = key_file.to_str().unwrap();
    let text = String::from_utf8(openssl(&["pkey", "-in", key, "-noout", "-text"], None)).unwrap();
    assert!(text.contains("ED25519 Private-Key"), "{text}");

    // A token built and signed by openssl alone.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let sub = Uuid::now_v7();
    let header = serde_json::json!({"alg": "EdDSA", "typ": "JWT", "kid": keys.kid()});
    let claims = serde_json::json!({
        "iss": DEV_ISSUER, "aud": DEV_AUDIENCE, "sub": sub.to_string(),
        "iat": now, "nbf": now, "exp": now + 300, "roles": ["auditor"],
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let input = dir.join("signing-input");
    std::fs::write(&input, &signing_input).unwrap();
    let signature = openssl(
        &[
            "pkeyutl",
            "-sign",
            "-inkey",
            key,
            "-rawin",
            "-in",
            input.to_str().unwrap(),
        ],
        None,
    );
    let token = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature));
    let services = platform::Authenticator::from_source(
        &platform::JwksSource::File(dir.join(platform::DEV_JWKS_FILE)),
        TokenPolicy::new(DEV_ISSUER, DEV_AUDIENCE),
    )
    .unwrap();
    let principal = services.validate(&token).unwrap();
    assert_eq!(principal.subject, sub);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A key written by an older version (ring's PKCS#8 v2 document, which the standard
/// tools refuse) still loads, keeps its key id, and is rewritten in the standard form.
#[test]
fn an_older_v2_key_is_read_and_rewritten_as_v1() {
    let dir = fresh_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let rng = ring::rand::SystemRandom::new();
    let v2 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let pem = pem(v2.as_ref());
    let key_file = dir.join(DEV_SIGNING_KEY_FILE);
    std::fs::write(&key_file, &pem).unwrap();
    let from_v2 = DevKeys::from_pkcs8_pem(&pem).unwrap();
    let loaded = DevKeys::load_or_create(&dir).unwrap();
    assert_eq!(loaded.kid(), from_v2.kid());
    openssl(&["pkey", "-in", key_file.to_str().unwrap(), "-noout"], None);
    assert_eq!(
        DevKeys::load_or_create(&dir).unwrap().kid(),
        from_v2.kid(),
        "the same key after the rewrite"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn pem(der: &[u8]) -> String {
    use base64::engine::general_purpose::STANDARD;
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    )
}
