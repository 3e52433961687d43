//! `hookd replay`: sends events again through a running server's API. `--event` replays
//! one event; `--webhook --since` starts a bulk replay job and follows it with a progress
//! bar (on a terminal) until it has finished, then prints one summary line.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};

use crate::api_client::Api;
use crate::cli::ReplayArgs;

/// How often a running job is looked at.
const POLL: Duration = Duration::from_millis(250);

pub(crate) async fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let api = Api::new(&args.server)?;
    match &args.event {
        Some(event_id) => replay_event(&api, event_id, args.webhook.as_deref(), args.json).await,
        None => replay_window(&api, &args).await,
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
            Some(body.to_string()),
            &[],
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
            Some(body.to_string()),
            &[],
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
            .call(reqwest::Method::GET, &["v2", "replays", &job_id], None, &[])
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
