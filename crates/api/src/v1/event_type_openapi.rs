//! Event types from and to OpenAPI documents:
//! `POST /api/v1/event-type/import/openapi` and `…/export/openapi`.
//!
//! An import creates the event types a document defines and updates the ones
//! that exist (unarchiving them); a schema that differs from an event type's
//! latest becomes its next version, so messages already validated against an
//! older version keep their meaning. The export is a background task made
//! finished at once, with the document in its `data`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use hookd_core::openapi::{self, EventTypeDoc};
use hookd_core::{new_id, IdPrefix};
use hookd_store::{BackgroundTask, EventType, Page, StoreError, TaskKind, TaskStatus};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::background_task::TaskOut;
use super::event_type::MAX_SCHEMAS_BYTES;
use super::now;
use crate::auth::OrgAuth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{parse_json, RawBody};
use crate::AppState;

/// `EventTypeImportOpenApiIn`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportIn {
    #[serde(default)]
    pub spec: Option<Value>,
    #[serde(default)]
    pub spec_raw: Option<String>,
    #[serde(default)]
    pub replace_all: bool,
    #[serde(default)]
    pub dry_run: bool,
}

/// `EventTypeImportOpenApiOut`.
#[derive(Debug, Serialize)]
pub struct ImportOut {
    pub data: ImportOutData,
}

#[derive(Debug, Serialize)]
pub struct ImportOutData {
    pub modified: Vec<String>,
    /// What a dry run would change (Svix spells this field so).
    pub to_modify: Option<Vec<EventTypeFromOpenApi>>,
}

/// `EventTypeFromOpenApi`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventTypeFromOpenApi {
    pub name: String,
    pub description: String,
    pub schemas: Option<Value>,
    pub deprecated: bool,
    pub group_name: Option<String>,
    pub feature_flags: Option<Vec<String>>,
}

/// Every event type of the organisation, archived ones too.
async fn all_event_types(state: &AppState, org_id: &str) -> ApiResult<Vec<EventType>> {
    const LIMIT: usize = 250;
    let mut all = Vec::new();
    let mut iterator = None;
    loop {
        let page = Page { limit: LIMIT, iterator: iterator.take(), backwards: false, descending: false };
        let mut rows = state.resources.list_event_types(org_id, &page, true).await?;
        let more = rows.len() > LIMIT;
        rows.truncate(LIMIT);
        iterator = rows.last().map(|e| e.name.clone());
        all.extend(rows);
        if !more {
            return Ok(all);
        }
    }
}

fn parse_schemas(et: &EventType) -> Map<String, Value> {
    match et.schemas.as_deref().map(serde_json::from_str::<Value>) {
        Some(Ok(Value::Object(m))) => m,
        _ => Map::new(),
    }
}

/// `et` as the document has it; `None` when nothing changes.
fn updated(existing: Option<&EventType>, doc: &EventTypeDoc, org_id: &str, t: i64) -> ApiResult<Option<EventType>> {
    let mut schemas = existing.map(parse_schemas).unwrap_or_default();
    if let Some(schema) = &doc.schema {
        if hookd_core::schema::latest(&Value::Object(schemas.clone())) != Some(schema) {
            let next = schemas.keys().filter_map(|v| v.parse::<u32>().ok()).max().unwrap_or(0) + 1;
            schemas.insert(next.to_string(), schema.clone());
        }
    }
    let schemas = (!schemas.is_empty()).then(|| Value::Object(schemas).to_string());
    if schemas.as_ref().is_some_and(|s| s.len() > MAX_SCHEMAS_BYTES) {
        return Err(ApiError::body_field(
            "spec",
            format!("{}: its schemas with this one would be more than {MAX_SCHEMAS_BYTES} bytes", doc.name),
        ));
    }
    let et = match existing {
        Some(e) => EventType {
            description: doc.description.clone(),
            archived: false,
            deprecated: doc.deprecated,
            schemas,
            feature_flags: doc.feature_flags.clone(),
            group_name: doc.group_name.clone(),
            updated_at: t,
            ..e.clone()
        },
        None => EventType {
            org_id: org_id.to_string(),
            name: doc.name.clone(),
            description: doc.description.clone(),
            archived: false,
            deprecated: doc.deprecated,
            schemas,
            feature_flags: doc.feature_flags.clone(),
            group_name: doc.group_name.clone(),
            created_at: t,
            updated_at: t,
            retry_schedule_ms: None,
            validate_payloads: false,
        },
    };
    let same = existing.is_some_and(|e| {
        e.description == et.description
            && !e.archived
            && e.deprecated == et.deprecated
            && e.schemas == et.schemas
            && e.feature_flags == et.feature_flags
            && e.group_name == et.group_name
    });
    Ok((!same).then_some(et))
}

