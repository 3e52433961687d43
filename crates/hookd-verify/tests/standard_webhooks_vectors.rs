//! Every published Standard Webhooks test vector (`tests/data/standard-webhooks-vectors.json`,
//! sources and licence in `tests/data/README.md`), valid and invalid, through `verify`;
//! and the published signatures through `sign_standard`.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use hookd_verify::{Delivery, VerifyError, VerifyOptions, WebhookSecret, sign_standard, verify};
use serde_json::Value;

const VECTORS: &str = include_str!("data/standard-webhooks-vectors.json");

fn vectors() -> Vec<Value> {
    let document: Value = serde_json::from_str(VECTORS).unwrap();
    document["vectors"].as_array().unwrap().clone()
}

/// The `expect` value a verification result stands for.
fn outcome(result: &Result<hookd_verify::VerifiedScheme, VerifyError>) -> &'static str {
    match result {
        Ok(_) => "valid",
        Err(VerifyError::MissingHeader { .. }) => "missing_header",
        Err(VerifyError::MissingSignature { .. }) => "missing_signature",
        Err(VerifyError::MalformedTimestamp { .. }) => "malformed_timestamp",
        Err(VerifyError::SignatureMismatch { .. }) => "signature_mismatch",
        Err(VerifyError::TimestampTooOld { .. }) => "timestamp_too_old",
        Err(VerifyError::TimestampInFuture { .. }) => "timestamp_in_future",
        Err(other) => panic!("no vector expects {other:?}"),
    }
}

#[test]
fn every_published_vector_verifies_as_published() {
    let vectors = vectors();
    assert_eq!(vectors.len(), 24, "the data file lost or gained vectors");
    let mut failures = Vec::new();
    for vector in &vectors {
        let name = vector["name"].as_str().unwrap();
        let headers = vector["headers"].as_object().unwrap();
        let body = vector["body"].as_str().unwrap().as_bytes();
        let delivery = Delivery::from_parts(
            headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str().unwrap())),
            body,
        );
        let tolerance = vector["tolerance_secs"].as_u64().map(Duration::from_secs);
        let options = VerifyOptions::new(vector["now"].as_i64().unwrap()).with_tolerance(tolerance);
        let result = verify(&delivery, vector["secret"].as_str().unwrap(), &options);
        let expected = vector["expect"].as_str().unwrap();
        if outcome(&result) != expected {
            failures.push(format!("{name}: expected {expected}, got {result:?}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn published_signatures_are_what_signing_gives() {
    let mut checked = 0;
    for vector in vectors() {
        let Some(expected) = vector["signs_to"].as_str() else {
            continue;
        };
        let secret = WebhookSecret::parse(vector["secret"].as_str().unwrap()).unwrap();
        let headers = &vector["headers"];
        let timestamp: i64 = headers["webhook-timestamp"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let signature = sign_standard(
            secret.standard_key(),
            headers["webhook-id"].as_str().unwrap(),
            timestamp,
            vector["body"].as_str().unwrap().as_bytes(),
        );
        assert_eq!(signature, expected, "{}", vector["name"]);
        checked += 1;
    }
    assert_eq!(checked, 3);
}

#[test]
fn both_kinds_of_vector_are_present() {
    let vectors = vectors();
    let expectations: std::collections::BTreeSet<&str> = vectors
        .iter()
        .map(|v| v["expect"].as_str().unwrap())
        .collect();
    assert_eq!(
        expectations.into_iter().collect::<Vec<_>>(),
        [
            "malformed_timestamp",
            "missing_header",
            "missing_signature",
            "signature_mismatch",
            "timestamp_in_future",
            "timestamp_too_old",
            "valid"
        ]
    );
    for vector in &vectors {
        assert!(
            vector["from"].as_array().is_some_and(|f| !f.is_empty()),
            "{} cites no source",
            vector["name"]
        );
    }
}
