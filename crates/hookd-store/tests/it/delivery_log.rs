//! A webhook's delivery log (`Store::list_webhook_deliveries`): newest first, filtered by
//! state and by when the event was received, paged with opaque cursors, and only for the
//! client's own, undeleted webhooks.

use hookd_store::Store;
use hookd_store::StoreError;
use hookd_store::model::{
    DeliveryQuery, DeliveryState, NextStep, Page, PageRequest, WebhookChanges, WebhookDelivery,
};
use hookd_testkit::{Backend, backend_tests};

use super::{
    T0, TestStore, add_client, add_webhook, claim, claim_at, event, finished, publish_one, record,
};

backend_tests!(
    a_webhooks_delivery_log_is_filtered_and_paged_newest_first,
    another_clients_or_a_deleted_webhook_has_no_delivery_log,
);

async fn list(
    store: &dyn Store,
    client_id: &str,
    webhook_id: &str,
    query: DeliveryQuery,
    limit: usize,
    cursor: Option<String>,
) -> Option<Page<WebhookDelivery>> {
    store
        .list_webhook_deliveries(client_id, webhook_id, query, PageRequest { limit, cursor })
        .await
        .unwrap()
}

/// Every page of a listing, following `next_cursor`: the event ids of each page.
async fn all_pages(
    store: &dyn Store,
    webhook_id: &str,
    query: DeliveryQuery,
    limit: usize,
) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut cursor = None;
    loop {
        let page = list(store, "cl_a", webhook_id, query.clone(), limit, cursor)
            .await
            .unwrap();
        pages.push(page.data.iter().map(|d| d.event_id.clone()).collect());
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return pages,
        }
    }
}

fn ids(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|id| (*id).to_owned()).collect()
}

fn state(state: DeliveryState) -> DeliveryQuery {
    DeliveryQuery {
        state: Some(state),
        ..DeliveryQuery::default()
    }
}

