//! The hex ("nextpay") scheme: one header holding the lowercase hex
//! HMAC-SHA256 of the exact body bytes, keyed with the secret string as
//! given (including any `whsec_` prefix). It has no timestamp, so it offers
//! no replay protection; Standard Webhooks does.

use hmac::Mac;

use crate::error::VerifyError;
use crate::mac::{TAG_LEN, hmac_sha256};

/// Default header name of the hex scheme.
pub const NEXTPAY_SIGNATURE_HEADER: &str = "x-nextpay-signature";

/// Hex-scheme header name used by the other supported provider.
pub const X_WEBHOOK_SIGNATURE_HEADER: &str = "x-webhook-signature";

/// Lowercase hex HMAC-SHA256 of `body`, keyed with the UTF-8 bytes of
/// `secret` exactly as given (the full string, `whsec_` included).
#[must_use]
pub fn sign_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = hmac_sha256(secret.as_bytes());
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Checks a hex-scheme header value in constant time. Upper- and lowercase
/// hex are both accepted.
pub(crate) fn verify_hex(
    secret: &str,
    body: &[u8],
    header: &str,
    value: &str,
) -> Result<(), VerifyError> {
    let value = value.trim();
    let malformed = || VerifyError::MalformedHexSignature {
        header: header.to_owned(),
    };
    if value.len() != TAG_LEN * 2 {
        return Err(malformed());
    }
    let claimed = hex::decode(value).map_err(|_| malformed())?;
    let mut mac = hmac_sha256(secret.as_bytes());
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&claimed)
        .map_err(|_| VerifyError::SignatureMismatch {
            header: header.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    // Vectors computed with Python's `hmac`/`hashlib`.
    #[test]
    fn known_answers() {
        assert_eq!(
            sign_hex(
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                br#"{"test": 2432232314}"#
            ),
            "80ec8a89ce3cd22133a1066caecb4d04fea7467657c8514d717ec42c38a5c94c"
        );
        assert_eq!(
            sign_hex("plain-shared-secret", b"hello"),
            "79ec8eadeb3ae211d6dc89116baeaa33293f508724b849208f7498000c121966"
        );
        // A key longer than the SHA-256 block size is hashed first.
        assert_eq!(
            sign_hex(&"x".repeat(100), b""),
            "f27e9d033f8afb8db9abbb1cee40470512ffbe9e76153cc2481ec7e812869b6f"
        );
    }

    #[test]
    fn verify_accepts_either_case_and_rejects_tampering() {
        let sig = sign_hex("s3cret", b"body");
        verify_hex("s3cret", b"body", "x-h", &sig).unwrap();
        verify_hex("s3cret", b"body", "x-h", &sig.to_uppercase()).unwrap();
        assert_eq!(
            verify_hex("s3cret", b"bodY", "x-h", &sig),
            Err(VerifyError::SignatureMismatch {
                header: "x-h".to_owned()
            })
        );
        assert_eq!(
            verify_hex("other", b"body", "x-h", &sig),
            Err(VerifyError::SignatureMismatch {
                header: "x-h".to_owned()
            })
        );
    }

    #[test]
    fn verify_reports_malformed_values() {
        for bad in ["", "abc", &"zz".repeat(32), &"ab".repeat(33)] {
            assert_eq!(
                verify_hex("s", b"b", "x-h", bad),
                Err(VerifyError::MalformedHexSignature {
                    header: "x-h".to_owned()
                }),
                "{bad:?}"
            );
        }
    }
}
