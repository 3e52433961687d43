//! Test events (`POST /v2/webhooks/{id}/test`): stored marked as tests, delivered only to
//! the one webhook named, and claimed with the mark so every attempt can carry it.

use hookd_store::model::{EventQuery, NewEvent, PageRequest};
use hookd_testkit::{Backend, backend_tests};

use super::{
    T0, TestStore, add_client, add_webhook, claim, claim_at, event, new_deliveries, publish_one,
};

backend_tests!(a_test_event_goes_to_its_one_webhook_and_stays_marked);

async fn a_test_event_goes_to_its_one_webhook_and_stays_marked(backend: Backend) {
    let store = TestStore::new(backend).await;
    add_client(&*store, "cl_a").await;
    add_webhook(&*store, "cl_a", "wh_a", &["*"]).await;
    add_webhook(&*store, "cl_a", "wh_b", &["*"]).await;

    let test_event = NewEvent {
        test: true,
        only_webhook_id: Some("wh_b".to_owned()),
        // Not yet due, so the claim below finds it through the table.
        first_attempt_at_ms: T0 + 10,
        ..event("evt_test", "payout_request.completed", T0)
    };
    let published = publish_one(&*store, "cl_a", test_event).await;
    assert_eq!(new_deliveries(&published), 1);
    assert!(published.event().test);
    let regular = publish_one(
        &*store,
        "cl_a",
        NewEvent {
            first_attempt_at_ms: T0 + 10,
            ..event("evt_live", "payout_request.completed", T0)
        },
    )
    .await;
    assert_eq!(new_deliveries(&regular), 2);
    assert!(!regular.event().test);

    let detail = store.get_event("cl_a", "evt_test").await.unwrap().unwrap();
    assert!(detail.event.test);
    let webhooks: Vec<&str> = detail
        .deliveries
        .iter()
        .map(|d| d.webhook_id.as_str())
        .collect();
    assert_eq!(webhooks, ["wh_b"]);
    assert!(
        !store
            .get_event("cl_a", "evt_live")
            .await
            .unwrap()
            .unwrap()
            .event
            .test
    );

    let page = PageRequest {
        limit: 10,
        cursor: None,
    };
    let listed = store
        .list_events("cl_a", EventQuery::default(), page)
        .await
        .unwrap();
    let marks: Vec<(&str, bool)> = listed
        .data
        .iter()
        .map(|e| (e.id.as_str(), e.test))
        .collect();
    assert_eq!(marks, [("evt_live", false), ("evt_test", true)]);

    let mut claimed: Vec<(String, String, bool)> = claim(&*store, claim_at(T0 + 10, 1_000))
        .await
        .into_iter()
        .map(|d| (d.event.id, d.webhook_id, d.event.test))
        .collect();
    claimed.sort();
    assert_eq!(
        claimed,
        [
            ("evt_live".to_owned(), "wh_a".to_owned(), false),
            ("evt_live".to_owned(), "wh_b".to_owned(), false),
            ("evt_test".to_owned(), "wh_b".to_owned(), true),
        ]
    );
}
