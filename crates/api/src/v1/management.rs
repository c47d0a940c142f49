//! The management API: organisations (Svix calls them environments) under
//! `/api/v1/management/environment`, and their API tokens under
//! `/api/v1/management/authentication/{env_id}/api-token`.
//!
//! Organisations are a server admin's business. An organisation's admin may
//! manage its own organisation's tokens (never a server admin's); any other
//! organisation is not found.

use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::Json;
use hookd_core::id::{new_id, IdPrefix};
use hookd_core::policy::OrgPolicy;
use hookd_core::timefmt::format_millis;
use hookd_store::{ApiToken, Organization, TokenRole};
use serde::{Deserialize, Serialize};

use super::now;
use crate::auth::{generate_token, hash_token, Auth, ServerAuth};
use crate::error::{ApiError, ApiResult};
use crate::extract::{parse_json, QueryParams, RawBody};
use crate::pagination::{self, list_response, DefaultOrder, ListResponse};
use crate::AppState;

const MAX_NAME_LEN: usize = 255;
/// Longest grace `expire` may give (Svix: 72 hours).
const MAX_EXPIRE_SECS: i64 = 259_200;

/// `EnvironmentModelOut`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentOut {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub env_type: String,
    pub region: &'static str,
    pub created_at: String,
    pub updated_at: String,
    /// Extension: where this organisation's webhooks may go, narrowing the
    /// server's policy.
    pub destination_policy: OrgPolicy,
    /// Extension: its payloads and response bodies are sealed at rest.
    pub encrypt_payloads: bool,
}

impl From<Organization> for EnvironmentOut {
    fn from(o: Organization) -> Self {
        EnvironmentOut {
            id: o.id,
            name: o.name,
            env_type: o.env_type,
            destination_policy: o.policy,
            encrypt_payloads: o.encrypt_payloads,
            region: "self-hosted",
            created_at: format_millis(o.created_at),
            updated_at: format_millis(o.updated_at),
        }
    }
}

/// `EnvironmentModelIn` (and `EnvironmentModelUpdate`, without `type`).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentIn {
    pub name: String,
    #[serde(default, rename = "type")]
    pub env_type: Option<String>,
    /// Extension: see [`EnvironmentOut::destination_policy`].
    #[serde(default)]
    pub destination_policy: Option<OrgPolicy>,
    /// Extension: see [`EnvironmentOut::encrypt_payloads`].
    #[serde(default)]
    pub encrypt_payloads: Option<bool>,
}

impl EnvironmentIn {
    fn validate(&self, type_required: bool) -> ApiResult<()> {
        if self.name.trim().is_empty() || self.name.len() > MAX_NAME_LEN {
            return Err(ApiError::body_field("name", format!("name must be 1 to {MAX_NAME_LEN} characters")));
        }
        if self.encrypt_payloads == Some(true) && hookd_store::crypt::keyring().is_none() {
            return Err(ApiError::body_field(
                "encryptPayloads",
                "sealing payloads needs an encryption key (--encryption-key)",
            ));
        }
        if let Some(p) = &self.destination_policy {
            p.validate().map_err(|e| ApiError::body_field("destinationPolicy", e))?;
        }
        match self.env_type.as_deref() {
            None if type_required => Err(ApiError::body_field("type", "type is `development` or `production`")),
            None | Some("development" | "production") => Ok(()),
            Some(_) => Err(ApiError::body_field("type", "type is `development` or `production`")),
        }
    }
}

pub async fn list_environments(
    State(state): State<AppState>,
    _auth: ServerAuth,
    uri: OriginalUri,
) -> ApiResult<Json<ListResponse<EnvironmentOut>>> {
    let page = pagination::page(&QueryParams::parse(uri.query()), DefaultOrder::Ascending)?;
    let rows = state.resources.list_orgs(&page).await?;
    Ok(Json(list_response(&page, rows, |o| o.id.clone(), EnvironmentOut::from)))
}

pub async fn create_environment(
    State(state): State<AppState>,
    _auth: ServerAuth,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Json<EnvironmentOut>)> {
    let input: EnvironmentIn = parse_json(&body)?;
    input.validate(true)?;
    let t = now();
    let org = Organization {
        id: new_id(IdPrefix::Organization),
        name: input.name,
        env_type: input.env_type.unwrap_or_else(|| "development".into()),
        policy: input.destination_policy.unwrap_or_default(),
        encrypt_payloads: input.encrypt_payloads.unwrap_or(false),
        created_at: t,
        updated_at: t,
    };
    state.resources.insert_org(org.clone()).await?;
    Ok((StatusCode::CREATED, Json(org.into())))
}

