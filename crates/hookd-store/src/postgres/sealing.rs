//! The start-up pass over stored webhook secrets (see `crate::sealing`): every row, in
//! batches by key, each batch's changes one statement.

use deadpool_postgres::GenericClient;

use super::queries;
use crate::StoreError;
use crate::sealing::{RESEAL_BATCH, SecretKeys, StoredSecrets, log_resealed};

/// Opens every stored secret with `keys` (failing on the first that does not open) and
/// rewrites those not in the form `keys` asks for. Other nodes may be running (or starting
/// with the same keys): each value is replaced only while its row still holds what was
/// read, so a rotation in between is never undone, and two nodes sealing the same row
/// both leave a value the keys open.
pub(super) async fn reseal_all(
    c: &impl GenericClient,
    keys: &SecretKeys,
) -> Result<(), StoreError> {
    let limit = i64::try_from(RESEAL_BATCH).unwrap_or(i64::MAX);
    let mut after = 0_i64;
    let mut resealed = 0;
    loop {
        let found = queries::rows(
            c,
            "SELECT key, id, secret, previous_secret FROM webhooks \
             WHERE key > $1 ORDER BY key LIMIT $2",
            &[&after, &limit],
        )
        .await?;
        let batch = found
            .iter()
            .map(|r| {
                Ok(StoredSecrets {
                    key: r.try_get(0)?,
                    webhook_id: r.try_get(1)?,
                    secret: r.try_get(2)?,
                    previous_secret: r.try_get(3)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let Some(last) = batch.last() else {
            break;
        };
        after = last.key;
        let short = batch.len() < RESEAL_BATCH;
        let changed = keys.reseal_rows(batch)?;
        if !changed.is_empty() {
            let mut webhook_keys = Vec::with_capacity(changed.len());
            let (mut old_secrets, mut new_secrets) = (Vec::new(), Vec::new());
            let (mut old_previous, mut new_previous) = (Vec::new(), Vec::new());
            for row in &changed {
                webhook_keys.push(row.key);
                let (old, new) = row.secret.clone().unzip();
                old_secrets.push(old);
                new_secrets.push(new);
                let (old, new) = row.previous_secret.clone().unzip();
                old_previous.push(old);
                new_previous.push(new);
            }
            // A NULL old value matches nothing: that column stays as it is.
            queries::rows(
                c,
                "UPDATE webhooks w SET \
                   secret = CASE WHEN w.secret = u.old_secret THEN u.new_secret ELSE w.secret END, \
                   previous_secret = CASE WHEN w.previous_secret = u.old_previous \
                     THEN u.new_previous ELSE w.previous_secret END \
                 FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[]) \
                   AS u(key, old_secret, new_secret, old_previous, new_previous) \
                 WHERE w.key = u.key",
                &[
                    &webhook_keys,
                    &old_secrets,
                    &new_secrets,
                    &old_previous,
                    &new_previous,
                ],
            )
            .await?;
            resealed += changed.len();
        }
        if short {
            break;
        }
    }
    log_resealed(resealed);
    Ok(())
}
