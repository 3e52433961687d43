//! Replay: one event sent again as a new delivery; bulk replay jobs made of batches that
//! re-send each event of a window once, by the state of its latest delivery, and move on
//! only from the cursor they expected (so nodes running one job never repeat a batch).

use hookd_store::Store;
use hookd_store::model::{
    DeliveryState, EventReplay, NewEvent, NewReplayJob, NextStep, ReplayBatch, ReplayFilter,
    ReplayJob, ReplayRefusal, ReplayState, ReplayStep, RunningReplay, WebhookChanges,
};
use hookd_testkit::{Backend, backend_tests};

use super::{
    T0, TestStore, add_client, add_webhook, claim, claim_at, event, finished, publish_one, record,
};

backend_tests!(
    batches_resend_each_admitted_event_once_and_take_turns_on_the_cursor,
    a_job_counts_its_window_and_filter_by_each_events_latest_delivery,
    a_job_is_cancelled_when_its_webhook_goes_and_refused_for_a_disabled_one,
    one_event_is_sent_again_where_a_publish_would_send_it,
);

fn new_job(id: &str, webhook_id: &str, since_ms: i64, filter: ReplayFilter) -> NewReplayJob {
    NewReplayJob {
        id: id.to_owned(),
        client_id: "cl_a".to_owned(),
        webhook_id: webhook_id.to_owned(),
        since_ms,
        until_ms: None,
        filter,
        now_ms: T0 + 100,
    }
}

async fn create(store: &dyn Store, job: NewReplayJob) -> ReplayJob {
    store.create_replay_job(job).await.unwrap().unwrap()
}

async fn running(store: &dyn Store) -> Vec<RunningReplay> {
    store.running_replay_jobs(10).await.unwrap()
}

fn batch(job: &RunningReplay, cursor: i64, max_events: usize) -> ReplayBatch {
    ReplayBatch {
        job_key: job.key,
        expected_cursor: cursor,
        max_events,
        now_ms: T0 + 200,
    }
}

/// Runs a job's batches until it stops; the events it re-sent.
async fn run_to_end(store: &dyn Store, job: &RunningReplay) -> u64 {
    let mut cursor = job.cursor;
    let mut replayed_total = 0;
    loop {
        match store
            .run_replay_batch(batch(job, cursor, 100))
            .await
            .unwrap()
        {
            ReplayStep::Advanced {
                replayed,
                cursor: next,
                completed,
                ..
            } => {
                replayed_total += replayed;
                cursor = next;
                if completed {
                    return replayed_total;
                }
            }
            other => panic!("unexpected step {other:?}"),
        }
    }
}

/// Publishes `evt_1` … `evt_6` (received at `T0 + n`) to wh_a (and wh_b) and finishes
/// their deliveries to wh_a: 2 succeeds, 4 stays pending (due much later), 5 is a test
/// event (to wh_a only), the others fail. wh_b's all succeed.
async fn six_events(store: &dyn Store) {
    add_client(store, "cl_a").await;
    add_webhook(store, "cl_a", "wh_a", &["*"]).await;
    add_webhook(store, "cl_a", "wh_b", &["*"]).await;
    for n in 1..=6 {
        let mut e = event(&format!("evt_{n}"), "payment.completed", T0 + n);
        e.first_attempt_at_ms = if n == 4 { T0 + 1_000_000 } else { T0 };
        if n == 5 {
            e.test = true;
            e.only_webhook_id = Some("wh_a".to_owned());
        }
        publish_one(store, "cl_a", e).await;
    }
    let claimed = claim(store, claim_at(T0 + 10, 1_000)).await;
    assert_eq!(claimed.len(), 5 + 4, "{claimed:?}");
    for c in &claimed {
        let next = if c.webhook_id == "wh_b" || c.event.id == "evt_2" {
            NextStep::Succeeded
        } else {
            NextStep::Failed {
                disable_webhook_reason: None,
            }
        };
        let status = if next == NextStep::Succeeded {
            200
        } else {
            400
        };
        record(
            store,
            finished(c, c.lease_token, T0 + 10, Some(status), next),
        )
        .await;
    }
}

/// `(webhook id, state)` of every delivery of an event, in the order they were made.
async fn deliveries(store: &dyn Store, event_id: &str) -> Vec<(String, DeliveryState)> {
    let detail = store.get_event("cl_a", event_id).await.unwrap().unwrap();
    detail
        .deliveries
        .into_iter()
        .map(|d| (d.webhook_id, d.state))
        .collect()
}

