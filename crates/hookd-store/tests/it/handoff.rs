//! Handing new deliveries straight to the engine: leased at insert, sent after the commit,
//! only while the channel has room, and given back on request.

use std::future::Future;

use hookd_testkit::{Backend, backend_tests};

use crate::{T0, TestStore, add_client, add_webhook, claim, claim_at, event, publish_one};

backend_tests!(
    new_deliveries_are_handed_off_leased_and_not_claimable,
    a_full_channel_leaves_deliveries_to_be_claimed,
    given_back_deliveries_are_claimable_at_once,
    a_rolled_back_publish_hands_off_nothing,
    a_cancelled_publish_still_hands_off_what_it_committed,
);

async fn new_deliveries_are_handed_off_leased_and_not_claimable(backend: Backend) {
    let store = TestStore::new(backend).await;
    add_client(&*store, "cl_a").await;
    add_webhook(&*store, "cl_a", "wh_1", &["*"]).await;
    let mut fresh = store.hand_off_new_deliveries(60_000, 2);
    publish_one(&*store, "cl_a", event("evt_1", "payment_intent.paid", T0)).await;
    let handed = fresh.try_recv().unwrap();
    assert_eq!(handed.event.id, "evt_1");
    assert_eq!(handed.webhook_id, "wh_1");
    assert_eq!(handed.attempt_number, 1);
    // Leased to the hand-off: a claim does not see it until the lease ends.
    assert!(claim(&*store, claim_at(T0, 100)).await.is_empty());
    let after_lease = claim(&*store, claim_at(T0 + 60_001, 100)).await;
    assert_eq!(after_lease.len(), 1);
    assert_eq!(after_lease[0].delivery_key, handed.delivery_key);
    assert_ne!(after_lease[0].lease_token, handed.lease_token);
}

async fn a_full_channel_leaves_deliveries_to_be_claimed(backend: Backend) {
    let store = TestStore::new(backend).await;
    add_client(&*store, "cl_a").await;
    add_webhook(&*store, "cl_a", "wh_1", &["*"]).await;
    let mut fresh = store.hand_off_new_deliveries(60_000, 1);
    publish_one(&*store, "cl_a", event("evt_1", "payment_intent.paid", T0)).await;
    publish_one(&*store, "cl_a", event("evt_2", "payment_intent.paid", T0)).await;
    assert_eq!(fresh.try_recv().unwrap().event.id, "evt_1");
    assert!(fresh.try_recv().is_err(), "the channel holds one");
    let claimed = claim(&*store, claim_at(T0, 100)).await;
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].event.id, "evt_2");
}

async fn given_back_deliveries_are_claimable_at_once(backend: Backend) {
    let store = TestStore::new(backend).await;
    add_client(&*store, "cl_a").await;
    add_webhook(&*store, "cl_a", "wh_1", &["*"]).await;
    let mut fresh = store.hand_off_new_deliveries(60_000, 4);
    publish_one(&*store, "cl_a", event("evt_1", "payment_intent.paid", T0)).await;
    let handed = fresh.try_recv().unwrap();
    // A stale token gives nothing back.
    store
        .release_deliveries(vec![(handed.delivery_key, handed.lease_token + 1)], T0)
        .await
        .unwrap();
    assert!(claim(&*store, claim_at(T0, 100)).await.is_empty());
    store
        .release_deliveries(vec![(handed.delivery_key, handed.lease_token)], T0)
        .await
        .unwrap();
    let claimed = claim(&*store, claim_at(T0, 100)).await;
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].delivery_key, handed.delivery_key);
}

async fn a_rolled_back_publish_hands_off_nothing(backend: Backend) {
    let store = TestStore::new(backend).await;
    add_client(&*store, "cl_a").await;
    add_webhook(&*store, "cl_a", "wh_1", &["*"]).await;
    let mut fresh = store.hand_off_new_deliveries(60_000, 8);
    publish_one(&*store, "cl_a", event("evt_1", "payment_intent.paid", T0)).await;
    assert!(fresh.try_recv().is_ok());
    // The second event reuses a taken id: the whole batch fails.
    let mut taken = event("evt_1", "payment_intent.paid", T0);
    taken.id_from_client = false;
    let batch = vec![event("evt_2", "payment_intent.paid", T0), taken];
    let refused = store.publish_events("cl_a", batch).await;
    assert!(refused.is_err(), "{refused:?}");
    assert!(
        fresh.try_recv().is_err(),
        "nothing of a failed batch may be handed off"
    );
    assert!(
        claim(&*store, claim_at(T0 + 120_000, 100))
            .await
            .iter()
            .all(|d| d.event.id == "evt_1")
    );
}

/// A publish whose caller goes away (a client hanging up mid-request) still commits, and
/// what it leased to the engine is still handed over: nothing waits for its lease to end.
async fn a_cancelled_publish_still_hands_off_what_it_committed(backend: Backend) {
    let store = TestStore::new(backend).await;
    add_client(&*store, "cl_a").await;
    add_webhook(&*store, "cl_a", "wh_1", &["*"]).await;
    let mut fresh = store.hand_off_new_deliveries(60_000, 4);
    let publish = store.publish_events("cl_a", vec![event("evt_1", "payment_intent.paid", T0)]);
    // Polled once (the write is queued), then dropped.
    let mut publish = Box::pin(publish);
    let waker = std::task::Waker::noop();
    let polled = publish
        .as_mut()
        .poll(&mut std::task::Context::from_waker(waker));
    assert!(polled.is_pending());
    drop(publish);
    let handed = match tokio::time::timeout(std::time::Duration::from_secs(10), fresh.recv()).await
    {
        Ok(Some(handed)) => handed,
        other => panic!(
            "nothing handed off ({other:?}); evt_1 stored: {}",
            store.get_event("cl_a", "evt_1").await.unwrap().is_some()
        ),
    };
    assert_eq!(handed.event.id, "evt_1");
    assert!(store.get_event("cl_a", "evt_1").await.unwrap().is_some());
}
