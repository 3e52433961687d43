//! Endpoint health: what a batch of attempt outcomes does to a webhook's counters, when a
//! webhook that keeps failing is disabled, and the `webhook.disabled` event its client
//! gets then.
//!
//! A webhook's *failure streak* is the run of failed attempts since its last success;
//! `failing_since` is when the streak's first attempt finished. A webhook is disabled once
//! it is still failing `disable_after` after that (SPEC: "a webhook whose deliveries have
//! all failed for 5 days"). Every attempt counts, whatever its delivery then does: a
//! receiver that answers `400` to everything is as broken as one that is down.

use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use crate::event_type::WEBHOOK_DISABLED;
use crate::ids::IdKind;
use crate::json::{CanonicalJson, JsonLimits};

/// How long a webhook may fail without a single success before it is disabled, by
/// default (the SPEC's five days).
pub const DEFAULT_DISABLE_AFTER: Duration = Duration::from_secs(5 * 24 * 60 * 60);

/// One finished attempt, as the counters see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttemptResult {
    pub webhook_key: i64,
    /// When the attempt finished (unix ms).
    pub finished_at_ms: i64,
    pub succeeded: bool,
}

/// What one batch of attempts adds to one webhook's counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HealthTally {
    pub succeeded: i64,
    pub failed: i64,
    pub last_success_at_ms: Option<i64>,
    pub last_failure_at_ms: Option<i64>,
    /// Failed attempts after the batch's last success (all of them if none succeeded).
    pub trailing_failures: i64,
    /// When the first of those finished.
    pub trailing_failures_since_ms: Option<i64>,
}

impl HealthTally {
    /// Tallies a batch per webhook, attempts taken in the order they finished.
    pub fn per_webhook(
        results: impl IntoIterator<Item = AttemptResult>,
    ) -> Vec<(i64, HealthTally)> {
        let mut sorted: Vec<AttemptResult> = results.into_iter().collect();
        sorted.sort_by_key(|r| (r.webhook_key, r.finished_at_ms));
        let mut tallies: HashMap<i64, HealthTally> = HashMap::new();
        for r in sorted {
            let t = tallies.entry(r.webhook_key).or_default();
            if r.succeeded {
                t.succeeded += 1;
                t.last_success_at_ms = Some(r.finished_at_ms);
                t.trailing_failures = 0;
                t.trailing_failures_since_ms = None;
            } else {
                t.failed += 1;
                t.last_failure_at_ms = Some(r.finished_at_ms);
                t.trailing_failures += 1;
                t.trailing_failures_since_ms.get_or_insert(r.finished_at_ms);
            }
        }
        let mut out: Vec<(i64, HealthTally)> = tallies.into_iter().collect();
        out.sort_by_key(|(key, _)| *key);
        out
    }

    /// The webhook's counters after this batch, from those before it.
    pub fn apply(&self, before: &WebhookHealth) -> WebhookHealth {
        let later = |a: Option<i64>, b: Option<i64>| a.max(b);
        let (consecutive_failures, failing_since_ms) = if self.succeeded > 0 {
            (self.trailing_failures, self.trailing_failures_since_ms)
        } else {
            (
                before.consecutive_failures + self.trailing_failures,
                before.failing_since_ms.or(self.trailing_failures_since_ms),
            )
        };
        WebhookHealth {
            attempts_succeeded: before.attempts_succeeded + self.succeeded,
            attempts_failed: before.attempts_failed + self.failed,
            last_success_at_ms: later(before.last_success_at_ms, self.last_success_at_ms),
            last_failure_at_ms: later(before.last_failure_at_ms, self.last_failure_at_ms),
            consecutive_failures,
            failing_since_ms,
        }
    }
}

/// A webhook's delivery record, kept with the webhook.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WebhookHealth {
    pub attempts_succeeded: i64,
    pub attempts_failed: i64,
    pub last_success_at_ms: Option<i64>,
    pub last_failure_at_ms: Option<i64>,
    /// Failed attempts since the last success.
    pub consecutive_failures: i64,
    /// When the current failure streak began (unix ms); `None` while the last attempt
    /// succeeded, or before any attempt.
    pub failing_since_ms: Option<i64>,
}