async fn delivery_count(store: &dyn Store) -> usize {
    let mut n = 0;
    for id in 1..=6 {
        n += deliveries(store, &format!("evt_{id}")).await.len();
    }
    n
}

async fn batches_resend_each_admitted_event_once_and_take_turns_on_the_cursor(backend: Backend) {
    let store = TestStore::new(backend).await;
    six_events(&*store).await;

    let job = create(&*store, new_job("rpl_1", "wh_a", T0, ReplayFilter::Failed)).await;
    assert_eq!(
        (job.state, job.total, job.done),
        (ReplayState::Running, 3, 0)
    );
    assert_eq!(job.completed_at_ms, None);
    let jobs = running(&*store).await;
    assert_eq!(jobs.len(), 1);
    let job_ref = &jobs[0];
    assert_eq!(job_ref.id, "rpl_1");

    // Two events per batch: 1 (failed) and 2 (succeeded).
    let first = store
        .run_replay_batch(batch(job_ref, job_ref.cursor, 2))
        .await
        .unwrap();
    let ReplayStep::Advanced {
        replayed: 1,
        done: 1,
        cursor: after_first,
        completed: false,
    } = first
    else {
        panic!("first batch: {first:?}");
    };
    let before = delivery_count(&*store).await;
    // The same batch again (a node that saw the old cursor) changes nothing.
    let again = store
        .run_replay_batch(batch(job_ref, job_ref.cursor, 2))
        .await
        .unwrap();
    assert_eq!(again, ReplayStep::Stale);
    assert_eq!(delivery_count(&*store).await, before);

    // Two nodes on the next batch at once: one makes it, the other finds it made.
    let (a, b) = tokio::join!(
        store.run_replay_batch(batch(job_ref, after_first, 2)),
        store.run_replay_batch(batch(job_ref, after_first, 2)),
    );
    let mut steps = [a.unwrap(), b.unwrap()];
    steps.sort_by_key(|s| matches!(s, ReplayStep::Stale));
    let ReplayStep::Advanced {
        replayed: 1,
        done: 2,
        cursor: after_second,
        completed: false,
    } = steps[0]
    else {
        panic!("concurrent batches: {steps:?}");
    };
    assert_eq!(steps[1], ReplayStep::Stale, "{steps:?}");
    assert_eq!(delivery_count(&*store).await, before + 1);

    // 5 is a test event, 6 failed; then an empty batch completes the job.
    let third = store
        .run_replay_batch(batch(job_ref, after_second, 2))
        .await
        .unwrap();
    let ReplayStep::Advanced {
        replayed: 1,
        done: 3,
        cursor: after_third,
        completed: false,
    } = third
    else {
        panic!("third batch: {third:?}");
    };
    let last = store
        .run_replay_batch(batch(job_ref, after_third, 2))
        .await
        .unwrap();
    assert_eq!(
        last,
        ReplayStep::Advanced {
            replayed: 0,
            done: 3,
            cursor: after_third,
            completed: true
        }
    );
    assert!(running(&*store).await.is_empty());
    let finished_job = store
        .get_replay_job("cl_a", "rpl_1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (finished_job.state, finished_job.total, finished_job.done),
        (ReplayState::Completed, 3, 3)
    );
    assert_eq!(finished_job.completed_at_ms, Some(T0 + 200));
    assert_eq!(
        store
            .run_replay_batch(batch(job_ref, after_third, 2))
            .await
            .unwrap(),
        ReplayStep::Stale,
        "a completed job makes no more batches"
    );

    // Each failed event has one new pending delivery to wh_a, after the failed one.
    let pending = |id: &str| (id.to_owned(), DeliveryState::Pending);
    let failed = |id: &str| (id.to_owned(), DeliveryState::Failed);
    let ok = |id: &str| (id.to_owned(), DeliveryState::Succeeded);
    assert_eq!(
        deliveries(&*store, "evt_1").await,
        [failed("wh_a"), ok("wh_b"), pending("wh_a")]
    );
    assert_eq!(deliveries(&*store, "evt_2").await, [ok("wh_a"), ok("wh_b")]);
    assert_eq!(deliveries(&*store, "evt_5").await, [failed("wh_a")]);
    assert_eq!(
        deliveries(&*store, "evt_6").await,
        [failed("wh_a"), ok("wh_b"), pending("wh_a")]
    );
    // They are due now (the due index knows them) and start again at attempt 1.
    let mut claimed: Vec<(String, String, u32)> = claim(&*store, claim_at(T0 + 300, 1_000))
        .await
        .into_iter()
        .map(|c| (c.event.id, c.webhook_id, c.attempt_number))
        .collect();
    claimed.sort();
    assert_eq!(
        claimed,
        [
            ("evt_1".to_owned(), "wh_a".to_owned(), 1),
            ("evt_3".to_owned(), "wh_a".to_owned(), 1),
            ("evt_6".to_owned(), "wh_a".to_owned(), 1),
        ]
    );

    // The webhook's jobs, newest first, a page at a time.
    create(&*store, new_job("rpl_2", "wh_a", T0, ReplayFilter::All)).await;
    let page = |cursor: Option<String>| hookd_store::model::PageRequest { limit: 1, cursor };
    let first_page = store
        .list_replay_jobs("cl_a", "wh_a", page(None))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first_page.data.len(), 1);
    assert_eq!(first_page.data[0].id, "rpl_2");
    let second_page = store
        .list_replay_jobs("cl_a", "wh_a", page(first_page.next_cursor))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second_page.data[0].id, "rpl_1");
    assert_eq!(second_page.next_cursor, None);
    assert!(
        store
            .list_replay_jobs("cl_a", "wh_nope", page(None))
            .await
            .unwrap()
            .is_none()
    );
}

