//! `/ingest/api/v1/source/{source_id}/endpoint`: where a source's verified
//! requests are forwarded. They are the endpoints of the source's application,
//! so each route is the ordinary endpoint route run against it; responses are
//! supersets of Svix's `IngestEndpoint…` shapes (an `eventTypes` field, as on
//! any endpoint, filters on the event type taken from the provider's request).

use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;

use super::sources;
use crate::auth::{AppAuth, OrgAuth};
use crate::error::ApiResult;
use crate::extract::RawBody;
use crate::pagination::ListResponse;
use crate::v1::endpoint::{crud, headers, secret};
use crate::wire::{EndpointHeadersOut, EndpointOut};
use crate::AppState;

async fn source_auth(state: &AppState, auth: &OrgAuth, source_id: &str) -> ApiResult<AppAuth> {
    let src = sources::load(state, auth, source_id).await?;
    let app = state.resources.get_app(&auth.org_id, &src.app_id).await?;
    Ok(AppAuth { auth: auth.as_auth(), app })
}

fn path(auth: &AppAuth, endpoint_id: String) -> Path<(String, String)> {
    Path((auth.app.id.clone(), endpoint_id))
}

pub async fn list(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path(source_id): Path<String>,
    uri: OriginalUri,
) -> ApiResult<Json<ListResponse<EndpointOut>>> {
    let app = source_auth(&state, &auth, &source_id).await?;
    crud::list(State(state), app, uri).await
}

pub async fn create(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path(source_id): Path<String>,
    uri: OriginalUri,
    headers: HeaderMap,
    body: RawBody,
) -> ApiResult<(StatusCode, Json<EndpointOut>)> {
    let app = source_auth(&state, &auth, &source_id).await?;
    crud::create(State(state), app, uri, headers, body).await
}

pub async fn get(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path((source_id, endpoint_id)): Path<(String, String)>,
) -> ApiResult<Json<EndpointOut>> {
    let app = source_auth(&state, &auth, &source_id).await?;
    let p = path(&app, endpoint_id);
    crud::get(State(state), app, p).await
}

/// Answers 200 with the endpoint (Svix's `IngestEndpointUpsertIn` replaces it).
pub async fn upsert(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path((source_id, endpoint_id)): Path<(String, String)>,
    body: RawBody,
) -> ApiResult<(StatusCode, Json<EndpointOut>)> {
    let app = source_auth(&state, &auth, &source_id).await?;
    let p = path(&app, endpoint_id);
    crud::upsert(State(state), app, p, body).await
}

pub async fn delete(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path((source_id, endpoint_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let app = source_auth(&state, &auth, &source_id).await?;
    let p = path(&app, endpoint_id);
    crud::delete(State(state), app, p).await
}

pub async fn get_secret(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path((source_id, endpoint_id)): Path<(String, String)>,
) -> ApiResult<Json<secret::EndpointSecretOut>> {
    let app = source_auth(&state, &auth, &source_id).await?;
    let p = path(&app, endpoint_id);
    secret::get(State(state), app, p).await
}

/// Answers 204, as Svix does for ingest endpoints.
pub async fn rotate_secret(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path((source_id, endpoint_id)): Path<(String, String)>,
    uri: OriginalUri,
    headers: HeaderMap,
    body: RawBody,
) -> ApiResult<StatusCode> {
    let app = source_auth(&state, &auth, &source_id).await?;
    let p = path(&app, endpoint_id);
    let _rotated = secret::rotate(State(state), app, p, uri, headers, body).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn get_headers(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path((source_id, endpoint_id)): Path<(String, String)>,
) -> ApiResult<Json<EndpointHeadersOut>> {
    let app = source_auth(&state, &auth, &source_id).await?;
    let p = path(&app, endpoint_id);
    headers::get(State(state), app, p).await
}

pub async fn update_headers(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path((source_id, endpoint_id)): Path<(String, String)>,
    body: RawBody,
) -> ApiResult<StatusCode> {
    let app = source_auth(&state, &auth, &source_id).await?;
    let p = path(&app, endpoint_id);
    headers::update(State(state), app, p, body).await
}
