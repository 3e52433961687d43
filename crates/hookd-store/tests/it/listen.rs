//! `hookd listen` sessions in the store: temporary webhooks that fan-out reaches like any
//! other, that listing hides, that upkeep keeps while connected and deletes once stale,
//! and that on PostgreSQL only the owning node claims.

use hookd_store::Store;
use hookd_store::listen::listen_url;
use hookd_store::model::{DeliveryState, ListenUpkeep, PageRequest};
use hookd_store::postgres::PostgresStore;
use hookd_testkit::postgres::{self, TestSchema};
use hookd_testkit::{Backend, backend_tests};

use crate::{
    T0, TestStore, add_client, add_webhook, claim, claim_at, delivery_states, event, pair,
    publish_one, webhook,
};

backend_tests!(listen_sessions_are_hidden_kept_while_connected_and_deleted_once_stale);

async fn add_session(store: &dyn Store, client_id: &str, id: &str, now_ms: i64) {
    let mut session = webhook(client_id, id, &["*"]);
    session.url = listen_url(id);
    session.now_ms = now_ms;
    let created = store.create_listen_webhook(session).await.unwrap();
    assert_eq!(created.url, format!("hookd-listen://{id}"));
}

fn upkeep(connected: &[&str], now_ms: i64, stale_before_ms: i64) -> ListenUpkeep {
    ListenUpkeep {
        connected: connected.iter().map(|id| (*id).to_owned()).collect(),
        now_ms,
        stale_before_ms,
    }
}

async fn listen_sessions_are_hidden_kept_while_connected_and_deleted_once_stale(backend: Backend) {
    let store = TestStore::new(backend).await;
    add_client(&*store, "cl_a").await;
    add_client(&*store, "cl_b").await;
    add_webhook(&*store, "cl_a", "wh_1", &["*"]).await;
    add_session(&*store, "cl_a", "wh_kept", T0).await;
    add_session(&*store, "cl_a", "wh_stale", T0).await;

    let listed = store
        .list_webhooks(
            "cl_a",
            PageRequest {
                limit: 10,
                cursor: None,
            },
        )
        .await
        .unwrap();
    let ids: Vec<&str> = listed.data.iter().map(|w| w.id.as_str()).collect();
    assert_eq!(ids, vec!["wh_1"]);
    assert!(
        store
            .get_webhook("cl_a", "wh_kept")
            .await
            .unwrap()
            .is_some()
    );
    publish_one(&*store, "cl_a", event("evt_1", "payment.completed", T0)).await;

    // Connected: seen now; a connected session whose webhook is gone is reported.
    let gone = store
        .keep_listen_webhooks(upkeep(&["wh_kept", "wh_deleted"], T0 + 50_000, T0 - 10_000))
        .await
        .unwrap();
    assert_eq!(gone, vec!["wh_deleted".to_owned()]);
    // Later, the one nobody kept is deleted with its pending delivery; the kept one stays.
    let gone = store
        .keep_listen_webhooks(upkeep(&[], T0 + 70_000, T0 + 10_000))
        .await
        .unwrap();
    assert!(gone.is_empty());
    assert!(
        store
            .get_webhook("cl_a", "wh_stale")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .get_webhook("cl_a", "wh_kept")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        delivery_states(&*store, "cl_a", "evt_1").await,
        vec![
            pair("wh_1", DeliveryState::Pending),
            pair("wh_kept", DeliveryState::Pending),
            pair("wh_stale", DeliveryState::Cancelled),
        ]
    );
    let next = publish_one(&*store, "cl_a", event("evt_2", "payment.completed", T0)).await;
    assert_eq!(crate::new_deliveries(&next), 2);

    // Only its own client resumes a session, only while it exists, and never a webhook
    // that is not a session.
    let now = T0 + 80_000;
    assert!(
        store
            .resume_listen_webhook("cl_b", "wh_kept", now)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .resume_listen_webhook("cl_a", "wh_stale", now)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .resume_listen_webhook("cl_a", "wh_1", now)
            .await
            .unwrap()
            .is_none()
    );
    let resumed = store
        .resume_listen_webhook("cl_a", "wh_kept", now)
        .await
        .unwrap();
    assert_eq!(resumed.unwrap().secret, "whsec_wh_kept");
}

/// PostgreSQL only: a session's deliveries are claimed by the node its stream is
/// connected to (the one that created or last resumed it), by no other.
#[tokio::test]
async fn only_the_node_owning_a_session_claims_its_deliveries() {
    if !postgres::enabled("listen::only_the_node_owning_a_session") {
        return;
    }
    let schema = TestSchema::create().await;
    let first = PostgresStore::connect(schema.url()).await.unwrap();
    let second = PostgresStore::connect(schema.url()).await.unwrap();
    add_client(&first, "cl_a").await;
    add_webhook(&first, "cl_a", "wh_1", &["*"]).await;
    add_session(&first, "cl_a", "wh_session", T0).await;
    publish_one(&second, "cl_a", event("evt_1", "payment.completed", T0)).await;

    let by_second = claim(&second, claim_at(T0, 100)).await;
    let ids: Vec<&str> = by_second.iter().map(|c| c.webhook_id.as_str()).collect();
    assert_eq!(ids, vec!["wh_1"]);
    let by_first = claim(&first, claim_at(T0, 100)).await;
    let ids: Vec<&str> = by_first.iter().map(|c| c.webhook_id.as_str()).collect();
    assert_eq!(ids, vec!["wh_session"]);

    // Resumed on the second node: its deliveries are the second node's from now on.
    second
        .resume_listen_webhook("cl_a", "wh_session", T0 + 1)
        .await
        .unwrap()
        .unwrap();
    publish_one(&first, "cl_a", event("evt_2", "payment.completed", T0 + 2)).await;
    let by_first = claim(&first, claim_at(T0 + 2, 100)).await;
    assert!(
        by_first.iter().all(|c| c.webhook_id == "wh_1"),
        "{by_first:?}"
    );
    let by_second = claim(&second, claim_at(T0 + 2, 100)).await;
    let ids: Vec<&str> = by_second.iter().map(|c| c.webhook_id.as_str()).collect();
    assert_eq!(ids, vec!["wh_session"]);
}
