//! SLAs (a hookd extension; organisation tokens): `GET/POST /api/v1/sla`,
//! `GET/PATCH/DELETE /api/v1/sla/{sla_id}`, `GET /api/v1/sla/{sla_id}/history`.
//!
//! An SLA names an application (or one of its endpoints, some event types), a
//! target success ratio and optionally an accept-to-delivery latency percentile,
//! over a sliding window. Delivering nodes judge it from the statistics rollups
//! every `--sla-interval`; a breach and a recovery are operational webhooks
//! (`sla.breached`, `sla.recovered`) and entries of its history.

use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::Json;
use hookd_core::id::{new_id, IdPrefix};
use hookd_core::timefmt::format_millis;
use hookd_store::{Sla, SlaEvent, SlaFigures, SlaSpec, SlaState};
use serde::{Deserialize, Serialize};

use super::now;
use crate::auth::OrgAuth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{parse_json, QueryParams, RawBody};
use crate::pagination::{self, list_response, DefaultOrder, ListResponse};
use crate::wire::patch_field;
use crate::AppState;

const MAX_WINDOW_SECONDS: u64 = 30 * 86_400;
const MAX_EVENT_TYPES: usize = 50;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SlaIn {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub app_id: String,
    #[serde(default)]
    pub endpoint_id: Option<String>,
    #[serde(default)]
    pub event_types: Vec<String>,
    pub target_success_ratio: f64,
    #[serde(default)]
    pub latency_percentile: Option<f64>,
    #[serde(default)]
    pub latency_target_ms: Option<u64>,
    #[serde(default = "default_window")]
    pub window_seconds: u64,
    #[serde(default = "default_min_attempts")]
    pub min_attempts: u64,
}

fn default_window() -> u64 {
    3_600
}

fn default_min_attempts() -> u64 {
    10
}

