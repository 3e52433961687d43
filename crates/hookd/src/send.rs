//! `hookd send`: publishes one event through a running server's API, for quick manual
//! tests of receivers. Without `--data` or `--data-file` the event carries the type's
//! sample data (the same as a webhook test event's).

use std::io::Read;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Context;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::api_client::Api;
use crate::cli::SendArgs;

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

    let headers: Vec<(&str, &str)> = args
        .idempotency_key
        .as_deref()
        .map(|key| ("idempotency-key", key))
        .into_iter()
        .collect();
    let answer = Api::new(&args.server)?
        .call(
            reqwest::Method::POST,
            &["v2", "events"],
            Some(body),
            &headers,
        )
        .await?;
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
