//! Webhook signing secrets sealed at rest.
//!
//! With an encryption key, both backends keep a webhook's `secret` and `previous_secret`
//! as `enc:v1:<base64 of nonce ‖ ciphertext ‖ tag>`: XChaCha20-Poly1305 with a random
//! 24-byte nonce per value (large enough that random nonces never repeat in practice) and
//! the webhook's id as associated data, so a value copied into another webhook's row does
//! not open. Text without the prefix is a secret in clear (written without a key, or before
//! encryption was turned on); hookd's secrets start with `whsec_`, so the forms never mix.
//!
//! The stores seal on the way in and open on the way out, so everything above them sees
//! plaintext; at open they bring every stored secret to the form the keys ask for
//! (`SecretKeys::reseal`), which also proves the keys fit before any delivery is made.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};

use crate::StoreError;
use crate::model::{ClaimedDelivery, PreviousSecret, WebhookRecord};

/// Marks a sealed value and its format version.
const SEALED_PREFIX: &str = "enc:v1:";
const NONCE_LEN: usize = 24;
const KEY_LEN: usize = 32;

/// A 256-bit key for sealing webhook secrets. Its `Debug` shows nothing of it, and the
/// cipher state holding it is wiped when dropped.
pub struct EncryptionKey {
    cipher: XChaCha20Poly1305,
}

impl EncryptionKey {
    pub fn from_bytes(bytes: &[u8; KEY_LEN]) -> EncryptionKey {
        EncryptionKey {
            cipher: XChaCha20Poly1305::new(bytes.into()),
        }
    }

    /// 32 bytes written as 64 hex digits, or in base64 (standard or URL-safe alphabet,
    /// padded or not), such as `openssl rand -base64 32` prints. Surrounding whitespace is
    /// ignored. The error never repeats the text.
    pub fn parse(text: &str) -> Result<EncryptionKey, KeyFormatError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(KeyFormatError("it is empty".to_owned()));
        }
        let bytes = match hex::decode(text) {
            Ok(bytes) if text.len() == 2 * KEY_LEN => bytes,
            _ => [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
                .iter()
                .find_map(|engine| engine.decode(text).ok())
                .ok_or_else(|| {
                    KeyFormatError(format!(
                        "its {} characters are neither 64 hex digits nor base64",
                        text.chars().count()
                    ))
                })?,
        };
        let bytes: [u8; KEY_LEN] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| KeyFormatError(format!("it decodes to {} bytes, not 32", bytes.len())))?;
        Ok(EncryptionKey::from_bytes(&bytes))
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncryptionKey(…)")
    }
}

/// Why a text is not an encryption key (never the text itself).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "an encryption key is 32 random bytes written as 64 hex digits or in base64 \
     (`openssl rand -base64 32` makes one), but {0}"
)]
pub struct KeyFormatError(String);

/// Why a stored secret could not be opened. Messages name the webhook, never a secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SealingError {
    /// The database holds sealed secrets, and this store was given no key.
    #[error("webhook {webhook_id}'s signing secret is encrypted, and no encryption key was given")]
    NoKey { webhook_id: String },
    /// No key given opens it: it was sealed with another key, or copied from another
    /// webhook's row, or altered.
    #[error("the encryption keys given do not decrypt webhook {webhook_id}'s signing secret")]
    WrongKey { webhook_id: String },
    #[error("webhook {webhook_id}'s signing secret is marked encrypted but is malformed")]
    Malformed { webhook_id: String },
    #[error("cannot encrypt webhook {webhook_id}'s signing secret")]
    Encrypt { webhook_id: String },
    #[error("cannot draw a random nonce: {0}")]
    Random(String),
}

impl From<SealingError> for StoreError {
    fn from(e: SealingError) -> StoreError {
        StoreError::Sealing(e)
    }
}

/// The keys a store seals and opens webhook secrets with: none (secrets in clear; a sealed
/// one is an error), or a current key that seals and opens plus, during a key rotation,
/// the previous key, which only opens. Cheap to clone.
#[derive(Clone, Default)]
pub struct SecretKeys(Option<Arc<Keys>>);

struct Keys {
    current: EncryptionKey,
    previous: Option<EncryptionKey>,
}

/// Which key, if any, a stored value was sealed with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SealedWith {
    Nothing,
    Current,
    Previous,
}

impl SecretKeys {
    /// Secrets are kept in clear; a database holding sealed ones is refused at open.
    pub fn none() -> SecretKeys {
        SecretKeys(None)
    }

