//! Secrets at rest: with an encryption key, webhook signing secrets are stored sealed
//! (read back here straight from the tables, past the store) while the store hands them
//! out in clear; a sealed value opens only in its own row and with its key; opening a
//! database needs the key that sealed it; secrets kept in clear are sealed at open. And
//! client secrets are stored only as digests.

use hookd_store::StoreError;
use hookd_store::model::{PageRequest, PreviousSecret, SecretRotation};
use hookd_store::sealing::{EncryptionKey, SealingError, SecretKeys};
use hookd_testkit::{Backend, backend_tests};

use crate::{
    Database, T0, TestStore, add_client, add_webhook, claim, claim_at, event, new_deliveries,
    publish_one, webhook,
};

backend_tests!(
    a_key_keeps_webhook_secrets_out_of_the_tables,
    a_sealed_secret_copied_to_another_webhook_does_not_open,
    opening_needs_the_key_that_sealed_the_secrets,
    secrets_kept_in_clear_are_sealed_at_open,
    the_clients_table_holds_only_a_digest_of_the_secret,
);

fn key(byte: u8) -> EncryptionKey {
    EncryptionKey::from_bytes(&[byte; 32])
}

fn sealed_with(byte: u8) -> SecretKeys {
    SecretKeys::new(key(byte), None)
}

fn rotation(secret: &str, now_ms: i64) -> SecretRotation {
    SecretRotation {
        secret: secret.to_owned(),
        previous_valid_until_ms: now_ms + 60_000,
        now_ms,
    }
}

/// The test database's tables, reached directly (rusqlite / tokio-postgres), not through
/// the store.
enum Tables {
    Sqlite(rusqlite::Connection),
    Postgres(tokio_postgres::Client),
}

impl Tables {
    async fn of(database: &Database) -> Tables {
        match database {
            Database::Sqlite { path, .. } => {
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.busy_timeout(std::time::Duration::from_secs(5))
                    .unwrap();
                Tables::Sqlite(conn)
            }
            Database::Postgres(schema) => {
                let (client, connection) =
                    tokio_postgres::connect(schema.url(), tokio_postgres::NoTls)
                        .await
                        .unwrap();
                tokio::spawn(connection);
                Tables::Postgres(client)
            }
        }
    }

    /// `(secret, previous_secret)` as stored in the webhook's row.
    async fn secrets(&self, webhook_id: &str) -> (String, Option<String>) {
        match self {
            Tables::Sqlite(conn) => conn
                .query_row(
                    "SELECT secret, previous_secret FROM webhooks WHERE id = ?1",
                    [webhook_id],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .unwrap(),
            Tables::Postgres(client) => {
                let row = client
                    .query_one(
                        "SELECT secret, previous_secret FROM webhooks WHERE id = $1",
                        &[&webhook_id],
                    )
                    .await
                    .unwrap();
                (row.get(0), row.get(1))
            }
        }
    }

    /// Every webhook's `(secret, previous_secret)` as stored.
    async fn all_secrets(&self) -> Vec<(String, Option<String>)> {
        let sql = "SELECT secret, previous_secret FROM webhooks ORDER BY key";
        match self {
            Tables::Sqlite(conn) => {
                let mut stmt = conn.prepare(sql).unwrap();
                stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap()
            }
            Tables::Postgres(client) => client
                .query(sql, &[])
                .await
                .unwrap()
                .iter()
                .map(|row| (row.get(0), row.get(1)))
                .collect(),
        }
    }

    async fn set_secret(&self, webhook_id: &str, value: &str) {
        let changed = match self {
            Tables::Sqlite(conn) => conn
                .execute(
                    "UPDATE webhooks SET secret = ?1 WHERE id = ?2",
                    [value, webhook_id],
                )
                .unwrap() as u64,
            Tables::Postgres(client) => client
                .execute(
                    "UPDATE webhooks SET secret = $1 WHERE id = $2",
                    &[&value, &webhook_id],
                )
                .await
                .unwrap(),
        };
        assert_eq!(changed, 1);
    }

    /// The `clients` table's column names, in order, and the stored digest of `client_id`.
    async fn client_columns_and_digest(&self, client_id: &str) -> (Vec<String>, Vec<u8>) {
        match self {
            Tables::Sqlite(conn) => {
                let mut stmt = conn
                    .prepare("SELECT name FROM pragma_table_info('clients') ORDER BY cid")
                    .unwrap();
                let columns = stmt
                    .query_map([], |row| row.get(0))
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap();
                let digest = conn
                    .query_row(
                        "SELECT secret_sha256 FROM clients WHERE id = ?1",
                        [client_id],
                        |row| row.get(0),
                    )
                    .unwrap();
                (columns, digest)
            }
            Tables::Postgres(client) => {
                let columns = client
                    .query(
                        "SELECT column_name::text FROM information_schema.columns \
                         WHERE table_schema = current_schema() AND table_name = 'clients' \
                         ORDER BY ordinal_position",
                        &[],
                    )
                    .await
                    .unwrap()
                    .iter()
                    .map(|row| row.get(0))
                    .collect();
                let digest = client
                    .query_one(
                        "SELECT secret_sha256 FROM clients WHERE id = $1",
                        &[&client_id],
                    )
                    .await
                    .unwrap()
                    .get(0);
                (columns, digest)
            }
        }
    }
}

fn assert_sealed(stored: &str) {
    assert!(stored.starts_with("enc:v1:"), "not sealed: {stored}");
    assert!(!stored.contains("whsec_"), "{stored}");
}

async fn a_key_keeps_webhook_secrets_out_of_the_tables(backend: Backend) {
    let store = TestStore::with_keys(backend, sealed_with(1)).await;
    let tables = Tables::of(&store.database).await;
    add_client(&*store, "cl_a").await;
    let created = add_webhook(&*store, "cl_a", "wh_1", &["*"]).await;
    assert_eq!(created.secret, "whsec_wh_1");
    let (stored, previous) = tables.secrets("wh_1").await;
    assert_sealed(&stored);
    assert_eq!(previous, None);

    let rotated = store
        .rotate_webhook_secret("cl_a", "wh_1", rotation("whsec_two", T0))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rotated.secret, "whsec_two");
    let (stored, previous) = tables.secrets("wh_1").await;
    assert_sealed(&stored);
    assert_sealed(&previous.unwrap());

