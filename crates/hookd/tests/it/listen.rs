//! `hookd listen` end to end: the real CLI against a real server, forwarding to a receiver
//! on 127.0.0.1 that stands for the developer's local app; and the `/v2/listen` routes it
//! uses, with their refusals.

use std::process::Stdio;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Notify;

use hookd_testkit::receiver::{Receiver, Reply};
use hookd_testkit::server::{Hookd, ServeOptions, http_client};
use hookd_testkit::signatures::{expected_hex, expected_standard};
use hookd_testkit::{Backend, PATIENCE, backend_tests, postgres};

use crate::{bin, start, start_with};

/// A running `hookd listen`, its stdout collected line by line.
struct Listen {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    printed: Arc<Notify>,
    secret: String,
    session: String,
}

impl Listen {
    /// Starts `hookd listen` against `hookd` and waits for its "Ready!" line.
    async fn start(hookd: &Hookd, forward_to: &str, extra: &[&str]) -> Listen {
        let mut child = listen_command(hookd, forward_to, extra)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let printed = Arc::new(Notify::new());
        let mut reader = BufReader::new(child.stdout.take().unwrap()).lines();
        let (collected, told) = (Arc::clone(&lines), Arc::clone(&printed));
        tokio::spawn(async move {
            while let Ok(Some(line)) = reader.next_line().await {
                collected.lock().unwrap().push(line);
                told.notify_waiters();
            }
        });
        let mut listen = Listen {
            child,
            lines,
            printed,
            secret: String::new(),
            session: String::new(),
        };
        let ready = listen
            .wait_for_line(|l| l.starts_with("Ready! Your webhook signing secret is "))
            .await;
        listen.secret = word_after(&ready, "secret is ");
        let listening = listen
            .wait_for_line(|l| l.starts_with("Listening for "))
            .await;
        listen.session = word_after(&listening, "as session ").replace(',', "");
        assert!(listen.secret.starts_with("whsec_"), "{ready}");
        assert!(listen.session.starts_with("wh_"), "{listening}");
        listen
    }

    /// The first printed line that `matches`, waiting for it (or panics).
    async fn wait_for_line(&self, matches: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let notified = self.printed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(line) = self.lines.lock().unwrap().iter().find(|l| matches(l)) {
                return line.clone();
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "hookd listen never printed the line expected; it printed:\n{}",
                    self.lines.lock().unwrap().join("\n")
                );
            }
        }
    }

    /// SIGTERM, as Ctrl-C would; the exit code.
    async fn terminate(mut self) -> (Option<i32>, Vec<String>) {
        let pid = self.child.id().unwrap();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let status = tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .expect("hookd listen did not exit after SIGTERM")
            .unwrap();
        // Its last line is printed before it exits; the reader may still be on it.
        let lines = self.lines.lock().unwrap().clone();
        (status.code(), lines)
    }
}

fn listen_command(hookd: &Hookd, forward_to: &str, extra: &[&str]) -> Command {
    let mut command = Command::new(bin());
    command
        .args(["listen", "--forward-to", forward_to])
        .args(extra)
        .env("HOOKD_SERVER", &hookd.base_url)
        .env("HOOKD_CLIENT_ID", &hookd.credentials.client_id)
        .env("HOOKD_CLIENT_SECRET", &hookd.credentials.client_secret)
        .kill_on_drop(true);
    command
}

