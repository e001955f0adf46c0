//! Settings shared by every service, as clap argument groups to `#[command(flatten)]` into
//! a service's `Config`. Each field also reads an environment variable; parsing happens in
//! `main`, so the library itself never touches the environment.

use std::path::PathBuf;
use std::time::Duration;

use crate::auth::{AuthSetupError, Authenticator, JwksSource, SigningAlgorithm, TokenPolicy};
use crate::dev_keys::{DEV_AUDIENCE, DEV_ISSUER, DEV_JWKS_FILE};
use crate::jwks_remote::{JwksUrl, RemoteJwks};
use crate::otlp::{OtlpEndpoint, OtlpSettings};
use crate::telemetry::{self, LogFormat, Telemetry, TelemetryError, DEFAULT_LOG_FILTER};

/// How bearer tokens are checked. The defaults accept the tokens of `cargo xtask token`.
///
/// Keys come from `JWKS_FILE` or, for an identity provider, from `JWKS_URL`; setting both
/// is refused at startup (clap reports the conflict) rather than one silently winning. The
/// default `JWKS_FILE` does not count: `JWKS_URL` alone is enough.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct AuthArgs {
    /// JWKS file whose keys sign accepted tokens.
    #[arg(long, env = "JWKS_FILE", default_value_t = default_jwks_file())]
    pub jwks_file: String,
    /// The identity provider's JWKS (http://, or https:// with JWKS_CA_FILE), e.g. Keycloak's
    /// `http://keycloak:8080/realms/ledger/protocol/openid-connect/certs`. Fetched at
    /// startup (retried for JWKS_STARTUP_WAIT_SECS), refreshed every JWKS_REFRESH_SECS and
    /// on a token with an unknown kid (at most once per JWKS_MIN_REFETCH_SECS).
    #[arg(long, env = "JWKS_URL", conflicts_with = "jwks_file")]
    pub jwks_url: Option<JwksUrl>,
    /// CA certificates (PEM) an `https://` JWKS_URL's server certificate is checked
    /// against; required for https.
    #[arg(long, env = "JWKS_CA_FILE")]
    pub jwks_ca_file: Option<PathBuf>,
    /// Seconds between background refreshes of JWKS_URL.
    #[arg(long, env = "JWKS_REFRESH_SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    pub jwks_refresh_secs: u64,
    /// Least seconds between two fetches of JWKS_URL caused by unknown kids.
    #[arg(long, env = "JWKS_MIN_REFETCH_SECS", default_value_t = 10)]
    pub jwks_min_refetch_secs: u64,
    /// Seconds the keys of JWKS_URL stay trusted without a successful fetch (refreshes
    /// failing): then they are dropped and tokens are refused until the provider answers.
    #[arg(long, env = "JWKS_MAX_STALE_SECS", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..))]
    pub jwks_max_stale_secs: u64,
    /// Seconds startup keeps retrying JWKS_URL before it gives up.
    #[arg(long, env = "JWKS_STARTUP_WAIT_SECS", default_value_t = 30)]
    pub jwks_startup_wait_secs: u64,
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

    /// Where the keys come from when `JWKS_URL` is set, with the configured timings.
    pub fn remote_jwks(&self) -> Option<RemoteJwks> {
        let url = self.jwks_url.clone()?;
        Some(RemoteJwks {
            refresh_every: Duration::from_secs(self.jwks_refresh_secs),
            min_refetch_interval: Duration::from_secs(self.jwks_min_refetch_secs),
            startup_wait: Duration::from_secs(self.jwks_startup_wait_secs),
            max_stale: Duration::from_secs(self.jwks_max_stale_secs),
            ..RemoteJwks::new(url)
        })
    }

    /// Builds the authenticator: fetches `JWKS_URL` (and keeps refreshing it) when set,
    /// reads `JWKS_FILE` otherwise. Async because of the fetch; needs a Tokio runtime.
    pub async fn authenticator(&self) -> Result<Authenticator, AuthSetupError> {
        match self.remote_jwks() {
            Some(mut remote) => {
                if let Some(path) = &self.jwks_ca_file {
                    remote.ca = Some(crate::JwksCa::from_pem_file(path)?);
                }
                if remote.url.is_https() && remote.ca.is_none() {
                    return Err(AuthSetupError::JwksCaMissing {
                        url: remote.url.to_string(),
                    });
                }
                Authenticator::from_remote(remote, self.policy()).await
            }
            None => Authenticator::from_source(
                &JwksSource::File(PathBuf::from(&self.jwks_file)),
                self.policy(),
            ),
        }
    }
}

