//! Endpoint health: the counters every recorded attempt moves, disabling a webhook that
//! answers 410 or keeps failing for longer than the policy allows, and the
//! `webhook.disabled` event its client's other webhooks get for it.

use std::time::Duration;

use hookd_store::Store;
use hookd_store::model::{
    DeliveryState, EventQuery, HealthPolicy, NextStep, PageRequest, WebhookChanges, WebhookHealth,
};
use hookd_testkit::{Backend, backend_tests};

use super::{
    T0, TestStore, add_client, add_webhook, claim, claim_at, delivery_states, event, finished,
    pair, publish_one, record,
};

backend_tests!(
    every_attempt_moves_its_webhooks_counters,
    a_webhook_failing_for_longer_than_allowed_is_disabled_and_its_client_told,
    gone_disables_at_once_and_tells_the_client_once,
    re_enabling_ends_the_failure_streak_but_keeps_the_counts,
);

const DAY_MS: i64 = 86_400_000;
const LEASE_MS: i64 = 60_000;

fn one_day() -> HealthPolicy {
    HealthPolicy {
        disable_after: Some(Duration::from_secs(86_400)),
    }
}

async fn health(store: &dyn Store, client_id: &str, webhook_id: &str) -> WebhookHealth {
    store
        .get_webhook(client_id, webhook_id)
        .await
        .unwrap()
        .unwrap()
        .health
}

/// The client's `webhook.disabled` events, oldest first, as `(event id, data)`.
async fn disabled_events(store: &dyn Store, client_id: &str) -> Vec<(String, serde_json::Value)> {
    let page = store
        .list_events(
            client_id,
            EventQuery {
                event_type: Some("webhook.disabled".to_owned()),
                ..EventQuery::default()
            },
            PageRequest {
                limit: 100,
                cursor: None,
            },
        )
        .await
        .unwrap();
    let mut events: Vec<_> = page
        .data
        .into_iter()
        .map(|e| (e.id, e.data.to_value()))
        .collect();
    events.reverse();
    events
}

async fn every_attempt_moves_its_webhooks_counters(backend: Backend) {
    let store = TestStore::new(backend).await;
    add_client(&*store, "cl_a").await;
    add_webhook(&*store, "cl_a", "wh_a", &["*"]).await;
    add_webhook(&*store, "cl_a", "wh_b", &["*"]).await;
    assert_eq!(
        health(&*store, "cl_a", "wh_a").await,
        WebhookHealth::default()
    );
    assert_eq!(
        health(&*store, "cl_a", "wh_a").await.success_rate(),
        None,
        "no attempt yet"
    );
    for n in 0..3 {
        publish_one(
            &*store,
            "cl_a",
            event(&format!("evt_{n}"), "payout_request.completed", T0),
        )
        .await;
    }
    let claimed = claim(&*store, claim_at(T0, LEASE_MS)).await;
    let of = |webhook: &str| {
        claimed
            .iter()
            .filter(|c| c.webhook_id == webhook)
            .collect::<Vec<_>>()
    };
    let (a, b) = (of("wh_a"), of("wh_b"));
    assert_eq!((a.len(), b.len()), (3, 3));
    let retry = NextStep::RetryAt { at_ms: T0 + DAY_MS };
    // wh_a: failure, success, failure (one batch, out of order); wh_b: one success.
    let batch = vec![
        finished(a[2], a[2].lease_token, T0 + 300, Some(503), retry.clone()),
        finished(a[0], a[0].lease_token, T0 + 100, None, retry.clone()),
        finished(
            a[1],
            a[1].lease_token,
            T0 + 200,
            Some(200),
            NextStep::Succeeded,
        ),
        finished(
            b[0],
            b[0].lease_token,
            T0 + 100,
            Some(204),
            NextStep::Succeeded,
        ),
    ];
    store.record_attempts(batch, one_day()).await.unwrap();

    // Attempts take 7 ms (see `finished`): times are when each one finished.
    let a_health = health(&*store, "cl_a", "wh_a").await;
    assert_eq!(
        a_health,
        WebhookHealth {
            attempts_succeeded: 1,
            attempts_failed: 2,
            last_success_at_ms: Some(T0 + 207),
            last_failure_at_ms: Some(T0 + 307),
            consecutive_failures: 1,
            failing_since_ms: Some(T0 + 307),
        }
    );
    assert_eq!(a_health.success_rate(), Some(1.0 / 3.0));
    let b_health = health(&*store, "cl_a", "wh_b").await;
    assert_eq!(
        (b_health.attempts_succeeded, b_health.attempts_failed),
        (1, 0)
    );
    assert_eq!(b_health.failing_since_ms, None);

    // Another failure extends the streak from where it began; a success ends it.
    record(
        &*store,
        finished(b[1], b[1].lease_token, T0 + 400, Some(500), retry.clone()),
    )
    .await;
    record(
        &*store,
        finished(b[2], b[2].lease_token, T0 + 500, Some(500), retry),
    )
    .await;
    let b_health = health(&*store, "cl_a", "wh_b").await;
    assert_eq!(b_health.consecutive_failures, 2);
    assert_eq!(b_health.failing_since_ms, Some(T0 + 407));
    assert!(
        store
            .get_webhook("cl_a", "wh_b")
            .await
            .unwrap()
            .unwrap()
            .enabled
    );
}

