//! Retention: old events go with their deliveries and attempt logs, oldest first and a
//! bounded batch at a time; an event with a pending delivery is never purged.

use hookd_store::model::{DeliveryState, NextStep, Published, PurgeCount};
use hookd_testkit::{Backend, backend_tests};

use super::{
    T0, TestStore, add_client, add_webhook, claim, claim_at, delivery_states, event, finished,
    pair, publish_one, record,
};

backend_tests!(
    purging_deletes_old_finished_events_with_their_deliveries_and_attempts,
    a_purge_batch_takes_at_most_max_events_oldest_first,
    an_event_whose_delivery_was_cancelled_after_the_cutoff_is_kept,
);

fn counted(events: u64, deliveries: u64, attempts: u64) -> PurgeCount {
    PurgeCount {
        events,
        deliveries,
        attempts,
    }
}

async fn exists(store: &TestStore, event_id: &str) -> bool {
    store.get_event("cl_a", event_id).await.unwrap().is_some()
}

async fn purging_deletes_old_finished_events_with_their_deliveries_and_attempts(backend: Backend) {
    let store = TestStore::new(backend).await;
    add_client(&*store, "cl_a").await;
    add_webhook(&*store, "cl_a", "wh_a", &["*"]).await;
    add_webhook(&*store, "cl_a", "wh_b", &["*"]).await;

    // Old and finished: wh_a fails after a retry, wh_b succeeds (two deliveries, three
    // attempts).
    let mut done = event("evt_done", "payment_intent.paid", T0);
    done.idempotency_key = Some("key-1".to_owned());
    publish_one(&*store, "cl_a", done).await;
    // Old, but its deliveries wait for a retry far in the future.
    let mut pending = event("evt_pending", "payment_intent.paid", T0 + 1);
    pending.first_attempt_at_ms = T0 + 1_000_000;
    publish_one(&*store, "cl_a", pending).await;

    let claimed = claim(&*store, claim_at(T0, 100)).await;
    assert_eq!(claimed.len(), 2);
    for c in &claimed {
        let next = if c.webhook_id == "wh_a" {
            NextStep::RetryAt { at_ms: T0 + 10 }
        } else {
            NextStep::Succeeded
        };
        record(&*store, finished(c, c.lease_token, T0, Some(500), next)).await;
    }
    let retried = claim(&*store, claim_at(T0 + 10, 100)).await;
    assert_eq!(retried.len(), 1);
    let failed = NextStep::Failed {
        disable_webhook_reason: None,
    };
    let retry = &retried[0];
    record(
        &*store,
        finished(retry, retry.lease_token, T0 + 10, Some(500), failed),
    )
    .await;

    // Young and finished.
    publish_one(
        &*store,
        "cl_a",
        event("evt_young", "payment_intent.paid", T0 + 50),
    )
    .await;
    let young = claim(&*store, claim_at(T0 + 50, 100)).await;
    assert_eq!(young.len(), 2);
    for c in &young {
        record(
            &*store,
            finished(c, c.lease_token, T0 + 50, Some(200), NextStep::Succeeded),
        )
        .await;
    }

    let purged = store
        .purge_events_received_before(T0 + 40, 100)
        .await
        .unwrap();
    assert_eq!(purged, counted(1, 2, 3));
    assert!(!exists(&store, "evt_done").await);
    assert!(
        store
            .list_attempts("cl_a", "evt_done")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        delivery_states(&*store, "cl_a", "evt_pending").await,
        vec![
            pair("wh_a", DeliveryState::Pending),
            pair("wh_b", DeliveryState::Pending)
        ]
    );
    assert!(exists(&store, "evt_young").await);
    let (_, young_attempts) = store
        .list_attempts("cl_a", "evt_young")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(young_attempts.len(), 2);

    // Nothing more to do at that cutoff.
    let again = store
        .purge_events_received_before(T0 + 40, 100)
        .await
        .unwrap();
    assert_eq!(again, PurgeCount::default());

    // The idempotency key went with its event.
    let mut repeat = event("evt_again", "payment_intent.paid", T0 + 60);
    repeat.idempotency_key = Some("key-1".to_owned());
    repeat.first_attempt_at_ms = T0 + 2_000_000;
    assert!(matches!(
        publish_one(&*store, "cl_a", repeat).await,
        Published::New { .. }
    ));

    // Once the pending deliveries finish, their event goes too.
    let late = claim(&*store, claim_at(T0 + 1_000_000, 100)).await;
    assert_eq!(late.len(), 2);
    for c in &late {
        record(
            &*store,
            finished(
                c,
                c.lease_token,
                T0 + 1_000_000,
                Some(200),
                NextStep::Succeeded,
            ),
        )
        .await;
    }
    let rest = store
        .purge_events_received_before(T0 + 1_000_100, 100)
        .await
        .unwrap();
    // evt_pending and evt_young; evt_again is still pending.
    assert_eq!(rest, counted(2, 4, 4));
    assert!(!exists(&store, "evt_pending").await);
    assert!(!exists(&store, "evt_young").await);
    assert!(exists(&store, "evt_again").await);
}

