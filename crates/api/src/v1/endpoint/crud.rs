//! Create, read, update and delete endpoints.

use std::collections::BTreeMap;

use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use hookd_core::id::{looks_like_id, new_id, IdPrefix};
use hookd_core::validate::{self, EndpointUrl};
use hookd_core::Secret;
use hookd_store::{Endpoint, Metadata, StoreError};
use serde::Deserialize;

use super::{load_endpoint, validate_headers};
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{parse_json, QueryParams, RawBody};
use crate::idempotency::{self, Begin};
use crate::pagination::{self, list_response, DefaultOrder, ListResponse};
use crate::v1::{load_app, now, validate_metadata, validate_uid};
use crate::wire::{patch_field, EndpointOut};
use crate::AppState;

const MAX_EVENT_TYPES: usize = 256;

/// `EndpointIn` (create) and `EndpointUpsertIn` (PUT, which has no secret or headers).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointIn {
    pub url: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub version: Option<i32>,
    #[serde(default)]
    pub uid: Option<String>,
    #[serde(default)]
    pub disabled: Option<bool>,
    #[serde(default, alias = "filterTypes")]
    pub event_types: Option<Vec<String>>,
    #[serde(default)]
    pub channels: Option<Vec<String>>,
    #[serde(default, alias = "rateLimit")]
    pub throttle_rate: Option<u32>,
    #[serde(default)]
    pub metadata: Option<Metadata>,
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub headers: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointPatch {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub version: Option<i32>,
    #[serde(default, deserialize_with = "patch_field")]
    pub uid: Option<Option<String>>,
    #[serde(default)]
    pub disabled: Option<bool>,
    #[serde(default, alias = "filterTypes", deserialize_with = "patch_field")]
    pub event_types: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "patch_field")]
    pub channels: Option<Option<Vec<String>>>,
    #[serde(default, alias = "rateLimit", deserialize_with = "patch_field")]
    pub throttle_rate: Option<Option<u32>>,
    #[serde(default)]
    pub metadata: Option<Metadata>,
}

/// Checks every field of an endpoint about to be stored.
pub fn validate_endpoint(state: &AppState, ep: &Endpoint) -> ApiResult<()> {
    EndpointUrl::parse(&ep.url, state.config.allow_private_networks).map_err(|e| ApiError::body_field("url", e))?;
    if ep.description.len() > validate::MAX_DESCRIPTION_LEN {
        return Err(ApiError::body_field("description", "description is too long"));
    }
    validate_uid("uid", ep.uid.as_deref())?;
    if let Some(types) = &ep.event_types {
        if types.len() > MAX_EVENT_TYPES {
            return Err(ApiError::body_field("filterTypes", format!("at most {MAX_EVENT_TYPES} event types")));
        }
        for t in types {
            validate::event_type_name(t).map_err(|e| ApiError::body_field("filterTypes", e))?;
        }
    }
    if let Some(channels) = &ep.channels {
        if channels.len() > validate::MAX_CHANNELS {
            return Err(ApiError::body_field("channels", format!("at most {} channels", validate::MAX_CHANNELS)));
        }
        for c in channels {
            validate::channel(c).map_err(|e| ApiError::body_field("channels", e))?;
        }
    }
    validate_metadata(&ep.metadata)?;
    validate_headers(&ep.headers)
}

/// An empty filter list means no filter.
fn non_empty(v: Option<Vec<String>>) -> Option<Vec<String>> {
    v.filter(|v| !v.is_empty())
}

fn new_endpoint(input: EndpointIn, org_id: &str, app_id: &str) -> ApiResult<Endpoint> {
    let secret = match input.secret.as_deref() {
        Some(s) => Secret::parse(s).map_err(|e| ApiError::body_field("secret", e.to_string()))?,
        None => Secret::generate(),
    };
    let t = now();
    Ok(Endpoint {
        org_id: org_id.to_string(),
        app_id: app_id.to_string(),
        id: new_id(IdPrefix::Endpoint),
        uid: input.uid,
        url: input.url,
        description: input.description.unwrap_or_default(),
        version: input.version.unwrap_or(1),
        disabled: input.disabled.unwrap_or(false),
        event_types: non_empty(input.event_types),
        channels: non_empty(input.channels),
        rate_limit: input.throttle_rate,
        metadata: input.metadata.unwrap_or_default(),
        headers: input.headers.unwrap_or_default(),
        secret,
        retired_secrets: Vec::new(),
        created_at: t,
        updated_at: t,
    })
}

pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    Path(app_id): Path<String>,
    uri: OriginalUri,
) -> ApiResult<Json<ListResponse<EndpointOut>>> {
    let app = load_app(&state, &auth, &app_id).await?;
    let page = pagination::page(&QueryParams::parse(uri.query()), DefaultOrder::Ascending)?;
    let rows = state.store.list_endpoints(&auth.org_id, &app.id, &page).await?;
    Ok(Json(list_response(&page, rows, |e| e.id.clone(), |e| EndpointOut::from(&e))))
}

