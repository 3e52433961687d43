//! Publishing: which webhooks an event fans out to, and how repeats (same idempotency key,
//! same client-chosen id) come back as the original instead of being stored twice.

use hookd_store::Store;
use hookd_store::model::{DeliveryState, EventQuery, NewEvent, NewWebhook, PageRequest, Published};
use hookd_testkit::{Backend, backend_tests};

use super::{
    T0, TestStore, add_client, add_webhook, claim, claim_at, event, new_deliveries, publish_one,
    webhook,
};

backend_tests!(
    an_event_fans_out_to_the_matching_enabled_webhooks_of_its_client,
    repeats_come_back_as_the_original_event_per_client,
);

async fn delivery_webhooks(store: &dyn Store, client_id: &str, event_id: &str) -> Vec<String> {
    let detail = store.get_event(client_id, event_id).await.unwrap().unwrap();
    let mut ids: Vec<String> = detail
        .deliveries
        .into_iter()
        .map(|d| d.webhook_id)
        .collect();
    ids.sort();
    ids
}

async fn an_event_fans_out_to_the_matching_enabled_webhooks_of_its_client(backend: Backend) {
    let store = TestStore::new(backend).await;
    add_client(&*store, "cl_a").await;
    add_client(&*store, "cl_b").await;
    add_webhook(&*store, "cl_a", "wh_all", &["*"]).await;
    add_webhook(&*store, "cl_a", "wh_payouts", &["payout_request.*"]).await;
    add_webhook(&*store, "cl_a", "wh_paid", &["payment_intent.paid"]).await;
    store
        .create_webhook(NewWebhook {
            enabled: false,
            ..webhook("cl_a", "wh_off", &["*"])
        })
        .await
        .unwrap();
    add_webhook(&*store, "cl_b", "wh_other_client", &["*"]).await;

    let published = publish_one(
        &*store,
        "cl_a",
        event("evt_payout", "payout_request.completed", T0),
    )
    .await;
    assert_eq!(new_deliveries(&published), 2);
    assert_eq!(published.event().id, "evt_payout");
    assert_eq!(
        delivery_webhooks(&*store, "cl_a", "evt_payout").await,
        ["wh_all", "wh_payouts"]
    );
    let detail = store
        .get_event("cl_a", "evt_payout")
        .await
        .unwrap()
        .unwrap();
    for d in &detail.deliveries {
        assert_eq!(d.state, DeliveryState::Pending);
        assert_eq!(d.attempts, 0);
        assert_eq!(d.next_attempt_at_ms, Some(T0));
    }

    let paid = publish_one(
        &*store,
        "cl_a",
        event("evt_paid", "payment_intent.paid", T0),
    )
    .await;
    assert_eq!(new_deliveries(&paid), 2);
    assert_eq!(
        delivery_webhooks(&*store, "cl_a", "evt_paid").await,
        ["wh_all", "wh_paid"]
    );

    // A prefix filter matches whole segments only.
    let near = publish_one(
        &*store,
        "cl_a",
        event("evt_near", "payout_requests.created", T0),
    )
    .await;
    assert_eq!(new_deliveries(&near), 1);
    assert_eq!(
        delivery_webhooks(&*store, "cl_a", "evt_near").await,
        ["wh_all"]
    );

    // Claims hand out exactly those deliveries: none for the disabled webhook or the
    // other client's.
    let claimed = claim(&*store, claim_at(T0, 1_000)).await;
    let mut pairs: Vec<(String, String)> = claimed
        .iter()
        .map(|c| (c.event.id.clone(), c.webhook_id.clone()))
        .collect();
    pairs.sort();
    let expected: Vec<(String, String)> = [
        ("evt_near", "wh_all"),
        ("evt_paid", "wh_all"),
        ("evt_paid", "wh_paid"),
        ("evt_payout", "wh_all"),
        ("evt_payout", "wh_payouts"),
    ]
    .iter()
    .map(|(e, w)| ((*e).to_owned(), (*w).to_owned()))
    .collect();
    assert_eq!(pairs, expected);
}

