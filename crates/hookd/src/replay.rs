//! `hookd replay`: sends events again through a running server's API. `--event` replays
//! one event; `--webhook --since` starts a bulk replay job and follows it with a progress
//! bar (on a terminal) until it has finished, then prints one summary line.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};

use crate::cli::{ReplayArgs, ServerArgs};

/// How often a running job is looked at.
const POLL: Duration = Duration::from_millis(250);
/// Longest wait for one answer of the server.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) async fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let api = Api::new(&args.server)?;
    match &args.event {
        Some(event_id) => replay_event(&api, event_id, args.webhook.as_deref(), args.json).await,
        None => replay_window(&api, &args).await,
    }
}

/// The server's API, as one client.
struct Api {
    http: reqwest::Client,
    base: url::Url,
    client_id: String,
    client_secret: String,
}

impl Api {
    fn new(server: &ServerArgs) -> anyhow::Result<Api> {
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

    /// Calls the API at the path made of `segments` (each percent-encoded); the JSON
    /// answer of a 2xx, or an error that says what the server said.
    async fn call(
        &self,
        method: reqwest::Method,
        segments: &[&str],
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| anyhow::anyhow!("--server `{}` cannot take a path", self.base))?
            .pop_if_empty()
            .extend(segments);
        let path = url.path().to_owned();
        let mut request = self
            .http
            .request(method.clone(), url)
            .basic_auth(&self.client_id, Some(&self.client_secret));
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .with_context(|| format!("reading the answer to {method} {path}"))?;
        let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if !status.is_success() {
            let error = &answer["error"];
            match (error["code"].as_str(), error["message"].as_str()) {
                (Some(code), Some(message)) => {
                    bail!("{method} {path}: {status} {code}: {message}")
                }
                _ => bail!("{method} {path}: {status}"),
            }
        }
        Ok(answer)
    }
}

async fn replay_event(
    api: &Api,
    event_id: &str,
    webhook_id: Option<&str>,
    print_json: bool,
) -> anyhow::Result<ExitCode> {
    let body = match webhook_id {
        Some(id) => json!({ "webhook_id": id }),
        None => json!({}),
    };
    let replayed = api
        .call(
            reqwest::Method::POST,
            &["v2", "events", event_id, "replay"],
            Some(&body),
        )
        .await?;
    if print_json {
        println!("{replayed}");
    } else {
        let webhooks: Vec<&str> = replayed["webhook_ids"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        println!("event {event_id} sent again to {}", webhooks.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

/// A time flag as the API takes it: unix seconds as a number, anything else as text (the
/// server checks it).
fn time_value(text: &str) -> Value {
    match text.trim().parse::<i64>() {
        Ok(seconds) => json!(seconds),
        Err(_) => json!(text.trim()),
    }
}

async fn replay_window(api: &Api, args: &ReplayArgs) -> anyhow::Result<ExitCode> {
    let (Some(webhook_id), Some(since)) = (&args.webhook, &args.since) else {
        bail!("--webhook and --since are needed (or --event)");
    };
    let mut body = json!({ "since": time_value(since) });
    if let Some(until) = &args.until {
        body["until"] = time_value(until);
    }
    if let Some(status) = &args.status {
        body["status"] = json!(status);
    }
    let started = Instant::now();
    let mut job = api
        .call(
            reqwest::Method::POST,
            &["v2", "webhooks", webhook_id, "replay"],
            Some(&body),
        )
        .await?;
    let job_id = job["id"]
        .as_str()
        .context("the server answered without a job id")?
        .to_owned();
    if args.no_wait {
        if args.json {
            println!("{job}");
        } else {
            println!(
                "replay {job_id} started: {} events to send again to {webhook_id} (follow it with GET /v2/replays/{job_id})",
                count(&job, "total")
            );
        }
        return Ok(ExitCode::SUCCESS);
    }

    let bar = progress_bar(count(&job, "total"))?;
    while job["state"] == "running" {
        bar.set_length(count(&job, "total"));
        bar.set_position(count(&job, "done"));
        tokio::time::sleep(POLL).await;
        job = api
            .call(reqwest::Method::GET, &["v2", "replays", &job_id], None)
            .await?;
    }
    bar.finish_and_clear();

    let (done, total) = (count(&job, "done"), count(&job, "total"));
    let completed = job["state"] == "completed";
    if args.json {
        println!("{job}");
    } else if completed {
        println!(
            "replay {job_id} completed: {done} of {total} events sent again to {webhook_id} in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    } else {
        println!(
            "replay {job_id} {}: {done} of {total} events sent again to {webhook_id} (the webhook was disabled or deleted)",
            job["state"].as_str().unwrap_or("stopped")
        );
    }
    Ok(if completed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A progress bar on stderr, shown only to a person at a terminal.
fn progress_bar(total: u64) -> anyhow::Result<ProgressBar> {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(total), target);
    bar.set_style(
        ProgressStyle::with_template("replaying [{bar:40}] {pos}/{len} events ({elapsed})")
            .context("the progress bar's template")?
            .progress_chars("=> "),
    );
    Ok(bar)
}

fn count(job: &Value, field: &str) -> u64 {
    job[field].as_u64().unwrap_or(0)
}
