//! Opening SQLite files, the writer thread that batches writes into one transaction
//! (group commit), and the pool of read connections.
//!
//! SQLite allows one writer at a time, so every write goes through one thread that owns
//! the write connection. While a transaction commits, new writes queue up; the next
//! transaction takes all of them at once, so a burst of a thousand publishes costs a
//! handful of fsyncs instead of a thousand. Each write runs under its own savepoint: one
//! failing write does not undo the others.

use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{Notify, mpsc, oneshot};

use super::due_index::DueIndex;
use super::queries::{Handoff, SubscriberCache};
use crate::StoreError;
use crate::sealing::SecretKeys;

/// Prepared statements kept per connection: more than the store has distinct queries,
/// so none is parsed twice (rusqlite's default of 16 made the writer re-parse SQL).
const STATEMENT_CACHE: usize = 64;
/// Most writes folded into one transaction.
const MAX_GROUP: usize = 1024;
/// Most writes waiting for the writer; beyond it, client writes are refused (a 503 the
/// client retries) instead of piling up in memory.
const MAX_QUEUED: usize = 16 * 1024;

/// Reports how a job went and, once the transaction's fate is known, answers its caller.
pub(super) struct JobOutcome {
    ok: bool,
    wakes_dispatcher: bool,
    answer: Box<dyn FnOnce(Option<StoreError>) + Send>,
}

type Job = Box<dyn FnOnce(&mut Tx<'_>) -> JobOutcome + Send>;

/// How much a write needs the disk before it is answered.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Durability {
    /// Synced to disk before the answer: events, webhooks, clients — what a 2xx promises.
    Synced,
    /// Survives a crash of hookd, perhaps not a power cut: leases and attempt outcomes,
    /// whose loss only means a delivery is attempted once more. Skipping their fsync
    /// halves the syncs on the delivery path.
    Relaxed,
}

struct Queued {
    durability: Durability,
    job: Job,
}

/// What a write runs with: the connection inside the open transaction, and the writer's
/// caches, which only the writer thread touches and so can never go stale.
pub(super) struct Tx<'a> {
    pub(super) conn: &'a Connection,
    pub(super) subscribers: &'a mut SubscriberCache,
    pub(super) due: &'a mut DueIndex,
    /// Set while an engine in this process takes new deliveries directly.
    pub(super) handoff: Option<&'a Handoff>,
}

/// The hand-off the store's owner may install at any time; read once per group.
pub(super) type HandoffSlot = Arc<Mutex<Option<Handoff>>>;

/// Whether a write made deliveries due, so the dispatcher should look now.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Wake {
    Dispatcher,
    Nobody,
}

pub(super) struct Writer {
    jobs: mpsc::Sender<Queued>,
}

impl Writer {
    /// Starts the writer thread on `conn`. `next_due` mirrors the due index's earliest time
    /// (`i64::MAX` when nothing is pending) for readers outside the thread.
    pub(super) fn start(
        conn: Connection,
        due_index: DueIndex,
        due: Arc<Notify>,
        next_due: Arc<AtomicI64>,
        handoff: HandoffSlot,
        keys: SecretKeys,
    ) -> Writer {
        let (jobs, rx) = mpsc::channel(MAX_QUEUED);
        // The thread ends when every sender is dropped.
        thread::Builder::new()
            .name("hookd-sqlite-writer".to_owned())
            .spawn(move || {
                let subscribers = SubscriberCache::new(keys);
                run_writer(conn, rx, due_index, subscribers, &due, &next_due, &handoff);
            })
            .map(|_| ())
            .unwrap_or_else(|e| tracing::error!("cannot start the SQLite writer thread: {e}"));
        Writer { jobs }
    }

