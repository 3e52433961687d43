//! Sample data for test events (`POST /v2/webhooks/{id}/test`): one realistic object per
//! built-in event type, shaped as the seeds describe the resource (a payout request has
//! `id`, `amount`, `currency`, `status`, `account_id`, `processed_at`; a WickiePay payment
//! has `uuid` and `reference`). Values are fixed; the only time in them is the one passed
//! in (the event's `created`), so the same call always gives the same bytes.

use std::time::{Duration, UNIX_EPOCH};

use crate::event_type::{BUILTIN_EVENT_TYPES, EventFilter};
use crate::json::{CanonicalJson, JsonLimits};

/// The header every attempt of a test event's delivery carries (retries too), with the
/// value `true`; the body stays exactly the seeds' envelope.
pub const TEST_EVENT_HEADER: &str = "webhook-test";

/// The sample `data` of a built-in type at `at_secs` (unix seconds), or `None` for a type
/// not in [`BUILTIN_EVENT_TYPES`].
pub fn builtin_sample(event_type: &str, at_secs: i64) -> Option<CanonicalJson> {
    let at = rfc3339(at_secs);
    let at = at.as_str();
    let text = match event_type {
        "payout_request.initiated" => payout("initiated", None),
        "payout_request.pending" => payout("pending", None),
        "payout_request.processing" => payout("processing", None),
        "payout_request.completed" => payout("completed", Some(at)),
        "payout_request.failed" => payout_failed(at),
        "payout_request.cancelled" => payout("cancelled", Some(at)),
        "payout_request.reversed" => payout("reversed", Some(at)),
        "payment_intent.created" => payment_intent("awaiting_payment", at, None),
        "payment_intent.paid" => payment_intent("paid", at, Some(("paid_at", at))),
        "payment_intent.expired" => payment_intent("expired", at, Some(("expired_at", at))),
        "payment_intent.cancelled" => payment_intent("cancelled", at, Some(("cancelled_at", at))),
        "payment.completed" => payment("completed", ("completed_at", at)),
        "payment.expired" => payment("expired", ("expired_at", at)),
        "channel.payment.confirmed" => format!(
            r#"{{"uuid":"0b7e5c2a-4f1d-4a8e-9c3b-6d2f8e1a5b70","reference":"DEP-2024-0042","channel":"gcash","amount":"1500.00","currency":"PHP","status":"confirmed","confirmed_at":"{at}"}}"#
        ),
        _ => return None,
    };
    // The texts above are valid JSON objects by construction (a unit test checks each).
    CanonicalJson::parse(&text, JsonLimits::default()).ok()
}

/// The sample `data` of any type: the built-in sample, or `{}` for a client's own type
/// (hookd cannot know its shape).
pub fn sample_data(event_type: &str, at_secs: i64) -> CanonicalJson {
    builtin_sample(event_type, at_secs)
        .unwrap_or_else(|| CanonicalJson::from_canonical_unchecked("{}".to_owned()))
}

/// The type a test event gets when none is asked for: the first of `filters` (in the
/// webhook's order) that names a type of `catalogue`; for `*` or a prefix filter, the
/// first matching built-in type, else the first matching type of `catalogue`.
pub fn default_test_type<'a>(
    filters: &[EventFilter],
    catalogue: impl IntoIterator<Item = &'a str> + Clone,
) -> Option<String> {
    for filter in filters {
        if let EventFilter::Exact(t) = filter {
            if catalogue.clone().into_iter().any(|c| c == t.as_str()) {
                return Some(t.as_str().to_owned());
            }
            continue;
        }
        let builtin = BUILTIN_EVENT_TYPES
            .iter()
            .map(|(name, _)| *name)
            .find(|name| filter.matches(name));
        if let Some(found) =
            builtin.or_else(|| catalogue.clone().into_iter().find(|c| filter.matches(c)))
        {
            return Some(found.to_owned());
        }
    }
    None
}