/// The dev stack's broker: RabbitMQ's default account on this machine.
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// The broker a worker connects to (the relay publishes to it, the projector consumes).
/// Global, so that it may also follow a subcommand.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct BrokerArgs {
    /// The broker, `amqp://user:password@host:port/vhost`.
    #[arg(long, env = "AMQP_URL", default_value = DEFAULT_AMQP_URL, hide_default_value = true, hide_env_values = true, global = true)]
    pub amqp_url: crate::Secret,
}

/// The limits of a service's HTTP listener (see [`crate::ServeOptions`]).
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct ListenerArgs {
    /// Seconds a client has to send a request's headers before its connection is closed.
    #[arg(long, env = "HTTP_HEADER_READ_TIMEOUT_SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub header_read_timeout_secs: u64,
    /// Seconds within which a request is answered, or gets 408 `request_timeout`.
    #[arg(long, env = "HTTP_REQUEST_TIMEOUT_SECS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub request_timeout_secs: u64,
    /// Connections served at once; more are answered 503 and closed.
    #[arg(long, env = "HTTP_MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: u64,
    /// TLS on the listener: the certificate chain (PEM, leaf first). Needs TLS_KEY_FILE;
    /// without both the listener speaks plain HTTP.
    #[arg(long, env = "TLS_CERT_FILE", requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long, env = "TLS_KEY_FILE", requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,
}

impl ListenerArgs {
    /// The listener's settings; reads the TLS files when they are configured.
    pub fn serve_options(&self) -> Result<crate::ServeOptions, crate::TlsError> {
        let tls = match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(cert), Some(key)) => Some(crate::Tls::from_pem_files(cert, key)?),
            _ => None,
        };
        Ok(crate::ServeOptions {
            header_read_timeout: Duration::from_secs(self.header_read_timeout_secs),
            request_timeout: Duration::from_secs(self.request_timeout_secs),
            max_connections: usize::try_from(self.max_connections).unwrap_or(usize::MAX),
            tls,
        })
    }
}

/// How the process logs and, optionally, exports its spans.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct TelemetryArgs {
    /// `json` (one object per line) or `text`.
    #[arg(long, env = "LOG_FORMAT", default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,
    /// Filter in `RUST_LOG` syntax, e.g. `info,sqlx=warn`. Also decides which spans are
    /// exported.
    #[arg(long, env = "RUST_LOG", default_value = DEFAULT_LOG_FILTER)]
    pub log_filter: String,
    /// OpenTelemetry collector (OTLP/HTTP, plain http://) to export spans to, e.g.
    /// `http://otel-collector:4318`; spans are POSTed as OTLP protobuf to
    /// `<endpoint>/v1/traces`. Unset: no export. Set but empty is refused.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<OtlpEndpoint>,
    /// `service.name` of exported spans; the service's own name (`command-api`, …) if unset.
    #[arg(long, env = "OTEL_SERVICE_NAME")]
    pub otel_service_name: Option<String>,
}

impl TelemetryArgs {
    /// Span export for `service_name`, when an endpoint is configured.
    pub fn otlp(&self, service_name: &str) -> Option<OtlpSettings> {
        let endpoint = self.otlp_endpoint.clone()?;
        let name = self.otel_service_name.as_deref().unwrap_or(service_name);
        Some(OtlpSettings::new(endpoint, name))
    }

    /// Installs the global subscriber for `service_name`; keep what it returns until exit.
    pub fn init(&self, service_name: &str) -> Result<Telemetry, TelemetryError> {
        telemetry::init(
            service_name,
            self.log_format,
            &self.log_filter,
            self.otlp(service_name),
        )
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
        assert_eq!(config.telemetry.otlp("svc"), None);
    }

