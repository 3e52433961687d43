//! The headers that sign a delivery. The HMAC code itself lives in `hookd-verify`, the
//! library receivers use, so what hookd sends and what receivers check cannot drift.

use hookd_verify::{SecretError, SignatureHeaders, WebhookSecret};

/// Bytes of randomness in a generated webhook secret (192 bits).
pub const SECRET_RANDOM_BYTES: usize = 24;

/// Builds a `whsec_…` secret from random bytes the caller drew.
pub fn new_webhook_secret(random: &[u8; SECRET_RANDOM_BYTES]) -> String {
    WebhookSecret::from_random_bytes(random).as_str().to_owned()
}

/// The hex signature header (signed with the current secret, `secrets[0]`) and the
/// Standard Webhooks headers (one signature per secret, so receivers still holding an
/// older secret keep verifying during a rotation).
pub fn signature_headers(
    secrets: &[&str],
    hex_header: &str,
    event_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<Vec<(String, String)>, SecretError> {
    let parsed = secrets
        .iter()
        .map(|s| WebhookSecret::parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    let refs: Vec<&WebhookSecret> = parsed.iter().collect();
    Ok(SignatureHeaders::compute(
        &refs, hex_header, event_id, timestamp, body,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_carry_both_schemes() {
        let secret = new_webhook_secret(&[7; SECRET_RANDOM_BYTES]);
        assert!(secret.starts_with("whsec_"));
        let headers = signature_headers(
            &[&secret],
            "x-nextpay-signature",
            "evt_1",
            1_700_000_000,
            b"{}",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "x-nextpay-signature",
                "webhook-id",
                "webhook-timestamp",
                "webhook-signature"
            ]
        );
        assert_eq!(headers[0].1, hookd_verify::sign_hex(&secret, b"{}"));
        assert_eq!(headers[1].1, "evt_1");
        assert!(headers[3].1.starts_with("v1,"));
    }
}
