//! The endpoint's signing secret and its rotation. A rotated-out secret keeps
//! signing (alongside the new one) for its grace period, so receivers can switch
//! without dropping a request.

use axum::extract::{OriginalUri, Path, State};
use axum::http::HeaderMap;
use axum::Json;
use hookd_core::signing::KeyType;
use hookd_core::Secret;
use hookd_store::{EndpointChange, StoreError};
use serde::{Deserialize, Serialize};

use super::{change_endpoint, load_endpoint};
use crate::auth::AppAuth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{parse_json_or_default, RawBody};
use crate::idempotency::{self, Begin};
use crate::AppState;

const DEFAULT_GRACE_SECS: i64 = 24 * 3600;
const MAX_GRACE_SECS: i64 = 7 * 24 * 3600;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointSecretOut {
    pub key: String,
    /// Extension: the public key of an Ed25519 secret (`whpk_…`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
}

impl EndpointSecretOut {
    fn of(secret: &Secret) -> Self {
        EndpointSecretOut { key: secret.expose(), public_key: secret.public_key() }
    }
}

/// Reads a `keyType` extension field: `hmac` or `ed25519`.
pub fn key_type(value: Option<&str>, field: &str) -> ApiResult<Option<KeyType>> {
    match value {
        None => Ok(None),
        Some("hmac") => Ok(Some(KeyType::Hmac)),
        Some("ed25519") => Ok(Some(KeyType::Ed25519)),
        Some(_) => Err(ApiError::body_field(field, "keyType is `hmac` (v1 signatures) or `ed25519` (v1a)")),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointSecretRotateIn {
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub grace_period_seconds: Option<i64>,
    /// Extension: the kind of secret generated when `key` is left out; the
    /// current secret's kind by default.
    #[serde(default)]
    pub key_type: Option<String>,
}

pub async fn get(
    State(state): State<AppState>,
    auth: AppAuth,
    Path((_, endpoint_id)): Path<(String, String)>,
) -> ApiResult<Json<EndpointSecretOut>> {
    let ep = load_endpoint(&state, &auth, &endpoint_id).await?;
    Ok(Json(EndpointSecretOut::of(&ep.secret)))
}

/// Answers 200 with the new secret (`EndpointSecretOut`), as the SDKs expect.
/// The rotation is applied to the row as it is in the store, so it never
/// undoes a concurrent edit, nor does an edit bring the old secret back.
pub async fn rotate(
    State(state): State<AppState>,
    auth: AppAuth,
    Path((_, endpoint_id)): Path<(String, String)>,
    uri: OriginalUri,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<Json<EndpointSecretOut>> {
    let input: EndpointSecretRotateIn = parse_json_or_default(&body)?;
    let ep = load_endpoint(&state, &auth, &endpoint_id).await?;
    let grace = input.grace_period_seconds.unwrap_or(DEFAULT_GRACE_SECS);
    if !(0..=MAX_GRACE_SECS).contains(&grace) {
        return Err(ApiError::body_field("gracePeriodSeconds", format!("must be between 0 and {MAX_GRACE_SECS}")));
    }
    let secret = match input.key.as_deref() {
        Some(k) => Secret::parse(k).map_err(|e| ApiError::body_field("key", e.to_string()))?,
        None => Secret::generate_of(key_type(input.key_type.as_deref(), "keyType")?.unwrap_or(ep.secret.key_type())),
    };
    let current = || async {
        let ep = load_endpoint(&state, &auth, &ep.id).await?;
        Ok(Json(EndpointSecretOut::of(&ep.secret)))
    };
    let ticket = match idempotency::begin(&state, auth.org_id(), uri.path(), &headers, &body).await? {
        // The response is the endpoint's current secret, read afresh.
        Begin::Replay(_) => return current().await,
        Begin::Fresh(t) => t,
    };
    let record = idempotency::record(&ticket, 200, Some(ep.id.clone()));
    let change = EndpointChange::RotateSecret { secret, grace_ms: grace * 1000 };
    match change_endpoint(&state, &auth, &ep.id, change, record).await {
        Ok(updated) => Ok(Json(EndpointSecretOut::of(&updated.endpoint.secret))),
        Err(StoreError::IdempotencyReplay(_)) => current().await,
        Err(e) => Err(e.into()),
    }
}
