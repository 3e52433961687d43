//! The SQL of the SQLite backend, one function per store operation, each taking the
//! connection it runs on (the writer's transaction or a read connection).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};

use hookd_core::envelope::EnvelopeFormat;
use hookd_core::event_type::{EventFilter, any_matches};
use rusqlite::{Connection, OptionalExtension, Row, params};
use tokio::sync::mpsc;

use super::due_index::DueIndex;
use crate::model::{
    AttemptLog, ClaimRequest, ClaimedDelivery, ClientRecord, DeliveryRecord, DeliveryState,
    EventDetail, EventQuery, EventRecord, EventTypeRecord, FinishedAttempt, NewClient, NewEvent,
    NewEventType, NewWebhook, NextStep, Page, PageRequest, PreviousSecret, Published,
    SecretRotation, WebhookChanges, WebhookRecord,
};
use crate::model::{DeliveryQuery, WebhookDelivery};
use crate::sealing::{OpenedSecrets, SecretKeys};
use crate::{StoreError, codec};

pub(super) fn insert_client(conn: &Connection, c: &NewClient) -> Result<ClientRecord, StoreError> {
    conn.prepare_cached(
        "INSERT INTO clients (id, name, secret_sha256, created_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![c.id, c.name, &c.secret_sha256[..], c.now_ms])?;
    Ok(ClientRecord {
        id: c.id.clone(),
        name: c.name.clone(),
        secret_sha256: c.secret_sha256,
        created_at_ms: c.now_ms,
    })
}

pub(super) fn find_client(conn: &Connection, id: &str) -> Result<Option<ClientRecord>, StoreError> {
    let row = conn
        .prepare_cached("SELECT id, name, secret_sha256, created_at FROM clients WHERE id = ?1")?
        .query_row([id], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, Vec<u8>>(2)?,
                row.get(3)?,
            ))
        })
        .optional()?;
    row.map(|(id, name, digest, created_at_ms)| {
        let secret_sha256 = codec::client_digest(&id, &digest)?;
        Ok(ClientRecord {
            id,
            name,
            secret_sha256,
            created_at_ms,
        })
    })
    .transpose()
}

const WEBHOOK_COLUMNS: &str = "id, client_id, url, events, format, signature_header, enabled, \
     disabled_reason, description, metadata, secret, created_at, updated_at, \
     attempts_succeeded, attempts_failed, last_success_at, last_failure_at, \
     consecutive_failures, failing_since";
/// Where a column selected after [`WEBHOOK_COLUMNS`] is.
const AFTER_WEBHOOK_COLUMNS: usize = 19;

fn webhook_from_row(row: &Row<'_>) -> rusqlite::Result<Result<WebhookRecord, StoreError>> {
    let id: String = row.get(0)?;
    let events: String = row.get(3)?;
    let format: String = row.get(4)?;
    let metadata: String = row.get(9)?;
    let (events, format, metadata) = match codec::webhook_fields(&id, &events, &format, &metadata) {
        Ok(p) => p,
        Err(e) => return Ok(Err(e)),
    };
    Ok(Ok(WebhookRecord {
        id,
        client_id: row.get(1)?,
        url: row.get(2)?,
        events,
        format,
        signature_header: row.get(5)?,
        enabled: row.get(6)?,
        disabled_reason: row.get(7)?,
        description: row.get(8)?,
        metadata,
        secret: row.get(10)?,
        created_at_ms: row.get(11)?,
        updated_at_ms: row.get(12)?,
        health: super::health::health_from_row(row, 13)?,
    }))
}

pub(super) fn insert_webhook(
    conn: &Connection,
    w: &NewWebhook,
) -> Result<WebhookRecord, StoreError> {
    conn.prepare_cached(
        "INSERT INTO webhooks (id, client_id, url, events, format, signature_header, enabled, \
         description, metadata, secret, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11)",
    )?
    .execute(params![
        w.id,
        w.client_id,
        w.url,
        codec::json_text(&w.events),
        w.format.as_str(),
        w.signature_header,
        w.enabled,
        w.description,
        codec::json_text(&w.metadata),
        w.secret,
        w.now_ms
    ])?;
    get_webhook(conn, &w.client_id, &w.id)?
        .ok_or_else(|| StoreError::Database("the new webhook vanished".to_owned()))
}

pub(super) fn get_webhook(
    conn: &Connection,
    client_id: &str,
    id: &str,
) -> Result<Option<WebhookRecord>, StoreError> {
    let sql = format!(
        "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = ?1 AND client_id = ?2 AND deleted_at IS NULL"
    );
    conn.prepare_cached(&sql)?
        .query_row([id, client_id], webhook_from_row)
        .optional()?
        .transpose()
}

