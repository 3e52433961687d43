//! Publishing on PostgreSQL with group commit: publishes queue up, and a few worker tasks
//! each take everything waiting (up to a bound) and store it with one statement and one
//! commit. Under load many publishes share a commit; alone, a publish waits for no one.
//! A queued publish belongs to the workers, so it runs to its end (and hands over what it
//! committed) even if the caller, a client that hung up, has gone away.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use deadpool_postgres::{GenericClient, Pool};
use hookd_core::event_type::any_matches;
use tokio::sync::mpsc::OwnedPermit;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::Handoff;
use super::queries::{self, Subscriber};
use crate::StoreError;
use crate::model::{ClaimedDelivery, NewEvent, Published};
use crate::sealing::{OpenedSecrets, SecretKeys};

/// Publishes waiting for a worker; beyond this, publishing answers `Busy` (503).
const QUEUE: usize = 16 * 1024;
/// Most events one commit stores.
const BATCH_EVENTS: usize = 512;

struct Job {
    client_id: String,
    events: Vec<NewEvent>,
    reply: oneshot::Sender<Result<Vec<Published>, StoreError>>,
}

pub(super) struct Publisher {
    queue: mpsc::Sender<Job>,
    workers: Vec<JoinHandle<()>>,
}

/// What the workers share.
struct Context {
    pool: Pool,
    channel: String,
    handoff: Arc<Mutex<Option<Handoff>>>,
    queue: tokio::sync::Mutex<mpsc::Receiver<Job>>,
}

impl Publisher {
    pub(super) fn start(
        pool: Pool,
        channel: String,
        handoff: Arc<Mutex<Option<Handoff>>>,
        workers: usize,
    ) -> Publisher {
        let (queue, receiver) = mpsc::channel(QUEUE);
        let context = Arc::new(Context {
            pool,
            channel,
            handoff,
            queue: tokio::sync::Mutex::new(receiver),
        });
        let workers = (0..workers.max(1))
            .map(|_| tokio::spawn(work(Arc::clone(&context))))
            .collect();
        Publisher { queue, workers }
    }

    pub(super) async fn publish(
        &self,
        client_id: &str,
        events: Vec<NewEvent>,
    ) -> Result<Vec<Published>, StoreError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            client_id: client_id.to_owned(),
            events,
            reply,
        };
        self.queue.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => StoreError::Busy,
            mpsc::error::TrySendError::Closed(_) => StoreError::Closed,
        })?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        for worker in &self.workers {
            worker.abort();
        }
    }
}

async fn work(context: Arc<Context>) {
    loop {
        let mut jobs = Vec::new();
        {
            // One worker gathers at a time; the others are storing their batches meanwhile.
            let mut queue = context.queue.lock().await;
            let Some(first) = queue.recv().await else {
                return;
            };
            let mut events = first.events.len();
            jobs.push(first);
            while events < BATCH_EVENTS {
                match queue.try_recv() {
                    Ok(job) => {
                        events += job.events.len();
                        jobs.push(job);
                    }
                    Err(_) => break,
                }
            }
        }
        run(&context, jobs).await;
    }
}

/// Stores `jobs` together; if one of them must fail on its own (a generated id that is
/// taken), each is stored alone instead, so that failure takes no one else with it.
async fn run(context: &Context, jobs: Vec<Job>) {
    let handoff = context.handoff.lock().ok().and_then(|slot| slot.clone());
    let requests: Vec<(&str, &[NewEvent])> = jobs
        .iter()
        .map(|j| (j.client_id.as_str(), j.events.as_slice()))
        .collect();
    match store(context, &requests, handoff.as_ref()).await {
        Ok(answers) => {
            for (job, answer) in jobs.into_iter().zip(answers) {
                let _ = job.reply.send(Ok(answer));
            }
        }
        Err(Failure::Isolate) if jobs.len() > 1 => {
            for job in jobs {
                let alone = [(job.client_id.as_str(), job.events.as_slice())];
                let answer = match store(context, &alone, handoff.as_ref()).await {
                    Ok(mut answers) => Ok(answers.pop().unwrap_or_default()),
                    Err(Failure::Isolate) => Err(StoreError::Database(
                        "an event id the server generated is taken".to_owned(),
                    )),
                    Err(Failure::Store(e)) => Err(e),
                };
                let _ = job.reply.send(answer);
            }
        }
        Err(failure) => {
            let error = match failure {
                Failure::Isolate => {
                    StoreError::Database("an event id the server generated is taken".to_owned())
                }
                Failure::Store(e) => e,
            };
            for job in jobs {
                let _ = job.reply.send(Err(error.clone()));
            }
        }
    }
}

