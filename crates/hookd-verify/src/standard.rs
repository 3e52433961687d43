//! Standard Webhooks (<https://www.standardwebhooks.com>): the
//! `webhook-id` / `webhook-timestamp` / `webhook-signature` headers, where the
//! signature is `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` and
//! several space-separated signatures may be present during secret rotation.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::Mac;
use subtle::ConstantTimeEq;

use crate::error::VerifyError;
use crate::mac::{HmacSha256, hmac_sha256};

/// Header carrying the message id.
pub const WEBHOOK_ID_HEADER: &str = "webhook-id";
/// Header carrying the send time in unix seconds.
pub const WEBHOOK_TIMESTAMP_HEADER: &str = "webhook-timestamp";
/// Header carrying the space-separated `v1,<base64>` signatures.
pub const WEBHOOK_SIGNATURE_HEADER: &str = "webhook-signature";

/// Signature version prefix this crate produces and verifies.
const VERSION_V1: &str = "v1";

/// Signs one Standard Webhooks message and returns `v1,<base64>`.
///
/// `key` is the decoded secret ([`crate::WebhookSecret::standard_key`]).
/// To sign with several secrets during rotation, join the results with a
/// single space (or use [`crate::SignatureHeaders::compute`]).
#[must_use]
pub fn sign_standard(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = signed_content_mac(key, msg_id, timestamp, body)
        .finalize()
        .into_bytes();
    format!("{VERSION_V1},{}", STANDARD.encode(tag))
}

fn signed_content_mac(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    let mut mac = hmac_sha256(key);
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Parses a `webhook-timestamp` value: ASCII digits only, fitting in `i64`.
pub(crate) fn parse_timestamp(raw: &str) -> Result<i64, VerifyError> {
    let trimmed = raw.trim();
    let malformed = || VerifyError::MalformedTimestamp {
        value: truncate_for_display(trimmed),
    };
    if trimmed.is_empty() || !trimmed.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed());
    }
    trimmed.parse::<i64>().map_err(|_| malformed())
}

/// Checks that at least one `v1` entry of a `webhook-signature` value matches,
/// comparing in constant time. Entries of other versions are ignored.
pub(crate) fn verify_signatures(
    key: &[u8],
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
    header_value: &str,
) -> Result<(), VerifyError> {
    let expected = signed_content_mac(key, msg_id, timestamp, body)
        .finalize()
        .into_bytes();

    let mut saw_v1 = false;
    let mut matched = false;
    for entry in header_value.split_ascii_whitespace() {
        let Some((version, encoded)) = entry.split_once(',') else {
            continue;
        };
        if version != VERSION_V1 {
            continue;
        }
        saw_v1 = true;
        // An undecodable entry simply cannot match.
        if let Ok(candidate) = STANDARD.decode(encoded) {
            // `ct_eq` on slices is constant time for equal lengths and
            // returns false for different lengths (lengths are public).
            matched |= bool::from(candidate.as_slice().ct_eq(expected.as_slice()));
        }
    }

    if matched {
        Ok(())
    } else if saw_v1 {
        Err(VerifyError::SignatureMismatch {
            header: WEBHOOK_SIGNATURE_HEADER.to_owned(),
        })
    } else {
        Err(VerifyError::NoSupportedSignature)
    }
}

/// Attacker-controlled values echoed in errors are capped so messages stay
/// one-liners.
fn truncate_for_display(value: &str) -> String {
    const MAX_CHARS: usize = 40;
    if value.chars().count() <= MAX_CHARS {
        value.to_owned()
    } else {
        let mut short: String = value.chars().take(MAX_CHARS).collect();
        short.push('…');
        short
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::WebhookSecret;

    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TS: i64 = 1_614_265_330;
    const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SPEC_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn spec_key() -> Vec<u8> {
        WebhookSecret::parse(SPEC_SECRET)
            .unwrap()
            .standard_key()
            .to_vec()
    }

    #[test]
    fn spec_vector() {
        assert_eq!(
            sign_standard(&spec_key(), SPEC_ID, SPEC_TS, SPEC_BODY),
            SPEC_SIG
        );
    }

    #[test]
    fn verify_ignores_other_versions_and_bad_entries() {
        let header = format!("v1a,AAAA garbage v1,!!! {SPEC_SIG} v2,xyz");
        verify_signatures(&spec_key(), SPEC_ID, SPEC_TS, SPEC_BODY, &header).unwrap();
    }

    #[test]
    fn verify_distinguishes_mismatch_from_no_v1() {
        assert_eq!(
            verify_signatures(&spec_key(), SPEC_ID, SPEC_TS, b"{}", SPEC_SIG),
            Err(VerifyError::SignatureMismatch {
                header: "webhook-signature".to_owned()
            })
        );
        assert_eq!(
            verify_signatures(&spec_key(), SPEC_ID, SPEC_TS, SPEC_BODY, "v1a,abc"),
            Err(VerifyError::NoSupportedSignature)
        );
        assert_eq!(
            verify_signatures(&spec_key(), SPEC_ID, SPEC_TS, SPEC_BODY, ""),
            Err(VerifyError::NoSupportedSignature)
        );
    }

    #[test]
    fn timestamps_parse_strictly() {
        assert_eq!(parse_timestamp("1614265330").unwrap(), SPEC_TS);
        assert_eq!(parse_timestamp(" 1614265330 ").unwrap(), SPEC_TS);
        for bad in [
            "",
            "-5",
            "+5",
            "1.5",
            "1614265330000000000000",
            "2021-02-25",
        ] {
            assert!(
                matches!(
                    parse_timestamp(bad),
                    Err(VerifyError::MalformedTimestamp { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn long_values_are_truncated_in_errors() {
        let err = parse_timestamp(&"x".repeat(500)).unwrap_err();
        assert!(err.to_string().len() < 150, "{err}");
    }
}
