//! `hookd send`: publishes one event through a running server's API, for quick manual
//! tests of receivers. Without `--data` or `--data-file` the event carries the type's
//! sample data (the same as a webhook test event's).

use std::io::Read;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::cli::{SendArgs, ServerArgs};

/// Longest wait for the server's answer.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The body of `POST /v2/events`. `data` travels as the user wrote it (checked to be
/// JSON): the server canonicalizes it, so large numbers keep every digit.
#[derive(Serialize)]
struct NewEvent<'a> {
    #[serde(rename = "type")]
    event_type: &'a str,
    data: &'a RawValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
}

pub(crate) async fn run(args: SendArgs) -> anyhow::Result<ExitCode> {
    let data = event_data(&args)?;
    let data = RawValue::from_string(data).map_err(|e| {
        anyhow::anyhow!(
            "{} is not JSON: {e}",
            if args.data_file.is_some() {
                "--data-file"
            } else {
                "--data"
            }
        )
    })?;
    let body = serde_json::to_string(&NewEvent {
        event_type: &args.event_type,
        data: &data,
        id: args.id.as_deref(),
    })
    .context("encoding the event")?;

    let answer = post_event(&args.server, body, args.idempotency_key.as_deref()).await?;
    if args.json {
        println!("{answer}");
    } else {
        let field = |name: &str| answer[name].as_str().unwrap_or("?").to_owned();
        println!("accepted {} {}", field("id"), field("type"));
    }
    Ok(ExitCode::SUCCESS)
}

/// The event's `data` as text: `--data`, the file (or standard input for `-`), or the
/// type's sample data.
fn event_data(args: &SendArgs) -> anyhow::Result<String> {
    if let Some(data) = &args.data {
        return Ok(data.clone());
    }
    if let Some(path) = &args.data_file {
        if path.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the data from standard input")?;
            return Ok(text);
        }
        return std::fs::read_to_string(path)
            .with_context(|| format!("reading --data-file {}", path.display()));
    }
    let now = hookd_core::time::unix_ms(SystemTime::now()).div_euclid(1000);
    Ok(hookd_core::sample::sample_data(&args.event_type, now).into_string())
}

/// POSTs the event; the server's JSON answer on a 2xx, else an error that says what the
/// server said.
async fn post_event(
    server: &ServerArgs,
    body: String,
    idempotency_key: Option<&str>,
) -> anyhow::Result<serde_json::Value> {
    // reqwest is built without a crypto provider of its own (https servers).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .context("cannot build the HTTP client")?;
    let mut url = url::Url::parse(&server.server)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
        .with_context(|| format!("--server `{}` is not an http(s) URL", server.server))?;
    url.path_segments_mut()
        .map_err(|()| anyhow::anyhow!("--server `{}` cannot take a path", server.server))?
        .pop_if_empty()
        .extend(["v2", "events"]);
    let mut request = http
        .post(url)
        .basic_auth(&server.client_id, Some(&server.client_secret))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body);
    if let Some(key) = idempotency_key {
        request = request.header("idempotency-key", key);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("cannot reach {}", server.server))?;
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .context("reading the answer to POST /v2/events")?;
    let answer: serde_json::Value =
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    if !status.is_success() {
        let error = &answer["error"];
        match (error["code"].as_str(), error["message"].as_str()) {
            (Some(code), Some(message)) => bail!("POST /v2/events: {status} {code}: {message}"),
            _ => bail!("POST /v2/events: {status}"),
        }
    }
    Ok(answer)
}
