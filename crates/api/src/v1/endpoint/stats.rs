//! `GET …/endpoint/{ep}/stats`: deliveries to the endpoint by state.

use axum::extract::{OriginalUri, Path, State};
use axum::Json;
use serde::Serialize;

use super::load_endpoint;
use crate::auth::AppAuth;
use crate::error::ApiResult;
use crate::extract::QueryParams;
use crate::AppState;

#[derive(Serialize)]
pub struct EndpointStatsOut {
    pub success: u64,
    pub pending: u64,
    pub sending: u64,
    pub fail: u64,
    pub canceled: u64,
}

pub async fn get(
    State(state): State<AppState>,
    auth: AppAuth,
    Path((_, endpoint_id)): Path<(String, String)>,
    uri: OriginalUri,
) -> ApiResult<Json<EndpointStatsOut>> {
    let q = QueryParams::parse(uri.query());
    let since = q.datetime("since")?.unwrap_or(0);
    let until = q.datetime("until")?.unwrap_or(i64::MAX);
    let ep = load_endpoint(&state, &auth, &endpoint_id).await?;
    let s = state.resources.endpoint_stats(auth.org_id(), &ep.id, since, until).await?;
    Ok(Json(EndpointStatsOut {
        success: s.success,
        pending: s.pending,
        sending: s.sending,
        fail: s.fail,
        canceled: s.canceled,
    }))
}