fn word_after(line: &str, marker: &str) -> String {
    let rest = line
        .split_once(marker)
        .unwrap_or_else(|| panic!("no `{marker}` in {line}"))
        .1;
    rest.split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// The event's deliveries, by webhook id.
fn deliveries_by_webhook(event: &Value) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = event["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["webhook_id"].as_str().unwrap().to_owned(),
                d["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    found.sort();
    found
}

async fn listen_forwards_matching_events_signed_and_ending_it_removes_the_session(
    backend: Backend,
) {
    let hookd = start(backend).await;
    // A registered webhook beside the session: its deliveries are the reference.
    let registered_receiver = Receiver::ok().await;
    let registered = hookd
        .create_webhook(json!({"url": registered_receiver.url("/hooks"), "events": ["*"]}))
        .await;
    let registered = registered["id"].as_str().unwrap().to_owned();
    let local = Receiver::ok().await;
    let cli = Listen::start(
        &hookd,
        &local.url("/webhooks"),
        &["--events", "payout_request.*"],
    )
    .await;

    // The session is a temporary webhook: shown by id, not listed.
    let (status, session) = hookd.get(&format!("/v2/webhooks/{}", cli.session)).await;
    assert_eq!(status, 200, "{session}");
    assert_eq!(session["temporary"], true, "{session}");
    assert_eq!(session["events"], json!(["payout_request.*"]));
    assert_eq!(session["url"], format!("hookd-listen://{}", cli.session));
    let (_, listed) = hookd.get("/v2/webhooks").await;
    let listed: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, vec![registered.as_str()]);

    let completed = hookd
        .publish(
            "payout_request.completed",
            json!({"id": "pr_1", "amount": 5}),
        )
        .await;
    let other = hookd
        .publish("payment.completed", json!({"id": "p_1"}))
        .await;
    let failed = hookd
        .publish(
            "payout_request.failed",
            json!({"id": "pr_2", "reason": "x"}),
        )
        .await;

    // Matching events go to the session as well; the other one only to the registered
    // webhook (deliveries are made when the event is accepted).
    for event_id in [&completed, &failed] {
        let event = hookd
            .wait_for_event(event_id, |e| {
                e["deliveries"]
                    .as_array()
                    .is_some_and(|d| d.iter().all(|d| d["state"] == "succeeded"))
            })
            .await;
        let mut expected = vec![
            (cli.session.clone(), "succeeded".to_owned()),
            (registered.clone(), "succeeded".to_owned()),
        ];
        expected.sort();
        assert_eq!(deliveries_by_webhook(&event), expected);
    }
    let (_, event) = hookd.get(&format!("/v2/events/{other}")).await;
    let webhooks: Vec<String> = deliveries_by_webhook(&event)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(webhooks, vec![registered.clone()]);

    // One local request per matching event, each exactly what the registered webhook got,
    // signed with the printed secret.
    let forwarded = local.requests();
    assert_eq!(forwarded.len(), 2);
    let reference = registered_receiver.wait_for(3, PATIENCE).await;
    for request in &forwarded {
        assert_eq!(request.path, "/webhooks");
        let event_id = request.header("webhook-id");
        assert!(event_id == completed || event_id == failed, "{event_id}");
        let same = reference
            .iter()
            .find(|r| r.header("webhook-id") == event_id)
            .unwrap();
        assert_eq!(request.body, same.body, "the envelope, byte for byte");
        assert_eq!(request.json()["id"], event_id);
        assert_eq!(request.header("content-type"), "application/json");
        assert!(request.header("user-agent").starts_with("hookd/"));
        assert_eq!(
            request.header("x-nextpay-signature"),
            expected_hex(&cli.secret, &request.body)
        );
        assert_eq!(
            request.header("webhook-signature"),
            expected_standard(
                &cli.secret,
                event_id,
                request.header("webhook-timestamp"),
                &request.body
            )
        );
        // The local answer is the attempt's response.
        let attempts = hookd.attempts(event_id).await;
        let to_session: Vec<&Value> = attempts
            .iter()
            .filter(|a| a["webhook_id"] == cli.session.as_str())
            .collect();
        assert_eq!(to_session.len(), 1, "{attempts:?}");
        assert_eq!(to_session[0]["response_status"], 200);
        assert_eq!(
            to_session[0]["request_body"].as_str().unwrap().as_bytes(),
            &request.body[..]
        );
    }

    // One line per delivery: time, type, id, local status, duration.
    for (event_id, event_type) in [
        (&completed, "payout_request.completed"),
        (&failed, "payout_request.failed"),
    ] {
        let line = cli.wait_for_line(|l| l.contains(event_id.as_str())).await;
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields.len(), 6, "{line}");
        assert!(
            fields[0].ends_with('Z') && fields[0].contains('T'),
            "{line}"
        );
        assert_eq!(
            &fields[1..4],
            [event_type, event_id.as_str(), "200"],
            "{line}"
        );
        assert!(
            fields[4].parse::<u64>().is_ok() && fields[5] == "ms",
            "{line}"
        );
    }

    // Ctrl-C (SIGTERM) ends the session: the temporary webhook is gone and later events
    // are not delivered to it; the registered webhook is untouched.
    let session_id = cli.session.clone();
    let (code, lines) = cli.terminate().await;
    assert_eq!(code, Some(0), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l == &format!("Stopped; session {session_id} removed.")),
        "{lines:?}"
    );
    let (status, _) = hookd.get(&format!("/v2/webhooks/{session_id}")).await;
    assert_eq!(status, 404);
    let later = hookd
        .publish("payout_request.completed", json!({"id": "pr_3"}))
        .await;
    let (_, event) = hookd.get(&format!("/v2/events/{later}")).await;
    let webhooks: Vec<String> = deliveries_by_webhook(&event)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(webhooks, vec![registered.clone()]);
    let (_, listed) = hookd.get("/v2/webhooks").await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["data"][0]["id"], registered.as_str());
    assert_eq!(local.requests().len(), 2);
}

