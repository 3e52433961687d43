//! End-to-end checks of the wire contract between hookd (sender) and
//! receivers, against vectors computed independently of the crate: the
//! Standard Webhooks spec vector, Python-computed values, and a from-scratch
//! HMAC built on `sha2` alone (RFC 2104), plus property tests.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hookd_verify::{
    Delivery, SecretError, SignatureHeaders, VerifiedScheme, VerifyError, VerifyOptions,
    WebhookSecret, sign_hex, sign_standard, verify,
};
use proptest::prelude::*;
use sha2::{Digest, Sha256};

const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const SPEC_TS: i64 = 1_614_265_330;
const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
const SPEC_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
/// `whsec_` + base64 of bytes 0..32.
const OTHER_SECRET: &str = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// RFC 2104 HMAC-SHA256 written directly on SHA-256, independent of `hmac`.
fn reference_hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&ipad)
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize()
        .into()
}

fn reference_standard(secret: &str, id: &str, ts: i64, body: &[u8]) -> String {
    let key = STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .unwrap();
    let mut content = format!("{id}.{ts}.").into_bytes();
    content.extend_from_slice(body);
    format!("v1,{}", STANDARD.encode(reference_hmac(&key, &content)))
}

fn spec_delivery<'a>(signature: &'a str, body: &'a [u8]) -> Delivery<'a> {
    Delivery::new(body)
        .with_header("webhook-id", SPEC_ID)
        .with_header("webhook-timestamp", "1614265330")
        .with_header("webhook-signature", signature)
}

fn spec_options() -> VerifyOptions {
    VerifyOptions::new(SPEC_TS + 10)
}

#[test]
fn standard_webhooks_spec_vector() {
    let secret = WebhookSecret::parse(SPEC_SECRET).unwrap();
    assert_eq!(
        sign_standard(secret.standard_key(), SPEC_ID, SPEC_TS, SPEC_BODY),
        SPEC_SIG
    );
    assert_eq!(
        reference_standard(SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY),
        SPEC_SIG
    );
    assert_eq!(
        verify(
            &spec_delivery(SPEC_SIG, SPEC_BODY),
            SPEC_SECRET,
            &spec_options()
        ),
        Ok(VerifiedScheme::StandardWebhooks)
    );
}

#[test]
fn unprefixed_secret_verifies_standard_webhooks() {
    assert_eq!(
        verify(
            &spec_delivery(SPEC_SIG, SPEC_BODY),
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            &spec_options()
        ),
        Ok(VerifiedScheme::StandardWebhooks)
    );
}

#[test]
fn hex_scheme_matches_reference_and_python() {
    // Python: hmac.new(b"whsec_MfKQ...", body, hashlib.sha256).hexdigest()
    let expected = "80ec8a89ce3cd22133a1066caecb4d04fea7467657c8514d717ec42c38a5c94c";
    assert_eq!(sign_hex(SPEC_SECRET, SPEC_BODY), expected);
    assert_eq!(
        hex::encode(reference_hmac(SPEC_SECRET.as_bytes(), SPEC_BODY)),
        expected
    );

    let delivery = Delivery::new(SPEC_BODY).with_header("X-NextPay-Signature", expected);
    assert_eq!(
        verify(&delivery, SPEC_SECRET, &spec_options()),
        Ok(VerifiedScheme::Hex {
            header: "x-nextpay-signature".to_owned()
        })
    );
}

#[test]
fn hex_scheme_keys_with_full_string_even_if_not_base64() {
    let secret = "whsec_this is not base64!";
    assert!(WebhookSecret::parse(secret).is_err());
    let sig = sign_hex(secret, b"payload");
    assert_eq!(
        sig,
        hex::encode(reference_hmac(secret.as_bytes(), b"payload"))
    );
    let delivery = Delivery::new(b"payload").with_header("x-webhook-signature", &sig);
    assert!(verify(&delivery, secret, &spec_options()).is_ok());
    // Keying with the decoded part instead would not verify.
    let wrong = sign_hex("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", b"payload");
    let delivery = Delivery::new(b"payload").with_header("x-webhook-signature", &wrong);
    assert!(verify(&delivery, SPEC_SECRET, &spec_options()).is_err());
}