pub(super) fn list_webhooks(
    conn: &Connection,
    client_id: &str,
    page: &PageRequest,
) -> Result<Page<WebhookRecord>, StoreError> {
    let after = codec::decode_cursor(page.cursor.as_deref())?.unwrap_or(0);
    let sql = format!(
        "SELECT {WEBHOOK_COLUMNS}, key FROM webhooks \
         WHERE client_id = ?1 AND deleted_at IS NULL AND key > ?2 \
         AND listen_seen_at IS NULL ORDER BY key LIMIT ?3"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(
        params![client_id, after, codec::limit_plus_one(page)],
        |row| {
            Ok((
                webhook_from_row(row)?,
                row.get::<_, i64>(AFTER_WEBHOOK_COLUMNS)?,
            ))
        },
    )?;
    let mut items = Vec::new();
    for row in rows {
        let (webhook, key) = row?;
        items.push((webhook?, key));
    }
    Ok(codec::paginate(items, page.limit))
}

pub(super) fn update_webhook(
    conn: &Connection,
    due: &mut DueIndex,
    client_id: &str,
    id: &str,
    changes: &WebhookChanges,
) -> Result<Option<WebhookRecord>, StoreError> {
    let Some(current) = get_webhook(conn, client_id, id)? else {
        return Ok(None);
    };
    let enabled = changes.enabled.unwrap_or(current.enabled);
    // Re-enabling clears the reason it was disabled, and the failure streak that may have
    // caused it (or the next failure would disable it again); disabling by hand records none.
    let disabled_reason = if enabled {
        None
    } else {
        current.disabled_reason.clone()
    };
    let re_enabled = enabled && !current.enabled;
    let description = changes.description.clone().unwrap_or(current.description);
    conn.prepare_cached(
        "UPDATE webhooks SET url = ?1, events = ?2, format = ?3, signature_header = ?4, \
         enabled = ?5, disabled_reason = ?6, description = ?7, metadata = ?8, updated_at = ?9, \
         consecutive_failures = CASE WHEN ?12 THEN 0 ELSE consecutive_failures END, \
         failing_since = CASE WHEN ?12 THEN NULL ELSE failing_since END \
         WHERE id = ?10 AND client_id = ?11",
    )?
    .execute(params![
        changes.url.as_ref().unwrap_or(&current.url),
        codec::json_text(changes.events.as_ref().unwrap_or(&current.events)),
        changes.format.unwrap_or(current.format).as_str(),
        changes
            .signature_header
            .as_ref()
            .unwrap_or(&current.signature_header),
        enabled,
        disabled_reason,
        description,
        codec::json_text(changes.metadata.as_ref().unwrap_or(&current.metadata)),
        changes.now_ms,
        id,
        client_id,
        re_enabled
    ])?;
    if current.enabled && !enabled {
        cancel_pending_deliveries(conn, due, id, changes.now_ms)?;
    }
    get_webhook(conn, client_id, id)
}

/// Makes `rotation.secret` the webhook's secret and the current one its previous secret
/// (valid until `rotation.previous_valid_until_ms`, or not at all if that has passed).
pub(super) fn rotate_webhook_secret(
    conn: &Connection,
    client_id: &str,
    id: &str,
    rotation: &SecretRotation,
) -> Result<Option<WebhookRecord>, StoreError> {
    let keep_previous = rotation.previous_valid_until_ms > rotation.now_ms;
    let changed = conn
        .prepare_cached(
            "UPDATE webhooks SET \
             previous_secret = CASE WHEN ?1 THEN secret END, \
             previous_secret_until = CASE WHEN ?1 THEN ?2 END, \
             secret = ?3, updated_at = ?4 \
             WHERE id = ?5 AND client_id = ?6 AND deleted_at IS NULL",
        )?
        .execute(params![
            keep_previous,
            rotation.previous_valid_until_ms,
            rotation.secret,
            rotation.now_ms,
            id,
            client_id
        ])?;
    if changed == 0 {
        return Ok(None);
    }
    get_webhook(conn, client_id, id)
}

fn cancel_pending_deliveries(
    conn: &Connection,
    due: &mut DueIndex,
    webhook_id: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    let key: i64 = conn
        .prepare_cached("SELECT key FROM webhooks WHERE id = ?1")?
        .query_row([webhook_id], |row| row.get(0))?;
    cancel_pending_deliveries_of(conn, due, key, now_ms)
}

pub(super) fn cancel_pending_deliveries_of(
    conn: &Connection,
    due: &mut DueIndex,
    webhook_key: i64,
    now_ms: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE deliveries SET state = ?1, lease_token = NULL, updated_at = ?2 \
         WHERE state = 0 AND webhook_key = ?3",
    )?
    .execute(params![
        DeliveryState::Cancelled.code(),
        now_ms,
        webhook_key
    ])?;
    due.forget(webhook_key);
    Ok(())
}