    #[test]
    fn an_otlp_endpoint_turns_export_on_under_the_service_name_unless_another_is_given() {
        let endpoint = "http://otel-collector:4318";
        let config = Config::try_parse_from(["svc", "--otlp-endpoint", endpoint]).unwrap();
        let otlp = config.telemetry.otlp("command-api").unwrap();
        assert_eq!(otlp.endpoint.to_string(), endpoint);
        assert_eq!(
            otlp.endpoint.traces_url(),
            "http://otel-collector:4318/v1/traces"
        );
        assert_eq!(otlp.service_name, "command-api");
        assert_eq!(
            (otlp.queue_capacity, otlp.batch_size, otlp.flush_every),
            (2048, 512, Duration::from_secs(1))
        );

        let config = Config::try_parse_from([
            "svc",
            "--otlp-endpoint",
            endpoint,
            "--otel-service-name",
            "ledger-commands",
        ])
        .unwrap();
        let otlp = config.telemetry.otlp("command-api").unwrap();
        assert_eq!(otlp.service_name, "ledger-commands");
        for bad in ["", "https://otel-collector:4318", "otel-collector:4318"] {
            assert!(
                Config::try_parse_from(["svc", "--otlp-endpoint", bad]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_jwks_url_replaces_the_default_file_but_not_an_explicit_one() {
        let url = "http://keycloak:8080/realms/ledger/protocol/openid-connect/certs";
        let config = Config::try_parse_from(["svc", "--jwks-url", url]).unwrap();
        let remote = config.auth.remote_jwks().unwrap();
        assert_eq!(remote.url.to_string(), url);
        assert_eq!(remote.refresh_every, Duration::from_secs(300));
        assert_eq!(remote.min_refetch_interval, Duration::from_secs(10));
        assert_eq!(remote.startup_wait, Duration::from_secs(30));

        let both = Config::try_parse_from(["svc", "--jwks-url", url, "--jwks-file", "k.json"]);
        assert_eq!(
            both.err().map(|e| e.kind()),
            Some(clap::error::ErrorKind::ArgumentConflict)
        );
        assert!(Config::try_parse_from(["svc", "--jwks-url", "ftp://idp/certs"]).is_err());
        assert!(Config::try_parse_from(["svc", "--jwks-refresh-secs", "0"]).is_err());
        assert!(Config::try_parse_from(["svc"])
            .unwrap()
            .auth
            .remote_jwks()
            .is_none());
    }

    #[test]
    fn the_broker_url_defaults_to_the_dev_broker_and_never_shows() {
        #[derive(Parser)]
        struct Worker {
            #[command(flatten)]
            broker: BrokerArgs,
        }
        let worker = Worker::try_parse_from(["svc"]).unwrap();
        if std::env::var_os("AMQP_URL").is_none() {
            assert_eq!(worker.broker.amqp_url.expose(), DEFAULT_AMQP_URL);
        }
        let worker = Worker::try_parse_from(["svc", "--amqp-url", "amqp://u:hunter2@h/v"]).unwrap();
        assert!(!format!("{:?}", worker.broker).contains("hunter2"));
    }

    #[test]
    fn listener_limits_default_and_parse() {
        #[derive(Parser)]
        struct Listening {
            #[command(flatten)]
            listener: ListenerArgs,
        }
        let options = Listening::try_parse_from(["svc"])
            .unwrap()
            .listener
            .serve_options()
            .unwrap();
        assert_eq!(options, crate::ServeOptions::default());
        assert!(Listening::try_parse_from(["svc", "--tls-cert-file", "c.pem"]).is_err());
        let options = Listening::try_parse_from([
            "svc",
            "--header-read-timeout-secs",
            "3",
            "--request-timeout-secs",
            "20",
            "--max-connections",
            "7",
        ])
        .unwrap()
        .listener
        .serve_options()
        .unwrap();
        assert_eq!(options.header_read_timeout, Duration::from_secs(3));
        assert_eq!(options.request_timeout, Duration::from_secs(20));
        assert_eq!(options.max_connections, 7);
        assert!(Listening::try_parse_from(["svc", "--max-connections", "0"]).is_err());
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