    /// Seal with `current`; open what `current` or `previous` sealed.
    pub fn new(current: EncryptionKey, previous: Option<EncryptionKey>) -> SecretKeys {
        SecretKeys(Some(Arc::new(Keys { current, previous })))
    }

    /// Whether new secrets are stored sealed.
    pub fn seals(&self) -> bool {
        self.0.is_some()
    }

    /// The form `secret` of webhook `webhook_id` is stored in.
    pub(crate) fn seal(&self, webhook_id: &str, secret: &str) -> Result<String, SealingError> {
        let Some(keys) = &self.0 else {
            return Ok(secret.to_owned());
        };
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| SealingError::Random(e.to_string()))?;
        let sealed = keys
            .current
            .cipher
            .encrypt(
                &nonce.into(),
                Payload {
                    msg: secret.as_bytes(),
                    aad: webhook_id.as_bytes(),
                },
            )
            // Only a message of gigabytes could fail.
            .map_err(|_| SealingError::Encrypt {
                webhook_id: webhook_id.to_owned(),
            })?;
        let mut bytes = Vec::with_capacity(NONCE_LEN + sealed.len());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&sealed);
        Ok(format!("{SEALED_PREFIX}{}", STANDARD.encode(bytes)))
    }

    /// The secret a stored value of webhook `webhook_id` holds.
    pub(crate) fn open(&self, webhook_id: &str, stored: &str) -> Result<String, SealingError> {
        self.open_telling(webhook_id, stored)
            .map(|(secret, _)| secret)
    }

    fn open_telling(
        &self,
        webhook_id: &str,
        stored: &str,
    ) -> Result<(String, SealedWith), SealingError> {
        let Some(encoded) = stored.strip_prefix(SEALED_PREFIX) else {
            return Ok((stored.to_owned(), SealedWith::Nothing));
        };
        let Some(keys) = &self.0 else {
            return Err(SealingError::NoKey {
                webhook_id: webhook_id.to_owned(),
            });
        };
        let malformed = || SealingError::Malformed {
            webhook_id: webhook_id.to_owned(),
        };
        let bytes = STANDARD.decode(encoded).map_err(|_| malformed())?;
        if bytes.len() < NONCE_LEN {
            return Err(malformed());
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| malformed())?;
        let attempt = |key: &EncryptionKey| {
            key.cipher
                .decrypt(
                    &nonce.into(),
                    Payload {
                        msg: sealed,
                        aad: webhook_id.as_bytes(),
                    },
                )
                .ok()
        };
        let (plain, with) = match attempt(&keys.current) {
            Some(plain) => (plain, SealedWith::Current),
            None => match keys.previous.as_ref().and_then(attempt) {
                Some(plain) => (plain, SealedWith::Previous),
                None => {
                    return Err(SealingError::WrongKey {
                        webhook_id: webhook_id.to_owned(),
                    });
                }
            },
        };
        let secret = String::from_utf8(plain).map_err(|_| malformed())?;
        Ok((secret, with))
    }

    /// The value to store instead of `stored` so that it is sealed with the current key
    /// (or left in clear when there is no key), or `None` if it already is. Fails if it
    /// cannot be opened.
    pub(crate) fn reseal(
        &self,
        webhook_id: &str,
        stored: &str,
    ) -> Result<Option<String>, SealingError> {
        let (secret, with) = self.open_telling(webhook_id, stored)?;
        match (with, self.seals()) {
            (SealedWith::Current, _) | (SealedWith::Nothing, false) => Ok(None),
            _ => self.seal(webhook_id, &secret).map(Some),
        }
    }

    /// A webhook as read from its row, with its secret opened.
    pub(crate) fn open_webhook(
        &self,
        mut webhook: WebhookRecord,
    ) -> Result<WebhookRecord, SealingError> {
        if webhook.secret.starts_with(SEALED_PREFIX) {
            webhook.secret = self.open(&webhook.id, &webhook.secret)?;
        }
        Ok(webhook)
    }

    /// A webhook's current and previous secret, opened.
    pub(crate) fn open_pair(
        &self,
        webhook_id: &str,
        secret: &str,
        previous: Option<&PreviousSecret>,
    ) -> Result<OpenedSecrets, SealingError> {
        let secret = self.open(webhook_id, secret)?;
        let previous = previous
            .map(|p| {
                Ok::<_, SealingError>(PreviousSecret {
                    secret: self.open(webhook_id, &p.secret)?,
                    valid_until_ms: p.valid_until_ms,
                })
            })
            .transpose()?;
        Ok((secret, previous))
    }

    /// [`SecretKeys::open_pair`] for handing deliveries off at publish: `None`, logged, if
    /// the secrets do not open. Those deliveries are then stored unleased, and claims skip
    /// them too (see [`SecretKeys::open_claimed`]): a secret that cannot be opened holds
    /// up its own webhook, never a publish or other webhooks.
    pub(crate) fn open_for_handoff(
        &self,
        webhook_id: &str,
        secret: &str,
        previous: Option<&PreviousSecret>,
    ) -> Option<OpenedSecrets> {
        self.open_pair(webhook_id, secret, previous)
            .map_err(|e| tracing::error!("not handing off a delivery: {e}"))
            .ok()
    }

    /// Claimed deliveries as read from their rows, with their secrets opened: each
    /// webhook's once per batch. A delivery whose secrets do not open is left out, with an
    /// error logged: it stays leased, becomes due again when the lease ends, and is
    /// skipped again until a restart with the right keys (which the start-up pass
    /// demands) — the other webhooks' deliveries go on.
    pub(crate) fn open_claimed(&self, claimed: Vec<ClaimedDelivery>) -> Vec<ClaimedDelivery> {
        let mut opened: HashMap<(i64, String), Option<String>> = HashMap::new();
        let mut open = |webhook_key: i64, webhook_id: &str, value: &mut String| -> bool {
            if !value.starts_with(SEALED_PREFIX) {
                return true;
            }
            let memo = (webhook_key, std::mem::take(value));
            let secret = match opened.get(&memo) {
                Some(secret) => secret.clone(),
                None => {
                    let secret = self
                        .open(webhook_id, &memo.1)
                        .map_err(|e| tracing::error!("not attempting a claimed delivery: {e}"))
                        .ok();
                    opened.insert(memo, secret.clone());
                    secret
                }
            };
            match secret {
                Some(secret) => {
                    *value = secret;
                    true
                }
                None => false,
            }
        };
        claimed
            .into_iter()
            .filter_map(|mut delivery| {
                let (key, id) = (delivery.webhook_key, delivery.webhook_id.clone());
                let current = open(key, &id, &mut delivery.secret);
                let previous = match &mut delivery.previous_secret {
                    Some(previous) => open(key, &id, &mut previous.secret),
                    None => true,
                };
                (current && previous).then_some(delivery)
            })
            .collect()
    }
}

