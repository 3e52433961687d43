//! Endpoint health as both backends apply it: which webhooks a batch of attempts disables,
//! and the `webhook.disabled` event their clients get. The counting rule itself is
//! `hookd_core::health`; each backend keeps the counters in its own SQL.

use hookd_core::health::{AttemptResult, HealthTally, WebhookDisabled};

use crate::model::{FinishedAttempt, HealthPolicy, NewEvent, NextStep, WebhookHealth};

/// A webhook to disable, and the attempt that decided it.
pub(crate) struct Disabling<'a> {
    pub(crate) webhook_key: i64,
    pub(crate) reason: String,
    pub(crate) at_ms: i64,
    pub(crate) attempt_id: &'a str,
}

impl<'a> Disabling<'a> {
    /// The disabling an attempt asks for itself (`410 Gone`), if any.
    pub(crate) fn asked_by(attempt: &'a FinishedAttempt) -> Option<Disabling<'a>> {
        match &attempt.next {
            NextStep::Failed {
                disable_webhook_reason: Some(reason),
            } => Some(Disabling {
                webhook_key: attempt.webhook_key,
                reason: reason.clone(),
                at_ms: finished_at(attempt),
                attempt_id: &attempt.id,
            }),
            _ => None,
        }
    }

    /// The disabling of a webhook whose counters are now `after`, if it is enabled and has
    /// failed for longer than `policy` allows by its last failed attempt of `attempts`.
    pub(crate) fn for_failing_too_long(
        webhook_key: i64,
        enabled: bool,
        after: &WebhookHealth,
        policy: HealthPolicy,
        attempts: &'a [FinishedAttempt],
    ) -> Option<Disabling<'a>> {
        let disable_after = policy.disable_after?;
        // The common case, a healthy or already disabled webhook, needs no scan of the batch.
        if !enabled || after.consecutive_failures == 0 {
            return None;
        }
        let last_failed = attempts
            .iter()
            .filter(|a| a.webhook_key == webhook_key && a.next != NextStep::Succeeded)
            .max_by_key(|a| finished_at(a))?;
        let at_ms = finished_at(last_failed);
        after
            .failing_too_long(at_ms, disable_after)
            .then(|| Disabling {
                webhook_key,
                reason: after.failing_reason(disable_after),
                at_ms,
                attempt_id: &last_failed.id,
            })
    }

    /// The event telling the client, to be published in the same write.
    pub(crate) fn event(&self, webhook_id: &str, url: &str, health: WebhookHealth) -> NewEvent {
        let notice = WebhookDisabled {
            webhook_id,
            url,
            reason: &self.reason,
            disabled_at_ms: self.at_ms,
            health,
        };
        NewEvent {
            id: WebhookDisabled::event_id(self.attempt_id),
            id_from_client: false,
            idempotency_key: None,
            event_type: WebhookDisabled::EVENT_TYPE.to_owned(),
            data: notice.data(),
            now_ms: self.at_ms,
            first_attempt_at_ms: self.at_ms,
            test: false,
            only_webhook_id: None,
        }
    }
}

fn finished_at(attempt: &FinishedAttempt) -> i64 {
    attempt.started_at_ms + attempt.duration_ms
}

/// The batch tallied per webhook (by webhook key).
pub(crate) fn tally(attempts: &[FinishedAttempt]) -> Vec<(i64, HealthTally)> {
    HealthTally::per_webhook(attempts.iter().map(|a| AttemptResult {
        webhook_key: a.webhook_key,
        finished_at_ms: finished_at(a),
        succeeded: a.next == NextStep::Succeeded,
    }))
}