enum Failure {
    /// One request cannot be stored; the others could be.
    Isolate,
    Store(StoreError),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        Failure::Store(e)
    }
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Failure {
        Failure::Store(e.into())
    }
}

impl From<deadpool_postgres::PoolError> for Failure {
    fn from(e: deadpool_postgres::PoolError) -> Failure {
        Failure::Store(e.into())
    }
}

/// Stores every request's events in one transaction (one statement when there is just one
/// event), then hands over the deliveries leased at insert and, if some new delivery is
/// due with no node holding it, tells every node.
async fn store(
    context: &Context,
    requests: &[(&str, &[NewEvent])],
    handoff: Option<&Handoff>,
) -> Result<Vec<Vec<Published>>, Failure> {
    let mut client = context.pool.get().await?;
    let single = requests.len() == 1 && requests[0].1.len() == 1;
    let stored = if single {
        // One statement is atomic by itself: no transaction needed.
        insert(&client, requests, handoff).await?
    } else {
        let tx = client.transaction().await?;
        let stored = insert(&tx, requests, handoff).await?;
        tx.commit().await?;
        stored
    };
    // Committed: the engine may start on what was leased to it.
    for (permit, delivery) in stored.permits.into_iter().zip(stored.leased) {
        permit.send(delivery);
    }
    if stored.due_unclaimed {
        // Committed is committed: without the signal, dispatchers still find them by polling.
        if let Err(e) = queries::notify_due(&client, &context.channel).await {
            tracing::warn!("announcing due deliveries failed: {e}");
        }
    }
    Ok(stored.answers)
}

/// Stores one client's events on `c` (inside the caller's transaction), none handed off.
/// Returns whether a new delivery is due now: then, after the commit, tell every node.
pub(super) async fn insert_in(
    c: &impl GenericClient,
    client_id: &str,
    events: &[NewEvent],
) -> Result<bool, StoreError> {
    match insert(c, &[(client_id, events)], None).await {
        Ok(stored) => Ok(stored.due_unclaimed),
        Err(Failure::Store(e)) => Err(e),
        Err(Failure::Isolate) => Err(StoreError::Conflict(
            "an event with this id is already stored".to_owned(),
        )),
    }
}

/// A stored delivery: `(delivery key, webhook key, lease token if leased at insert)`.
type NewDelivery = (i64, i64, Option<i64>);

struct Stored {
    answers: Vec<Vec<Published>>,
    permits: Vec<OwnedPermit<ClaimedDelivery>>,
    leased: Vec<ClaimedDelivery>,
    due_unclaimed: bool,
}

/// An event of the batch that goes into the insert.
struct Row<'a> {
    request: usize,
    event: &'a NewEvent,
    /// Its matching webhooks, and whether each delivery is leased to this node at insert.
    deliveries: Vec<(&'a Subscriber, bool)>,
}

