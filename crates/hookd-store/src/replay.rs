//! Replay rules both backends share: where a job's walk starts and ends, which event of a
//! batch is re-sent, and how a stored job reads back.
//!
//! A bulk replay walks one webhook's deliveries in event-key order, so a batch is one
//! index range and a cursor (the last event key dealt with) is all a job needs to resume.
//! Its window, though, is in receipt time, which follows the key order only roughly: an
//! event is stamped when its request arrives and stored (given its key) a moment later.
//! So the walk covers a little more than the window ([`RECEIPT_ORDER_SLACK_MS`] on each
//! side) and every event's receipt time is checked on its own.

use hookd_core::event_type::{EventFilter, any_matches};

use crate::StoreError;
use crate::model::{DeliveryState, ReplayFilter, ReplayJob, ReplayRefusal, ReplayState};

/// How much later than another event an event stored before it may have been stamped:
/// the time a publish can wait between arriving and being stored (the writer's queue,
/// PostgreSQL's publish workers), plus clock differences between nodes, with room to
/// spare. Both are seconds at worst; leases already rely on clocks agreeing that well.
pub(crate) const RECEIPT_ORDER_SLACK_MS: i64 = 10 * 60 * 1000;

/// Whether a webhook with these stored filters would get an event of `event_type` if it
/// were published now (a replay goes nowhere a publish would not).
pub(crate) fn subscribes(filters: &[String], event_type: &str) -> bool {
    let parsed: Vec<EventFilter> = filters
        .iter()
        .map(|f| EventFilter::from_stored(f))
        .collect();
    any_matches(&parsed, event_type)
}

/// A webhook as a replay needs it.
pub(crate) struct Target {
    pub(crate) key: i64,
    pub(crate) id: String,
    pub(crate) enabled: bool,
    pub(crate) filters: Vec<String>,
}

/// Why `target` cannot take a replay of an event of `event_type`, if it cannot.
pub(crate) fn refusal(target: &Target, event_type: &str) -> Option<ReplayRefusal> {
    if !target.enabled {
        return Some(ReplayRefusal::WebhookDisabled);
    }
    if !subscribes(&target.filters, event_type) {
        return Some(ReplayRefusal::NotSubscribed {
            event_type: event_type.to_owned(),
            filters: target.filters.clone(),
        });
    }
    None
}

/// What a job re-sends: its window and filter, and the webhook's current filters.
pub(crate) struct Admission<'a> {
    pub(crate) since_ms: i64,
    pub(crate) until_ms: Option<i64>,
    pub(crate) filter: ReplayFilter,
    pub(crate) webhook_filters: &'a [String],
}

/// One event of a batch: the state of its latest delivery to the webhook, and the event.
pub(crate) struct Scanned {
    pub(crate) event_key: i64,
    pub(crate) latest_state: i64,
    pub(crate) event_type: String,
    pub(crate) received_at_ms: i64,
    pub(crate) test: bool,
}

impl Admission<'_> {
    /// Whether the job re-sends this event: in the window, not a test event, its latest
    /// delivery in a state the filter takes, and still subscribed to.
    pub(crate) fn admits(&self, event: &Scanned) -> bool {
        let state_admitted =
            DeliveryState::from_code(event.latest_state).is_some_and(|s| self.filter.admits(s));
        state_admitted
            && !event.test
            && self.in_window(event.received_at_ms)
            && subscribes(self.webhook_filters, &event.event_type)
    }

    pub(crate) fn in_window(&self, received_at_ms: i64) -> bool {
        received_at_ms >= self.since_ms && self.until_ms.is_none_or(|until| received_at_ms < until)
    }
}

/// The stored text of a job's filter and state, parsed.
pub(crate) fn parse_columns(
    job_id: &str,
    filter: &str,
    state: &str,
) -> Result<(ReplayFilter, ReplayState), StoreError> {
    let filter = ReplayFilter::parse(filter)
        .ok_or_else(|| StoreError::Corrupt(format!("replay job {job_id}: filter `{filter}`")))?;
    let state = ReplayState::parse(state)
        .ok_or_else(|| StoreError::Corrupt(format!("replay job {job_id}: state `{state}`")))?;
    Ok((filter, state))
}

