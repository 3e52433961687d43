//! HTTP Basic authentication of clients.
//!
//! Client secrets are random 256-bit tokens, so their SHA-256 digest is as safe to store
//! as a slow hash and costs microseconds per request. Digests are compared in constant
//! time. Known clients' digests are cached: clients never change after creation.
//!
//! Credentials longer than any hookd issues are refused before decoding or any store
//! read, and an authenticated request then takes a token from its client's rate limit
//! bucket (`rate_limit.rs`).

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

/// Longest `Authorization` header value read; hookd's ids (29 bytes) and secrets (47 bytes)
/// fit many times over.
const MAX_AUTHORIZATION_BYTES: usize = 1024;
/// Longest client id looked up in the store.
const MAX_CLIENT_ID_BYTES: usize = 128;

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
        // Only what could be an id reaches the store (no NUL byte, no megabyte).
        if id.is_empty()
            || id.len() > MAX_CLIENT_ID_BYTES
            || !id.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(ApiError::unauthorized(
                "unknown client_id or wrong client_secret",
            ));
        }
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
            Some(digest) if bool::from(digest.ct_eq(&presented)) => {
                if let Some(limiter) = &state.rate_limiter {
                    limiter.check(&id)?;
                }
                Ok(Client { id })
            }
            _ => Err(ApiError::unauthorized(
                "unknown client_id or wrong client_secret",
            )),
        }
    }
}

fn basic_credentials(parts: &Parts) -> Option<(String, String)> {
    let value = parts.headers.get(AUTHORIZATION)?;
    if value.len() > MAX_AUTHORIZATION_BYTES {
        return None;
    }
    let value = value.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}
