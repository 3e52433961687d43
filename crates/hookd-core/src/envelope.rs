//! The exact bytes a receiver gets: the envelope around an event's data.
//!
//! The body is compact JSON with keys in a fixed order and `data` already in canonical
//! form (see [`crate::json`]), so `JSON.stringify(JSON.parse(body))` in JavaScript gives
//! back the same bytes and a receiver that signs its re-serialization still verifies.

use std::fmt;
use std::str::FromStr;

use crate::json::CanonicalJson;

/// The envelope shape of a webhook, chosen per webhook.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum EnvelopeFormat {
    /// `{"id","created","type","data"}`: the NextPay shape.
    #[default]
    Typed,
    /// `{"event","data"}`: the WickiePay shape.
    Event,
}

impl EnvelopeFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            EnvelopeFormat::Typed => "typed",
            EnvelopeFormat::Event => "event",
        }
    }

    /// The signature header a webhook of this format uses unless it names another.
    pub fn default_signature_header(self) -> &'static str {
        match self {
            EnvelopeFormat::Typed => "x-nextpay-signature",
            EnvelopeFormat::Event => "X-Webhook-Signature",
        }
    }
}

impl FromStr for EnvelopeFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<EnvelopeFormat, String> {
        match s {
            "typed" => Ok(EnvelopeFormat::Typed),
            "event" => Ok(EnvelopeFormat::Event),
            other => Err(format!("unknown format `{other}`: use `typed` or `event`")),
        }
    }
}

impl fmt::Display for EnvelopeFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The fields of an event that go on the wire.
#[derive(Clone, Copy, Debug)]
pub struct Envelope<'a> {
    pub event_id: &'a str,
    /// Unix seconds.
    pub created: i64,
    pub event_type: &'a str,
    pub data: &'a CanonicalJson,
}

impl Envelope<'_> {
    /// Renders the body in `format`.
    pub fn body(&self, format: EnvelopeFormat) -> String {
        let data = self.data.as_str();
        let event_type = json_string(self.event_type);
        match format {
            EnvelopeFormat::Typed => {
                let id = json_string(self.event_id);
                format!(
                    r#"{{"id":{id},"created":{},"type":{event_type},"data":{data}}}"#,
                    self.created
                )
            }
            EnvelopeFormat::Event => format!(r#"{{"event":{event_type},"data":{data}}}"#),
        }
    }
}

/// A JSON string literal; for the printable ASCII our ids and types are made of, this is
/// byte-identical to JavaScript's `JSON.stringify`.
fn json_string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::JsonLimits;

    fn data(text: &str) -> CanonicalJson {
        CanonicalJson::parse(text, JsonLimits::default()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn typed_envelope_matches_the_seed_example() {
        let d = data(
            r#"{"id":"pr_xyz789","amount":10000,"currency":"PHP","status":"completed","account_id":"acc_456","processed_at":"2024-01-15T10:30:00Z"}"#,
        );
        let envelope = Envelope {
            event_id: "evt_abc123",
            created: 1705312200,
            event_type: "payout_request.completed",
            data: &d,
        };
        assert_eq!(
            envelope.body(EnvelopeFormat::Typed),
            r#"{"id":"evt_abc123","created":1705312200,"type":"payout_request.completed","data":{"id":"pr_xyz789","amount":10000,"currency":"PHP","status":"completed","account_id":"acc_456","processed_at":"2024-01-15T10:30:00Z"}}"#
        );
        assert_eq!(
            envelope.body(EnvelopeFormat::Event),
            r#"{"event":"payout_request.completed","data":{"id":"pr_xyz789","amount":10000,"currency":"PHP","status":"completed","account_id":"acc_456","processed_at":"2024-01-15T10:30:00Z"}}"#
        );
    }

    #[test]
    fn ids_with_quotes_are_escaped() {
        let d = data("{}");
        let envelope = Envelope {
            event_id: r#"a"b\c"#,
            created: 1,
            event_type: "payment.completed",
            data: &d,
        };
        assert_eq!(
            envelope.body(EnvelopeFormat::Typed),
            r#"{"id":"a\"b\\c","created":1,"type":"payment.completed","data":{}}"#
        );
    }

    #[test]
    fn formats_parse_and_name_their_headers() {
        assert_eq!("typed".parse(), Ok(EnvelopeFormat::Typed));
        assert_eq!("event".parse(), Ok(EnvelopeFormat::Event));
        assert!("xml".parse::<EnvelopeFormat>().is_err());
        assert_eq!(
            EnvelopeFormat::Typed.default_signature_header(),
            "x-nextpay-signature"
        );
        assert_eq!(
            EnvelopeFormat::Event.default_signature_header(),
            "X-Webhook-Signature"
        );
    }
}
