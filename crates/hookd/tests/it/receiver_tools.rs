//! The receiver tools against a real server: `hookd send` publishes (sample data or the
//! given data) and says what went wrong; hookd-verify verifies, parses and deduplicates
//! what hookd really sends (both formats, a webhook's own header name, a rotation).

use std::process::Output;

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use hookd_testkit::receiver::{Receiver, Recorded};
use hookd_testkit::server::Hookd;
use hookd_testkit::{Backend, PATIENCE, backend_tests};
use hookd_verify::{
    Delivery, Envelope, EventEnvelope, EventLedger, MemoryLedger, TypedEnvelope, VerifiedScheme,
    VerifyOptions, verify,
};

use crate::{bin, start, unix_seconds};

backend_tests!(
    send_publishes_sample_data_or_the_given_data,
    send_says_what_went_wrong,
    hookd_verify_accepts_what_hookd_sends,
);

/// `hookd send ARGS` against `hookd` (server and client from the environment), with
/// `stdin` on standard input.
async fn send(hookd: &Hookd, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut command = Command::new(bin());
    command
        .arg("send")
        .args(args)
        .env("HOOKD_SERVER", &hookd.base_url)
        .env("HOOKD_CLIENT_ID", &hookd.credentials.client_id)
        .env("HOOKD_CLIENT_SECRET", &hookd.credentials.client_secret)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        input.write_all(bytes).await.unwrap();
    }
    drop(input);
    child.wait_with_output().await.unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The event id of `accepted evt_… TYPE`.
fn accepted_id(output: &Output, event_type: &str) -> String {
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let line = stdout.trim_end();
    let id = line
        .strip_prefix("accepted ")
        .and_then(|rest| rest.strip_suffix(&format!(" {event_type}")))
        .unwrap_or_else(|| panic!("unexpected output {stdout:?}"));
    assert!(id.starts_with("evt_"), "{stdout}");
    id.to_owned()
}

fn body_of<'a>(requests: &'a [Recorded], event_id: &str) -> &'a Recorded {
    requests
        .iter()
        .find(|r| r.header("webhook-id") == event_id)
        .unwrap_or_else(|| panic!("{event_id} never arrived"))
}

