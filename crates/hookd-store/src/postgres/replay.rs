//! The SQL of replay on PostgreSQL: single events sent again, bulk replay jobs and their
//! batches.
//!
//! Any node may run any job, and two may run the same one at once: a batch locks the
//! job's row first and goes on only if the cursor is still the one it expected, so the
//! row lock makes nodes take turns and no batch is made twice. A replay also takes a
//! share lock on its webhook's row, so disabling or deleting the webhook (which cancels
//! its pending deliveries) waits for it, or it sees the webhook disabled.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::queries::{execute, row, rows, webhook_key_of};

use crate::model::{
    DeliveryState, EventReplay, NewReplayJob, Page, PageRequest, ReplayBatch, ReplayFilter,
    ReplayJob, ReplayRefusal, ReplayState, ReplayStep, ReplayedEvent, RunningReplay,
};
use crate::replay::{
    Admission, JOB_COLUMNS, JobColumns, RECEIPT_ORDER_SLACK_MS, Scanned, Target, narrow, refusal,
    total_of, widen,
};
use crate::{StoreError, codec};

fn target_from_row(r: &Row) -> Result<Target, StoreError> {
    let id: String = r.try_get(1)?;
    let filters = serde_json::from_str(r.try_get(3)?)
        .map_err(|e| StoreError::Corrupt(format!("webhook {id} events: {e}")))?;
    Ok(Target {
        key: r.try_get(0)?,
        id,
        enabled: r.try_get(2)?,
        filters,
    })
}

/// The client's webhook `webhook_id`, unless deleted, share-locked for the transaction.
async fn lock_target(
    c: &impl GenericClient,
    client_id: &str,
    webhook_id: &str,
) -> Result<Option<Target>, StoreError> {
    row(
        c,
        "SELECT key, id, enabled, events FROM webhooks \
         WHERE id = $1 AND client_id = $2 AND deleted_at IS NULL FOR SHARE",
        &[&webhook_id, &client_id],
    )
    .await?
    .map(|r| target_from_row(&r))
    .transpose()
}

/// Sends one event again (see `Store::replay_event`), inside the caller's transaction
/// (which announces the new deliveries after its commit).
pub(super) async fn replay_event(
    c: &impl GenericClient,
    replay: &EventReplay,
) -> Result<Result<ReplayedEvent, ReplayRefusal>, StoreError> {
    let Some(found) = row(
        c,
        "SELECT key, id, type, data, received_at, test FROM events \
         WHERE client_id = $1 AND id = $2",
        &[&replay.client_id, &replay.event_id],
    )
    .await?
    else {
        return Ok(Err(ReplayRefusal::EventNotFound));
    };
    let event_key: i64 = found.try_get(0)?;
    let event = codec::event_record(
        found.try_get(1)?,
        found.try_get(2)?,
        found.try_get(3)?,
        found.try_get(4)?,
    )
    .with_test(found.try_get(5)?);
    let targets = match &replay.webhook_id {
        Some(webhook_id) => {
            let Some(target) = lock_target(c, &replay.client_id, webhook_id).await? else {
                return Ok(Err(ReplayRefusal::WebhookNotFound));
            };
            if let Some(refused) = refusal(&target, &event.event_type) {
                return Ok(Err(refused));
            }
            vec![target]
        }
        None => {
            let delivered_to = rows(
                c,
                "SELECT key, id, enabled, events FROM webhooks \
                 WHERE deleted_at IS NULL AND key IN \
                 (SELECT webhook_key FROM deliveries WHERE event_key = $1) \
                 ORDER BY key FOR SHARE",
                &[&event_key],
            )
            .await?;
            let mut targets = Vec::with_capacity(delivered_to.len());
            for r in &delivered_to {
                let target = target_from_row(r)?;
                if refusal(&target, &event.event_type).is_none() {
                    targets.push(target);
                }
            }
            if targets.is_empty() {
                return Ok(Err(ReplayRefusal::NoWebhook));
            }
            targets
        }
    };
    let webhook_keys: Vec<i64> = targets.iter().map(|t| t.key).collect();
    execute(
        c,
        "INSERT INTO deliveries (event_key, webhook_key, state, attempts, next_attempt_at, \
         lease_token, updated_at) \
         SELECT $1, w, 0, 0, $3, NULL, $3 FROM unnest($2::bigint[]) AS w",
        &[&event_key, &webhook_keys, &replay.now_ms],
    )
    .await?;
    Ok(Ok(ReplayedEvent {
        event,
        webhook_ids: targets.into_iter().map(|t| t.id).collect(),
    }))
}

