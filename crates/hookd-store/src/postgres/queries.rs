//! The SQL of the PostgreSQL backend, one function per store operation. Statements are
//! prepared once per connection (deadpool's statement cache); batches travel as arrays
//! (`unnest`), so a batch costs one round trip, not one per row.

use std::collections::{HashMap, HashSet};

use hookd_core::event_type::EventFilter;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::model::{
    AttemptLog, ClaimRequest, ClaimedDelivery, ClientRecord, DeliveryRecord, DeliveryState,
    EventDetail, EventQuery, EventRecord, EventTypeRecord, FinishedAttempt, NewClient, NewEvent,
    NewEventType, NewWebhook, NextStep, Page, PageRequest, PreviousSecret, SecretRotation,
    WebhookChanges, WebhookRecord,
};
use crate::model::{DeliveryQuery, WebhookDelivery};
use crate::{StoreError, codec};
use deadpool_postgres::GenericClient;

type Params<'a> = [&'a (dyn ToSql + Sync)];

pub(super) async fn rows(
    c: &impl GenericClient,
    sql: &str,
    params: &Params<'_>,
) -> Result<Vec<Row>, StoreError> {
    let statement = c.prepare_cached(sql).await?;
    Ok(c.query(&statement, params).await?)
}

pub(super) async fn row(
    c: &impl GenericClient,
    sql: &str,
    params: &Params<'_>,
) -> Result<Option<Row>, StoreError> {
    let statement = c.prepare_cached(sql).await?;
    Ok(c.query_opt(&statement, params).await?)
}

pub(super) async fn execute(
    c: &impl GenericClient,
    sql: &str,
    params: &Params<'_>,
) -> Result<u64, StoreError> {
    let statement = c.prepare_cached(sql).await?;
    Ok(c.execute(&statement, params).await?)
}

