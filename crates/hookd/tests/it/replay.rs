//! Replay through the real binary: `POST /v2/events/{id}/replay` sends one event again
//! (same `webhook-id`, same body, attempts numbered from 1 again), `POST
//! /v2/webhooks/{id}/replay` re-sends a window's events as a background job followed with
//! `GET /v2/replays/{id}`, and `hookd replay` does both from the command line.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use hookd_testkit::receiver::{Receiver, Recorded, Reply};
use hookd_testkit::server::{Hookd, ServeOptions};
use hookd_testkit::signatures::expected_hex;
use hookd_testkit::{Backend, PATIENCE, backend_tests};

use crate::{bin, start, start_with, unix_seconds};

backend_tests!(
    a_replayed_event_arrives_again_with_its_id_and_body_and_attempts_from_1,
    replays_are_refused_with_clear_errors,
    a_bulk_replay_resends_only_the_failed_events_of_its_window,
    until_and_since_bound_a_bulk_replay,
    a_large_bulk_replay_leaves_other_webhooks_undisturbed,
    the_cli_replays_a_window_with_progress_and_one_event,
    a_job_made_by_another_node_or_left_by_a_restart_is_finished,
);

/// One attempt per delivery: a `400` (or a `500`) fails it for good.
async fn start_single_attempt(backend: Backend) -> Hookd {
    start_with(ServeOptions {
        backend,
        retry_schedule: "0s".to_owned(),
        ..ServeOptions::default()
    })
    .await
}

fn id_of(value: &Value) -> String {
    value["id"].as_str().unwrap().to_owned()
}

/// `attempt_number`s of an event's attempts to one webhook, in order.
fn attempt_numbers(attempts: &[Value], webhook_id: &str) -> Vec<u64> {
    attempts
        .iter()
        .filter(|a| a["webhook_id"] == webhook_id)
        .map(|a| a["attempt_number"].as_u64().unwrap())
        .collect()
}

fn all_finished(event: &Value, deliveries: usize) -> bool {
    event["deliveries"]
        .as_array()
        .is_some_and(|d| d.len() == deliveries && d.iter().all(|d| d["state"] != "pending"))
}

/// Publishes events one at a time, each settled before the next (so a receiver's n-th
/// request is the n-th event); their ids and `created`.
async fn publish_settled(hookd: &Hookd, n: usize) -> Vec<(String, i64)> {
    let mut published = Vec::new();
    for i in 0..n {
        let id = hookd.publish("payment.completed", json!({"n": i})).await;
        let event = hookd.wait_for_event(&id, |e| all_finished(e, 1)).await;
        published.push((id, event["created"].as_i64().unwrap()));
    }
    published
}

