//! Secrets at rest: a server with `HOOKD_ENCRYPTION_KEY` stores webhook signing secrets
//! sealed yet signs with them as before (hand-off and retry paths, a secret rotation, a
//! restart, a key rotation with `HOOKD_ENCRYPTION_KEY_PREVIOUS`); it refuses to start
//! without the key that sealed them, with one clear line; and no secret, of a client or a
//! webhook, is ever written to the database files in clear.
//! The logs of a full run are checked in `observability.rs`.

use std::path::PathBuf;
use std::process::Stdio;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use sha2::{Digest, Sha256};

use hookd_testkit::receiver::{Receiver, Recorded, Reply};
use hookd_testkit::server::{Hookd, ServeOptions};
use hookd_testkit::signatures::{expected_hex, expected_standard};
use hookd_testkit::{Backend, PATIENCE, backend_tests};

use crate::{bin, start_with};

backend_tests!(
    an_encrypted_store_signs_as_before_through_rotations_and_restarts,
    hookd_refuses_to_start_without_the_key_that_sealed_the_secrets,
);

/// A fresh random key, in base64 as `openssl rand -base64 32` prints one.
pub(crate) fn new_key() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).unwrap();
    STANDARD.encode(bytes)
}

fn keys_env(current: &str, previous: Option<&str>) -> Vec<(String, String)> {
    let mut env = vec![("HOOKD_ENCRYPTION_KEY".to_owned(), current.to_owned())];
    if let Some(previous) = previous {
        env.push((
            "HOOKD_ENCRYPTION_KEY_PREVIOUS".to_owned(),
            previous.to_owned(),
        ));
    }
    env
}

fn options(backend: Backend, env: Vec<(String, String)>) -> ServeOptions {
    ServeOptions {
        backend,
        env,
        ..ServeOptions::default()
    }
}

/// Asserts that `r` is signed with exactly `secrets` (newest first): the hex header with
/// the newest, the Standard Webhooks header with each.
fn assert_signed_by(r: &Recorded, secrets: &[&str]) {
    assert_eq!(
        r.header("x-nextpay-signature"),
        expected_hex(secrets[0], &r.body)
    );
    let expected: Vec<String> = secrets
        .iter()
        .map(|s| {
            expected_standard(
                s,
                r.header("webhook-id"),
                r.header("webhook-timestamp"),
                &r.body,
            )
        })
        .collect();
    assert_eq!(r.header("webhook-signature"), expected.join(" "));
}

async fn rotate(hookd: &Hookd, webhook_id: &str) -> String {
    let (status, rotated) = hookd
        .post(
            &format!("/v2/webhooks/{webhook_id}/rotate-secret"),
            &json!({"grace_seconds": 3600}),
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    rotated["secret"].as_str().unwrap().to_owned()
}

async fn create_webhook(hookd: &Hookd, receiver: &Receiver) -> (String, String) {
    let webhook = hookd
        .create_webhook(json!({"url": receiver.url("/hook"), "events": ["*"]}))
        .await;
    (
        webhook["id"].as_str().unwrap().to_owned(),
        webhook["secret"].as_str().unwrap().to_owned(),
    )
}

async fn an_encrypted_store_signs_as_before_through_rotations_and_restarts(backend: Backend) {
    let key = new_key();
    let mut hookd = start_with(options(backend, keys_env(&key, None))).await;
    // The first attempt fails: its retry comes from a claim, the first from the hand-off
    // at publish; both read the sealed secret.
    let receiver = Receiver::start(|n| Reply::Status(if n == 0 { 500 } else { 200 })).await;
    let (id, first) = create_webhook(&hookd, &receiver).await;

    hookd.publish("payment.completed", json!({"n": 1})).await;
    let got = receiver.wait_for(2, PATIENCE).await;
    for r in &got {
        assert_signed_by(r, &[&first]);
    }

    let second = rotate(&hookd, &id).await;
    hookd.publish("payment.completed", json!({"n": 2})).await;
    let got = receiver.wait_for(3, PATIENCE).await;
    assert_signed_by(&got[2], &[&second, &first]);

    // After a restart (the start-up pass opens every sealed secret), the same.
    hookd.restart().await;
    hookd.publish("payment.completed", json!({"n": 3})).await;
    let got = receiver.wait_for(4, PATIENCE).await;
    assert_signed_by(&got[3], &[&second, &first]);

    // A key rotation: the new key, with the old one as the previous key, re-encrypts at
    // start; from then on the new key alone opens everything.
    hookd.kill().await;
    let new_key = new_key();
    let mut rotating = hookd
        .another_node(options(backend, keys_env(&new_key, Some(&key))))
        .await;
    rotating.publish("payment.completed", json!({"n": 4})).await;
    let got = receiver.wait_for(5, PATIENCE).await;
    assert_signed_by(&got[4], &[&second, &first]);
    rotating.kill().await;
    let rotated = hookd
        .another_node(options(backend, keys_env(&new_key, None)))
        .await;
    rotated.publish("payment.completed", json!({"n": 5})).await;
    let got = receiver.wait_for(6, PATIENCE).await;
    assert_signed_by(&got[5], &[&second, &first]);
}

/// Runs `hookd serve` on `database_url` with `env` and expects it to refuse to start:
/// its exit code and the one line it printed.
async fn refused_start(database_url: &str, env: Vec<(String, String)>) -> (Option<i32>, String) {
    let run = tokio::process::Command::new(bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database",
            database_url,
        ])
        .env_remove("HOOKD_ENCRYPTION_KEY")
        .env_remove("HOOKD_ENCRYPTION_KEY_PREVIOUS")
        .envs(env)
        .env("HOOKD_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(PATIENCE, run)
        .await
        .expect("hookd serve neither started nor stopped")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        !stdout.contains("listening"),
        "hookd started when it should have refused: {stdout}"
    );
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    (output.status.code(), stderr)
}