/// A webhook's current secret and, during a rotation, its previous one, in clear.
pub(crate) type OpenedSecrets = (String, Option<PreviousSecret>);

impl fmt::Debug for SecretKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            None => f.write_str("SecretKeys(none)"),
            Some(keys) => write!(
                f,
                "SecretKeys(current, {} previous)",
                if keys.previous.is_some() {
                    "with"
                } else {
                    "no"
                }
            ),
        }
    }
}

/// One webhook's stored secrets, as the start-up pass reads them.
pub(crate) struct StoredSecrets {
    pub(crate) key: i64,
    pub(crate) webhook_id: String,
    pub(crate) secret: String,
    pub(crate) previous_secret: Option<String>,
}

/// A stored value to replace: `(old, new)`; the update applies only while the row still
/// holds `old`, so a concurrent rotation is never overwritten.
pub(crate) type Replacement = (String, String);

/// What the start-up pass changes in one row.
pub(crate) struct Resealed {
    pub(crate) key: i64,
    pub(crate) secret: Option<Replacement>,
    pub(crate) previous_secret: Option<Replacement>,
}

impl SecretKeys {
    /// The rows of `batch` whose values are not yet in the form the keys ask for, with
    /// their new values. Fails on the first value that cannot be opened, so a missing or
    /// wrong key is found at open, before any delivery.
    pub(crate) fn reseal_rows(
        &self,
        batch: Vec<StoredSecrets>,
    ) -> Result<Vec<Resealed>, SealingError> {
        let mut changed = Vec::new();
        for row in batch {
            let secret = self
                .reseal(&row.webhook_id, &row.secret)?
                .map(|new| (row.secret, new));
            let previous_secret = match row.previous_secret {
                Some(old) => self.reseal(&row.webhook_id, &old)?.map(|new| (old, new)),
                None => None,
            };
            if secret.is_some() || previous_secret.is_some() {
                changed.push(Resealed {
                    key: row.key,
                    secret,
                    previous_secret,
                });
            }
        }
        Ok(changed)
    }
}

/// Rows the start-up pass reads and rewrites per transaction.
pub(crate) const RESEAL_BATCH: usize = 500;

