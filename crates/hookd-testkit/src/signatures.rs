//! Signature checks written the way the seeds' sample receivers write them, with the
//! `hmac` crate directly: not hookd's code, so a shared mistake cannot hide.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

fn hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(e) => panic!("HMAC accepts any key length: {e}"),
    };
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// Seed 000's receiver: lowercase hex HMAC-SHA256 of the raw body, keyed with the secret
/// string as given.
pub fn expected_hex(secret: &str, body: &[u8]) -> String {
    hex::encode(hmac(secret.as_bytes(), body))
}

/// Standard Webhooks: `v1,` + base64 HMAC of `{id}.{timestamp}.{body}`, keyed with the
/// base64-decoded part of the secret after `whsec_`.
pub fn expected_standard(secret: &str, msg_id: &str, timestamp: &str, body: &[u8]) -> String {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    let key = match STANDARD.decode(encoded) {
        Ok(k) => k,
        Err(e) => panic!("secret `{secret}` is not whsec_<base64>: {e}"),
    };
    let mut message = format!("{msg_id}.{timestamp}.").into_bytes();
    message.extend_from_slice(body);
    format!("v1,{}", STANDARD.encode(hmac(&key, &message)))
}
