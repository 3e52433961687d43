//! The SQL of replay on SQLite: single events sent again, bulk replay jobs and their
//! batches. Writes run on the writer thread (a batch is one job of a group transaction);
//! a new job's total is counted on a read connection first, so the writer never waits
//! for a count.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::due_index::DueIndex;
use crate::model::{
    EventReplay, NewReplayJob, Page, PageRequest, ReplayBatch, ReplayFilter, ReplayJob,
    ReplayRefusal, ReplayState, ReplayStep, ReplayedEvent, RunningReplay,
};
use crate::replay::{
    Admission, JOB_COLUMNS, JobColumns, RECEIPT_ORDER_SLACK_MS, Scanned, Target, narrow, refusal,
    total_of, widen,
};
use crate::{StoreError, codec};

fn target_from_row(row: &Row<'_>) -> rusqlite::Result<Result<Target, StoreError>> {
    let (key, id, enabled, events): (i64, String, bool, String) =
        (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
    Ok(serde_json::from_str(&events)
        .map_err(|e| StoreError::Corrupt(format!("webhook {id} events: {e}")))
        .map(|filters| Target {
            key,
            id,
            enabled,
            filters,
        }))
}

/// The client's webhook `webhook_id`, unless deleted.
fn find_target(
    conn: &Connection,
    client_id: &str,
    webhook_id: &str,
) -> Result<Option<Target>, StoreError> {
    conn.prepare_cached(
        "SELECT key, id, enabled, events FROM webhooks \
         WHERE id = ?1 AND client_id = ?2 AND deleted_at IS NULL",
    )?
    .query_row([webhook_id, client_id], target_from_row)
    .optional()?
    .transpose()
}

/// Inserts a pending delivery of `event_key` to `webhook_key`, due at `now_ms`, and tells
/// the due index.
fn insert_delivery(
    conn: &Connection,
    due: &mut DueIndex,
    event_key: i64,
    webhook_key: i64,
    now_ms: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO deliveries (event_key, webhook_key, state, attempts, next_attempt_at, \
         lease_token, updated_at) VALUES (?1, ?2, 0, 0, ?3, NULL, ?3)",
    )?
    .execute(params![event_key, webhook_key, now_ms])?;
    due.note(webhook_key, now_ms);
    Ok(())
}

/// Sends one event again (see `Store::replay_event`).
pub(super) fn replay_event(
    conn: &Connection,
    due: &mut DueIndex,
    replay: &EventReplay,
) -> Result<Result<ReplayedEvent, ReplayRefusal>, StoreError> {
    let found = conn
        .prepare_cached(
            "SELECT key, id, type, data, received_at, test FROM events \
             WHERE client_id = ?1 AND id = ?2",
        )?
        .query_row([&replay.client_id, &replay.event_id], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                codec::event_record(row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?)
                    .with_test(row.get(5)?),
            ))
        })
        .optional()?;
    let Some((event_key, event)) = found else {
        return Ok(Err(ReplayRefusal::EventNotFound));
    };
    let targets = match &replay.webhook_id {
        Some(webhook_id) => {
            let Some(target) = find_target(conn, &replay.client_id, webhook_id)? else {
                return Ok(Err(ReplayRefusal::WebhookNotFound));
            };
            if let Some(refused) = refusal(&target, &event.event_type) {
                return Ok(Err(refused));
            }
            vec![target]
        }
        None => {
            let delivered_to = delivered_webhooks(conn, event_key)?;
            let targets: Vec<Target> = delivered_to
                .into_iter()
                .filter(|t| refusal(t, &event.event_type).is_none())
                .collect();
            if targets.is_empty() {
                return Ok(Err(ReplayRefusal::NoWebhook));
            }
            targets
        }
    };
    for target in &targets {
        insert_delivery(conn, due, event_key, target.key, replay.now_ms)?;
    }
    Ok(Ok(ReplayedEvent {
        event,
        webhook_ids: targets.into_iter().map(|t| t.id).collect(),
    }))
}

