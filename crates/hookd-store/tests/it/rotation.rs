//! Secret rotation: the replaced secret travels with claimed and handed-off deliveries
//! only until its grace period ends, and only one previous secret is kept.

use hookd_store::model::{PreviousSecret, SecretRotation};
use hookd_testkit::{Backend, backend_tests};

use crate::{T0, TestStore, add_client, add_webhook, claim, claim_at, event, publish_one};

backend_tests!(
    a_rotated_secret_keeps_the_previous_one_until_its_grace_period_ends,
    rotating_needs_the_clients_own_live_webhook,
);

fn rotation(secret: &str, previous_valid_until_ms: i64, now_ms: i64) -> SecretRotation {
    SecretRotation {
        secret: secret.to_owned(),
        previous_valid_until_ms,
        now_ms,
    }
}

fn previous(secret: &str, valid_until_ms: i64) -> Option<PreviousSecret> {
    Some(PreviousSecret {
        secret: secret.to_owned(),
        valid_until_ms,
    })
}

async fn a_rotated_secret_keeps_the_previous_one_until_its_grace_period_ends(backend: Backend) {
    let store = TestStore::new(backend).await;
    add_client(&*store, "cl_a").await;
    add_webhook(&*store, "cl_a", "wh_1", &["*"]).await;

    let rotated = store
        .rotate_webhook_secret("cl_a", "wh_1", rotation("whsec_two", T0 + 1_000, T0))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rotated.secret, "whsec_two");
    assert_eq!(rotated.updated_at_ms, T0);
    let shown = store.get_webhook("cl_a", "wh_1").await.unwrap().unwrap();
    assert_eq!(shown.secret, "whsec_two");

    // Claimed during the grace period: both secrets, newest first.
    publish_one(&*store, "cl_a", event("evt_1", "payment_intent.paid", T0)).await;
    let claimed = claim(&*store, claim_at(T0 + 999, 100)).await;
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].secret, "whsec_two");
    assert_eq!(
        claimed[0].previous_secret,
        previous("whsec_wh_1", T0 + 1_000)
    );
    assert_eq!(
        claimed[0].signing_secrets(T0 + 999),
        ["whsec_two", "whsec_wh_1"]
    );
    // An attempt that starts after the end signs with the new secret alone.
    assert_eq!(claimed[0].signing_secrets(T0 + 1_000), ["whsec_two"]);

    // Claimed after it: the old secret is not handed out at all.
    publish_one(&*store, "cl_a", event("evt_2", "payment_intent.paid", T0)).await;
    let claimed = claim(&*store, claim_at(T0 + 1_000, 100)).await;
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].event.id, "evt_2");
    assert_eq!(claimed[0].previous_secret, None);

    // Handed off at publish: the same rule, at the event's time (and after a rotation,
    // not from a stale copy of the webhook).
    let mut fresh = store.hand_off_new_deliveries(60_000, 8);
    publish_one(
        &*store,
        "cl_a",
        event("evt_3", "payment_intent.paid", T0 + 500),
    )
    .await;
    let handed = fresh.try_recv().unwrap();
    assert_eq!(handed.secret, "whsec_two");
    assert_eq!(handed.previous_secret, previous("whsec_wh_1", T0 + 1_000));
    publish_one(
        &*store,
        "cl_a",
        event("evt_4", "payment_intent.paid", T0 + 1_000),
    )
    .await;
    assert_eq!(fresh.try_recv().unwrap().previous_secret, None);

    // Rotating again during a grace period: the current secret becomes the previous one,
    // the older one is gone.
    store
        .rotate_webhook_secret(
            "cl_a",
            "wh_1",
            rotation("whsec_three", T0 + 5_000, T0 + 600),
        )
        .await
        .unwrap()
        .unwrap();
    publish_one(
        &*store,
        "cl_a",
        event("evt_5", "payment_intent.paid", T0 + 700),
    )
    .await;
    let handed = fresh.try_recv().unwrap();
    assert_eq!(handed.secret, "whsec_three");
    assert_eq!(handed.previous_secret, previous("whsec_two", T0 + 5_000));

    // No grace period: the replaced secret is dropped at once.
    store
        .rotate_webhook_secret("cl_a", "wh_1", rotation("whsec_four", T0 + 800, T0 + 800))
        .await
        .unwrap()
        .unwrap();
    publish_one(
        &*store,
        "cl_a",
        event("evt_6", "payment_intent.paid", T0 + 800),
    )
    .await;
    let handed = fresh.try_recv().unwrap();
    assert_eq!(handed.secret, "whsec_four");
    assert_eq!(handed.previous_secret, None);
    assert_eq!(handed.signing_secrets(T0 + 800), ["whsec_four"]);

    // It lasts: a reopened store still knows the new secret.
    let store = store.reopen().await;
    let shown = store.get_webhook("cl_a", "wh_1").await.unwrap().unwrap();
    assert_eq!(shown.secret, "whsec_four");
}

async fn rotating_needs_the_clients_own_live_webhook(backend: Backend) {
    let store = TestStore::new(backend).await;
    add_client(&*store, "cl_a").await;
    add_client(&*store, "cl_b").await;
    add_webhook(&*store, "cl_a", "wh_1", &["*"]).await;
    add_webhook(&*store, "cl_a", "wh_2", &["*"]).await;
    let attempt = |client: &'static str, id: &'static str| {
        let store = store.shared();
        async move {
            store
                .rotate_webhook_secret(client, id, rotation("whsec_new", T0 + 1_000, T0))
                .await
                .unwrap()
        }
    };
    assert!(attempt("cl_b", "wh_1").await.is_none(), "another client's");
    assert!(attempt("cl_a", "wh_nope").await.is_none(), "unknown");
    assert!(store.delete_webhook("cl_a", "wh_2", T0).await.unwrap());
    assert!(attempt("cl_a", "wh_2").await.is_none(), "deleted");
    let untouched = store.get_webhook("cl_a", "wh_1").await.unwrap().unwrap();
    assert_eq!(untouched.secret, "whsec_wh_1");
}
