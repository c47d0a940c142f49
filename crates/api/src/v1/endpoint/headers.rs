//! The endpoint's custom request headers.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;

use hookd_core::headers::is_sensitive;
use hookd_store::EndpointChange;

use super::{change_endpoint, load_endpoint, validate_headers};
use crate::auth::AppAuth;
use crate::error::ApiResult;
use crate::extract::{parse_json, RawBody};
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

pub async fn get(
    State(state): State<AppState>,
    auth: AppAuth,
    Path((_, endpoint_id)): Path<(String, String)>,
) -> ApiResult<Json<EndpointHeadersOut>> {
    let ep = load_endpoint(&state, &auth, &endpoint_id).await?;
    let (sensitive, shown): (Vec<_>, Vec<_>) = ep.headers.into_iter().partition(|(k, _)| is_sensitive(k));
    Ok(Json(EndpointHeadersOut {
        headers: shown.into_iter().collect(),
        sensitive: sensitive.into_iter().map(|(k, _)| k).collect(),
    }))
}

pub async fn update(
    State(state): State<AppState>,
    auth: AppAuth,
    Path((_, endpoint_id)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> ApiResult<StatusCode> {
    let input: EndpointHeadersIn = parse_json(&body)?;
    validate_headers(&input.headers)?;
    let ep = load_endpoint(&state, &auth, &endpoint_id).await?;
    let change = EndpointChange::Headers { set: input.headers, remove: Vec::new(), replace: true };
    change_endpoint(&state, &auth, &ep.id, change, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets and removes only the headers named: applied to the headers as they are
/// in the store, so two patches of different headers both take effect.
pub async fn patch(
    State(state): State<AppState>,
    auth: AppAuth,
    Path((_, endpoint_id)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> ApiResult<StatusCode> {
    let input: EndpointHeadersPatchIn = parse_json(&body)?;
    let mut set = BTreeMap::new();
    let mut remove = input.delete_headers;
    for (name, value) in input.headers {
        match value {
            Some(v) => {
                set.insert(name, v);
            }
            None => remove.push(name),
        }
    }
    validate_headers(&set)?;
    let ep = load_endpoint(&state, &auth, &endpoint_id).await?;
    change_endpoint(&state, &auth, &ep.id, EndpointChange::Headers { set, remove, replace: false }, None).await?;
    Ok(StatusCode::NO_CONTENT)
}
