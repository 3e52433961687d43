//! Handing new deliveries straight to the engine: leased at insert, sent after the commit,
//! only while the channel has room, and given back on request.

use std::future::Future;

use hookd_store::Store;

use crate::{T0, add_client, add_webhook, claim, claim_at, db_path, event, open, publish_one};

#[tokio::test]
async fn new_deliveries_are_handed_off_leased_and_not_claimable() {
    let (_dir, path) = db_path();
    let store = open(&path);
    add_client(&store, "cl_a").await;
    add_webhook(&store, "cl_a", "wh_1", &["*"]).await;
    let mut fresh = store.hand_off_new_deliveries(60_000, 2);
    publish_one(&store, "cl_a", event("evt_1", "payment_intent.paid", T0)).await;
    let handed = fresh.try_recv().unwrap();
    assert_eq!(handed.event.id, "evt_1");
    assert_eq!(handed.webhook_id, "wh_1");
    assert_eq!(handed.attempt_number, 1);
    // Leased to the hand-off: a claim does not see it until the lease ends.
    assert!(claim(&store, claim_at(T0, 100)).await.is_empty());
    let after_lease = claim(&store, claim_at(T0 + 60_001, 100)).await;
    assert_eq!(after_lease.len(), 1);
    assert_eq!(after_lease[0].delivery_key, handed.delivery_key);
    assert_ne!(after_lease[0].lease_token, handed.lease_token);
}

#[tokio::test]
async fn a_full_channel_leaves_deliveries_to_be_claimed() {
    let (_dir, path) = db_path();
    let store = open(&path);
    add_client(&store, "cl_a").await;
    add_webhook(&store, "cl_a", "wh_1", &["*"]).await;
    let mut fresh = store.hand_off_new_deliveries(60_000, 1);
    publish_one(&store, "cl_a", event("evt_1", "payment_intent.paid", T0)).await;
    publish_one(&store, "cl_a", event("evt_2", "payment_intent.paid", T0)).await;
    assert_eq!(fresh.try_recv().unwrap().event.id, "evt_1");
    assert!(fresh.try_recv().is_err(), "the channel holds one");
    let claimed = claim(&store, claim_at(T0, 100)).await;
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].event.id, "evt_2");
}

#[tokio::test]
async fn given_back_deliveries_are_claimable_at_once() {
    let (_dir, path) = db_path();
    let store = open(&path);
    add_client(&store, "cl_a").await;
    add_webhook(&store, "cl_a", "wh_1", &["*"]).await;
    let mut fresh = store.hand_off_new_deliveries(60_000, 4);
    publish_one(&store, "cl_a", event("evt_1", "payment_intent.paid", T0)).await;
    let handed = fresh.try_recv().unwrap();
    // A stale token gives nothing back.
    store
        .release_deliveries(vec![(handed.delivery_key, handed.lease_token + 1)], T0)
        .await
        .unwrap();
    assert!(claim(&store, claim_at(T0, 100)).await.is_empty());
    store
        .release_deliveries(vec![(handed.delivery_key, handed.lease_token)], T0)
        .await
        .unwrap();
    let claimed = claim(&store, claim_at(T0, 100)).await;
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].delivery_key, handed.delivery_key);
}

#[tokio::test]
async fn a_rolled_back_publish_hands_off_nothing() {
    let (_dir, path) = db_path();
    let store = open(&path);
    add_client(&store, "cl_a").await;
    add_webhook(&store, "cl_a", "wh_1", &["*"]).await;
    let mut fresh = store.hand_off_new_deliveries(60_000, 8);
    publish_one(&store, "cl_a", event("evt_1", "payment_intent.paid", T0)).await;
    assert!(fresh.try_recv().is_ok());
    // The second event reuses a taken id: the whole batch fails.
    let mut taken = event("evt_1", "payment_intent.paid", T0);
    taken.id_from_client = false;
    let batch = vec![event("evt_2", "payment_intent.paid", T0), taken];
    assert!(store.publish_events("cl_a", batch).await.is_err());
    assert!(
        fresh.try_recv().is_err(),
        "nothing of a failed batch may be handed off"
    );
    assert!(
        claim(&store, claim_at(T0 + 120_000, 100))
            .await
            .iter()
            .all(|d| d.event.id == "evt_1")
    );
}

/// A publish whose caller goes away (a client hanging up mid-request) still commits, and
/// what it leased to the engine is still handed over: nothing waits for its lease to end.
#[tokio::test]
async fn a_cancelled_publish_still_hands_off_what_it_committed() {
    let (_dir, path) = db_path();
    let store = open(&path);
    add_client(&store, "cl_a").await;
    add_webhook(&store, "cl_a", "wh_1", &["*"]).await;
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
    let handed = tokio::time::timeout(std::time::Duration::from_secs(10), fresh.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(handed.event.id, "evt_1");
    assert!(store.get_event("cl_a", "evt_1").await.unwrap().is_some());
}