impl WebhookHealth {
    /// Succeeded attempts over all attempts, if there was any.
    pub fn success_rate(&self) -> Option<f64> {
        let total = self.attempts_succeeded + self.attempts_failed;
        // Counts stay far below 2^52: the conversion is exact.
        #[allow(clippy::cast_precision_loss)]
        (total > 0).then(|| self.attempts_succeeded as f64 / total as f64)
    }

    /// Whether a webhook with these counters, at `now_ms`, has failed long enough to be
    /// disabled.
    pub fn failing_too_long(&self, now_ms: i64, disable_after: Duration) -> bool {
        let after = i64::try_from(disable_after.as_millis()).unwrap_or(i64::MAX);
        self.consecutive_failures > 0
            && self
                .failing_since_ms
                .is_some_and(|since| now_ms.saturating_sub(since) >= after)
    }

    /// The `disabled_reason` of a webhook disabled for failing too long.
    pub fn failing_reason(&self, disable_after: Duration) -> String {
        let since = self
            .failing_since_ms
            .map_or_else(|| "its first attempt".to_owned(), rfc3339);
        format!(
            "every attempt failed for {} ({} attempts since {since})",
            humantime::format_duration(disable_after),
            self.consecutive_failures
        )
    }
}

/// The `webhook.disabled` event sent to the client's other webhooks when one is disabled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookDisabled<'a> {
    pub webhook_id: &'a str,
    pub url: &'a str,
    pub reason: &'a str,
    pub disabled_at_ms: i64,
    pub health: WebhookHealth,
}

impl WebhookDisabled<'_> {
    pub const EVENT_TYPE: &'static str = WEBHOOK_DISABLED;

    /// The event's `data`: what was disabled, why, and since when it had been failing.
    pub fn data(&self) -> CanonicalJson {
        let secs = |ms: i64| ms.div_euclid(1000);
        let value = serde_json::json!({
            "webhook_id": self.webhook_id,
            "url": self.url,
            "reason": self.reason,
            "disabled_at": secs(self.disabled_at_ms),
            "failing_since": self.health.failing_since_ms.map(secs),
            "consecutive_failures": self.health.consecutive_failures,
            "last_success_at": self.health.last_success_at_ms.map(secs),
        });
        // serde_json keeps the keys in the order written (`preserve_order`); the values are
        // ids, short text and integers, all within what canonical JSON accepts.
        CanonicalJson::from_value(&value, JsonLimits::default()).unwrap_or_else(|_| {
            CanonicalJson::from_canonical_unchecked(format!(
                "{{\"webhook_id\":{}}}",
                serde_json::Value::from(self.webhook_id)
            ))
        })
    }

    /// The event's id, derived from the id of the attempt that disabled the webhook: unique
    /// (one attempt disables at most one webhook once), time-ordered like every id, and
    /// needing no randomness of its own.
    pub fn event_id(attempt_id: &str) -> String {
        let ulid = attempt_id
            .strip_prefix(IdKind::Attempt.prefix())
            .unwrap_or(attempt_id);
        format!("{}{ulid}", IdKind::Event.prefix())
    }
}

