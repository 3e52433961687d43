//! Webhook secrets: the `whsec_<base64>` format hookd generates, parsing it
//! back, and the two ways a secret is used as a key (the full string for the
//! hex scheme, the decoded bytes for Standard Webhooks).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Prefix of every secret hookd generates.
pub const SECRET_PREFIX: &str = "whsec_";

/// Minimum number of random bytes a generated secret should contain
/// (the Standard Webhooks spec recommends 24 to 64).
pub const MIN_SECRET_BYTES: usize = 24;

/// A webhook signing secret.
///
/// Holds the secret string exactly as given (used as the key of the hex
/// scheme) together with its base64-decoded key (used for Standard Webhooks).
/// `Debug` is redacted so the secret never ends up in logs.
#[derive(Clone)]
pub struct WebhookSecret {
    text: String,
    key: Vec<u8>,
}

impl WebhookSecret {
    /// Builds a `whsec_` secret from random bytes supplied by the caller
    /// (this crate reads no randomness itself).
    ///
    /// Callers should pass at least [`MIN_SECRET_BYTES`] bytes from a CSPRNG;
    /// [`WebhookSecret::parse`] rejects an empty key, so an empty slice
    /// produces a secret that does not round-trip.
    pub fn from_random_bytes(bytes: &[u8]) -> WebhookSecret {
        WebhookSecret {
            text: format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes)),
            key: bytes.to_vec(),
        }
    }

    /// Parses a secret.
    ///
    /// Accepts `whsec_<standard base64 with padding>`, and, like the
    /// Standard Webhooks reference libraries, a bare standard base64 string
    /// without the prefix. The string is kept exactly as given (no trimming):
    /// it is the hex-scheme key.
    ///
    /// # Errors
    ///
    /// [`SecretError`] if the part after `whsec_` (or the whole string,
    /// without the prefix) is not standard base64 with padding, or decodes
    /// to an empty key.
    pub fn parse(secret: &str) -> Result<WebhookSecret, SecretError> {
        let (encoded, prefixed) = match secret.strip_prefix(SECRET_PREFIX) {
            Some(rest) => (rest, true),
            None => (secret, false),
        };
        let key = STANDARD.decode(encoded).map_err(|err| {
            let detail = describe_base64_error(&err);
            if prefixed {
                SecretError::InvalidBase64 { detail }
            } else {
                SecretError::UnprefixedNotBase64 { detail }
            }
        })?;
        if key.is_empty() {
            return Err(SecretError::EmptyKey);
        }
        Ok(WebhookSecret {
            text: secret.to_owned(),
            key,
        })
    }

    /// The secret string exactly as generated or parsed. This is the key of
    /// the hex scheme (see [`crate::sign_hex`]).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The base64-decoded key after `whsec_`: the key of Standard Webhooks
    /// (see [`crate::sign_standard`]).
    pub fn standard_key(&self) -> &[u8] {
        &self.key
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

/// Why a string is not a usable webhook secret. Messages never include the
/// secret itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The part after `whsec_` is not standard base64 with padding.
    #[error("webhook secret is not valid standard base64 after the `whsec_` prefix: {detail}")]
    InvalidBase64 {
        /// What is wrong with the encoding (position, never content).
        detail: String,
    },
    /// No `whsec_` prefix, and the string is not standard base64 either.
    #[error(
        "webhook secret has no `whsec_` prefix and is not valid standard base64 either: {detail}"
    )]
    UnprefixedNotBase64 {
        /// What is wrong with the encoding (position, never content).
        detail: String,
    },
    /// The secret decodes to zero key bytes.
    #[error("webhook secret key is empty")]
    EmptyKey,
}

/// Describes a base64 error without echoing the offending (secret) byte.
fn describe_base64_error(err: &base64::DecodeError) -> String {
    match err {
        base64::DecodeError::InvalidByte(offset, _) => {
            format!("invalid character at position {offset}")
        }
        base64::DecodeError::InvalidLength(len) => {
            format!("length {len} is not a valid base64 length")
        }
        base64::DecodeError::InvalidLastSymbol(offset, _) => {
            format!("invalid final character at position {offset}")
        }
        base64::DecodeError::InvalidPadding => "missing or incorrect `=` padding".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn from_random_bytes_matches_python_encoding() {
        let bytes: Vec<u8> = (0u8..24).collect();
        let secret = WebhookSecret::from_random_bytes(&bytes);
        assert_eq!(secret.as_str(), "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYX");
        assert_eq!(secret.standard_key(), bytes.as_slice());

        let bytes: Vec<u8> = (0u8..25).collect();
        let secret = WebhookSecret::from_random_bytes(&bytes);
        assert_eq!(
            secret.as_str(),
            "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGA=="
        );
    }

    #[test]
    fn parse_round_trips_generated_secret() {
        let bytes: Vec<u8> = (100u8..140).collect();
        let generated = WebhookSecret::from_random_bytes(&bytes);
        let parsed = WebhookSecret::parse(generated.as_str()).unwrap();
        assert_eq!(parsed.as_str(), generated.as_str());
        assert_eq!(parsed.standard_key(), bytes.as_slice());
    }

    #[test]
    fn parse_accepts_unprefixed_base64_and_keeps_text_as_given() {
        let parsed = WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(parsed.as_str(), "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        assert_eq!(parsed.standard_key().len(), 24);
    }

    #[test]
    fn parse_rejects_malformed_base64() {
        assert!(matches!(
            WebhookSecret::parse("whsec_not*base64"),
            Err(SecretError::InvalidBase64 { .. })
        ));
        // Missing padding.
        assert!(matches!(
            WebhookSecret::parse("whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGA"),
            Err(SecretError::InvalidBase64 { .. })
        ));
        assert!(matches!(
            WebhookSecret::parse("plain-shared-secret"),
            Err(SecretError::UnprefixedNotBase64 { .. })
        ));
        // Surrounding whitespace is not silently trimmed.
        assert!(WebhookSecret::parse(" whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
    }

    #[test]
    fn parse_rejects_empty_key() {
        assert_eq!(
            WebhookSecret::parse("whsec_").unwrap_err(),
            SecretError::EmptyKey
        );
        assert_eq!(WebhookSecret::parse("").unwrap_err(), SecretError::EmptyKey);
    }

    #[test]
    fn errors_and_debug_do_not_leak_the_secret() {
        let err = WebhookSecret::parse("whsec_sup3r!secret").unwrap_err();
        let message = err.to_string();
        assert!(!message.contains("sup3r"), "{message}");
        assert!(!message.contains('!'), "{message}");

        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let debug = format!("{secret:?}");
        assert_eq!(debug, "WebhookSecret(<redacted>)");
    }
}
