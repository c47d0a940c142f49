//! Bearer-token authentication. Tokens are stored as SHA-256 hashes; a token is
//! either an organisation admin token or scoped to one application (app portal
//! access). A token never sees another organisation's objects: lookups are
//! scoped by organisation and answer 404.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hookd_store::ApiToken;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::AppState;

/// How long a verified token is trusted without asking the store again.
const CACHE_TTL: Duration = Duration::from_secs(10);
const CACHE_MAX: usize = 10_000;

/// Who is calling.
#[derive(Debug, Clone)]
pub struct Auth {
    pub org_id: String,
    /// Set for a token that may only act on this application.
    pub app_id: Option<String>,
}

impl Auth {
    /// Refuses (as not found) an application outside an app-scoped token's reach.
    pub fn check_app(&self, app_id: &str) -> Result<(), ApiError> {
        match &self.app_id {
            Some(only) if only != app_id => Err(ApiError::NotFound),
            _ => Ok(()),
        }
    }

    /// Refuses organisation-wide operations to app-scoped tokens.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        match self.app_id {
            Some(_) => Err(ApiError::NotFound),
            None => Ok(()),
        }
    }
}

/// A new random token with `prefix` (`sk_` admin, `appsk_` app portal).
pub fn generate_token(prefix: &str) -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

pub fn hash_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Recently verified tokens, so authentication does not read the store on every request.
#[derive(Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<String, (ApiToken, Instant)>>,
}

impl TokenCache {
    fn get(&self, hash: &str) -> Option<ApiToken> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.get(hash).filter(|(_, at)| at.elapsed() < CACHE_TTL).map(|(t, _)| t.clone())
    }

    fn put(&self, hash: String, token: ApiToken) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= CACHE_MAX {
            entries.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
            if entries.len() >= CACHE_MAX {
                entries.clear();
            }
        }
        entries.insert(hash, (token, Instant::now()));
    }
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(axum::http::header::AUTHORIZATION).ok_or(ApiError::Unauthorized)?;
        let value = header.to_str().map_err(|_| ApiError::Unauthorized)?;
        let token = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")).unwrap_or(value).trim();
        if token.is_empty() || token.len() > 512 {
            return Err(ApiError::Unauthorized);
        }
        let hash = hash_token(token);
        if state.bootstrap_token_hash.as_deref() == Some(hash.as_str()) {
            return Ok(Auth { org_id: state.org_id.clone(), app_id: None });
        }
        let now = hookd_core::timefmt::now_millis();
        let token = match state.tokens.get(&hash) {
            Some(t) => t,
            None => {
                let t = state.store.token_by_hash(&hash).await?.ok_or(ApiError::Unauthorized)?;
                state.tokens.put(hash, t.clone());
                t
            }
        };
        if token.expires_at.is_some_and(|exp| exp <= now) {
            return Err(ApiError::Unauthorized);
        }
        Ok(Auth { org_id: token.org_id, app_id: token.app_id })
    }
}