pub async fn create(
    State(state): State<AppState>,
    auth: Auth,
    Path(app_id): Path<String>,
    uri: OriginalUri,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Json<EndpointOut>)> {
    let app = load_app(&state, &auth, &app_id).await?;
    let input: EndpointIn = parse_json(&body)?;
    let ep = new_endpoint(input, &auth.org_id, &app.id)?;
    validate_endpoint(&state, &ep)?;
    let ticket = match idempotency::begin(&state, &auth, uri.path(), &headers, &body).await? {
        Begin::Replay(prev) => return replay(&state, &auth, &app.id, prev).await,
        Begin::Fresh(t) => t,
    };
    let record = idempotency::record(&ticket, 201, Some(ep.id.clone()));
    match state.store.create_endpoint(ep, record).await {
        Ok(ep) => Ok((StatusCode::CREATED, Json(EndpointOut::from(&ep)))),
        Err(StoreError::IdempotencyReplay(prev)) => {
            replay(&state, &auth, &app.id, idempotency::replay_after_race(&ticket, prev)?).await
        }
        Err(e) => Err(e.into()),
    }
}

async fn replay(
    state: &AppState,
    auth: &Auth,
    app_id: &str,
    prev: hookd_store::IdempotencyOutcome,
) -> ApiResult<(StatusCode, Json<EndpointOut>)> {
    let ep = state.store.get_endpoint(&auth.org_id, app_id, &prev.resource_id.unwrap_or_default()).await?;
    Ok((StatusCode::from_u16(prev.status).unwrap_or(StatusCode::OK), Json(EndpointOut::from(&ep))))
}

pub async fn get(
    State(state): State<AppState>,
    auth: Auth,
    Path((app_id, endpoint_id)): Path<(String, String)>,
) -> ApiResult<Json<EndpointOut>> {
    let (_, ep) = load_endpoint(&state, &auth, &app_id, &endpoint_id).await?;
    Ok(Json(EndpointOut::from(&ep)))
}

/// PUT: replaces the endpoint's settings (not its secret or headers), or creates it.
pub async fn upsert(
    State(state): State<AppState>,
    auth: Auth,
    Path((app_id, endpoint_id)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Json<EndpointOut>)> {
    let app = load_app(&state, &auth, &app_id).await?;
    let mut input: EndpointIn = parse_json(&body)?;
    match state.store.get_endpoint(&auth.org_id, &app.id, &endpoint_id).await {
        Ok(mut ep) => {
            ep.url = input.url;
            ep.description = input.description.unwrap_or_default();
            ep.version = input.version.unwrap_or(ep.version);
            ep.uid = input.uid;
            ep.disabled = input.disabled.unwrap_or(false);
            ep.event_types = non_empty(input.event_types);
            ep.channels = non_empty(input.channels);
            ep.rate_limit = input.throttle_rate;
            ep.metadata = input.metadata.unwrap_or_default();
            ep.updated_at = now();
            validate_endpoint(&state, &ep)?;
            Ok((StatusCode::OK, Json(EndpointOut::from(&state.store.update_endpoint(ep, None).await?))))
        }
        Err(StoreError::NotFound) => {
            if input.uid.is_none() && !looks_like_id(IdPrefix::Endpoint, &endpoint_id) {
                input.uid = Some(endpoint_id);
            }
            let ep = new_endpoint(input, &auth.org_id, &app.id)?;
            validate_endpoint(&state, &ep)?;
            Ok((StatusCode::CREATED, Json(EndpointOut::from(&state.store.create_endpoint(ep, None).await?))))
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn patch(
    State(state): State<AppState>,
    auth: Auth,
    Path((app_id, endpoint_id)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> ApiResult<Json<EndpointOut>> {
    let p: EndpointPatch = parse_json(&body)?;
    let (_, mut ep) = load_endpoint(&state, &auth, &app_id, &endpoint_id).await?;
    if let Some(url) = p.url {
        ep.url = url;
    }
    if let Some(d) = p.description {
        ep.description = d;
    }
    if let Some(v) = p.version {
        ep.version = v;
    }
    if let Some(uid) = p.uid {
        ep.uid = uid;
    }
    if let Some(d) = p.disabled {
        ep.disabled = d;
    }
    if let Some(t) = p.event_types {
        ep.event_types = non_empty(t);
    }
    if let Some(c) = p.channels {
        ep.channels = non_empty(c);
    }
    if let Some(r) = p.throttle_rate {
        ep.rate_limit = r;
    }
    if let Some(m) = p.metadata {
        ep.metadata = m;
    }
    ep.updated_at = now();
    validate_endpoint(&state, &ep)?;
    Ok(Json(EndpointOut::from(&state.store.update_endpoint(ep, None).await?)))
}

pub async fn delete(
    State(state): State<AppState>,
    auth: Auth,
    Path((app_id, endpoint_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (app, ep) = load_endpoint(&state, &auth, &app_id, &endpoint_id).await?;
    state.store.delete_endpoint(&auth.org_id, &app.id, &ep.id).await?;
    Ok(StatusCode::NO_CONTENT)
}