async fn the_local_answer_is_the_attempts_response_and_failures_are_retried(backend: Backend) {
    let hookd = start(backend).await;
    // The local app fails once, then works.
    let local = Receiver::start(|n| {
        if n == 0 {
            Reply::Full {
                status: 500,
                headers: vec![("x-local".to_owned(), "boom".to_owned())],
                body: "not yet".to_owned(),
            }
        } else {
            Reply::Status(200)
        }
    })
    .await;
    let cli = Listen::start(&hookd, &local.url("/"), &["--format", "event"]).await;
    let event_id = hookd
        .publish("payment.completed", json!({"amount": 10}))
        .await;
    hookd
        .wait_for_event(&event_id, |e| e["deliveries"][0]["state"] == "succeeded")
        .await;

    let attempts = hookd.attempts(&event_id).await;
    let outcomes: Vec<(&Value, &Value)> = attempts
        .iter()
        .map(|a| (&a["attempt_number"], &a["response_status"]))
        .collect();
    assert_eq!(
        outcomes,
        vec![(&json!(1), &json!(500)), (&json!(2), &json!(200))]
    );
    assert_eq!(attempts[0]["response_body"], "not yet");
    assert_eq!(attempts[0]["response_headers"]["x-local"], "boom");

    // The same request twice: same body (the `event` envelope), same webhook-id.
    let got = local.requests();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].body, got[1].body);
    assert_eq!(
        got[0].json(),
        json!({"event": "payment.completed", "data": {"amount": 10}})
    );
    assert_eq!(got[1].header("webhook-id"), event_id);
    assert_eq!(
        got[1].header("x-webhook-signature"),
        expected_hex(&cli.secret, &got[1].body)
    );
    cli.wait_for_line(|l| l.contains(&event_id) && l.contains("  500  "))
        .await;
    cli.wait_for_line(|l| l.contains(&format!("{event_id} (attempt 2)  200  ")))
        .await;
    let (code, lines) = cli.terminate().await;
    assert_eq!(code, Some(0), "{lines:?}");
}