async fn a_webhook_failing_for_longer_than_allowed_is_disabled_and_its_client_told(
    backend: Backend,
) {
    let store = TestStore::new(backend).await;
    add_client(&*store, "cl_a").await;
    add_client(&*store, "cl_b").await;
    add_webhook(&*store, "cl_a", "wh_failing", &["payout_request.*"]).await;
    add_webhook(&*store, "cl_a", "wh_ops", &["webhook.disabled"]).await;
    add_webhook(&*store, "cl_a", "wh_ops_prefix", &["webhook.*"]).await;
    // `*` is for business events: hookd's own do not reach it.
    add_webhook(&*store, "cl_a", "wh_everything", &["*"]).await;
    add_webhook(&*store, "cl_b", "wh_other_client", &["webhook.*"]).await;

    publish_one(
        &*store,
        "cl_a",
        event("evt_1", "payout_request.completed", T0),
    )
    .await;
    let first = claim(&*store, claim_at(T0, LEASE_MS)).await;
    let failing = first.iter().find(|c| c.webhook_id == "wh_failing").unwrap();
    let retry_at = T0 + DAY_MS;
    store
        .record_attempts(
            vec![finished(
                failing,
                failing.lease_token,
                T0,
                Some(500),
                NextStep::RetryAt { at_ms: retry_at },
            )],
            one_day(),
        )
        .await
        .unwrap();
    // Another event waits for the failing webhook; it is cancelled with the disabling.
    publish_one(
        &*store,
        "cl_a",
        hookd_store::model::NewEvent {
            first_attempt_at_ms: retry_at + DAY_MS,
            ..event("evt_2", "payout_request.failed", T0 + 1)
        },
    )
    .await;

    // Just under a day of failing: still enabled.
    let again = claim(&*store, claim_at(retry_at, LEASE_MS)).await;
    let retried = again
        .iter()
        .find(|c| c.delivery_key == failing.delivery_key)
        .unwrap();
    store
        .record_attempts(
            vec![finished(
                retried,
                retried.lease_token,
                T0 + DAY_MS - 100,
                None,
                NextStep::RetryAt {
                    at_ms: retry_at + 1_000,
                },
            )],
            one_day(),
        )
        .await
        .unwrap();
    assert!(
        store
            .get_webhook("cl_a", "wh_failing")
            .await
            .unwrap()
            .unwrap()
            .enabled
    );
    assert!(disabled_events(&*store, "cl_a").await.is_empty());

    // A day after the first failure, with no success since: disabled.
    let third = claim(&*store, claim_at(retry_at + 1_000, LEASE_MS)).await;
    let retried = third
        .iter()
        .find(|c| c.delivery_key == failing.delivery_key)
        .unwrap();
    let at = T0 + DAY_MS + 5_000;
    store
        .record_attempts(
            vec![finished(
                retried,
                retried.lease_token,
                at,
                Some(502),
                NextStep::RetryAt { at_ms: at + 60_000 },
            )],
            one_day(),
        )
        .await
        .unwrap();
    let webhook = store
        .get_webhook("cl_a", "wh_failing")
        .await
        .unwrap()
        .unwrap();
    assert!(!webhook.enabled);
    let reason = webhook.disabled_reason.unwrap();
    assert!(
        reason.starts_with("every attempt failed for 1day (3 attempts since "),
        "{reason}"
    );
    assert_eq!(webhook.health.consecutive_failures, 3);
    assert_eq!(
        delivery_states(&*store, "cl_a", "evt_2").await,
        [
            pair("wh_everything", DeliveryState::Pending),
            pair("wh_failing", DeliveryState::Cancelled)
        ]
    );

    let told = disabled_events(&*store, "cl_a").await;
    assert_eq!(told.len(), 1);
    let (event_id, data) = &told[0];
    assert_eq!(data["webhook_id"], "wh_failing");
    assert_eq!(data["url"], "https://receiver.example/wh_failing");
    assert_eq!(data["reason"], reason.as_str());
    assert_eq!(data["disabled_at"], (at + 7) / 1000);
    assert_eq!(data["failing_since"], (T0 + 7) / 1000);
    assert_eq!(data["consecutive_failures"], 3);
    // Only the webhooks that name hookd's events get it, and it is due now.
    assert_eq!(
        delivery_states(&*store, "cl_a", event_id).await,
        [
            pair("wh_ops", DeliveryState::Pending),
            pair("wh_ops_prefix", DeliveryState::Pending)
        ]
    );
    let notices = claim(&*store, claim_at(at + 7, LEASE_MS)).await;
    let notices: Vec<_> = notices
        .iter()
        .filter(|c| c.event.event_type == "webhook.disabled")
        .map(|c| c.webhook_id.as_str())
        .collect();
    assert_eq!(notices.len(), 2, "{notices:?}");
    assert!(disabled_events(&*store, "cl_b").await.is_empty());
}