/// Polls a replay job until it is no longer running.
async fn wait_for_job(hookd: &Hookd, job_id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (status, job) = hookd.get(&format!("/v2/replays/{job_id}")).await;
        assert_eq!(status, 200, "{job}");
        if job["state"] != "running" {
            return job;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the job never finished: {job}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Starts a bulk replay; the `202`'s job, after checking its `Location`.
async fn start_replay(hookd: &Hookd, webhook_id: &str, body: &Value) -> Value {
    let response = hookd_testkit::server::http_client()
        .post(format!(
            "{}/v2/webhooks/{webhook_id}/replay",
            hookd.base_url
        ))
        .basic_auth(
            &hookd.credentials.client_id,
            Some(&hookd.credentials.client_secret),
        )
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let job: Value = response.json().await.unwrap();
    assert_eq!(status, 202, "{job}");
    assert_eq!(
        location,
        Some(format!("/v2/replays/{}", job["id"].as_str().unwrap()))
    );
    assert!(job["id"].as_str().unwrap().starts_with("rpl_"), "{job}");
    assert_eq!(job["webhook_id"], webhook_id);
    job
}

fn webhook_ids(requests: &[Recorded]) -> Vec<String> {
    requests
        .iter()
        .map(|r| r.header("webhook-id").to_owned())
        .collect()
}

async fn a_replayed_event_arrives_again_with_its_id_and_body_and_attempts_from_1(backend: Backend) {
    let hookd = start(backend).await;
    // wh_a's first attempt fails, its retry succeeds.
    let a = Receiver::start(|n| Reply::Status(if n == 0 { 500 } else { 200 })).await;
    let b = Receiver::ok().await;
    let wh_a = hookd
        .create_webhook(json!({"url": a.url("/a"), "events": ["*"]}))
        .await;
    let wh_b = hookd
        .create_webhook(json!({"url": b.url("/b"), "events": ["*"]}))
        .await;
    let (id_a, id_b) = (id_of(&wh_a), id_of(&wh_b));
    let event_id = hookd
        .publish("payment.completed", json!({"id": "pay_1", "amount": 10}))
        .await;
    let first = a.wait_for(2, PATIENCE).await;
    hookd
        .wait_for_event(&event_id, |e| all_finished(e, 2))
        .await;

    // To wh_a alone.
    let (status, replayed) = hookd
        .post(
            &format!("/v2/events/{event_id}/replay"),
            &json!({"webhook_id": id_a}),
        )
        .await;
    assert_eq!(status, 202, "{replayed}");
    assert_eq!(replayed["id"], event_id.as_str());
    assert_eq!(replayed["type"], "payment.completed");
    assert_eq!(replayed["webhook_ids"], json!([id_a]));
    assert!(replayed.get("test").is_none(), "{replayed}");
    let got = a.wait_for(3, PATIENCE).await;
    let again = &got[2];
    assert_eq!(again.header("webhook-id"), event_id);
    assert_eq!(again.body, first[1].body, "the same bytes");
    assert_eq!(
        again.header("x-nextpay-signature"),
        expected_hex(wh_a["secret"].as_str().unwrap(), &again.body)
    );
    let event = hookd
        .wait_for_event(&event_id, |e| all_finished(e, 3))
        .await;
    assert_eq!(event["created"], replayed["created"]);
    let attempts = hookd.attempts(&event_id).await;
    assert_eq!(attempt_numbers(&attempts, &id_a), [1, 2, 1]);
    assert_eq!(attempt_numbers(&attempts, &id_b), [1]);
    assert_eq!(b.requests().len(), 1);

    // Without a webhook: everywhere it went (an empty body is fine).
    let (status, replayed) = hookd
        .post_raw(&format!("/v2/events/{event_id}/replay"), Vec::new(), &[])
        .await;
    assert_eq!(status, 202, "{replayed}");
    assert_eq!(replayed["webhook_ids"], json!([id_a, id_b]));
    let to_b = b.wait_for(2, PATIENCE).await;
    assert_eq!(to_b[1].body, to_b[0].body);
    assert_eq!(to_b[1].header("webhook-id"), event_id);
    a.wait_for(4, PATIENCE).await;
    hookd
        .wait_for_event(&event_id, |e| all_finished(e, 5))
        .await;
    let attempts = hookd.attempts(&event_id).await;
    assert_eq!(attempt_numbers(&attempts, &id_a), [1, 2, 1, 1]);
    assert_eq!(attempt_numbers(&attempts, &id_b), [1, 1]);

    // A test event stays a test event.
    let (status, test) = hookd
        .post(&format!("/v2/webhooks/{id_b}/test"), &json!({}))
        .await;
    assert_eq!(status, 202, "{test}");
    let test_id = id_of(&test);
    b.wait_for(3, PATIENCE).await;
    let (status, replayed) = hookd
        .post(&format!("/v2/events/{test_id}/replay"), &json!({}))
        .await;
    assert_eq!(status, 202, "{replayed}");
    assert_eq!(replayed["test"], true);
    assert_eq!(replayed["webhook_ids"], json!([id_b]));
    let got = b.wait_for(4, PATIENCE).await;
    assert_eq!(got[3].header("webhook-test"), "true");
    assert_eq!(got[3].header("webhook-id"), test_id);
    assert_eq!(got[3].body, got[2].body);
    assert_eq!(a.requests().len(), 4, "wh_a never got the test event");
}

/// Asserts an error answer's status and code.
fn assert_error(answer: &(u16, Value), status: u16, code: &str) {
    assert_eq!(
        (answer.0, answer.1["error"]["code"].as_str()),
        (status, Some(code)),
        "{}",
        answer.1
    );
    assert!(answer.1["error"]["message"].is_string(), "{}", answer.1);
}

async fn replays_are_refused_with_clear_errors(backend: Backend) {
    let hookd = start_single_attempt(backend).await;
    let receiver = Receiver::ok().await;
    let payouts = hookd
        .create_webhook(json!({"url": receiver.url("/"), "events": ["payout_request.*"]}))
        .await;
    let payouts_id = id_of(&payouts);
    // No webhook subscribes to it: it has no deliveries.
    let orphan = hookd.publish("payment.completed", json!({})).await;
    let replay_path = format!("/v2/events/{orphan}/replay");

    assert_error(
        &hookd.post(&replay_path, &json!({})).await,
        409,
        "no_webhook_to_replay_to",
    );
    let not_subscribed = hookd
        .post(&replay_path, &json!({"webhook_id": payouts_id}))
        .await;
    assert_error(&not_subscribed, 422, "validation_failed");
    assert!(
        not_subscribed.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("payout_request.*"),
        "{}",
        not_subscribed.1
    );
    assert_error(
        &hookd.post("/v2/events/evt_nope/replay", &json!({})).await,
        404,
        "not_found",
    );
    assert_error(
        &hookd
            .post(&replay_path, &json!({"webhook_id": "wh_nope"}))
            .await,
        404,
        "not_found",
    );
    for body in [json!({"webhook_id": 5}), json!({"webhook": payouts_id})] {
        assert_error(
            &hookd.post(&replay_path, &body).await,
            422,
            "validation_failed",
        );
    }
    assert_error(
        &hookd
            .post_raw(&replay_path, b"{\"webhook_id\":".to_vec(), &[])
            .await,
        400,
        "invalid_json",
    );

    // Bulk: the body is checked before anything is stored.
    let bulk_path = format!("/v2/webhooks/{payouts_id}/replay");
    for body in [
        json!({}),
        json!({"since": "yesterday"}),
        json!({"since": 1.5}),
        json!({"since": 1_700_000_000, "until": 1_700_000_000}),
        json!({"since": "2024-01-15T10:30:00Z", "until": "2024-01-15T10:00:00Z"}),
        json!({"since": 0, "status": "pending"}),
        json!({"since": 0, "status": "bogus"}),
        json!({"since": 0, "state": "all"}),
    ] {
        let answer = hookd.post(&bulk_path, &body).await;
        assert_error(&answer, 422, "validation_failed");
    }
    assert_error(
        &hookd
            .post("/v2/webhooks/wh_nope/replay", &json!({"since": 0}))
            .await,
        404,
        "not_found",
    );
    assert_error(&hookd.get("/v2/replays/rpl_nope").await, 404, "not_found");
    assert_error(
        &hookd.get("/v2/webhooks/wh_nope/replays").await,
        404,
        "not_found",
    );
    assert_error(
        &hookd
            .get(&format!("/v2/webhooks/{payouts_id}/replays?limit=0"))
            .await,
        422,
        "validation_failed",
    );

    // Another client sees none of it.
    let job = start_replay(&hookd, &payouts_id, &json!({"since": 0})).await;
    let other = hookd.create_client("other").await;
    let as_other = |method: Method, path: String, body: Option<Value>| {
        let other = other.clone();
        let hookd = &hookd;
        async move {
            hookd
                .request_as(Some(&other), method, &path, body.as_ref())
                .await
        }
    };
    assert_error(
        &as_other(Method::GET, format!("/v2/replays/{}", id_of(&job)), None).await,
        404,
        "not_found",
    );
    assert_error(
        &as_other(Method::POST, bulk_path.clone(), Some(json!({"since": 0}))).await,
        404,
        "not_found",
    );
    assert_error(
        &as_other(Method::POST, replay_path.clone(), Some(json!({}))).await,
        404,
        "not_found",
    );

    // A disabled webhook takes no replays.
    let (status, _) = hookd
        .patch(
            &format!("/v2/webhooks/{payouts_id}"),
            &json!({"enabled": false}),
        )
        .await;
    assert_eq!(status, 200);
    assert_error(
        &hookd.post(&bulk_path, &json!({"since": 0})).await,
        409,
        "webhook_disabled",
    );
    let payout = hookd
        .publish("payout_request.completed", json!({"id": "pr_1"}))
        .await;
    assert_error(
        &hookd
            .post(
                &format!("/v2/events/{payout}/replay"),
                &json!({"webhook_id": payouts_id}),
            )
            .await,
        409,
        "webhook_disabled",
    );
    assert!(receiver.requests().is_empty());
}

async fn a_bulk_replay_resends_only_the_failed_events_of_its_window(backend: Backend) {
    let hookd = start_single_attempt(backend).await;
    // Of the first six events, the second, fourth and sixth fail (400: final); from then
    // on every request succeeds.
    let receiver =
        Receiver::start(|n| Reply::Status(if n < 6 && n % 2 == 1 { 400 } else { 200 })).await;
    let webhook = hookd
        .create_webhook(json!({"url": receiver.url("/"), "events": ["*"]}))
        .await;
    let webhook_id = id_of(&webhook);
    let published = publish_settled(&hookd, 6).await;
    let first_bodies: BTreeMap<String, Vec<u8>> = receiver
        .requests()
        .iter()
        .map(|r| (r.header("webhook-id").to_owned(), r.body.to_vec()))
        .collect();
    let since = published[0].1 - 60;

    let job = start_replay(&hookd, &webhook_id, &json!({"since": since})).await;
    assert_eq!(job["status"], "failed");
    assert_eq!(job["since"], since);
    assert_eq!(job["until"], Value::Null);
    assert_eq!(job["total"], 3, "{job}");
    assert!(job["created_at"].as_str().unwrap().ends_with('Z'), "{job}");
    let job = wait_for_job(&hookd, job["id"].as_str().unwrap()).await;
    assert_eq!(
        (&job["state"], &job["done"], &job["total"]),
        (&json!("completed"), &json!(3), &json!(3)),
        "{job}"
    );
    assert!(job["completed_at"].is_string(), "{job}");

    // Exactly the failed ones arrive again, byte for byte.
    let got = receiver.wait_for(9, PATIENCE).await;
    let again = &got[6..];
    let resent: BTreeSet<String> = webhook_ids(again).into_iter().collect();
    let failed: BTreeSet<String> = [1, 3, 5].iter().map(|&i| published[i].0.clone()).collect();
    assert_eq!(resent, failed);
    for r in again {
        assert_eq!(r.body.to_vec(), first_bodies[r.header("webhook-id")]);
    }
    for (id, _) in &published {
        let deliveries = if failed.contains(id) { 2 } else { 1 };
        hookd
            .wait_for_event(id, |e| all_finished(e, deliveries))
            .await;
    }
    assert_eq!(receiver.requests().len(), 9, "nothing else was sent");

    // `all` (since as RFC 3339): every event once, each judged by its latest delivery.
    let all = start_replay(
        &hookd,
        &webhook_id,
        &json!({"since": "2000-01-01T00:00:00Z", "status": "all"}),
    )
    .await;
    assert_eq!(all["total"], 6, "{all}");
    let all = wait_for_job(&hookd, all["id"].as_str().unwrap()).await;
    assert_eq!(
        (&all["state"], &all["done"]),
        (&json!("completed"), &json!(6))
    );
    let got = receiver.wait_for(15, PATIENCE).await;
    let every: BTreeSet<String> = webhook_ids(&got[9..]).into_iter().collect();
    assert_eq!(every.len(), 6);
    assert_eq!(every, published.iter().map(|(id, _)| id.clone()).collect());

    // Nothing has failed since: a job for failed events is complete at once.
    for (id, _) in &published {
        let deliveries = if failed.contains(id) { 3 } else { 2 };
        hookd
            .wait_for_event(id, |e| all_finished(e, deliveries))
            .await;
    }
    let none = start_replay(&hookd, &webhook_id, &json!({"since": since})).await;
    assert_eq!(
        (&none["state"], &none["total"], &none["done"]),
        (&json!("completed"), &json!(0), &json!(0)),
        "{none}"
    );

    // The webhook's jobs, newest first, a page at a time.
    let path = format!("/v2/webhooks/{webhook_id}/replays");
    let (status, listed) = hookd.get(&path).await;
    assert_eq!(status, 200, "{listed}");
    let listed_ids: Vec<String> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(listed_ids, [id_of(&none), id_of(&all), id_of(&job)]);
    assert_eq!(listed["data"][1], all);
    let (_, first) = hookd.get(&format!("{path}?limit=2")).await;
    assert_eq!(first["data"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, rest) = hookd.get(&format!("{path}?limit=2&cursor={cursor}")).await;
    assert_eq!(rest["data"][0]["id"], job["id"]);
    assert_eq!(rest["next_cursor"], Value::Null);
}

/// Waits until the clock has passed the second `second`, so the next event is received
/// in a later second.
async fn wait_past_second(second: i64) {
    while unix_seconds() <= second {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn until_and_since_bound_a_bulk_replay(backend: Backend) {
    let hookd = start_single_attempt(backend).await;
    // Every first attempt fails; replays succeed.
    let receiver = Receiver::start(|n| Reply::Status(if n < 3 { 400 } else { 200 })).await;
    let webhook = hookd
        .create_webhook(json!({"url": receiver.url("/"), "events": ["*"]}))
        .await;
    let webhook_id = id_of(&webhook);
    // Three events, each received in a later second than the one before.
    let mut published = Vec::new();
    for _ in 0..3 {
        if let Some((_, created)) = published.last() {
            wait_past_second(*created).await;
        }
        published.extend(publish_settled(&hookd, 1).await);
    }
    let (middle, middle_created) = published[1].clone();

    let job = start_replay(
        &hookd,
        &webhook_id,
        &json!({"since": middle_created, "until": middle_created + 1}),
    )
    .await;
    assert_eq!(job["until"], middle_created + 1);
    assert_eq!(job["total"], 1, "{job}");
    let job = wait_for_job(&hookd, job["id"].as_str().unwrap()).await;
    assert_eq!(
        (&job["state"], &job["done"]),
        (&json!("completed"), &json!(1))
    );
    let got = receiver.wait_for(4, PATIENCE).await;
    assert_eq!(got[3].header("webhook-id"), middle);
    hookd.wait_for_event(&middle, |e| all_finished(e, 2)).await;
    for (id, _) in [&published[0], &published[2]] {
        let (_, event) = hookd.get(&format!("/v2/events/{id}")).await;
        assert_eq!(event["deliveries"].as_array().unwrap().len(), 1, "{event}");
    }
    assert_eq!(receiver.requests().len(), 4);
}

async fn a_large_bulk_replay_leaves_other_webhooks_undisturbed(backend: Backend) {
    const EVENTS: usize = 5_000;
    let hookd = start_single_attempt(backend).await;
    // The first round fails fast; replays take 20 ms each, so re-sending them all takes
    // a while (64 at a time) and other traffic must get through meanwhile.
    let bulk = Receiver::start(|n| {
        if n < EVENTS {
            Reply::Status(400)
        } else {
            Reply::After(Duration::from_millis(20), 200)
        }
    })
    .await;
    let other = Receiver::ok().await;
    let bulk_webhook = hookd
        .create_webhook(json!({"url": bulk.url("/"), "events": ["payment.completed"]}))
        .await;
    let bulk_id = id_of(&bulk_webhook);
    hookd
        .create_webhook(json!({"url": other.url("/"), "events": ["payment_intent.paid"]}))
        .await;
    let since = unix_seconds() - 60;
    for batch in 0..EVENTS / 1_000 {
        let events: Vec<Value> = (0..1_000)
            .map(|i| json!({"type": "payment.completed", "data": {"n": batch * 1_000 + i}}))
            .collect();
        let (status, body) = hookd
            .post("/v2/events/batch", &json!({ "events": events }))
            .await;
        assert_eq!(status, 202, "{body}");
    }
    bulk.wait_for(EVENTS, PATIENCE).await;
    // Every first attempt's outcome stored (none pending), so all count as failed.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let (_, pending) = hookd
            .get(&format!(
                "/v2/webhooks/{bulk_id}/deliveries?status=pending&limit=1"
            ))
            .await;
        if pending["data"].as_array().is_some_and(Vec::is_empty) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{pending}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    let job = start_replay(&hookd, &bulk_id, &json!({"since": since})).await;
    assert_eq!(job["total"], EVENTS, "{job}");
    // Meanwhile, single events to the other webhook arrive one after the other.
    for n in 1..=5 {
        hookd.publish("payment_intent.paid", json!({"n": n})).await;
        other.wait_for(n, PATIENCE).await;
    }
    let replays_by_then = bulk.requests().len() - EVENTS;
    assert!(
        replays_by_then < EVENTS,
        "the other webhook's events waited for the whole replay ({replays_by_then} sent first)"
    );

    let job = wait_for_job(&hookd, job["id"].as_str().unwrap()).await;
    assert_eq!(
        (&job["state"], &job["done"], &job["total"]),
        (&json!("completed"), &json!(EVENTS), &json!(EVENTS)),
        "{job}"
    );
    let got = bulk.wait_for(2 * EVENTS, PATIENCE).await;
    let resent: BTreeSet<String> = webhook_ids(&got[EVENTS..]).into_iter().collect();
    assert_eq!(resent.len(), EVENTS, "every event once");
    let first: BTreeSet<String> = webhook_ids(&got[..EVENTS]).into_iter().collect();
    assert_eq!(resent, first);
    assert_eq!(other.requests().len(), 5);
}

/// Runs `hookd replay` with the server's address and credentials in the environment.
async fn hookd_replay(hookd: &Hookd, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(bin())
        .arg("replay")
        .args(args)
        .env("HOOKD_SERVER", &hookd.base_url)
        .env("HOOKD_CLIENT_ID", &hookd.credentials.client_id)
        .env("HOOKD_CLIENT_SECRET", &hookd.credentials.client_secret)
        .output()
        .await
        .unwrap()
}

async fn the_cli_replays_a_window_with_progress_and_one_event(backend: Backend) {
    let hookd = start_single_attempt(backend).await;
    // The first two events fail; everything after succeeds.
    let receiver = Receiver::start(|n| Reply::Status(if n < 2 { 400 } else { 200 })).await;
    let webhook = hookd
        .create_webhook(json!({"url": receiver.url("/"), "events": ["*"]}))
        .await;
    let webhook_id = id_of(&webhook);
    let published = publish_settled(&hookd, 3).await;
    let since = (published[0].1 - 60).to_string();

    // The failed ones, as JSON: the finished job.
    let output = hookd_replay(
        &hookd,
        &["--webhook", &webhook_id, "--since", &since, "--json"],
    )
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let job: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        (&job["state"], &job["done"], &job["total"], &job["status"]),
        (&json!("completed"), &json!(2), &json!(2), &json!("failed")),
        "{job}"
    );
    assert!(job["id"].as_str().unwrap().starts_with("rpl_"));
    // No progress bar when stderr is not a terminal.
    assert_eq!(stderr, "");

    // All of them, with flags instead of the environment, as a summary line.
    let output = tokio::process::Command::new(bin())
        .args(["replay", "--webhook", &webhook_id, "--since", &since])
        .args(["--status", "all", "--server", &hookd.base_url])
        .args(["--client-id", &hookd.credentials.client_id])
        .args(["--client-secret", &hookd.credentials.client_secret])
        .env_remove("HOOKD_SERVER")
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = String::from_utf8(output.stdout).unwrap();
    assert!(line.starts_with("replay rpl_"), "{line}");
    assert!(
        line.contains(&format!(
            "completed: 3 of 3 events sent again to {webhook_id}"
        )),
        "{line}"
    );
    assert_eq!(line.trim().lines().count(), 1, "{line}");

    // One event.
    let output = hookd_replay(&hookd, &["--event", &published[2].0, "--json"]).await;
    assert!(output.status.success());
    let replayed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(replayed["id"], published[2].0.as_str());
    assert_eq!(replayed["webhook_ids"], json!([webhook_id]));

    let got = receiver.wait_for(3 + 2 + 3 + 1, PATIENCE).await;
    assert_eq!(got[8].header("webhook-id"), published[2].0);

    // Mistakes: the server's answer, on one line, and a failing exit status.
    let output = hookd_replay(&hookd, &["--webhook", "wh_nope", "--since", "0"]).await;
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("hookd: "), "{stderr}");
    assert!(
        stderr.contains("404") && stderr.contains("not_found"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    let output = hookd_replay(&hookd, &["--webhook", &webhook_id, "--since", "yesterday"]).await;
    assert_eq!(output.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("validation_failed"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Stores a replay job straight into the server's database, as another node of a cluster
/// (or a run that stopped before starting on it) would have left it.
async fn store_job_elsewhere(hookd: &Hookd, webhook_id: &str, since_ms: i64) -> String {
    use hookd_store::model::{NewReplayJob, ReplayFilter};
    let job = NewReplayJob {
        id: "rpl_made_elsewhere".to_owned(),
        client_id: hookd.credentials.client_id.clone(),
        webhook_id: webhook_id.to_owned(),
        since_ms,
        until_ms: None,
        filter: ReplayFilter::Failed,
        now_ms: unix_seconds() * 1000,
    };
    let url = hookd.database_url();
    let store: Box<dyn hookd_store::Store> = match hookd.backend() {
        Backend::Sqlite => Box::new(
            hookd_store::sqlite::SqliteStore::open(
                &hookd_store::sqlite::SqliteStore::path_from_url(&url),
            )
            .unwrap(),
        ),
        Backend::Postgres => Box::new(
            hookd_store::postgres::PostgresStore::connect(&url)
                .await
                .unwrap(),
        ),
    };
    let created = store.create_replay_job(job).await.unwrap().unwrap();
    assert_eq!(created.total, 2);
    created.id
}

async fn a_job_made_by_another_node_or_left_by_a_restart_is_finished(backend: Backend) {
    let mut hookd = start_single_attempt(backend).await;
    let receiver = Receiver::start(|n| Reply::Status(if n < 2 { 400 } else { 200 })).await;
    let webhook = hookd
        .create_webhook(json!({"url": receiver.url("/"), "events": ["*"]}))
        .await;
    let webhook_id = id_of(&webhook);
    let published = publish_settled(&hookd, 3).await;
    let since_ms = (published[0].1 - 60) * 1000;

    let job_id = match backend {
        // One process owns a SQLite file: the job is left for the next start.
        Backend::Sqlite => {
            hookd.kill().await;
            let job_id = store_job_elsewhere(&hookd, &webhook_id, since_ms).await;
            hookd.restart().await;
            job_id
        }
        // Another node made it: this one finds it when it next looks.
        Backend::Postgres => store_job_elsewhere(&hookd, &webhook_id, since_ms).await,
    };
    let job = wait_for_job(&hookd, &job_id).await;
    assert_eq!(
        (&job["state"], &job["done"], &job["total"]),
        (&json!("completed"), &json!(2), &json!(2)),
        "{job}"
    );
    let got = receiver.wait_for(5, PATIENCE).await;
    let resent: BTreeSet<String> = webhook_ids(&got[3..]).into_iter().collect();
    assert_eq!(
        resent,
        [published[0].0.clone(), published[1].0.clone()].into()
    );
}
