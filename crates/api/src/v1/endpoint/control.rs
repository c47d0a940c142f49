//! `GET …/endpoint/{id}/rate-limit-status`: whether the receiver has asked to be
//! held back (429, 502, 503, 504, `Retry-After`), as the node delivering to it
//! last reported.

use axum::extract::{Path, State};
use axum::Json;
use hookd_core::timefmt::{format_millis, now_millis};
use serde::Serialize;

use super::load_endpoint;
use crate::auth::AppAuth;
use crate::error::ApiResult;
use crate::AppState;

/// `EndpointThrottleRateStatusOut`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ThrottleStatusOut {
    /// `Ok` or `RateLimited`.
    pub status: &'static str,
    pub throttled_since: Option<String>,
    /// Extension: when the hold ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throttled_until: Option<String>,
}

pub async fn rate_limit_status(
    State(state): State<AppState>,
    auth: AppAuth,
    Path((_, endpoint_id)): Path<(String, String)>,
) -> ApiResult<Json<ThrottleStatusOut>> {
    let ep = load_endpoint(&state, &auth, &endpoint_id).await?;
    let now = now_millis();
    let held = ep.health.as_ref().and_then(|h| h.throttled_until.filter(|u| *u > now).map(|u| (h.throttled_since, u)));
    Ok(Json(match held {
        Some((since, until)) => ThrottleStatusOut {
            status: "RateLimited",
            throttled_since: since.map(format_millis),
            throttled_until: Some(format_millis(until)),
        },
        None => ThrottleStatusOut { status: "Ok", throttled_since: None, throttled_until: None },
    }))
}
