//! Endpoints of an application: `/api/v1/app/{app}/endpoint`, with their
//! secret, headers, recovery and stats sub-resources.

pub mod auth;
pub mod check;
pub mod control;
pub mod crud;
pub mod headers;
pub mod recovery;
pub mod secret;
pub mod stats;
pub mod transformation;

use std::collections::BTreeMap;

use hookd_store::{Endpoint, EndpointChange, EndpointUpdated, IdempotencyRecord};

use crate::auth::AppAuth;
use crate::error::{ApiError, ApiResult};
use crate::AppState;

/// The endpoint named in the path (by id or uid) of the caller's application.
pub async fn load_endpoint(state: &AppState, auth: &AppAuth, endpoint_id: &str) -> ApiResult<Endpoint> {
    Ok(state.resources.get_endpoint(auth.org_id(), &auth.app.id, endpoint_id).await?)
}

/// Applies a change to the endpoint in the store and tells the pipeline.
pub async fn change_endpoint(
    state: &AppState,
    auth: &AppAuth,
    endpoint_id: &str,
    change: EndpointChange,
    idem: Option<IdempotencyRecord>,
) -> hookd_store::Result<EndpointUpdated> {
    let updated = state.resources.update_endpoint(auth.org_id(), &auth.app.id, endpoint_id, change, idem).await?;
    state.deliveries.endpoint_changed(&updated);
    endpoint_event(state, "endpoint.updated", &updated.endpoint);
    match (updated.was_disabled, updated.endpoint.disabled) {
        (false, true) => {
            let extra = serde_json::json!({"trigger": "manual", "failSince": null});
            let (ops, ep) = (state.deliveries.operational().clone(), updated.endpoint.clone());
            tokio::spawn(async move { ops.emit_for_endpoint("endpoint.disabled", &ep, extra).await });
        }
        (true, false) => endpoint_event(state, "endpoint.enabled", &updated.endpoint),
        _ => {}
    }
    Ok(updated)
}

/// Emits an operational event about the endpoint (in the background: it never
/// delays or fails the request).
pub fn endpoint_event(state: &AppState, event_type: &'static str, ep: &Endpoint) {
    let (ops, ep) = (state.deliveries.operational().clone(), ep.clone());
    tokio::spawn(async move { ops.emit_for_endpoint(event_type, &ep, serde_json::json!({})).await });
}

/// Custom headers: bounded in number and size, valid names, no CR/LF in values,
/// and none of the headers hookd sets itself.
pub fn validate_headers(headers: &BTreeMap<String, String>) -> ApiResult<()> {
    if headers.len() > hookd_core::validate::MAX_HEADERS {
        return Err(ApiError::body_field("headers", format!("at most {} headers", hookd_core::validate::MAX_HEADERS)));
    }
    for (name, value) in headers {
        hookd_core::validate::custom_header(name, value).map_err(|e| ApiError::body_field("headers", e))?;
    }
    Ok(())
}
