//! HTTP to the services xtask starts or seeds on loopback: reqwest, with no proxy taken
//! from the environment (the services are local; a developer's `HTTP_PROXY` must not
//! reroute them).

use anyhow::Context;

/// A builder with those settings, for a caller that adds its own.
pub fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder().no_proxy()
}

/// A client with those settings.
pub fn client() -> anyhow::Result<reqwest::Client> {
    builder().build().context("making the HTTP client")
}
