//! Event types: `/api/v1/event-type`. Deleting archives; `?expunge=true` removes.

use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use hookd_store::{EventType, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::now;
use crate::auth::{Auth, OrgAuth};
use crate::error::{ApiError, ApiResult};
use crate::extract::{parse_json, QueryParams, RawBody};
use crate::idempotency::{self, Begin};
use crate::pagination::{self, list_response, DefaultOrder, ListResponse};
use crate::wire::{patch_field, DurationWire, EventTypeOut};
use crate::AppState;

const MAX_FEATURE_FLAGS: usize = 10;

/// The fields shared by create (`EventTypeIn`, with `name`) and PUT (`EventTypeUpsertIn`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventTypeIn {
    #[serde(default)]
    pub name: Option<String>,
    pub description: String,
    #[serde(default)]
    pub archived: Option<bool>,
    #[serde(default)]
    pub deprecated: Option<bool>,
    #[serde(default)]
    pub schemas: Option<Box<RawValue>>,
    #[serde(default)]
    pub feature_flags: Option<Vec<String>>,
    /// The older single-flag spelling.
    #[serde(default)]
    pub feature_flag: Option<String>,
    #[serde(default)]
    pub group_name: Option<String>,
    /// Messages must match the latest schema (a hookd extension).
    #[serde(default)]
    pub validate_payloads: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventTypePatch {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub archived: Option<bool>,
    #[serde(default)]
    pub deprecated: Option<bool>,
    #[serde(default, deserialize_with = "patch_field")]
    pub schemas: Option<Option<Box<RawValue>>>,
    #[serde(default, deserialize_with = "patch_field")]
    pub feature_flags: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "patch_field")]
    pub feature_flag: Option<Option<String>>,
    #[serde(default, deserialize_with = "patch_field")]
    pub group_name: Option<Option<String>>,
    #[serde(default)]
    pub validate_payloads: Option<bool>,
}

fn validate_name(name: &str) -> ApiResult<()> {
    hookd_core::validate::event_type_name(name).map_err(|e| ApiError::body_field("name", e))
}

/// Largest `schemas` object, in bytes.
pub const MAX_SCHEMAS_BYTES: usize = 256 * 1024;

/// `schemas` as stored: an object of JSON Schemas keyed by version number
/// (`{"1": {...}}`), each one usable (references resolve within it only).
fn schemas_text(schemas: Option<Box<RawValue>>) -> ApiResult<Option<String>> {
    let Some(raw) = schemas else { return Ok(None) };
    if raw.get().trim() == "null" {
        return Ok(None);
    }
    if raw.get().len() > MAX_SCHEMAS_BYTES {
        return Err(ApiError::body_field("schemas", format!("schemas are at most {MAX_SCHEMAS_BYTES} bytes")));
    }
    let Ok(serde_json::Value::Object(versions)) = serde_json::from_str::<serde_json::Value>(raw.get()) else {
        return Err(ApiError::body_field("schemas", "schemas must be an object keyed by version"));
    };
    for (version, schema) in &versions {
        let at = |msg: String| ApiError::invalid(&["body", "schemas", version], msg);
        if !version.parse::<u32>().is_ok_and(|v| v > 0) {
            return Err(at(format!("{version:?} is not a version: versions are numbers from 1")));
        }
        hookd_core::schema::Schema::compile(schema).map_err(|e| at(format!("not a usable JSON Schema: {e}")))?;
    }
    Ok(Some(raw.get().to_string()))
}

/// Validating payloads needs a schema to validate them against.
fn check_validation(et: &EventType) -> ApiResult<()> {
    if et.validate_payloads && et.schemas.as_deref().is_none_or(|s| s.trim() == "{}") {
        return Err(ApiError::body_field("validatePayloads", "validatePayloads needs a schema in schemas"));
    }
    Ok(())
}

