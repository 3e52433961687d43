//! Durability: what a publish acknowledged is in the database when the store is opened
//! again, with the event data byte for byte as it was stored (receivers verify signatures
//! over it).

use hookd_store::model::{DeliveryState, EventQuery, NewEvent, PageRequest, Published};
use hookd_testkit::{Backend, backend_tests};

use super::{T0, TestStore, add_client, add_webhook, claim, claim_at, json, new_deliveries};

backend_tests!(a_published_event_and_its_deliveries_survive_a_reopen_byte_for_byte);

async fn a_published_event_and_its_deliveries_survive_a_reopen_byte_for_byte(backend: Backend) {
    let data = json(
        r#"{ "amount": 10000.50, "note": "caf\u00e9 \"quoted\" \\ \n\t\u0001 ü 🦀",
             "10": [1e2, -0, 0.1, 1e-7], "nested": {"z": true, "a": null, "1": "one"} }"#,
    );
    let stored_text = data.as_str().to_owned();
    let first_attempt_at_ms = T0 + 500;
    let new_event = NewEvent {
        id: "order-1".to_owned(),
        id_from_client: true,
        idempotency_key: Some("idem-1".to_owned()),
        event_type: "payout_request.completed".to_owned(),
        data: data.clone(),
        now_ms: T0,
        first_attempt_at_ms,
        test: false,
        only_webhook_id: None,
    };
    let store = TestStore::new(backend).await;
    add_client(&*store, "cl_a").await;
    add_webhook(&*store, "cl_a", "wh_1", &["*"]).await;
    add_webhook(&*store, "cl_a", "wh_2", &["payout_request.*"]).await;
    let published = store
        .publish_events("cl_a", vec![new_event.clone()])
        .await
        .unwrap();
    assert_eq!(new_deliveries(&published[0]), 2);
    // Closed without any shutdown call, right after the acknowledgement.
    let store = store.reopen().await;
    let detail = store.get_event("cl_a", "order-1").await.unwrap().unwrap();
    assert_eq!(detail.event.data.as_str(), stored_text);
    assert_eq!(detail.event.data, data);
    assert_eq!(detail.event.event_type, "payout_request.completed");
    assert_eq!(detail.event.received_at_ms, T0);
    assert_eq!(detail.event.created, T0 / 1_000);
    let mut deliveries: Vec<_> = detail
        .deliveries
        .iter()
        .map(|d| (d.webhook_id.as_str(), d.state, d.next_attempt_at_ms))
        .collect();
    deliveries.sort_by_key(|d| d.0);
    assert_eq!(
        deliveries,
        [
            ("wh_1", DeliveryState::Pending, Some(first_attempt_at_ms)),
            ("wh_2", DeliveryState::Pending, Some(first_attempt_at_ms)),
        ]
    );
    assert_eq!(
        store.next_due_at().await.unwrap(),
        Some(first_attempt_at_ms)
    );

    let page = PageRequest {
        limit: 10,
        cursor: None,
    };
    let listed = store
        .list_events("cl_a", EventQuery::default(), page)
        .await
        .unwrap();
    assert_eq!(listed.data.len(), 1);
    assert_eq!(listed.data[0].data.as_str(), stored_text);

    // Due at its first attempt time, not before, carrying the same bytes.
    assert!(
        claim(&*store, claim_at(first_attempt_at_ms - 1, 100))
            .await
            .is_empty()
    );
    let claimed = claim(&*store, claim_at(first_attempt_at_ms, 100)).await;
    assert_eq!(claimed.len(), 2);
    for c in &claimed {
        assert_eq!(c.event.id, "order-1");
        assert_eq!(c.event.data.as_str(), stored_text);
    }

    // The idempotency key and client id are remembered across the reopen too.
    let repeat = store
        .publish_events(
            "cl_a",
            vec![NewEvent {
                id: "order-2".to_owned(),
                id_from_client: false,
                ..new_event.clone()
            }],
        )
        .await
        .unwrap();
    assert!(matches!(&repeat[0], Published::Existing { event } if event.id == "order-1"));
    let repeat = store
        .publish_events(
            "cl_a",
            vec![NewEvent {
                idempotency_key: None,
                ..new_event
            }],
        )
        .await
        .unwrap();
    assert!(
        matches!(&repeat[0], Published::Existing { event } if event.data.as_str() == stored_text)
    );
}