fn keyed(id: &str, key: &str) -> NewEvent {
    NewEvent {
        idempotency_key: Some(key.to_owned()),
        ..event(id, "payment_intent.paid", T0)
    }
}

fn client_chosen(id: &str) -> NewEvent {
    NewEvent {
        id_from_client: true,
        ..event(id, "payment_intent.paid", T0)
    }
}

async fn event_count(store: &dyn Store, client_id: &str) -> usize {
    let page = PageRequest {
        limit: 1_000,
        cursor: None,
    };
    store
        .list_events(client_id, EventQuery::default(), page)
        .await
        .unwrap()
        .data
        .len()
}

async fn repeats_come_back_as_the_original_event_per_client(backend: Backend) {
    let store = TestStore::new(backend).await;
    add_client(&*store, "cl_a").await;
    add_client(&*store, "cl_b").await;
    add_webhook(&*store, "cl_a", "wh_a", &["*"]).await;
    add_webhook(&*store, "cl_b", "wh_b", &["*"]).await;

    // Same idempotency key, new generated id: the original comes back, nothing is added.
    let first = publish_one(&*store, "cl_a", keyed("evt_1", "key-1")).await;
    assert_eq!(new_deliveries(&first), 1);
    let repeat = publish_one(&*store, "cl_a", keyed("evt_2", "key-1")).await;
    match &repeat {
        Published::Existing { event } => assert_eq!(event.id, "evt_1"),
        other => panic!("expected Existing, got {other:?}"),
    }
    assert!(store.get_event("cl_a", "evt_2").await.unwrap().is_none());
    let detail = store.get_event("cl_a", "evt_1").await.unwrap().unwrap();
    assert_eq!(detail.deliveries.len(), 1);

    // Same client-chosen id.
    let first = publish_one(&*store, "cl_a", client_chosen("order-42")).await;
    assert_eq!(new_deliveries(&first), 1);
    let repeat = publish_one(&*store, "cl_a", client_chosen("order-42")).await;
    match &repeat {
        Published::Existing { event } => assert_eq!(event.id, "order-42"),
        other => panic!("expected Existing, got {other:?}"),
    }
    let detail = store.get_event("cl_a", "order-42").await.unwrap().unwrap();
    assert_eq!(detail.deliveries.len(), 1);
    assert_eq!(event_count(&*store, "cl_a").await, 2);

    // Another client may use the same id and key: they are its own.
    let other_key = publish_one(&*store, "cl_b", keyed("evt_1", "key-1")).await;
    assert_eq!(new_deliveries(&other_key), 1);
    let other_id = publish_one(&*store, "cl_b", client_chosen("order-42")).await;
    assert_eq!(new_deliveries(&other_id), 1);
    assert_eq!(event_count(&*store, "cl_b").await, 2);

    // A repeat inside one batch.
    let batch = store
        .publish_events(
            "cl_a",
            vec![
                client_chosen("order-43"),
                client_chosen("order-43"),
                keyed("evt_3", "key-3"),
                keyed("evt_4", "key-3"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(batch.len(), 4);
    assert!(matches!(batch[0], Published::New { deliveries: 1, .. }));
    assert!(matches!(&batch[1], Published::Existing { event } if event.id == "order-43"));
    assert!(matches!(batch[2], Published::New { deliveries: 1, .. }));
    assert!(matches!(&batch[3], Published::Existing { event } if event.id == "evt_3"));
    assert_eq!(event_count(&*store, "cl_a").await, 4);
    assert_eq!(
        store
            .get_event("cl_a", "order-43")
            .await
            .unwrap()
            .unwrap()
            .deliveries
            .len(),
        1
    );
    // One delivery per stored event, none for the repeats: 4 for cl_a, 2 for cl_b.
    assert_eq!(claim(&*store, claim_at(T0, 1_000)).await.len(), 6);
}
