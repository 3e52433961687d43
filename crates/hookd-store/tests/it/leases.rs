//! Leases and retries: a claimed delivery stays invisible until its lease ends, only the
//! current lease holder's verdict moves a delivery on, a retry is due at its time, and a
//! restarted server (`open_for_serving`) takes back the previous run's leases at once.
//!
//! The `open_for_serving` tests are SQLite only: its lock file makes one server per file,
//! which is what lets a restart take back every lease. Servers sharing PostgreSQL have no
//! such lock, and a dead server's leases run out instead.

use hookd_store::StoreError;
use hookd_store::model::{DeliveryState, NextStep};
use hookd_store::sqlite::SqliteStore;
use hookd_testkit::{Backend, backend_tests};

use super::{
    T0, TestStore, add_client, add_webhook, claim, claim_at, db_path, delivery_states, event,
    finished, open, pair, publish_one, record,
};

backend_tests!(
    an_expired_lease_is_claimed_again_and_a_stale_verdict_is_only_logged,
    a_retry_is_due_at_its_time_with_the_next_attempt_number,
    lease_tokens_are_not_reused_after_a_reopen,
);

async fn an_expired_lease_is_claimed_again_and_a_stale_verdict_is_only_logged(backend: Backend) {
    let store = TestStore::new(backend).await;
    add_client(&*store, "cl_a").await;
    add_webhook(&*store, "cl_a", "wh_1", &["*"]).await;
    publish_one(&*store, "cl_a", event("evt_1", "payment_intent.paid", T0)).await;

    let lease_ms = 100;
    let first = claim(&*store, claim_at(T0, lease_ms)).await;
    assert_eq!(first.len(), 1);
    let first = &first[0];
    assert_eq!(first.attempt_number, 1);
    assert_eq!(first.webhook_id, "wh_1");
    assert_eq!(first.event.id, "evt_1");

    // Leased: invisible until the lease ends.
    assert!(claim(&*store, claim_at(T0, lease_ms)).await.is_empty());
    assert!(
        claim(&*store, claim_at(T0 + lease_ms - 1, lease_ms))
            .await
            .is_empty()
    );

    // The worker "crashed": after the lease the same delivery is due again, under a new token.
    let second = claim(&*store, claim_at(T0 + lease_ms + 1, lease_ms)).await;
    assert_eq!(second.len(), 1);
    let second = &second[0];
    assert_eq!(second.delivery_key, first.delivery_key);
    assert_eq!(
        second.attempt_number, 1,
        "no attempt was recorded, so this is still attempt 1"
    );
    assert_ne!(second.lease_token, first.lease_token);

    // The first worker reports late: its attempt is logged but decides nothing.
    let stale = finished(
        first,
        first.lease_token,
        T0 + 10,
        Some(200),
        NextStep::Succeeded,
    );
    record(&*store, stale).await;
    let (_, attempts) = store.list_attempts("cl_a", "evt_1").await.unwrap().unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].webhook_id, "wh_1");
    assert_eq!(attempts[0].response_status, Some(200));
    assert_eq!(
        delivery_states(&*store, "cl_a", "evt_1").await,
        vec![pair("wh_1", DeliveryState::Pending)]
    );

    // The current holder's verdict counts.
    let current = finished(
        second,
        second.lease_token,
        T0 + lease_ms + 2,
        Some(204),
        NextStep::Succeeded,
    );
    record(&*store, current).await;
    assert_eq!(
        delivery_states(&*store, "cl_a", "evt_1").await,
        vec![pair("wh_1", DeliveryState::Succeeded)]
    );
    let detail = store.get_event("cl_a", "evt_1").await.unwrap().unwrap();
    assert_eq!(detail.deliveries[0].attempts, 1);
    assert_eq!(detail.deliveries[0].last_response_status, Some(204));
    assert_eq!(detail.deliveries[0].next_attempt_at_ms, None);
    let (_, attempts) = store.list_attempts("cl_a", "evt_1").await.unwrap().unwrap();
    assert_eq!(attempts.len(), 2);

    // Done for good: never claimed again, nothing due.
    assert!(
        claim(&*store, claim_at(T0 + 1_000_000, 100))
            .await
            .is_empty()
    );
    assert_eq!(store.next_due_at().await.unwrap(), None);
}

