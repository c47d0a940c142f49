//! `POST /api/v1/auth/app-portal-access/{app}`: a token that can act on one
//! application only, for an embedded consumer portal.

use axum::extract::{Path, State};
use axum::Json;
use hookd_core::id::{looks_like_id, new_id, IdPrefix};
use hookd_store::{ApiToken, StoreError, TokenRole};
use serde::{Deserialize, Serialize};

use super::application::ApplicationIn;
use super::{load_app, now};
use crate::auth::{generate_token, hash_token, Capabilities, Capability, OrgAuth};
use crate::error::{ApiError, ApiResult};
use crate::extract::{parse_json_or_default, RawBody};
use crate::AppState;

const DEFAULT_EXPIRY_SECS: i64 = 7 * 24 * 3600;
const MIN_EXPIRY_SECS: i64 = 60;
const MAX_EXPIRY_SECS: i64 = 7 * 24 * 3600;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppPortalAccessIn {
    #[serde(default)]
    pub application: Option<ApplicationIn>,
    /// Seconds the token stays valid.
    #[serde(default)]
    pub expiry: Option<i64>,
    /// `AppPortalCapability` names; all of them when left out.
    #[serde(default)]
    pub capabilities: Option<Vec<String>>,
    /// Deprecated by Svix for `capabilities`: `true` is `["ViewBase"]`.
    #[serde(default)]
    pub read_only: Option<bool>,
    #[serde(default)]
    pub session_id: Option<String>,
    /// Accepted for compatibility; hookd has no feature flags on event types to filter by.
    #[serde(default)]
    pub feature_flags: Option<Vec<String>>,
}

/// A session id: 1 to 64 of `[a-zA-Z0-9@_-]`.
fn valid_session_id(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"@_-".contains(&b))
}

/// The capabilities a portal token is made with.
fn capabilities(input: &AppPortalAccessIn) -> ApiResult<Capabilities> {
    let Some(names) = &input.capabilities else {
        return Ok(if input.read_only == Some(true) {
            Capabilities::of(&[Capability::ViewBase])
        } else {
            Capabilities::all()
        });
    };
    let mut caps = Vec::new();
    for name in names {
        let cap = Capability::parse(name).ok_or_else(|| {
            ApiError::body_field(
                "capabilities",
                format!("unknown capability `{name}`; known: {}", Capability::ALL.map(|c| c.name()).join(", ")),
            )
        })?;
        caps.push(cap);
    }
    if !caps.contains(&Capability::ViewBase) {
        return Err(ApiError::body_field("capabilities", "the `ViewBase` capability is always required"));
    }
    if input.read_only == Some(true) && caps.iter().any(|c| *c != Capability::ViewBase) {
        return Err(ApiError::body_field("readOnly", "a read-only token holds `ViewBase` only"));
    }
    Ok(Capabilities::of(&caps))
}

#[derive(Serialize)]
pub struct AppPortalAccessOut {
    pub url: String,
    pub token: String,
}

/// Not idempotent by design: a repeat makes a new token, since tokens are only
/// stored hashed and cannot be shown twice.
pub async fn app_portal_access(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path(app_id): Path<String>,
    RawBody(body): RawBody,
) -> ApiResult<Json<AppPortalAccessOut>> {
    let auth = auth.as_auth();
    let input: AppPortalAccessIn = parse_json_or_default(&body)?;
    let expiry = input.expiry.unwrap_or(DEFAULT_EXPIRY_SECS);
    let caps = capabilities(&input)?;
    if input.session_id.as_deref().is_some_and(|s| !valid_session_id(s)) {
        return Err(ApiError::body_field("sessionId", "sessionId is 1 to 64 of a-z, A-Z, 0-9, @, _ and -"));
    }
    let session_id = input.session_id.clone();
    if !(MIN_EXPIRY_SECS..=MAX_EXPIRY_SECS).contains(&expiry) {
        return Err(ApiError::body_field(
            "expiry",
            format!("expiry must be {MIN_EXPIRY_SECS} to {MAX_EXPIRY_SECS} seconds"),
        ));
    }
    let app = match (load_app(&state, &auth, &app_id).await, input.application) {
        (Ok(app), _) => app,
        (Err(ApiError::NotFound), Some(mut app_in)) => {
            if app_in.uid.is_none() && !looks_like_id(IdPrefix::Application, &app_id) {
                app_in.uid = Some(app_id.clone());
            }
            app_in.validate()?;
            match state.resources.create_app(app_in.into_new(&auth.org_id), None).await {
                Ok(app) => app,
                Err(StoreError::Conflict { .. }) => load_app(&state, &auth, &app_id).await?,
                Err(e) => return Err(e.into()),
            }
        }
        (Err(e), _) => return Err(e),
    };
    let token = generate_token("appsk_");
    let t = now();
    let token_id = new_id(IdPrefix::Token);
    state
        .resources
        .insert_token(ApiToken {
            id: token_id.clone(),
            org_id: auth.org_id.clone(),
            token_hash: hash_token(&token),
            app_id: Some(app.id.clone()),
            created_at: t,
            expires_at: Some(t + expiry * 1000),
            name: None,
            role: TokenRole::Portal,
            capabilities: Some(caps.names()),
            session_id,
            tail: None,
        })
        .await?;
    // The link carries a one-time token, not the portal token itself: opened
    // once (within ONE_TIME_TOKEN_SECS) it becomes a portal session.
    let once = generate_token("ott_");
    let until = t + ONE_TIME_TOKEN_SECS.min(expiry) * 1000;
    state.resources.insert_one_time_token(&auth.org_id, &token_id, &hash_token(&once), until).await?;
    let url = format!("{}/portal/login?token={once}", state.config.public_url.trim_end_matches('/'));
    Ok(Json(AppPortalAccessOut { url, token }))
}

