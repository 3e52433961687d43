//! Endpoint health on PostgreSQL: the counters each batch of attempts moves (one statement
//! for the whole batch, applied on each webhook's row under its lock, so batches recorded
//! by several nodes at once all count), and disabling a webhook with the `webhook.disabled`
//! event its client gets.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::{publish, queries};
use crate::StoreError;
use crate::health::{Disabling, tally};
use crate::model::{FinishedAttempt, HealthPolicy, WebhookHealth};

const HEALTH_COLUMNS: &str = "attempts_succeeded, attempts_failed, last_success_at, \
     last_failure_at, consecutive_failures, failing_since";

/// The six health columns, in their `schema_7.sql` order, from column `first` on.
pub(super) fn health_from_row(row: &Row, first: usize) -> Result<WebhookHealth, StoreError> {
    Ok(WebhookHealth {
        attempts_succeeded: row.try_get(first)?,
        attempts_failed: row.try_get(first + 1)?,
        last_success_at_ms: row.try_get(first + 2)?,
        last_failure_at_ms: row.try_get(first + 3)?,
        consecutive_failures: row.try_get(first + 4)?,
        failing_since_ms: row.try_get(first + 5)?,
    })
}

/// Adds the batch to each webhook's counters; returns the webhooks that have now failed for
/// longer than `policy` allows.
pub(super) async fn count_attempts<'a>(
    c: &impl GenericClient,
    attempts: &'a [FinishedAttempt],
    policy: HealthPolicy,
) -> Result<Vec<Disabling<'a>>, StoreError> {
    let tallies = tally(attempts);
    let n = tallies.len();
    let (mut keys, mut succeeded, mut failed) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut last_success, mut last_failure, mut trailing, mut trailing_since) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for (key, t) in &tallies {
        keys.push(*key);
        succeeded.push(t.succeeded);
        failed.push(t.failed);
        last_success.push(t.last_success_at_ms);
        last_failure.push(t.last_failure_at_ms);
        trailing.push(t.trailing_failures);
        trailing_since.push(t.trailing_failures_since_ms);
    }
    // `HealthTally::apply` in SQL, so that it reads the row as it is when the row lock is
    // granted (another node's batch may have just moved it). GREATEST ignores NULLs.
    let sql = format!(
        "UPDATE webhooks w SET \
           attempts_succeeded = w.attempts_succeeded + t.succeeded, \
           attempts_failed = w.attempts_failed + t.failed, \
           last_success_at = GREATEST(w.last_success_at, t.last_success), \
           last_failure_at = GREATEST(w.last_failure_at, t.last_failure), \
           consecutive_failures = CASE WHEN t.succeeded > 0 THEN t.streak \
             ELSE w.consecutive_failures + t.streak END, \
           failing_since = CASE WHEN t.succeeded > 0 THEN t.streak_since \
             ELSE COALESCE(w.failing_since, t.streak_since) END \
         FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], \
           $6::bigint[], $7::bigint[]) \
           AS t(key, succeeded, failed, last_success, last_failure, streak, streak_since) \
         WHERE w.key = t.key \
         RETURNING w.key, w.enabled, {HEALTH_COLUMNS}"
    );
    let updated = queries::rows(
        c,
        &sql,
        &[
            &keys,
            &succeeded,
            &failed,
            &last_success,
            &last_failure,
            &trailing,
            &trailing_since,
        ],
    )
    .await?;
    let mut disabling = Vec::new();
    for row in &updated {
        let after = health_from_row(row, 2)?;
        disabling.extend(Disabling::for_failing_too_long(
            row.try_get(0)?,
            row.try_get(1)?,
            &after,
            policy,
            attempts,
        ));
    }
    Ok(disabling)
}

/// Disables each webhook (once, if still enabled), cancels its pending deliveries and
/// publishes a `webhook.disabled` event to the client's webhooks that subscribe to it; run
/// it in a transaction. Returns whether a new delivery is due now with no node holding it.
pub(super) async fn disable(
    c: &impl GenericClient,
    disabling: &[Disabling<'_>],
) -> Result<bool, StoreError> {
    let mut due_now = false;
    for d in disabling {
        let sql = format!(
            "UPDATE webhooks SET enabled = FALSE, disabled_reason = $1, updated_at = $2 \
             WHERE key = $3 AND enabled RETURNING id, client_id, url, {HEALTH_COLUMNS}"
        );
        let rows = queries::rows(c, &sql, &[&d.reason, &d.at_ms, &d.webhook_key]).await?;
        let Some(row) = rows.first() else {
            continue; // Already disabled (or deleted): the client was told then.
        };
        let (webhook_id, client_id, url): (String, String, String) =
            (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        queries::cancel_pending_deliveries(c, d.webhook_key, d.at_ms).await?;
        let event = d.event(&webhook_id, &url, health_from_row(row, 3)?);
        let events = [event];
        due_now |= publish::insert_in(c, &client_id, &events).await?;
        tracing::warn!(webhook = %webhook_id, reason = %d.reason, "webhook disabled");
    }
    Ok(due_now)
}