/// The webhooks (not deleted) an event has deliveries to, in the order they were made.
fn delivered_webhooks(conn: &Connection, event_key: i64) -> Result<Vec<Target>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT w.key, w.id, w.enabled, w.events FROM webhooks w \
         WHERE w.deleted_at IS NULL AND w.key IN \
         (SELECT webhook_key FROM deliveries WHERE event_key = ?1) ORDER BY w.key",
    )?;
    let rows = stmt.query_map([event_key], target_from_row)?;
    let mut targets = Vec::new();
    for row in rows {
        targets.push(row??);
    }
    Ok(targets)
}

/// A new job's walk and total, worked out on a read connection.
pub(super) struct JobPlan {
    webhook_key: i64,
    cursor: i64,
    last_event_key: i64,
    total: u64,
}

/// The first event (by key) received at or after `at_ms`, if any: the receipt-time index
/// gives it in one probe.
fn first_event_received_from(conn: &Connection, at_ms: i64) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT key FROM events INDEXED BY events_by_received_at \
             WHERE received_at >= ?1 ORDER BY received_at LIMIT 1",
        )?
        .query_row([at_ms], |row| row.get(0))
        .optional()?)
}

/// Where a job's walk starts and ends (event keys; it covers `(cursor, last_event_key]`).
fn walk_bounds(conn: &Connection, job: &NewReplayJob) -> Result<(i64, i64), StoreError> {
    let newest: i64 = conn
        .prepare_cached("SELECT COALESCE(MAX(key), 0) FROM events")?
        .query_row([], |row| row.get(0))?;
    let last = match job.until_ms {
        Some(until) => {
            match first_event_received_from(conn, until.saturating_add(RECEIPT_ORDER_SLACK_MS))? {
                Some(beyond) => (beyond - 1).min(newest),
                None => newest,
            }
        }
        None => newest,
    };
    let cursor =
        match first_event_received_from(conn, job.since_ms.saturating_sub(RECEIPT_ORDER_SLACK_MS))?
        {
            Some(first) => (first - 1).min(last),
            None => last,
        };
    Ok((cursor, last))
}

/// The latest delivery of each event in a range of one webhook's deliveries (SQLite takes
/// a bare column of a `MAX()` group from the row with the maximum): one range of
/// `deliveries_by_webhook_event`, in index order.
const LATEST_DELIVERIES: &str = "SELECT d.event_key AS event_key, d.state AS state, MAX(d.key) \
     FROM deliveries d INDEXED BY deliveries_by_webhook_event \
     WHERE d.webhook_key = ?1 AND d.event_key > ?2 AND d.event_key <= ?3 \
     GROUP BY d.event_key";

