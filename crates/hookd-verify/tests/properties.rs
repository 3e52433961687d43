//! Property tests of the signature verifier, run in the ordinary test suite on the stable
//! toolchain: what the signer produces always verifies, any single-byte change of what
//! was signed fails, and arbitrary headers and secrets never panic (nor verify). Each
//! property runs thousands of generated cases.
//!
//! Found failures are not written to `proptest-regressions/` files (see [`config`]):
//! proptest prints the shrunk input, which becomes a named test in `contract.rs`.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use hookd_verify::{
    Delivery, SignatureHeaders, VerifiedScheme, VerifyError, VerifyOptions, WebhookSecret, verify,
};
use proptest::prelude::*;

/// `cases` generated inputs (or `PROPTEST_CASES`), no regression files in the source
/// tree, shrinking bounded (20 s).
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        failure_persistence: None,
        max_shrink_time: 20_000,
        ..ProptestConfig::default()
    }
}

fn secret() -> impl Strategy<Value = WebhookSecret> {
    prop::collection::vec(any::<u8>(), 1..64).prop_map(|key| WebhookSecret::from_random_bytes(&key))
}

/// Message ids: printable ASCII, possibly with inner spaces (verification trims the ends).
fn msg_id() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[!-~]{1,40}",
        1 => "[!-~][ -~]{0,38}[!-~]",
        1 => "evt_[0-9a-z]{26}",
    ]
}

fn timestamp() -> impl Strategy<Value = i64> {
    prop_oneof![3 => 1_500_000_000i64..2_500_000_000, 1 => 0i64..=i64::MAX]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => "[ -~]{0,300}".prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>(), 0..1024),
    ]
}

fn hex_header() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "x-nextpay-signature",
        "X-Webhook-Signature",
        "X-Acme-Signature",
    ])
}

/// Headers as a receiver's framework may hand them over: any ASCII case.
fn recased(name: &str, upper: bool) -> String {
    if upper {
        name.to_ascii_uppercase()
    } else {
        name.to_owned()
    }
}

/// Replaces the character at `index % len` with a different printable ASCII one, or
/// deletes it (`replacement` of 0). `case_insensitive` excludes the same letter in the
/// other case, which hex digits allow.
fn change_one_char(text: &str, index: usize, replacement: u8, case_insensitive: bool) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    let at = index % chars.len();
    if replacement == 0 {
        chars.remove(at);
    } else {
        let mut new = char::from(b' ' + replacement % 95);
        let same =
            |c: char| c == chars[at] || (case_insensitive && c.eq_ignore_ascii_case(&chars[at]));
        while same(new) {
            new = char::from(b' ' + ((new as u8 - b' ' + 1) % 95));
        }
        chars[at] = new;
    }
    chars.into_iter().collect()
}

/// Replaces, inserts or deletes one byte of the body.
fn change_one_byte(body: &[u8], kind: u8, index: usize, byte: u8) -> Vec<u8> {
    let mut out = body.to_vec();
    match kind % 3 {
        0 if !out.is_empty() => {
            let at = index % out.len();
            out[at] ^= byte | 1;
        }
        1 | 0 => out.insert(index % (out.len() + 1), byte),
        _ if out.is_empty() => out.push(byte),
        _ => {
            out.remove(index % out.len());
        }
    }
    out
}

