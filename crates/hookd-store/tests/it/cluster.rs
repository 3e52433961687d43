//! PostgreSQL as a cluster's shared store: several `PostgresStore`s (nodes) on one schema.

use std::collections::HashSet;
use std::sync::Arc;

use hookd_store::Store;
use hookd_store::postgres::PostgresStore;
use hookd_testkit::PATIENCE;
use hookd_testkit::postgres::{self, TestSchema};

use crate::{T0, add_client, add_webhook, claim, claim_at, event, publish_one};

#[tokio::test]
async fn nodes_starting_together_apply_each_migration_once() {
    if !postgres::enabled("cluster::nodes_starting_together") {
        return;
    }
    let schema = TestSchema::create().await;
    let nodes =
        futures_util::future::join_all((0..6).map(|_| PostgresStore::connect(schema.url()))).await;
    for node in &nodes {
        assert!(
            node.is_ok(),
            "a node failed to start: {:?}",
            node.as_ref().err()
        );
    }
    // One row per migration: a second application would have failed on the unique key,
    // or, without the lock, on `CREATE TABLE` of an existing table.
    let rows = schema.all_rows_as_text().await;
    let migrations = rows.lines().filter(|line| line.starts_with("(1,")).count();
    assert_eq!(migrations, 1, "{rows}");
}

#[tokio::test]
async fn a_delivery_no_node_took_wakes_every_node() {
    if !postgres::enabled("cluster::a_delivery_no_node_took") {
        return;
    }
    let schema = TestSchema::create().await;
    let a = PostgresStore::connect(schema.url()).await.unwrap();
    let b = PostgresStore::connect(schema.url()).await.unwrap();
    add_client(&a, "cl_1").await;
    add_webhook(&a, "cl_1", "wh_1", &["*"]).await;
    let woken = b.due_signal();
    // The listener announces itself once when it starts listening; wait for that first,
    // so the wake-up below can only come from the publish.
    tokio::time::timeout(PATIENCE, woken.notified())
        .await
        .unwrap();

    // Node a has no engine taking hand-offs, so its new delivery is left for a claim and
    // announced to every node.
    publish_one(&a, "cl_1", event("evt_1", "payment.completed", T0)).await;
    tokio::time::timeout(PATIENCE, woken.notified())
        .await
        .expect("node b was not told about the new delivery");
    let claimed = claim(&b, claim_at(T0, 60_000)).await;
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].event.id, "evt_1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_claiming_at_once_never_get_the_same_delivery() {
    if !postgres::enabled("cluster::nodes_claiming_at_once") {
        return;
    }
    let schema = TestSchema::create().await;
    let nodes: Vec<Arc<PostgresStore>> = vec![
        Arc::new(PostgresStore::connect(schema.url()).await.unwrap()),
        Arc::new(PostgresStore::connect(schema.url()).await.unwrap()),
        Arc::new(PostgresStore::connect(schema.url()).await.unwrap()),
    ];
    add_client(&*nodes[0], "cl_1").await;
    for w in 0..4 {
        add_webhook(&*nodes[0], "cl_1", &format!("wh_{w}"), &["*"]).await;
    }
    for n in 0..250 {
        publish_one(
            &*nodes[0],
            "cl_1",
            event(&format!("evt_{n}"), "payment.completed", T0),
        )
        .await;
    }
    // Small claims from three nodes at once, until the queue is empty.
    let claimers = nodes.iter().map(|node| {
        let node = Arc::clone(node);
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let mut request = claim_at(T0 + 1, 60_000);
                request.limit = 7;
                let claimed = node.claim_due_deliveries(request).await.unwrap();
                if claimed.is_empty() {
                    return mine;
                }
                mine.extend(claimed.into_iter().map(|c| c.delivery_key));
            }
        })
    });
    let mut all = Vec::new();
    let mut per_node = Vec::new();
    for claimer in claimers {
        let mine = claimer.await.unwrap();
        per_node.push(mine.len());
        all.extend(mine);
    }
    let distinct: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), 1000, "claimed per node: {per_node:?}");
    assert_eq!(
        distinct.len(),
        1000,
        "a delivery was claimed twice: {per_node:?}"
    );
}