/// Checks the webhook and counts what a job would re-send, per event type (the webhook's
/// filters are applied to the types, outside SQL).
pub(super) fn plan_job(
    conn: &Connection,
    job: &NewReplayJob,
) -> Result<Result<JobPlan, ReplayRefusal>, StoreError> {
    let Some(target) = find_target(conn, &job.client_id, &job.webhook_id)? else {
        return Ok(Err(ReplayRefusal::WebhookNotFound));
    };
    if !target.enabled {
        return Ok(Err(ReplayRefusal::WebhookDisabled));
    }
    let (cursor, last_event_key) = walk_bounds(conn, job)?;
    if cursor >= last_event_key {
        return Ok(Ok(JobPlan {
            webhook_key: target.key,
            cursor,
            last_event_key,
            total: 0,
        }));
    }
    let sql = format!(
        "SELECT e.type, COUNT(*) FROM ({LATEST_DELIVERIES}) latest \
         JOIN events e ON e.key = latest.event_key \
         WHERE (?4 >> latest.state) & 1 = 1 AND e.received_at >= ?5 \
         AND (?6 IS NULL OR e.received_at < ?6) AND e.test = 0 GROUP BY e.type"
    );
    let counts: Vec<(String, i64)> = conn
        .prepare_cached(&sql)?
        .query_map(
            params![
                target.key,
                cursor,
                last_event_key,
                job.filter.state_mask(),
                job.since_ms,
                job.until_ms
            ],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?
        .collect::<Result<_, _>>()?;
    Ok(Ok(JobPlan {
        webhook_key: target.key,
        cursor,
        last_event_key,
        total: total_of(&counts, &target.filters),
    }))
}

/// Stores a job planned by [`plan_job`], if its webhook is still enabled.
pub(super) fn insert_job(
    conn: &Connection,
    job: &NewReplayJob,
    plan: &JobPlan,
) -> Result<Result<ReplayJob, ReplayRefusal>, StoreError> {
    let enabled: Option<bool> = conn
        .prepare_cached("SELECT enabled FROM webhooks WHERE key = ?1 AND deleted_at IS NULL")?
        .query_row([plan.webhook_key], |row| row.get(0))
        .optional()?;
    match enabled {
        None => return Ok(Err(ReplayRefusal::WebhookNotFound)),
        Some(false) => return Ok(Err(ReplayRefusal::WebhookDisabled)),
        Some(true) => {}
    }
    // Nothing to re-send (as of now): done as soon as it is made.
    let state = if plan.total == 0 {
        ReplayState::Completed
    } else {
        ReplayState::Running
    };
    let completed_at = (state == ReplayState::Completed).then_some(job.now_ms);
    let total = plan.total;
    conn.prepare_cached(
        "INSERT INTO replay_jobs (id, client_id, webhook_key, since_ms, until_ms, status_filter, \
         state, total, done, cursor, last_event_key, created_at, updated_at, completed_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?9, ?10, ?11, ?11, ?12)",
    )?
    .execute(params![
        job.id,
        job.client_id,
        plan.webhook_key,
        job.since_ms,
        job.until_ms,
        job.filter.as_str(),
        state.as_str(),
        narrow(total),
        plan.cursor,
        plan.last_event_key,
        job.now_ms,
        completed_at
    ])?;
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

fn job_from_row(row: &Row<'_>) -> rusqlite::Result<JobColumns> {
    Ok(JobColumns {
        id: row.get(0)?,
        webhook_id: row.get(1)?,
        since_ms: row.get(2)?,
        until_ms: row.get(3)?,
        filter: row.get(4)?,
        state: row.get(5)?,
        total: row.get(6)?,
        done: row.get(7)?,
        created_at_ms: row.get(8)?,
        updated_at_ms: row.get(9)?,
        completed_at_ms: row.get(10)?,
    })
}

pub(super) fn get_job(
    conn: &Connection,
    client_id: &str,
    job_id: &str,
) -> Result<Option<ReplayJob>, StoreError> {
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM replay_jobs j JOIN webhooks w ON w.key = j.webhook_key \
         WHERE j.id = ?1 AND j.client_id = ?2"
    );
    conn.prepare_cached(&sql)?
        .query_row([job_id, client_id], job_from_row)
        .optional()?
        .map(JobColumns::into_job)
        .transpose()
}

/// A webhook's jobs, newest first, through `replay_jobs_by_webhook`.
pub(super) fn list_jobs(
    conn: &Connection,
    client_id: &str,
    webhook_id: &str,
    page: &PageRequest,
) -> Result<Option<Page<ReplayJob>>, StoreError> {
    let before = codec::decode_cursor(page.cursor.as_deref())?.unwrap_or(i64::MAX);
    let Some(target) = find_target(conn, client_id, webhook_id)? else {
        return Ok(None);
    };
    let sql = format!(
        "SELECT {JOB_COLUMNS}, j.key FROM replay_jobs j JOIN webhooks w ON w.key = j.webhook_key \
         WHERE j.webhook_key = ?1 AND j.key < ?2 ORDER BY j.key DESC LIMIT ?3"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(
        params![target.key, before, codec::limit_plus_one(page)],
        |row| Ok((job_from_row(row)?, row.get::<_, i64>(11)?)),
    )?;
    let mut items = Vec::new();
    for row in rows {
        let (columns, key) = row?;
        items.push((columns.into_job()?, key));
    }
    Ok(Some(codec::paginate(items, page.limit)))
}

pub(super) fn running_jobs(
    conn: &Connection,
    limit: usize,
) -> Result<Vec<RunningReplay>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT key, id, cursor FROM replay_jobs INDEXED BY replay_jobs_running \
         WHERE state = 'running' ORDER BY key LIMIT ?1",
    )?;
    let rows = stmt.query_map([i64::try_from(limit).unwrap_or(i64::MAX)], |row| {
        Ok(RunningReplay {
            key: row.get(0)?,
            id: row.get(1)?,
            cursor: row.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// One batch of a job (see `Store::run_replay_batch`), inside the writer's transaction.
/// The writer runs one job at a time, so checking the cursor first is the whole of the
/// compare-and-set.
pub(super) fn run_batch(
    conn: &Connection,
    due: &mut DueIndex,
    batch: &ReplayBatch,
) -> Result<ReplayStep, StoreError> {
    let job = conn
        .prepare_cached(
            "SELECT j.webhook_key, j.since_ms, j.until_ms, j.status_filter, j.last_event_key, \
             j.done, j.id, w.enabled AND w.deleted_at IS NULL, w.events \
             FROM replay_jobs j JOIN webhooks w ON w.key = j.webhook_key \
             WHERE j.key = ?1 AND j.state = 'running' AND j.cursor = ?2",
        )?
        .query_row(params![batch.job_key, batch.expected_cursor], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, Option<i64>>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, i64>(4)?,
                row.get::<_, i64>(5)?,
                row.get::<_, String>(6)?,
                row.get::<_, bool>(7)?,
                row.get::<_, String>(8)?,
            ))
        })
        .optional()?;
    let Some((webhook_key, since_ms, until_ms, filter, last_event_key, done, id, active, events)) =
        job
    else {
        return Ok(ReplayStep::Stale);
    };
    if !active {
        conn.prepare_cached(
            "UPDATE replay_jobs SET state = 'cancelled', updated_at = ?1, completed_at = ?1 \
             WHERE key = ?2",
        )?
        .execute(params![batch.now_ms, batch.job_key])?;
        return Ok(ReplayStep::Cancelled);
    }
    let filter = ReplayFilter::parse(&filter)
        .ok_or_else(|| StoreError::Corrupt(format!("replay job {id}: filter `{filter}`")))?;
    let webhook_filters: Vec<String> = serde_json::from_str(&events)
        .map_err(|e| StoreError::Corrupt(format!("webhook filters: {e}")))?;
    let admission = Admission {
        since_ms,
        until_ms,
        filter,
        webhook_filters: &webhook_filters,
    };
    let scanned = scan(conn, webhook_key, batch, last_event_key)?;
    let mut replayed = 0_u64;
    for event in scanned.iter().filter(|e| admission.admits(e)) {
        insert_delivery(conn, due, event.event_key, webhook_key, batch.now_ms)?;
        replayed += 1;
    }
    let cursor = scanned
        .last()
        .map_or(batch.expected_cursor, |e| e.event_key);
    let completed = scanned.len() < batch.max_events.max(1);
    let done = widen(done) + replayed;
    conn.prepare_cached(
        "UPDATE replay_jobs SET cursor = ?1, done = ?2, \
         total = CASE WHEN ?3 THEN ?2 ELSE MAX(total, ?2) END, \
         state = CASE WHEN ?3 THEN 'completed' ELSE state END, \
         updated_at = ?4, completed_at = CASE WHEN ?3 THEN ?4 END WHERE key = ?5",
    )?
    .execute(params![
        cursor,
        narrow(done),
        completed,
        batch.now_ms,
        batch.job_key
    ])?;
    Ok(ReplayStep::Advanced {
        replayed,
        done,
        cursor,
        completed,
    })
}

/// The next `max_events` events after the cursor among the webhook's deliveries (up to
/// `last_event_key`), each with the state of its latest delivery there.
fn scan(
    conn: &Connection,
    webhook_key: i64,
    batch: &ReplayBatch,
    last_event_key: i64,
) -> Result<Vec<Scanned>, StoreError> {
    let mut stmt = conn.prepare_cached(BATCH_SCAN)?;
    let rows = stmt.query_map(
        params![
            webhook_key,
            batch.expected_cursor,
            last_event_key,
            i64::try_from(batch.max_events.max(1)).unwrap_or(i64::MAX)
        ],
        |row| {
            Ok(Scanned {
                event_key: row.get(0)?,
                latest_state: row.get(1)?,
                // An event purged under the walk (its deliveries go with it, so only in a
                // damaged file) is simply not admitted.
                event_type: row.get::<_, Option<String>>(2)?.unwrap_or_default(),
                received_at_ms: row.get::<_, Option<i64>>(3)?.unwrap_or(i64::MIN),
                test: row.get::<_, Option<bool>>(4)?.unwrap_or(true),
            })
        },
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A batch's walk: one range of `deliveries_by_webhook_event` in index order, grouped per
/// event without sorting, each event looked up by its key (a unit test checks the plan).
const BATCH_SCAN: &str = "SELECT latest.event_key, latest.state, e.type, e.received_at, e.test \
     FROM (SELECT d.event_key AS event_key, d.state AS state, MAX(d.key) \
       FROM deliveries d INDEXED BY deliveries_by_webhook_event \
       WHERE d.webhook_key = ?1 AND d.event_key > ?2 AND d.event_key <= ?3 \
       GROUP BY d.event_key ORDER BY d.event_key LIMIT ?4) latest \
     LEFT JOIN events e ON e.key = latest.event_key ORDER BY latest.event_key";

#[cfg(test)]
mod plans {
    use super::{BATCH_SCAN, LATEST_DELIVERIES};
    use crate::sqlite::connection::open_writer;

    fn plan(sql: &str, params: impl rusqlite::Params) -> Vec<String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = open_writer(&dir.path().join("plan.db")).expect("open");
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("prepare");
        stmt.query_map(params, |row| row.get::<_, String>(3))
            .expect("explain")
            .collect::<Result<_, _>>()
            .expect("rows")
    }

    fn assert_walks_the_webhook_event_index(plan: &[String]) {
        assert!(
            plan.iter().any(|step| step
                == "SEARCH d USING COVERING INDEX deliveries_by_webhook_event (webhook_key=? AND event_key>? AND event_key<?)"
                || step
                    == "SEARCH d USING INDEX deliveries_by_webhook_event (webhook_key=? AND event_key>? AND event_key<?)"),
            "{plan:?}"
        );
        assert!(
            !plan
                .iter()
                .any(|step| step.contains("SCAN d") || step.contains("TEMP B-TREE")),
            "{plan:?}"
        );
    }

    /// A batch reads one index range in order and looks each event up by key.
    #[test]
    fn a_batch_walks_one_index_range_without_sorting() {
        let plan = plan(
            BATCH_SCAN,
            rusqlite::params![1_i64, 0_i64, 100_i64, 500_i64],
        );
        assert_walks_the_webhook_event_index(&plan);
        assert!(
            plan.iter()
                .any(|step| step.starts_with("SEARCH e USING INTEGER PRIMARY KEY")),
            "{plan:?}"
        );
    }

    #[test]
    fn counting_a_total_walks_the_same_range() {
        let plan = plan(
            &format!("SELECT COUNT(*) FROM ({LATEST_DELIVERIES})"),
            rusqlite::params![1_i64, 0_i64, 100_i64],
        );
        assert_walks_the_webhook_event_index(&plan);
    }
}
