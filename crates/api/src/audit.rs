//! The audit trail's API side: a layer on every route that records each change
//! made through the API — who (the token's id), what (method and route), on
//! which path, the answer, from which address — once the change has answered
//! successfully, and every failed authentication (at most 10 a second). Message
//! sends are deliveries, not changes, and are not recorded; nor are a polling
//! endpoint's commits. Entries are chained in the store (`hookd_store::audit`);
//! `GET /api/v1/audit` lists an organisation's; `hookd audit verify` checks
//! the chain.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, MatchedPath, OriginalUri, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use axum::Json;
use hookd_core::timefmt::{format_millis, now_millis};
use hookd_store::{AuditEntry, AuditEvent};
use serde::Serialize;

use crate::auth::OrgAuth;
use crate::error::{ApiError, ApiResult};
use crate::extract::QueryParams;
use crate::AppState;

/// Who acted, as authentication found: filled in by the `Auth` extractor.
#[derive(Debug, Clone)]
pub struct Actor {
    pub org_id: String,
    /// The token's id (`tok_…`), or `bootstrap` for `--admin-token`.
    pub token: String,
}

/// Where the `Auth` extractor leaves the actor for this layer.
#[derive(Clone, Default)]
pub struct ActorSlot(pub Arc<Mutex<Option<Actor>>>);

/// Failed authentications recorded per second at most, in all.
const UNAUTHENTICATED_PER_SECOND: u32 = 10;

/// The route of message sends: not changes, and the hot path, so the layer
/// does as little as it can for them.
const SEND_ROUTE: &str = "/api/v1/app/{app_id}/msg";
/// A polling endpoint's commits: a consumer's progress, not a change, and as
/// frequent as its reads.
const COMMIT_ROUTE: &str = "/api/v1/app/{app_id}/polling-endpoint/{sink_id}/consumer/{consumer_id}/commit";

pub async fn layer(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().cloned();
    let is_send = method == Method::POST
        && route.as_ref().is_some_and(|r| r.as_str() == SEND_ROUTE || r.as_str() == COMMIT_ROUTE);
    let changes = matches!(method, Method::POST | Method::PUT | Method::PATCH | Method::DELETE) && !is_send;
    // Only a change needs to know who made it; anything may fail to authenticate.
    let slot = changes.then(ActorSlot::default);
    if let Some(slot) = &slot {
        req.extensions_mut().insert(slot.clone());
    }
    let uri = req.uri().clone();
    let address = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let response = next.run(req).await;

    let status = response.status();
    let actor = slot.and_then(|s| s.0.lock().unwrap_or_else(|e| e.into_inner()).take());
    let (org_id, actor) = match actor {
        Some(actor) if status.is_success() => (actor.org_id, actor.token),
        None if status == axum::http::StatusCode::UNAUTHORIZED && failed_auth_recorded(&state, address) => {
            (state.org_id.clone(), "unauthenticated".to_string())
        }
        _ => return response,
    };
    let event = AuditEvent {
        org_id,
        at: now_millis(),
        actor,
        action: format!("{method} {}", route.as_ref().map_or("", |r| r.as_str())),
        target: uri.path().to_string(),
        status: i32::from(status.as_u16()),
        address: address.map(|a| a.to_string()),
    };
    // Recorded before the answer leaves: the change is committed, and so is its
    // record. In a task of its own, so a client that goes away cannot cancel it.
    let resources = state.resources.clone();
    let appended = tokio::spawn(async move { resources.append_audit(vec![event]).await }).await;
    match appended {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "recording an audit entry failed"),
        Err(e) => tracing::error!(error = %e, "recording an audit entry failed"),
    }
    response
}

/// Whether this failed authentication is recorded: one a second per address,
/// ten a second in all, so a flood of bad tokens neither fills the trail nor
/// hides other addresses' attempts.
fn failed_auth_recorded(state: &AppState, address: Option<std::net::IpAddr>) -> bool {
    let per_address = format!("audit:unauthenticated:{}", address.map(|a| a.to_string()).unwrap_or_default());
    state.quotas.take_all(&[(per_address.as_str(), 1), ("audit:unauthenticated", UNAUTHENTICATED_PER_SECOND)]).is_ok()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntryOut {
    pub seq: i64,
    pub timestamp: String,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub status: i32,
    pub address: Option<String>,
    pub hash: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditListOut {
    pub data: Vec<AuditEntryOut>,
    pub iterator: Option<String>,
    pub done: bool,
}

impl From<AuditEntry> for AuditEntryOut {
    fn from(e: AuditEntry) -> Self {
        AuditEntryOut {
            seq: e.seq,
            timestamp: format_millis(e.event.at),
            actor: e.event.actor,
            action: e.event.action,
            target: e.event.target,
            status: e.event.status,
            address: e.event.address,
            hash: e.hash,
        }
    }
}

/// `GET /api/v1/audit`: the organisation's entries, newest first; `limit`
/// (1–250, default 50) and `iterator` (the last page's) page through them.
pub async fn list(State(state): State<AppState>, auth: OrgAuth, uri: OriginalUri) -> ApiResult<Json<AuditListOut>> {
    let q = QueryParams::parse(uri.query());
    let limit = match q.int("limit")? {
        None => 50,
        Some(n) if (1..=250).contains(&n) => n as usize,
        Some(_) => return Err(ApiError::query_field("limit", "limit must be 1 to 250")),
    };
    let before = match q.get("iterator") {
        None => None,
        Some(it) => {
            Some(it.parse::<i64>().map_err(|_| ApiError::query_field("iterator", "not an iterator of this list"))?)
        }
    };
    let mut rows = state.resources.list_audit(&auth.org_id, before, limit + 1).await?;
    let done = rows.len() <= limit;
    rows.truncate(limit);
    let iterator = rows.last().map(|e| e.seq.to_string());
    Ok(Json(AuditListOut { data: rows.into_iter().map(AuditEntryOut::from).collect(), iterator, done }))
}
