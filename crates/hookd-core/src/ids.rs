//! Public identifiers: a type prefix and a ULID, so ids sort by creation time.
//!
//! The caller supplies the time and the random bits; this module only formats and checks.

use ulid::Ulid;

/// The kinds of object that carry a public id, with their prefixes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdKind {
    Client,
    Webhook,
    Event,
    Attempt,
    /// A bulk replay job (`POST /v2/webhooks/{id}/replay`).
    Replay,
}

impl IdKind {
    pub fn prefix(self) -> &'static str {
        match self {
            IdKind::Client => "cl_",
            IdKind::Webhook => "wh_",
            IdKind::Event => "evt_",
            IdKind::Attempt => "att_",
            IdKind::Replay => "rpl_",
        }
    }
}

/// Builds a new id of `kind` from a time in unix milliseconds and 80 random bits.
pub fn new_id(kind: IdKind, unix_ms: u64, random: u128) -> String {
    // Encoded into a buffer and lowercased in place: one allocation per id (this runs
    // for every event and every attempt; going through `format!` showed in profiles).
    let mut encoded = [0u8; ulid::ULID_LEN];
    let ulid = Ulid::from_parts(unix_ms, random).array_to_str(&mut encoded);
    ulid.make_ascii_lowercase();
    let prefix = kind.prefix();
    let mut id = String::with_capacity(prefix.len() + ulid::ULID_LEN);
    id.push_str(prefix);
    id.push_str(ulid);
    id
}

/// Largest accepted length of a client-chosen event id or idempotency key.
pub const MAX_CLIENT_KEY_LEN: usize = 255;

/// Checks a client-chosen event id or idempotency key: 1–255 printable ASCII characters
/// without spaces, so it is safe in a header (`webhook-id`) and in logs.
pub fn check_client_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > MAX_CLIENT_KEY_LEN {
        return Err(format!("must be 1 to {MAX_CLIENT_KEY_LEN} characters long"));
    }
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must contain only printable ASCII characters, without spaces".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_prefix_and_sort_by_time() {
        let a = new_id(IdKind::Event, 1_000, 7);
        let b = new_id(IdKind::Event, 2_000, 1);
        assert!(a.starts_with("evt_"));
        assert_eq!(a.len(), 4 + 26);
        assert!(a < b);
        // The ULID's Crockford base32, lowercased.
        let ulid = Ulid::from_parts(1_000, 7).to_string().to_ascii_lowercase();
        assert_eq!(a, format!("evt_{ulid}"));
        assert!(!a.bytes().any(|c| c.is_ascii_uppercase()));
    }

    #[test]
    fn client_keys_are_checked() {
        assert!(check_client_key("evt_abc123").is_ok());
        assert!(check_client_key("").is_err());
        assert!(check_client_key("has space").is_err());
        assert!(check_client_key("é").is_err());
        assert!(check_client_key(&"a".repeat(256)).is_err());
    }
}