async fn send_publishes_sample_data_or_the_given_data(backend: Backend) {
    let hookd = start(backend).await;
    let receiver = Receiver::ok().await;
    hookd
        .create_webhook(json!({"url": receiver.url("/webhooks"), "events": ["*"]}))
        .await;

    // No data: the type's sample data, as a test event would carry.
    let sample_id = accepted_id(
        &send(&hookd, &["--type", "payment_intent.paid"], None).await,
        "payment_intent.paid",
    );
    // Given data and id, the server's answer as JSON.
    let output = send(
        &hookd,
        &[
            "--type",
            "payment.completed",
            "--data",
            r#"{"uuid": "u-1", "amount": 12.5}"#,
            "--id",
            "evt_given_by_hand",
            "--json",
        ],
        None,
    )
    .await;
    assert!(output.status.success(), "{}", text(&output.stderr));
    let answer: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(answer["id"], "evt_given_by_hand", "{answer}");
    assert_eq!(answer["type"], "payment.completed", "{answer}");
    assert!(answer["created"].is_i64(), "{answer}");

    // Data from a file, twice with one idempotency key: one event.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("payout.json");
    std::fs::write(&file, br#"{"id":"pr_1","amount":10000,"currency":"PHP"}"#).unwrap();
    let file = file.to_str().unwrap();
    let args = [
        "--type",
        "payout_request.completed",
        "--data-file",
        file,
        "--idempotency-key",
        "payout-pr_1",
    ];
    let first = accepted_id(&send(&hookd, &args, None).await, "payout_request.completed");
    let again = accepted_id(&send(&hookd, &args, None).await, "payout_request.completed");
    assert_eq!(first, again);
    // And from standard input.
    let from_stdin = accepted_id(
        &send(
            &hookd,
            &["--type", "payout_request.failed", "--data-file", "-"],
            Some(br#"{"id":"pr_2"}"#),
        )
        .await,
        "payout_request.failed",
    );

    let got = receiver.wait_for(4, PATIENCE).await;
    let sample = body_of(&got, &sample_id).json();
    assert_eq!(sample["type"], "payment_intent.paid");
    let created = sample["created"].as_i64().unwrap();
    // The sample's times are the sending moment, a second or so before `created`.
    assert!(
        (created - 2..=created).any(|at| sample["data"]
            == hookd_core::sample::sample_data("payment_intent.paid", at).to_value()),
        "{sample}"
    );
    assert!(
        std::str::from_utf8(&body_of(&got, "evt_given_by_hand").body)
            .unwrap()
            .ends_with(r#""data":{"uuid":"u-1","amount":12.5}}"#)
    );
    assert_eq!(
        body_of(&got, &first).json()["data"],
        json!({"id": "pr_1", "amount": 10000, "currency": "PHP"})
    );
    assert_eq!(
        body_of(&got, &from_stdin).json()["data"],
        json!({"id": "pr_2"})
    );
    let (_, event) = hookd.get(&format!("/v2/events/{first}")).await;
    assert_eq!(event["deliveries"].as_array().unwrap().len(), 1, "{event}");
}

async fn send_says_what_went_wrong(backend: Backend) {
    let hookd = start(backend).await;
    let failure = |output: &Output, code: i32| {
        assert_eq!(output.status.code(), Some(code), "{}", text(&output.stdout));
        assert!(output.stdout.is_empty(), "{}", text(&output.stdout));
        let stderr = text(&output.stderr);
        if code == 1 {
            assert_eq!(stderr.lines().count(), 1, "{stderr}");
            assert!(stderr.starts_with("hookd: "), "{stderr}");
        }
        stderr
    };

    let stderr = failure(
        &send(&hookd, &["--type", "payout_request.done"], None).await,
        1,
    );
    assert!(
        stderr.contains("POST /v2/events: 422 Unprocessable Entity validation_failed: unknown event type `payout_request.done`"),
        "{stderr}"
    );
    let stderr = failure(
        &send(
            &hookd,
            &["--type", "payment.completed", "--data", r#"{"a":"#],
            None,
        )
        .await,
        1,
    );
    assert!(stderr.contains("--data is not JSON"), "{stderr}");
    let stderr = failure(
        &send(
            &hookd,
            &[
                "--type",
                "payment.completed",
                "--data-file",
                "/nonexistent/data.json",
            ],
            None,
        )
        .await,
        1,
    );
    assert!(
        stderr.contains("reading --data-file /nonexistent/data.json"),
        "{stderr}"
    );
    let stderr = failure(
        &send(
            &hookd,
            &[
                "--type",
                "payment.completed",
                "--client-secret",
                "hks_wrong",
            ],
            None,
        )
        .await,
        1,
    );
    assert!(stderr.contains("401 Unauthorized unauthorized"), "{stderr}");
    let down = format!("http://{}", Receiver::down_address().await);
    let stderr = failure(
        &send(
            &hookd,
            &["--type", "payment.completed", "--server", &down],
            None,
        )
        .await,
        1,
    );
    assert!(stderr.contains(&format!("cannot reach {down}")), "{stderr}");
    let stderr = failure(
        &send(
            &hookd,
            &["--type", "payment.completed", "--server", "localhost"],
            None,
        )
        .await,
        1,
    );
    assert!(stderr.contains("is not an http(s) URL"), "{stderr}");
    // Usage errors: conflicting flags, no type.
    failure(
        &send(
            &hookd,
            &[
                "--type",
                "payment.completed",
                "--data",
                "{}",
                "--data-file",
                "x",
            ],
            None,
        )
        .await,
        2,
    );
    failure(&send(&hookd, &[], None).await, 2);

    // Nothing of that was published.
    let (_, events) = hookd.get("/v2/events").await;
    assert_eq!(events["data"], json!([]), "{events}");
}

#[derive(Debug, PartialEq, Deserialize)]
struct Payout {
    id: String,
    amount: u64,
    currency: String,
}

fn delivery(r: &Recorded) -> Delivery<'_> {
    Delivery::from_headers(&r.headers, &r.body)
}

/// Only the hex header of `r` (the one named `header`).
fn hex_only<'a>(r: &'a Recorded, header: &str) -> Delivery<'a> {
    Delivery::from_headers(
        r.headers
            .iter()
            .filter(|(name, _)| name.as_str().eq_ignore_ascii_case(header)),
        &r.body,
    )
}

async fn hookd_verify_accepts_what_hookd_sends(backend: Backend) {
    let hookd = start(backend).await;
    let receiver = Receiver::ok().await;
    let mut secrets = Vec::new();
    for (path, extra) in [
        ("/typed", json!({})),
        ("/event", json!({"format": "event"})),
        (
            "/own-header",
            json!({"signature_header": "X-Acme-Signature"}),
        ),
    ] {
        let mut body = json!({"url": receiver.url(path), "events": ["payout_request.*"]});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let webhook = hookd.create_webhook(body).await;
        secrets.push((
            path,
            webhook["id"].as_str().unwrap().to_owned(),
            webhook["secret"].as_str().unwrap().to_owned(),
            webhook["signature_header"].as_str().unwrap().to_owned(),
        ));
    }
    let data =
        json!({"id": "pr_xyz789", "amount": 10000, "currency": "PHP", "status": "completed"});
    let event_id = hookd.publish("payout_request.completed", data).await;
    let got = receiver.wait_for(3, PATIENCE).await;
    let expected = Payout {
        id: "pr_xyz789".to_owned(),
        amount: 10_000,
        currency: "PHP".to_owned(),
    };

    for (path, _, secret, header) in &secrets {
        let r = got.iter().find(|r| r.path == *path).unwrap();
        let options = VerifyOptions::new(unix_seconds()).with_hex_header_names([header.as_str()]);
        assert_eq!(
            verify(&delivery(r), secret, &options),
            Ok(VerifiedScheme::StandardWebhooks),
            "{path}"
        );
        assert_eq!(
            verify(&hex_only(r, header), secret, &options),
            Ok(VerifiedScheme::Hex {
                header: header.clone()
            }),
            "{path}"
        );
        // Another webhook's secret does not verify it.
        let (_, _, other_secret, _) = secrets.iter().find(|(p, ..)| p != path).unwrap();
        assert!(
            verify(&delivery(r), other_secret, &options).is_err(),
            "{path}"
        );
        match *path {
            "/event" => {
                let envelope: EventEnvelope<Payout> = serde_json::from_slice(&r.body).unwrap();
                assert_eq!(envelope.event, "payout_request.completed");
                assert_eq!(envelope.data, expected);
            }
            _ => {
                let envelope: TypedEnvelope<Payout> = serde_json::from_slice(&r.body).unwrap();
                assert_eq!(envelope.id, event_id);
                assert_eq!(envelope.event_type, "payout_request.completed");
                assert_eq!(envelope.data, expected);
            }
        }
        let either: Envelope = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(either.event_type(), "payout_request.completed");
    }

    // A rotation: the old secret keeps verifying the Standard Webhooks header during the
    // grace period, the hex header moves to the new one.
    let (_, typed_id, old_secret, _) = &secrets[0];
    let (status, rotated) = hookd
        .post(
            &format!("/v2/webhooks/{typed_id}/rotate-secret"),
            &json!({"grace_seconds": 3600}),
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let new_secret = rotated["secret"].as_str().unwrap();
    let second = hookd
        .publish("payout_request.failed", json!({"id": "pr_2"}))
        .await;
    let got = receiver.wait_for(6, PATIENCE).await;
    let r = got
        .iter()
        .find(|r| r.path == "/typed" && r.header("webhook-id") == second)
        .unwrap();
    let options = VerifyOptions::new(unix_seconds());
    for secret in [old_secret.as_str(), new_secret] {
        assert_eq!(
            verify(&delivery(r), secret, &options),
            Ok(VerifiedScheme::StandardWebhooks)
        );
    }
    let hex = hex_only(r, "x-nextpay-signature");
    assert!(verify(&hex, new_secret, &options).is_ok());
    assert!(verify(&hex, old_secret, &options).is_err());

    // A replay is the same event id: the ledger drops it.
    let (status, replayed) = hookd
        .post(
            &format!("/v2/events/{event_id}/replay"),
            &json!({"webhook_id": typed_id}),
        )
        .await;
    assert_eq!(status / 100, 2, "{replayed}");
    let got = receiver.wait_for(7, PATIENCE).await;
    let mut ledger = MemoryLedger::new(100);
    let now = unix_seconds();
    let firsts: Vec<bool> = got
        .iter()
        .filter(|r| r.path == "/typed")
        .map(|r| {
            let Ok(first) = ledger.first_time(r.header("webhook-id"), now);
            first
        })
        .collect();
    assert_eq!(firsts, [true, true, false]);
}