    /// Runs `f` inside the next group transaction and returns its result once committed.
    pub(super) async fn write<T, F>(&self, durability: Durability, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> Result<(T, Wake), StoreError> + Send + 'static,
    {
        self.write_with_hook(durability, move |tx| {
            let (value, wake) = f(tx)?;
            Ok((value, wake, None))
        })
        .await
    }

    /// Like [`Writer::write`], and `f` may return a hook that runs on the writer thread once
    /// the commit succeeded, whether or not the caller still waits for the answer (a
    /// cancelled request must not strand what its commit started).
    pub(super) async fn write_with_hook<T, F>(
        &self,
        durability: Durability,
        f: F,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> Result<(T, Wake, Option<AfterCommit>), StoreError>
            + Send
            + 'static,
    {
        let (tx, rx) = oneshot::channel::<Result<T, StoreError>>();
        let job: Job = Box::new(move |t| match f(t) {
            Ok((value, wake, hook)) => JobOutcome {
                ok: true,
                wakes_dispatcher: wake == Wake::Dispatcher,
                answer: Box::new(move |commit_error| {
                    let _ = tx.send(match commit_error {
                        None => {
                            if let Some(hook) = hook {
                                hook();
                            }
                            Ok(value)
                        }
                        Some(e) => Err(e),
                    });
                }),
            },
            Err(e) => JobOutcome {
                ok: false,
                wakes_dispatcher: false,
                answer: Box::new(move |_| {
                    let _ = tx.send(Err(e));
                }),
            },
        });
        let queued = Queued { durability, job };
        match durability {
            // Client writes: refuse when the queue is full, the client retries later.
            Durability::Synced => self.jobs.try_send(queued).map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => StoreError::Busy,
                mpsc::error::TrySendError::Closed(_) => StoreError::Closed,
            })?,
            // The engine's own writes (leases, outcomes) must not be dropped: they wait.
            Durability::Relaxed => {
                self.jobs
                    .send(queued)
                    .await
                    .map_err(|_| StoreError::Closed)?;
            }
        }
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

/// Work to do right after a successful commit.
pub(super) type AfterCommit = Box<dyn FnOnce() + Send>;

fn run_writer(
    conn: Connection,
    mut rx: mpsc::Receiver<Queued>,
    mut due_index: DueIndex,
    mut subscribers: SubscriberCache,
    due: &Notify,
    next_due: &AtomicI64,
    handoff_slot: &HandoffSlot,
) {
    next_due.store(due_index.earliest().unwrap_or(i64::MAX), Ordering::Relaxed);
    // The connection starts with `synchronous = FULL` (see `open_writer`).
    let mut synced = true;
    while let Some(first) = rx.blocking_recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        // One synced job makes the whole group synced; the pragma only changes outside a
        // transaction, so it is set here, and only when it differs.
        let needs_sync = jobs.iter().any(|q| q.durability == Durability::Synced);
        if needs_sync != synced {
            let pragma = if needs_sync {
                "PRAGMA synchronous = FULL"
            } else {
                "PRAGMA synchronous = NORMAL"
            };
            match conn.execute_batch(pragma) {
                Ok(()) => synced = needs_sync,
                Err(e) => tracing::error!("cannot set {pragma}: {e}"),
            }
        }
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            let message = e.to_string();
            tracing::error!("cannot begin a write transaction: {message}");
            // Dropping the jobs unanswered makes their callers see a closed store.
            drop(jobs);
            continue;
        }
        let handoff = handoff_slot.lock().ok().and_then(|h| h.clone());
        let mut answers = Vec::with_capacity(jobs.len());
        let mut wake = false;
        for Queued { job, .. } in jobs {
            let outcome = run_job(
                &mut Tx {
                    conn: &conn,
                    subscribers: &mut subscribers,
                    due: &mut due_index,
                    handoff: handoff.as_ref(),
                },
                job,
            );
            wake |= outcome.wakes_dispatcher;
            answers.push(outcome.answer);
        }
        let commit_error = conn.execute_batch("COMMIT").err().map(|e| {
            let _ = conn.execute_batch("ROLLBACK");
            // The caches may hold what the rolled-back transaction wrote.
            subscribers.clear();
            match DueIndex::load(&conn) {
                Ok(reloaded) => due_index = reloaded,
                Err(e) => tracing::error!("cannot reload the due index: {e}"),
            }
            tracing::error!("commit failed: {e}");
            // A full disk or read-only file becomes a 503 the client retries.
            StoreError::from(e)
        });
        let committed = commit_error.is_none();
        next_due.store(due_index.earliest().unwrap_or(i64::MAX), Ordering::Relaxed);
        for answer in answers {
            answer(commit_error.clone());
        }
        if committed && wake {
            due.notify_one();
        }
    }
}

fn run_job(tx: &mut Tx<'_>, job: Job) -> JobOutcome {
    let conn = tx.conn;
    // Prepared once and reused: these run for every write.
    let run = |sql: &str| {
        conn.prepare_cached(sql)
            .and_then(|mut stmt| stmt.execute([]))
    };
    if let Err(e) = run("SAVEPOINT job") {
        let message = e.to_string();
        return JobOutcome {
            ok: false,
            wakes_dispatcher: false,
            answer: Box::new(move |_| tracing::error!("savepoint failed: {message}")),
        };
    }
    let outcome = job(tx);
    if !outcome.ok {
        // A failed write may have filled the caches with rows it then rolled back.
        tx.subscribers.clear();
        match DueIndex::load(conn) {
            Ok(reloaded) => *tx.due = reloaded,
            Err(e) => tracing::error!("cannot reload the due index: {e}"),
        }
    }
    let ended = if outcome.ok {
        run("RELEASE job")
    } else {
        run("ROLLBACK TO job").and_then(|_| run("RELEASE job"))
    };
    if let Err(e) = ended {
        tracing::error!("ending a savepoint failed: {e}");
    }
    outcome
}