pub(super) fn delete_webhook(
    conn: &Connection,
    due: &mut DueIndex,
    client_id: &str,
    id: &str,
    now_ms: i64,
) -> Result<bool, StoreError> {
    let changed = conn
        .prepare_cached(
            "UPDATE webhooks SET deleted_at = ?1, enabled = 0 \
             WHERE id = ?2 AND client_id = ?3 AND deleted_at IS NULL",
        )?
        .execute(params![now_ms, id, client_id])?;
    if changed > 0 {
        cancel_pending_deliveries(conn, due, id, now_ms)?;
    }
    Ok(changed > 0)
}

pub(super) fn list_event_types(
    conn: &Connection,
    client_id: &str,
) -> Result<Vec<EventTypeRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT name, description, created_at FROM event_types WHERE client_id = ?1 ORDER BY name",
    )?;
    let rows = stmt.query_map([client_id], |row| {
        Ok(EventTypeRecord {
            name: row.get(0)?,
            description: row.get(1)?,
            created_at_ms: row.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub(super) fn insert_event_type(
    conn: &Connection,
    t: &NewEventType,
) -> Result<EventTypeRecord, StoreError> {
    let inserted = conn
        .prepare_cached(
            "INSERT INTO event_types (client_id, name, description, created_at) \
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
        )?
        .execute(params![t.client_id, t.name, t.description, t.now_ms])?;
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

fn event_from_row(row: &Row<'_>) -> rusqlite::Result<EventRecord> {
    Ok(codec::event_record(
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
    ))
}

/// Each client's enabled webhooks with their parsed filters and what sending needs, for
/// fan-out, so publishing neither queries, parses nor decrypts them per event. Writes that
/// change webhooks clear it.
pub(super) struct SubscriberCache {
    by_client: HashMap<String, Subscribers>,
    keys: SecretKeys,
}

type Subscribers = Arc<[Subscriber]>;

/// An enabled webhook as fan-out and hand-off see it.
pub(super) struct Subscriber {
    key: i64,
    filters: Vec<EventFilter>,
    id: String,
    url: String,
    format: EnvelopeFormat,
    signature_header: String,
    /// As stored (sealed or in clear).
    secret: String,
    /// As stored: whether it is still valid is decided per event.
    previous_secret: Option<PreviousSecret>,
    /// Both secrets opened, at the first hand-off to this webhook; `None` if they do not
    /// open (then its deliveries are not handed off).
    opened: OnceLock<Option<OpenedSecrets>>,
}

impl Subscriber {
    fn opened(&self, keys: &SecretKeys) -> Option<&OpenedSecrets> {
        self.opened
            .get_or_init(|| {
                keys.open_for_handoff(&self.id, &self.secret, self.previous_secret.as_ref())
            })
            .as_ref()
    }
}

impl SubscriberCache {
    pub(super) fn new(keys: SecretKeys) -> SubscriberCache {
        SubscriberCache {
            by_client: HashMap::new(),
            keys,
        }
    }

    pub(super) fn clear(&mut self) {
        self.by_client.clear();
    }

    fn get(&mut self, conn: &Connection, client_id: &str) -> Result<Subscribers, StoreError> {
        if let Some(found) = self.by_client.get(client_id) {
            return Ok(Arc::clone(found));
        }
        let loaded: Subscribers = load_subscribers(conn, client_id)?.into();
        self.by_client
            .insert(client_id.to_owned(), Arc::clone(&loaded));
        Ok(loaded)
    }
}

fn load_subscribers(conn: &Connection, client_id: &str) -> Result<Vec<Subscriber>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT key, events, id, url, format, signature_header, secret, previous_secret, \
         previous_secret_until FROM webhooks \
         WHERE client_id = ?1 AND enabled = 1 AND deleted_at IS NULL",
    )?;
    let rows = stmt.query_map([client_id], |row| {
        Ok((
            row.get::<_, i64>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, String>(2)?,
            row.get::<_, String>(3)?,
            row.get::<_, String>(4)?,
            row.get::<_, String>(5)?,
            row.get::<_, String>(6)?,
            PreviousSecret::current(row.get(7)?, row.get(8)?, i64::MIN),
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (key, events, id, url, format, signature_header, secret, previous_secret) = row?;
        let filters: Vec<String> = serde_json::from_str(&events)
            .map_err(|e| StoreError::Corrupt(format!("webhook filters: {e}")))?;
        out.push(Subscriber {
            key,
            filters: filters
                .iter()
                .map(|f| EventFilter::from_stored(f))
                .collect(),
            id,
            url,
            format: format.parse().map_err(StoreError::Corrupt)?,
            signature_header,
            secret,
            previous_secret,
            opened: OnceLock::new(),
        });
    }
    Ok(out)
}

/// Where new deliveries go when this process's engine takes them directly: leased to it
/// at insert, sent through a bounded channel after the commit.
#[derive(Clone)]
pub(super) struct Handoff {
    pub(super) sender: mpsc::Sender<ClaimedDelivery>,
    pub(super) lease_ms: i64,
    pub(super) tokens: Arc<AtomicI64>,
}

/// A delivery leased at insert, with its reserved place in the hand-off channel.
pub(super) type HandedOff = (mpsc::OwnedPermit<ClaimedDelivery>, ClaimedDelivery);

/// What publishing produced: the answers, the deliveries to hand over after the commit,
/// and whether some new delivery is due now without having been handed over.
pub(super) struct PublishOutcome {
    pub(super) published: Vec<Published>,
    pub(super) handed_off: Vec<HandedOff>,
    pub(super) due_unclaimed: bool,
}

fn find_existing_event(
    conn: &Connection,
    client_id: &str,
    event: &NewEvent,
) -> Result<Option<EventRecord>, StoreError> {
    if let Some(key) = &event.idempotency_key {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE client_id = ?1 AND idempotency_key = ?2"
        );
        if let Some(found) = conn
            .prepare_cached(&sql)?
            .query_row([client_id, key], event_from_row)
            .optional()?
        {
            return Ok(Some(found));
        }
    }
    if event.id_from_client {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM events WHERE client_id = ?1 AND id = ?2");
        return Ok(conn
            .prepare_cached(&sql)?
            .query_row([client_id, &event.id], event_from_row)
            .optional()?);
    }
    Ok(None)
}

pub(super) fn publish_events(
    conn: &Connection,
    cache: &mut SubscriberCache,
    due: &mut DueIndex,
    handoff: Option<&Handoff>,
    client_id: &str,
    events: &[NewEvent],
) -> Result<PublishOutcome, StoreError> {
    let subscribers = cache.get(conn, client_id)?;
    let keys = &cache.keys;
    let mut out = PublishOutcome {
        published: Vec::with_capacity(events.len()),
        handed_off: Vec::new(),
        due_unclaimed: false,
    };
    for event in events {
        if let Some(existing) = find_existing_event(conn, client_id, event)? {
            out.published.push(Published::Existing { event: existing });
            continue;
        }
        conn.prepare_cached(
            "INSERT INTO events (client_id, id, idempotency_key, type, data, received_at, test) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            client_id,
            event.id,
            event.idempotency_key,
            event.event_type,
            event.data.as_str(),
            event.now_ms,
            event.test
        ])?;
        let event_key = conn.last_insert_rowid();
        let record = event.record();
        let due_now = event.first_attempt_at_ms <= event.now_ms;
        let mut deliveries = 0;
        let mut insert = conn.prepare_cached(
            "INSERT INTO deliveries (event_key, webhook_key, state, attempts, next_attempt_at, lease_token, updated_at) \
             VALUES (?1, ?2, 0, 0, ?3, ?4, ?5)",
        )?;
        for subscriber in subscribers
            .iter()
            .filter(|s| any_matches(&s.filters, &event.event_type) && event.goes_to(&s.id))
        {
            deliveries += 1;
            // Hand over what is due now while the engine has room; the rest waits to be claimed.
            let permit = match handoff {
                Some(h) if due_now => subscriber.opened(keys).and_then(|opened| {
                    let permit = h.sender.clone().try_reserve_owned().ok()?;
                    Some((permit, h, opened))
                }),
                _ => None,
            };
            let Some((permit, h, (secret, previous_secret))) = permit else {
                insert.execute(params![
                    event_key,
                    subscriber.key,
                    event.first_attempt_at_ms,
                    None::<i64>,
                    event.now_ms
                ])?;
                due.note(subscriber.key, event.first_attempt_at_ms);
                out.due_unclaimed |= due_now;
                continue;
            };
            let token = h.tokens.fetch_add(1, Ordering::Relaxed) + 1;
            let lease_until = event.now_ms.saturating_add(h.lease_ms);
            insert.execute(params![
                event_key,
                subscriber.key,
                lease_until,
                token,
                event.now_ms
            ])?;
            due.note(subscriber.key, lease_until);
            out.handed_off.push((
                permit,
                ClaimedDelivery {
                    delivery_key: conn.last_insert_rowid(),
                    lease_token: token,
                    attempt_number: 1,
                    webhook_key: subscriber.key,
                    webhook_id: subscriber.id.clone(),
                    url: subscriber.url.clone(),
                    format: subscriber.format,
                    signature_header: subscriber.signature_header.clone(),
                    secret: secret.clone(),
                    previous_secret: previous_secret.clone().filter(|p| p.valid_at(event.now_ms)),
                    event: record.clone(),
                },
            ));
        }
        out.published.push(Published::New {
            event: record,
            deliveries,
        });
    }
    Ok(out)
}

/// Makes leased deliveries due now and leased to no one, if the lease is still the caller's.
pub(super) fn release_leases(
    conn: &Connection,
    due: &mut DueIndex,
    leases: &[(i64, i64)],
    now_ms: i64,
) -> Result<(), StoreError> {
    let mut release = conn.prepare_cached(
        "UPDATE deliveries SET next_attempt_at = ?1, lease_token = NULL \
         WHERE key = ?2 AND lease_token = ?3 AND state = 0 RETURNING webhook_key",
    )?;
    for (delivery_key, lease_token) in leases {
        let released: Option<i64> = release
            .query_row(params![now_ms, delivery_key, lease_token], |row| row.get(0))
            .optional()?;
        if let Some(webhook_key) = released {
            due.note(webhook_key, now_ms);
        }
    }
    Ok(())
}

pub(super) fn list_events(
    conn: &Connection,
    client_id: &str,
    query: &EventQuery,
    page: &PageRequest,
) -> Result<Page<EventRecord>, StoreError> {
    let before = codec::decode_cursor(page.cursor.as_deref())?.unwrap_or(i64::MAX);
    let sql = format!(
        "SELECT {EVENT_COLUMNS}, key, test FROM events WHERE client_id = ?1 AND key < ?2 \
         AND (?3 IS NULL OR type = ?3) AND (?4 IS NULL OR received_at >= ?4) \
         AND (?5 IS NULL OR received_at < ?5) ORDER BY key DESC LIMIT ?6"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(
        params![
            client_id,
            before,
            query.event_type,
            query.since_ms,
            query.until_ms,
            codec::limit_plus_one(page)
        ],
        |row| {
            Ok((
                event_from_row(row)?.with_test(row.get(5)?),
                row.get::<_, i64>(4)?,
            ))
        },
    )?;
    Ok(codec::paginate(rows.collect::<Result<_, _>>()?, page.limit))
}

/// A webhook's delivery log, newest first.
///
/// Index-backed: `EXPLAIN QUERY PLAN` shows `SEARCH d USING INDEX deliveries_by_webhook
/// (webhook_key=? AND key<?)` with no sort step (the index gives the order), then `SEARCH e
/// USING INTEGER PRIMARY KEY (rowid=?)`, unfiltered and with a `state` filter (checked on
/// each row the index yields); the planner picks that index by itself, and `INDEXED BY`
/// keeps it so should statistics (`ANALYZE`) ever favour a backward walk of the rowid (a
/// unit test below checks the plan). The `since`/`until` window is checked on the event
/// each row joins to, so a page costs the deliveries walked back to its last row.
pub(super) fn list_webhook_deliveries(
    conn: &Connection,
    client_id: &str,
    webhook_id: &str,
    query: &DeliveryQuery,
    page: &PageRequest,
) -> Result<Option<Page<WebhookDelivery>>, StoreError> {
    let before = codec::decode_cursor(page.cursor.as_deref())?.unwrap_or(i64::MAX);
    let webhook_key: Option<i64> = conn
        .prepare_cached(
            "SELECT key FROM webhooks WHERE id = ?1 AND client_id = ?2 AND deleted_at IS NULL",
        )?
        .query_row([webhook_id, client_id], |row| row.get(0))
        .optional()?;
    let Some(webhook_key) = webhook_key else {
        return Ok(None);
    };
    let mut stmt = conn.prepare_cached(LIST_WEBHOOK_DELIVERIES)?;
    let rows = stmt.query_map(
        params![
            webhook_key,
            before,
            query.state.map(DeliveryState::code),
            query.since_ms,
            query.until_ms,
            codec::limit_plus_one(page)
        ],
        |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, u32>(2)?,
                row.get::<_, i64>(3)?,
                row.get::<_, Option<u16>>(4)?,
                row.get::<_, i64>(5)?,
                row.get::<_, String>(6)?,
                row.get::<_, String>(7)?,
                row.get::<_, i64>(8)?,
            ))
        },
    )?;
    let mut items = Vec::new();
    for row in rows {
        let (
            key,
            state,
            attempts,
            next_attempt_at,
            last_response_status,
            updated_at_ms,
            id,
            ty,
            at,
        ) = row?;
        let state = DeliveryState::from_code(state)
            .ok_or_else(|| StoreError::Corrupt(format!("delivery state {state}")))?;
        let delivery = DeliveryRecord {
            webhook_id: webhook_id.to_owned(),
            state,
            attempts,
            next_attempt_at_ms: (state == DeliveryState::Pending).then_some(next_attempt_at),
            last_response_status,
            updated_at_ms,
        };
        items.push((
            WebhookDelivery {
                event_id: id,
                event_type: ty,
                event_received_at_ms: at,
                delivery,
            },
            key,
        ));
    }
    Ok(Some(codec::paginate(items, page.limit)))
}

const LIST_WEBHOOK_DELIVERIES: &str = "SELECT d.key, d.state, d.attempts, d.next_attempt_at, d.last_status, d.updated_at, \
     e.id, e.type, e.received_at \
     FROM deliveries d INDEXED BY deliveries_by_webhook JOIN events e ON e.key = d.event_key \
     WHERE d.webhook_key = ?1 AND d.key < ?2 AND (?3 IS NULL OR d.state = ?3) \
     AND (?4 IS NULL OR e.received_at >= ?4) AND (?5 IS NULL OR e.received_at < ?5) \
     ORDER BY d.key DESC LIMIT ?6";

fn find_event(
    conn: &Connection,
    client_id: &str,
    event_id: &str,
) -> Result<Option<(i64, EventRecord)>, StoreError> {
    let sql =
        format!("SELECT {EVENT_COLUMNS}, key, test FROM events WHERE client_id = ?1 AND id = ?2");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([client_id, event_id], |row| {
            Ok((row.get(4)?, event_from_row(row)?.with_test(row.get(5)?)))
        })
        .optional()?)
}

pub(super) fn get_event(
    conn: &Connection,
    client_id: &str,
    event_id: &str,
) -> Result<Option<EventDetail>, StoreError> {
    let Some((event_key, event)) = find_event(conn, client_id, event_id)? else {
        return Ok(None);
    };
    let mut stmt = conn.prepare_cached(
        "SELECT w.id, d.state, d.attempts, d.next_attempt_at, d.last_status, d.updated_at \
         FROM deliveries d JOIN webhooks w ON w.key = d.webhook_key \
         WHERE d.event_key = ?1 ORDER BY d.key",
    )?;
    let rows = stmt.query_map([event_key], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, i64>(1)?,
            row.get::<_, u32>(2)?,
            row.get::<_, i64>(3)?,
            row.get::<_, Option<u16>>(4)?,
            row.get::<_, i64>(5)?,
        ))
    })?;
    let mut deliveries = Vec::new();
    for row in rows {
        let (webhook_id, state, attempts, next_attempt_at, last_response_status, updated_at_ms) =
            row?;
        let state = DeliveryState::from_code(state)
            .ok_or_else(|| StoreError::Corrupt(format!("delivery state {state}")))?;
        deliveries.push(DeliveryRecord {
            webhook_id,
            state,
            attempts,
            next_attempt_at_ms: (state == DeliveryState::Pending).then_some(next_attempt_at),
            last_response_status,
            updated_at_ms,
        });
    }
    Ok(Some(EventDetail { event, deliveries }))
}

