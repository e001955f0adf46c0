//! Settings shared by every service, as clap argument groups to `#[command(flatten)]` into
//! a service's `Config`. Each field also reads an environment variable; parsing happens in
//! `main`, so the library itself never touches the environment.

use std::path::PathBuf;

use crate::auth::{AuthSetupError, Authenticator, JwksSource, SigningAlgorithm, TokenPolicy};
use crate::dev_keys::{DEV_AUDIENCE, DEV_ISSUER, DEV_JWKS_FILE};
use crate::telemetry::{self, LogFormat, TelemetryError, DEFAULT_LOG_FILTER};

/// How bearer tokens are checked. The defaults accept the tokens of `cargo xtask token`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct AuthArgs {
    /// JWKS file whose keys sign accepted tokens.
    #[arg(long, env = "JWKS_FILE", default_value_t = default_jwks_file())]
    pub jwks_file: String,
    /// Required `iss` of tokens.
    #[arg(long, env = "JWT_ISSUER", default_value = DEV_ISSUER)]
    pub jwt_issuer: String,
    /// Audience tokens must name in `aud`.
    #[arg(long, env = "JWT_AUDIENCE", default_value = DEV_AUDIENCE)]
    pub jwt_audience: String,
    /// The one accepted signature algorithm: EdDSA, RS256 or ES256.
    #[arg(long, env = "JWT_ALGORITHM", default_value_t = SigningAlgorithm::EdDSA)]
    pub jwt_algorithm: SigningAlgorithm,
}

fn default_jwks_file() -> String {
    format!(".dev/{DEV_JWKS_FILE}")
}

impl AuthArgs {
    pub fn policy(&self) -> TokenPolicy {
        TokenPolicy::new(&self.jwt_issuer, &self.jwt_audience).with_algorithm(self.jwt_algorithm)
    }

    /// Reads the JWKS file and builds the authenticator.
    pub fn authenticator(&self) -> Result<Authenticator, AuthSetupError> {
        Authenticator::from_source(
            &JwksSource::File(PathBuf::from(&self.jwks_file)),
            self.policy(),
        )
    }
}

/// How the process logs.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct TelemetryArgs {
    /// `json` (one object per line) or `text`.
    #[arg(long, env = "LOG_FORMAT", default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
    /// Filter in `RUST_LOG` syntax, e.g. `info,sqlx=warn`.
    #[arg(long, env = "RUST_LOG", default_value = DEFAULT_LOG_FILTER)]
    pub log_filter: String,
}

impl TelemetryArgs {
    /// Installs the global subscriber for `service_name`.
    pub fn init(&self, service_name: &str) -> Result<(), TelemetryError> {
        telemetry::init(service_name, self.log_format, &self.log_filter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Config {
        #[command(flatten)]
        auth: AuthArgs,
        #[command(flatten)]
        telemetry: TelemetryArgs,
    }

    #[test]
    fn defaults_accept_dev_tokens() {
        let config = Config::try_parse_from(["svc"]).unwrap();
        assert_eq!(config.auth.jwt_issuer, DEV_ISSUER);
        assert_eq!(config.auth.jwt_algorithm, SigningAlgorithm::EdDSA);
        assert_eq!(config.auth.jwks_file, ".dev/jwks.json");
        assert_eq!(config.telemetry.log_format, LogFormat::Json);
    }

    #[test]
    fn values_parse() {
        let config = Config::try_parse_from([
            "svc",
            "--jwt-algorithm",
            "RS256",
            "--log-format",
            "text",
            "--log-filter",
            "debug",
        ])
        .unwrap();
        assert_eq!(config.auth.jwt_algorithm, SigningAlgorithm::RS256);
        assert_eq!(config.telemetry.log_format, LogFormat::Text);
        assert!(Config::try_parse_from(["svc", "--jwt-algorithm", "HS256"]).is_err());
    }
}
