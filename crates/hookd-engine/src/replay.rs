//! Bulk replay: works through running replay jobs (`POST /v2/webhooks/{id}/replay`) in
//! batches. Each batch is one short store write that re-sends up to [`BATCH`] events as
//! new pending deliveries; the dispatcher sends them like any others (per-webhook caps
//! keep a large replay from crowding other webhooks out). Between batches the task
//! yields, so a job of 100 000 events never holds the store or the runtime for long.
//!
//! It wakes when this process stores a job ([`Store::replay_signal`]) and looks every
//! [`POLL`] as well, for jobs made on another node of a cluster or left running by a
//! restart. Nodes may work on the same job at once: the store lets only one of them make
//! each batch (the others' come back [`ReplayStep::Stale`]).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use hookd_store::Store;
use hookd_store::model::{ReplayBatch, ReplayStep, RunningReplay};
use tokio::sync::watch;

use crate::attempt::now_ms;

/// Events a batch walks (and at most re-sends): one short write.
pub(crate) const BATCH: usize = 500;
/// How often to look for running jobs when nothing wakes the task.
const POLL: Duration = Duration::from_secs(2);
/// Jobs taken up in one round; more wait for the next.
const MAX_JOBS: usize = 64;

/// Works on replay jobs until `stop` says so (or its sender is gone). Shutdown does not
/// wait for a batch under way: a batch commits whole or not at all (and on SQLite the
/// write, once queued, is made anyway).
pub(crate) async fn run(store: Arc<dyn Store>, mut stop: watch::Receiver<bool>) {
    let created = store.replay_signal();
    loop {
        tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => return,
            () = work(&*store) => {}
        }
        tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => return,
            () = created.notified() => {}
            () = tokio::time::sleep(POLL) => {}
        }
    }
}

/// Rounds of one batch per running job, until no job is left running or none made
/// progress here (another node is on them). A job whose batch failed is left until the
/// next call, so it cannot hold the others up.
async fn work(store: &dyn Store) {
    let mut failed = HashSet::new();
    loop {
        let jobs = match store.running_replay_jobs(MAX_JOBS).await {
            Ok(jobs) => jobs,
            Err(e) => {
                tracing::warn!("looking for replay jobs failed (tried again later): {e}");
                return;
            }
        };
        if jobs.is_empty() {
            return;
        }
        let mut progressed = false;
        for job in &jobs {
            if failed.contains(&job.key) {
                continue;
            }
            match batch(store, job).await {
                Ok(advanced) => progressed |= advanced,
                Err(e) => {
                    tracing::warn!(job = %job.id, "a replay batch failed (tried again later): {e}");
                    failed.insert(job.key);
                }
            }
            // Others' requests and the dispatcher go between batches.
            tokio::task::yield_now().await;
        }
        if !progressed {
            return;
        }
    }
}

/// Makes one batch of `job`; whether it moved the job on.
async fn batch(store: &dyn Store, job: &RunningReplay) -> Result<bool, hookd_store::StoreError> {
    let step = store
        .run_replay_batch(ReplayBatch {
            job_key: job.key,
            expected_cursor: job.cursor,
            max_events: BATCH,
            now_ms: now_ms(),
        })
        .await?;
    Ok(match step {
        ReplayStep::Advanced {
            done, completed, ..
        } => {
            if completed {
                tracing::info!(job = %job.id, events = done, "replay job completed");
            }
            true
        }
        ReplayStep::Cancelled => {
            tracing::info!(job = %job.id, "replay job cancelled: its webhook is disabled or deleted");
            true
        }
        ReplayStep::Stale => false,
    })
}