pub(super) fn list_attempts(
    conn: &Connection,
    client_id: &str,
    event_id: &str,
) -> Result<Option<(EventRecord, Vec<AttemptLog>)>, StoreError> {
    let Some((event_key, event)) = find_event(conn, client_id, event_id)? else {
        return Ok(None);
    };
    let mut stmt = conn.prepare_cached(
        "SELECT a.id, w.id, a.attempt_number, a.started_at, a.duration_ms, a.format, \
         a.request_headers, a.response_status, a.response_headers, a.response_body, a.error \
         FROM attempts a JOIN webhooks w ON w.key = a.webhook_key \
         WHERE a.event_key = ?1 ORDER BY a.key",
    )?;
    let rows = stmt.query_map([event_key], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, u32>(2)?,
            row.get::<_, i64>(3)?,
            row.get::<_, i64>(4)?,
            row.get::<_, String>(5)?,
            row.get::<_, String>(6)?,
            row.get::<_, Option<u16>>(7)?,
            row.get::<_, String>(8)?,
            row.get::<_, Option<String>>(9)?,
            row.get::<_, Option<String>>(10)?,
        ))
    })?;
    let mut attempts = Vec::new();
    for row in rows {
        let (
            id,
            webhook_id,
            attempt_number,
            started_at_ms,
            duration_ms,
            format,
            req_h,
            status,
            resp_h,
            body,
            error,
        ) = row?;
        attempts.push(AttemptLog {
            id,
            webhook_id,
            attempt_number,
            started_at_ms,
            duration_ms,
            format: format.parse().map_err(StoreError::Corrupt)?,
            request_headers: codec::headers_from_text(&req_h)?,
            response_status: status,
            response_headers: codec::headers_from_text(&resp_h)?,
            response_body: body,
            error,
        });
    }
    Ok(Some((event, attempts)))
}