async fn the_stream_needs_credentials_and_valid_filters(backend: Backend) {
    let hookd = start(backend).await;
    let get = reqwest::Method::GET;
    let (status, body) = hookd
        .request_as(None, get.clone(), "/v2/listen", None)
        .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "unauthorized");
    let creds = Some(&hookd.credentials);
    for (query, status) in [
        ("events=nope.nothing", 422),
        ("events=payment.completed,,payment.expired", 422),
        ("format=xml", 422),
        ("session=wh_01m82qj6gwapkva2narc0cfeqk", 404),
    ] {
        let path = format!("/v2/listen?{query}");
        let (got, body) = hookd.request_as(creds, get.clone(), &path, None).await;
        assert_eq!(got, status, "{path}: {body}");
        assert!(body["error"]["message"].is_string(), "{path}: {body}");
    }

    // Reports only for attempts waiting in the client's own session.
    let post = reqwest::Method::POST;
    let results = "/v2/listen/wh_01m82qj6gwapkva2narc0cfeqk/results";
    for (report, status) in [
        (json!({"attempt_id": "att_1", "status": 200}), 404),
        (json!({"attempt_id": "att_1", "status": 999}), 422),
        (json!({"attempt_id": "att_1"}), 422),
        (
            json!({"attempt_id": "att_1", "status": 200, "headers": {"a": 1}}),
            422,
        ),
    ] {
        let (got, body) = hookd
            .request_as(creds, post.clone(), results, Some(&report))
            .await;
        assert_eq!(got, status, "{report}: {body}");
    }
    let (got, _) = hookd
        .request_as(
            None,
            post,
            results,
            Some(&json!({"attempt_id": "a", "status": 200})),
        )
        .await;
    assert_eq!(got, 401);

    // The reserved scheme cannot be registered, nor patched in.
    let (status, body) = hookd
        .post(
            "/v2/webhooks",
            &json!({"url": "hookd-listen://wh_01m82qj6gwapkva2narc0cfeqk", "events": ["*"]}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("reserved for `hookd listen`"),
        "{body}"
    );
    let receiver = Receiver::ok().await;
    let webhook = hookd
        .create_webhook(json!({"url": receiver.url("/"), "events": ["*"]}))
        .await;
    let (status, body) = hookd
        .patch(
            &format!("/v2/webhooks/{}", webhook["id"].as_str().unwrap()),
            &json!({"url": "HOOKD-LISTEN://x"}),
        )
        .await;
    assert_eq!(status, 422, "{body}");

    // A client has a bounded number of sessions connected at once.
    let mut open = Vec::new();
    for _ in 0..hookd_store::listen::MAX_SESSIONS_PER_CLIENT {
        open.push(open_stream(&hookd, "events=payment.completed").await);
    }
    let (status, body) = hookd
        .request_as(creds, get.clone(), "/v2/listen", None)
        .await;
    assert_eq!(status, 409, "{body}");
    drop(open);

    // The CLI says why it cannot start.
    let output = listen_command(&hookd, &receiver.url("/"), &["--events", "nope.nothing"])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("422") && stderr.contains("nope.nothing"),
        "{stderr}"
    );
    let output = listen_command(&hookd, &receiver.url("/"), &[])
        .env("HOOKD_CLIENT_SECRET", "hks_wrong")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("401"), "{stderr}");
    let output = listen_command(&hookd, "ftp://localhost/", &[])
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--forward-to"));
}

/// Reads the stream until its `session` message; its data.
async fn session_message(response: &mut reqwest::Response) -> Value {
    let mut text = String::new();
    loop {
        let chunk = tokio::time::timeout(PATIENCE, response.chunk())
            .await
            .expect("no session message")
            .unwrap()
            .expect("the stream ended before its session message");
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        if let Some((message, _)) = text.split_once("\n\n") {
            assert!(message.contains("event: session"), "{message}");
            let data = message
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .unwrap();
            return serde_json::from_str(data).unwrap();
        }
    }
}

