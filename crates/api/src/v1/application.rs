//! Applications: `/api/v1/app`.

use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use hookd_core::id::{looks_like_id, new_id, IdPrefix};
use hookd_store::{Application, Metadata, StoreError};
use serde::Deserialize;

use super::{now, validate_metadata, validate_uid};
use crate::auth::{AppAuth, OrgAuth};
use crate::error::{ApiError, ApiResult};
use crate::extract::{parse_json, QueryParams, RawBody};
use crate::idempotency::{self, Begin};
use crate::pagination::{self, list_response, DefaultOrder, ListResponse};
use crate::wire::{patch_field, ApplicationOut};
use crate::AppState;

#[derive(Debug, Deserialize, Default, Clone)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationIn {
    pub name: String,
    #[serde(default)]
    pub uid: Option<String>,
    #[serde(default, alias = "rateLimit")]
    pub throttle_rate: Option<u32>,
    #[serde(default)]
    pub metadata: Option<Metadata>,
}

impl ApplicationIn {
    pub fn validate(&self) -> ApiResult<()> {
        if self.name.trim().is_empty() || self.name.len() > 256 {
            return Err(ApiError::body_field("name", "name must be 1 to 256 characters"));
        }
        validate_uid("uid", self.uid.as_deref())?;
        validate_metadata(self.metadata.as_ref().unwrap_or(&Metadata::new()))
    }

    pub fn into_new(self, org_id: &str) -> Application {
        let t = now();
        Application {
            org_id: org_id.to_string(),
            id: new_id(IdPrefix::Application),
            uid: self.uid,
            name: self.name,
            rate_limit: self.throttle_rate,
            metadata: self.metadata.unwrap_or_default(),
            created_at: t,
            updated_at: t,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationPatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "patch_field")]
    pub uid: Option<Option<String>>,
    #[serde(default, alias = "rateLimit", deserialize_with = "patch_field")]
    pub throttle_rate: Option<Option<u32>>,
    #[serde(default)]
    pub metadata: Option<Metadata>,
}

pub async fn list(
    State(state): State<AppState>,
    auth: OrgAuth,
    uri: OriginalUri,
) -> ApiResult<Json<ListResponse<ApplicationOut>>> {
    let q = QueryParams::parse(uri.query());
    let page = pagination::page(&q, DefaultOrder::Ascending)?;
    let rows = state.resources.list_apps(&auth.org_id, &page).await?;
    Ok(Json(list_response(&page, rows, |a| a.id.clone(), ApplicationOut::from)))
}

pub async fn create(
    State(state): State<AppState>,
    auth: OrgAuth,
    uri: OriginalUri,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Json<ApplicationOut>)> {
    let input: ApplicationIn = parse_json(&body)?;
    input.validate()?;
    let q = QueryParams::parse(uri.query());
    if q.bool("get_if_exists", false)? {
        if let Some(uid) = &input.uid {
            match state.resources.get_app(&auth.org_id, uid).await {
                Ok(app) => return Ok((StatusCode::OK, Json(app.into()))),
                Err(StoreError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    let ticket = match idempotency::begin(&state, &auth.org_id, uri.path(), &headers, &body).await? {
        Begin::Replay(prev) => return replay(&state, &auth.org_id, prev).await,
        Begin::Fresh(t) => t,
    };
    let app = input.into_new(&auth.org_id);
    let record = idempotency::record(&ticket, 201, Some(app.id.clone()));
    match state.resources.create_app(app, record).await {
        Ok(app) => Ok((StatusCode::CREATED, Json(app.into()))),
        Err(StoreError::IdempotencyReplay(prev)) => {
            replay(&state, &auth.org_id, idempotency::replay_after_race(&ticket, prev)?).await
        }
        Err(e) => Err(e.into()),
    }
}

async fn replay(
    state: &AppState,
    org_id: &str,
    prev: hookd_store::IdempotencyOutcome,
) -> ApiResult<(StatusCode, Json<ApplicationOut>)> {
    let id = prev.resource_id.unwrap_or_default();
    let app = state.resources.get_app(org_id, &id).await?;
    Ok((StatusCode::from_u16(prev.status).unwrap_or(StatusCode::OK), Json(app.into())))
}

pub async fn get(auth: AppAuth) -> ApiResult<Json<ApplicationOut>> {
    Ok(Json(auth.app.into()))
}

/// PUT: replaces the application, or creates it (with the path as its uid).
pub async fn upsert(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path(app_id): Path<String>,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Json<ApplicationOut>)> {
    let mut input: ApplicationIn = parse_json(&body)?;
    input.validate()?;
    match state.resources.get_app(&auth.org_id, &app_id).await {
        Ok(mut app) => {
            app.name = input.name;
            app.uid = input.uid;
            app.rate_limit = input.throttle_rate;
            app.metadata = input.metadata.unwrap_or_default();
            app.updated_at = now();
            Ok((StatusCode::OK, Json(state.resources.update_app(app).await?.into())))
        }
        Err(StoreError::NotFound) => {
            if input.uid.is_none() && !looks_like_id(IdPrefix::Application, &app_id) {
                validate_uid("uid", Some(&app_id))?;
                input.uid = Some(app_id);
            }
            let app = state.resources.create_app(input.into_new(&auth.org_id), None).await?;
            Ok((StatusCode::CREATED, Json(app.into())))
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn patch(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path(app_id): Path<String>,
    RawBody(body): RawBody,
) -> ApiResult<Json<ApplicationOut>> {
    // Like PUT and DELETE (an organisation token): an app portal token may not
    // rename its application or lift the throttle the operator set on it.
    let patch: ApplicationPatch = parse_json(&body)?;
    let mut app = state.resources.get_app(&auth.org_id, &app_id).await?;
    if let Some(name) = patch.name {
        app.name = name;
    }
    if let Some(uid) = patch.uid {
        app.uid = uid;
    }
    if let Some(rate) = patch.throttle_rate {
        app.rate_limit = rate;
    }
    if let Some(m) = patch.metadata {
        app.metadata = m;
    }
    let check = ApplicationIn {
        name: app.name.clone(),
        uid: app.uid.clone(),
        throttle_rate: app.rate_limit,
        metadata: Some(app.metadata.clone()),
    };
    check.validate()?;
    app.updated_at = now();
    Ok(Json(state.resources.update_app(app).await?.into()))
}

pub async fn delete(State(state): State<AppState>, auth: OrgAuth, Path(app_id): Path<String>) -> ApiResult<StatusCode> {
    let app = state.resources.get_app(&auth.org_id, &app_id).await?;
    state.resources.delete_app(&auth.org_id, &app.id).await?;
    Ok(StatusCode::NO_CONTENT)
}