async fn a_purge_batch_takes_at_most_max_events_oldest_first(backend: Backend) {
    let store = TestStore::new(backend).await;
    add_client(&*store, "cl_a").await;
    // No webhook: the events have no deliveries, so every one may go. Published newest
    // first, so the order purged follows receipt times, not keys.
    for i in (0..5).rev() {
        let id = format!("evt_{i}");
        publish_one(&*store, "cl_a", event(&id, "payment_intent.paid", T0 + i)).await;
    }
    let first = store
        .purge_events_received_before(T0 + 100, 2)
        .await
        .unwrap();
    assert_eq!(first, counted(2, 0, 0));
    assert!(!exists(&store, "evt_0").await);
    assert!(!exists(&store, "evt_1").await);
    for id in ["evt_2", "evt_3", "evt_4"] {
        assert!(exists(&store, id).await, "{id} was purged too early");
    }
    let second = store
        .purge_events_received_before(T0 + 100, 2)
        .await
        .unwrap();
    assert_eq!(second, counted(2, 0, 0));
    assert!(exists(&store, "evt_4").await);
    // A short batch: the end.
    let third = store
        .purge_events_received_before(T0 + 100, 2)
        .await
        .unwrap();
    assert_eq!(third, counted(1, 0, 0));
    assert!(!exists(&store, "evt_4").await);
    let none = store
        .purge_events_received_before(T0 + 100, 2)
        .await
        .unwrap();
    assert_eq!(none, PurgeCount::default());
}

async fn an_event_whose_delivery_was_cancelled_after_the_cutoff_is_kept(backend: Backend) {
    let store = TestStore::new(backend).await;
    add_client(&*store, "cl_a").await;
    add_webhook(&*store, "cl_a", "wh_a", &["*"]).await;
    publish_one(&*store, "cl_a", event("evt_a", "payment_intent.paid", T0)).await;
    // An attempt may still be in flight when its delivery is cancelled, and be logged
    // after: the event stays until the cancellation itself is older than the cutoff.
    assert!(
        store
            .delete_webhook("cl_a", "wh_a", T0 + 100)
            .await
            .unwrap()
    );
    let kept = store
        .purge_events_received_before(T0 + 50, 100)
        .await
        .unwrap();
    assert_eq!(kept, PurgeCount::default());
    assert_eq!(
        delivery_states(&*store, "cl_a", "evt_a").await,
        vec![pair("wh_a", DeliveryState::Cancelled)]
    );
    let purged = store
        .purge_events_received_before(T0 + 200, 100)
        .await
        .unwrap();
    assert_eq!(purged, counted(1, 1, 0));
    assert!(!exists(&store, "evt_a").await);
}
