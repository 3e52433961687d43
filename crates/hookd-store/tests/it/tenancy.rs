//! Tenancy and webhook life cycle: one client can never read or change another's rows, and
//! disabling or deleting a webhook (by hand or after a "410 Gone") cancels its pending
//! deliveries for good.

use hookd_store::model::{DeliveryState, EventQuery, NextStep, PageRequest, WebhookChanges};
use hookd_testkit::{Backend, backend_tests};

use super::{
    T0, TestStore, add_client, add_webhook, claim, claim_at, delivery_states, event, finished,
    new_deliveries, pair, publish_one, record,
};

backend_tests!(
    another_client_cannot_see_or_change_a_clients_rows,
    disabling_a_webhook_cancels_its_pending_deliveries_for_good,
    deleting_a_webhook_cancels_its_pending_deliveries_and_keeps_its_attempts,
    a_gone_response_disables_the_webhook_and_cancels_its_other_deliveries,
);

fn first_page() -> PageRequest {
    PageRequest {
        limit: 100,
        cursor: None,
    }
}

fn disable(now_ms: i64) -> WebhookChanges {
    WebhookChanges {
        enabled: Some(false),
        now_ms,
        ..WebhookChanges::default()
    }
}

async fn another_client_cannot_see_or_change_a_clients_rows(backend: Backend) {
    let store = TestStore::new(backend).await;
    add_client(&*store, "cl_a").await;
    add_client(&*store, "cl_b").await;
    add_webhook(&*store, "cl_a", "wh_a", &["*"]).await;
    publish_one(&*store, "cl_a", event("evt_a", "payment_intent.paid", T0)).await;
    let claimed = claim(&*store, claim_at(T0, 100)).await;
    assert_eq!(claimed.len(), 1);
    let retry = NextStep::RetryAt { at_ms: T0 + 1_000 };
    let attempt = finished(&claimed[0], claimed[0].lease_token, T0, Some(500), retry);
    record(&*store, attempt).await;

    assert!(store.get_webhook("cl_b", "wh_a").await.unwrap().is_none());
    assert!(store.get_event("cl_b", "evt_a").await.unwrap().is_none());
    assert!(
        store
            .list_attempts("cl_b", "evt_a")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .list_webhooks("cl_b", first_page())
            .await
            .unwrap()
            .data
            .is_empty()
    );
    let events = store
        .list_events("cl_b", EventQuery::default(), first_page())
        .await
        .unwrap();
    assert!(events.data.is_empty());
    let changes = WebhookChanges {
        url: Some("https://attacker.example/".to_owned()),
        ..disable(T0 + 1)
    };
    assert!(
        store
            .update_webhook("cl_b", "wh_a", changes)
            .await
            .unwrap()
            .is_none()
    );
    assert!(!store.delete_webhook("cl_b", "wh_a", T0 + 1).await.unwrap());

    // Nothing of cl_a's changed.
    let wh = store.get_webhook("cl_a", "wh_a").await.unwrap().unwrap();
    assert!(wh.enabled);
    assert_eq!(wh.url, "https://receiver.example/wh_a");
    assert_eq!(
        delivery_states(&*store, "cl_a", "evt_a").await,
        vec![pair("wh_a", DeliveryState::Pending)]
    );
    let (_, attempts) = store.list_attempts("cl_a", "evt_a").await.unwrap().unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(claim(&*store, claim_at(T0 + 1_000, 100)).await.len(), 1);
}