/// Logs what a start-up pass did (a count only). Without a key nothing is ever rewritten.
pub(crate) fn log_resealed(webhooks: usize) {
    if webhooks > 0 {
        tracing::info!(
            webhooks,
            "encrypted webhook signing secrets with the current encryption key"
        );
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn key(byte: u8) -> EncryptionKey {
        EncryptionKey::from_bytes(&[byte; KEY_LEN])
    }

    #[test]
    fn keys_parse_from_hex_and_base64_and_never_echo_the_text() {
        let bytes: Vec<u8> = (0..32).collect();
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let forms = [
            hex.clone(),
            hex.to_uppercase(),
            STANDARD.encode(&bytes),
            URL_SAFE_NO_PAD.encode(&bytes),
            format!("  {}\n", STANDARD.encode(&bytes)),
        ];
        let keys: Vec<SecretKeys> = forms
            .iter()
            .map(|f| SecretKeys::new(EncryptionKey::parse(f).unwrap(), None))
            .collect();
        // Every form is the same key: what one seals, the others open.
        let sealed = keys[0].seal("wh_1", "whsec_abc").unwrap();
        for k in &keys {
            assert_eq!(k.open("wh_1", &sealed).unwrap(), "whsec_abc");
        }

        for bad in [
            "",
            "short",
            &STANDARD.encode([1u8; 16]),
            &hex[..62],
            "zz".repeat(32).as_str(),
        ] {
            let error = EncryptionKey::parse(bad).unwrap_err().to_string();
            assert!(
                error.starts_with("an encryption key is 32 random bytes"),
                "{error}"
            );
            if !bad.is_empty() {
                assert!(!error.contains(bad), "{error}");
            }
        }
        assert_eq!(format!("{:?}", key(1)), "EncryptionKey(…)");
    }

    #[test]
    fn sealed_values_open_only_for_their_webhook_and_key() {
        let keys = SecretKeys::new(key(1), None);
        let sealed = keys.seal("wh_1", "whsec_abc").unwrap();
        assert!(sealed.starts_with("enc:v1:"));
        assert!(!sealed.contains("whsec_abc"));
        // A fresh nonce each time.
        assert_ne!(sealed, keys.seal("wh_1", "whsec_abc").unwrap());
        assert_eq!(keys.open("wh_1", &sealed).unwrap(), "whsec_abc");

        assert_eq!(
            keys.open("wh_2", &sealed),
            Err(SealingError::WrongKey {
                webhook_id: "wh_2".to_owned()
            })
        );
        assert!(matches!(
            SecretKeys::new(key(2), None).open("wh_1", &sealed),
            Err(SealingError::WrongKey { .. })
        ));
        assert!(matches!(
            SecretKeys::none().open("wh_1", &sealed),
            Err(SealingError::NoKey { .. })
        ));
        let mut altered = sealed.clone();
        altered.pop();
        altered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(keys.open("wh_1", &altered).is_err());
        for malformed in ["enc:v1:", "enc:v1:!!!", "enc:v1:AAAA"] {
            assert!(
                matches!(
                    keys.open("wh_1", malformed),
                    Err(SealingError::Malformed { .. })
                ),
                "{malformed}"
            );
        }
        // Clear text stays as it is, with or without keys.
        assert_eq!(keys.open("wh_1", "whsec_clear").unwrap(), "whsec_clear");
        assert_eq!(
            SecretKeys::none().seal("wh_1", "whsec_clear").unwrap(),
            "whsec_clear"
        );
    }

    #[test]
    fn resealing_moves_values_to_the_current_key() {
        let old = SecretKeys::new(key(1), None);
        let rotating = SecretKeys::new(key(2), Some(key(1)));
        let sealed_old = old.seal("wh_1", "whsec_abc").unwrap();

        let moved = rotating.reseal("wh_1", &sealed_old).unwrap().unwrap();
        assert_eq!(
            SecretKeys::new(key(2), None).open("wh_1", &moved).unwrap(),
            "whsec_abc"
        );
        assert_eq!(rotating.reseal("wh_1", &moved).unwrap(), None);

        let sealed = old.reseal("wh_1", "whsec_clear").unwrap().unwrap();
        assert_eq!(old.open("wh_1", &sealed).unwrap(), "whsec_clear");
        assert_eq!(
            SecretKeys::none().reseal("wh_1", "whsec_clear").unwrap(),
            None
        );
        assert!(SecretKeys::none().reseal("wh_1", &sealed).is_err());
    }
}
