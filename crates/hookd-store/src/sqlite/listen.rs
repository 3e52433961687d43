//! The SQL of `hookd listen` sessions (see `crate::listen`): their temporary webhooks are
//! ordinary rows with `listen_seen_at` set. One process serves a SQLite file, so every
//! session is this process's and claims need no owner filter.

use rusqlite::{Connection, params};

use super::due_index::DueIndex;
use super::queries;
use crate::StoreError;
use crate::model::{ListenUpkeep, NewWebhook, WebhookRecord};

/// Inserts a session's temporary webhook, seen at its creation.
pub(super) fn insert(conn: &Connection, webhook: &NewWebhook) -> Result<WebhookRecord, StoreError> {
    let record = queries::insert_webhook(conn, webhook)?;
    conn.prepare_cached("UPDATE webhooks SET listen_seen_at = ?2 WHERE id = ?1")?
        .execute(params![webhook.id, webhook.now_ms])?;
    Ok(record)
}

/// Marks the client's temporary webhook seen; `None` if it has none of that id.
pub(super) fn resume(
    conn: &Connection,
    client_id: &str,
    webhook_id: &str,
    now_ms: i64,
) -> Result<Option<WebhookRecord>, StoreError> {
    let changed = conn
        .prepare_cached(
            "UPDATE webhooks SET listen_seen_at = ?3 \
             WHERE id = ?1 AND client_id = ?2 AND deleted_at IS NULL \
             AND listen_seen_at IS NOT NULL",
        )?
        .execute(params![webhook_id, client_id, now_ms])?;
    if changed == 0 {
        return Ok(None);
    }
    queries::get_webhook(conn, client_id, webhook_id)
}

/// What one upkeep did.
pub(super) struct Kept {
    /// Connected sessions whose webhooks no longer exist.
    pub(super) gone: Vec<String>,
    /// How many stale temporary webhooks were deleted.
    pub(super) deleted: usize,
}

pub(super) fn keep(
    conn: &Connection,
    due: &mut DueIndex,
    upkeep: &ListenUpkeep,
) -> Result<Kept, StoreError> {
    let mut gone = Vec::new();
    for webhook_id in &upkeep.connected {
        let seen = conn
            .prepare_cached(
                "UPDATE webhooks SET listen_seen_at = ?2 \
                 WHERE id = ?1 AND deleted_at IS NULL AND listen_seen_at IS NOT NULL",
            )?
            .execute(params![webhook_id, upkeep.now_ms])?;
        if seen == 0 {
            gone.push(webhook_id.clone());
        }
    }
    let stale: Vec<(String, String)> = conn
        .prepare_cached(
            "SELECT client_id, id FROM webhooks \
             WHERE listen_seen_at < ?1 AND deleted_at IS NULL",
        )?
        .query_map([upkeep.stale_before_ms], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })?
        .collect::<Result<_, _>>()?;
    for (client_id, webhook_id) in &stale {
        queries::delete_webhook(conn, due, client_id, webhook_id, upkeep.now_ms)?;
    }
    Ok(Kept {
        gone,
        deleted: stale.len(),
    })
}