/// Leases due deliveries, at most `max_per_webhook` minus what is in flight per webhook,
/// probing only the webhooks the due index says have work (earliest first), each through
/// its own `(webhook_key, next_attempt_at)` index range.
pub(super) fn claim_due(
    conn: &Connection,
    due: &mut DueIndex,
    claim: &ClaimRequest,
    next_token: &mut i64,
) -> Result<Vec<ClaimedDelivery>, StoreError> {
    let in_flight: HashMap<i64, usize> = claim.in_flight.iter().copied().collect();
    let mut probe = conn.prepare_cached(
        "SELECT d.key, d.attempts, w.id, w.url, w.format, w.signature_header, w.secret, \
         e.id, e.type, e.data, e.received_at, w.previous_secret, w.previous_secret_until, e.test \
         FROM deliveries d JOIN webhooks w ON w.key = d.webhook_key JOIN events e ON e.key = d.event_key \
         WHERE d.webhook_key = ?1 AND d.state = 0 AND d.next_attempt_at <= ?2 \
         ORDER BY d.next_attempt_at LIMIT ?3",
    )?;
    let mut lease = conn.prepare_cached(
        "UPDATE deliveries SET next_attempt_at = ?1, lease_token = ?2 WHERE key = ?3",
    )?;
    let lease_until = claim.now_ms.saturating_add(claim.lease_ms);
    let mut claimed = Vec::new();
    for webhook_key in due.due_by(claim.now_ms) {
        if claimed.len() >= claim.limit {
            break;
        }
        let wanted = claim
            .max_per_webhook
            .saturating_sub(in_flight.get(&webhook_key).copied().unwrap_or(0))
            .min(claim.limit - claimed.len());
        if wanted == 0 {
            continue;
        }
        let wanted_sql = i64::try_from(wanted).unwrap_or(i64::MAX);
        let rows = probe
            .query_map(params![webhook_key, claim.now_ms, wanted_sql], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, u32>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, String>(4)?,
                    row.get::<_, String>(5)?,
                    row.get::<_, String>(6)?,
                    PreviousSecret::current(row.get(11)?, row.get(12)?, claim.now_ms),
                    codec::event_record(row.get(7)?, row.get(8)?, row.get(9)?, row.get(10)?)
                        .with_test(row.get(13)?),
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let found = rows.len();
        for (
            delivery_key,
            attempts,
            webhook_id,
            url,
            format,
            signature_header,
            secret,
            previous_secret,
            event,
        ) in rows
        {
            *next_token += 1;
            lease.execute(params![lease_until, *next_token, delivery_key])?;
            claimed.push(ClaimedDelivery {
                delivery_key,
                lease_token: *next_token,
                attempt_number: attempts + 1,
                webhook_key,
                webhook_id,
                url,
                format: format.parse().map_err(StoreError::Corrupt)?,
                signature_header,
                secret,
                previous_secret,
                event,
            });
        }
        if found < wanted {
            // Nothing more is due for this webhook now: learn when something will be.
            due.refresh(conn, webhook_key)?;
        }
    }
    Ok(claimed)
}

/// Where lease tokens start for this run: above every token still held, and above any
/// token an earlier run could have handed out (those count up from that run's start time
/// in microseconds, far slower than the clock), so a token is never reused.
pub(super) fn first_lease_token(conn: &Connection, now_ms: i64) -> Result<i64, StoreError> {
    let held: i64 = conn.query_row(
        "SELECT COALESCE(MAX(lease_token), 0) FROM deliveries",
        [],
        |row| row.get(0),
    )?;
    Ok(held.max(now_ms.saturating_mul(1000)))
}

/// The pending queue: one pass over the partial index `deliveries_due_by_webhook`, which
/// holds every column this reads (no table rows are touched).
pub(super) fn queue_stats(
    conn: &Connection,
    now_ms: i64,
) -> Result<crate::model::QueueStats, StoreError> {
    let (pending, due, oldest): (i64, i64, Option<i64>) = conn.query_row(
        "SELECT COUNT(*), COALESCE(SUM(next_attempt_at <= ?1), 0), MIN(next_attempt_at) \
         FROM deliveries INDEXED BY deliveries_due_by_webhook WHERE state = 0",
        [now_ms],
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
    )?;
    Ok(crate::model::QueueStats {
        pending: u64::try_from(pending).unwrap_or(0),
        due: u64::try_from(due).unwrap_or(0),
        oldest_due_at_ms: oldest,
    })
}

/// Retention: deletes up to `max_events` of the oldest events received before `cutoff_ms`
/// that have no pending delivery (nor one that changed since the cutoff: an attempt still
/// in flight when its delivery was cancelled may yet be logged), with their deliveries and
/// attempts. Walks `events_by_received_at` oldest first; each deletion goes through
/// `attempts_by_event` and `deliveries_by_event`. Only finished deliveries go, so the due index (pending
/// deliveries only) is unaffected.
pub(super) fn purge_events_received_before(
    conn: &Connection,
    cutoff_ms: i64,
    max_events: usize,
) -> Result<crate::model::PurgeCount, StoreError> {
    let limit = i64::try_from(max_events).unwrap_or(i64::MAX);
    let keys: Vec<i64> = conn
        .prepare_cached(
            "SELECT e.key FROM events e INDEXED BY events_by_received_at \
             WHERE e.received_at < ?1 AND NOT EXISTS \
             (SELECT 1 FROM deliveries d WHERE d.event_key = e.key \
              AND (d.state = 0 OR d.updated_at >= ?1)) \
             ORDER BY e.received_at LIMIT ?2",
        )?
        .query_map(params![cutoff_ms, limit], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let mut count = crate::model::PurgeCount::default();
    let mut attempts = conn.prepare_cached("DELETE FROM attempts WHERE event_key = ?1")?;
    let mut deliveries = conn.prepare_cached("DELETE FROM deliveries WHERE event_key = ?1")?;
    let mut events = conn.prepare_cached("DELETE FROM events WHERE key = ?1")?;
    let widen = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    for key in keys {
        count.attempts += widen(attempts.execute([key])?);
        count.deliveries += widen(deliveries.execute([key])?);
        count.events += widen(events.execute([key])?);
    }
    Ok(count)
}

/// Makes every leased delivery due now. Only safe when no other process can hold a lease,
/// which `SqliteStore::open_for_serving` guarantees with a lock file.
pub(super) fn release_all_leases(conn: &Connection, now_ms: i64) -> Result<usize, StoreError> {
    Ok(conn.execute(
        "UPDATE deliveries SET next_attempt_at = MIN(next_attempt_at, ?1), lease_token = NULL \
         WHERE state = 0 AND lease_token IS NOT NULL",
        [now_ms],
    )?)
}

/// Stores one attempt; returns the delivery's webhook key, whose due time may have moved,
/// and whether the attempt decided the delivery's state (its lease was still current).
pub(super) fn record_attempt(
    conn: &Connection,
    a: &FinishedAttempt,
) -> Result<Option<(i64, bool)>, StoreError> {
    let Some((event_key, webhook_key, lease_token)) = conn
        .prepare_cached(
            "SELECT event_key, webhook_key, lease_token FROM deliveries WHERE key = ?1",
        )?
        .query_row([a.delivery_key], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, Option<i64>>(2)?,
            ))
        })
        .optional()?
    else {
        // Purged while the attempt was in flight: nothing left to update or log against.
        // Not an error, which would undo the other attempts stored in the same write.
        tracing::warn!(
            delivery = a.delivery_key,
            "an attempt finished for a delivery that no longer exists"
        );
        return Ok(None);
    };
    conn.prepare_cached(
        "INSERT INTO attempts (id, delivery_key, event_key, webhook_key, attempt_number, started_at, \
         duration_ms, format, request_headers, response_status, response_headers, response_body, error) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?
    .execute(params![
        a.id,
        a.delivery_key,
        event_key,
        webhook_key,
        a.attempt_number,
        a.started_at_ms,
        a.duration_ms,
        a.format.as_str(),
        codec::headers_text(&a.request_headers),
        a.response_status,
        codec::headers_text(&a.response_headers),
        a.response_body,
        a.error
    ])?;
    // A stale lease means the delivery was claimed again (or cancelled) meanwhile: the
    // attempt is logged, but its verdict no longer decides the delivery's state.
    if lease_token != Some(a.lease_token) {
        return Ok(Some((webhook_key, false)));
    }
    let now_ms = a.started_at_ms + a.duration_ms;
    let (state, next_at) = match &a.next {
        NextStep::Succeeded => (DeliveryState::Succeeded, now_ms),
        NextStep::Failed { .. } => (DeliveryState::Failed, now_ms),
        NextStep::RetryAt { at_ms } => (DeliveryState::Pending, *at_ms),
    };
    conn.prepare_cached(
        "UPDATE deliveries SET state = ?1, attempts = ?2, next_attempt_at = ?3, lease_token = NULL, \
         last_status = ?4, updated_at = ?5 WHERE key = ?6",
    )?
    .execute(params![state.code(), a.attempt_number, next_at, a.response_status, now_ms, a.delivery_key])?;
    Ok(Some((webhook_key, true)))
}

#[cfg(test)]
mod delivery_log_plan {
    use super::LIST_WEBHOOK_DELIVERIES;
    use crate::sqlite::connection::open_writer;

    /// The delivery log walks `deliveries_by_webhook` in order: no table scan, no sort.
    #[test]
    fn the_delivery_log_walks_its_index() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = open_writer(&dir.path().join("plan.db")).expect("open");
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {LIST_WEBHOOK_DELIVERIES}"))
            .expect("prepare");
        // Unfiltered, and filtered by state (failed).
        for state in [None, Some(2_i64)] {
            let plan: Vec<String> = stmt
                .query_map(
                    rusqlite::params![1_i64, i64::MAX, state, None::<i64>, None::<i64>, 51_i64],
                    |row| row.get::<_, String>(3),
                )
                .expect("explain")
                .collect::<Result<_, _>>()
                .expect("rows");
            assert!(
                plan.iter().any(|step| step
                    == "SEARCH d USING INDEX deliveries_by_webhook (webhook_key=? AND key<?)"),
                "{plan:?}"
            );
            assert!(
                !plan
                    .iter()
                    .any(|step| step.contains("SCAN") || step.contains("TEMP B-TREE")),
                "{plan:?}"
            );
        }
    }
}