    // Everything the store hands out is in clear.
    let shown = store.get_webhook("cl_a", "wh_1").await.unwrap().unwrap();
    assert_eq!(shown.secret, "whsec_two");
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
    assert_eq!(listed.data[0].secret, "whsec_two");
    let expected_previous = Some(PreviousSecret {
        secret: "whsec_wh_1".to_owned(),
        valid_until_ms: T0 + 60_000,
    });

    publish_one(&*store, "cl_a", event("evt_1", "payment.completed", T0)).await;
    let claimed = claim(&*store, claim_at(T0, 1_000)).await;
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].secret, "whsec_two");
    assert_eq!(claimed[0].previous_secret, expected_previous);

    let mut handed_off = store.hand_off_new_deliveries(60_000, 8);
    publish_one(&*store, "cl_a", event("evt_2", "payment.completed", T0)).await;
    let handed = handed_off.try_recv().unwrap();
    assert_eq!(handed.event.id, "evt_2");
    assert_eq!(handed.secret, "whsec_two");
    assert_eq!(handed.previous_secret, expected_previous);
}

async fn a_sealed_secret_copied_to_another_webhook_does_not_open(backend: Backend) {
    let store = TestStore::with_keys(backend, sealed_with(1)).await;
    let tables = Tables::of(&store.database).await;
    add_client(&*store, "cl_a").await;
    add_webhook(&*store, "cl_a", "wh_1", &["*"]).await;
    add_webhook(&*store, "cl_a", "wh_2", &["*"]).await;
    let (wh_1_sealed, _) = tables.secrets("wh_1").await;
    tables.set_secret("wh_2", &wh_1_sealed).await;

    // An error, never wh_1's secret passed off as wh_2's.
    let wrong_key = || SealingError::WrongKey {
        webhook_id: "wh_2".to_owned(),
    };
    match store.get_webhook("cl_a", "wh_2").await {
        Err(StoreError::Sealing(e)) => assert_eq!(e, wrong_key()),
        other => panic!("expected a sealing error, got {other:?}"),
    }

    // Deliveries to wh_2 are held back (neither handed off nor claimed); wh_1's go on.
    let mut handed_off = store.hand_off_new_deliveries(60_000, 8);
    let published = publish_one(&*store, "cl_a", event("evt_1", "payment.completed", T0)).await;
    assert_eq!(new_deliveries(&published), 2);
    let handed = handed_off.try_recv().unwrap();
    assert_eq!(
        (handed.webhook_id.as_str(), handed.secret.as_str()),
        ("wh_1", "whsec_wh_1")
    );
    assert!(handed_off.try_recv().is_err());
    drop(handed_off);
    let claimed = claim(&*store, claim_at(T0, 1_000)).await;
    assert!(claimed.is_empty(), "{claimed:?}");
    let claimed = claim(&*store, claim_at(T0 + 100_000, 1_000)).await;
    assert_eq!(
        claimed
            .iter()
            .map(|c| (c.webhook_id.as_str(), c.secret.as_str()))
            .collect::<Vec<_>>(),
        [("wh_1", "whsec_wh_1")]
    );

    // And at the next start, the store refuses to open.
    drop(tables);
    match store.reopen_with(sealed_with(1)).await {
        Err((StoreError::Sealing(e), _)) => assert_eq!(e, wrong_key()),
        Err((other, _)) => panic!("expected a sealing error, got {other}"),
        Ok(_) => panic!("a database with a moved secret opened"),
    }
}