async fn a_webhooks_delivery_log_is_filtered_and_paged_newest_first(backend: Backend) {
    let store = TestStore::new(backend).await;
    add_client(&*store, "cl_a").await;
    add_webhook(&*store, "cl_a", "wh_1", &["*"]).await;
    add_webhook(&*store, "cl_a", "wh_2", &["*"]).await;
    // evt_1 … evt_5, one second apart; each goes to both webhooks.
    for n in 1..=5 {
        let kind = if n % 2 == 0 {
            "payment.completed"
        } else {
            "payment_intent.paid"
        };
        publish_one(
            &*store,
            "cl_a",
            event(&format!("evt_{n}"), kind, T0 + (n - 1) * 1000),
        )
        .await;
    }
    // wh_1: evt_1 and evt_5 succeed, evt_2 and evt_4 fail for good, evt_3 waits for a retry.
    let now = T0 + 10_000;
    let claimed = claim(&*store, claim_at(now, 60_000)).await;
    assert_eq!(claimed.len(), 10);
    for c in claimed.iter().filter(|c| c.webhook_id == "wh_1") {
        let (status, next) = match c.event.id.as_str() {
            "evt_1" | "evt_5" => (200, NextStep::Succeeded),
            "evt_3" => (
                500,
                NextStep::RetryAt {
                    at_ms: now + 60_000,
                },
            ),
            _ => (
                500,
                NextStep::Failed {
                    disable_webhook_reason: None,
                },
            ),
        };
        record(&*store, finished(c, c.lease_token, now, Some(status), next)).await;
    }
    // wh_2 is disabled: its deliveries are cancelled.
    let disable = WebhookChanges {
        enabled: Some(false),
        now_ms: now + 1,
        ..WebhookChanges::default()
    };
    store
        .update_webhook("cl_a", "wh_2", disable)
        .await
        .unwrap()
        .unwrap();

    // Everything, newest first, in pages of two.
    assert_eq!(
        all_pages(&*store, "wh_1", DeliveryQuery::default(), 2).await,
        vec![
            ids(&["evt_5", "evt_4"]),
            ids(&["evt_3", "evt_2"]),
            ids(&["evt_1"])
        ]
    );
    let page = list(&*store, "cl_a", "wh_1", DeliveryQuery::default(), 50, None)
        .await
        .unwrap();
    assert!(page.next_cursor.is_none());
    let by_id = |id: &str| page.data.iter().find(|d| d.event_id == id).unwrap().clone();
    let failed = by_id("evt_4");
    assert_eq!(failed.event_type, "payment.completed");
    assert_eq!(failed.event_received_at_ms, T0 + 3000);
    assert_eq!(failed.event_created(), (T0 + 3000) / 1000);
    assert_eq!(failed.delivery.webhook_id, "wh_1");
    assert_eq!(failed.delivery.state, DeliveryState::Failed);
    assert_eq!(failed.delivery.attempts, 1);
    assert_eq!(failed.delivery.last_response_status, Some(500));
    assert_eq!(failed.delivery.next_attempt_at_ms, None);
    let pending = by_id("evt_3");
    assert_eq!(pending.event_type, "payment_intent.paid");
    assert_eq!(pending.delivery.state, DeliveryState::Pending);
    assert_eq!(pending.delivery.next_attempt_at_ms, Some(now + 60_000));
    assert_eq!(by_id("evt_1").delivery.state, DeliveryState::Succeeded);
    assert_eq!(by_id("evt_1").delivery.last_response_status, Some(200));

    // By state, across pages of one.
    assert_eq!(
        all_pages(&*store, "wh_1", state(DeliveryState::Failed), 1).await,
        vec![ids(&["evt_4"]), ids(&["evt_2"])]
    );
    assert_eq!(
        all_pages(&*store, "wh_1", state(DeliveryState::Succeeded), 1).await,
        vec![ids(&["evt_5"]), ids(&["evt_1"])]
    );
    assert_eq!(
        all_pages(&*store, "wh_1", state(DeliveryState::Pending), 10).await,
        vec![ids(&["evt_3"])]
    );
    assert_eq!(
        all_pages(&*store, "wh_1", state(DeliveryState::Cancelled), 10).await,
        vec![Vec::<String>::new()]
    );
    assert_eq!(
        all_pages(&*store, "wh_2", state(DeliveryState::Cancelled), 2).await,
        vec![
            ids(&["evt_5", "evt_4"]),
            ids(&["evt_3", "evt_2"]),
            ids(&["evt_1"])
        ]
    );
    assert_eq!(
        all_pages(&*store, "wh_2", state(DeliveryState::Failed), 2).await,
        vec![Vec::<String>::new()]
    );

    // By receipt time: `since` inclusive, `until` exclusive.
    let window = DeliveryQuery {
        since_ms: Some(T0 + 1000),
        until_ms: Some(T0 + 3000),
        ..DeliveryQuery::default()
    };
    assert_eq!(
        all_pages(&*store, "wh_1", window.clone(), 1).await,
        vec![ids(&["evt_3"]), ids(&["evt_2"])]
    );
    let failed_in_window = DeliveryQuery {
        state: Some(DeliveryState::Failed),
        ..window
    };
    assert_eq!(
        all_pages(&*store, "wh_1", failed_in_window, 10).await,
        vec![ids(&["evt_2"])]
    );
    let since_only = DeliveryQuery {
        since_ms: Some(T0 + 3500),
        ..DeliveryQuery::default()
    };
    assert_eq!(
        all_pages(&*store, "wh_1", since_only, 10).await,
        vec![ids(&["evt_5"])]
    );

    // A cursor that is not one of ours.
    let bad = store
        .list_webhook_deliveries(
            "cl_a",
            "wh_1",
            DeliveryQuery::default(),
            PageRequest {
                limit: 10,
                cursor: Some("nonsense".to_owned()),
            },
        )
        .await;
    assert!(matches!(bad, Err(StoreError::InvalidCursor(_))), "{bad:?}");
}

async fn another_clients_or_a_deleted_webhook_has_no_delivery_log(backend: Backend) {
    let store = TestStore::new(backend).await;
    add_client(&*store, "cl_a").await;
    add_client(&*store, "cl_b").await;
    add_webhook(&*store, "cl_a", "wh_a", &["*"]).await;
    add_webhook(&*store, "cl_b", "wh_b", &["*"]).await;
    publish_one(&*store, "cl_a", event("evt_a", "payment.completed", T0)).await;
    publish_one(&*store, "cl_b", event("evt_b", "payment.completed", T0)).await;

    let own = list(&*store, "cl_a", "wh_a", DeliveryQuery::default(), 10, None)
        .await
        .unwrap();
    assert_eq!(own.data.len(), 1);
    assert_eq!(own.data[0].event_id, "evt_a");
    assert!(
        list(&*store, "cl_b", "wh_a", DeliveryQuery::default(), 10, None)
            .await
            .is_none()
    );
    assert!(
        list(&*store, "cl_a", "wh_b", DeliveryQuery::default(), 10, None)
            .await
            .is_none()
    );
    assert!(
        list(
            &*store,
            "cl_a",
            "wh_nope",
            DeliveryQuery::default(),
            10,
            None
        )
        .await
        .is_none()
    );
    assert!(store.delete_webhook("cl_a", "wh_a", T0 + 1).await.unwrap());
    assert!(
        list(&*store, "cl_a", "wh_a", DeliveryQuery::default(), 10, None)
            .await
            .is_none()
    );
}