fn rfc3339(ms: i64) -> String {
    let secs = u64::try_from(ms.div_euclid(1000)).unwrap_or(0);
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn result(finished_at_ms: i64, succeeded: bool) -> AttemptResult {
        AttemptResult {
            webhook_key: 1,
            finished_at_ms,
            succeeded,
        }
    }

    #[test]
    fn a_success_ends_the_streak_and_later_failures_start_a_new_one() {
        let before = WebhookHealth {
            attempts_failed: 3,
            consecutive_failures: 3,
            failing_since_ms: Some(100),
            ..WebhookHealth::default()
        };
        // Out of order on purpose: the tally sorts by finish time.
        let batch = [result(400, false), result(300, true), result(500, false)];
        let [(key, tally)] = HealthTally::per_webhook(batch).try_into().unwrap();
        assert_eq!(key, 1);
        let after = tally.apply(&before);
        assert_eq!(after.attempts_succeeded, 1);
        assert_eq!(after.attempts_failed, 5);
        assert_eq!(after.consecutive_failures, 2);
        assert_eq!(after.failing_since_ms, Some(400));
        assert_eq!(after.last_success_at_ms, Some(300));
        assert_eq!(after.last_failure_at_ms, Some(500));
        assert_eq!(after.success_rate(), Some(1.0 / 6.0));
    }

    #[test]
    fn failures_only_extend_the_streak_from_its_first_failure() {
        let before = WebhookHealth {
            attempts_failed: 1,
            consecutive_failures: 1,
            failing_since_ms: Some(100),
            last_success_at_ms: Some(50),
            ..WebhookHealth::default()
        };
        let [(_, tally)] = HealthTally::per_webhook([result(200, false), result(300, false)])
            .try_into()
            .unwrap();
        let after = tally.apply(&before);
        assert_eq!(after.consecutive_failures, 3);
        assert_eq!(after.failing_since_ms, Some(100));
        assert_eq!(after.last_success_at_ms, Some(50));
        // A fresh webhook's first failure starts the streak.
        let fresh = tally.apply(&WebhookHealth::default());
        assert_eq!(fresh.failing_since_ms, Some(200));
        assert_eq!(fresh.success_rate(), Some(0.0));
        assert_eq!(WebhookHealth::default().success_rate(), None);
    }

    #[test]
    fn batches_are_tallied_per_webhook() {
        let other = AttemptResult {
            webhook_key: 2,
            finished_at_ms: 10,
            succeeded: true,
        };
        let tallies = HealthTally::per_webhook([result(5, false), other, result(6, true)]);
        assert_eq!(tallies.len(), 2);
        assert_eq!((tallies[0].1.failed, tallies[0].1.succeeded), (1, 1));
        assert_eq!(tallies[0].1.trailing_failures, 0);
        assert_eq!((tallies[1].0, tallies[1].1.succeeded), (2, 1));
    }

    #[test]
    fn a_webhook_is_disabled_only_once_it_has_failed_for_the_whole_period() {
        let day = Duration::from_secs(86_400);
        let failing = WebhookHealth {
            consecutive_failures: 4,
            failing_since_ms: Some(0),
            ..WebhookHealth::default()
        };
        assert!(!failing.failing_too_long(86_399_999, day));
        assert!(failing.failing_too_long(86_400_000, day));
        let recovered = WebhookHealth {
            consecutive_failures: 0,
            failing_since_ms: None,
            ..failing
        };
        assert!(!recovered.failing_too_long(i64::MAX, day));
        assert_eq!(
            failing.failing_reason(day),
            "every attempt failed for 1day (4 attempts since 1970-01-01T00:00:00Z)"
        );
    }

    #[test]
    fn the_disabled_event_is_canonical_json_with_its_fields_in_order() {
        let event = WebhookDisabled {
            webhook_id: "wh_1",
            url: "https://example.com/hook",
            reason: "the endpoint answered 410 Gone",
            disabled_at_ms: 1_705_312_200_500,
            health: WebhookHealth {
                consecutive_failures: 1,
                failing_since_ms: Some(1_705_312_200_400),
                ..WebhookHealth::default()
            },
        };
        let data = event.data();
        assert_eq!(
            data.as_str(),
            r#"{"webhook_id":"wh_1","url":"https://example.com/hook","reason":"the endpoint answered 410 Gone","disabled_at":1705312200,"failing_since":1705312200,"consecutive_failures":1,"last_success_at":null}"#
        );
        // What a receiver re-serialises is the same text.
        let reparsed = CanonicalJson::parse(data.as_str(), JsonLimits::default()).unwrap();
        assert_eq!(reparsed.as_str(), data.as_str());
        assert_eq!(
            WebhookDisabled::event_id("att_01hzzzzzzzzzzzzzzzzzzzzzzz"),
            "evt_01hzzzzzzzzzzzzzzzzzzzzzzz"
        );
    }
}
