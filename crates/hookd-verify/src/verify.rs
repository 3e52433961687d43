//! Receiver-side verification: pick the scheme from the headers present,
//! check the signature in constant time, and (for Standard Webhooks) check
//! the timestamp against a caller-supplied `now`.

use std::time::Duration;

use crate::delivery::Delivery;
use crate::error::VerifyError;
use crate::hex_scheme::{NEXTPAY_SIGNATURE_HEADER, X_WEBHOOK_SIGNATURE_HEADER, verify_hex};
use crate::secret::WebhookSecret;
use crate::standard::{
    WEBHOOK_ID_HEADER, WEBHOOK_SIGNATURE_HEADER, WEBHOOK_TIMESTAMP_HEADER, parse_timestamp,
    verify_signatures,
};

/// Default allowed distance between `webhook-timestamp` and `now`.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// How to verify a delivery. Build with [`VerifyOptions::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyOptions {
    /// Allowed distance, in either direction, between `webhook-timestamp`
    /// and `now`. `None` disables the check (not recommended: it removes
    /// replay protection). Default: [`DEFAULT_TOLERANCE`] (5 minutes).
    pub tolerance: Option<Duration>,
    /// The current time in unix seconds (this crate never reads a clock).
    pub now: i64,
    /// Hex-scheme header names to look for, in order; the first present one
    /// is checked. Default: `x-nextpay-signature`, `x-webhook-signature`.
    pub hex_header_names: Vec<String>,
    /// Whether the hex scheme is accepted at all. Set to `false` to require
    /// Standard Webhooks, whose timestamp protects against replays.
    /// Default: `true`.
    pub accept_hex: bool,
}

impl VerifyOptions {
    /// Default options at time `now` (unix seconds).
    pub fn new(now: i64) -> VerifyOptions {
        VerifyOptions {
            tolerance: Some(DEFAULT_TOLERANCE),
            now,
            hex_header_names: vec![
                NEXTPAY_SIGNATURE_HEADER.to_owned(),
                X_WEBHOOK_SIGNATURE_HEADER.to_owned(),
            ],
            accept_hex: true,
        }
    }

    /// Sets the timestamp tolerance (`None` disables the check).
    #[must_use]
    pub fn with_tolerance(mut self, tolerance: Option<Duration>) -> VerifyOptions {
        self.tolerance = tolerance;
        self
    }

    /// Replaces the hex-scheme header names to look for.
    #[must_use]
    pub fn with_hex_header_names<I, S>(mut self, names: I) -> VerifyOptions
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.hex_header_names = names.into_iter().map(Into::into).collect();
        self
    }

    /// Sets whether the hex scheme is accepted.
    #[must_use]
    pub fn with_accept_hex(mut self, accept_hex: bool) -> VerifyOptions {
        self.accept_hex = accept_hex;
        self
    }
}

/// Which scheme a successfully verified delivery was signed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifiedScheme {
    /// The hex scheme, via the named header (as configured in
    /// [`VerifyOptions::hex_header_names`]).
    Hex {
        /// The header that carried the signature.
        header: String,
    },
    /// Standard Webhooks (`webhook-id`, `webhook-timestamp`,
    /// `webhook-signature`).
    StandardWebhooks,
}