async fn open_stream(hookd: &Hookd, query: &str) -> reqwest::Response {
    let response = http_client()
        .get(format!("{}/v2/listen?{query}", hookd.base_url))
        .basic_auth(
            &hookd.credentials.client_id,
            Some(&hookd.credentials.client_secret),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    response
}

async fn a_lost_stream_resumes_its_session_and_deleting_the_session_ends_it(backend: Backend) {
    let hookd = start(backend).await;
    let mut first = open_stream(&hookd, "events=payment.completed").await;
    let opened = session_message(&mut first).await;
    assert_eq!(opened["resumed"], false);
    assert_eq!(opened["events"], json!(["payment.completed"]));
    let session = opened["webhook_id"].as_str().unwrap().to_owned();
    drop(first);

    // Same session, same secret.
    let mut second = open_stream(&hookd, &format!("session={session}")).await;
    let resumed = session_message(&mut second).await;
    assert_eq!(resumed["resumed"], true);
    assert_eq!(resumed["webhook_id"], session.as_str());
    assert_eq!(resumed["secret"], opened["secret"]);

    // A session's webhook cannot be changed, only deleted, which ends the stream.
    let path = format!("/v2/webhooks/{session}");
    let (status, body) = hookd.patch(&path, &json!({"events": ["*"]})).await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = hookd
        .post(&format!("{path}/rotate-secret"), &json!({}))
        .await;
    assert_eq!(status, 409, "{body}");
    let (status, _) = hookd.delete(&path).await;
    assert_eq!(status, 204);
    let end = tokio::time::timeout(PATIENCE, async {
        while let Some(chunk) = second.chunk().await.unwrap() {
            // Nothing but keep-alive comments until it ends.
            assert!(std::str::from_utf8(&chunk).unwrap().starts_with(':'));
        }
    })
    .await;
    assert!(end.is_ok(), "the stream did not end with its session");
    let (status, _) = hookd
        .request_as(
            Some(&hookd.credentials),
            reqwest::Method::GET,
            &format!("/v2/listen?session={session}"),
            None,
        )
        .await;
    assert_eq!(status, 404);
}

backend_tests!(
    listen_forwards_matching_events_signed_and_ending_it_removes_the_session,
    the_local_answer_is_the_attempts_response_and_failures_are_retried,
    the_stream_needs_credentials_and_valid_filters,
    a_lost_stream_resumes_its_session_and_deleting_the_session_ends_it,
);

/// PostgreSQL only: events published on any node reach a session through the node its
/// stream is connected to; no other node claims (and fails) its deliveries.
#[tokio::test]
async fn on_a_cluster_only_the_node_holding_the_stream_delivers_to_the_session() {
    if !postgres::enabled("listen::on_a_cluster_only_the_node_holding_the_stream") {
        return;
    }
    let options = ServeOptions {
        backend: Backend::Postgres,
        ..ServeOptions::default()
    };
    let first = start_with(options.clone()).await;
    let second = first.another_node(options).await;
    let local = Receiver::ok().await;
    let cli = Listen::start(&first, &local.url("/"), &[]).await;
    let mut published = Vec::new();
    for n in 0..6 {
        let node = if n % 2 == 0 { &first } else { &second };
        published.push(node.publish("payment.completed", json!({"n": n})).await);
    }
    local.wait_for(published.len(), PATIENCE).await;
    for event_id in &published {
        first
            .wait_for_event(event_id, |e| e["deliveries"][0]["state"] == "succeeded")
            .await;
        let attempts = first.attempts(event_id).await;
        assert_eq!(attempts.len(), 1, "{attempts:?}");
        assert_eq!(attempts[0]["response_status"], 200, "{attempts:?}");
    }
    assert_eq!(local.requests().len(), published.len());
    let (code, _) = cli.terminate().await;
    assert_eq!(code, Some(0));
    drop(second);
}

#[tokio::test]
async fn ending_the_server_ends_the_streams_so_it_shuts_down() {
    // SQLite only: shutting down does not depend on the backend.
    let mut hookd = start(Backend::Sqlite).await;
    let mut stream = open_stream(&hookd, "").await;
    session_message(&mut stream).await;
    assert_eq!(hookd.terminate(PATIENCE).await, Some(0));
    let ended = tokio::time::timeout(PATIENCE, async {
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await;
    assert!(ended.is_ok());
}
