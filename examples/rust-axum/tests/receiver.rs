//! The example receiver as a user runs it: the binary on 127.0.0.1, real HTTP requests
//! signed the way hookd signs them, and the lines it prints. (`.ci/examples` also runs
//! it against a real hookd.)

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use hookd_verify::{SignatureHeaders, WebhookSecret, sign_hex};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const BODY: &str =
    r#"{"id":"evt_1","created":1705312200,"type":"payment_intent.paid","data":{"amount":100}}"#;

/// The running receiver; killed when dropped.
struct Running {
    child: Child,
    lines: BufReader<ChildStdout>,
    port: u16,
    _ledger_dir: tempfile::TempDir,
}

impl Running {
    fn start() -> Running {
        let ledger_dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_hookd-example-axum"))
            .arg("0")
            .env("HOOKD_WEBHOOK_SECRET", SECRET)
            .env("LEDGER_DB", ledger_dir.path().join("ledger.db"))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap());
        let first = read_line(&mut lines);
        let port = first
            .strip_prefix("listening on http://127.0.0.1:")
            .and_then(|rest| rest.strip_suffix("/webhooks"))
            .and_then(|port| port.parse().ok());
        let running = Running {
            child,
            lines,
            port: port.unwrap_or_default(),
            _ledger_dir: ledger_dir,
        };
        assert!(port.is_some(), "unexpected first line {first:?}");
        running
    }

    /// POSTs `body` with `headers` to `/webhooks`; the status code and the line the
    /// receiver printed for it.
    fn post(&mut self, headers: &[(String, String)], body: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let mut request = format!(
            "POST /webhooks HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
            body.len()
        );
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        request.push_str(body);
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"));
        (status, read_line(&mut self.lines))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_line(lines: &mut impl BufRead) -> String {
    let mut line = String::new();
    lines.read_line(&mut line).unwrap();
    line.trim_end().to_owned()
}

fn unix_now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// The headers hookd would send with `body` for event `id` at `timestamp`.
fn signed(id: &str, timestamp: i64, body: &str) -> Vec<(String, String)> {
    let secret = WebhookSecret::parse(SECRET).unwrap();
    SignatureHeaders::compute(
        &[&secret],
        "x-nextpay-signature",
        id,
        timestamp,
        body.as_bytes(),
    )
}

#[test]
fn verifies_drops_duplicates_and_refuses_tampering() {
    let mut receiver = Running::start();
    let headers = signed("evt_1", unix_now(), BODY);
    assert_eq!(
        receiver.post(&headers, BODY),
        (
            200,
            "verified payment_intent.paid evt_1 (standard-webhooks)".to_owned()
        )
    );
    assert_eq!(
        receiver.post(&headers, BODY),
        (200, "duplicate evt_1".to_owned())
    );

    let (status, line) = receiver.post(&headers, &BODY.replace("100", "900"));
    assert_eq!(status, 401);
    assert_eq!(
        line,
        "rejected: webhook-signature does not match this secret and body (wrong secret or modified body)"
    );

    // Signed properly, but an hour ago: a replayed capture.
    let body = BODY.replace("evt_1", "evt_old");
    let (status, line) = receiver.post(&signed("evt_old", unix_now() - 3600, &body), &body);
    assert_eq!(status, 401);
    assert!(
        line.starts_with("rejected: webhook-timestamp is 360"),
        "{line}"
    );
    assert!(
        line.contains("s in the past, outside the 300s tolerance"),
        "{line}"
    );
}

#[test]
fn takes_the_hex_header_alone_and_the_event_format() {
    let mut receiver = Running::start();
    let body = r#"{"event":"payment.completed","data":{"uuid":"u-1"}}"#;
    let headers = vec![
        (
            "X-Webhook-Signature".to_owned(),
            sign_hex(SECRET, body.as_bytes()),
        ),
        ("webhook-id".to_owned(), "evt_2".to_owned()),
    ];
    assert_eq!(
        receiver.post(&headers, body),
        (
            200,
            "verified payment.completed evt_2 (x-webhook-signature)".to_owned()
        )
    );
    let (status, line) = receiver.post(&headers[1..], body);
    assert_eq!(status, 401);
    assert!(
        line.starts_with("rejected: no webhook signature header found"),
        "{line}"
    );
}
