//! Event types, the catalogue, and the filters webhooks subscribe with.
//!
//! A webhook's `events` list holds filters: an exact type, `*` (everything) or a prefix
//! wildcard such as `payout_request.*`. Filters are checked against the catalogue when a
//! webhook is registered, so a typo is refused instead of silently matching nothing.
//!
//! hookd's own *operational* events (`webhook.disabled`) are not the client's business
//! events: only a filter that names them (`webhook.disabled`, `webhook.*`) matches them,
//! never `*`, so a receiver of business events never gets one it did not ask for. Clients
//! cannot publish them or add types under `webhook.`.

use std::fmt;

/// The event types the seeds' providers publish; every client starts with these.
pub const BUILTIN_EVENT_TYPES: &[(&str, &str)] = &[
    ("payout_request.initiated", "Payout request created"),
    ("payout_request.pending", "Payout queued for processing"),
    (
        "payout_request.processing",
        "Payout being processed by provider",
    ),
    ("payout_request.completed", "Payout successfully delivered"),
    ("payout_request.failed", "Payout failed"),
    ("payout_request.cancelled", "Payout cancelled"),
    ("payout_request.reversed", "Completed payout reversed"),
    ("payment_intent.created", "Payment intent created"),
    ("payment_intent.paid", "Payment successfully received"),
    ("payment_intent.expired", "Payment intent expired"),
    ("payment_intent.cancelled", "Payment intent cancelled"),
    ("payment.completed", "Payment completed"),
    ("payment.expired", "Payment expired"),
    ("channel.payment.confirmed", "Channel deposit confirmed"),
];

/// Sent to a client's other webhooks when one of its webhooks is disabled.
pub const WEBHOOK_DISABLED: &str = "webhook.disabled";

/// hookd's own event types, which only filters naming them match.
pub const OPERATIONAL_EVENT_TYPES: &[(&str, &str)] = &[(
    WEBHOOK_DISABLED,
    "A webhook was disabled: it answered 410 Gone, or every attempt failed for too long",
)];

/// Types under this prefix are hookd's own.
const OPERATIONAL_PREFIX: &str = "webhook.";

/// Whether `event_type` is one of hookd's own (reserved) types.
pub fn is_operational(event_type: &str) -> bool {
    event_type.starts_with(OPERATIONAL_PREFIX)
}

/// Largest accepted length of an event type name.
pub const MAX_EVENT_TYPE_LEN: usize = 128;

/// A well-formed event type name: dot-separated segments of `[a-z0-9_-]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventType(String);

impl EventType {
    pub fn parse(name: &str) -> Result<EventType, EventTypeError> {
        if name.is_empty() || name.len() > MAX_EVENT_TYPE_LEN {
            return Err(EventTypeError::Malformed(name.to_owned()));
        }
        let segment_ok = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        };
        if !name.split('.').all(segment_ok) {
            return Err(EventTypeError::Malformed(name.to_owned()));
        }
        Ok(EventType(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One entry of a webhook's `events` list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventFilter {
    /// `*`: every event type except hookd's operational ones.
    All,
    /// `prefix.*`: every type starting with `prefix.` (the stored prefix includes the dot).
    Prefix(String),
    /// One exact type.
    Exact(EventType),
}

impl EventFilter {
    /// Parses a filter and checks that it can match something in `catalogue`.
    pub fn parse<'a>(
        text: &str,
        catalogue: impl IntoIterator<Item = &'a str> + Clone,
    ) -> Result<EventFilter, EventTypeError> {
        let filter = if text == "*" {
            EventFilter::All
        } else if let Some(prefix) = text.strip_suffix(".*") {
            EventType::parse(prefix).map_err(|_| EventTypeError::Malformed(text.to_owned()))?;
            EventFilter::Prefix(format!("{prefix}."))
        } else {
            EventFilter::Exact(EventType::parse(text)?)
        };
        if !catalogue.into_iter().any(|t| filter.matches(t)) {
            return Err(EventTypeError::Unknown(text.to_owned()));
        }
        Ok(filter)
    }

    /// Reads back a filter stored after [`EventFilter::parse`] accepted it; the catalogue
    /// is not consulted again, since a type may have been removed since.
    pub fn from_stored(text: &str) -> EventFilter {
        if text == "*" {
            EventFilter::All
        } else if let Some(prefix) = text.strip_suffix(".*") {
            EventFilter::Prefix(format!("{prefix}."))
        } else {
            EventFilter::Exact(EventType(text.to_owned()))
        }
    }

    pub fn matches(&self, event_type: &str) -> bool {
        match self {
            EventFilter::All => !is_operational(event_type),
            EventFilter::Prefix(prefix) => event_type.starts_with(prefix.as_str()),
            EventFilter::Exact(t) => t.as_str() == event_type,
        }
    }
}

impl fmt::Display for EventFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventFilter::All => f.write_str("*"),
            EventFilter::Prefix(p) => write!(f, "{p}*"),
            EventFilter::Exact(t) => f.write_str(t.as_str()),
        }
    }
}

/// True when any of `filters` matches `event_type`.
pub fn any_matches(filters: &[EventFilter], event_type: &str) -> bool {
    filters.iter().any(|f| f.matches(event_type))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventTypeError {
    #[error(
        "`{0}` is not a valid event type: use dot-separated segments of lowercase letters, digits, `_` or `-` (at most 128 characters)"
    )]
    Malformed(String),
    #[error("`{0}` is not in the event type catalogue")]
    Unknown(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builtin() -> impl Iterator<Item = &'static str> + Clone {
        BUILTIN_EVENT_TYPES.iter().map(|(name, _)| *name)
    }

    #[test]
    fn filters_match_as_documented() {
        // (filter, event type, expected match)
        let cases = [
            ("*", "payout_request.completed", true),
            ("payout_request.*", "payout_request.completed", true),
            ("payout_request.*", "payment_intent.paid", false),
            ("payment.*", "payment_intent.paid", false),
            ("payment.*", "payment.completed", true),
            ("channel.*", "channel.payment.confirmed", true),
            ("payment_intent.paid", "payment_intent.paid", true),
            ("payment_intent.paid", "payment_intent.paid2", false),
            ("*", "webhook.disabled", false),
            ("webhook.*", "webhook.disabled", true),
            ("webhook.disabled", "webhook.disabled", true),
        ];
        for (filter, event_type, expected) in cases {
            let catalogue = builtin().chain(OPERATIONAL_EVENT_TYPES.iter().map(|(n, _)| *n));
            let parsed = EventFilter::parse(filter, catalogue).unwrap_or(EventFilter::All);
            assert_eq!(parsed.to_string(), filter);
            assert_eq!(
                parsed.matches(event_type),
                expected,
                "{filter} vs {event_type}"
            );
        }
    }

    #[test]
    fn filters_outside_the_catalogue_are_refused() {
        for bad in ["payout_request.done", "foo.*", "nope"] {
            assert_eq!(
                EventFilter::parse(bad, builtin()),
                Err(EventTypeError::Unknown(bad.to_owned()))
            );
        }
        for malformed in ["", "Payout.Completed", "a..b", ".*", "a b", "*.*"] {
            assert!(matches!(
                EventFilter::parse(malformed, builtin()),
                Err(EventTypeError::Malformed(_))
            ));
        }
    }

    #[test]
    fn builtin_types_are_well_formed() {
        for (name, _) in BUILTIN_EVENT_TYPES.iter().chain(OPERATIONAL_EVENT_TYPES) {
            assert!(EventType::parse(name).is_ok(), "{name}");
        }
    }
}
