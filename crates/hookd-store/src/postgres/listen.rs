//! The SQL of `hookd listen` sessions (see `crate::listen`): their temporary webhooks are
//! ordinary rows with `listen_seen_at` set and `listen_node` naming the node the session's
//! stream is connected to. Only that node claims their deliveries (`queries::claim_due`),
//! and publishing never leases them to the node that accepted the event.

use std::collections::HashSet;

use deadpool_postgres::GenericClient;

use super::queries::{self, execute, row, rows};
use crate::StoreError;
use crate::model::{ListenUpkeep, NewWebhook, WebhookRecord};

/// Inserts a session's temporary webhook, seen at its creation and owned by `node`.
pub(super) async fn insert(
    c: &impl GenericClient,
    webhook: &NewWebhook,
    node: &str,
) -> Result<WebhookRecord, StoreError> {
    let record = queries::insert_webhook(c, webhook).await?;
    execute(
        c,
        "UPDATE webhooks SET listen_seen_at = $2, listen_node = $3 WHERE id = $1",
        &[&webhook.id, &webhook.now_ms, &node],
    )
    .await?;
    Ok(record)
}

/// Makes `node` the owner of the client's temporary webhook and marks it seen; `None` if
/// the client has none of that id.
pub(super) async fn resume(
    c: &impl GenericClient,
    client_id: &str,
    webhook_id: &str,
    now_ms: i64,
    node: &str,
) -> Result<Option<WebhookRecord>, StoreError> {
    let taken = row(
        c,
        "UPDATE webhooks SET listen_seen_at = $3, listen_node = $4 \
         WHERE id = $1 AND client_id = $2 AND deleted_at IS NULL \
         AND listen_seen_at IS NOT NULL RETURNING key",
        &[&webhook_id, &client_id, &now_ms, &node],
    )
    .await?;
    if taken.is_none() {
        return Ok(None);
    }
    queries::get_webhook(c, client_id, webhook_id).await
}

/// Marks the connected sessions seen and deletes the stale ones (in the caller's
/// transaction); the connected sessions whose webhooks no longer exist.
pub(super) async fn keep(
    c: &impl GenericClient,
    upkeep: &ListenUpkeep,
) -> Result<Vec<String>, StoreError> {
    let seen = rows(
        c,
        "UPDATE webhooks SET listen_seen_at = $1 \
         WHERE id = ANY($2) AND deleted_at IS NULL AND listen_seen_at IS NOT NULL RETURNING id",
        &[&upkeep.now_ms, &upkeep.connected],
    )
    .await?
    .iter()
    .map(|r| r.try_get::<_, String>(0))
    .collect::<Result<HashSet<String>, _>>()?;
    let stale = rows(
        c,
        "UPDATE webhooks SET deleted_at = $1, enabled = FALSE \
         WHERE listen_seen_at < $2 AND deleted_at IS NULL RETURNING key",
        &[&upkeep.now_ms, &upkeep.stale_before_ms],
    )
    .await?;
    for deleted in &stale {
        queries::cancel_pending_deliveries(c, deleted.try_get(0)?, upkeep.now_ms).await?;
    }
    Ok(upkeep
        .connected
        .iter()
        .filter(|id| !seen.contains(*id))
        .cloned()
        .collect())
}