async fn gone_disables_at_once_and_tells_the_client_once(backend: Backend) {
    let store = TestStore::new(backend).await;
    add_client(&*store, "cl_a").await;
    add_webhook(&*store, "cl_a", "wh_gone", &["*"]).await;
    add_webhook(&*store, "cl_a", "wh_ops", &["webhook.*"]).await;
    for n in 0..2 {
        publish_one(
            &*store,
            "cl_a",
            event(&format!("evt_{n}"), "payment.completed", T0),
        )
        .await;
    }
    let claimed = claim(&*store, claim_at(T0, LEASE_MS)).await;
    assert_eq!(claimed.len(), 2);
    let gone = |c: &hookd_store::model::ClaimedDelivery| {
        finished(
            c,
            c.lease_token,
            T0 + 10,
            Some(410),
            NextStep::Failed {
                disable_webhook_reason: Some("the endpoint answered 410 Gone".to_owned()),
            },
        )
    };
    // Both in flight answered 410; no time-based policy in play.
    store
        .record_attempts(claimed.iter().map(gone).collect(), HealthPolicy::default())
        .await
        .unwrap();
    let webhook = store.get_webhook("cl_a", "wh_gone").await.unwrap().unwrap();
    assert!(!webhook.enabled);
    assert_eq!(
        webhook.disabled_reason.as_deref(),
        Some("the endpoint answered 410 Gone")
    );
    assert_eq!(webhook.health.attempts_failed, 2);
    let told = disabled_events(&*store, "cl_a").await;
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0].1["reason"], "the endpoint answered 410 Gone");
    assert_eq!(
        delivery_states(&*store, "cl_a", &told[0].0).await,
        [pair("wh_ops", DeliveryState::Pending)]
    );
}

async fn re_enabling_ends_the_failure_streak_but_keeps_the_counts(backend: Backend) {
    let store = TestStore::new(backend).await;
    add_client(&*store, "cl_a").await;
    add_webhook(&*store, "cl_a", "wh_a", &["*"]).await;
    publish_one(&*store, "cl_a", event("evt_1", "payment.completed", T0)).await;
    let claimed = claim(&*store, claim_at(T0, LEASE_MS)).await;
    record(
        &*store,
        finished(
            &claimed[0],
            claimed[0].lease_token,
            T0,
            Some(410),
            NextStep::Failed {
                disable_webhook_reason: Some("the endpoint answered 410 Gone".to_owned()),
            },
        ),
    )
    .await;
    let enable = WebhookChanges {
        enabled: Some(true),
        now_ms: T0 + 1_000,
        ..WebhookChanges::default()
    };
    let webhook = store
        .update_webhook("cl_a", "wh_a", enable)
        .await
        .unwrap()
        .unwrap();
    assert!(webhook.enabled);
    assert_eq!(webhook.disabled_reason, None);
    assert_eq!(webhook.health.consecutive_failures, 0);
    assert_eq!(webhook.health.failing_since_ms, None);
    assert_eq!(webhook.health.attempts_failed, 1);
    assert_eq!(webhook.health.last_failure_at_ms, Some(T0 + 7));
}