async fn a_job_counts_its_window_and_filter_by_each_events_latest_delivery(backend: Backend) {
    let store = TestStore::new(backend).await;
    six_events(&*store).await;

    // Latest deliveries to wh_a: 1 failed, 2 succeeded, 3 failed, 4 pending, 6 failed
    // (5, a test event, never counts).
    let totals = [
        ("rpl_failed", ReplayFilter::Failed, T0, None, 3),
        ("rpl_succeeded", ReplayFilter::Succeeded, T0, None, 1),
        // Counted 0: completed at once.
        ("rpl_cancelled", ReplayFilter::Cancelled, T0, None, 0),
        ("rpl_all", ReplayFilter::All, T0, None, 4),
        // The window: received at or after `since`, before `until`.
        ("rpl_from_3", ReplayFilter::Failed, T0 + 3, None, 2),
        ("rpl_before_3", ReplayFilter::Failed, T0, Some(T0 + 3), 1),
        ("rpl_2_to_4", ReplayFilter::All, T0 + 2, Some(T0 + 4), 2),
    ];
    for (id, filter, since_ms, until_ms, total) in totals {
        let job = create(
            &*store,
            NewReplayJob {
                until_ms,
                ..new_job(id, "wh_a", since_ms, filter)
            },
        )
        .await;
        assert_eq!(job.total, total, "{id}");
        let state = if total == 0 {
            ReplayState::Completed
        } else {
            ReplayState::Running
        };
        assert_eq!(job.state, state, "{id}");
    }
    // Nothing to re-send: complete from the start.
    let empty = create(
        &*store,
        new_job("rpl_later", "wh_a", T0 + 7, ReplayFilter::All),
    )
    .await;
    assert_eq!((empty.state, empty.total), (ReplayState::Completed, 0));
    assert_eq!(empty.completed_at_ms, Some(T0 + 100));

    let jobs = running(&*store).await;
    let job = |id: &str| jobs.iter().find(|j| j.id == id).unwrap().clone();
    assert_eq!(
        jobs.len(),
        totals.len() - 1,
        "all but rpl_cancelled: {jobs:?}"
    );
    // A job re-sends what it counted…
    assert_eq!(run_to_end(&*store, &job("rpl_all")).await, 4);
    // …unless the deliveries changed meanwhile: 1, 3 and 6 are being sent again now, so
    // the job for failed ones finds none, and its total becomes what it did.
    assert_eq!(run_to_end(&*store, &job("rpl_failed")).await, 0);
    let done = store
        .get_replay_job("cl_a", "rpl_failed")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (done.state, done.total, done.done),
        (ReplayState::Completed, 0, 0)
    );

    // The latest delivery decides: 1's replay succeeds, 2's, 3's and 6's fail, so the
    // failed ones are now 2, 3 and 6.
    for c in claim(&*store, claim_at(T0 + 300, 1_000)).await {
        let next = if c.event.id == "evt_1" {
            NextStep::Succeeded
        } else {
            NextStep::Failed {
                disable_webhook_reason: None,
            }
        };
        record(
            &*store,
            finished(&c, c.lease_token, T0 + 300, Some(200), next),
        )
        .await;
    }
    let again = create(
        &*store,
        new_job("rpl_again", "wh_a", T0, ReplayFilter::Failed),
    )
    .await;
    assert_eq!(again.total, 3);
    let job = running(&*store)
        .await
        .into_iter()
        .find(|j| j.id == "rpl_again")
        .unwrap();
    assert_eq!(run_to_end(&*store, &job).await, 3);
    let mut claimed: Vec<String> = claim(&*store, claim_at(T0 + 400, 1_000))
        .await
        .into_iter()
        .map(|c| c.event.id)
        .collect();
    claimed.sort();
    assert_eq!(claimed, ["evt_2", "evt_3", "evt_6"]);
}

