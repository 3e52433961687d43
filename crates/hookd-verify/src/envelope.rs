//! The bodies hookd delivers, as types to deserialize into once the signature has been
//! checked over the raw bytes. A webhook's `format` picks one:
//!
//! * `typed` (the default): `{"id":"evt_…","created":1705312200,"type":"…","data":{…}}`
//! * `event`: `{"event":"payment.completed","data":{…}}` (the event id is in the
//!   `webhook-id` header only)
//!
//! `data` is generic: a struct of the receiver's own for one event type, or
//! [`serde_json::Value`] (the default) for any. Fields hookd may add later are ignored.

use serde::{Deserialize, Serialize};

/// The `typed` envelope: `{"id","created","type","data"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypedEnvelope<T = serde_json::Value> {
    /// The event id (`evt_…`), the same as the `webhook-id` header.
    pub id: String,
    /// When the event happened, unix seconds.
    pub created: i64,
    /// The event type, e.g. `payout_request.completed`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The event's data.
    pub data: T,
}

/// The `event` envelope: `{"event","data"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventEnvelope<T = serde_json::Value> {
    /// The event type, e.g. `payment.completed`.
    pub event: String,
    /// The event's data.
    pub data: T,
}

/// Either envelope, for a receiver that takes both formats.
///
/// ```
/// use hookd_verify::Envelope;
///
/// let typed: Envelope = serde_json::from_slice(
///     br#"{"id":"evt_1","created":1705312200,"type":"payment_intent.paid","data":{"amount":100}}"#,
/// )?;
/// assert_eq!(typed.event_type(), "payment_intent.paid");
/// assert_eq!(typed.event_id(), Some("evt_1"));
///
/// let event: Envelope = serde_json::from_slice(br#"{"event":"payment.completed","data":{}}"#)?;
/// assert_eq!(event.event_type(), "payment.completed");
/// assert_eq!(event.event_id(), None); // read `webhook-id` instead
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Envelope<T = serde_json::Value> {
    /// `{"id","created","type","data"}`
    Typed(TypedEnvelope<T>),
    /// `{"event","data"}`
    Event(EventEnvelope<T>),
}

impl<T> Envelope<T> {
    /// The event type.
    pub fn event_type(&self) -> &str {
        match self {
            Envelope::Typed(envelope) => &envelope.event_type,
            Envelope::Event(envelope) => &envelope.event,
        }
    }

    /// The event id, which only the `typed` envelope carries (every delivery has it in
    /// `webhook-id`).
    pub fn event_id(&self) -> Option<&str> {
        match self {
            Envelope::Typed(envelope) => Some(&envelope.id),
            Envelope::Event(_) => None,
        }
    }

    /// The event's data.
    pub fn data(&self) -> &T {
        match self {
            Envelope::Typed(envelope) => &envelope.data,
            Envelope::Event(envelope) => &envelope.data,
        }
    }

    /// The event's data, by value.
    pub fn into_data(self) -> T {
        match self {
            Envelope::Typed(envelope) => envelope.data,
            Envelope::Event(envelope) => envelope.data,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[derive(Debug, PartialEq, Eq, Deserialize)]
    struct Payout {
        id: String,
        amount: u64,
        currency: String,
    }

    // The body of the seeds' `payout_request.completed` example, as hookd sends it.
    const TYPED: &str = r#"{"id":"evt_01m822p1gcz71t5e4t5cz89g9j","created":1795366258,"type":"payout_request.completed","data":{"id":"pr_xyz789","amount":10000,"currency":"PHP","status":"completed","account_id":"acc_456","processed_at":"2024-01-15T10:30:00Z"}}"#;

    #[test]
    fn typed_into_a_receivers_own_struct() {
        let envelope: TypedEnvelope<Payout> = serde_json::from_str(TYPED).unwrap();
        assert_eq!(envelope.id, "evt_01m822p1gcz71t5e4t5cz89g9j");
        assert_eq!(envelope.created, 1_795_366_258);
        assert_eq!(envelope.event_type, "payout_request.completed");
        assert_eq!(
            envelope.data,
            Payout {
                id: "pr_xyz789".to_owned(),
                amount: 10_000,
                currency: "PHP".to_owned()
            }
        );
    }

    #[test]
    fn event_format_and_either() {
        let body = r#"{"event":"payment.completed","data":{"uuid":"u-1","reference":"order-9","amount":12.5}}"#;
        let envelope: EventEnvelope = serde_json::from_str(body).unwrap();
        assert_eq!(envelope.event, "payment.completed");
        assert_eq!(envelope.data["reference"], "order-9");

        let either: Envelope = serde_json::from_str(body).unwrap();
        assert!(matches!(either, Envelope::Event(_)));
        assert_eq!(either.data()["uuid"], "u-1");
        let either: Envelope = serde_json::from_str(TYPED).unwrap();
        assert_eq!(either.event_id(), Some("evt_01m822p1gcz71t5e4t5cz89g9j"));
        assert_eq!(either.into_data()["amount"], 10_000);
    }

    #[test]
    fn added_fields_are_ignored_and_missing_ones_are_errors() {
        let envelope: TypedEnvelope =
            serde_json::from_str(r#"{"id":"e","created":1,"type":"t","data":{},"livemode":true}"#)
                .unwrap();
        assert_eq!(envelope.id, "e");
        let err = serde_json::from_str::<TypedEnvelope>(r#"{"id":"e","type":"t","data":{}}"#)
            .unwrap_err();
        assert!(err.to_string().contains("missing field `created`"), "{err}");
        assert!(serde_json::from_str::<Envelope>(r#"{"data":{}}"#).is_err());
    }
}