fn rfc3339(at_secs: i64) -> String {
    let secs = u64::try_from(at_secs).unwrap_or(0);
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

fn json_time(at: Option<&str>) -> String {
    at.map_or_else(|| "null".to_owned(), |at| format!("\"{at}\""))
}

/// A NextPay payout request, as the "Understanding Webhooks" payload shows it.
fn payout(status: &str, processed_at: Option<&str>) -> String {
    format!(
        r#"{{"id":"pr_test_xyz789","amount":10000,"currency":"PHP","status":"{status}","account_id":"acc_test_456","processed_at":{}}}"#,
        json_time(processed_at)
    )
}

fn payout_failed(at: &str) -> String {
    format!(
        r#"{{"id":"pr_test_xyz789","amount":10000,"currency":"PHP","status":"failed","account_id":"acc_test_456","processed_at":"{at}","failure_code":"account_closed","failure_message":"The destination account is closed"}}"#
    )
}

/// A NextPay payment intent (amount in minor units, as for payouts).
fn payment_intent(status: &str, created_at: &str, when: Option<(&str, &str)>) -> String {
    let when = when.map_or_else(String::new, |(name, at)| format!(r#","{name}":"{at}""#));
    format!(
        r#"{{"id":"pi_test_abc123","amount":25000,"currency":"PHP","status":"{status}","reference":"ORDER-1001","created_at":"{created_at}"{when}}}"#
    )
}

/// A WickiePay payment (`uuid` and `reference`, as its listener guide reads them).
fn payment(status: &str, (name, at): (&str, &str)) -> String {
    format!(
        r#"{{"uuid":"5f2c8a1e-7b3d-4e9f-a6c0-1d2e3f4a5b6c","reference":"ORDER-1001","amount":"250.00","currency":"PHP","status":"{status}","{name}":"{at}"}}"#
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const AT: i64 = 1_705_312_200;

    #[test]
    fn every_builtin_type_has_a_sample_object() {
        for (name, _) in BUILTIN_EVENT_TYPES {
            let sample = builtin_sample(name, AT).unwrap_or_else(|| panic!("no sample for {name}"));
            let value = sample.to_value();
            let object = value
                .as_object()
                .unwrap_or_else(|| panic!("{name}: {value}"));
            assert!(!object.is_empty(), "{name}");
            // Re-canonicalizing changes nothing: the sample is stored as given.
            let again = CanonicalJson::parse(sample.as_str(), JsonLimits::default()).unwrap();
            assert_eq!(again.as_str(), sample.as_str(), "{name}");
        }
    }

    #[test]
    fn payout_samples_have_the_seed_fields_and_their_status() {
        let completed = builtin_sample("payout_request.completed", AT).unwrap();
        assert_eq!(
            completed.as_str(),
            r#"{"id":"pr_test_xyz789","amount":10000,"currency":"PHP","status":"completed","account_id":"acc_test_456","processed_at":"2024-01-15T09:50:00Z"}"#
        );
        for (name, _) in BUILTIN_EVENT_TYPES {
            let Some(status) = name.strip_prefix("payout_request.") else {
                continue;
            };
            let value = builtin_sample(name, AT).unwrap().to_value();
            assert_eq!(value["status"], status, "{name}");
            for field in ["id", "amount", "currency", "account_id", "processed_at"] {
                assert!(value.get(field).is_some(), "{name} lacks {field}");
            }
        }
        let paid = builtin_sample("payment.completed", AT).unwrap().to_value();
        assert!(paid["uuid"].is_string() && paid["reference"].is_string());
    }

    #[test]
    fn client_types_get_an_empty_object() {
        assert_eq!(builtin_sample("orders.shipped", AT), None);
        assert_eq!(sample_data("orders.shipped", AT).as_str(), "{}");
    }

    #[test]
    fn the_default_type_is_the_first_subscribed_catalogue_type() {
        let catalogue: Vec<&str> = BUILTIN_EVENT_TYPES
            .iter()
            .map(|(n, _)| *n)
            .chain(["orders.shipped"])
            .collect();
        let pick = |filters: &[&str]| {
            let parsed: Vec<EventFilter> = filters
                .iter()
                .map(|f| EventFilter::from_stored(f))
                .collect();
            default_test_type(&parsed, catalogue.iter().copied())
        };
        assert_eq!(pick(&["*"]).as_deref(), Some("payout_request.initiated"));
        assert_eq!(
            pick(&["payment_intent.*", "payout_request.failed"]).as_deref(),
            Some("payment_intent.created")
        );
        assert_eq!(
            pick(&["payment.completed", "*"]).as_deref(),
            Some("payment.completed")
        );
        // An exact type since removed from the catalogue is skipped.
        assert_eq!(
            pick(&["orders.cancelled", "orders.*"]).as_deref(),
            Some("orders.shipped")
        );
        assert_eq!(pick(&["orders.cancelled"]), None);
    }
}