/// How long a portal link's one-time token may wait to be opened.
pub const ONE_TIME_TOKEN_SECS: i64 = 600;

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OneTimeTokenIn {
    pub one_time_token: String,
}

#[derive(Serialize)]
pub struct OneTimeTokenOut {
    pub token: String,
    pub capabilities: Vec<String>,
}

/// `POST /api/v1/auth/one-time-token`: a portal link's one-time token (the
/// credential itself: no bearer token) exchanged, once, for a new portal token
/// with the rights, session and expiry of the one the link was made with.
pub async fn exchange_one_time_token(
    State(state): State<AppState>,
    slot: Option<axum::Extension<crate::audit::ActorSlot>>,
    RawBody(body): RawBody,
) -> ApiResult<Json<OneTimeTokenOut>> {
    let input: OneTimeTokenIn = crate::extract::parse_json(&body)?;
    let taken = state.resources.take_one_time_token(&hash_token(&input.one_time_token), now()).await?;
    let Some((org_id, token_id)) = taken else { return Err(ApiError::Unauthorized) };
    let template = match state.resources.get_token(&token_id).await {
        Ok(t)
            if t.org_id == org_id
                && t.role == TokenRole::Portal
                && t.app_id.is_some()
                && t.expires_at.is_none_or(|e| e > now()) =>
        {
            t
        }
        Ok(_) | Err(StoreError::NotFound) => return Err(ApiError::Unauthorized),
        Err(e) => return Err(e.into()),
    };
    let token = generate_token("appsk_");
    let capabilities = crate::auth::Capabilities::stored(template.capabilities.as_deref()).names();
    // The new token is recorded in the audit trail as made by the link's token.
    if let Some(axum::Extension(slot)) = slot {
        let actor = crate::audit::Actor { org_id: template.org_id.clone(), token: template.id.clone() };
        *slot.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(actor);
    }
    state
        .resources
        .insert_token(ApiToken {
            id: new_id(IdPrefix::Token),
            token_hash: hash_token(&token),
            created_at: now(),
            name: None,
            tail: None,
            ..template
        })
        .await?;
    Ok(Json(OneTimeTokenOut { token, capabilities }))
}

/// `GET /api/v1/auth/whoami` (`WhoamiOut`): the caller's organisation and, for a
/// portal token, its application and session. `tokenId`, `role` and (portal
/// and MCP tokens) `capabilities` are extensions.
pub async fn whoami(auth: crate::auth::Auth) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "envId": auth.org_id,
        "appId": auth.app_id,
        "permissionSource": "GlobalAuthToken",
        "sessionId": auth.session_id,
        "tokenId": auth.token_id,
        "role": auth.role.as_str(),
        "capabilities": (auth.app_id.is_some() || auth.capabilities != crate::auth::Capabilities::all())
            .then(|| auth.capabilities.names()),
    }))
}

/// `ApplicationTokenExpireIn`.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenExpireIn {
    #[serde(default)]
    pub expiry: Option<i64>,
    #[serde(default)]
    pub session_ids: Option<Vec<String>>,
}

/// Longest grace `expire-all` may give (Svix: 72 hours).
const MAX_EXPIRE_SECS: i64 = 259_200;

/// `POST /api/v1/auth/app/{app_id}/expire-all`: the application's portal tokens
/// (those of `sessionIds` only, when given) stop working in `expiry` seconds
/// (default: now). Answers 204. Other nodes
/// may accept a revoked token for up to 10 s (their token cache).
pub async fn expire_all(
    State(state): State<AppState>,
    auth: crate::auth::OrgAuth,
    Path(app_id): Path<String>,
    crate::extract::RawBody(body): crate::extract::RawBody,
) -> ApiResult<axum::http::StatusCode> {
    let input: TokenExpireIn = crate::extract::parse_json(&body)?;
    let expiry = input.expiry.unwrap_or(0);
    if !(0..=MAX_EXPIRE_SECS).contains(&expiry) {
        return Err(ApiError::body_field("expiry", format!("expiry is 0 to {MAX_EXPIRE_SECS} seconds")));
    }
    let sessions = input.session_ids.unwrap_or_default();
    if sessions.len() > 1000 || sessions.iter().any(|s| !valid_session_id(s)) {
        return Err(ApiError::body_field(
            "sessionIds",
            "at most 1000 session ids, each 1 to 64 of a-z, A-Z, 0-9, @, _ and -",
        ));
    }
    let app = state.resources.get_app(&auth.org_id, &app_id).await?;
    let at = hookd_core::timefmt::now_millis() + expiry * 1000;
    state.resources.expire_app_tokens(&auth.org_id, &app.id, at, &sessions).await?;
    state.tokens.clear();
    Ok(axum::http::StatusCode::NO_CONTENT)
}
