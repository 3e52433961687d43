//! `hookd clients create`: makes an API client directly in the database.

use std::process::ExitCode;

use anyhow::Context;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hookd_core::ids::{IdKind, new_id};
use hookd_store::model::NewClient;
use sha2::{Digest, Sha256};

use crate::cli::StoreArgs;
use crate::config::database;
use crate::serve::now_ms;

pub(crate) async fn create(
    store_args: &StoreArgs,
    name: &str,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        eprintln!("hookd: --name must be 1 to 200 characters");
        return Ok(ExitCode::from(2));
    }
    let store = database(store_args)?.open(false).await?;
    let mut secret_bytes = [0u8; 32];
    let mut id_bytes = [0u8; 16];
    getrandom::fill(&mut secret_bytes).context("the system random number generator failed")?;
    getrandom::fill(&mut id_bytes).context("the system random number generator failed")?;
    let secret = format!("hks_{}", URL_SAFE_NO_PAD.encode(secret_bytes));
    let now = now_ms();
    let client = store
        .create_client(NewClient {
            id: new_id(
                IdKind::Client,
                u64::try_from(now).unwrap_or(0),
                u128::from_le_bytes(id_bytes),
            ),
            name: name.to_owned(),
            secret_sha256: Sha256::digest(secret.as_bytes()).into(),
            now_ms: now,
        })
        .await
        .context("creating the client")?;
    if json {
        println!(
            "{}",
            serde_json::json!({ "client_id": client.id, "client_secret": secret })
        );
    } else {
        println!("client_id:     {}", client.id);
        println!("client_secret: {secret}");
        println!("The secret is shown only now; store it safely.");
    }
    Ok(ExitCode::SUCCESS)
}
