//! Svix's environment export and import (organisation tokens):
//!
//! - `POST /api/v1/environment/export` answers `EnvironmentOut`: every event
//!   type (archived ones too), the portal settings, and every connector.
//! - `POST /api/v1/environment/import` takes `EnvironmentIn` and applies it
//!   through the same code as the single-object routes: event types are
//!   upserted by name, connectors by `uid` (else by name, else created), and
//!   settings are merged (keys hookd does not keep are skipped). 204 when done.
//!
//! Every item is checked for its shape before anything is written; an item the
//! single-object route refuses stops the import with a 422 that names it (the
//! ones before it stay; running the import again is safe: it upserts).

use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::Json;
use bytes::Bytes;
use hookd_core::timefmt::{format_millis, now_millis};
use hookd_store::Page;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{connector, event_type, settings};
use crate::auth::OrgAuth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{parse_json, RawBody};
use crate::AppState;

/// Most event types and connectors one export holds or one import takes.
const MAX_EVENT_TYPES: usize = 5_000;
const MAX_CONNECTORS: usize = 1_000;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentIn {
    #[serde(default)]
    pub event_types: Option<Vec<Value>>,
    #[serde(default)]
    pub settings: Option<Value>,
    #[serde(default)]
    pub connectors: Option<Vec<Value>>,
}

fn page(iterator: Option<String>) -> Page {
    Page { limit: 250, iterator, backwards: false, descending: false }
}

pub async fn export(State(state): State<AppState>, auth: OrgAuth) -> ApiResult<Json<Value>> {
    let mut event_types = Vec::new();
    let mut iterator = None;
    loop {
        let rows = state.resources.list_event_types(&auth.org_id, &page(iterator.clone()), true).await?;
        let more = rows.len() > 250;
        for et in rows.into_iter().take(250) {
            iterator = Some(et.name.clone());
            event_types.push(serde_json::to_value(crate::wire::EventTypeOut::from(et)).unwrap_or_default());
        }
        if event_types.len() > MAX_EVENT_TYPES {
            return Err(ApiError::BadRequest(format!("more than {MAX_EVENT_TYPES} event types: too many to export")));
        }
        if !more {
            break;
        }
    }
    let mut connectors = Vec::new();
    let mut iterator = None;
    loop {
        let rows = state.resources.list_connectors(&auth.org_id, &page(iterator.clone())).await?;
        let more = rows.len() > 250;
        for c in rows.into_iter().take(250) {
            iterator = Some(c.id.clone());
            connectors.push(serde_json::to_value(connector::ConnectorOut::from(c)).unwrap_or_default());
        }
        if connectors.len() > MAX_CONNECTORS {
            return Err(ApiError::BadRequest(format!("more than {MAX_CONNECTORS} connectors: too many to export")));
        }
        if !more {
            break;
        }
    }
    let settings = serde_json::to_value(settings::load(&state, &auth.org_id).await?).unwrap_or(Value::Null);
    Ok(Json(json!({
        "version": 1,
        "createdAt": format_millis(now_millis()),
        "eventTypes": event_types,
        "settings": settings,
        "connectors": connectors,
    })))
}

/// A refusal of item `i` of `list`, with the route's own message; the store
/// being unavailable (or failing) stays what it is.
fn at(list: &str, i: usize, e: ApiError) -> ApiError {
    let msg = match e {
        ApiError::Validation(errors) => {
            errors.iter().map(|f| format!("{}: {}", f.loc.join("."), f.msg)).collect::<Vec<_>>().join("; ")
        }
        ApiError::BadRequest(m) | ApiError::Forbidden(m) | ApiError::PayloadTooLarge(m) => m,
        ApiError::Conflict { detail, .. } => detail,
        ApiError::NotFound => "not found".into(),
        other => return other,
    };
    ApiError::invalid(&["body", list, &i.to_string()], format!("{msg} (the items before it were imported)"))
}