async fn hookd_refuses_to_start_without_the_key_that_sealed_the_secrets(backend: Backend) {
    let key = new_key();
    let mut hookd = start_with(options(backend, keys_env(&key, None))).await;
    let receiver = Receiver::ok().await;
    let (_, secret) = create_webhook(&hookd, &receiver).await;
    hookd.kill().await;
    let url = hookd.database_url();

    let (code, line) = refused_start(&url, Vec::new()).await;
    assert_eq!(code, Some(1), "{line}");
    assert!(line.starts_with("hookd: "), "{line}");
    assert!(
        line.ends_with("the database holds encrypted secrets; set HOOKD_ENCRYPTION_KEY"),
        "{line}"
    );

    let other = new_key();
    let (code, line) = refused_start(&url, keys_env(&other, None)).await;
    assert_eq!(code, Some(1), "{line}");
    assert!(
        line.contains("HOOKD_ENCRYPTION_KEY does not decrypt the secrets in the database"),
        "{line}"
    );

    // A key that is no key: a bad setting (exit 2), and the text is not repeated.
    let half = STANDARD.encode([7u8; 16]);
    let (code, line) = refused_start(&url, keys_env(&half, None)).await;
    assert_eq!(code, Some(2), "{line}");
    assert!(
        line.starts_with("hookd: HOOKD_ENCRYPTION_KEY: an encryption key is 32 random bytes"),
        "{line}"
    );
    assert!(!line.contains(&half), "{line}");
    let (code, line) = refused_start(&url, keys_env(&key, Some("not a key"))).await;
    assert_eq!(code, Some(2), "{line}");
    assert!(line.contains("HOOKD_ENCRYPTION_KEY_PREVIOUS: "), "{line}");

    for (_, line) in [
        refused_start(&url, Vec::new()).await,
        refused_start(&url, keys_env(&other, None)).await,
    ] {
        assert!(!line.contains(&secret) && !line.contains(&other), "{line}");
    }

    // With the right key it starts as ever.
    let again = hookd
        .another_node(options(backend, keys_env(&key, None)))
        .await;
    let (status, _) = again.get("/v2/webhooks").await;
    assert_eq!(status, 200);
}

/// The files of a SQLite database (the file, its WAL and other companions).
fn database_files(hookd: &Hookd) -> Vec<(PathBuf, Vec<u8>)> {
    let url = hookd.database_url();
    let path = PathBuf::from(url.strip_prefix("sqlite://").unwrap());
    let dir = path.parent().unwrap();
    let files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    assert!(files.iter().any(|(p, _)| *p == path), "{files:?}");
    files
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// SQLite only: it reads the database's files byte by byte (what a stolen backup or disk
/// holds); the PostgreSQL columns are checked in hookd-store's `sealing` tests.
#[tokio::test]
async fn no_secret_reaches_the_database_files_in_clear() {
    let key = new_key();
    let mut hookd = start_with(options(Backend::Sqlite, keys_env(&key, None))).await;
    let receiver = Receiver::ok().await;
    let (id, first) = create_webhook(&hookd, &receiver).await;
    let second = rotate(&hookd, &id).await;
    hookd.publish("payment.completed", json!({"n": 1})).await;
    receiver.wait_for(1, PATIENCE).await;
    assert_eq!(hookd.terminate(PATIENCE).await, Some(0));

    let client_secret = hookd.credentials.client_secret.clone();
    let digest = Sha256::digest(client_secret.as_bytes());
    let mut needles: Vec<(&str, Vec<u8>)> = vec![
        ("the client secret", client_secret.as_bytes().to_vec()),
        ("the encryption key", key.as_bytes().to_vec()),
    ];
    for secret in [&first, &second] {
        needles.push(("a webhook secret", secret.as_bytes().to_vec()));
        let key_part = secret.trim_start_matches("whsec_");
        needles.push(("a webhook secret's key", key_part.as_bytes().to_vec()));
    }
    let files = database_files(&hookd);
    for (path, bytes) in &files {
        for (what, needle) in &needles {
            assert!(
                !contains(bytes, needle),
                "{what} is in {} in clear",
                path.display()
            );
        }
    }
    // What is stored of the client secret is its digest.
    assert!(
        files.iter().any(|(_, bytes)| contains(bytes, &digest)),
        "the client secret's digest is not in the database"
    );
}
