//! The command line itself: client creation output, start-up errors, and `hookd verify`
//! (which needs no server nor database, so its tests are plain `#[test]`s).

use std::io::Write;
use std::process::{Command, Output, Stdio};

use hookd_verify::{SignatureHeaders, WebhookSecret, sign_hex};
use serde_json::Value;

use hookd_testkit::postgres::TestSchema;
use hookd_testkit::{Backend, backend_tests};
use tempfile::TempDir;

use crate::{bin, unix_seconds};

backend_tests!(
    clients_create_prints_json_once,
    bad_settings_stop_start_up_with_one_line,
    a_config_file_carries_the_same_settings,
);

/// A fresh, empty database of a backend.
enum Database {
    Sqlite(TempDir),
    Postgres(TestSchema),
}

impl Database {
    async fn new(backend: Backend) -> Database {
        match backend {
            Backend::Sqlite => Database::Sqlite(tempfile::tempdir().unwrap()),
            Backend::Postgres => Database::Postgres(TestSchema::create().await),
        }
    }

    fn url(&self) -> String {
        match self {
            Database::Sqlite(dir) => format!("sqlite://{}", dir.path().join("h.db").display()),
            Database::Postgres(schema) => schema.url().to_owned(),
        }
    }

    /// Everything the database holds, as the raw bytes of each place it keeps them.
    async fn stored(&self) -> Vec<Vec<u8>> {
        match self {
            Database::Sqlite(dir) => vec![
                std::fs::read(dir.path().join("h.db")).unwrap(),
                std::fs::read(dir.path().join("h.db-wal")).unwrap_or_default(),
            ],
            Database::Postgres(schema) => vec![schema.all_rows_as_text().await.into_bytes()],
        }
    }
}

async fn clients_create_prints_json_once(backend: Backend) {
    let db = Database::new(backend).await;
    let database = db.url();
    let output = Command::new(bin())
        .args([
            "clients",
            "create",
            "--name",
            "acme",
            "--json",
            "--database",
            &database,
        ])
        .output()
        .unwrap();
    assert!(output.status.success());
    let printed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let object = printed.as_object().unwrap();
    assert_eq!(object.len(), 2, "{printed}");
    assert!(printed["client_id"].as_str().unwrap().starts_with("cl_"));
    let secret = printed["client_secret"].as_str().unwrap();
    // 256 random bits, base64url without padding, after the prefix.
    assert_eq!(secret.strip_prefix("hks_").unwrap().len(), 43);
    // The database keeps only a digest of the secret.
    let stored = db.stored().await;
    assert!(stored.iter().any(|s| !s.is_empty()), "nothing was stored");
    let needle = secret.as_bytes();
    for file in &stored {
        assert!(
            !file.windows(needle.len()).any(|w| w == needle),
            "secret stored in clear"
        );
    }
}

async fn bad_settings_stop_start_up_with_one_line(backend: Backend) {
    let db = Database::new(backend).await;
    let database = db.url();
    let cases: [&[&str]; 6] = [
        &["--database", &database, "--retry-schedule", "0s,soon"],
        &["--database", &database, "--attempt-timeout", "forever"],
        &["--database", &database, "--retention", "a while"],
        &["--database", &database, "--retention", "0s"],
        &["--database", &database, "--listen", "nowhere"],
        &["--database", "mysql://x"],
    ];
    for args in cases {
        let output = Command::new(bin())
            .arg("serve")
            .args(args)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("hookd: "), "{stderr}");
    }
}

async fn a_config_file_carries_the_same_settings(backend: Backend) {
    let db = Database::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hookd.toml");
    std::fs::write(&config, "retry_schedule = \"0s,nonsense\"\n").unwrap();
    let output = Command::new(bin())
        .args(["serve", "--config", config.to_str().unwrap(), "--database"])
        .arg(db.url())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("retry-schedule"));
    std::fs::write(&config, "unknown_setting = 1\n").unwrap();
    let output = Command::new(bin())
        .args(["serve", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown_setting"));
}

/// The Standard Webhooks published test vectors, kept with hookd-verify.
const VECTORS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../hookd-verify/tests/data/standard-webhooks-vectors.json"
));