pub async fn import(State(state): State<AppState>, auth: OrgAuth, RawBody(body): RawBody) -> ApiResult<StatusCode> {
    let input: EnvironmentIn = parse_json(&body)?;
    let event_types = input.event_types.unwrap_or_default();
    let connectors = input.connectors.unwrap_or_default();
    if event_types.len() > MAX_EVENT_TYPES {
        return Err(ApiError::body_field("eventTypes", format!("at most {MAX_EVENT_TYPES} event types")));
    }
    if connectors.len() > MAX_CONNECTORS {
        return Err(ApiError::body_field("connectors", format!("at most {MAX_CONNECTORS} connectors")));
    }
    // Shapes first: nothing is written when one is wrong.
    let mut names = Vec::with_capacity(event_types.len());
    for (i, et) in event_types.iter().enumerate() {
        let name = et.get("name").and_then(Value::as_str).unwrap_or_default();
        hookd_core::validate::event_type_name(name)
            .map_err(|e| ApiError::invalid(&["body", "eventTypes", &i.to_string(), "name"], e))?;
        serde_json::from_value::<event_type::EventTypeIn>(et.clone())
            .map_err(|e| ApiError::invalid(&["body", "eventTypes", &i.to_string()], e.to_string()))?;
        names.push(name.to_string());
    }
    for (i, c) in connectors.iter().enumerate() {
        serde_json::from_value::<connector::ConnectorIn>(c.clone())
            .map_err(|e| ApiError::invalid(&["body", "connectors", &i.to_string()], e.to_string()))?;
    }
    let settings_patch = match input.settings {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(known_settings(m)),
        Some(_) => return Err(ApiError::body_field("settings", "expected an object")),
    };

    let again = || OrgAuth { org_id: auth.org_id.clone(), token_id: auth.token_id.clone(), role: auth.role };
    for (i, (et, name)) in event_types.into_iter().zip(names).enumerate() {
        let mut et = et;
        if let Some(fields) = et.as_object_mut() {
            // What an export adds and an input does not take.
            for k in ["createdAt", "updatedAt", "name"] {
                fields.remove(k);
            }
            fields.entry("description").or_insert(json!(""));
        }
        let _written =
            event_type::upsert(State(state.clone()), again(), Path(name), RawBody(Bytes::from(et.to_string())))
                .await
                .map_err(|e| at("eventTypes", i, e))?;
    }
    for (i, c) in connectors.into_iter().enumerate() {
        import_connector(&state, &auth, again(), c).await.map_err(|e| at("connectors", i, e))?;
    }
    if let Some(patch) = settings_patch {
        let body = RawBody(Bytes::from(Value::Object(patch).to_string()));
        let _written = settings::patch(State(state.clone()), again(), body).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The settings hookd keeps, out of an environment's (Svix's hold more).
fn known_settings(all: Map<String, Value>) -> Map<String, Value> {
    all.into_iter()
        .filter(|(k, v)| {
            let k = if k == "logoUrl" { "customLogoUrl" } else { k.as_str() };
            let one = json!({ k: v });
            match serde_json::from_value::<settings::PortalSettings>(one) {
                Ok(_) => true,
                Err(e) => !e.to_string().contains("unknown field"),
            }
        })
        .collect()
}

/// A connector, upserted by uid, else by name, else made.
async fn import_connector(state: &AppState, auth: &OrgAuth, as_caller: OrgAuth, mut c: Value) -> ApiResult<()> {
    let Some(fields) = c.as_object_mut() else { return Err(ApiError::BadRequest("expected an object".into())) };
    for k in ["id", "orgId", "createdAt", "updatedAt", "transformationUpdatedAt"] {
        fields.remove(k);
    }
    let uid = fields.get("uid").and_then(Value::as_str).map(str::to_string);
    let name = fields.get("name").and_then(Value::as_str).map(str::to_string);
    let existing = match (&uid, &name) {
        (Some(uid), _) => Some(uid.clone()),
        (None, Some(name)) => find_by_name(state, &auth.org_id, name).await?,
        (None, None) => None,
    };
    let body = RawBody(Bytes::from(c.to_string()));
    match existing {
        Some(id) => {
            let _written = connector::upsert(State(state.clone()), as_caller, Path(id), body).await?;
        }
        None => {
            let uri = OriginalUri(Uri::from_static("/api/v1/connector"));
            let _written = connector::create(State(state.clone()), as_caller, uri, HeaderMap::new(), body).await?;
        }
    }
    Ok(())
}

async fn find_by_name(state: &AppState, org_id: &str, name: &str) -> ApiResult<Option<String>> {
    let mut iterator = None;
    loop {
        let rows = state.resources.list_connectors(org_id, &page(iterator.clone())).await?;
        let more = rows.len() > 250;
        for c in rows.into_iter().take(250) {
            if c.spec.name == name {
                return Ok(Some(c.id));
            }
            iterator = Some(c.id);
        }
        if !more {
            return Ok(None);
        }
    }
}
