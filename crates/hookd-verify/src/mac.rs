//! The single place an HMAC-SHA256 instance is built, so the hex scheme and
//! Standard Webhooks key it identically and no other code touches `hmac`
//! construction details.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// HMAC-SHA256 as used by both signature schemes.
pub(crate) type HmacSha256 = Hmac<Sha256>;

/// Length in bytes of an HMAC-SHA256 tag.
pub(crate) const TAG_LEN: usize = 32;

/// Returns an HMAC-SHA256 instance keyed with `key`.
pub(crate) fn hmac_sha256(key: &[u8]) -> HmacSha256 {
    // HMAC is defined for keys of every length (long keys are hashed, short
    // ones zero-padded), and `hmac` 0.12 never returns `InvalidLength` for
    // `Hmac<D>`. This is an invariant of the algorithm, not a property of the
    // input, so it cannot fail at runtime.
    <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC-SHA256 accepts keys of any length")
}