/// Runs `hookd verify ARGS < body` without a terminal on stdin.
fn hookd_verify(args: &[String], body: &[u8]) -> Output {
    let mut child = Command::new(bin())
        .arg("verify")
        .args(args)
        .env_remove("HOOKD_WEBHOOK_SECRET")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(body).unwrap();
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn header_args(headers: &[(String, String)]) -> Vec<String> {
    headers
        .iter()
        .flat_map(|(name, value)| ["--header".to_owned(), format!("{name}: {value}")])
        .collect()
}

#[test]
fn verify_agrees_with_every_published_standard_webhooks_vector() {
    let document: Value = serde_json::from_str(VECTORS).unwrap();
    let vectors = document["vectors"].as_array().unwrap();
    assert!(vectors.len() >= 20);
    for vector in vectors {
        let name = vector["name"].as_str().unwrap();
        let headers: Vec<(String, String)> = vector["headers"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(n, v)| (n.clone(), v.as_str().unwrap().to_owned()))
            .collect();
        let mut args = vec![
            "--secret".to_owned(),
            vector["secret"].as_str().unwrap().to_owned(),
            "--tolerance".to_owned(),
            "none".to_owned(),
        ];
        args.extend(header_args(&headers));
        let output = hookd_verify(&args, vector["body"].as_str().unwrap().as_bytes());
        let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
        // `--tolerance none` skips the timestamp check, so stale vectors verify.
        let reason = match vector["expect"].as_str().unwrap() {
            "valid" | "timestamp_too_old" | "timestamp_in_future" => None,
            "missing_header" => Some("is missing or empty"),
            "missing_signature" => Some("no webhook signature header found"),
            "malformed_timestamp" => Some("is not a unix timestamp in seconds"),
            "signature_mismatch" => Some("does not match this secret and body"),
            other => panic!("{name}: unknown expectation {other}"),
        };
        match reason {
            None => {
                assert_eq!(output.status.code(), Some(0), "{name}: {stderr}");
                assert_eq!(
                    stdout, "valid: Standard Webhooks signature (webhook-signature)\n",
                    "{name}"
                );
                assert!(stderr.is_empty(), "{name}: {stderr}");
            }
            Some(reason) => {
                assert_eq!(output.status.code(), Some(1), "{name}: {stdout}");
                assert!(stdout.is_empty(), "{name}: {stdout}");
                assert!(stderr.starts_with("invalid: "), "{name}: {stderr}");
                assert!(stderr.contains(reason), "{name}: {stderr}");
                assert_eq!(stderr.lines().count(), 1, "{name}: {stderr}");
            }
        }
    }
}

#[test]
fn verify_checks_the_timestamp_unless_told_not_to() {
    let secret = WebhookSecret::from_random_bytes(&[42; 24]);
    let body = br#"{"id":"evt_1","created":1,"type":"payment.completed","data":{}}"#;
    let signed_at = |timestamp: i64| {
        SignatureHeaders::compute(&[&secret], "x-nextpay-signature", "evt_1", timestamp, body)
            .into_iter()
            .filter(|(name, _)| name.starts_with("webhook-"))
            .collect::<Vec<_>>()
    };
    let run = |headers: &[(String, String)], tolerance: Option<&str>| {
        let mut args = vec!["--secret".to_owned(), secret.as_str().to_owned()];
        if let Some(tolerance) = tolerance {
            args.extend(["--tolerance".to_owned(), tolerance.to_owned()]);
        }
        args.extend(header_args(headers));
        hookd_verify(&args, body)
    };

    let fresh = signed_at(unix_seconds());
    assert_eq!(run(&fresh, None).status.code(), Some(0));
    let stale = signed_at(unix_seconds() - 3600);
    let output = run(&stale, None);
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("s in the past, outside the 300s tolerance"),
        "{stderr}"
    );
    assert_eq!(run(&stale, Some("2h")).status.code(), Some(0));
    assert_eq!(run(&stale, Some("none")).status.code(), Some(0));
    assert_eq!(run(&stale, Some("30m")).status.code(), Some(1));
    let ahead = signed_at(unix_seconds() + 3600);
    let stderr = text(&run(&ahead, None).stderr);
    assert!(stderr.contains("s in the future"), "{stderr}");
}

#[test]
fn verify_takes_the_hex_header_and_a_webhooks_own_header_name() {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let body = br#"{"event":"payment.completed","data":{"uuid":"u-1"}}"#;
    let signature = sign_hex(secret, body);
    let run = |extra: &[&str]| {
        let mut args = vec!["--secret".to_owned(), secret.to_owned()];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        hookd_verify(&args, body)
    };

    let output = run(&["-H", &format!("X-Webhook-Signature: {signature}")]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        text(&output.stdout),
        "valid: HMAC-SHA256 hex signature (x-webhook-signature)\n"
    );

    // A webhook registered with `signature_header: X-Acme-Signature`.
    let custom = format!("X-Acme-Signature: {signature}");
    let output = run(&["--header", &custom]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).starts_with("invalid: no webhook signature header found"),
        "{}",
        text(&output.stderr)
    );
    let output = run(&[
        "--header",
        &custom,
        "--signature-header",
        "X-Acme-Signature",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));

    // One byte of the body changed.
    let mut tampered = body.to_vec();
    tampered[3] ^= 1;
    let output = hookd_verify(
        &[
            "--secret".to_owned(),
            secret.to_owned(),
            "--header".to_owned(),
            format!("x-nextpay-signature: {signature}"),
        ],
        &tampered,
    );
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        text(&output.stderr),
        "invalid: x-nextpay-signature does not match this secret and body (wrong secret or modified body)\n"
    );
}

#[test]
fn verify_reports_bad_flags_as_usage_errors_and_hides_the_secret() {
    for args in [
        &["--secret", "s", "--tolerance", "soon"][..],
        &["--secret", "s", "--header", "webhook-id evt_1"],
        &["--header", "webhook-id: evt_1"],
    ] {
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        let output = hookd_verify(&args, b"{}");
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(text(&output.stdout).is_empty(), "{args:?}");
        assert!(!text(&output.stderr).is_empty(), "{args:?}");
    }

    // The secret from the environment, never echoed by --help.
    let secret = "whsec_c2VjcmV0LXRoYXQtbXVzdC1ub3Qtc2hvdw==";
    let body = b"{}";
    let output = Command::new(bin())
        .args(["verify", "--help"])
        .env("HOOKD_WEBHOOK_SECRET", secret)
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(!text(&output.stdout).contains(secret));
    let mut child = Command::new(bin())
        .args(["verify", "--header"])
        .arg(format!("x-nextpay-signature: {}", sign_hex(secret, body)))
        .env("HOOKD_WEBHOOK_SECRET", secret)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(body).unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
}