/// PostgreSQL text cannot hold NUL; text that came from outside (a receiver's response)
/// may. Such characters are replaced rather than failing the whole batch.
fn pg_text(text: &Option<String>) -> Option<String> {
    text.as_ref().map(|t| {
        if t.contains('\0') {
            t.replace('\0', "\u{FFFD}")
        } else {
            t.clone()
        }
    })
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(super) async fn insert_client(
    c: &impl GenericClient,
    client: &NewClient,
) -> Result<ClientRecord, StoreError> {
    execute(
        c,
        "INSERT INTO clients (id, name, secret_sha256, created_at) VALUES ($1, $2, $3, $4)",
        &[
            &client.id,
            &client.name,
            &&client.secret_sha256[..],
            &client.now_ms,
        ],
    )
    .await?;
    Ok(ClientRecord {
        id: client.id.clone(),
        name: client.name.clone(),
        secret_sha256: client.secret_sha256,
        created_at_ms: client.now_ms,
    })
}

pub(super) async fn find_client(
    c: &impl GenericClient,
    id: &str,
) -> Result<Option<ClientRecord>, StoreError> {
    let Some(found) = row(
        c,
        "SELECT id, name, secret_sha256, created_at FROM clients WHERE id = $1",
        &[&id],
    )
    .await?
    else {
        return Ok(None);
    };
    let id: String = found.try_get(0)?;
    let digest: Vec<u8> = found.try_get(2)?;
    Ok(Some(ClientRecord {
        secret_sha256: codec::client_digest(&id, &digest)?,
        name: found.try_get(1)?,
        created_at_ms: found.try_get(3)?,
        id,
    }))
}

const WEBHOOK_COLUMNS: &str = "id, client_id, url, events, format, signature_header, enabled, \
     disabled_reason, description, metadata, secret, created_at, updated_at, \
     attempts_succeeded, attempts_failed, last_success_at, last_failure_at, \
     consecutive_failures, failing_since";
/// Where a column selected after [`WEBHOOK_COLUMNS`] is.
const AFTER_WEBHOOK_COLUMNS: usize = 19;

fn webhook_from_row(row: &Row) -> Result<WebhookRecord, StoreError> {
    let id: String = row.try_get(0)?;
    let (events, format, metadata) =
        codec::webhook_fields(&id, row.try_get(3)?, row.try_get(4)?, row.try_get(9)?)?;
    Ok(WebhookRecord {
        client_id: row.try_get(1)?,
        url: row.try_get(2)?,
        events,
        format,
        signature_header: row.try_get(5)?,
        enabled: row.try_get(6)?,
        disabled_reason: row.try_get(7)?,
        description: row.try_get(8)?,
        metadata,
        secret: row.try_get(10)?,
        created_at_ms: row.try_get(11)?,
        updated_at_ms: row.try_get(12)?,
        health: super::health::health_from_row(row, 13)?,
        id,
    })
}

pub(super) async fn insert_webhook(
    c: &impl GenericClient,
    w: &NewWebhook,
) -> Result<WebhookRecord, StoreError> {
    let sql = format!(
        "INSERT INTO webhooks (id, client_id, url, events, format, signature_header, enabled, \
         description, metadata, secret, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) RETURNING {WEBHOOK_COLUMNS}"
    );
    let inserted = rows(
        c,
        &sql,
        &[
            &w.id,
            &w.client_id,
            &w.url,
            &codec::json_text(&w.events),
            &w.format.as_str(),
            &w.signature_header,
            &w.enabled,
            &pg_text(&w.description),
            &codec::json_text(&w.metadata),
            &w.secret,
            &w.now_ms,
        ],
    )
    .await?;
    let first = inserted
        .first()
        .ok_or_else(|| StoreError::Database("the new webhook vanished".to_owned()))?;
    webhook_from_row(first)
}

pub(super) async fn get_webhook(
    c: &impl GenericClient,
    client_id: &str,
    id: &str,
) -> Result<Option<WebhookRecord>, StoreError> {
    let sql = format!(
        "SELECT {WEBHOOK_COLUMNS} FROM webhooks \
         WHERE id = $1 AND client_id = $2 AND deleted_at IS NULL"
    );
    row(c, &sql, &[&id, &client_id])
        .await?
        .map(|r| webhook_from_row(&r))
        .transpose()
}

pub(super) async fn list_webhooks(
    c: &impl GenericClient,
    client_id: &str,
    page: &PageRequest,
) -> Result<Page<WebhookRecord>, StoreError> {
    let after = codec::decode_cursor(page.cursor.as_deref())?.unwrap_or(0);
    let sql = format!(
        "SELECT {WEBHOOK_COLUMNS}, key FROM webhooks \
         WHERE client_id = $1 AND deleted_at IS NULL AND key > $2 \
         AND listen_seen_at IS NULL ORDER BY key LIMIT $3"
    );
    let found = rows(c, &sql, &[&client_id, &after, &codec::limit_plus_one(page)]).await?;
    let items = found
        .iter()
        .map(|r| {
            Ok((
                webhook_from_row(r)?,
                r.try_get::<_, i64>(AFTER_WEBHOOK_COLUMNS)?,
            ))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(codec::paginate(items, page.limit))
}

/// Makes `rotation.secret` the webhook's secret and the current one its previous secret
/// (valid until `rotation.previous_valid_until_ms`, or not at all if that has passed). One
/// statement: concurrent rotations apply one after the other on the row's lock.
pub(super) async fn rotate_webhook_secret(
    c: &impl GenericClient,
    client_id: &str,
    id: &str,
    rotation: &SecretRotation,
) -> Result<Option<WebhookRecord>, StoreError> {
    let keep_previous = rotation.previous_valid_until_ms > rotation.now_ms;
    let sql = format!(
        "UPDATE webhooks SET \
         previous_secret = CASE WHEN $1::boolean THEN secret END, \
         previous_secret_until = CASE WHEN $1::boolean THEN $2::bigint END, \
         secret = $3, updated_at = $4 \
         WHERE id = $5 AND client_id = $6 AND deleted_at IS NULL RETURNING {WEBHOOK_COLUMNS}"
    );
    row(
        c,
        &sql,
        &[
            &keep_previous,
            &rotation.previous_valid_until_ms,
            &rotation.secret,
            &rotation.now_ms,
            &id,
            &client_id,
        ],
    )
    .await?
    .map(|r| webhook_from_row(&r))
    .transpose()
}

/// Locks the webhook's row for the rest of the transaction, so concurrent changes (from
/// this node or another) apply one after the other.
pub(super) async fn update_webhook(
    c: &impl GenericClient,
    client_id: &str,
    id: &str,
    changes: &WebhookChanges,
) -> Result<Option<WebhookRecord>, StoreError> {
    let sql = format!(
        "SELECT {WEBHOOK_COLUMNS}, key FROM webhooks \
         WHERE id = $1 AND client_id = $2 AND deleted_at IS NULL FOR UPDATE"
    );
    let Some(found) = row(c, &sql, &[&id, &client_id]).await? else {
        return Ok(None);
    };
    let current = webhook_from_row(&found)?;
    let key: i64 = found.try_get(AFTER_WEBHOOK_COLUMNS)?;
    let enabled = changes.enabled.unwrap_or(current.enabled);
    let re_enabled = enabled && !current.enabled;
    // Re-enabling clears the reason it was disabled, and the failure streak that may have
    // caused it (or the next failure would disable it again); disabling by hand records none.
    let disabled_reason = if enabled {
        None
    } else {
        current.disabled_reason.clone()
    };
    let description = changes
        .description
        .clone()
        .unwrap_or(current.description.clone());
    let sql = format!(
        "UPDATE webhooks SET url = $1, events = $2, format = $3, signature_header = $4, \
         enabled = $5, disabled_reason = $6, description = $7, metadata = $8, updated_at = $9, \
         consecutive_failures = CASE WHEN $11 THEN 0 ELSE consecutive_failures END, \
         failing_since = CASE WHEN $11 THEN NULL ELSE failing_since END \
         WHERE key = $10 RETURNING {WEBHOOK_COLUMNS}"
    );
    let updated = rows(
        c,
        &sql,
        &[
            changes.url.as_ref().unwrap_or(&current.url),
            &codec::json_text(changes.events.as_ref().unwrap_or(&current.events)),
            &changes.format.unwrap_or(current.format).as_str(),
            changes
                .signature_header
                .as_ref()
                .unwrap_or(&current.signature_header),
            &enabled,
            &disabled_reason,
            &pg_text(&description),
            &codec::json_text(changes.metadata.as_ref().unwrap_or(&current.metadata)),
            &changes.now_ms,
            &key,
            &re_enabled,
        ],
    )
    .await?;
    if current.enabled && !enabled {
        cancel_pending_deliveries(c, key, changes.now_ms).await?;
    }
    updated.first().map(webhook_from_row).transpose()
}

pub(super) async fn cancel_pending_deliveries(
    c: &impl GenericClient,
    webhook_key: i64,
    now_ms: i64,
) -> Result<(), StoreError> {
    execute(
        c,
        "UPDATE deliveries SET state = $1, lease_token = NULL, updated_at = $2 \
         WHERE state = 0 AND webhook_key = $3",
        &[&state_code(DeliveryState::Cancelled), &now_ms, &webhook_key],
    )
    .await?;
    Ok(())
}

pub(super) async fn delete_webhook(
    c: &impl GenericClient,
    client_id: &str,
    id: &str,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let deleted = row(
        c,
        "UPDATE webhooks SET deleted_at = $1, enabled = FALSE \
         WHERE id = $2 AND client_id = $3 AND deleted_at IS NULL RETURNING key",
        &[&now_ms, &id, &client_id],
    )
    .await?;
    let Some(deleted) = deleted else {
        return Ok(false);
    };
    cancel_pending_deliveries(c, deleted.try_get(0)?, now_ms).await?;
    Ok(true)
}

pub(super) async fn list_event_types(
    c: &impl GenericClient,
    client_id: &str,
) -> Result<Vec<EventTypeRecord>, StoreError> {
    rows(
        c,
        "SELECT name, description, created_at FROM event_types WHERE client_id = $1 ORDER BY name",
        &[&client_id],
    )
    .await?
    .iter()
    .map(|r| {
        Ok(EventTypeRecord {
            name: r.try_get(0)?,
            description: r.try_get(1)?,
            created_at_ms: r.try_get(2)?,
        })
    })
    .collect()
}

pub(super) async fn insert_event_type(
    c: &impl GenericClient,
    t: &NewEventType,
) -> Result<EventTypeRecord, StoreError> {
    let inserted = execute(
        c,
        "INSERT INTO event_types (client_id, name, description, created_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        &[&t.client_id, &t.name, &pg_text(&t.description), &t.now_ms],
    )
    .await?;
    if inserted == 0 {
        return Err(StoreError::Conflict(format!("event type `{}`", t.name)));
    }
    Ok(EventTypeRecord {
        name: t.name.clone(),
        description: t.description.clone(),
        created_at_ms: t.now_ms,
    })
}

const EVENT_COLUMNS: &str = "id, type, data, received_at";

fn event_from_row(row: &Row) -> Result<EventRecord, StoreError> {
    Ok(codec::event_record(
        row.try_get(0)?,
        row.try_get(1)?,
        row.try_get(2)?,
        row.try_get(3)?,
    ))
}

/// An enabled webhook as fan-out and hand-off see it.
pub(super) struct Subscriber {
    pub(super) key: i64,
    pub(super) filters: Vec<EventFilter>,
    pub(super) id: String,
    pub(super) url: String,
    pub(super) format: hookd_core::envelope::EnvelopeFormat,
    pub(super) signature_header: String,
    /// As stored (sealed or in clear): opened only for a hand-off.
    pub(super) secret: String,
    /// As stored: whether it is still valid is decided per event.
    pub(super) previous_secret: Option<PreviousSecret>,
}

/// The enabled webhooks of each of `client_ids`. Read at every publish: another node may
/// have changed webhooks a moment ago, so there is no cache to go stale.
pub(super) async fn load_subscribers(
    c: &impl GenericClient,
    client_ids: &[&str],
) -> Result<HashMap<String, Vec<Subscriber>>, StoreError> {
    let found = rows(
        c,
        "SELECT client_id, key, events, id, url, format, signature_header, secret, \
         previous_secret, previous_secret_until FROM webhooks \
         WHERE client_id = ANY($1) AND enabled AND deleted_at IS NULL",
        &[&client_ids],
    )
    .await?;
    let mut by_client: HashMap<String, Vec<Subscriber>> = HashMap::new();
    for r in &found {
        let filters: Vec<String> = serde_json::from_str(r.try_get(2)?)
            .map_err(|e| StoreError::Corrupt(format!("webhook filters: {e}")))?;
        let format: &str = r.try_get(5)?;
        by_client
            .entry(r.try_get(0)?)
            .or_default()
            .push(Subscriber {
                key: r.try_get(1)?,
                filters: filters
                    .iter()
                    .map(|f| EventFilter::from_stored(f))
                    .collect(),
                id: r.try_get(3)?,
                url: r.try_get(4)?,
                format: format.parse().map_err(StoreError::Corrupt)?,
                signature_header: r.try_get(6)?,
                secret: r.try_get(7)?,
                previous_secret: PreviousSecret::current(r.try_get(8)?, r.try_get(9)?, i64::MIN),
            });
    }
    Ok(by_client)
}

pub(super) async fn find_existing_event(
    c: &impl GenericClient,
    client_id: &str,
    event: &NewEvent,
) -> Result<Option<EventRecord>, StoreError> {
    if let Some(key) = &event.idempotency_key {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE client_id = $1 AND idempotency_key = $2"
        );
        if let Some(found) = row(c, &sql, &[&client_id, key]).await? {
            return Ok(Some(event_from_row(&found)?));
        }
    }
    if !event.id_from_client {
        // A generated id that clashes is not a repeat: the write fails as a whole.
        return Ok(None);
    }
    let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE client_id = $1 AND id = $2");
    row(c, &sql, &[&client_id, &event.id])
        .await?
        .map(|r| event_from_row(&r))
        .transpose()
}

pub(super) async fn list_events(
    c: &impl GenericClient,
    client_id: &str,
    query: &EventQuery,
    page: &PageRequest,
) -> Result<Page<EventRecord>, StoreError> {
    let before = codec::decode_cursor(page.cursor.as_deref())?.unwrap_or(i64::MAX);
    let sql = format!(
        "SELECT {EVENT_COLUMNS}, key, test FROM events WHERE client_id = $1 AND key < $2 \
         AND ($3::text IS NULL OR type = $3) AND ($4::bigint IS NULL OR received_at >= $4) \
         AND ($5::bigint IS NULL OR received_at < $5) ORDER BY key DESC LIMIT $6"
    );
    let found = rows(
        c,
        &sql,
        &[
            &client_id,
            &before,
            &query.event_type,
            &query.since_ms,
            &query.until_ms,
            &codec::limit_plus_one(page),
        ],
    )
    .await?;
    let items = found
        .iter()
        .map(|r| {
            Ok((
                event_from_row(r)?.with_test(r.try_get(5)?),
                r.try_get::<_, i64>(4)?,
            ))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(codec::paginate(items, page.limit))
}

/// The key of the client's webhook `webhook_id`, unless it is unknown or deleted.
pub(super) async fn webhook_key_of(
    c: &impl GenericClient,
    client_id: &str,
    webhook_id: &str,
) -> Result<Option<i64>, StoreError> {
    match row(
        c,
        "SELECT key FROM webhooks WHERE id = $1 AND client_id = $2 AND deleted_at IS NULL",
        &[&webhook_id, &client_id],
    )
    .await?
    {
        Some(found) => Ok(Some(found.try_get(0)?)),
        None => Ok(None),
    }
}

/// A webhook's delivery log, newest first.
///
/// Index-backed. The keyset condition is written as a row comparison with the order
/// `(webhook_key, key) DESC`, which only `deliveries_by_webhook` yields: with a plain
/// `webhook_key = $1 AND key < $2 ORDER BY key DESC` the planner, assuming a webhook's
/// deliveries are spread evenly, walked the primary key backwards filtering on
/// `webhook_key`, which reads the whole table for a quiet webhook. `EXPLAIN` (50 000
/// deliveries over 20 webhooks, analysed; custom and generic plans) shows `Limit ->
/// Nested Loop -> Index Scan Backward using deliveries_by_webhook on deliveries d` (Index
/// Cond: `webhook_key >= $1 AND ROW(webhook_key, key) < ROW($1, $2)`, no sort) with
/// `Index Scan using events_pkey on events e`, unfiltered and with `state` = failed,
/// succeeded or cancelled (a filter on the rows the index yields). For `pending` the
/// planner may instead read that webhook's pending rows from the partial index
/// `deliveries_due_by_webhook` and sort them (cheaper when few are pending), which is
/// index-backed too. A narrow `since`/`until` window may be served from
/// `events_by_received_at` with a hash join; otherwise it is checked on the event each row
/// joins to.
pub(super) async fn list_webhook_deliveries(
    c: &impl GenericClient,
    client_id: &str,
    webhook_id: &str,
    query: &DeliveryQuery,
    page: &PageRequest,
) -> Result<Option<Page<WebhookDelivery>>, StoreError> {
    let before = codec::decode_cursor(page.cursor.as_deref())?.unwrap_or(i64::MAX);
    let Some(webhook_key) = webhook_key_of(c, client_id, webhook_id).await? else {
        return Ok(None);
    };
    let found = rows(
        c,
        "SELECT d.key, d.state, d.attempts, d.next_attempt_at, d.last_status, d.updated_at, \
         e.id, e.type, e.received_at \
         FROM deliveries d JOIN events e ON e.key = d.event_key \
         WHERE d.webhook_key >= $1 AND (d.webhook_key, d.key) < ($1, $2) \
         AND ($3::smallint IS NULL OR d.state = $3) \
         AND ($4::bigint IS NULL OR e.received_at >= $4) \
         AND ($5::bigint IS NULL OR e.received_at < $5) \
         ORDER BY d.webhook_key DESC, d.key DESC LIMIT $6",
        &[
            &webhook_key,
            &before,
            &query.state.map(state_code),
            &query.since_ms,
            &query.until_ms,
            &codec::limit_plus_one(page),
        ],
    )
    .await?;
    let mut items = Vec::with_capacity(found.len());
    for r in &found {
        let state: i16 = r.try_get(1)?;
        let state = DeliveryState::from_code(i64::from(state))
            .ok_or_else(|| StoreError::Corrupt(format!("delivery state {state}")))?;
        let attempts: i32 = r.try_get(2)?;
        let last_status: Option<i32> = r.try_get(4)?;
        let delivery = DeliveryRecord {
            webhook_id: webhook_id.to_owned(),
            state,
            attempts: u32::try_from(attempts).unwrap_or(0),
            next_attempt_at_ms: if state == DeliveryState::Pending {
                Some(r.try_get(3)?)
            } else {
                None
            },
            last_response_status: last_status.and_then(|s| u16::try_from(s).ok()),
            updated_at_ms: r.try_get(5)?,
        };
        items.push((
            WebhookDelivery {
                event_id: r.try_get(6)?,
                event_type: r.try_get(7)?,
                event_received_at_ms: r.try_get(8)?,
                delivery,
            },
            r.try_get::<_, i64>(0)?,
        ));
    }
    Ok(Some(codec::paginate(items, page.limit)))
}

async fn find_event(
    c: &impl GenericClient,
    client_id: &str,
    event_id: &str,
) -> Result<Option<(i64, EventRecord)>, StoreError> {
    let sql =
        format!("SELECT {EVENT_COLUMNS}, key, test FROM events WHERE client_id = $1 AND id = $2");
    row(c, &sql, &[&client_id, &event_id])
        .await?
        .map(|r| Ok((r.try_get(4)?, event_from_row(&r)?.with_test(r.try_get(5)?))))
        .transpose()
}

pub(super) async fn get_event(
    c: &impl GenericClient,
    client_id: &str,
    event_id: &str,
) -> Result<Option<EventDetail>, StoreError> {
    let Some((event_key, event)) = find_event(c, client_id, event_id).await? else {
        return Ok(None);
    };
    let found = rows(
        c,
        "SELECT w.id, d.state, d.attempts, d.next_attempt_at, d.last_status, d.updated_at \
         FROM deliveries d JOIN webhooks w ON w.key = d.webhook_key \
         WHERE d.event_key = $1 ORDER BY d.key",
        &[&event_key],
    )
    .await?;
    let mut deliveries = Vec::with_capacity(found.len());
    for r in &found {
        let state: i16 = r.try_get(1)?;
        let state = DeliveryState::from_code(i64::from(state))
            .ok_or_else(|| StoreError::Corrupt(format!("delivery state {state}")))?;
        let attempts: i32 = r.try_get(2)?;
        let last_status: Option<i32> = r.try_get(4)?;
        deliveries.push(DeliveryRecord {
            webhook_id: r.try_get(0)?,
            state,
            attempts: u32::try_from(attempts).unwrap_or(0),
            next_attempt_at_ms: if state == DeliveryState::Pending {
                Some(r.try_get(3)?)
            } else {
                None
            },
            last_response_status: last_status.and_then(|s| u16::try_from(s).ok()),
            updated_at_ms: r.try_get(5)?,
        });
    }
    Ok(Some(EventDetail { event, deliveries }))
}

pub(super) async fn list_attempts(
    c: &impl GenericClient,
    client_id: &str,
    event_id: &str,
) -> Result<Option<(EventRecord, Vec<AttemptLog>)>, StoreError> {
    let Some((event_key, event)) = find_event(c, client_id, event_id).await? else {
        return Ok(None);
    };
    let found = rows(
        c,
        "SELECT a.id, w.id, a.attempt_number, a.started_at, a.duration_ms, a.format, \
         a.request_headers, a.response_status, a.response_headers, a.response_body, a.error \
         FROM attempts a JOIN webhooks w ON w.key = a.webhook_key \
         WHERE a.event_key = $1 ORDER BY a.key",
        &[&event_key],
    )
    .await?;
    let mut attempts = Vec::with_capacity(found.len());
    for r in &found {
        let attempt_number: i32 = r.try_get(2)?;
        let format: &str = r.try_get(5)?;
        let status: Option<i32> = r.try_get(7)?;
        attempts.push(AttemptLog {
            id: r.try_get(0)?,
            webhook_id: r.try_get(1)?,
            attempt_number: u32::try_from(attempt_number).unwrap_or(0),
            started_at_ms: r.try_get(3)?,
            duration_ms: r.try_get(4)?,
            format: format.parse().map_err(StoreError::Corrupt)?,
            request_headers: codec::headers_from_text(r.try_get(6)?)?,
            response_status: status.and_then(|s| u16::try_from(s).ok()),
            response_headers: codec::headers_from_text(r.try_get(8)?)?,
            response_body: r.try_get(9)?,
            error: r.try_get(10)?,
        });
    }
    Ok(Some((event, attempts)))
}

/// Leases due deliveries in one statement: webhooks with due work, earliest first, each
/// through its own `(webhook_key, next_attempt_at)` index range, at most its room under
/// `max_per_webhook`; rows another node is claiming right now are skipped, not waited for,
/// and so are the `hookd listen` sessions of other nodes than `node`.
pub(super) async fn claim_due(
    c: &impl GenericClient,
    claim: &ClaimRequest,
    node: &str,
) -> Result<Vec<ClaimedDelivery>, StoreError> {
    let (busy_keys, busy_counts): (Vec<i64>, Vec<i64>) = claim
        .in_flight
        .iter()
        .map(|(key, n)| (*key, count(*n)))
        .unzip();
    let lease_until = claim.now_ms.saturating_add(claim.lease_ms);
    let found = rows(
        c,
        "WITH busy AS (SELECT * FROM unnest($4::bigint[], $5::bigint[]) AS b(webhook_key, n)), \
         hooks AS ( \
           SELECT w.key, GREATEST(0, $3 - COALESCE(b.n, 0)) AS room, first.at \
           FROM webhooks w \
           CROSS JOIN LATERAL ( \
             SELECT d.next_attempt_at AS at FROM deliveries d \
             WHERE d.webhook_key = w.key AND d.state = 0 \
             ORDER BY d.next_attempt_at LIMIT 1) first \
           LEFT JOIN busy b ON b.webhook_key = w.key \
           WHERE w.enabled AND first.at <= $1 \
             AND (w.listen_node IS NULL OR w.listen_node = $7)), \
         picked AS ( \
           SELECT due.key FROM (SELECT * FROM hooks ORDER BY at) h \
           CROSS JOIN LATERAL ( \
             SELECT d.key FROM deliveries d \
             WHERE d.webhook_key = h.key AND d.state = 0 AND d.next_attempt_at <= $1 \
             ORDER BY d.next_attempt_at LIMIT h.room FOR UPDATE SKIP LOCKED) due \
           LIMIT $2), \
         leased AS ( \
           UPDATE deliveries d SET next_attempt_at = $6, lease_token = nextval('lease_tokens') \
           WHERE d.key = ANY(ARRAY(SELECT key FROM picked)) \
           RETURNING d.key, d.lease_token, d.attempts, d.webhook_key, d.event_key) \
         SELECT l.key, l.lease_token, l.attempts, l.webhook_key, w.id, w.url, w.format, \
           w.signature_header, w.secret, e.id, e.type, e.data, e.received_at, \
           w.previous_secret, w.previous_secret_until, e.test \
         FROM leased l JOIN webhooks w ON w.key = l.webhook_key \
           JOIN events e ON e.key = l.event_key",
        &[
            &claim.now_ms,
            &count(claim.limit),
            &count(claim.max_per_webhook),
            &busy_keys,
            &busy_counts,
            &lease_until,
            &node,
        ],
    )
    .await?;
    found
        .iter()
        .map(|r| {
            let attempts: i32 = r.try_get(2)?;
            let format: &str = r.try_get(6)?;
            Ok(ClaimedDelivery {
                delivery_key: r.try_get(0)?,
                lease_token: r.try_get(1)?,
                attempt_number: u32::try_from(attempts).unwrap_or(0) + 1,
                webhook_key: r.try_get(3)?,
                webhook_id: r.try_get(4)?,
                url: r.try_get(5)?,
                format: format.parse().map_err(StoreError::Corrupt)?,
                signature_header: r.try_get(7)?,
                secret: r.try_get(8)?,
                previous_secret: PreviousSecret::current(
                    r.try_get(13)?,
                    r.try_get(14)?,
                    claim.now_ms,
                ),
                event: codec::event_record(
                    r.try_get(9)?,
                    r.try_get(10)?,
                    r.try_get(11)?,
                    r.try_get(12)?,
                )
                .with_test(r.try_get(15)?),
            })
        })
        .collect()
}

/// Wakes every node's dispatcher (delivered at commit when sent inside a transaction).
pub(super) async fn notify_due(c: &impl GenericClient, channel: &str) -> Result<(), StoreError> {
    execute(c, "SELECT pg_notify($1, '')", &[&channel]).await?;
    Ok(())
}

/// The pending queue, from the partial index `deliveries_due` (an index-only scan once the
/// table is vacuumed).
pub(super) async fn queue_stats(
    c: &impl GenericClient,
    now_ms: i64,
) -> Result<crate::model::QueueStats, StoreError> {
    let found = row(
        c,
        "SELECT COUNT(*), COUNT(*) FILTER (WHERE next_attempt_at <= $1), MIN(next_attempt_at) \
         FROM deliveries WHERE state = 0",
        &[&now_ms],
    )
    .await?;
    let Some(r) = found else {
        return Ok(crate::model::QueueStats::default());
    };
    let (pending, due, oldest): (i64, i64, Option<i64>) =
        (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
    Ok(crate::model::QueueStats {
        pending: u64::try_from(pending).unwrap_or(0),
        due: u64::try_from(due).unwrap_or(0),
        oldest_due_at_ms: oldest,
    })
}

pub(super) async fn next_due_at(c: &impl GenericClient) -> Result<Option<i64>, StoreError> {
    let found = row(
        c,
        "SELECT MIN(next_attempt_at) FROM deliveries WHERE state = 0",
        &[],
    )
    .await?;
    Ok(match found {
        Some(r) => r.try_get(0)?,
        None => None,
    })
}

fn state_code(state: DeliveryState) -> i16 {
    i16::try_from(state.code()).unwrap_or(i16::MAX)
}

/// The outcome statement of [`record_attempts`] (see the comment there).
const RECORD_OUTCOMES: &str = "WITH a AS ( \
           SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::int[], $5::bigint[], \
             $6::bigint[], $7::text[], $8::text[], $9::int[], $10::text[], $11::text[], \
             $12::text[], $13::smallint[], $14::bigint[]) \
           AS a(id, delivery_key, lease_token, attempt_number, started_at, duration_ms, format, \
             request_headers, response_status, response_headers, response_body, error, \
             next_state, next_at)), \
         logged AS ( \
           INSERT INTO attempts (id, delivery_key, event_key, webhook_key, attempt_number, \
             started_at, duration_ms, format, request_headers, response_status, \
             response_headers, response_body, error) \
           SELECT a.id, a.delivery_key, d.event_key, d.webhook_key, a.attempt_number, \
             a.started_at, a.duration_ms, a.format, a.request_headers, a.response_status, \
             a.response_headers, a.response_body, a.error \
           FROM a JOIN deliveries d ON d.key = a.delivery_key) \
         UPDATE deliveries d SET state = a.next_state, attempts = a.attempt_number, \
           next_attempt_at = a.next_at, lease_token = NULL, last_status = a.response_status, \
           updated_at = a.started_at + a.duration_ms \
         FROM a WHERE d.key = a.delivery_key AND d.lease_token = a.lease_token \
         RETURNING d.key";

/// Logs attempts and moves their deliveries on where the lease is still the caller's, in
/// one statement. Returns the deliveries whose state the attempts decided.
pub(super) async fn record_attempts(
    c: &impl GenericClient,
    attempts: &[FinishedAttempt],
) -> Result<HashSet<i64>, StoreError> {
    let n = attempts.len();
    let mut ids = Vec::with_capacity(n);
    let mut delivery_keys = Vec::with_capacity(n);
    let mut lease_tokens = Vec::with_capacity(n);
    let mut numbers = Vec::with_capacity(n);
    let mut started = Vec::with_capacity(n);
    let mut durations = Vec::with_capacity(n);
    let mut formats = Vec::with_capacity(n);
    let mut request_headers = Vec::with_capacity(n);
    let mut statuses = Vec::with_capacity(n);
    let mut response_headers = Vec::with_capacity(n);
    let mut bodies = Vec::with_capacity(n);
    let mut errors = Vec::with_capacity(n);
    let mut states = Vec::with_capacity(n);
    let mut next_at = Vec::with_capacity(n);
    for a in attempts {
        let finished_at = a.started_at_ms + a.duration_ms;
        let (state, at) = match &a.next {
            NextStep::Succeeded => (DeliveryState::Succeeded, finished_at),
            NextStep::Failed { .. } => (DeliveryState::Failed, finished_at),
            NextStep::RetryAt { at_ms } => (DeliveryState::Pending, *at_ms),
        };
        ids.push(a.id.as_str());
        delivery_keys.push(a.delivery_key);
        lease_tokens.push(a.lease_token);
        numbers.push(i32::try_from(a.attempt_number).unwrap_or(i32::MAX));
        started.push(a.started_at_ms);
        durations.push(a.duration_ms);
        formats.push(a.format.as_str());
        request_headers.push(codec::headers_text(&a.request_headers));
        statuses.push(a.response_status.map(i32::from));
        response_headers.push(codec::headers_text(&a.response_headers));
        bodies.push(pg_text(&a.response_body));
        errors.push(pg_text(&a.error));
        states.push(state_code(state));
        next_at.push(at);
    }
    // Both parts see the same snapshot: the log is written whatever the lease says; the
    // verdict only where the lease is still the caller's (a stale lease means the delivery
    // was claimed again, or cancelled, meanwhile). Every change that takes a delivery out
    // of `pending` also clears its lease token, so a matching token means still pending;
    // saying `state = 0` as well let the planner read all pending deliveries through the
    // partial index `deliveries_due` (whose size it cannot know between ANALYZEs) instead
    // of finding the batch's rows by primary key.
    let decided = rows(
        c,
        RECORD_OUTCOMES,
        &[
            &ids,
            &delivery_keys,
            &lease_tokens,
            &numbers,
            &started,
            &durations,
            &formats,
            &request_headers,
            &statuses,
            &response_headers,
            &bodies,
            &errors,
            &states,
            &next_at,
        ],
    )
    .await?;
    decided.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// Makes leased deliveries due now and leased to no one, if the lease is still the caller's.
pub(super) async fn release_leases(
    c: &impl GenericClient,
    leases: &[(i64, i64)],
    now_ms: i64,
) -> Result<(), StoreError> {
    let (keys, tokens): (Vec<i64>, Vec<i64>) = leases.iter().copied().unzip();
    execute(
        c,
        "UPDATE deliveries d SET next_attempt_at = $1, lease_token = NULL \
         FROM unnest($2::bigint[], $3::bigint[]) AS r(key, token) \
         WHERE d.key = r.key AND d.lease_token = r.token AND d.state = 0",
        &[&now_ms, &keys, &tokens],
    )
    .await?;
    Ok(())
}

/// Retention: deletes up to `max_events` of the oldest events received before `cutoff_ms`
/// that have no pending delivery (nor one that changed since the cutoff: an attempt still
/// in flight when its delivery was cancelled may yet be logged), with their deliveries and
/// attempts, in one statement. Rows another node is purging are skipped, not waited for.
pub(super) async fn purge_events_received_before(
    c: &impl GenericClient,
    cutoff_ms: i64,
    max_events: usize,
) -> Result<crate::model::PurgeCount, StoreError> {
    let found = row(
        c,
        "WITH doomed AS ( \
           SELECT e.key FROM events e \
           WHERE e.received_at < $1 AND NOT EXISTS ( \
             SELECT 1 FROM deliveries d WHERE d.event_key = e.key \
             AND (d.state = 0 OR d.updated_at >= $1)) \
           ORDER BY e.received_at LIMIT $2 \
           FOR UPDATE OF e SKIP LOCKED), \
         gone_attempts AS ( \
           DELETE FROM attempts a USING doomed WHERE a.event_key = doomed.key RETURNING 1), \
         gone_deliveries AS ( \
           DELETE FROM deliveries d USING doomed WHERE d.event_key = doomed.key RETURNING 1), \
         gone_events AS ( \
           DELETE FROM events e USING doomed WHERE e.key = doomed.key RETURNING 1) \
         SELECT (SELECT COUNT(*) FROM gone_events), (SELECT COUNT(*) FROM gone_deliveries), \
           (SELECT COUNT(*) FROM gone_attempts)",
        &[&cutoff_ms, &count(max_events)],
    )
    .await?;
    let Some(r) = found else {
        return Ok(crate::model::PurgeCount::default());
    };
    let (events, deliveries, attempts): (i64, i64, i64) =
        (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
    let widen = |n: i64| u64::try_from(n).unwrap_or(0);
    Ok(crate::model::PurgeCount {
        events: widen(events),
        deliveries: widen(deliveries),
        attempts: widen(attempts),
    })
}

#[cfg(test)]
mod plans {
    use hookd_testkit::postgres::{TestSchema, enabled};

    use super::RECORD_OUTCOMES;
    use crate::postgres::PostgresStore;

    /// Tables far larger than when hookd started and never analysed (a fresh install, or
    /// this test server with autovacuum off): the outcome statement must still find its
    /// batch by primary key, not read the table or every pending delivery.
    #[tokio::test]
    async fn outcomes_find_their_deliveries_by_key_in_a_grown_unanalysed_table() {
        if !enabled("outcomes_find_their_deliveries_by_key_in_a_grown_unanalysed_table") {
            return;
        }
        let schema = TestSchema::create().await;
        let store = PostgresStore::connect(schema.url()).await.expect("store");
        let c = store.engine.get().await.expect("connection");
        let mode: String = c
            .query_one("SHOW plan_cache_mode", &[])
            .await
            .expect("show")
            .get(0);
        assert_eq!(mode, "force_custom_plan");
        c.batch_execute(
            "INSERT INTO clients VALUES ('c', 'c', '\\x00', 0);
             INSERT INTO webhooks (id, client_id, url, events, format, signature_header, \
               enabled, metadata, secret, created_at, updated_at) \
               VALUES ('w', 'c', 'https://example.com/', '[\"*\"]', 'standard', \
               'webhook-signature', true, '{}', 's', 0, 0);
             INSERT INTO events (client_id, id, type, data, received_at) \
               SELECT 'c', 'evt_' || n, 'a.b', '{}', n FROM generate_series(1, 20000) n;
             INSERT INTO deliveries (event_key, webhook_key, state, attempts, next_attempt_at, \
               lease_token, updated_at) \
               SELECT key, 1, (key % 2)::smallint, 0, key, key, 0 FROM events;",
        )
        .await
        .expect("fill");
        // A batch as the engine sends them: 64 outcomes.
        let n = 64;
        let texts = vec!["x"; n];
        let keys: Vec<i64> = (1..=64).map(|k| k * 300).collect();
        let empty: Vec<Option<&str>> = vec![None; n];
        let plan: Vec<String> = c
            .query(
                &format!("EXPLAIN {RECORD_OUTCOMES}"),
                &[
                    &texts,
                    &keys,
                    &keys,
                    &vec![1_i32; n],
                    &vec![0_i64; n],
                    &vec![1_i64; n],
                    &texts,
                    &texts,
                    &vec![Some(200_i32); n],
                    &texts,
                    &empty,
                    &empty,
                    &vec![1_i16; n],
                    &vec![1_i64; n],
                ],
            )
            .await
            .expect("explain")
            .iter()
            .map(|r| r.get(0))
            .collect();
        let plan = plan.join("\n");
        assert!(plan.contains("deliveries_pkey"), "{plan}");
        assert!(!plan.contains("Seq Scan on deliveries"), "{plan}");
        assert!(!plan.contains("deliveries_due"), "{plan}");
    }
}