proptest! {
    #![proptest_config(config(3000))]

    /// Whatever the signer produces verifies: Standard Webhooks with every secret of a
    /// rotation (and the secret's text form), within the tolerance either way, and the
    /// hex scheme alone with the current secret; outside the tolerance the timestamp is
    /// blamed, not the signature.
    #[test]
    fn signatures_from_the_signer_always_verify(
        secrets in prop::collection::vec(secret(), 1..4),
        hex_name in hex_header(),
        id in msg_id(),
        timestamp in timestamp(),
        body in body(),
        skew in -600i64..=600,
        upper in any::<bool>(),
    ) {
        let refs: Vec<&WebhookSecret> = secrets.iter().collect();
        let headers = SignatureHeaders::compute(&refs, hex_name, &id, timestamp, &body);
        let names: Vec<String> = headers.iter().map(|(n, _)| recased(n, upper)).collect();
        let delivery = Delivery::from_parts(
            names.iter().zip(&headers).map(|(n, (_, v))| (n.as_str(), v.as_str())),
            &body,
        );
        let now = timestamp.saturating_add(skew);
        let within = (now - timestamp).unsigned_abs() <= 300;
        for secret in &secrets {
            for key in [secret.as_str().to_owned(), secret.as_str().trim_start_matches("whsec_").to_owned()] {
                let result = verify(&delivery, &key, &VerifyOptions::new(now));
                if within {
                    prop_assert_eq!(result, Ok(VerifiedScheme::StandardWebhooks));
                } else {
                    let is_stale = matches!(
                        result,
                        Err(VerifyError::TimestampTooOld { .. } | VerifyError::TimestampInFuture { .. })
                    );
                    prop_assert!(is_stale, "skew {}: {:?}", skew, result);
                }
            }
            let reparsed = WebhookSecret::parse(secret.as_str()).unwrap();
            prop_assert_eq!(reparsed.standard_key(), secret.standard_key());
        }

        let hex_only = Delivery::new(&body).with_header(&names[0], &headers[0].1);
        let options = VerifyOptions::new(now).with_hex_header_names([hex_name]);
        prop_assert_eq!(
            verify(&hex_only, secrets[0].as_str(), &options),
            Ok(VerifiedScheme::Hex { header: hex_name.to_owned() })
        );
    }

    /// Any single-byte change of the body, `webhook-id`, `webhook-timestamp` or a
    /// signature makes verification fail (hex digits may change case: hex is read either
    /// way).
    #[test]
    fn any_single_byte_change_fails(
        secret in secret(),
        id in msg_id(),
        timestamp in timestamp(),
        body in body(),
        part in 0u8..5,
        kind in any::<u8>(),
        index in any::<usize>(),
        byte in any::<u8>(),
    ) {
        let headers = SignatureHeaders::compute(&[&secret], "x-nextpay-signature", &id, timestamp, &body);
        let mut values: Vec<String> = headers.iter().map(|(_, v)| v.clone()).collect();
        let mut changed_body = body.clone();
        let replacement = if kind % 4 == 0 { 0 } else { byte | 1 };
        match part {
            0 => changed_body = change_one_byte(&body, kind, index, byte),
            1 => values[1] = change_one_char(&values[1], index, replacement, false),
            2 => values[2] = change_one_char(&values[2], index, replacement, false),
            3 => values[3] = change_one_char(&values[3], index, replacement, false),
            _ => values[0] = change_one_char(&values[0], index, replacement, true),
        }
        let options = VerifyOptions::new(timestamp).with_tolerance(None);
        let pairs = || headers.iter().zip(&values).map(|((n, _), v)| (n.as_str(), v.as_str()));

        // Standard Webhooks (all four headers; it takes precedence over hex).
        let delivery = Delivery::from_parts(pairs(), &changed_body);
        let result = verify(&delivery, secret.as_str(), &options);
        if part == 4 {
            prop_assert_eq!(result, Ok(VerifiedScheme::StandardWebhooks));
        } else {
            prop_assert!(result.is_err(), "part {} changed, still verifies: {:?}", part, values);
        }
        // Hex scheme alone: the body and its signature are what it covers.
        let delivery = Delivery::from_parts(pairs().take(1), &changed_body);
        let result = verify(&delivery, secret.as_str(), &options);
        if part == 0 || part == 4 {
            prop_assert!(result.is_err(), "part {} changed, hex still verifies: {:?}", part, values[0]);
        } else {
            prop_assert!(result.is_ok(), "{:?}", result);
        }
    }
}

/// Header names a verifier looks at, in odd cases, and others.
fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "webhook-id", "Webhook-Timestamp", "WEBHOOK-SIGNATURE", "x-nextpay-signature",
            "X-Webhook-Signature", "webhook-signature ", "", "x-other",
        ])
        .prop_map(String::from),
        1 => ".{0,12}",
    ]
}

/// Header values around the real formats: signature lists, base64, digits, hex, junk.
fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => "(v[0-9a],[A-Za-z0-9+/=!]{0,48}[ \t]{0,2}){0,4}",
        1 => "[ 0-9+-]{0,24}",
        1 => "[0-9a-fA-F ]{60,68}",
        1 => "[0-9]{19,40}",
        2 => prop::collection::vec(any::<char>(), 0..120).prop_map(String::from_iter),
    ]
}

fn secret_text() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => "whsec_[A-Za-z0-9+/=]{0,60}",
        1 => "[A-Za-z0-9+/=_ ]{0,60}",
        1 => prop::collection::vec(any::<char>(), 0..40).prop_map(String::from_iter),
    ]
}

proptest! {
    #![proptest_config(config(4000))]

    /// Arbitrary headers, secrets and options never panic and never verify, and every
    /// error message stays short (attacker-controlled values are cut).
    #[test]
    fn arbitrary_headers_never_panic(
        headers in prop::collection::vec((header_name(), header_value()), 0..6),
        body in prop::collection::vec(any::<u8>(), 0..64),
        secret in secret_text(),
        now in any::<i64>(),
        tolerance in prop::option::of(any::<u64>()),
        accept_hex in any::<bool>(),
        hex_names in prop::collection::vec("[a-zA-Z-]{0,20}", 0..3),
    ) {
        let delivery = Delivery::from_parts(
            headers.iter().map(|(n, v)| (n.as_str(), v.as_str())),
            &body,
        );
        let mut options = VerifyOptions::new(now)
            .with_tolerance(tolerance.map(Duration::from_secs))
            .with_accept_hex(accept_hex);
        if !hex_names.is_empty() {
            options = options.with_hex_header_names(hex_names);
        }
        let result = verify(&delivery, &secret, &options);
        let Err(error) = result else {
            return Err(TestCaseError::fail(format!("forged headers verified: {result:?}")));
        };
        let message = error.to_string();
        prop_assert!(!message.is_empty());
        prop_assert!(message.chars().count() < 400, "{}", message);

        if let Ok(parsed) = WebhookSecret::parse(&secret) {
            prop_assert!(!parsed.standard_key().is_empty());
            prop_assert_eq!(parsed.as_str(), secret.as_str());
        }
    }
}
