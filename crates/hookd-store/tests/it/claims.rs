//! Claim limits: a claim never puts more than `max_per_webhook` attempts in flight to one
//! webhook, counting the attempts the caller already has in flight.

use hookd_store::Store;
use hookd_store::model::{ClaimRequest, ClaimedDelivery, NextStep};
use hookd_testkit::{Backend, backend_tests};

use super::{T0, TestStore, add_client, add_webhook, claim, claim_at, event, finished, record};

backend_tests!(
    a_claim_respects_the_per_webhook_cap_including_attempts_in_flight,
    a_claim_never_exceeds_its_limit,
    one_webhooks_backlog_does_not_hide_another_webhooks_due_delivery,
);

fn count(claimed: &[ClaimedDelivery], webhook_id: &str) -> usize {
    claimed
        .iter()
        .filter(|c| c.webhook_id == webhook_id)
        .count()
}

/// Publishes `n` events of `event_type`, the i-th due at `first_due + i`.
async fn publish_n(store: &dyn Store, prefix: &str, event_type: &str, n: i64, first_due: i64) {
    let events = (0..n)
        .map(|i| {
            let mut e = event(&format!("{prefix}_{i}"), event_type, T0);
            e.first_attempt_at_ms = first_due + i;
            e
        })
        .collect();
    store.publish_events("cl_a", events).await.unwrap();
}

async fn a_claim_respects_the_per_webhook_cap_including_attempts_in_flight(backend: Backend) {
    let store = TestStore::new(backend).await;
    add_client(&*store, "cl_a").await;
    add_webhook(&*store, "cl_a", "wh_a", &["a.*"]).await;
    add_webhook(&*store, "cl_a", "wh_b", &["b.*"]).await;

    // Learn wh_a's internal key from a first claim, then finish that delivery.
    publish_n(&*store, "probe", "a.probe", 1, T0).await;
    let probe = claim(&*store, claim_at(T0, 100)).await;
    assert_eq!(probe.len(), 1);
    let a_key = probe[0].webhook_key;
    let p = &probe[0];
    record(
        &*store,
        finished(p, p.lease_token, T0, Some(200), NextStep::Succeeded),
    )
    .await;

    publish_n(&*store, "evt_a", "a.created", 10, T0).await;
    publish_n(&*store, "evt_b", "b.created", 3, T0 + 100).await;
    let now = T0 + 1_000;
    let request = |in_flight: Vec<(i64, usize)>| ClaimRequest {
        now_ms: now,
        lease_ms: 10_000,
        limit: 100,
        max_per_webhook: 4,
        in_flight,
    };

    // wh_a has 2 in flight already, so room for 2 more; wh_b has room for all 3.
    let claimed = claim(&*store, request(vec![(a_key, 2)])).await;
    assert_eq!(count(&claimed, "wh_a"), 2, "{claimed:#?}");
    assert_eq!(count(&claimed, "wh_b"), 3);
    assert_eq!(claimed.len(), 5);
    assert!(claimed.iter().all(|c| c.attempt_number == 1));
    assert!(
        claimed
            .iter()
            .filter(|c| c.webhook_id == "wh_a")
            .all(|c| c.webhook_key == a_key)
    );

    // wh_a at its cap: none of its 8 due deliveries is handed out.
    assert!(claim(&*store, request(vec![(a_key, 4)])).await.is_empty());
    // Over the cap (say, the cap was lowered) is no different.
    assert!(claim(&*store, request(vec![(a_key, 9)])).await.is_empty());

    // Nothing in flight: the cap alone limits wh_a.
    let claimed = claim(&*store, request(Vec::new())).await;
    assert_eq!(count(&claimed, "wh_a"), 4);
    assert_eq!(claimed.len(), 4);
}

async fn a_claim_never_exceeds_its_limit(backend: Backend) {
    let store = TestStore::new(backend).await;
    add_client(&*store, "cl_a").await;
    add_webhook(&*store, "cl_a", "wh_a", &["*"]).await;
    publish_n(&*store, "evt", "a.created", 7, T0).await;
    let request = ClaimRequest {
        limit: 3,
        ..claim_at(T0 + 100, 1_000)
    };
    let first = claim(&*store, request.clone()).await;
    assert_eq!(first.len(), 3);
    // Earliest due first.
    let mut ids: Vec<_> = first.iter().map(|c| c.event.id.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["evt_0", "evt_1", "evt_2"]);
    assert_eq!(claim(&*store, request.clone()).await.len(), 3);
    assert_eq!(claim(&*store, request).await.len(), 1);
}

/// The candidate window of a claim is `4 × limit` rows by due time; a webhook whose
/// backlog fills that window hides every other webhook's due deliveries from the claim,
/// even though they have room.
async fn one_webhooks_backlog_does_not_hide_another_webhooks_due_delivery(backend: Backend) {
    let store = TestStore::new(backend).await;
    add_client(&*store, "cl_a").await;
    add_webhook(&*store, "cl_a", "wh_a", &["a.*"]).await;
    add_webhook(&*store, "cl_a", "wh_b", &["b.*"]).await;
    publish_n(&*store, "evt_a", "a.created", 8, T0).await;
    publish_n(&*store, "evt_b", "b.created", 1, T0 + 100).await;

    let claimed = claim(
        &*store,
        ClaimRequest {
            now_ms: T0 + 1_000,
            lease_ms: 10_000,
            limit: 2,
            max_per_webhook: 1,
            in_flight: Vec::new(),
        },
    )
    .await;
    assert_eq!(count(&claimed, "wh_a"), 1);
    assert_eq!(
        count(&claimed, "wh_b"),
        1,
        "wh_b has a due delivery and room, but was not claimed: {claimed:#?}"
    );
}
