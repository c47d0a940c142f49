//! The endpoint's custom request headers.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;

use super::{load_endpoint, validate_headers};
use crate::auth::Auth;
use crate::error::ApiResult;
use crate::extract::{parse_json, RawBody};
use crate::v1::now;
use crate::wire::EndpointHeadersOut;
use crate::AppState;

#[derive(Debug, Deserialize)]
pub struct EndpointHeadersIn {
    pub headers: BTreeMap<String, String>,
}

/// `headers` are set; names in `deleteHeaders`, or given a `null` value, are removed.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointHeadersPatchIn {
    #[serde(default)]
    pub headers: BTreeMap<String, Option<String>>,
    #[serde(default)]
    pub delete_headers: Vec<String>,
}

/// Headers whose values are credentials: listed as sensitive, values not shown.
fn is_sensitive(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n == "authorization"
        || n == "cookie"
        || ["token", "secret", "key", "password", "auth"].iter().any(|w| n.contains(w))
}

pub async fn get(
    State(state): State<AppState>,
    auth: Auth,
    Path((app_id, endpoint_id)): Path<(String, String)>,
) -> ApiResult<Json<EndpointHeadersOut>> {
    let (_, ep) = load_endpoint(&state, &auth, &app_id, &endpoint_id).await?;
    let (sensitive, shown): (Vec<_>, Vec<_>) = ep.headers.into_iter().partition(|(k, _)| is_sensitive(k));
    Ok(Json(EndpointHeadersOut {
        headers: shown.into_iter().collect(),
        sensitive: sensitive.into_iter().map(|(k, _)| k).collect(),
    }))
}

pub async fn update(
    State(state): State<AppState>,
    auth: Auth,
    Path((app_id, endpoint_id)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> ApiResult<StatusCode> {
    let input: EndpointHeadersIn = parse_json(&body)?;
    validate_headers(&input.headers)?;
    let (_, mut ep) = load_endpoint(&state, &auth, &app_id, &endpoint_id).await?;
    ep.headers = input.headers;
    ep.updated_at = now();
    state.store.update_endpoint(ep, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn patch(
    State(state): State<AppState>,
    auth: Auth,
    Path((app_id, endpoint_id)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> ApiResult<StatusCode> {
    let input: EndpointHeadersPatchIn = parse_json(&body)?;
    let (_, mut ep) = load_endpoint(&state, &auth, &app_id, &endpoint_id).await?;
    for (name, value) in input.headers {
        match value {
            Some(v) => {
                ep.headers.insert(name, v);
            }
            None => {
                ep.headers.remove(&name);
            }
        }
    }
    for name in input.delete_headers {
        ep.headers.remove(&name);
    }
    validate_headers(&ep.headers)?;
    ep.updated_at = now();
    state.store.update_endpoint(ep, None).await?;
    Ok(StatusCode::NO_CONTENT)
}
