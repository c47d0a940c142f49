//! `/api/v1/operational-webhook/endpoint`: where an organisation receives
//! operational events about its own webhooks (see `hookd_delivery::operational`).
//! The endpoints belong to the organisation's operational application, so each
//! route is the ordinary endpoint route run against that application; the
//! responses are supersets of Svix's `OperationalWebhookEndpoint…` shapes.

use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use hookd_delivery::operational::{ops_app, ops_application, ops_org};
use hookd_store::StoreError;

use super::endpoint::{crud, headers, secret};
use crate::auth::{AppAuth, Auth, OrgAuth};
use crate::error::ApiResult;
use crate::extract::RawBody;
use crate::pagination::ListResponse;
use crate::wire::{EndpointHeadersOut, EndpointOut};
use crate::AppState;

/// The caller's operational application, created on first use when `create`.
async fn ops_auth(state: &AppState, auth: &OrgAuth, create: bool) -> ApiResult<AppAuth> {
    let org = ops_org(&auth.org_id);
    let app_id = ops_app(&auth.org_id);
    let app = match state.resources.get_app(&org, &app_id).await {
        Ok(app) => app,
        Err(StoreError::NotFound) if create => {
            match state.resources.create_app(ops_application(&auth.org_id), None).await {
                Ok(app) => app,
                // Created by a concurrent request.
                Err(StoreError::Conflict { .. }) => state.resources.get_app(&org, &app_id).await?,
                Err(e) => return Err(e.into()),
            }
        }
        // Nothing stored yet: lists are empty, lookups 404.
        Err(StoreError::NotFound) => ops_application(&auth.org_id),
        Err(e) => return Err(e.into()),
    };
    Ok(AppAuth { auth: Auth { org_id: org, ..auth.as_auth() }, app })
}

fn path(auth: &AppAuth, endpoint_id: String) -> Path<(String, String)> {
    Path((auth.app.id.clone(), endpoint_id))
}

pub async fn list(
    State(state): State<AppState>,
    auth: OrgAuth,
    uri: OriginalUri,
) -> ApiResult<Json<ListResponse<EndpointOut>>> {
    let ops = ops_auth(&state, &auth, false).await?;
    crud::list(State(state), ops, uri).await
}

pub async fn create(
    State(state): State<AppState>,
    auth: OrgAuth,
    uri: OriginalUri,
    headers: HeaderMap,
    body: RawBody,
) -> ApiResult<(StatusCode, Json<EndpointOut>)> {
    let ops = ops_auth(&state, &auth, true).await?;
    let out = crud::create(State(state.clone()), ops, uri, headers, body).await;
    state.deliveries.operational().forget(&auth.org_id);
    out
}

pub async fn get(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path(endpoint_id): Path<String>,
) -> ApiResult<Json<EndpointOut>> {
    let ops = ops_auth(&state, &auth, false).await?;
    let p = path(&ops, endpoint_id);
    crud::get(State(state), ops, p).await
}

pub async fn upsert(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path(endpoint_id): Path<String>,
    body: RawBody,
) -> ApiResult<(StatusCode, Json<EndpointOut>)> {
    let ops = ops_auth(&state, &auth, true).await?;
    let p = path(&ops, endpoint_id);
    let out = crud::upsert(State(state.clone()), ops, p, body).await;
    state.deliveries.operational().forget(&auth.org_id);
    out
}

pub async fn delete(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path(endpoint_id): Path<String>,
) -> ApiResult<StatusCode> {
    let ops = ops_auth(&state, &auth, false).await?;
    let p = path(&ops, endpoint_id);
    let out = crud::delete(State(state.clone()), ops, p).await;
    state.deliveries.operational().forget(&auth.org_id);
    out
}

pub async fn get_secret(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path(endpoint_id): Path<String>,
) -> ApiResult<Json<secret::EndpointSecretOut>> {
    let ops = ops_auth(&state, &auth, false).await?;
    let p = path(&ops, endpoint_id);
    secret::get(State(state), ops, p).await
}

/// Answers 204, as Svix does for operational endpoints.
pub async fn rotate_secret(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path(endpoint_id): Path<String>,
    uri: OriginalUri,
    headers: HeaderMap,
    body: RawBody,
) -> ApiResult<StatusCode> {
    let ops = ops_auth(&state, &auth, false).await?;
    let p = path(&ops, endpoint_id);
    let _rotated = secret::rotate(State(state), ops, p, uri, headers, body).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn get_headers(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path(endpoint_id): Path<String>,
) -> ApiResult<Json<EndpointHeadersOut>> {
    let ops = ops_auth(&state, &auth, false).await?;
    let p = path(&ops, endpoint_id);
    headers::get(State(state), ops, p).await
}

pub async fn update_headers(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path(endpoint_id): Path<String>,
    body: RawBody,
) -> ApiResult<StatusCode> {
    let ops = ops_auth(&state, &auth, false).await?;
    let p = path(&ops, endpoint_id);
    headers::update(State(state), ops, p, body).await
}