fn from_openapi(et: &EventType) -> EventTypeFromOpenApi {
    EventTypeFromOpenApi {
        name: et.name.clone(),
        description: et.description.clone(),
        schemas: et.schemas.as_deref().and_then(|s| serde_json::from_str(s).ok()),
        deprecated: et.deprecated,
        group_name: et.group_name.clone(),
        feature_flags: et.feature_flags.clone(),
    }
}

pub async fn import(
    State(state): State<AppState>,
    auth: OrgAuth,
    RawBody(body): RawBody,
) -> ApiResult<Json<ImportOut>> {
    let input: ImportIn = parse_json(&body)?;
    let (spec, field) = match (input.spec, input.spec_raw) {
        (Some(spec), None) => (spec, "spec"),
        (None, Some(raw)) => {
            let spec = serde_yaml_ng::from_str::<Value>(&raw)
                .map_err(|e| ApiError::body_field("specRaw", format!("neither YAML nor JSON: {e}")))?;
            (spec, "specRaw")
        }
        _ => {
            return Err(ApiError::BadRequest("give the OpenAPI document as `spec` or as `specRaw`, one of them".into()))
        }
    };
    let docs = openapi::event_types(&spec).map_err(|e| {
        let mut loc = vec!["body", field];
        loc.extend(e.path.split('/').filter(|s| !s.is_empty()));
        ApiError::invalid(&loc, e.message)
    })?;
    let existing = all_event_types(&state, &auth.org_id).await?;
    let t = now();
    let mut changes = Vec::new();
    for doc in &docs {
        let current = existing.iter().find(|e| e.name == doc.name);
        if let Some(et) = updated(current, doc, &auth.org_id, t)? {
            changes.push((current.is_some(), et));
        }
    }
    if input.replace_all {
        for e in existing.iter().filter(|e| !e.archived && !docs.iter().any(|d| d.name == e.name)) {
            changes.push((true, EventType { archived: true, updated_at: t, ..e.clone() }));
        }
    }
    let modified = changes.iter().map(|(_, et)| et.name.clone()).collect();
    if input.dry_run {
        let to_modify = changes.iter().map(|(_, et)| from_openapi(et)).collect();
        return Ok(Json(ImportOut { data: ImportOutData { modified, to_modify: Some(to_modify) } }));
    }
    for (exists, et) in changes {
        let _forget = state.schemas.forget_after(&auth.org_id, &et.name);
        match exists {
            true => state.resources.update_event_type(et).await?,
            false => match state.resources.create_event_type(et.clone(), None).await {
                Ok(created) => created,
                // Created meanwhile: the document's version wins.
                Err(StoreError::Conflict { .. }) => state.resources.update_event_type(et).await?,
                Err(e) => return Err(e.into()),
            },
        };
    }
    Ok(Json(ImportOut { data: ImportOutData { modified, to_modify: None } }))
}

/// The organisation's (unarchived) event types as an OpenAPI 3.1 document,
/// in a finished `sdk.generate` task: `data.openapi` (a hookd extension;
/// Svix links a zip of generated code there).
pub async fn export(State(state): State<AppState>, auth: OrgAuth) -> ApiResult<(StatusCode, Json<TaskOut>)> {
    let docs: Vec<EventTypeDoc> = all_event_types(&state, &auth.org_id)
        .await?
        .iter()
        .filter(|e| !e.archived)
        .map(|e| EventTypeDoc {
            name: e.name.clone(),
            description: e.description.clone(),
            deprecated: e.deprecated,
            group_name: e.group_name.clone(),
            feature_flags: e.feature_flags.clone(),
            schema: hookd_core::schema::latest(&Value::Object(parse_schemas(e))).cloned(),
        })
        .collect();
    let t = now();
    let task = BackgroundTask {
        id: new_id(IdPrefix::Task),
        org_id: auth.org_id.clone(),
        app_id: String::new(),
        endpoint_id: String::new(),
        kind: TaskKind::SdkGenerate,
        status: TaskStatus::Finished,
        since: t,
        until: t,
        cursor: None,
        messages_sent: 0,
        error: None,
        created_at: t,
        updated_at: t,
        filter: None,
        result: Some(json!({ "openapi": openapi::document("Webhooks", &docs) }).to_string()),
    };
    let task = state.deliveries.start_task(task, None).await?;
    Ok((StatusCode::ACCEPTED, Json(TaskOut::from(&task))))
}