async fn insert(
    c: &impl GenericClient,
    requests: &[(&str, &[NewEvent])],
    handoff: Option<&Handoff>,
) -> Result<Stored, Failure> {
    let clients: Vec<&str> = requests
        .iter()
        .map(|(client, _)| *client)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let subscribers = queries::load_subscribers(c, &clients).await?;
    // Leased deliveries come back keyed by webhook: found by key, not by a scan per row.
    let by_key: HashMap<i64, &Subscriber> =
        subscribers.values().flatten().map(|w| (w.key, w)).collect();
    let none = Vec::new();

    let mut permits = Vec::new();
    let mut due_unclaimed = false;
    // Opened before the insert, so what a hand-off needs is known before anything commits.
    let mut secrets = HashMap::new();
    let mut rows: Vec<Row<'_>> = Vec::new();
    // Per request and event: the row it was inserted as, or `None` for a repeat of an
    // event earlier in this batch (same client and id), read back after the insert.
    let mut placed: Vec<Vec<Option<usize>>> = Vec::with_capacity(requests.len());
    let mut ids_in_batch = HashSet::new();
    for (request, (client_id, events)) in requests.iter().enumerate() {
        let webhooks = subscribers.get(*client_id).unwrap_or(&none);
        let mut places = Vec::with_capacity(events.len());
        for event in *events {
            if !ids_in_batch.insert((*client_id, event.id.as_str())) {
                places.push(None);
                continue;
            }
            let due_now = event.first_attempt_at_ms <= event.now_ms;
            let mut deliveries = Vec::new();
            for webhook in webhooks
                .iter()
                .filter(|w| any_matches(&w.filters, &event.event_type) && event.goes_to(&w.id))
            {
                // A `hookd listen` session's deliveries go to the node holding its stream,
                // which claims them; this node may not be that one.
                let permit = match handoff {
                    Some(h)
                        if due_now
                            && crate::listen::listen_session(&webhook.url).is_none()
                            && opened_once(&h.keys, webhook, &mut secrets) =>
                    {
                        h.sender.clone().try_reserve_owned().ok()
                    }
                    _ => None,
                };
                let leased = permit.is_some();
                permits.extend(permit);
                due_unclaimed |= due_now && !leased;
                deliveries.push((webhook, leased));
            }
            places.push(Some(rows.len()));
            rows.push(Row {
                request,
                event,
                deliveries,
            });
        }
        placed.push(places);
    }

    let inserted = insert_rows(c, requests, &rows, handoff).await?;
    let mut leased = Vec::new();
    let mut new_rows: HashMap<usize, Vec<Option<NewDelivery>>> = HashMap::new();
    for (row, delivery) in inserted {
        new_rows.entry(row).or_default().push(delivery);
    }
    let mut answers = Vec::with_capacity(requests.len());
    for (request, places) in placed.iter().enumerate() {
        let (client_id, events) = requests[request];
        let mut published = Vec::with_capacity(events.len());
        for (event, place) in events.iter().zip(places) {
            let inserted = place.and_then(|row| new_rows.get(&row).map(|d| (row, d)));
            let Some((row, deliveries)) = inserted else {
                // A repeat (of an earlier event, or of one earlier in this batch): the
                // original comes back. A generated id that is taken is no repeat.
                match queries::find_existing_event(c, client_id, event).await? {
                    Some(existing) => published.push(Published::Existing { event: existing }),
                    None => return Err(Failure::Isolate),
                }
                continue;
            };
            let record = event.record();
            for (delivery_key, webhook_key, lease_token) in deliveries.iter().flatten() {
                let Some(lease_token) = lease_token else {
                    continue;
                };
                let (Some(webhook), Some(Some((secret, previous_secret)))) =
                    (by_key.get(webhook_key), secrets.get(webhook_key))
                else {
                    continue;
                };
                leased.push(ClaimedDelivery {
                    delivery_key: *delivery_key,
                    lease_token: *lease_token,
                    attempt_number: 1,
                    webhook_key: *webhook_key,
                    webhook_id: webhook.id.clone(),
                    url: webhook.url.clone(),
                    format: webhook.format,
                    signature_header: webhook.signature_header.clone(),
                    secret: secret.clone(),
                    previous_secret: previous_secret.clone().filter(|p| p.valid_at(event.now_ms)),
                    event: record.clone(),
                });
            }
            published.push(Published::New {
                event: record,
                deliveries: rows[row].deliveries.len(),
            });
        }
        answers.push(published);
    }
    Ok(Stored {
        answers,
        permits,
        leased,
        due_unclaimed,
    })
}