/// A job as read back, from its columns in the order both backends select them.
pub(crate) struct JobColumns {
    pub(crate) id: String,
    pub(crate) webhook_id: String,
    pub(crate) since_ms: i64,
    pub(crate) until_ms: Option<i64>,
    pub(crate) filter: String,
    pub(crate) state: String,
    pub(crate) total: i64,
    pub(crate) done: i64,
    pub(crate) created_at_ms: i64,
    pub(crate) updated_at_ms: i64,
    pub(crate) completed_at_ms: Option<i64>,
}

/// The columns [`JobColumns`] reads, for `replay_jobs j JOIN webhooks w`.
pub(crate) const JOB_COLUMNS: &str = "j.id, w.id, j.since_ms, j.until_ms, j.status_filter, \
     j.state, j.total, j.done, j.created_at, j.updated_at, j.completed_at";

impl JobColumns {
    pub(crate) fn into_job(self) -> Result<ReplayJob, StoreError> {
        let (filter, state) = parse_columns(&self.id, &self.filter, &self.state)?;
        Ok(ReplayJob {
            id: self.id,
            webhook_id: self.webhook_id,
            since_ms: self.since_ms,
            until_ms: self.until_ms,
            filter,
            state,
            total: widen(self.total),
            done: widen(self.done),
            created_at_ms: self.created_at_ms,
            updated_at_ms: self.updated_at_ms,
            completed_at_ms: self.completed_at_ms,
        })
    }
}

pub(crate) fn widen(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

pub(crate) fn narrow(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The total of a new job from its per-type counts: only types the webhook subscribes to.
pub(crate) fn total_of(counts: &[(String, i64)], webhook_filters: &[String]) -> u64 {
    counts
        .iter()
        .filter(|(event_type, _)| subscribes(webhook_filters, event_type))
        .map(|(_, n)| widen(*n))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scanned(state: DeliveryState, event_type: &str, at: i64, test: bool) -> Scanned {
        Scanned {
            event_key: 1,
            latest_state: state.code(),
            event_type: event_type.to_owned(),
            received_at_ms: at,
            test,
        }
    }

    #[test]
    fn a_batch_admits_events_by_latest_state_window_test_mark_and_filters() {
        let filters = vec!["payment.*".to_owned()];
        let job = Admission {
            since_ms: 100,
            until_ms: Some(200),
            filter: ReplayFilter::Failed,
            webhook_filters: &filters,
        };
        let failed = DeliveryState::Failed;
        assert!(job.admits(&scanned(failed, "payment.completed", 100, false)));
        assert!(job.admits(&scanned(failed, "payment.completed", 199, false)));
        assert!(!job.admits(&scanned(failed, "payment.completed", 99, false)));
        assert!(!job.admits(&scanned(failed, "payment.completed", 200, false)));
        assert!(!job.admits(&scanned(failed, "payment.completed", 150, true)));
        assert!(!job.admits(&scanned(failed, "payout_request.failed", 150, false)));
        for state in [
            DeliveryState::Pending,
            DeliveryState::Succeeded,
            DeliveryState::Cancelled,
        ] {
            assert!(!job.admits(&scanned(state, "payment.completed", 150, false)));
        }
        let all = Admission {
            filter: ReplayFilter::All,
            until_ms: None,
            ..job
        };
        assert!(all.admits(&scanned(
            DeliveryState::Cancelled,
            "payment.expired",
            9_999,
            false
        )));
        assert!(!all.admits(&scanned(
            DeliveryState::Pending,
            "payment.expired",
            150,
            false
        )));
    }

    #[test]
    fn filters_name_their_states_and_never_pending() {
        assert_eq!(ReplayFilter::Failed.state_mask(), 1 << 2);
        assert_eq!(
            ReplayFilter::All.state_mask(),
            (1 << 1) | (1 << 2) | (1 << 3)
        );
        for name in ReplayFilter::NAMES {
            assert_eq!(
                ReplayFilter::parse(name).map(ReplayFilter::as_str),
                Some(name)
            );
        }
        assert_eq!(ReplayFilter::parse("pending"), None);
    }

    #[test]
    fn a_total_counts_only_subscribed_types() {
        let counts = vec![
            ("payment.completed".to_owned(), 3),
            ("payout_request.failed".to_owned(), 5),
        ];
        assert_eq!(total_of(&counts, &["payment.completed".to_owned()]), 3);
        assert_eq!(total_of(&counts, &["*".to_owned()]), 8);
    }
}