/// The organisation `env_id` if the caller may see it: a server admin any, an
/// organisation token its own; anything else is not found.
async fn visible_org(state: &AppState, auth: &Auth, env_id: &str) -> ApiResult<Organization> {
    let allowed = auth.app_id.is_none()
        && match auth.role {
            TokenRole::Server => true,
            TokenRole::Admin | TokenRole::ReadOnly => auth.org_id == env_id,
            TokenRole::Portal => false,
        };
    if !allowed {
        return Err(ApiError::NotFound);
    }
    Ok(state.resources.get_org(env_id).await?)
}

pub async fn get_environment(
    State(state): State<AppState>,
    auth: Auth,
    Path(env_id): Path<String>,
) -> ApiResult<Json<EnvironmentOut>> {
    Ok(Json(visible_org(&state, &auth, &env_id).await?.into()))
}

/// Refuses (403) a change to an organisation by anyone but a server admin,
/// once the organisation is known to be visible (so a foreign one is 404).
fn server_only(auth: &Auth) -> ApiResult<()> {
    if !auth.is_server_admin() {
        return Err(ApiError::Forbidden("this needs a server admin token (`hookd token create` without --org)".into()));
    }
    Ok(())
}

pub async fn update_environment(
    State(state): State<AppState>,
    auth: Auth,
    Path(env_id): Path<String>,
    RawBody(body): RawBody,
) -> ApiResult<Json<EnvironmentOut>> {
    let mut org = visible_org(&state, &auth, &env_id).await?;
    server_only(&auth)?;
    let input: EnvironmentIn = parse_json(&body)?;
    input.validate(false)?;
    org.name = input.name;
    if let Some(t) = input.env_type {
        org.env_type = t;
    }
    if let Some(p) = input.destination_policy {
        org.policy = p;
    }
    if let Some(e) = input.encrypt_payloads {
        org.encrypt_payloads = e;
    }
    org.updated_at = now();
    state.resources.update_org(org.clone()).await?;
    Ok(Json(org.into()))
}

/// Deletes the organisation and everything in it. The default organisation
/// (the server admin's own) cannot be deleted.
pub async fn delete_environment(
    State(state): State<AppState>,
    auth: Auth,
    Path(env_id): Path<String>,
) -> ApiResult<StatusCode> {
    let org = visible_org(&state, &auth, &env_id).await?;
    server_only(&auth)?;
    if org.id == state.org_id {
        return Err(ApiError::Conflict {
            detail: "the default organisation cannot be deleted".into(),
            existing_id: None,
        });
    }
    state.resources.delete_org(&org.id).await?;
    state.deliveries.operational().forget(&org.id);
    state.tokens.clear();
    Ok(StatusCode::NO_CONTENT)
}

/// `ApiTokenIn`, `ApiTokenUpdate` and `ApiTokenPatch`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiTokenIn {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
}

impl ApiTokenIn {
    fn name(&self) -> ApiResult<Option<String>> {
        match &self.name {
            Some(n) if n.len() > MAX_NAME_LEN => {
                Err(ApiError::body_field("name", format!("name is at most {MAX_NAME_LEN} characters")))
            }
            other => Ok(other.clone()),
        }
    }

    /// The role the scopes ask for: `["admin"]` (the default) or `["read-only"]`.
    fn role(&self) -> ApiResult<Option<TokenRole>> {
        let Some(scopes) = &self.scopes else { return Ok(None) };
        match scopes.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
            ["admin"] => Ok(Some(TokenRole::Admin)),
            ["read-only"] => Ok(Some(TokenRole::ReadOnly)),
            _ => Err(ApiError::body_field(
                "scopes",
                "scopes is [\"admin\"] (everything in the organisation) or [\"read-only\"] (reads only)",
            )),
        }
    }
}

/// `ApiTokenOut` (with the token, once) and `ApiTokenCensoredOut`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiTokenOut {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub censored_token: Option<String>,
    pub name: Option<String>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub scopes: Vec<&'static str>,
}

impl ApiTokenOut {
    fn censored(t: ApiToken) -> Self {
        ApiTokenOut {
            censored_token: Some(format!("sk_****{}", t.tail.as_deref().unwrap_or(""))),
            token: None,
            id: t.id,
            name: t.name,
            created_at: format_millis(t.created_at),
            expires_at: t.expires_at.map(format_millis),
            scopes: vec![t.role.as_str()],
        }
    }
}

/// A new organisation token. Also what `hookd token create` stores.
pub fn new_token(org_id: &str, role: TokenRole, name: Option<String>) -> (String, ApiToken) {
    let token = generate_token("sk_");
    let row = ApiToken {
        id: new_id(IdPrefix::Token),
        org_id: org_id.to_string(),
        token_hash: hash_token(&token),
        app_id: None,
        created_at: now(),
        expires_at: None,
        name,
        role,
        capabilities: None,
        session_id: None,
        tail: Some(token[token.len() - 4..].to_string()),
    };
    (token, row)
}