async fn a_job_is_cancelled_when_its_webhook_goes_and_refused_for_a_disabled_one(backend: Backend) {
    let store = TestStore::new(backend).await;
    six_events(&*store).await;
    add_client(&*store, "cl_b").await;
    add_webhook(&*store, "cl_b", "wh_other", &["*"]).await;

    let refused = |job: NewReplayJob| async { store.create_replay_job(job).await.unwrap() };
    assert_eq!(
        refused(new_job("rpl_x", "wh_nope", T0, ReplayFilter::Failed))
            .await
            .err(),
        Some(ReplayRefusal::WebhookNotFound)
    );
    assert_eq!(
        refused(new_job("rpl_x", "wh_other", T0, ReplayFilter::Failed))
            .await
            .err(),
        Some(ReplayRefusal::WebhookNotFound),
        "another client's webhook"
    );
    assert_eq!(
        store
            .get_replay_job("cl_b", "rpl_x")
            .await
            .unwrap()
            .map(|j| j.id),
        None
    );

    create(&*store, new_job("rpl_1", "wh_a", T0, ReplayFilter::Failed)).await;
    assert!(
        store
            .get_replay_job("cl_b", "rpl_1")
            .await
            .unwrap()
            .is_none()
    );
    let job = running(&*store).await.remove(0);
    let before = delivery_count(&*store).await;
    let disable = WebhookChanges {
        enabled: Some(false),
        now_ms: T0 + 150,
        ..WebhookChanges::default()
    };
    store.update_webhook("cl_a", "wh_a", disable).await.unwrap();
    assert_eq!(
        store
            .run_replay_batch(batch(&job, job.cursor, 100))
            .await
            .unwrap(),
        ReplayStep::Cancelled
    );
    assert_eq!(delivery_count(&*store).await, before);
    let cancelled = store
        .get_replay_job("cl_a", "rpl_1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (cancelled.state, cancelled.done),
        (ReplayState::Cancelled, 0)
    );
    assert_eq!(cancelled.completed_at_ms, Some(T0 + 200));
    assert!(running(&*store).await.is_empty());
    assert_eq!(
        refused(new_job("rpl_y", "wh_a", T0, ReplayFilter::Failed))
            .await
            .err(),
        Some(ReplayRefusal::WebhookDisabled)
    );

    // Deleting cancels a running job too.
    create(&*store, new_job("rpl_2", "wh_b", T0, ReplayFilter::All)).await;
    let job = running(&*store).await.remove(0);
    assert!(
        store
            .delete_webhook("cl_a", "wh_b", T0 + 150)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .run_replay_batch(batch(&job, job.cursor, 100))
            .await
            .unwrap(),
        ReplayStep::Cancelled
    );
}

fn replay(event_id: &str, webhook_id: Option<&str>) -> EventReplay {
    EventReplay {
        client_id: "cl_a".to_owned(),
        event_id: event_id.to_owned(),
        webhook_id: webhook_id.map(str::to_owned),
        now_ms: T0 + 50,
    }
}