#[test]
fn rotation_either_secret_verifies() {
    let current = WebhookSecret::parse(SPEC_SECRET).unwrap();
    let old = WebhookSecret::parse(OTHER_SECRET).unwrap();
    let headers = SignatureHeaders::compute(
        &[&current, &old],
        "x-nextpay-signature",
        SPEC_ID,
        SPEC_TS,
        SPEC_BODY,
    );
    let delivery = Delivery::from_parts(
        headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        SPEC_BODY,
    );
    let signature = delivery.header("webhook-signature").unwrap();
    assert_eq!(
        signature,
        format!(
            "{} {}",
            reference_standard(SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY),
            reference_standard(OTHER_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY)
        )
    );
    for secret in [SPEC_SECRET, OTHER_SECRET] {
        assert_eq!(
            verify(&delivery, secret, &spec_options()),
            Ok(VerifiedScheme::StandardWebhooks),
            "{secret}"
        );
    }
    assert!(matches!(
        verify(
            &delivery,
            "whsec_ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ",
            &spec_options()
        ),
        Err(VerifyError::SignatureMismatch { .. })
    ));

    // The hex header is signed with the current secret only.
    let hex_only = Delivery::new(SPEC_BODY).with_header(
        "x-nextpay-signature",
        delivery.header("x-nextpay-signature").unwrap(),
    );
    assert!(verify(&hex_only, SPEC_SECRET, &spec_options()).is_ok());
    assert!(verify(&hex_only, OTHER_SECRET, &spec_options()).is_err());
}

#[test]
fn tolerance_both_directions_and_disabled() {
    let delivery = spec_delivery(SPEC_SIG, SPEC_BODY);
    let at = |now: i64| verify(&delivery, SPEC_SECRET, &VerifyOptions::new(now));

    assert!(at(SPEC_TS + 300).is_ok());
    assert!(at(SPEC_TS - 300).is_ok());
    let err = at(SPEC_TS + 412).unwrap_err();
    assert_eq!(
        err,
        VerifyError::TimestampTooOld {
            age_secs: 412,
            tolerance_secs: 300
        }
    );
    assert!(err.to_string().contains("412s in the past"), "{err}");
    assert_eq!(
        at(SPEC_TS - 301),
        Err(VerifyError::TimestampInFuture {
            ahead_secs: 301,
            tolerance_secs: 300
        })
    );

    let narrow = VerifyOptions::new(SPEC_TS + 31).with_tolerance(Some(Duration::from_secs(30)));
    assert!(matches!(
        verify(&delivery, SPEC_SECRET, &narrow),
        Err(VerifyError::TimestampTooOld { .. })
    ));

    let unlimited = VerifyOptions::new(SPEC_TS + 10 * 365 * 86_400).with_tolerance(None);
    assert!(verify(&delivery, SPEC_SECRET, &unlimited).is_ok());
}

#[test]
fn malformed_timestamp() {
    let delivery = Delivery::new(SPEC_BODY)
        .with_header("webhook-id", SPEC_ID)
        .with_header("webhook-timestamp", "2021-02-25T15:02:10Z")
        .with_header("webhook-signature", SPEC_SIG);
    let err = verify(&delivery, SPEC_SECRET, &spec_options()).unwrap_err();
    assert!(matches!(err, VerifyError::MalformedTimestamp { .. }));
    assert_eq!(
        err.to_string(),
        "webhook-timestamp \"2021-02-25T15:02:10Z\" is not a unix timestamp in seconds"
    );
}

#[test]
fn missing_headers() {
    assert!(matches!(
        verify(&Delivery::new(SPEC_BODY), SPEC_SECRET, &spec_options()),
        Err(VerifyError::MissingSignature { .. })
    ));
    // Standard Webhooks id/timestamp without a signature is still unsigned.
    let unsigned = Delivery::new(SPEC_BODY)
        .with_header("webhook-id", SPEC_ID)
        .with_header("webhook-timestamp", "1614265330");
    assert!(matches!(
        verify(&unsigned, SPEC_SECRET, &spec_options()),
        Err(VerifyError::MissingSignature { .. })
    ));
    let no_id = Delivery::new(SPEC_BODY)
        .with_header("webhook-timestamp", "1614265330")
        .with_header("webhook-signature", SPEC_SIG);
    assert_eq!(
        verify(&no_id, SPEC_SECRET, &spec_options()),
        Err(VerifyError::MissingHeader { name: "webhook-id" })
    );
}

#[test]
fn malformed_base64_secret_for_standard_webhooks() {
    let err = verify(
        &spec_delivery(SPEC_SIG, SPEC_BODY),
        "whsec_%%%not-base64%%%",
        &spec_options(),
    )
    .unwrap_err();
    assert!(matches!(
        err,
        VerifyError::InvalidSecret(SecretError::InvalidBase64 { .. })
    ));
    assert!(
        err.to_string()
            .starts_with("cannot check webhook-signature: ")
    );
    assert!(!err.to_string().contains("not-base64"), "{err}");
}