async fn opening_needs_the_key_that_sealed_the_secrets(backend: Backend) {
    let store = TestStore::with_keys(backend, sealed_with(1)).await;
    add_client(&*store, "cl_a").await;
    add_webhook(&*store, "cl_a", "wh_1", &["*"]).await;
    store
        .rotate_webhook_secret("cl_a", "wh_1", rotation("whsec_two", T0))
        .await
        .unwrap()
        .unwrap();
    let tables = Tables::of(&store.database).await;
    let before = tables.secrets("wh_1").await;
    drop(tables);

    let database = store.close();
    let database = match TestStore::open_on(database, SecretKeys::none()).await {
        Err((StoreError::Sealing(SealingError::NoKey { webhook_id }), database)) => {
            assert_eq!(webhook_id, "wh_1");
            database
        }
        Err((other, _)) => panic!("expected NoKey, got {other}"),
        Ok(_) => panic!("sealed secrets opened without a key"),
    };
    let database = match TestStore::open_on(database, sealed_with(2)).await {
        Err((StoreError::Sealing(SealingError::WrongKey { webhook_id }), database)) => {
            assert_eq!(webhook_id, "wh_1");
            database
        }
        Err((other, _)) => panic!("expected WrongKey, got {other}"),
        Ok(_) => panic!("sealed secrets opened with another key"),
    };

    // A key rotation: the new key, and the old one to open what it sealed. Every value is
    // sealed again with the new key at open, so the old key is then no longer needed.
    let rotating = SecretKeys::new(key(2), Some(key(1)));
    let store = match TestStore::open_on(database, rotating).await {
        Ok(store) => store,
        Err((e, _)) => panic!("the rotating keys did not open: {e}"),
    };
    let tables = Tables::of(&store.database).await;
    let after = tables.secrets("wh_1").await;
    drop(tables);
    assert_sealed(&after.0);
    assert_sealed(after.1.as_deref().unwrap());
    assert_ne!(after.0, before.0);
    assert_ne!(after.1, before.1);

    let store = match store.reopen_with(sealed_with(2)).await {
        Ok(store) => store,
        Err((e, _)) => panic!("the new key alone did not open: {e}"),
    };
    let shown = store.get_webhook("cl_a", "wh_1").await.unwrap().unwrap();
    assert_eq!(shown.secret, "whsec_two");
    publish_one(&*store, "cl_a", event("evt_1", "payment.completed", T0)).await;
    let claimed = claim(&*store, claim_at(T0, 1_000)).await;
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].signing_secrets(T0), ["whsec_two", "whsec_wh_1"]);
}

async fn secrets_kept_in_clear_are_sealed_at_open(backend: Backend) {
    // More webhooks than the start-up pass takes per batch.
    const WEBHOOKS: usize = 1_100;
    let store = TestStore::new(backend).await;
    add_client(&*store, "cl_a").await;
    for chunk in (0..WEBHOOKS).collect::<Vec<_>>().chunks(100) {
        let created = futures_util::future::join_all(
            chunk
                .iter()
                .map(|n| store.create_webhook(webhook("cl_a", &format!("wh_{n:04}"), &["*"]))),
        )
        .await;
        assert!(created.iter().all(Result::is_ok));
    }
    store
        .rotate_webhook_secret("cl_a", "wh_0007", rotation("whsec_two", T0))
        .await
        .unwrap()
        .unwrap();
    let tables = Tables::of(&store.database).await;
    assert_eq!(
        tables.secrets("wh_0007").await,
        ("whsec_two".to_owned(), Some("whsec_wh_0007".to_owned()))
    );
    drop(tables);

    let store = match store.reopen_with(sealed_with(1)).await {
        Ok(store) => store,
        Err((e, _)) => panic!("a key did not open a database kept in clear: {e}"),
    };
    let tables = Tables::of(&store.database).await;
    let stored = tables.all_secrets().await;
    assert_eq!(stored.len(), WEBHOOKS);
    for (secret, previous) in &stored {
        assert_sealed(secret);
        if let Some(previous) = previous {
            assert_sealed(previous);
        }
    }
    assert_eq!(stored.iter().filter(|(_, p)| p.is_some()).count(), 1);
    for (id, secret) in [
        ("wh_0000", "whsec_wh_0000"),
        ("wh_0007", "whsec_two"),
        ("wh_1099", "whsec_wh_1099"),
    ] {
        let shown = store.get_webhook("cl_a", id).await.unwrap().unwrap();
        assert_eq!(shown.secret, secret);
    }

    // Opening again changes nothing: every value is already sealed with this key.
    drop(tables);
    let store = store.reopen().await;
    let tables = Tables::of(&store.database).await;
    assert_eq!(tables.all_secrets().await, stored);
}

async fn the_clients_table_holds_only_a_digest_of_the_secret(backend: Backend) {
    // The store is never given a client secret, only its SHA-256 digest, and the table
    // has no other place for one.
    let store = TestStore::new(backend).await;
    add_client(&*store, "cl_a").await;
    let tables = Tables::of(&store.database).await;
    let (columns, digest) = tables.client_columns_and_digest("cl_a").await;
    assert_eq!(columns, ["id", "name", "secret_sha256", "created_at"]);
    assert_eq!(digest, [7; 32]);
    let found = store.find_client("cl_a").await.unwrap().unwrap();
    assert_eq!(found.secret_sha256, [7; 32]);
}