async fn a_retry_is_due_at_its_time_with_the_next_attempt_number(backend: Backend) {
    let store = TestStore::new(backend).await;
    add_client(&*store, "cl_a").await;
    add_webhook(&*store, "cl_a", "wh_1", &["*"]).await;
    publish_one(&*store, "cl_a", event("evt_1", "payment_intent.paid", T0)).await;

    let claimed = claim(&*store, claim_at(T0, 100)).await;
    assert_eq!(claimed.len(), 1);
    let claimed = &claimed[0];
    let retry_at = T0 + 5_000;
    let attempt = finished(
        claimed,
        claimed.lease_token,
        T0,
        Some(503),
        NextStep::RetryAt { at_ms: retry_at },
    );
    record(&*store, attempt).await;

    let detail = store.get_event("cl_a", "evt_1").await.unwrap().unwrap();
    let delivery = &detail.deliveries[0];
    assert_eq!(delivery.state, DeliveryState::Pending);
    assert_eq!(delivery.attempts, 1);
    assert_eq!(delivery.next_attempt_at_ms, Some(retry_at));
    assert_eq!(delivery.last_response_status, Some(503));
    assert_eq!(store.next_due_at().await.unwrap(), Some(retry_at));

    // Not before its time (even though the lease it had is long over).
    assert!(claim(&*store, claim_at(retry_at - 1, 100)).await.is_empty());
    assert_eq!(store.next_due_at().await.unwrap(), Some(retry_at));

    let again = claim(&*store, claim_at(retry_at, 100)).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].delivery_key, claimed.delivery_key);
    assert_eq!(again[0].attempt_number, 2);
    assert_ne!(again[0].lease_token, claimed.lease_token);
}

/// SQLite only (see the module notes).
#[tokio::test]
async fn open_for_serving_takes_back_the_leases_of_a_previous_run() {
    let (_dir, path) = db_path();
    let long_lease = 60_000;
    let first_token = {
        let store = SqliteStore::open_for_serving(&path, T0).unwrap();
        add_client(&store, "cl_a").await;
        add_webhook(&store, "cl_a", "wh_1", &["*"]).await;
        publish_one(&store, "cl_a", event("evt_1", "payment_intent.paid", T0)).await;
        let claimed = claim(&store, claim_at(T0, long_lease)).await;
        assert_eq!(claimed.len(), 1);

        // While this server runs, a second one on the same file is refused.
        let refused = match SqliteStore::open_for_serving(&path, T0) {
            Ok(_) => panic!("a second open_for_serving on the same file was allowed"),
            Err(e) => e,
        };
        assert!(matches!(refused, StoreError::Database(_)), "{refused:?}");
        assert!(
            refused.to_string().contains("another hookd serve"),
            "unexpected message: {refused}"
        );
        claimed[0].lease_token
        // The store (and its lock) is dropped here, as when the server is killed.
    };

    let restart_at = T0 + 1_000;
    assert!(restart_at < T0 + long_lease, "the lease must still run");

    // A plain open (a CLI command) leaves the leases of a server alone.
    {
        let cli = open(&path);
        assert!(
            claim(&cli, claim_at(restart_at, long_lease))
                .await
                .is_empty()
        );
    }

    // The lock file was released on drop, so a new server can start, and it makes the
    // delivery leased by the previous run due at once.
    let store = SqliteStore::open_for_serving(&path, restart_at).unwrap();
    let claimed = claim(&store, claim_at(restart_at, long_lease)).await;
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].event.id, "evt_1");
    assert_eq!(claimed[0].attempt_number, 1);
    assert_ne!(claimed[0].lease_token, first_token);
    // And it is leased again, now by this run.
    assert!(
        claim(&store, claim_at(restart_at, long_lease))
            .await
            .is_empty()
    );
}

/// Regression: tokens restarted from the highest one still held, so after a reopen a
/// finished delivery's old token could be handed out again.
async fn lease_tokens_are_not_reused_after_a_reopen(backend: Backend) {
    let store = TestStore::new(backend).await;
    add_client(&*store, "cl_a").await;
    add_webhook(&*store, "cl_a", "wh_1", &["*"]).await;
    publish_one(&*store, "cl_a", event("evt_1", "payment_intent.paid", T0)).await;
    let first = claim(&*store, claim_at(T0, 100)).await.remove(0);
    let retry_at = T0 + 10;
    record(
        &*store,
        finished(
            &first,
            first.lease_token,
            T0,
            Some(503),
            NextStep::RetryAt { at_ms: retry_at },
        ),
    )
    .await;
    let store = store.reopen().await;
    let second = claim(&*store, claim_at(retry_at, 100)).await.remove(0);
    assert_eq!(second.delivery_key, first.delivery_key);
    assert_ne!(second.lease_token, first.lease_token);
}

/// Two databases in one directory that differ only in extension have separate serve locks
/// (SQLite only: file locks).
#[tokio::test]
async fn serve_locks_are_per_database_file() {
    let (dir, path) = db_path();
    let _one = SqliteStore::open_for_serving(&path, T0).unwrap();
    let other = dir.path().join("hookd.sqlite");
    assert!(SqliteStore::open_for_serving(&other, T0).is_ok());
}