/// Whether `webhook`'s secrets open, so its deliveries may be handed off; each webhook's
/// are opened once per batch, into `secrets`.
fn opened_once(
    keys: &SecretKeys,
    webhook: &Subscriber,
    secrets: &mut HashMap<i64, Option<OpenedSecrets>>,
) -> bool {
    secrets
        .entry(webhook.key)
        .or_insert_with(|| {
            keys.open_for_handoff(
                &webhook.id,
                &webhook.secret,
                webhook.previous_secret.as_ref(),
            )
        })
        .is_some()
}

/// Inserts the events and their deliveries in one statement. Returns, per inserted event
/// (by row number), its deliveries as `(delivery key, webhook key, lease token)`, or one
/// `None` for an event without deliveries. Events that hit a unique index (a repeated
/// id or idempotency key) are not inserted and do not appear.
async fn insert_rows(
    c: &impl GenericClient,
    requests: &[(&str, &[NewEvent])],
    rows: &[Row<'_>],
    handoff: Option<&Handoff>,
) -> Result<Vec<(usize, Option<NewDelivery>)>, StoreError> {
    let n = rows.len();
    let mut tests = Vec::with_capacity(n);
    let (mut ords, mut clients, mut ids, mut keys, mut types, mut data, mut times) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut d_ords, mut d_webhooks, mut d_at, mut d_leased, mut d_times) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let lease_ms = handoff.map_or(0, |h| h.lease_ms);
    for (ord, row) in (0_i64..).zip(rows) {
        let e = row.event;
        ords.push(ord);
        clients.push(requests[row.request].0);
        ids.push(e.id.as_str());
        keys.push(e.idempotency_key.as_deref());
        types.push(e.event_type.as_str());
        data.push(e.data.as_str());
        times.push(e.now_ms);
        tests.push(e.test);
        for (webhook, leased) in &row.deliveries {
            d_ords.push(ord);
            d_webhooks.push(webhook.key);
            d_at.push(if *leased {
                e.now_ms.saturating_add(lease_ms)
            } else {
                e.first_attempt_at_ms
            });
            d_leased.push(*leased);
            d_times.push(e.now_ms);
        }
    }
    let found = queries::rows(
        c,
        "WITH input AS ( \
           SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], \
             $6::text[], $7::bigint[], $13::bool[]) \
           AS i(ord, client_id, id, idempotency_key, type, data, received_at, test)), \
         ev AS ( \
           INSERT INTO events (client_id, id, idempotency_key, type, data, received_at, test) \
           SELECT client_id, id, idempotency_key, type, data, received_at, test FROM input \
           ORDER BY ord ON CONFLICT DO NOTHING RETURNING key, client_id, id), \
         placed AS ( \
           SELECT i.ord, ev.key FROM ev JOIN input i ON i.client_id = ev.client_id AND i.id = ev.id), \
         dl AS ( \
           INSERT INTO deliveries (event_key, webhook_key, state, attempts, next_attempt_at, \
             lease_token, updated_at) \
           SELECT p.key, d.webhook_key, 0, 0, d.at, \
             CASE WHEN d.leased THEN nextval('lease_tokens') END, d.updated_at \
           FROM unnest($8::bigint[], $9::bigint[], $10::bigint[], $11::bool[], $12::bigint[]) \
             AS d(ord, webhook_key, at, leased, updated_at) \
           JOIN placed p ON p.ord = d.ord \
           RETURNING key, event_key, webhook_key, lease_token) \
         SELECT p.ord, dl.key, dl.webhook_key, dl.lease_token \
         FROM placed p LEFT JOIN dl ON dl.event_key = p.key",
        &[
            &ords,
            &clients,
            &ids,
            &keys,
            &types,
            &data,
            &times,
            &d_ords,
            &d_webhooks,
            &d_at,
            &d_leased,
            &d_times,
            &tests,
        ],
    )
    .await?;
    found
        .iter()
        .map(|r| {
            let ord: i64 = r.try_get(0)?;
            let row = usize::try_from(ord)
                .map_err(|_| StoreError::Database(format!("row number {ord}")))?;
            let delivery: Option<i64> = r.try_get(1)?;
            let delivery = match delivery {
                Some(key) => Some((key, r.try_get(2)?, r.try_get(3)?)),
                None => None,
            };
            Ok((row, delivery))
        })
        .collect()
}