/// A few read-only connections; WAL lets them read while the writer writes.
pub(super) struct ReadPool {
    conns: Vec<Arc<Mutex<Connection>>>,
    next: AtomicUsize,
}

impl ReadPool {
    pub(super) fn open(path: &Path, size: usize) -> Result<ReadPool, StoreError> {
        let conns = (0..size.max(1))
            .map(|_| {
                let conn = Connection::open_with_flags(
                    path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                configure(&conn)?;
                Ok(Arc::new(Mutex::new(conn)))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(ReadPool {
            conns,
            next: AtomicUsize::new(0),
        })
    }

    /// Runs `f` on a read connection on the blocking thread pool.
    pub(super) async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
        let conn = Arc::clone(&self.conns[index]);
        tokio::task::spawn_blocking(move || {
            let guard = conn.lock().map_err(|_| StoreError::Closed)?;
            f(&guard)
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }
}

/// Opens the write connection and sets the file up: WAL, full fsync on commit (a `202`
/// must survive power loss, not just a crash), schema migrations.
pub(super) fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    // One thread owns this connection, so SQLite's own locking is pure cost.
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    configure(&conn)?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = FULL;
         PRAGMA temp_store = MEMORY;",
    )?;
    migrate(&conn)?;
    Ok(conn)
}

/// What every connection (the writer and each reader) is set up with.
fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // Without the planner's stability guarantee SQLite marks a statement for a fresh
    // compile whenever a parameter that it compared with a partial index's condition is
    // bound again, and the queue's statements did that on every run (a full parse and
    // plan per claim probe and due-time refresh). Every partial index hookd has is
    // matched by literals in its queries, so a plan never depends on a bound value.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(())
}

const MIGRATIONS: &[&str] = &[
    include_str!("schema.sql"),
    include_str!("schema_2.sql"),
    include_str!("schema_3.sql"),
    include_str!("schema_4.sql"),
    include_str!("schema_5.sql"),
    include_str!("schema_6.sql"),
    include_str!("schema_7.sql"),
    include_str!("schema_8.sql"),
    include_str!("schema_9.sql"),
];

fn migrate(conn: &Connection) -> Result<(), StoreError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    let known = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    if version > known {
        return Err(StoreError::Database(format!(
            "the database has schema version {version}, newer than this hookd knows ({known}); upgrade hookd"
        )));
    }
    for (index, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(version).unwrap_or(0))
    {
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(sql)?;
        tx.execute_batch(&format!("PRAGMA user_version = {}", index + 1))?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookd_testkit::resources::ImmutableFiles;

    fn insert(n: i64) -> impl FnOnce(&mut Tx<'_>) -> Result<((), Wake), StoreError> {
        move |tx| {
            tx.conn
                .execute("INSERT INTO scratch (n) VALUES (?1)", [n])?;
            Ok(((), Wake::Nobody))
        }
    }

    /// A commit the disk refuses (here: a database that became read-only under the
    /// writer) is `StorageUnavailable`, a 503 for the client; the group is rolled back, and
    /// once the disk takes writes again the writer's next group commits as usual.
    #[tokio::test]
    async fn a_refused_commit_is_storage_unavailable_and_the_writer_recovers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hookd.db");
        let conn = open_writer(&path).expect("open");
        conn.execute_batch("CREATE TABLE scratch (n INTEGER NOT NULL)")
            .expect("scratch table");
        let due_index = DueIndex::load(&conn).expect("due index");
        let writer = Writer::start(
            conn,
            due_index,
            Arc::default(),
            Arc::new(AtomicI64::new(i64::MAX)),
            HandoffSlot::default(),
            SecretKeys::none(),
        );
        writer
            .write(Durability::Synced, insert(1))
            .await
            .expect("first write");
        let wal = dir.path().join("hookd.db-wal");
        let frozen = match ImmutableFiles::set(&[&path, &wal]) {
            Ok(frozen) => frozen,
            Err(reason) if std::env::var("CI").as_deref() != Ok("true") => {
                eprintln!("skipping: cannot make the database read-only here: {reason}");
                return;
            }
            Err(reason) => panic!("cannot make the database read-only: {reason}"),
        };
        let refused = writer.write(Durability::Synced, insert(2)).await;
        assert!(
            matches!(refused, Err(StoreError::StorageUnavailable(_))),
            "{refused:?}"
        );
        drop(frozen);
        writer
            .write(Durability::Synced, insert(3))
            .await
            .expect("a write once the disk takes writes again");
        let rows = writer
            .write(Durability::Relaxed, |tx| {
                let mut select = tx.conn.prepare("SELECT n FROM scratch ORDER BY n")?;
                let rows = select
                    .query_map([], |row| row.get::<_, i64>(0))?
                    .collect::<Result<Vec<i64>, _>>()?;
                Ok((rows, Wake::Nobody))
            })
            .await
            .expect("read back");
        assert_eq!(rows, [1, 3]);
    }
}
