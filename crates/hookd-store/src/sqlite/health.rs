//! Endpoint health on SQLite: the counters each batch of attempts moves, and disabling a
//! webhook (410 Gone, or failing for too long) with the `webhook.disabled` event its client
//! gets, all inside the writer's transaction that records the attempts.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::connection::Tx;
use super::queries;
use crate::StoreError;
use crate::health::{Disabling, tally};
use crate::model::{FinishedAttempt, HealthPolicy, WebhookHealth};

/// Adds the batch to each webhook's counters; returns the webhooks that have now failed for
/// longer than `policy` allows.
pub(super) fn count_attempts<'a>(
    conn: &Connection,
    attempts: &'a [FinishedAttempt],
    policy: HealthPolicy,
) -> Result<Vec<Disabling<'a>>, StoreError> {
    let mut disabling = Vec::new();
    for (webhook_key, tally) in tally(attempts) {
        let Some((before, enabled)) = read_health(conn, webhook_key)? else {
            continue; // Deleted and purged meanwhile: nothing to count against.
        };
        let after = tally.apply(&before);
        write_health(conn, webhook_key, &after)?;
        disabling.extend(Disabling::for_failing_too_long(
            webhook_key,
            enabled,
            &after,
            policy,
            attempts,
        ));
    }
    Ok(disabling)
}

/// The six health columns, in their `schema_8.sql` order, from column `first` on.
pub(super) fn health_from_row(row: &Row<'_>, first: usize) -> rusqlite::Result<WebhookHealth> {
    Ok(WebhookHealth {
        attempts_succeeded: row.get(first)?,
        attempts_failed: row.get(first + 1)?,
        last_success_at_ms: row.get(first + 2)?,
        last_failure_at_ms: row.get(first + 3)?,
        consecutive_failures: row.get(first + 4)?,
        failing_since_ms: row.get(first + 5)?,
    })
}

fn read_health(
    conn: &Connection,
    webhook_key: i64,
) -> Result<Option<(WebhookHealth, bool)>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT attempts_succeeded, attempts_failed, last_success_at, last_failure_at, \
             consecutive_failures, failing_since, enabled FROM webhooks WHERE key = ?1",
        )?
        .query_row([webhook_key], |row| {
            Ok((health_from_row(row, 0)?, row.get(6)?))
        })
        .optional()?)
}

fn write_health(conn: &Connection, webhook_key: i64, h: &WebhookHealth) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE webhooks SET attempts_succeeded = ?1, attempts_failed = ?2, \
         last_success_at = ?3, last_failure_at = ?4, consecutive_failures = ?5, \
         failing_since = ?6 WHERE key = ?7",
    )?
    .execute(params![
        h.attempts_succeeded,
        h.attempts_failed,
        h.last_success_at_ms,
        h.last_failure_at_ms,
        h.consecutive_failures,
        h.failing_since_ms,
        webhook_key
    ])?;
    Ok(())
}

/// Disables each webhook (once, if still enabled), cancels its pending deliveries and
/// publishes a `webhook.disabled` event to the client's webhooks that subscribe to it.
/// Returns whether a new delivery is due now.
pub(super) fn disable(tx: &mut Tx<'_>, disabling: &[Disabling<'_>]) -> Result<bool, StoreError> {
    let mut due_now = false;
    for d in disabling {
        let disabled = tx
            .conn
            .prepare_cached(
                "UPDATE webhooks SET enabled = 0, disabled_reason = ?1, updated_at = ?2 \
                 WHERE key = ?3 AND enabled = 1 \
                 RETURNING id, client_id, url, attempts_succeeded, attempts_failed, \
                 last_success_at, last_failure_at, consecutive_failures, failing_since",
            )?
            .query_row(params![d.reason, d.at_ms, d.webhook_key], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                    health_from_row(row, 3)?,
                ))
            })
            .optional()?;
        let Some((webhook_id, client_id, url, health)) = disabled else {
            continue; // Already disabled (or deleted): the client was told then.
        };
        queries::cancel_pending_deliveries_of(tx.conn, tx.due, d.webhook_key, d.at_ms)?;
        // The cached subscribers still list the webhook just disabled.
        tx.subscribers.clear();
        let event = d.event(&webhook_id, &url, health);
        let published = queries::publish_events(
            tx.conn,
            tx.subscribers,
            tx.due,
            None,
            &client_id,
            std::slice::from_ref(&event),
        )?;
        due_now |= published.due_unclaimed;
        tracing::warn!(webhook = %webhook_id, reason = %d.reason, "webhook disabled");
    }
    Ok(due_now)
}
