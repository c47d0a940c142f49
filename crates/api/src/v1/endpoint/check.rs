//! Endpoint checks (a hookd extension): `POST …/endpoint/{ep}/check` checks the
//! endpoint now — its host name resolves to addresses the destination policy
//! allows, its TLS certificate verifies for it (with when it expires), and a
//! signed test event (`hookd.endpoint.check`, sent as a delivery would be) gets
//! a 2xx — and stores the result; `GET` answers the last one. An endpoint is
//! also checked (DNS and TLS) in the background when it is made or its URL
//! changes, and its certificate again every `--cert-check-interval`.

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::Value;

use super::load_endpoint;
use crate::auth::AppAuth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{parse_json_or_default, RawBody};
use crate::AppState;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CheckIn {
    /// Send a signed test event too (default: yes).
    #[serde(default = "yes")]
    pub send_test_event: bool,
}

impl Default for CheckIn {
    fn default() -> Self {
        CheckIn { send_test_event: true }
    }
}

fn yes() -> bool {
    true
}

pub async fn run(
    State(state): State<AppState>,
    auth: AppAuth,
    Path((_, endpoint_id)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> ApiResult<Json<Value>> {
    let ep = load_endpoint(&state, &auth, &endpoint_id).await?;
    let input: CheckIn = parse_json_or_default(&body)?;
    let check = state.deliveries.check_endpoint(&ep, input.send_test_event).await?;
    Ok(Json(serde_json::to_value(check).map_err(|e| ApiError::Internal(e.to_string()))?))
}

pub async fn get(
    State(state): State<AppState>,
    auth: AppAuth,
    Path((_, endpoint_id)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let ep = load_endpoint(&state, &auth, &endpoint_id).await?;
    let row = state.resources.get_endpoint_check(auth.org_id(), &ep.id).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(serde_json::from_str(&row.result).map_err(|e| ApiError::Internal(e.to_string()))?))
}

/// `GET …/endpoint/{ep}/health-history`: changes of its health state, newest
/// first (`limit`, at most 250; default 50).
pub async fn health_history(
    State(state): State<AppState>,
    auth: AppAuth,
    Path((_, endpoint_id)): Path<(String, String)>,
    uri: axum::extract::OriginalUri,
) -> ApiResult<Json<Value>> {
    let ep = load_endpoint(&state, &auth, &endpoint_id).await?;
    let limit = match crate::extract::QueryParams::parse(uri.query()).int("limit")? {
        None => 50,
        Some(n) if (1..=250).contains(&n) => n as usize,
        Some(_) => return Err(ApiError::query_field("limit", "1 to 250")),
    };
    let events = state.resources.list_endpoint_health_events(auth.org_id(), &ep.id, limit).await?;
    let data: Vec<Value> = events
        .into_iter()
        .map(|e| {
            serde_json::json!({
                "state": e.state,
                "reason": e.reason,
                "timestamp": hookd_core::timefmt::format_millis(e.at),
            })
        })
        .collect();
    let (now_state, reason) =
        hookd_store::health_state(ep.disabled, ep.health.as_ref(), hookd_core::timefmt::now_millis());
    Ok(Json(serde_json::json!({"state": now_state, "reason": reason, "data": data})))
}
