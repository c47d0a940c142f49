//! MCP tokens (Svix's `…/mcp-token` routes): what an MCP client (an AI
//! assistant) connects to hookd's MCP server with, at `POST /mcp` or through
//! `hookd mcp`. An application's token
//! (`/api/v1/auth/app/{app_id}/mcp-token`) sees that application only, as a
//! portal token does; a dashboard token (`/api/v1/auth/dashboard/mcp-token`)
//! sees the organisation. Either reads, and unless made `readOnly` (a hookd
//! extension) also resends, recovers and sends examples; nothing else (see
//! `auth::mcp`). Tokens are stored hashed, always expire, are listed censored
//! and revoked by deleting them. The audit layer records both changes.

use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::Json;
use hookd_core::id::{new_id, IdPrefix};
use hookd_core::timefmt::format_millis;
use hookd_store::McpToken;
use serde::{Deserialize, Serialize};

use super::{load_app, now};
use crate::auth::{generate_token, hash_token, OrgAuth};
use crate::error::{ApiError, ApiResult};
use crate::extract::{parse_json_or_default, QueryParams, RawBody};
use crate::pagination::{self, list_response, DefaultOrder, ListResponse};
use crate::AppState;

/// What every MCP token starts with: only such a token is looked up among them.
pub const MCP_TOKEN_PREFIX: &str = "mcp_";
/// A token lasts this long when `expiry` is left out.
pub const DEFAULT_EXPIRY_SECS: u64 = 30 * 86_400;
/// At most a year.
pub const MAX_EXPIRY_SECS: u64 = 365 * 86_400;

/// `CreateMcpTokenIn`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateMcpTokenIn {
    /// Seconds the token is valid for.
    #[serde(default)]
    pub expiry: Option<u64>,
    /// Extension: the token reads only (no resend, recover or test event).
    #[serde(default)]
    pub read_only: Option<bool>,
}

/// `CreateMcpTokenOut`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateMcpTokenOut {
    pub token: String,
    /// Names the MCP server in a client's configuration (`<slug>-webhooks`).
    pub slug: String,
}

/// `McpTokenOut`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct McpTokenOut {
    pub id: String,
    pub censored_token: String,
    pub created_at: String,
    pub expires_at: String,
    /// Extension: see [`CreateMcpTokenIn::read_only`].
    pub read_only: bool,
}

impl From<McpToken> for McpTokenOut {
    fn from(t: McpToken) -> Self {
        McpTokenOut {
            censored_token: format!("{MCP_TOKEN_PREFIX}****{}", t.tail),
            id: t.id,
            created_at: format_millis(t.created_at),
            expires_at: format_millis(t.expires_at),
            read_only: t.read_only,
        }
    }
}

/// Lowercase letters, digits and single dashes, from `name`; `hookd` when
/// nothing of it is left.
pub fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
        if out.len() >= 40 {
            break;
        }
    }
    let out = out.trim_end_matches('-');
    if out.is_empty() {
        "hookd".into()
    } else {
        out.to_string()
    }
}

/// The slug of the portal's display name, else of the organisation's name.
async fn org_slug(state: &AppState, org_id: &str) -> ApiResult<String> {
    let settings = super::settings::load(state, org_id).await?;
    let name = match settings.display_name.filter(|n| !n.trim().is_empty()) {
        Some(n) => n,
        None => state.resources.get_org(org_id).await?.name,
    };
    Ok(slug(&name))
}

async fn create(
    state: &AppState,
    org_id: &str,
    app_id: Option<String>,
    body: &[u8],
) -> ApiResult<Json<CreateMcpTokenOut>> {
    let input: CreateMcpTokenIn = parse_json_or_default(body)?;
    let expiry = input.expiry.unwrap_or(DEFAULT_EXPIRY_SECS);
    if !(1..=MAX_EXPIRY_SECS).contains(&expiry) {
        return Err(ApiError::body_field("expiry", format!("expiry is 1 to {MAX_EXPIRY_SECS} seconds")));
    }
    let token = generate_token(MCP_TOKEN_PREFIX);
    let t = now();
    state
        .resources
        .insert_mcp_token(McpToken {
            id: new_id(IdPrefix::McpToken),
            org_id: org_id.to_string(),
            app_id,
            token_hash: hash_token(&token),
            tail: token[token.len() - 4..].to_string(),
            read_only: input.read_only.unwrap_or(false),
            created_at: t,
            expires_at: t + expiry as i64 * 1000,
        })
        .await?;
    Ok(Json(CreateMcpTokenOut { token, slug: org_slug(state, org_id).await? }))
}

async fn list(
    state: &AppState,
    org_id: &str,
    app_id: Option<&str>,
    uri: &OriginalUri,
) -> ApiResult<Json<ListResponse<McpTokenOut>>> {
    let page = pagination::page(&QueryParams::parse(uri.query()), DefaultOrder::Ascending)?;
    let rows = state.resources.list_mcp_tokens(org_id, app_id, &page).await?;
    Ok(Json(list_response(&page, rows, |t| t.id.clone(), McpTokenOut::from)))
}

/// `GET /api/v1/auth/app/{app_id}/mcp-token`.
pub async fn list_for_app(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path(app_id): Path<String>,
    uri: OriginalUri,
) -> ApiResult<Json<ListResponse<McpTokenOut>>> {
    let app = load_app(&state, &auth.as_auth(), &app_id).await?;
    list(&state, &auth.org_id, Some(&app.id), &uri).await
}

/// `POST /api/v1/auth/app/{app_id}/mcp-token`. Not idempotent: the token is
/// stored hashed, so a repeat cannot show it again and makes a new one.
pub async fn create_for_app(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path(app_id): Path<String>,
    RawBody(body): RawBody,
) -> ApiResult<Json<CreateMcpTokenOut>> {
    let app = load_app(&state, &auth.as_auth(), &app_id).await?;
    create(&state, &auth.org_id, Some(app.id), &body).await
}

/// `DELETE /api/v1/auth/app/{app_id}/mcp-token/{token_id}`: the token stops
/// working at once.
pub async fn revoke_for_app(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path((app_id, token_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let app = load_app(&state, &auth.as_auth(), &app_id).await?;
    state.resources.delete_mcp_token(&auth.org_id, Some(&app.id), &token_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/auth/dashboard/mcp-token`.
pub async fn list_for_dashboard(
    State(state): State<AppState>,
    auth: OrgAuth,
    uri: OriginalUri,
) -> ApiResult<Json<ListResponse<McpTokenOut>>> {
    list(&state, &auth.org_id, None, &uri).await
}

/// `POST /api/v1/auth/dashboard/mcp-token`.
pub async fn create_for_dashboard(
    State(state): State<AppState>,
    auth: OrgAuth,
    RawBody(body): RawBody,
) -> ApiResult<Json<CreateMcpTokenOut>> {
    create(&state, &auth.org_id, None, &body).await
}

/// `DELETE /api/v1/auth/dashboard/mcp-token/{token_id}`.
pub async fn revoke_for_dashboard(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path(token_id): Path<String>,
) -> ApiResult<StatusCode> {
    state.resources.delete_mcp_token(&auth.org_id, None, &token_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::slug;

    #[test]
    fn slugs_are_url_safe() {
        for (name, want) in [
            ("Acme Inc.", "acme-inc"),
            ("  Ünïcode  Shop ", "n-code-shop"),
            ("default", "default"),
            ("---", "hookd"),
            ("", "hookd"),
        ] {
            assert_eq!(slug(name), want, "{name:?}");
        }
        assert!(slug(&"x".repeat(100)).len() <= 40);
    }
}
