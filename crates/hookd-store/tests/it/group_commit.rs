//! Writes under concurrency (on SQLite, through the group-commit writer): many writes in
//! flight at once all commit and read back in order, and one failing write in a group
//! undoes only itself.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use hookd_store::StoreError;
use hookd_store::model::{
    EventQuery, NewClient, NewEventType, PageRequest, Published, WebhookRecord,
};
use hookd_testkit::{Backend, backend_tests};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::{T0, TestStore, add_client, add_webhook, claim, claim_at, event, webhook};

backend_tests!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    concurrent_publishes_all_commit_and_list_newest_first,
    a_failing_write_undoes_only_itself,
);
backend_tests!(a_cursor_the_store_did_not_hand_out_is_refused);

const TASKS: usize = 200;
/// The second half of the tasks starts publishing once the first half has committed, so
/// every event of the second half is newer than every event of the first.
const HALF: usize = TASKS / 2;

async fn concurrent_publishes_all_commit_and_list_newest_first(backend: Backend) {
    let database = TestStore::new(backend).await;
    let store = database.shared();
    add_client(&*store, "cl_a").await;
    add_webhook(&*store, "cl_a", "wh_1", &["*"]).await;

    let first_half_done = Arc::new(Semaphore::new(0));
    let mut tasks = JoinSet::new();
    for i in 0..TASKS {
        let store = Arc::clone(&store);
        let done = Arc::clone(&first_half_done);
        tasks.spawn(async move {
            if i >= HALF {
                // Waits for all first-half permits, then gives them back for the others.
                drop(
                    done.acquire_many(u32::try_from(HALF).unwrap())
                        .await
                        .unwrap(),
                );
            }
            let id = format!("evt_{i:03}");
            let offset = i64::try_from(i).unwrap();
            let result = store
                .publish_events("cl_a", vec![event(&id, "payment_intent.paid", T0 + offset)])
                .await;
            if i < HALF {
                done.add_permits(1);
            }
            (id, result)
        });
    }
    let all_done = async {
        while let Some(joined) = tasks.join_next().await {
            let (id, result) = joined.unwrap();
            let published = result.unwrap();
            assert_eq!(published.len(), 1);
            match &published[0] {
                Published::New { event, deliveries } => {
                    assert_eq!(event.id, id);
                    assert_eq!(*deliveries, 1);
                }
                other => panic!("{id} was not new: {other:?}"),
            }
        }
    };
    // A safety net against a hang, not a sleep: it ends as soon as the tasks do.
    tokio::time::timeout(Duration::from_secs(60), all_done)
        .await
        .unwrap();

    let mut listed = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_events(
                "cl_a",
                EventQuery::default(),
                PageRequest { limit: 50, cursor },
            )
            .await
            .unwrap();
        assert!(page.data.len() <= 50);
        listed.extend(page.data.iter().map(|e| e.id.clone()));
        match page.next_cursor {
            Some(next) => {
                assert_eq!(page.data.len(), 50, "a short page before the end");
                cursor = Some(next);
            }
            None => break,
        }
        assert!(listed.len() <= TASKS, "pagination does not end");
    }
    assert_eq!(listed.len(), TASKS);
    let distinct: HashSet<&String> = listed.iter().collect();
    assert_eq!(distinct.len(), TASKS, "an event was listed twice");

    // Newest first: all of the second half, then all of the first.
    let is_second_half = |id: &String| id["evt_".len()..].parse::<usize>().unwrap() >= HALF;
    assert!(listed[..HALF].iter().all(is_second_half), "{listed:?}");
    assert!(!listed[HALF..].iter().any(is_second_half), "{listed:?}");

    // Every delivery was committed along with its event.
    assert_eq!(claim(&*store, claim_at(T0 + 1_000, 100)).await.len(), 100);
    assert_eq!(claim(&*store, claim_at(T0 + 1_000, 100)).await.len(), 100);
    assert!(claim(&*store, claim_at(T0 + 1_000, 100)).await.is_empty());
}

