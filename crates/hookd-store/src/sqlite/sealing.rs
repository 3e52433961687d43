//! The start-up pass over stored webhook secrets (see `crate::sealing`): every row, in
//! batches by key, each batch one transaction.

use rusqlite::{Connection, params};

use crate::StoreError;
use crate::sealing::{RESEAL_BATCH, Resealed, SecretKeys, StoredSecrets, log_resealed};

/// Opens every stored secret with `keys` (failing on the first that does not open) and
/// rewrites those not in the form `keys` asks for. Runs before the writer thread starts,
/// or beside a running server (a CLI command): each update applies only while the row
/// still holds what was read.
pub(super) fn reseal_all(conn: &Connection, keys: &SecretKeys) -> Result<(), StoreError> {
    let mut after = 0_i64;
    let mut resealed = 0;
    loop {
        let batch = read_batch(conn, after)?;
        let Some(last) = batch.last() else {
            break;
        };
        after = last.key;
        let short = batch.len() < RESEAL_BATCH;
        let changed = keys.reseal_rows(batch)?;
        if !changed.is_empty() {
            let tx = conn.unchecked_transaction()?;
            for row in &changed {
                write_row(&tx, row)?;
            }
            tx.commit()?;
            resealed += changed.len();
        }
        if short {
            break;
        }
    }
    log_resealed(resealed);
    Ok(())
}

fn read_batch(conn: &Connection, after: i64) -> Result<Vec<StoredSecrets>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT key, id, secret, previous_secret FROM webhooks WHERE key > ?1 ORDER BY key LIMIT ?2",
    )?;
    let limit = i64::try_from(RESEAL_BATCH).unwrap_or(i64::MAX);
    let rows = stmt.query_map(params![after, limit], |row| {
        Ok(StoredSecrets {
            key: row.get(0)?,
            webhook_id: row.get(1)?,
            secret: row.get(2)?,
            previous_secret: row.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn write_row(conn: &Connection, row: &Resealed) -> Result<(), StoreError> {
    if let Some((old, new)) = &row.secret {
        conn.prepare_cached("UPDATE webhooks SET secret = ?1 WHERE key = ?2 AND secret = ?3")?
            .execute(params![new, row.key, old])?;
    }
    if let Some((old, new)) = &row.previous_secret {
        conn.prepare_cached(
            "UPDATE webhooks SET previous_secret = ?1 WHERE key = ?2 AND previous_secret = ?3",
        )?
        .execute(params![new, row.key, old])?;
    }
    Ok(())
}