/// Verifies a delivery with `secret`.
///
/// If `webhook-signature` is present, the delivery is checked as Standard
/// Webhooks only (no fallback): `webhook-id` and `webhook-timestamp` must be
/// present, one of the space-separated `v1` signatures must match (other
/// versions are ignored), and then the timestamp must be within
/// [`VerifyOptions::tolerance`] of [`VerifyOptions::now`]. The key is the
/// base64-decoded part of `secret` after `whsec_`.
///
/// Otherwise the first present header of [`VerifyOptions::hex_header_names`]
/// is checked as the hex scheme, keyed with `secret` exactly as given.
///
/// All signature comparisons are constant time.
///
/// # Errors
///
/// A [`VerifyError`] naming the reason: no signature header, a missing
/// Standard Webhooks header, a malformed timestamp or signature, a signature
/// mismatch, a timestamp outside the tolerance, or (Standard Webhooks only)
/// a secret that is not base64.
pub fn verify(
    delivery: &Delivery<'_>,
    secret: &str,
    options: &VerifyOptions,
) -> Result<VerifiedScheme, VerifyError> {
    if let Some(signatures) = delivery.header(WEBHOOK_SIGNATURE_HEADER) {
        let msg_id = required_header(delivery, WEBHOOK_ID_HEADER)?;
        let timestamp = parse_timestamp(required_header(delivery, WEBHOOK_TIMESTAMP_HEADER)?)?;
        let secret = WebhookSecret::parse(secret)?;
        verify_signatures(
            secret.standard_key(),
            msg_id,
            timestamp,
            delivery.body(),
            signatures,
        )?;
        // Checked after the signature so a timestamp error means a genuine
        // but stale (or clock-skewed) delivery.
        check_tolerance(timestamp, options)?;
        return Ok(VerifiedScheme::StandardWebhooks);
    }

    if options.accept_hex {
        for name in &options.hex_header_names {
            if let Some(value) = delivery.header(name) {
                verify_hex(secret, delivery.body(), name, value)?;
                return Ok(VerifiedScheme::Hex {
                    header: name.clone(),
                });
            }
        }
    }

    Err(VerifyError::MissingSignature {
        looked_for: looked_for(options),
    })
}

fn required_header<'a>(
    delivery: &Delivery<'a>,
    name: &'static str,
) -> Result<&'a str, VerifyError> {
    delivery
        .header(name)
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .ok_or(VerifyError::MissingHeader { name })
}

fn check_tolerance(timestamp: i64, options: &VerifyOptions) -> Result<(), VerifyError> {
    let Some(tolerance) = options.tolerance else {
        return Ok(());
    };
    let tolerance_secs = tolerance.as_secs();
    // i128 so that no pair of i64 values can overflow.
    let age = i128::from(options.now) - i128::from(timestamp);
    let limit = i128::from(tolerance_secs);
    if age > limit {
        Err(VerifyError::TimestampTooOld {
            age_secs: u64::try_from(age).unwrap_or(u64::MAX),
            tolerance_secs,
        })
    } else if -age > limit {
        Err(VerifyError::TimestampInFuture {
            ahead_secs: u64::try_from(-age).unwrap_or(u64::MAX),
            tolerance_secs,
        })
    } else {
        Ok(())
    }
}