/// The token `key_id` of organisation `env_id`, if the caller may see it.
async fn visible_token(state: &AppState, auth: &Auth, env_id: &str, key_id: &str) -> ApiResult<ApiToken> {
    let org = visible_org(state, auth, env_id).await?;
    match state.resources.get_token(key_id).await {
        Ok(t) if t.org_id == org.id && t.role != TokenRole::Portal => Ok(t),
        Ok(_) | Err(hookd_store::StoreError::NotFound) => Err(ApiError::NotFound),
        Err(e) => Err(e.into()),
    }
}

/// Refuses a change to a server admin's token by anyone but a server admin.
fn may_change(auth: &Auth, t: &ApiToken) -> ApiResult<()> {
    if t.role == TokenRole::Server && !auth.is_server_admin() {
        return Err(ApiError::Forbidden("only a server admin may change a server admin's token".into()));
    }
    Ok(())
}

pub async fn list_tokens(
    State(state): State<AppState>,
    auth: Auth,
    Path(env_id): Path<String>,
    uri: OriginalUri,
) -> ApiResult<Json<ListResponse<ApiTokenOut>>> {
    let org = visible_org(&state, &auth, &env_id).await?;
    let page = pagination::page(&QueryParams::parse(uri.query()), DefaultOrder::Ascending)?;
    let rows = state.resources.list_tokens(Some(&org.id), &page).await?;
    Ok(Json(list_response(&page, rows, |t| t.id.clone(), ApiTokenOut::censored)))
}

pub async fn create_token(
    State(state): State<AppState>,
    auth: Auth,
    Path(env_id): Path<String>,
    RawBody(body): RawBody,
) -> ApiResult<Json<ApiTokenOut>> {
    let org = visible_org(&state, &auth, &env_id).await?;
    let input: ApiTokenIn = parse_json(&body)?;
    let (token, row) = new_token(&org.id, input.role()?.unwrap_or(TokenRole::Admin), input.name()?);
    state.resources.insert_token(row.clone()).await?;
    let mut out = ApiTokenOut::censored(row);
    out.censored_token = None;
    out.token = Some(token);
    Ok(Json(out))
}

pub async fn get_token(
    State(state): State<AppState>,
    auth: Auth,
    Path((env_id, key_id)): Path<(String, String)>,
) -> ApiResult<Json<ApiTokenOut>> {
    Ok(Json(ApiTokenOut::censored(visible_token(&state, &auth, &env_id, &key_id).await?)))
}

/// PUT (`ApiTokenUpdate`: the name) and PATCH (`ApiTokenPatch`: name and scopes).
pub async fn update_token(
    State(state): State<AppState>,
    auth: Auth,
    Path((env_id, key_id)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> ApiResult<Json<ApiTokenOut>> {
    let mut t = visible_token(&state, &auth, &env_id, &key_id).await?;
    may_change(&auth, &t)?;
    let input: ApiTokenIn = parse_json(&body)?;
    if input.name.is_some() {
        t.name = input.name()?;
    }
    if let Some(role) = input.role()? {
        if t.role == TokenRole::Server {
            return Err(ApiError::body_field("scopes", "a server admin's token keeps its scope"));
        }
        t.role = role;
    }
    state.resources.update_token(t.clone()).await?;
    state.tokens.clear();
    Ok(Json(ApiTokenOut::censored(t)))
}

/// `ApiTokenExpireIn`.
#[derive(Deserialize, Default)]
pub struct ApiTokenExpireIn {
    #[serde(default)]
    pub expiry: Option<i64>,
}

/// The token stops working in `expiry` seconds (default: now). Other nodes may
/// accept it for up to 10 s more (their token cache).
pub async fn expire_token(
    State(state): State<AppState>,
    auth: Auth,
    Path((env_id, key_id)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> ApiResult<StatusCode> {
    let mut t = visible_token(&state, &auth, &env_id, &key_id).await?;
    may_change(&auth, &t)?;
    let input: ApiTokenExpireIn = crate::extract::parse_json_or_default(&body)?;
    let expiry = input.expiry.unwrap_or(0);
    if !(0..=MAX_EXPIRE_SECS).contains(&expiry) {
        return Err(ApiError::body_field("expiry", format!("expiry is 0 to {MAX_EXPIRE_SECS} seconds")));
    }
    let at = now() + expiry * 1000;
    t.expires_at = Some(t.expires_at.map_or(at, |e| e.min(at)));
    state.resources.update_token(t).await?;
    state.tokens.clear();
    Ok(StatusCode::NO_CONTENT)
}
