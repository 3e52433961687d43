//! HTTP Basic authentication of clients.
//!
//! Client secrets are random 256-bit tokens, so their SHA-256 digest is as safe to store
//! as a slow hash and costs microseconds per request. Digests are compared in constant
//! time. Known clients' digests are cached: clients never change after creation.

use std::collections::HashMap;
use std::sync::RwLock;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::error::ApiError;

#[derive(Default)]
pub(crate) struct ClientCache(RwLock<HashMap<String, [u8; 32]>>);

/// The authenticated client of a request.
pub(crate) struct Client {
    pub(crate) id: String,
}

impl FromRequestParts<AppState> for Client {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Client, ApiError> {
        let (id, secret) = basic_credentials(parts).ok_or_else(|| {
            ApiError::unauthorized(
                "send your client_id and client_secret with HTTP Basic authentication",
            )
        })?;
        let presented: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        let cached = state
            .clients
            .0
            .read()
            .ok()
            .and_then(|m| m.get(&id).copied());
        let stored = match cached {
            Some(digest) => Some(digest),
            None => {
                let found = state.store.find_client(&id).await?.map(|c| c.secret_sha256);
                if let (Some(digest), Ok(mut cache)) = (found, state.clients.0.write()) {
                    cache.insert(id.clone(), digest);
                }
                found
            }
        };
        match stored {
            Some(digest) if bool::from(digest.ct_eq(&presented)) => Ok(Client { id }),
            _ => Err(ApiError::unauthorized(
                "unknown client_id or wrong client_secret",
            )),
        }
    }
}

fn basic_credentials(parts: &Parts) -> Option<(String, String)> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}
