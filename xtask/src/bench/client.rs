//! The benchmarks' HTTP client for our own services: one keep-alive connection per
//! client, as a closed-loop load generator wants.

use anyhow::Context;
use reqwest::header::CONTENT_TYPE;
use reqwest::Method;

pub(crate) struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    /// A client of the service at `addr` (host:port); it connects on the first request.
    pub(crate) fn connect(addr: &str) -> anyhow::Result<Self> {
        let http = crate::http::builder()
            .pool_max_idle_per_host(1)
            .build()
            .context("making the HTTP client")?;
        Ok(Self {
            http,
            base: format!("http://{addr}"),
        })
    }

    /// Sends a request and returns (status, body).
    pub(crate) async fn send(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: &str,
    ) -> anyhow::Result<(u16, String)> {
        self.send_with(method, path, token, &[], body).await
    }

    /// [`Self::send`] with extra headers.
    pub(crate) async fn send_with(
        &self,
        method: &str,
        path: &str,
        token: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> anyhow::Result<(u16, String)> {
        let mut request = self
            .http
            .request(
                Method::from_bytes(method.as_bytes())?,
                format!("{}{path}", self.base),
            )
            .bearer_auth(token);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if !body.is_empty() {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_owned());
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {}{path}", self.base))?;
        let status = response.status().as_u16();
        Ok((status, response.text().await?))
    }
}
