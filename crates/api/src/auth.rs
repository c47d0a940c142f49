//! Bearer-token authentication and the permission extractors. Tokens are stored
//! as SHA-256 hashes; a token is either an organisation admin token or scoped to
//! one application (app portal access). A token never sees another
//! organisation's objects: lookups are scoped by organisation and answer 404.
//!
//! Handlers state what they need in their signature, so a forgotten check is a
//! compile error rather than a leak: [`OrgAuth`] for organisation-wide actions
//! (an app-scoped token gets 403 on its own application, 404 elsewhere), and
//! [`AppAuth`] for the application named in the path, loaded and checked.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hookd_store::{ApiToken, Application};
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
    /// The token's id (`tok_…`), or `bootstrap` for `--admin-token`.
    pub token_id: String,
}

impl Auth {
    /// Refuses (as not found) an application outside an app-scoped token's reach.
    pub fn check_app(&self, app_id: &str) -> Result<(), ApiError> {
        match &self.app_id {
            Some(only) if only != app_id => Err(ApiError::NotFound),
            _ => Ok(()),
        }
    }
}

/// An organisation token: may do anything in its organisation.
#[derive(Debug, Clone)]
pub struct OrgAuth {
    pub org_id: String,
    pub token_id: String,
}

impl OrgAuth {
    pub fn as_auth(&self) -> Auth {
        Auth { org_id: self.org_id.clone(), app_id: None, token_id: self.token_id.clone() }
    }
}

/// A caller allowed on the application named in the path (`{app_id}`, by id or
/// uid): an organisation token, or a token scoped to that application.
#[derive(Debug, Clone)]
pub struct AppAuth {
    pub auth: Auth,
    pub app: Application,
}

impl AppAuth {
    pub fn org_id(&self) -> &str {
        &self.auth.org_id
    }

    /// Whether the caller holds an app-scoped (portal) token.
    pub fn is_app_scoped(&self) -> bool {
        self.auth.app_id.is_some()
    }
}

/// The `{app_id}` of the path, if the route has one.
async fn path_app_id(parts: &mut Parts, state: &AppState) -> Option<String> {
    use axum::extract::Path;
    let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state).await.ok()?;
    params.get("app_id").cloned()
}

impl FromRequestParts<AppState> for OrgAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let auth = Auth::from_request_parts(parts, state).await?;
        let Some(own) = &auth.app_id else { return Ok(OrgAuth { org_id: auth.org_id, token_id: auth.token_id }) };
        // A portal token on its own application lacks the right (403); anywhere
        // else it must not learn what exists (404).
        if let Some(app_id) = path_app_id(parts, state).await {
            if let Ok(app) = state.resources.get_app(&auth.org_id, &app_id).await {
                if &app.id == own {
                    return Err(ApiError::Forbidden(
                        "an application-scoped token cannot do this; it needs an organisation token".into(),
                    ));
                }
            }
        }
        Err(ApiError::NotFound)
    }
}

impl FromRequestParts<AppState> for AppAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let auth = Auth::from_request_parts(parts, state).await?;
        let app_id = path_app_id(parts, state).await.ok_or(ApiError::NotFound)?;
        let app = state.resources.get_app(&auth.org_id, &app_id).await?;
        auth.check_app(&app.id)?;
        Ok(AppAuth { auth, app })
    }
}

/// Counts a request against its token's rate (`--token-rate-limit`, off by
/// default); 429 with `Retry-After` beyond it.
fn within_rate(state: &AppState, token_id: &str) -> Result<(), ApiError> {
    let Some(rate) = state.config.token_rate_limit else { return Ok(()) };
    state.quotas.take(&format!("token:{token_id}"), rate).map_err(|wait| ApiError::TooManyRequests {
        detail: format!("this token may make {rate} requests per second; retry after the Retry-After header's seconds"),
        retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
    })
}

/// A new random token with `prefix` (`sk_` admin, `appsk_` app portal).
pub fn generate_token(prefix: &str) -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

pub fn hash_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    hookd_core::text::hex(&digest)
}

/// Recently verified tokens, so authentication does not read the store on every request.
#[derive(Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<String, (ApiToken, Instant)>>,
}

impl TokenCache {
    /// Forgets every verified token (after tokens were expired).
    pub fn clear(&self) {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

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
        let noted = |org_id: &str, token: &str| {
            if let Some(slot) = parts.extensions.get::<crate::audit::ActorSlot>() {
                let actor = crate::audit::Actor { org_id: org_id.to_string(), token: token.to_string() };
                *slot.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(actor);
            }
        };
        if state.bootstrap_token_hash.as_deref() == Some(hash.as_str()) {
            noted(&state.org_id, "bootstrap");
            within_rate(state, "bootstrap")?;
            return Ok(Auth { org_id: state.org_id.clone(), app_id: None, token_id: "bootstrap".into() });
        }
        let now = hookd_core::timefmt::now_millis();
        let token = match state.tokens.get(&hash) {
            Some(t) => t,
            None => {
                let t = state.resources.token_by_hash(&hash).await?.ok_or(ApiError::Unauthorized)?;
                state.tokens.put(hash, t.clone());
                t
            }
        };
        if token.expires_at.is_some_and(|exp| exp <= now) {
            return Err(ApiError::Unauthorized);
        }
        noted(&token.org_id, &token.id);
        within_rate(state, &token.id)?;
        Ok(Auth { org_id: token.org_id, app_id: token.app_id, token_id: token.id })
    }
}