async fn a_cursor_the_store_did_not_hand_out_is_refused(backend: Backend) {
    let store = TestStore::new(backend).await;
    add_client(&*store, "cl_a").await;
    for bad in ["", "k", "kabc", "garbage", "12"] {
        let page = PageRequest {
            limit: 10,
            cursor: Some(bad.to_owned()),
        };
        let err = store
            .list_events("cl_a", EventQuery::default(), page.clone())
            .await
            .err()
            .unwrap();
        assert!(
            matches!(&err, StoreError::InvalidCursor(c) if c == bad),
            "{bad:?}: {err:?}"
        );
        let err = store.list_webhooks("cl_a", page).await.err().unwrap();
        assert!(matches!(&err, StoreError::InvalidCursor(c) if c == bad));
    }
}

fn event_type(name: &str) -> NewEventType {
    NewEventType {
        client_id: "cl_a".to_owned(),
        name: name.to_owned(),
        description: Some(format!("{name} happened")),
        now_ms: T0,
    }
}

async fn a_failing_write_undoes_only_itself(backend: Backend) {
    let store = TestStore::new(backend).await;
    add_client(&*store, "cl_a").await;
    add_webhook(&*store, "cl_a", "wh_1", &["*"]).await;
    store
        .publish_events("cl_a", vec![event("evt_taken", "invoice.paid", T0)])
        .await
        .unwrap();

    // Issued together, so the writer finds them queued and commits them as one group.
    let (dup_1, voided, published, dup_2, new_webhook, failing_publish, created, new_client) = tokio::join!(
        store.create_event_type(event_type("invoice.paid")),
        store.create_event_type(event_type("invoice.voided")),
        store.publish_events("cl_a", vec![event("evt_ok", "invoice.paid", T0)]),
        store.create_event_type(event_type("invoice.paid")),
        store.create_webhook(webhook("cl_a", "wh_2", &["invoice.*"])),
        // The second event reuses a generated id that is taken: the whole publish fails,
        // including the first event and its delivery.
        store.publish_events(
            "cl_a",
            vec![
                event("evt_rolled_back", "invoice.paid", T0),
                event("evt_taken", "invoice.paid", T0),
            ]
        ),
        store.create_event_type(event_type("invoice.created")),
        store.create_client(NewClient {
            id: "cl_b".to_owned(),
            name: "B".to_owned(),
            secret_sha256: [1; 32],
            now_ms: T0,
        }),
    );

    let conflicts = [&dup_1, &dup_2]
        .iter()
        .filter(|r| matches!(r, Err(StoreError::Conflict(_))))
        .count();
    assert_eq!(conflicts, 1, "{dup_1:?} / {dup_2:?}");
    assert!(dup_1.is_ok() || dup_2.is_ok());
    assert!(failing_publish.is_err(), "{failing_publish:?}");
    voided.unwrap();
    created.unwrap();
    published.unwrap();
    let _: WebhookRecord = new_webhook.unwrap();
    new_client.unwrap();

    // Read back from a fresh store on the same database: everything else was committed.
    let store = store.reopen().await;
    let names: Vec<String> = store
        .list_event_types("cl_a")
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["invoice.created", "invoice.paid", "invoice.voided"]);
    assert!(store.get_webhook("cl_a", "wh_2").await.unwrap().is_some());
    assert!(store.find_client("cl_b").await.unwrap().is_some());
    assert!(store.get_event("cl_a", "evt_ok").await.unwrap().is_some());
    assert!(
        store
            .get_event("cl_a", "evt_rolled_back")
            .await
            .unwrap()
            .is_none()
    );
    let page = PageRequest {
        limit: 10,
        cursor: None,
    };
    let mut events: Vec<String> = store
        .list_events("cl_a", EventQuery::default(), page)
        .await
        .unwrap()
        .data
        .into_iter()
        .map(|e| e.id)
        .collect();
    events.sort();
    assert_eq!(events, ["evt_ok", "evt_taken"]);
    let claimed = claim(&*store, claim_at(T0, 1_000)).await;
    assert!(!claimed.is_empty());
    assert!(claimed.iter().all(|c| c.event.id != "evt_rolled_back"));
}