#[test]
fn tampered_body_fails_both_schemes() {
    let tampered = br#"{"test": 2432232315}"#;
    assert_eq!(
        verify(
            &spec_delivery(SPEC_SIG, tampered),
            SPEC_SECRET,
            &spec_options()
        ),
        Err(VerifyError::SignatureMismatch {
            header: "webhook-signature".to_owned()
        })
    );
    let sig = sign_hex(SPEC_SECRET, SPEC_BODY);
    let delivery = Delivery::new(tampered).with_header("x-nextpay-signature", &sig);
    assert_eq!(
        verify(&delivery, SPEC_SECRET, &spec_options()),
        Err(VerifyError::SignatureMismatch {
            header: "x-nextpay-signature".to_owned()
        })
    );
}

#[test]
fn header_names_are_case_insensitive() {
    let delivery = Delivery::new(SPEC_BODY)
        .with_header("WEBHOOK-ID", SPEC_ID)
        .with_header("Webhook-Timestamp", "1614265330")
        .with_header("wEbHoOk-SiGnAtUrE", SPEC_SIG);
    assert_eq!(
        verify(&delivery, SPEC_SECRET, &spec_options()),
        Ok(VerifiedScheme::StandardWebhooks)
    );
    let options = spec_options().with_hex_header_names(["X-Custom-Signature"]);
    let sig = sign_hex("k", b"b");
    let delivery = Delivery::new(b"b").with_header("x-custom-signature", &sig);
    assert!(verify(&delivery, "k", &options).is_ok());
}

fn mutate(body: &[u8], kind: u8, index: usize, byte: u8) -> Vec<u8> {
    let mut out = body.to_vec();
    match kind % 3 {
        0 if !out.is_empty() => {
            let i = index % out.len();
            out[i] ^= byte | 1; // never xor with 0
        }
        1 => out.insert(index % (out.len() + 1), byte),
        _ if !out.is_empty() => {
            out.remove(index % out.len());
        }
        _ => out.push(byte),
    }
    out
}

proptest! {
    #[test]
    fn sign_verify_roundtrip_and_mutations_fail(
        key in proptest::collection::vec(any::<u8>(), 24..64),
        body in proptest::collection::vec(any::<u8>(), 0..512),
        msg_id in "[A-Za-z0-9_]{1,40}",
        timestamp in 0i64..4_000_000_000,
        kind in any::<u8>(),
        index in any::<usize>(),
        byte in any::<u8>(),
    ) {
        let secret = WebhookSecret::from_random_bytes(&key);
        let headers = SignatureHeaders::compute(
            &[&secret], "x-nextpay-signature", &msg_id, timestamp, &body,
        );
        let options = VerifyOptions::new(timestamp);

        let pairs = || headers.iter().map(|(n, v)| (n.as_str(), v.as_str()));
        let hex_pair = || pairs().filter(|(n, _)| *n == "x-nextpay-signature");

        // Standard Webhooks (takes precedence when its headers are present).
        let delivery = Delivery::from_parts(pairs(), &body);
        prop_assert_eq!(
            verify(&delivery, secret.as_str(), &options),
            Ok(VerifiedScheme::StandardWebhooks)
        );
        // Hex scheme alone.
        let delivery = Delivery::from_parts(hex_pair(), &body);
        prop_assert!(verify(&delivery, secret.as_str(), &options).is_ok());

        // Independent computation agrees.
        prop_assert_eq!(
            sign_standard(&key, &msg_id, timestamp, &body),
            reference_standard(secret.as_str(), &msg_id, timestamp, &body)
        );

        // Any mutation of the body fails both schemes.
        let mutated = mutate(&body, kind, index, byte);
        prop_assert_ne!(&mutated, &body);
        let delivery = Delivery::from_parts(pairs(), &mutated);
        let is_standard_mismatch = matches!(
            verify(&delivery, secret.as_str(), &options),
            Err(VerifyError::SignatureMismatch { .. })
        );
        prop_assert!(is_standard_mismatch);
        let delivery = Delivery::from_parts(hex_pair(), &mutated);
        let is_hex_mismatch = matches!(
            verify(&delivery, secret.as_str(), &options),
            Err(VerifyError::SignatureMismatch { .. })
        );
        prop_assert!(is_hex_mismatch);
    }

    #[test]
    fn arbitrary_headers_never_panic(
        id in ".{0,40}",
        ts in ".{0,30}",
        sig in ".{0,200}",
        hex_value in ".{0,80}",
        body in proptest::collection::vec(any::<u8>(), 0..64),
        now in any::<i64>(),
    ) {
        let delivery = Delivery::new(&body)
            .with_header("webhook-id", &id)
            .with_header("webhook-timestamp", &ts)
            .with_header("webhook-signature", &sig);
        let _ = verify(&delivery, SPEC_SECRET, &VerifyOptions::new(now));
        let delivery = Delivery::new(&body).with_header("x-nextpay-signature", &hex_value);
        let _ = verify(&delivery, SPEC_SECRET, &VerifyOptions::new(now));
    }
}