fn looked_for(options: &VerifyOptions) -> String {
    let mut names = vec![WEBHOOK_SIGNATURE_HEADER];
    if options.accept_hex {
        names.extend(options.hex_header_names.iter().map(String::as_str));
    }
    names.join(", ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::{sign_hex, sign_standard};

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const NOW: i64 = 1_614_265_330;

    fn standard_delivery<'a>(sig: &'a str, ts: &'a str, body: &'a [u8]) -> Delivery<'a> {
        Delivery::new(body)
            .with_header("webhook-id", "msg_1")
            .with_header("webhook-timestamp", ts)
            .with_header("webhook-signature", sig)
    }

    fn key() -> Vec<u8> {
        WebhookSecret::parse(SECRET)
            .unwrap()
            .standard_key()
            .to_vec()
    }

    #[test]
    fn tolerance_boundaries_both_directions() {
        let options = VerifyOptions::new(NOW);
        for (offset, ok) in [(-300, true), (300, true), (-301, false), (301, false)] {
            let ts = NOW + offset;
            let sig = sign_standard(&key(), "msg_1", ts, b"{}");
            let ts_text = ts.to_string();
            let result = verify(&standard_delivery(&sig, &ts_text, b"{}"), SECRET, &options);
            assert_eq!(result.is_ok(), ok, "offset {offset}: {result:?}");
        }
    }

    #[test]
    fn too_old_and_in_future_are_distinct_with_clear_messages() {
        let options = VerifyOptions::new(NOW);
        let old = NOW - 712;
        let sig = sign_standard(&key(), "msg_1", old, b"{}");
        let old_text = old.to_string();
        let err = verify(&standard_delivery(&sig, &old_text, b"{}"), SECRET, &options).unwrap_err();
        assert_eq!(
            err,
            VerifyError::TimestampTooOld {
                age_secs: 712,
                tolerance_secs: 300
            }
        );
        assert!(
            err.to_string()
                .starts_with("webhook-timestamp is 712s in the past, outside the 300s tolerance")
        );

        let future = NOW + 400;
        let sig = sign_standard(&key(), "msg_1", future, b"{}");
        let future_text = future.to_string();
        let err = verify(
            &standard_delivery(&sig, &future_text, b"{}"),
            SECRET,
            &options,
        )
        .unwrap_err();
        assert_eq!(
            err,
            VerifyError::TimestampInFuture {
                ahead_secs: 400,
                tolerance_secs: 300
            }
        );
    }

    #[test]
    fn no_tolerance_accepts_any_timestamp() {
        let options = VerifyOptions::new(i64::MAX).with_tolerance(None);
        let sig = sign_standard(&key(), "msg_1", 0, b"{}");
        verify(&standard_delivery(&sig, "0", b"{}"), SECRET, &options).unwrap();
    }

    #[test]
    fn extreme_clock_values_do_not_overflow() {
        let options = VerifyOptions::new(i64::MIN);
        let ts = i64::MAX;
        let sig = sign_standard(&key(), "msg_1", ts, b"{}");
        let ts_text = ts.to_string();
        let err = verify(&standard_delivery(&sig, &ts_text, b"{}"), SECRET, &options).unwrap_err();
        assert_eq!(
            err,
            VerifyError::TimestampInFuture {
                ahead_secs: u64::MAX,
                tolerance_secs: 300
            }
        );
    }

    #[test]
    fn standard_requires_id_and_timestamp() {
        let options = VerifyOptions::new(NOW);
        let delivery = Delivery::new(b"{}")
            .with_header("webhook-signature", "v1,abc")
            .with_header("webhook-timestamp", "1");
        assert_eq!(
            verify(&delivery, SECRET, &options),
            Err(VerifyError::MissingHeader { name: "webhook-id" })
        );
        let delivery = Delivery::new(b"{}")
            .with_header("webhook-signature", "v1,abc")
            .with_header("webhook-id", "msg")
            .with_header("webhook-timestamp", "  ");
        assert_eq!(
            verify(&delivery, SECRET, &options),
            Err(VerifyError::MissingHeader {
                name: "webhook-timestamp"
            })
        );
    }

    #[test]
    fn standard_takes_precedence_without_fallback_to_hex() {
        let options = VerifyOptions::new(NOW);
        let hex = sign_hex(SECRET, b"{}");
        let delivery = standard_delivery("v1,AAAA", "1614265330", b"{}")
            .with_header("x-nextpay-signature", &hex);
        assert!(matches!(
            verify(&delivery, SECRET, &options),
            Err(VerifyError::SignatureMismatch { .. })
        ));
    }

    #[test]
    fn hex_headers_are_tried_in_configured_order() {
        let options = VerifyOptions::new(NOW);
        let sig = sign_hex("any string works", b"payload");
        let delivery = Delivery::new(b"payload").with_header("X-Webhook-Signature", &sig);
        assert_eq!(
            verify(&delivery, "any string works", &options),
            Ok(VerifiedScheme::Hex {
                header: "x-webhook-signature".to_owned()
            })
        );

        let custom = VerifyOptions::new(NOW).with_hex_header_names(["x-acme-sig"]);
        let delivery = Delivery::new(b"payload").with_header("X-Acme-Sig", &sig);
        assert_eq!(
            verify(&delivery, "any string works", &custom),
            Ok(VerifiedScheme::Hex {
                header: "x-acme-sig".to_owned()
            })
        );
    }

    #[test]
    fn hex_can_be_disabled() {
        let options = VerifyOptions::new(NOW).with_accept_hex(false);
        let sig = sign_hex(SECRET, b"payload");
        let delivery = Delivery::new(b"payload").with_header("x-nextpay-signature", &sig);
        let err = verify(&delivery, SECRET, &options).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no webhook signature header found (looked for webhook-signature)"
        );
    }

    #[test]
    fn missing_signature_lists_what_was_looked_for() {
        let err = verify(&Delivery::new(b""), SECRET, &VerifyOptions::new(NOW)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no webhook signature header found (looked for webhook-signature, \
             x-nextpay-signature, x-webhook-signature)"
        );
    }
}
