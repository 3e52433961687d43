//! The server's API as the CLI commands that talk to a running server (`replay`, `send`)
//! call it: `--server`, HTTP Basic auth with `--client-id`/`--client-secret`, and the
//! server's JSON error turned into one line.

use std::time::Duration;

use anyhow::Context;
use serde_json::Value;

use crate::cli::ServerArgs;

/// Longest wait for one answer of the server.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The server's API, as one client.
pub(crate) struct Api {
    http: reqwest::Client,
    base: url::Url,
    client_id: String,
    client_secret: String,
}

impl Api {
    pub(crate) fn new(server: &ServerArgs) -> anyhow::Result<Api> {
        // reqwest is built without a crypto provider of its own (https servers).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .context("cannot build the HTTP client")?;
        let base = url::Url::parse(&server.server)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .with_context(|| format!("--server `{}` is not an http(s) URL", server.server))?;
        Ok(Api {
            http,
            base,
            client_id: server.client_id.clone(),
            client_secret: server.client_secret.clone(),
        })
    }

    /// The server's address, as given.
    pub(crate) fn base(&self) -> &url::Url {
        &self.base
    }

    /// The URL of the API path made of `segments` (each percent-encoded).
    pub(crate) fn url(&self, segments: &[&str]) -> anyhow::Result<url::Url> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| anyhow::anyhow!("--server `{}` cannot take a path", self.base))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// `request` with the client's credentials.
    pub(crate) fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request.basic_auth(&self.client_id, Some(&self.client_secret))
    }

    /// An authorized request on this client (which gives up after `REQUEST_TIMEOUT`).
    pub(crate) fn request(
        &self,
        method: reqwest::Method,
        url: url::Url,
    ) -> reqwest::RequestBuilder {
        self.authorized(self.http.request(method, url))
    }

    /// Calls the API at the path made of `segments` (each percent-encoded) with a JSON
    /// `body` (sent as given) and extra `headers`; the JSON answer of a 2xx, or an error
    /// that says what the server said.
    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        segments: &[&str],
        body: Option<String>,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Value> {
        let url = self.url(segments)?;
        let what = format!("{method} {}", url.path());
        let mut request = self.request(method, url);
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .with_context(|| format!("reading the answer to {what}"))?;
        let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(error_line(&what, status, &answer));
        }
        Ok(answer)
    }
}

/// The server's error answer (`{"error":{"code","message"}}`) as one line about `what`.
fn error_line(what: &str, status: reqwest::StatusCode, answer: &Value) -> anyhow::Error {
    let error = &answer["error"];
    match (error["code"].as_str(), error["message"].as_str()) {
        (Some(code), Some(message)) => anyhow::anyhow!("{what}: {status} {code}: {message}"),
        _ => anyhow::anyhow!("{what}: {status}"),
    }
}

/// The error a non-2xx `response` stands for, as one line about `what`.
pub(crate) async fn error_of(what: &str, response: reqwest::Response) -> anyhow::Error {
    let status = response.status();
    let answer: Value = response
        .bytes()
        .await
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    error_line(what, status, &answer)
}
