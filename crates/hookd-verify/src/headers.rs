//! Sender convenience: every signature header hookd attaches to one delivery,
//! computed here so that signing code lives only in this crate.

use crate::hex_scheme::sign_hex;
use crate::secret::WebhookSecret;
use crate::standard::{
    WEBHOOK_ID_HEADER, WEBHOOK_SIGNATURE_HEADER, WEBHOOK_TIMESTAMP_HEADER, sign_standard,
};

/// Builds the signature headers of an outgoing delivery.
#[derive(Debug, Clone, Copy)]
pub struct SignatureHeaders;

impl SignatureHeaders {
    /// Computes `(name, value)` header pairs, in this order:
    ///
    /// 1. the hex header (`hex_header_name`, lowercased), signed with the
    ///    current secret only;
    /// 2. `webhook-id` = `msg_id`;
    /// 3. `webhook-timestamp` = `timestamp`;
    /// 4. `webhook-signature`: one space-separated `v1,` entry per secret.
    ///
    /// `secrets[0]` is the current secret; the rest are old secrets still in
    /// their rotation grace period. With an empty `secrets` nothing can be
    /// signed and an empty list is returned.
    #[must_use]
    pub fn compute(
        secrets: &[&WebhookSecret],
        hex_header_name: &str,
        msg_id: &str,
        timestamp: i64,
        body: &[u8],
    ) -> Vec<(String, String)> {
        let Some(current) = secrets.first() else {
            return Vec::new();
        };
        let signatures = secrets
            .iter()
            .map(|secret| sign_standard(secret.standard_key(), msg_id, timestamp, body))
            .collect::<Vec<_>>()
            .join(" ");
        vec![
            (
                hex_header_name.to_ascii_lowercase(),
                sign_hex(current.as_str(), body),
            ),
            (WEBHOOK_ID_HEADER.to_owned(), msg_id.to_owned()),
            (WEBHOOK_TIMESTAMP_HEADER.to_owned(), timestamp.to_string()),
            (WEBHOOK_SIGNATURE_HEADER.to_owned(), signatures),
        ]
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn order_and_values() {
        let current = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let old =
            WebhookSecret::parse("whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
        let headers = SignatureHeaders::compute(
            &[&current, &old],
            "X-Nextpay-Signature",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        let expected = [
            (
                "x-nextpay-signature",
                "80ec8a89ce3cd22133a1066caecb4d04fea7467657c8514d717ec42c38a5c94c",
            ),
            ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
            ("webhook-timestamp", "1614265330"),
            (
                "webhook-signature",
                "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= \
                 v1,O4Gjv1HqPqsMrjmczoggs/sWA8gZD0VyHG+fLh4+ktI=",
            ),
        ];
        let actual: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        assert_eq!(actual, expected);
    }

    #[test]
    fn no_secrets_means_no_headers() {
        assert!(SignatureHeaders::compute(&[], "x-nextpay-signature", "m", 1, b"").is_empty());
    }
}