fn flags(flags: Option<Vec<String>>, single: Option<String>) -> ApiResult<Option<Vec<String>>> {
    let flags = flags.or(single.map(|f| vec![f]));
    if let Some(f) = &flags {
        if f.len() > MAX_FEATURE_FLAGS || f.iter().any(|x| hookd_core::validate::uid(x).is_err()) {
            return Err(ApiError::body_field(
                "featureFlags",
                format!("at most {MAX_FEATURE_FLAGS} flags of letters, digits, '-', '_' and '.'"),
            ));
        }
    }
    Ok(flags)
}

fn validate_description(d: &str) -> ApiResult<()> {
    if d.len() > hookd_core::validate::MAX_DESCRIPTION_LEN {
        return Err(ApiError::body_field("description", "description is too long"));
    }
    Ok(())
}

impl EventTypeIn {
    fn into_event_type(self, org_id: &str, name: String) -> ApiResult<EventType> {
        validate_name(&name)?;
        validate_description(&self.description)?;
        let t = now();
        let et = EventType {
            org_id: org_id.to_string(),
            name,
            description: self.description,
            archived: self.archived.unwrap_or(false),
            deprecated: self.deprecated.unwrap_or(false),
            schemas: schemas_text(self.schemas)?,
            feature_flags: flags(self.feature_flags, self.feature_flag)?,
            group_name: self.group_name,
            created_at: t,
            updated_at: t,
            retry_schedule_ms: None,
            validate_payloads: self.validate_payloads.unwrap_or(false),
        };
        check_validation(&et)?;
        Ok(et)
    }
}

pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    uri: OriginalUri,
) -> ApiResult<Json<ListResponse<EventTypeOut>>> {
    let q = QueryParams::parse(uri.query());
    let page = pagination::page(&q, DefaultOrder::Ascending)?;
    let include_archived = q.bool("include_archived", false)?;
    let rows = state.resources.list_event_types(&auth.org_id, &page, include_archived).await?;
    Ok(Json(list_response(&page, rows, |e| e.name.clone(), EventTypeOut::from)))
}

