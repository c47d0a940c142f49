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
