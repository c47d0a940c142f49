//! The endpoint's signing secret and its rotation. A rotated-out secret keeps
//! signing (alongside the new one) for its grace period, so receivers can switch
//! without dropping a request.

use axum::extract::{OriginalUri, Path, State};
use axum::http::HeaderMap;
use axum::Json;
use hookd_core::Secret;
use hookd_store::{RetiredSecret, StoreError};
use serde::{Deserialize, Serialize};

use super::load_endpoint;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{parse_json_or_default, RawBody};
use crate::idempotency::{self, Begin};
use crate::v1::now;
use crate::AppState;

const DEFAULT_GRACE_SECS: i64 = 24 * 3600;
const MAX_GRACE_SECS: i64 = 7 * 24 * 3600;
/// Most retired secrets kept signing at once.
const MAX_RETIRED: usize = 10;

#[derive(Serialize)]
pub struct EndpointSecretOut {
    pub key: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointSecretRotateIn {
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub grace_period_seconds: Option<i64>,
}

pub async fn get(
    State(state): State<AppState>,
    auth: Auth,
    Path((app_id, endpoint_id)): Path<(String, String)>,
) -> ApiResult<Json<EndpointSecretOut>> {
    let (_, ep) = load_endpoint(&state, &auth, &app_id, &endpoint_id).await?;
    Ok(Json(EndpointSecretOut { key: ep.secret.expose() }))
}

/// Answers 200 with the new secret (`EndpointSecretOut`), as the SDKs expect.
pub async fn rotate(
    State(state): State<AppState>,
    auth: Auth,
    Path((app_id, endpoint_id)): Path<(String, String)>,
    uri: OriginalUri,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<Json<EndpointSecretOut>> {
    let input: EndpointSecretRotateIn = parse_json_or_default(&body)?;
    let (_, mut ep) = load_endpoint(&state, &auth, &app_id, &endpoint_id).await?;
    let grace = input.grace_period_seconds.unwrap_or(DEFAULT_GRACE_SECS);
    if !(0..=MAX_GRACE_SECS).contains(&grace) {
        return Err(ApiError::body_field("gracePeriodSeconds", format!("must be between 0 and {MAX_GRACE_SECS}")));
    }
    let new_secret = match input.key.as_deref() {
        Some(k) => Secret::parse(k).map_err(|e| ApiError::body_field("key", e.to_string()))?,
        None => Secret::generate(),
    };
    let ticket = match idempotency::begin(&state, &auth, uri.path(), &headers, &body).await? {
        // The response is the endpoint's current secret, read afresh.
        Begin::Replay(_) => return Ok(Json(EndpointSecretOut { key: ep.secret.expose() })),
        Begin::Fresh(t) => t,
    };
    let t = now();
    let old = std::mem::replace(&mut ep.secret, new_secret);
    ep.retired_secrets.retain(|r| r.expires_at > t);
    if grace > 0 {
        ep.retired_secrets.insert(0, RetiredSecret { secret: old, expires_at: t + grace * 1000 });
        ep.retired_secrets.truncate(MAX_RETIRED);
    }
    ep.updated_at = t;
    let record = idempotency::record(&ticket, 200, Some(ep.id.clone()));
    let (org, app, id) = (ep.org_id.clone(), ep.app_id.clone(), ep.id.clone());
    match state.store.update_endpoint(ep, record).await {
        Ok(ep) => Ok(Json(EndpointSecretOut { key: ep.secret.expose() })),
        Err(StoreError::IdempotencyReplay(_)) => {
            let ep = state.store.get_endpoint(&org, &app, &id).await?;
            Ok(Json(EndpointSecretOut { key: ep.secret.expose() }))
        }
        Err(e) => Err(e.into()),
    }
}