/// The first event (by receipt time) received at or after `at_ms`: one probe of
/// `events_by_received_at`.
async fn first_event_received_from(
    c: &impl GenericClient,
    at_ms: i64,
) -> Result<Option<i64>, StoreError> {
    row(
        c,
        "SELECT key FROM events WHERE received_at >= $1 ORDER BY received_at LIMIT 1",
        &[&at_ms],
    )
    .await?
    .map(|r| Ok(r.try_get(0)?))
    .transpose()
}

/// Where a job's walk starts and ends (event keys; it covers `(cursor, last_event_key]`).
async fn walk_bounds(c: &impl GenericClient, job: &NewReplayJob) -> Result<(i64, i64), StoreError> {
    let newest: i64 = match row(c, "SELECT COALESCE(MAX(key), 0) FROM events", &[]).await? {
        Some(r) => r.try_get(0)?,
        None => 0,
    };
    let last = match job.until_ms {
        Some(until) => {
            match first_event_received_from(c, until.saturating_add(RECEIPT_ORDER_SLACK_MS)).await?
            {
                Some(beyond) => (beyond - 1).min(newest),
                None => newest,
            }
        }
        None => newest,
    };
    let cursor =
        match first_event_received_from(c, job.since_ms.saturating_sub(RECEIPT_ORDER_SLACK_MS))
            .await?
        {
            Some(first) => (first - 1).min(last),
            None => last,
        };
    Ok((cursor, last))
}

/// The delivery states `filter` admits, as stored (an array the planner can estimate, where
/// a bit mask would hide how selective the filter is).
fn admitted_states(filter: ReplayFilter) -> Vec<i16> {
    [
        DeliveryState::Pending,
        DeliveryState::Succeeded,
        DeliveryState::Failed,
        DeliveryState::Cancelled,
    ]
    .into_iter()
    .filter(|s| filter.admits(*s))
    .map(|s| i16::try_from(s.code()).unwrap_or(i16::MAX))
    .collect()
}

/// The latest delivery of each event in a range of one webhook's deliveries: one range of
/// `deliveries_by_webhook_event (webhook_key, event_key, key DESC)`, whose order gives each
/// event's newest delivery first.
const LATEST_DELIVERIES: &str = "SELECT DISTINCT ON (d.event_key) d.event_key, d.state \
     FROM deliveries d \
     WHERE d.webhook_key = $1 AND d.event_key > $2 AND d.event_key <= $3 \
     ORDER BY d.event_key, d.key DESC";

/// Makes a job (see `Store::create_replay_job`) inside the caller's transaction: checks
/// the webhook (share-locked), fixes the walk and counts the total per event type.
pub(super) async fn create_job(
    c: &impl GenericClient,
    job: &NewReplayJob,
) -> Result<Result<ReplayJob, ReplayRefusal>, StoreError> {
    let Some(target) = lock_target(c, &job.client_id, &job.webhook_id).await? else {
        return Ok(Err(ReplayRefusal::WebhookNotFound));
    };
    if !target.enabled {
        return Ok(Err(ReplayRefusal::WebhookDisabled));
    }
    let (cursor, last_event_key) = walk_bounds(c, job).await?;
    let total = if cursor >= last_event_key {
        0
    } else {
        let counted = rows(
            c,
            &format!(
                "SELECT e.type, COUNT(*) FROM ({LATEST_DELIVERIES}) latest \
                 JOIN events e ON e.key = latest.event_key \
                 WHERE latest.state = ANY($4::smallint[]) \
                 AND e.received_at >= $5 AND ($6::bigint IS NULL OR e.received_at < $6) \
                 AND NOT e.test GROUP BY e.type"
            ),
            &[
                &target.key,
                &cursor,
                &last_event_key,
                &admitted_states(job.filter),
                &job.since_ms,
                &job.until_ms,
            ],
        )
        .await?;
        let counts = counted
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<Vec<(String, i64)>, StoreError>>()?;
        total_of(&counts, &target.filters)
    };
    // Nothing to re-send (as of now): done as soon as it is made.
    let state = if total == 0 {
        ReplayState::Completed
    } else {
        ReplayState::Running
    };
    let completed_at = (state == ReplayState::Completed).then_some(job.now_ms);
    execute(
        c,
        "INSERT INTO replay_jobs (id, client_id, webhook_key, since_ms, until_ms, status_filter, \
         state, total, done, cursor, last_event_key, created_at, updated_at, completed_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $10, $11, $11, $12)",
        &[
            &job.id,
            &job.client_id,
            &target.key,
            &job.since_ms,
            &job.until_ms,
            &job.filter.as_str(),
            &state.as_str(),
            &narrow(total),
            &cursor,
            &last_event_key,
            &job.now_ms,
            &completed_at,
        ],
    )
    .await?;
    Ok(Ok(ReplayJob {
        id: job.id.clone(),
        webhook_id: job.webhook_id.clone(),
        since_ms: job.since_ms,
        until_ms: job.until_ms,
        filter: job.filter,
        state,
        total,
        done: 0,
        created_at_ms: job.now_ms,
        updated_at_ms: job.now_ms,
        completed_at_ms: completed_at,
    }))
}