pub async fn create(
    State(state): State<AppState>,
    auth: OrgAuth,
    uri: OriginalUri,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Json<EventTypeOut>)> {
    let mut input: EventTypeIn = parse_json(&body)?;
    let name = input.name.take().ok_or_else(|| ApiError::body_field("name", "field required"))?;
    let et = input.into_event_type(&auth.org_id, name)?;
    let _forget = state.schemas.forget_after(&auth.org_id, &et.name);
    let ticket = match idempotency::begin(&state, &auth.org_id, uri.path(), &headers, &body).await? {
        Begin::Replay(prev) => return replay(&state, &auth.org_id, prev).await,
        Begin::Fresh(t) => t,
    };
    // Creating an archived event type brings it back.
    match state.resources.get_event_type(&auth.org_id, &et.name).await {
        Ok(existing) if existing.archived => {
            let et = EventType { created_at: existing.created_at, ..et };
            return Ok((StatusCode::CREATED, Json(state.resources.update_event_type(et).await?.into())));
        }
        Ok(_) => {
            return Err(ApiError::Conflict {
                detail: "an event type with this name already exists".into(),
                existing_id: None,
            })
        }
        Err(StoreError::NotFound) => {}
        Err(e) => return Err(e.into()),
    }
    let record = idempotency::record(&ticket, 201, Some(et.name.clone()));
    match state.resources.create_event_type(et, record).await {
        Ok(et) => Ok((StatusCode::CREATED, Json(et.into()))),
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
) -> ApiResult<(StatusCode, Json<EventTypeOut>)> {
    let et = state.resources.get_event_type(org_id, &prev.resource_id.unwrap_or_default()).await?;
    Ok((StatusCode::from_u16(prev.status).unwrap_or(StatusCode::OK), Json(et.into())))
}

pub async fn get(State(state): State<AppState>, auth: Auth, Path(name): Path<String>) -> ApiResult<Json<EventTypeOut>> {
    Ok(Json(state.resources.get_event_type(&auth.org_id, &name).await?.into()))
}

pub async fn upsert(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path(name): Path<String>,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Json<EventTypeOut>)> {
    let input: EventTypeIn = parse_json(&body)?;
    // The SDKs' upsert does not know validatePayloads: leaving it out keeps it.
    let keep_validation = input.validate_payloads.is_none();
    let et = input.into_event_type(&auth.org_id, name)?;
    let _forget = state.schemas.forget_after(&auth.org_id, &et.name);
    match state.resources.get_event_type(&auth.org_id, &et.name).await {
        Ok(existing) => {
            let validate_payloads = match keep_validation {
                true => existing.validate_payloads,
                false => et.validate_payloads,
            };
            let et = EventType { created_at: existing.created_at, validate_payloads, ..et };
            check_validation(&et)?;
            Ok((StatusCode::OK, Json(state.resources.update_event_type(et).await?.into())))
        }
        Err(StoreError::NotFound) => {
            Ok((StatusCode::CREATED, Json(state.resources.create_event_type(et, None).await?.into())))
        }
        Err(e) => Err(e.into()),
    }
}

pub async fn patch(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path(name): Path<String>,
    RawBody(body): RawBody,
) -> ApiResult<Json<EventTypeOut>> {
    let p: EventTypePatch = parse_json(&body)?;
    let mut et = state.resources.get_event_type(&auth.org_id, &name).await?;
    if let Some(d) = p.description {
        validate_description(&d)?;
        et.description = d;
    }
    if let Some(a) = p.archived {
        et.archived = a;
    }
    if let Some(d) = p.deprecated {
        et.deprecated = d;
    }
    if let Some(s) = p.schemas {
        et.schemas = schemas_text(s)?;
    }
    match (p.feature_flags, p.feature_flag) {
        (Some(f), _) => et.feature_flags = flags(f, None)?,
        (None, Some(single)) => et.feature_flags = flags(None, single)?,
        (None, None) => {}
    }
    if let Some(g) = p.group_name {
        et.group_name = g;
    }
    if let Some(v) = p.validate_payloads {
        et.validate_payloads = v;
    }
    check_validation(&et)?;
    et.updated_at = now();
    let _forget = state.schemas.forget_after(&auth.org_id, &name);
    Ok(Json(state.resources.update_event_type(et).await?.into()))
}

pub async fn delete(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path(name): Path<String>,
    uri: OriginalUri,
) -> ApiResult<StatusCode> {
    let q = QueryParams::parse(uri.query());
    let _forget = state.schemas.forget_after(&auth.org_id, &name);
    if q.bool("expunge", false)? {
        state.resources.delete_event_type(&auth.org_id, &name).await?;
    } else {
        let mut et = state.resources.get_event_type(&auth.org_id, &name).await?;
        et.archived = true;
        et.updated_at = now();
        state.resources.update_event_type(et).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `RetryScheduleInOut`.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryScheduleInOut {
    #[serde(default)]
    pub retry_schedule: Option<Vec<DurationWire>>,
}

/// `GET /api/v1/event-type/{name}/retry-schedule`: the event type's own retry
/// schedule (`null`: the server's applies).
pub async fn get_retry_schedule(
    State(state): State<AppState>,
    auth: Auth,
    Path(name): Path<String>,
) -> ApiResult<Json<RetryScheduleInOut>> {
    let et = state.resources.get_event_type(&auth.org_id, &name).await?;
    Ok(Json(RetryScheduleInOut {
        retry_schedule: et.retry_schedule_ms.map(|ms| ms.into_iter().map(DurationWire::from_millis).collect()),
    }))
}

/// `PUT /api/v1/event-type/{name}/retry-schedule`: sets it (`null` clears it).
/// Messages of this type follow it at their next failure, unless their
/// endpoint has a schedule of its own.
pub async fn put_retry_schedule(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path(name): Path<String>,
    RawBody(body): RawBody,
) -> ApiResult<Json<RetryScheduleInOut>> {
    let input: RetryScheduleInOut = parse_json(&body)?;
    let ms = crate::v1::endpoint::crud::retry_schedule_ms("retrySchedule", input.retry_schedule)?;
    state.resources.set_event_type_retry_schedule(&auth.org_id, &name, ms.clone()).await?;
    Ok(Json(RetryScheduleInOut {
        retry_schedule: ms.map(|ms| ms.into_iter().map(DurationWire::from_millis).collect()),
    }))
}