/// Fields to change; `null` clears an optional one. The application stays.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SlaPatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "patch_field")]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "patch_field")]
    pub endpoint_id: Option<Option<String>>,
    #[serde(default)]
    pub event_types: Option<Vec<String>>,
    #[serde(default)]
    pub target_success_ratio: Option<f64>,
    #[serde(default, deserialize_with = "patch_field")]
    pub latency_percentile: Option<Option<f64>>,
    #[serde(default, deserialize_with = "patch_field")]
    pub latency_target_ms: Option<Option<u64>>,
    #[serde(default)]
    pub window_seconds: Option<u64>,
    #[serde(default)]
    pub min_attempts: Option<u64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SlaOut {
    pub id: String,
    pub app_id: String,
    #[serde(flatten)]
    pub spec: SlaSpec,
    pub state: SlaState,
    pub state_since: Option<String>,
    pub figures: Option<SlaFigures>,
    pub evaluated_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Sla> for SlaOut {
    fn from(s: Sla) -> Self {
        SlaOut {
            id: s.id,
            app_id: s.app_id,
            spec: s.spec,
            state: s.state,
            state_since: s.state_since.map(format_millis),
            figures: s.figures,
            evaluated_at: s.evaluated_at.map(format_millis),
            created_at: format_millis(s.created_at),
            updated_at: format_millis(s.updated_at),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SlaEventOut {
    pub id: String,
    pub sla_id: String,
    pub state: SlaState,
    pub figures: SlaFigures,
    pub timestamp: String,
}

impl From<SlaEvent> for SlaEventOut {
    fn from(e: SlaEvent) -> Self {
        SlaEventOut { id: e.id, sla_id: e.sla_id, state: e.state, figures: e.figures, timestamp: format_millis(e.at) }
    }
}

/// Checks a spec; the endpoint, when named, must be the application's (its id
/// or uid becomes its id).
async fn checked(state: &AppState, org_id: &str, app_id: &str, mut spec: SlaSpec) -> ApiResult<SlaSpec> {
    if spec.name.trim().is_empty() || spec.name.len() > 256 {
        return Err(ApiError::body_field("name", "1 to 256 characters"));
    }
    if spec.description.as_ref().is_some_and(|d| d.len() > hookd_core::validate::MAX_DESCRIPTION_LEN) {
        return Err(ApiError::body_field("description", "description is too long"));
    }
    if !(spec.target_success_ratio > 0.0 && spec.target_success_ratio <= 1.0) {
        return Err(ApiError::body_field("targetSuccessRatio", "a ratio above 0 and at most 1, e.g. 0.999"));
    }
    match (spec.latency_percentile, spec.latency_target_ms) {
        (None, None) => {}
        (Some(p), Some(ms)) => {
            if !(p > 0.0 && p <= 100.0) {
                return Err(ApiError::body_field("latencyPercentile", "a percentile above 0 and at most 100, e.g. 99"));
            }
            if ms == 0 || ms > MAX_WINDOW_SECONDS * 1000 {
                return Err(ApiError::body_field("latencyTargetMs", "1 ms to 30 days"));
            }
        }
        (Some(_), None) => return Err(ApiError::body_field("latencyTargetMs", "required with latencyPercentile")),
        (None, Some(_)) => return Err(ApiError::body_field("latencyPercentile", "required with latencyTargetMs")),
    }
    if !(60..=MAX_WINDOW_SECONDS).contains(&spec.window_seconds) {
        return Err(ApiError::body_field("windowSeconds", "60 seconds to 30 days"));
    }
    if spec.min_attempts > 1_000_000_000 {
        return Err(ApiError::body_field("minAttempts", "at most 1,000,000,000"));
    }
    if spec.event_types.len() > MAX_EVENT_TYPES {
        return Err(ApiError::body_field("eventTypes", format!("at most {MAX_EVENT_TYPES} event types")));
    }
    for t in &spec.event_types {
        hookd_core::validate::event_type_name(t).map_err(|e| ApiError::body_field("eventTypes", e))?;
    }
    if let Some(ep) = &spec.endpoint_id {
        let found = state.resources.get_endpoint(org_id, app_id, ep).await;
        match found {
            Ok(ep) => spec.endpoint_id = Some(ep.id),
            Err(hookd_store::StoreError::NotFound) => {
                return Err(ApiError::body_field("endpointId", "no such endpoint in this application"))
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(spec)
}

pub async fn list(
    State(state): State<AppState>,
    auth: OrgAuth,
    uri: OriginalUri,
) -> ApiResult<Json<ListResponse<SlaOut>>> {
    let page = pagination::page(&QueryParams::parse(uri.query()), DefaultOrder::Ascending)?;
    let rows = state.resources.list_slas(&auth.org_id, &page).await?;
    Ok(Json(list_response(&page, rows, |s| s.id.clone(), SlaOut::from)))
}

pub async fn create(
    State(state): State<AppState>,
    auth: OrgAuth,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Json<SlaOut>)> {
    let input: SlaIn = parse_json(&body)?;
    let app = match state.resources.get_app(&auth.org_id, &input.app_id).await {
        Ok(app) => app,
        Err(hookd_store::StoreError::NotFound) => return Err(ApiError::body_field("appId", "no such application")),
        Err(e) => return Err(e.into()),
    };
    let spec = SlaSpec {
        name: input.name,
        description: input.description,
        endpoint_id: input.endpoint_id,
        event_types: input.event_types,
        target_success_ratio: input.target_success_ratio,
        latency_percentile: input.latency_percentile,
        latency_target_ms: input.latency_target_ms,
        window_seconds: input.window_seconds,
        min_attempts: input.min_attempts,
    };
    let spec = checked(&state, &auth.org_id, &app.id, spec).await?;
    let t = now();
    let sla = Sla {
        org_id: auth.org_id.clone(),
        id: new_id(IdPrefix::Sla),
        app_id: app.id,
        spec,
        state: SlaState::Unknown,
        state_since: None,
        figures: None,
        evaluated_at: None,
        created_at: t,
        updated_at: t,
    };
    let sla = state.resources.create_sla(sla).await?;
    Ok((StatusCode::CREATED, Json(sla.into())))
}

pub async fn get(State(state): State<AppState>, auth: OrgAuth, Path(id): Path<String>) -> ApiResult<Json<SlaOut>> {
    Ok(Json(state.resources.get_sla(&auth.org_id, &id).await?.into()))
}

pub async fn patch(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> ApiResult<Json<SlaOut>> {
    let sla = state.resources.get_sla(&auth.org_id, &id).await?;
    let p: SlaPatch = parse_json(&body)?;
    let mut spec = sla.spec;
    if let Some(v) = p.name {
        spec.name = v;
    }
    if let Some(v) = p.description {
        spec.description = v;
    }
    if let Some(v) = p.endpoint_id {
        spec.endpoint_id = v;
    }
    if let Some(v) = p.event_types {
        spec.event_types = v;
    }
    if let Some(v) = p.target_success_ratio {
        spec.target_success_ratio = v;
    }
    if let Some(v) = p.latency_percentile {
        spec.latency_percentile = v;
    }
    if let Some(v) = p.latency_target_ms {
        spec.latency_target_ms = v;
    }
    if let Some(v) = p.window_seconds {
        spec.window_seconds = v;
    }
    if let Some(v) = p.min_attempts {
        spec.min_attempts = v;
    }
    let spec = checked(&state, &auth.org_id, &sla.app_id, spec).await?;
    Ok(Json(state.resources.update_sla(&auth.org_id, &sla.id, spec).await?.into()))
}

pub async fn delete(State(state): State<AppState>, auth: OrgAuth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    state.resources.delete_sla(&auth.org_id, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn history(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path(id): Path<String>,
    uri: OriginalUri,
) -> ApiResult<Json<ListResponse<SlaEventOut>>> {
    let sla = state.resources.get_sla(&auth.org_id, &id).await?;
    let page = pagination::page(&QueryParams::parse(uri.query()), DefaultOrder::Descending)?;
    let rows = state.resources.list_sla_events(&auth.org_id, &sla.id, &page).await?;
    Ok(Json(list_response(&page, rows, |e| e.id.clone(), SlaEventOut::from)))
}