fn job_from_row(r: &Row) -> Result<ReplayJob, StoreError> {
    JobColumns {
        id: r.try_get(0)?,
        webhook_id: r.try_get(1)?,
        since_ms: r.try_get(2)?,
        until_ms: r.try_get(3)?,
        filter: r.try_get(4)?,
        state: r.try_get(5)?,
        total: r.try_get(6)?,
        done: r.try_get(7)?,
        created_at_ms: r.try_get(8)?,
        updated_at_ms: r.try_get(9)?,
        completed_at_ms: r.try_get(10)?,
    }
    .into_job()
}

pub(super) async fn get_job(
    c: &impl GenericClient,
    client_id: &str,
    job_id: &str,
) -> Result<Option<ReplayJob>, StoreError> {
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM replay_jobs j JOIN webhooks w ON w.key = j.webhook_key \
         WHERE j.id = $1 AND j.client_id = $2"
    );
    row(c, &sql, &[&job_id, &client_id])
        .await?
        .map(|r| job_from_row(&r))
        .transpose()
}

/// A webhook's jobs, newest first, through `replay_jobs_by_webhook`.
pub(super) async fn list_jobs(
    c: &impl GenericClient,
    client_id: &str,
    webhook_id: &str,
    page: &PageRequest,
) -> Result<Option<Page<ReplayJob>>, StoreError> {
    let before = codec::decode_cursor(page.cursor.as_deref())?.unwrap_or(i64::MAX);
    let Some(webhook_key) = webhook_key_of(c, client_id, webhook_id).await? else {
        return Ok(None);
    };
    let sql = format!(
        "SELECT {JOB_COLUMNS}, j.key FROM replay_jobs j JOIN webhooks w ON w.key = j.webhook_key \
         WHERE j.webhook_key = $1 AND j.key < $2 ORDER BY j.key DESC LIMIT $3"
    );
    let found = rows(
        c,
        &sql,
        &[&webhook_key, &before, &codec::limit_plus_one(page)],
    )
    .await?;
    let items = found
        .iter()
        .map(|r| Ok((job_from_row(r)?, r.try_get::<_, i64>(11)?)))
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(Some(codec::paginate(items, page.limit)))
}

pub(super) async fn running_jobs(
    c: &impl GenericClient,
    limit: usize,
) -> Result<Vec<RunningReplay>, StoreError> {
    rows(
        c,
        "SELECT key, id, cursor FROM replay_jobs WHERE state = 'running' ORDER BY key LIMIT $1",
        &[&i64::try_from(limit).unwrap_or(i64::MAX)],
    )
    .await?
    .iter()
    .map(|r| {
        Ok(RunningReplay {
            key: r.try_get(0)?,
            id: r.try_get(1)?,
            cursor: r.try_get(2)?,
        })
    })
    .collect()
}

/// A batch's walk: one range of `deliveries_by_webhook_event` in index order, each
/// event's newest delivery kept, each event looked up by its key.
const BATCH_SCAN: &str = "SELECT latest.event_key, latest.state, e.type, e.received_at, e.test \
     FROM (SELECT DISTINCT ON (d.event_key) d.event_key, d.state FROM deliveries d \
       WHERE d.webhook_key = $1 AND d.event_key > $2 AND d.event_key <= $3 \
       ORDER BY d.event_key, d.key DESC LIMIT $4) latest \
     LEFT JOIN events e ON e.key = latest.event_key ORDER BY latest.event_key";