async fn one_event_is_sent_again_where_a_publish_would_send_it(backend: Backend) {
    let store = TestStore::new(backend).await;
    add_client(&*store, "cl_a").await;
    add_client(&*store, "cl_b").await;
    add_webhook(&*store, "cl_a", "wh_a", &["*"]).await;
    add_webhook(&*store, "cl_a", "wh_b", &["payment.completed"]).await;
    add_webhook(&*store, "cl_a", "wh_c", &["*"]).await;
    publish_one(&*store, "cl_a", event("evt_1", "payment.completed", T0)).await;
    // Delivered to all three, then wh_b stops subscribing and wh_c is disabled.
    for c in claim(&*store, claim_at(T0, 1_000)).await {
        record(
            &*store,
            finished(&c, c.lease_token, T0, Some(200), NextStep::Succeeded),
        )
        .await;
    }
    let unsubscribe = WebhookChanges {
        events: Some(vec!["payout_request.*".to_owned()]),
        now_ms: T0 + 1,
        ..WebhookChanges::default()
    };
    store
        .update_webhook("cl_a", "wh_b", unsubscribe)
        .await
        .unwrap();
    let disable = WebhookChanges {
        enabled: Some(false),
        now_ms: T0 + 1,
        ..WebhookChanges::default()
    };
    store.update_webhook("cl_a", "wh_c", disable).await.unwrap();
    // A webhook made after the event.
    add_webhook(&*store, "cl_a", "wh_d", &["payment.*"]).await;

    let replayed = store
        .replay_event(replay("evt_1", None))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(replayed.event.id, "evt_1");
    assert_eq!(replayed.webhook_ids, ["wh_a"]);
    let explicit = store
        .replay_event(replay("evt_1", Some("wh_d")))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(explicit.webhook_ids, ["wh_d"]);

    let refusal = |r: EventReplay| async { store.replay_event(r).await.unwrap().err() };
    assert_eq!(
        refusal(replay("evt_1", Some("wh_b"))).await,
        Some(ReplayRefusal::NotSubscribed {
            event_type: "payment.completed".to_owned(),
            filters: vec!["payout_request.*".to_owned()],
        })
    );
    assert_eq!(
        refusal(replay("evt_1", Some("wh_c"))).await,
        Some(ReplayRefusal::WebhookDisabled)
    );
    assert_eq!(
        refusal(replay("evt_1", Some("wh_nope"))).await,
        Some(ReplayRefusal::WebhookNotFound)
    );
    assert_eq!(
        refusal(replay("evt_nope", None)).await,
        Some(ReplayRefusal::EventNotFound)
    );
    assert_eq!(
        refusal(EventReplay {
            client_id: "cl_b".to_owned(),
            ..replay("evt_1", None)
        })
        .await,
        Some(ReplayRefusal::EventNotFound),
        "another client's event"
    );

    // The new deliveries are due at once and attempted from 1 again.
    let mut claimed: Vec<(String, u32)> = claim(&*store, claim_at(T0 + 50, 1_000))
        .await
        .into_iter()
        .map(|c| (c.webhook_id, c.attempt_number))
        .collect();
    claimed.sort();
    assert_eq!(claimed, [("wh_a".to_owned(), 1), ("wh_d".to_owned(), 1)]);

    // Nowhere left to send it: wh_a disabled, wh_d deleted.
    let disable = WebhookChanges {
        enabled: Some(false),
        now_ms: T0 + 60,
        ..WebhookChanges::default()
    };
    store.update_webhook("cl_a", "wh_a", disable).await.unwrap();
    assert!(store.delete_webhook("cl_a", "wh_d", T0 + 60).await.unwrap());
    assert_eq!(
        refusal(replay("evt_1", None)).await,
        Some(ReplayRefusal::NoWebhook)
    );

    // A test event stays one.
    add_webhook(&*store, "cl_a", "wh_e", &["*"]).await;
    let test_event = NewEvent {
        test: true,
        only_webhook_id: Some("wh_e".to_owned()),
        first_attempt_at_ms: T0 + 1_000_000,
        ..event("evt_test", "payment.completed", T0 + 70)
    };
    publish_one(&*store, "cl_a", test_event).await;
    let replayed = store
        .replay_event(replay("evt_test", None))
        .await
        .unwrap()
        .unwrap();
    assert!(replayed.event.test);
    assert_eq!(replayed.webhook_ids, ["wh_e"]);
    let claimed = claim(&*store, claim_at(T0 + 80, 1_000)).await;
    assert_eq!(claimed.len(), 1, "only the replay is due: {claimed:?}");
    assert!(claimed[0].event.test);
    assert_eq!(claimed[0].attempt_number, 1);
}