async fn disabling_a_webhook_cancels_its_pending_deliveries_for_good(backend: Backend) {
    let store = TestStore::new(backend).await;
    add_client(&*store, "cl_a").await;
    add_webhook(&*store, "cl_a", "wh_1", &["*"]).await;
    publish_one(&*store, "cl_a", event("evt_1", "payment_intent.paid", T0)).await;
    publish_one(&*store, "cl_a", event("evt_2", "payment_intent.paid", T0)).await;
    // evt_1's delivery is in flight while the webhook is disabled.
    let in_flight = claim(&*store, {
        let mut request = claim_at(T0, 10_000);
        request.limit = 1;
        request
    })
    .await;
    assert_eq!(in_flight.len(), 1);

    let updated = store
        .update_webhook("cl_a", "wh_1", disable(T0 + 1))
        .await
        .unwrap()
        .unwrap();
    assert!(!updated.enabled);
    assert_eq!(updated.disabled_reason, None);
    for id in ["evt_1", "evt_2"] {
        assert_eq!(
            delivery_states(&*store, "cl_a", id).await,
            vec![pair("wh_1", DeliveryState::Cancelled)]
        );
    }
    assert_eq!(store.next_due_at().await.unwrap(), None);

    // The attempt in flight finishes: logged, but the delivery stays cancelled.
    let c = &in_flight[0];
    record(
        &*store,
        finished(c, c.lease_token, T0 + 2, Some(200), NextStep::Succeeded),
    )
    .await;
    let (_, attempts) = store
        .list_attempts("cl_a", &c.event.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(
        delivery_states(&*store, "cl_a", &c.event.id).await,
        vec![pair("wh_1", DeliveryState::Cancelled)]
    );

    // Re-enabling does not bring cancelled deliveries back; new events do reach it.
    let enable = WebhookChanges {
        enabled: Some(true),
        now_ms: T0 + 3,
        ..WebhookChanges::default()
    };
    store.update_webhook("cl_a", "wh_1", enable).await.unwrap();
    assert!(claim(&*store, claim_at(T0 + 100_000, 100)).await.is_empty());
    let later = publish_one(
        &*store,
        "cl_a",
        event("evt_3", "payment_intent.paid", T0 + 4),
    )
    .await;
    assert_eq!(new_deliveries(&later), 1);
}

async fn deleting_a_webhook_cancels_its_pending_deliveries_and_keeps_its_attempts(
    backend: Backend,
) {
    let store = TestStore::new(backend).await;
    add_client(&*store, "cl_a").await;
    add_webhook(&*store, "cl_a", "wh_1", &["*"]).await;
    add_webhook(&*store, "cl_a", "wh_2", &["*"]).await;
    publish_one(&*store, "cl_a", event("evt_1", "payment_intent.paid", T0)).await;
    let claimed = claim(&*store, claim_at(T0, 100)).await;
    let c = claimed.iter().find(|c| c.webhook_id == "wh_1").unwrap();
    let retry = NextStep::RetryAt { at_ms: T0 + 1_000 };
    record(&*store, finished(c, c.lease_token, T0, Some(500), retry)).await;

    assert!(store.delete_webhook("cl_a", "wh_1", T0 + 10).await.unwrap());
    assert!(store.get_webhook("cl_a", "wh_1").await.unwrap().is_none());
    assert!(!store.delete_webhook("cl_a", "wh_1", T0 + 11).await.unwrap());
    assert_eq!(
        delivery_states(&*store, "cl_a", "evt_1").await,
        vec![
            pair("wh_1", DeliveryState::Cancelled),
            pair("wh_2", DeliveryState::Pending)
        ]
    );
    let (_, attempts) = store.list_attempts("cl_a", "evt_1").await.unwrap().unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].webhook_id, "wh_1");

    // Only wh_2's delivery is ever claimed again, and new events skip the deleted webhook.
    let later = claim(&*store, claim_at(T0 + 100_000, 100)).await;
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].webhook_id, "wh_2");
    let next = publish_one(&*store, "cl_a", event("evt_2", "payment_intent.paid", T0)).await;
    assert_eq!(new_deliveries(&next), 1);
}

async fn a_gone_response_disables_the_webhook_and_cancels_its_other_deliveries(backend: Backend) {
    let store = TestStore::new(backend).await;
    add_client(&*store, "cl_a").await;
    add_webhook(&*store, "cl_a", "wh_gone", &["*"]).await;
    add_webhook(&*store, "cl_a", "wh_ok", &["*"]).await;
    publish_one(&*store, "cl_a", event("evt_1", "payment_intent.paid", T0)).await;
    publish_one(&*store, "cl_a", event("evt_2", "payment_intent.paid", T0)).await;
    let claimed = claim(&*store, claim_at(T0, 1_000)).await;
    assert_eq!(claimed.len(), 4);
    let find = |event_id: &str| {
        claimed
            .iter()
            .find(|c| c.webhook_id == "wh_gone" && c.event.id == event_id)
            .unwrap()
    };
    let (gone, other) = (find("evt_1"), find("evt_2"));

    let reason = "the receiver answered 410 Gone";
    let next = NextStep::Failed {
        disable_webhook_reason: Some(reason.to_owned()),
    };
    record(
        &*store,
        finished(gone, gone.lease_token, T0 + 5, Some(410), next),
    )
    .await;

    let wh = store.get_webhook("cl_a", "wh_gone").await.unwrap().unwrap();
    assert!(!wh.enabled);
    assert_eq!(wh.disabled_reason.as_deref(), Some(reason));
    assert_eq!(
        delivery_states(&*store, "cl_a", "evt_1").await,
        vec![
            pair("wh_gone", DeliveryState::Failed),
            pair("wh_ok", DeliveryState::Pending)
        ]
    );
    assert_eq!(
        delivery_states(&*store, "cl_a", "evt_2").await,
        vec![
            pair("wh_gone", DeliveryState::Cancelled),
            pair("wh_ok", DeliveryState::Pending)
        ]
    );

    // The other attempt to the gone webhook was in flight: logged, still cancelled.
    let ok = NextStep::Succeeded;
    record(
        &*store,
        finished(other, other.lease_token, T0 + 6, Some(200), ok),
    )
    .await;
    assert_eq!(
        delivery_states(&*store, "cl_a", "evt_2").await,
        vec![
            pair("wh_gone", DeliveryState::Cancelled),
            pair("wh_ok", DeliveryState::Pending)
        ]
    );
    let (_, attempts) = store.list_attempts("cl_a", "evt_2").await.unwrap().unwrap();
    assert_eq!(attempts.len(), 1);

    // After the leases end only wh_ok's deliveries come back; new events skip wh_gone.
    let later = claim(&*store, claim_at(T0 + 100_000, 100)).await;
    assert_eq!(later.len(), 2);
    assert!(later.iter().all(|c| c.webhook_id == "wh_ok"));
    let evt_3 = publish_one(&*store, "cl_a", event("evt_3", "payment_intent.paid", T0)).await;
    assert_eq!(new_deliveries(&evt_3), 1);
}
