//! What `projector --help` shows: every setting, never a secret from the environment.

const HELP_ARGS: &[&[&str]] = &[&["--help"], &["run", "--help"], &["rebuild", "--help"]];

/// `--help` with every password and key setting in the environment prints none of them.
#[test]
fn help_never_prints_a_secret_from_the_environment() {
    let secrets = [
        (
            "DATABASE_URL",
            "mysql://svc:db-pw-7f3a91@db.internal:3306/example",
        ),
        (
            "EVENTS_DATABASE_URL",
            "mysql://svc:events-pw-2b8c@db.internal:3306/example",
        ),
        ("AMQP_URL", "amqp://svc:amqp-pw-5d0e@mq.internal:5672/%2f"),
        (
            "MASTER_KEYS",
            "1:bWFzdGVyLWtleS0xMjM0NTY3ODkwYWJjZGVmZ2hpams=",
        ),
        (
            "BLIND_INDEX_KEY",
            "YmxpbmQtaW5kZXgta2V5LTEyMzQ1Njc4OTBhYmNkZWY=",
        ),
    ];
    for args in HELP_ARGS {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_projector"))
            .args(*args)
            .envs(secrets)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if args.len() == 1 {
            assert!(text.contains("DATABASE_URL"), "{args:?}: {text}");
        }
        for (name, value) in secrets {
            let password = value
                .split(['@', ':'])
                .find(|p| p.contains("-pw-"))
                .unwrap_or(value);
            assert!(!text.contains(password), "{args:?} printed {name}: {text}");
            assert!(!text.contains(value), "{args:?} printed {name}: {text}");
        }
        // Nor the defaults, which hold the dev passwords.
        assert!(!text.contains("example:example"), "{args:?}: {text}");
    }
}
