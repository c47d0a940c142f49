//! `/ingest/api/v1/source`: inbound sources in Svix's `IngestSourceIn`/`Out`
//! shapes, with hookd's receiving settings as extra top-level fields. Each
//! source owns an application (named `inbound: {name}`) whose endpoints are the
//! source's ingest endpoints.

use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::Json;
use hookd_core::id::{looks_like_id, new_id, IdPrefix};
use hookd_core::timefmt::format_millis;
use hookd_inbound::source::{keep_secrets, redacted, HOOKD_ONLY_TYPES};
use hookd_inbound::{SourceConfig, SourceSettings};
use hookd_store::{Application, Metadata, Source, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::auth::OrgAuth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{parse_json, QueryParams, RawBody};
use crate::pagination::{self, list_response, DefaultOrder, ListResponse};
use crate::v1::{now, validate_metadata};
use crate::AppState;

/// How long a rotated-away token keeps working (as Svix: 48 hours).
pub const TOKEN_GRACE_MS: i64 = 48 * 3600 * 1000;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngestSourceIn {
    pub name: String,
    #[serde(default)]
    pub uid: Option<String>,
    #[serde(default)]
    pub metadata: Option<Metadata>,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub config: Value,
    /// Extension: the type and configuration, for hookd's own types (then
    /// `type` may be `generic-webhook`, as such sources are shown).
    #[serde(default)]
    pub hookd_type: Option<String>,
    #[serde(default)]
    pub hookd_config: Option<Value>,
    /// hookd's receiving settings (`allowedIps`, `rateLimit`…).
    #[serde(flatten)]
    pub settings: Map<String, Value>,
}

impl IngestSourceIn {
    /// The type and configuration meant: `hookdType`/`hookdConfig` when given.
    fn kind_and_config(&mut self) -> (String, Value) {
        match self.hookd_type.take() {
            Some(t) => (t, self.hookd_config.take().unwrap_or_else(|| std::mem::take(&mut self.config))),
            None => (std::mem::take(&mut self.kind), std::mem::take(&mut self.config)),
        }
    }
}

fn is_hookd_only(kind: &str) -> bool {
    HOOKD_ONLY_TYPES.contains(&kind)
}

/// A client that read a hookd-only source as `generic-webhook` (an SDK that
/// drops extension fields) and writes it back must not turn its verification
/// off unawares.
fn check_not_downgraded(existing: &str, new: &str, hookd_type_given: bool) -> ApiResult<()> {
    if is_hookd_only(existing) && new == "generic-webhook" && !hookd_type_given {
        return Err(ApiError::body_field(
            "type",
            format!(
                "this is a {existing:?} source (shown as generic-webhook with hookdType); send \"hookdType\" to keep \
                 or change its type"
            ),
        ));
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngestSourcePatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "crate::wire::patch_field")]
    pub uid: Option<Option<String>>,
    #[serde(default)]
    pub metadata: Option<Metadata>,
    /// Extension: a new type, with `config`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub config: Option<Value>,
    #[serde(default)]
    pub hookd_type: Option<String>,
    #[serde(default)]
    pub hookd_config: Option<Value>,
    #[serde(flatten)]
    pub settings: Map<String, Value>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IngestSourceOut {
    pub id: String,
    pub uid: Option<String>,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// The configuration without its secrets.
    pub config: Value,
    pub ingest_url: String,
    pub created_at: String,
    pub updated_at: String,
    pub metadata: Metadata,
    /// Extension: the application the source's messages belong to.
    pub app_id: String,
    /// Extension, for hookd's own types (then `type` is `generic-webhook`):
    /// the real type and its configuration without secrets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hookd_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hookd_config: Option<Value>,
    #[serde(flatten)]
    pub settings: Map<String, Value>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RotateTokenOut {
    pub ingest_url: String,
}

pub fn ingest_url(state: &AppState, token: &str) -> String {
    format!("{}/ingest/{token}", state.config.public_url.trim_end_matches('/'))
}

pub fn source_out(state: &AppState, s: Source) -> IngestSourceOut {
    let settings = match &s.settings {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    let (kind, config, hookd_type, hookd_config) = if is_hookd_only(&s.kind) {
        ("generic-webhook".to_string(), Value::Object(Map::new()), Some(s.kind), Some(redacted(&s.config)))
    } else {
        (s.kind, redacted(&s.config), None, None)
    };
    IngestSourceOut {
        ingest_url: ingest_url(state, &s.token),
        id: s.id,
        uid: s.uid,
        name: s.name,
        kind,
        config,
        hookd_type,
        hookd_config,
        created_at: format_millis(s.created_at),
        updated_at: format_millis(s.updated_at),
        metadata: s.metadata,
        app_id: s.app_id,
        settings,
    }
}

fn check_name(name: &str) -> ApiResult<()> {
    if !(2..=256).contains(&name.chars().count()) {
        return Err(ApiError::body_field("name", "between 2 and 256 characters"));
    }
    Ok(())
}

fn check_uid(uid: Option<&str>) -> ApiResult<()> {
    let Some(uid) = uid else { return Ok(()) };
    let ok = (1..=60).contains(&uid.len())
        && !uid.starts_with("src_")
        && uid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ApiError::body_field("uid", "1 to 60 of a-z A-Z 0-9 _ -, not starting with src_"))
    }
}

/// The type and configuration, checked by the verifier that will use them.
fn check_config(kind: &str, config: &Value) -> ApiResult<()> {
    SourceConfig::parse(kind, config).map(|_| ()).map_err(|e| {
        let field = if e.starts_with("type") { "type" } else { "config" };
        ApiError::body_field(field, e)
    })
}

/// The settings as stored: checked, unknown fields refused.
fn check_settings(fields: Map<String, Value>) -> ApiResult<Value> {
    let settings: SourceSettings =
        serde_json::from_value(Value::Object(fields)).map_err(|e| ApiError::invalid(&["body"], e.to_string()))?;
    settings.check().map_err(|(field, msg)| ApiError::body_field(field, msg))?;
    Ok(serde_json::to_value(&settings).unwrap_or_default())
}

fn new_token() -> String {
    crate::auth::generate_token("")
}

pub async fn list(
    State(state): State<AppState>,
    auth: OrgAuth,
    uri: OriginalUri,
) -> ApiResult<Json<ListResponse<IngestSourceOut>>> {
    let q = QueryParams::parse(uri.query());
    let page = pagination::page(&q, DefaultOrder::Ascending)?;
    let rows = state.resources.list_sources(&auth.org_id, &page).await?;
    Ok(Json(list_response(&page, rows, |s| s.id.clone(), |s| source_out(&state, s))))
}

pub async fn create(
    State(state): State<AppState>,
    auth: OrgAuth,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Json<IngestSourceOut>)> {
    let input: IngestSourceIn = parse_json(&body)?;
    let src = new_source(&auth.org_id, input)?;
    let created = create_source(&state, src).await?;
    Ok((StatusCode::CREATED, Json(source_out(&state, created))))
}

fn new_source(org_id: &str, mut input: IngestSourceIn) -> ApiResult<Source> {
    check_name(&input.name)?;
    check_uid(input.uid.as_deref())?;
    let metadata = input.metadata.take().unwrap_or_default();
    validate_metadata(&metadata)?;
    let (kind, config) = input.kind_and_config();
    check_config(&kind, &config)?;
    let settings = check_settings(input.settings)?;
    let t = now();
    Ok(Source {
        org_id: org_id.to_string(),
        id: new_id(IdPrefix::Source),
        uid: input.uid,
        name: input.name,
        kind,
        config,
        settings,
        metadata,
        app_id: new_id(IdPrefix::Application),
        token: new_token(),
        prev_token: None,
        prev_token_until: None,
        created_at: t,
        updated_at: t,
    })
}

/// A poll source's `targetSource` must be a receiving source of the organisation.
async fn check_target(state: &AppState, src: &Source) -> ApiResult<()> {
    let Some(target) = src.config.get("targetSource").and_then(Value::as_str) else { return Ok(()) };
    let bad = |why: &str| Err(ApiError::body_field("config", format!("config.targetSource {target:?}: {why}")));
    if src.kind != "poll" {
        return Ok(());
    }
    match state.resources.get_source(&src.org_id, target).await {
        Ok(t) if t.id == src.id => bad("a source cannot feed itself"),
        Ok(t) if t.kind == "poll" || t.kind == "cron" => bad("a scheduled source takes no items"),
        Ok(_) => Ok(()),
        Err(StoreError::NotFound) => bad("no such source"),
        Err(e) => Err(e.into()),
    }
}

async fn create_source(state: &AppState, src: Source) -> ApiResult<Source> {
    check_target(state, &src).await?;
    let app = Application {
        org_id: src.org_id.clone(),
        id: src.app_id.clone(),
        uid: None,
        name: hookd_store::inbound::app_name(&src.name),
        rate_limit: None,
        metadata: [("hookd.source".to_string(), src.id.clone())].into_iter().collect(),
        created_at: src.created_at,
        updated_at: src.updated_at,
    };
    let created = match state.resources.create_source(src, app).await {
        Err(StoreError::Conflict { what, existing_id }) => {
            return Err(ApiError::Conflict { detail: format!("{what} already exists"), existing_id })
        }
        other => other?,
    };
    super::scheduled::reschedule(state, &created).await?;
    Ok(created)
}

pub async fn load(state: &AppState, auth: &OrgAuth, id_or_uid: &str) -> ApiResult<Source> {
    Ok(state.resources.get_source(&auth.org_id, id_or_uid).await?)
}

pub async fn get(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path(source_id): Path<String>,
) -> ApiResult<Json<IngestSourceOut>> {
    let src = load(&state, &auth, &source_id).await?;
    Ok(Json(source_out(&state, src)))
}

/// PUT: replaces the source, or creates it (with the path as its uid).
pub async fn upsert(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path(source_id): Path<String>,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Json<IngestSourceOut>)> {
    let existing = state.resources.get_source(&auth.org_id, &source_id).await;
    if matches!(existing, Err(StoreError::NotFound)) && looks_like_id(IdPrefix::Source, &source_id) {
        // An id is not a uid: no source has it.
        return Err(ApiError::NotFound);
    }
    let mut input: IngestSourceIn = parse_json(&body)?;
    match existing {
        Ok(mut src) => {
            check_name(&input.name)?;
            check_uid(input.uid.as_deref())?;
            let metadata = input.metadata.take().unwrap_or_default();
            validate_metadata(&metadata)?;
            check_not_downgraded(&src.kind, &input.kind, input.hookd_type.is_some())?;
            let (kind, mut config) = input.kind_and_config();
            if kind == src.kind {
                keep_secrets(&mut config, &src.config);
            }
            check_config(&kind, &config)?;
            src.settings = check_settings(input.settings)?;
            let changed = (&kind, &config) != (&src.kind, &src.config);
            (src.name, src.uid, src.metadata, src.kind, src.config) = (input.name, input.uid, metadata, kind, config);
            src.updated_at = now();
            Ok((StatusCode::OK, Json(source_out(&state, update(&state, src, changed).await?))))
        }
        Err(StoreError::NotFound) => {
            if input.uid.is_none() {
                check_uid(Some(&source_id))?;
                input.uid = Some(source_id);
            }
            let src = new_source(&auth.org_id, input)?;
            Ok((StatusCode::CREATED, Json(source_out(&state, create_source(&state, src).await?))))
        }
        Err(e) => Err(e.into()),
    }
}

/// Stores a changed source; `reschedule`: its type or configuration changed,
/// so a scheduled one runs on its new schedule (a poll source at once).
async fn update(state: &AppState, src: Source, reschedule: bool) -> ApiResult<Source> {
    check_target(state, &src).await?;
    let updated = state.resources.update_source(src).await;
    state.sources.clear();
    let updated = match updated {
        Err(StoreError::Conflict { what, existing_id }) => {
            return Err(ApiError::Conflict { detail: format!("{what} already exists"), existing_id })
        }
        other => other?,
    };
    if reschedule {
        super::scheduled::reschedule(state, &updated).await?;
    }
    Ok(updated)
}

pub async fn patch(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path(source_id): Path<String>,
    RawBody(body): RawBody,
) -> ApiResult<Json<IngestSourceOut>> {
    let patch: IngestSourcePatch = parse_json(&body)?;
    let mut src = load(&state, &auth, &source_id).await?;
    if let Some(name) = patch.name {
        check_name(&name)?;
        src.name = name;
    }
    if let Some(uid) = patch.uid {
        check_uid(uid.as_deref())?;
        src.uid = uid;
    }
    if let Some(m) = patch.metadata {
        validate_metadata(&m)?;
        src.metadata = m;
    }
    if let Some(kind) = &patch.kind {
        check_not_downgraded(&src.kind, kind, patch.hookd_type.is_some())?;
    }
    let (patch_kind, patch_config) = match patch.hookd_type {
        Some(t) => (Some(t), patch.hookd_config.or(patch.config)),
        None => (patch.kind, patch.hookd_config.or(patch.config)),
    };
    let mut changed = false;
    if patch_kind.is_some() || patch_config.is_some() {
        let kind = patch_kind.unwrap_or(src.kind.clone());
        let mut config = patch_config.unwrap_or(src.config.clone());
        if kind == src.kind {
            keep_secrets(&mut config, &src.config);
        }
        check_config(&kind, &config)?;
        changed = (&kind, &config) != (&src.kind, &src.config);
        (src.kind, src.config) = (kind, config);
    }
    if !patch.settings.is_empty() {
        let mut merged = match &src.settings {
            Value::Object(m) => m.clone(),
            _ => Map::new(),
        };
        for (k, v) in patch.settings {
            if v.is_null() {
                merged.remove(&k);
            } else {
                merged.insert(k, v);
            }
        }
        src.settings = check_settings(merged)?;
    }
    src.updated_at = now();
    Ok(Json(source_out(&state, update(&state, src, changed).await?)))
}

pub async fn delete(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path(source_id): Path<String>,
) -> ApiResult<StatusCode> {
    let src = load(&state, &auth, &source_id).await?;
    state.resources.delete_source(&auth.org_id, &src.id).await?;
    state.sources.clear();
    Ok(StatusCode::NO_CONTENT)
}

/// A new URL token; the old one keeps working for 48 hours.
pub async fn rotate_token(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path(source_id): Path<String>,
) -> ApiResult<Json<RotateTokenOut>> {
    let mut src = load(&state, &auth, &source_id).await?;
    let t = now();
    src.prev_token = Some(std::mem::replace(&mut src.token, new_token()));
    src.prev_token_until = Some(t + TOKEN_GRACE_MS);
    src.updated_at = t;
    let src = update(&state, src, false).await?;
    Ok(Json(RotateTokenOut { ingest_url: ingest_url(&state, &src.token) }))
}