/// One batch of a job (see `Store::run_replay_batch`) inside the caller's transaction
/// (which announces the new deliveries after its commit).
pub(super) async fn run_batch(
    c: &impl GenericClient,
    batch: &ReplayBatch,
) -> Result<ReplayStep, StoreError> {
    // The compare-and-set: the row lock serialises nodes on the same job, and a node that
    // waited sees the cursor another moved (the condition is checked again after the
    // wait), finds no row, and writes nothing.
    let Some(job) = row(
        c,
        "SELECT webhook_key, since_ms, until_ms, status_filter, last_event_key, done, id \
         FROM replay_jobs WHERE key = $1 AND state = 'running' AND cursor = $2 FOR UPDATE",
        &[&batch.job_key, &batch.expected_cursor],
    )
    .await?
    else {
        return Ok(ReplayStep::Stale);
    };
    let webhook_key: i64 = job.try_get(0)?;
    let id: String = job.try_get(6)?;
    let filter: &str = job.try_get(3)?;
    let filter = ReplayFilter::parse(filter)
        .ok_or_else(|| StoreError::Corrupt(format!("replay job {id}: filter `{filter}`")))?;
    let last_event_key: i64 = job.try_get(4)?;
    let done: i64 = job.try_get(5)?;
    let webhook = row(
        c,
        "SELECT enabled AND deleted_at IS NULL, events FROM webhooks WHERE key = $1 FOR SHARE",
        &[&webhook_key],
    )
    .await?;
    let active = match &webhook {
        Some(w) => w.try_get::<_, bool>(0)?,
        None => false,
    };
    let Some(webhook) = webhook.filter(|_| active) else {
        execute(
            c,
            "UPDATE replay_jobs SET state = 'cancelled', updated_at = $1, completed_at = $1 \
             WHERE key = $2",
            &[&batch.now_ms, &batch.job_key],
        )
        .await?;
        return Ok(ReplayStep::Cancelled);
    };
    let webhook_filters: Vec<String> = serde_json::from_str(webhook.try_get(1)?)
        .map_err(|e| StoreError::Corrupt(format!("webhook filters: {e}")))?;
    let admission = Admission {
        since_ms: job.try_get(1)?,
        until_ms: job.try_get(2)?,
        filter,
        webhook_filters: &webhook_filters,
    };
    let max_events = batch.max_events.max(1);
    let found = rows(
        c,
        BATCH_SCAN,
        &[
            &webhook_key,
            &batch.expected_cursor,
            &last_event_key,
            &i64::try_from(max_events).unwrap_or(i64::MAX),
        ],
    )
    .await?;
    let mut scanned = Vec::with_capacity(found.len());
    for r in &found {
        let state: i16 = r.try_get(1)?;
        scanned.push(Scanned {
            event_key: r.try_get(0)?,
            latest_state: i64::from(state),
            // An event purged under the walk is simply not admitted.
            event_type: r.try_get::<_, Option<String>>(2)?.unwrap_or_default(),
            received_at_ms: r.try_get::<_, Option<i64>>(3)?.unwrap_or(i64::MIN),
            test: r.try_get::<_, Option<bool>>(4)?.unwrap_or(true),
        });
    }
    let admitted: Vec<i64> = scanned
        .iter()
        .filter(|e| admission.admits(e))
        .map(|e| e.event_key)
        .collect();
    if !admitted.is_empty() {
        execute(
            c,
            "INSERT INTO deliveries (event_key, webhook_key, state, attempts, next_attempt_at, \
             lease_token, updated_at) \
             SELECT e, $2, 0, 0, $3, NULL, $3 FROM unnest($1::bigint[]) WITH ORDINALITY AS a(e, n) \
             ORDER BY n",
            &[&admitted, &webhook_key, &batch.now_ms],
        )
        .await?;
    }
    let replayed = u64::try_from(admitted.len()).unwrap_or(u64::MAX);
    let cursor = scanned
        .last()
        .map_or(batch.expected_cursor, |e| e.event_key);
    let completed = scanned.len() < max_events;
    let done = widen(done) + replayed;
    execute(
        c,
        "UPDATE replay_jobs SET cursor = $1, done = $2::bigint, \
         total = CASE WHEN $3::boolean THEN $2::bigint ELSE GREATEST(total, $2::bigint) END, \
         state = CASE WHEN $3::boolean THEN 'completed' ELSE state END, \
         updated_at = $4::bigint, completed_at = CASE WHEN $3::boolean THEN $4::bigint END \
         WHERE key = $5",
        &[
            &cursor,
            &narrow(done),
            &completed,
            &batch.now_ms,
            &batch.job_key,
        ],
    )
    .await?;
    Ok(ReplayStep::Advanced {
        replayed,
        done,
        cursor,
        completed,
    })
}
