//! Versioned migrations, applied at start under an advisory lock, so several nodes
//! starting at once apply each migration exactly once.

use deadpool_postgres::ClientWrapper;

use crate::StoreError;

/// Migration N (1-based) is `MIGRATIONS[N - 1]`; applied migrations are never edited.
const MIGRATIONS: &[&str] = &[
    include_str!("schema_1.sql"),
    include_str!("schema_2.sql"),
    include_str!("schema_3.sql"),
    include_str!("schema_4.sql"),
    include_str!("schema_5.sql"),
    include_str!("schema_6.sql"),
    include_str!("schema_7.sql"),
    include_str!("schema_8.sql"),
];

/// Brings the schema in the connection's `search_path` up to date and returns its name.
pub(super) async fn apply(client: &mut ClientWrapper) -> Result<String, StoreError> {
    let tx = client.transaction().await?;
    let schema: Option<String> = tx
        .query_one("SELECT current_schema()", &[])
        .await?
        .try_get(0)?;
    let Some(schema) = schema else {
        return Err(StoreError::Database(
            "no schema of the search_path exists in this database; create it first".to_owned(),
        ));
    };
    // Held until the transaction ends; nodes on other schemas are not held up.
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext('hookd migrations'), hashtext($1))",
        &[&schema],
    )
    .await?;
    tx.batch_execute(
        "SET LOCAL client_min_messages = warning; \
         CREATE TABLE IF NOT EXISTS hookd_migrations \
         (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )
    .await?;
    let applied: i32 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM hookd_migrations",
            &[],
        )
        .await?
        .try_get(0)?;
    let known = i32::try_from(MIGRATIONS.len()).unwrap_or(i32::MAX);
    if applied > known {
        return Err(StoreError::Database(format!(
            "schema `{schema}` is at version {applied}, newer than this hookd knows ({known}); \
             run a newer hookd"
        )));
    }
    for (version, sql) in (1..)
        .zip(MIGRATIONS)
        .skip(usize::try_from(applied).unwrap_or(0))
    {
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO hookd_migrations (version, applied_at) \
             VALUES ($1, (EXTRACT(EPOCH FROM now()) * 1000)::BIGINT)",
            &[&version],
        )
        .await?;
        tracing::info!(version, schema, "applied a database migration");
    }
    tx.commit().await?;
    Ok(schema)
}
