//! Payload templates: `/api/v1/template` (a hookd extension). A template is a
//! named series of immutable, numbered versions, each a minijinja source and
//! an output format; an endpoint pins one version or the latest. `render`
//! tries a version, or a draft, on sample data.

use std::collections::BTreeMap;

use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use hookd_core::id::{new_id, IdPrefix};
use hookd_shaping::template::{self as tpl, EndpointVars, Format, Limits, RenderContext, TemplateError};
use hookd_store::{StoreError, Template, TemplateVersion};
use serde::{Deserialize, Serialize};

use super::{now, validate_uid};
use crate::auth::OrgAuth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{parse_json, QueryParams, RawBody};
use crate::idempotency::{self, Begin};
use crate::pagination::{self, list_response, DefaultOrder, ListResponse};
use crate::wire::{patch_field, VersionWire};
use crate::AppState;

const MAX_NAME_LEN: usize = 256;
/// Versions one template may have.
pub const MAX_VERSIONS: u32 = 1_000;
/// Longest sample id, uid or URL given to the render route.
const MAX_SAMPLE_TEXT: usize = 2_048;

/// Bounds the render route's sample data (its payload is bounded by the body).
fn check_sample(input: &RenderIn) -> ApiResult<()> {
    if let Some(t) = &input.event_type {
        hookd_core::validate::event_type_name(t).map_err(|e| ApiError::body_field("eventType", e))?;
    }
    let long = |v: &Option<String>| v.as_ref().is_some_and(|v| v.len() > MAX_SAMPLE_TEXT);
    for (field, v) in [("msgId", &input.msg_id), ("eventId", &input.event_id)] {
        if long(v) {
            return Err(ApiError::body_field(field, format!("at most {MAX_SAMPLE_TEXT} bytes")));
        }
    }
    if let Some(channels) = &input.channels {
        if channels.len() > hookd_core::validate::MAX_CHANNELS {
            return Err(ApiError::body_field(
                "channels",
                format!("at most {} channels", hookd_core::validate::MAX_CHANNELS),
            ));
        }
        for c in channels {
            hookd_core::validate::channel(c).map_err(|e| ApiError::body_field("channels", e))?;
        }
    }
    if let Some(e) = &input.endpoint {
        if long(&e.id) || long(&e.uid) || long(&e.url) {
            return Err(ApiError::body_field(
                "endpoint",
                format!("id, uid and url are at most {MAX_SAMPLE_TEXT} bytes"),
            ));
        }
        if e.metadata.len() > 100 || e.metadata.iter().any(|(k, v)| k.len() > 256 || v.len() > MAX_SAMPLE_TEXT) {
            return Err(ApiError::body_field("endpoint", "metadata: at most 100 entries, keys of 256 bytes"));
        }
    }
    if input.timestamp.is_some_and(|t| !(0..=253_402_300_799).contains(&t)) {
        return Err(ApiError::body_field("timestamp", "Unix seconds, from 1970 to 9999"));
    }
    Ok(())
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TemplateIn {
    pub name: String,
    #[serde(default)]
    pub uid: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// `json` (the default), `xml`, `form` or `text`.
    #[serde(default)]
    pub format: Option<String>,
    pub source: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TemplatePatch {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "patch_field")]
    pub uid: Option<Option<String>>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TemplateVersionIn {
    pub source: String,
    /// The latest version's format when left out.
    #[serde(default)]
    pub format: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateOut {
    pub id: String,
    pub uid: Option<String>,
    pub name: String,
    pub description: String,
    pub latest_version: u32,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Template> for TemplateOut {
    fn from(t: Template) -> Self {
        TemplateOut {
            id: t.id,
            uid: t.uid,
            name: t.name,
            description: t.description,
            latest_version: t.latest_version,
            created_at: hookd_core::timefmt::format_millis(t.created_at),
            updated_at: hookd_core::timefmt::format_millis(t.updated_at),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateVersionOut {
    pub template_id: String,
    pub version: u32,
    pub format: String,
    pub content_type: &'static str,
    pub source: String,
    pub created_at: String,
}

impl From<TemplateVersion> for TemplateVersionOut {
    fn from(v: TemplateVersion) -> Self {
        TemplateVersionOut {
            content_type: Format::parse(&v.format).unwrap_or_default().content_type(),
            template_id: v.template_id,
            version: v.version,
            format: v.format,
            source: v.source,
            created_at: hookd_core::timefmt::format_millis(v.created_at),
        }
    }
}

/// Sample data to render with; every field has a default.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RenderIn {
    /// A saved version (the latest when left out), or…
    #[serde(default)]
    pub version: Option<VersionWire>,
    /// …a draft source, not saved, in `format` (the latest version's by default).
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub format: Option<String>,
    #[serde(default)]
    pub payload: Option<serde_json::Value>,
    #[serde(default)]
    pub event_type: Option<String>,
    #[serde(default)]
    pub msg_id: Option<String>,
    #[serde(default)]
    pub event_id: Option<String>,
    #[serde(default)]
    pub channels: Option<Vec<String>>,
    /// Unix seconds; now by default.
    #[serde(default)]
    pub timestamp: Option<i64>,
    #[serde(default)]
    pub endpoint: Option<SampleEndpoint>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SampleEndpoint {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub uid: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// The output, or where and why rendering failed.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RenderOut {
    pub version: Option<u32>,
    pub format: String,
    pub content_type: &'static str,
    pub output: Option<String>,
    pub error: Option<TemplateError>,
}

fn format_of(field: &'static str, format: Option<&str>, default: Format) -> ApiResult<Format> {
    match format {
        None => Ok(default),
        Some(f) => Format::parse(f)
            .ok_or_else(|| ApiError::body_field(field, format!("`{f}` is not one of json, xml, form, text"))),
    }
}

/// Compiles `source` (422 at `source` naming the line and column of an error).
fn compile(source: &str, format: Format) -> ApiResult<tpl::Template> {
    tpl::Template::compile(source, format).map_err(|e| ApiError::body_field("source", e.to_string()))
}

fn validate_name(name: &str) -> ApiResult<()> {
    if name.trim().is_empty() || name.len() > MAX_NAME_LEN {
        return Err(ApiError::body_field("name", format!("1 to {MAX_NAME_LEN} characters")));
    }
    Ok(())
}

fn validate_description(d: &str) -> ApiResult<()> {
    if d.len() > hookd_core::validate::MAX_DESCRIPTION_LEN {
        return Err(ApiError::body_field("description", "description is too long"));
    }
    Ok(())
}

pub async fn list(
    State(state): State<AppState>,
    auth: OrgAuth,
    uri: OriginalUri,
) -> ApiResult<Json<ListResponse<TemplateOut>>> {
    let page = pagination::page(&QueryParams::parse(uri.query()), DefaultOrder::Ascending)?;
    let rows = state.resources.list_templates(&auth.org_id, &page).await?;
    Ok(Json(list_response(&page, rows, |t| t.id.clone(), TemplateOut::from)))
}

pub async fn create(
    State(state): State<AppState>,
    auth: OrgAuth,
    uri: OriginalUri,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Json<TemplateOut>)> {
    let input: TemplateIn = parse_json(&body)?;
    validate_name(&input.name)?;
    validate_uid("uid", input.uid.as_deref())?;
    let description = input.description.unwrap_or_default();
    validate_description(&description)?;
    let format = format_of("format", input.format.as_deref(), Format::Json)?;
    compile(&input.source, format)?;
    let ticket = match idempotency::begin(&state, &auth.org_id, uri.path(), &headers, &body).await? {
        Begin::Replay(prev) => return replay(&state, &auth.org_id, prev).await,
        Begin::Fresh(t) => t,
    };
    let t = now();
    let template = Template {
        org_id: auth.org_id.clone(),
        id: new_id(IdPrefix::Template),
        uid: input.uid,
        name: input.name,
        description,
        latest_version: 1,
        created_at: t,
        updated_at: t,
    };
    let first = TemplateVersion {
        org_id: auth.org_id.clone(),
        template_id: template.id.clone(),
        version: 1,
        format: format.as_str().to_string(),
        source: input.source,
        created_at: t,
    };
    let record = idempotency::record(&ticket, 201, Some(template.id.clone()));
    match state.resources.create_template(template, first, record).await {
        Ok(t) => Ok((StatusCode::CREATED, Json(t.into()))),
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
) -> ApiResult<(StatusCode, Json<TemplateOut>)> {
    let t = state.resources.get_template(org_id, &prev.resource_id.unwrap_or_default()).await?;
    Ok((StatusCode::from_u16(prev.status).unwrap_or(StatusCode::OK), Json(t.into())))
}

pub async fn get(State(state): State<AppState>, auth: OrgAuth, Path(id): Path<String>) -> ApiResult<Json<TemplateOut>> {
    Ok(Json(state.resources.get_template(&auth.org_id, &id).await?.into()))
}

pub async fn patch(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> ApiResult<Json<TemplateOut>> {
    // The template first: another organisation's id is not found, whatever the body.
    let mut t = state.resources.get_template(&auth.org_id, &id).await?;
    let p: TemplatePatch = parse_json(&body)?;
    if let Some(name) = p.name {
        validate_name(&name)?;
        t.name = name;
    }
    if let Some(uid) = p.uid {
        validate_uid("uid", uid.as_deref())?;
        t.uid = uid;
    }
    if let Some(d) = p.description {
        validate_description(&d)?;
        t.description = d;
    }
    t.updated_at = now();
    Ok(Json(state.resources.update_template(t).await?.into()))
}

pub async fn delete(State(state): State<AppState>, auth: OrgAuth, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let t = state.resources.get_template(&auth.org_id, &id).await?;
    match state.resources.delete_template(&auth.org_id, &t.id).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(StoreError::Conflict { existing_id, .. }) => Err(ApiError::Conflict {
            detail: format!(
                "endpoint {} renders with this template: point it at another template first",
                existing_id.as_deref().unwrap_or("?")
            ),
            existing_id: None,
        }),
        Err(e) => Err(e.into()),
    }
}

pub async fn list_versions(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path(id): Path<String>,
    uri: OriginalUri,
) -> ApiResult<Json<ListResponse<TemplateVersionOut>>> {
    let q = QueryParams::parse(uri.query());
    let page = pagination::page(&q, DefaultOrder::Descending)?;
    let before = match page.iterator.as_deref() {
        None => None,
        Some(it) => Some(it.parse::<u32>().map_err(|_| ApiError::query_field("iterator", "not a version number"))?),
    };
    let t = state.resources.get_template(&auth.org_id, &id).await?;
    let mut rows = state.resources.list_template_versions(&auth.org_id, &t.id, before, page.limit + 1).await?;
    let done = rows.len() <= page.limit;
    rows.truncate(page.limit);
    let iterator = rows.last().map(|v| v.version.to_string());
    Ok(Json(ListResponse {
        data: rows.into_iter().map(TemplateVersionOut::from).collect(),
        iterator,
        prev_iterator: None,
        done,
    }))
}

pub async fn create_version(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Json<TemplateVersionOut>)> {
    // The template first: another organisation's id is not found, whatever the body.
    let t = state.resources.get_template(&auth.org_id, &id).await?;
    let input: TemplateVersionIn = parse_json(&body)?;
    if t.latest_version >= MAX_VERSIONS {
        return Err(ApiError::body_field(
            "source",
            format!("a template has at most {MAX_VERSIONS} versions: make a new template"),
        ));
    }
    let format = match input.format.as_deref() {
        Some(f) => format_of("format", Some(f), Format::Json)?,
        None => {
            let latest = state.resources.get_template_version(&auth.org_id, &t.id, None).await?;
            Format::parse(&latest.format).unwrap_or_default()
        }
    };
    compile(&input.source, format)?;
    let v = state.resources.add_template_version(&auth.org_id, &t.id, format.as_str(), &input.source).await?;
    state.deliveries.shaper().forget_latest(&t.id);
    Ok((StatusCode::CREATED, Json(v.into())))
}

/// `version` in a path: a number or `latest`.
fn version_param(v: &str) -> ApiResult<Option<u32>> {
    if v == "latest" {
        return Ok(None);
    }
    match v.parse::<u32>() {
        Ok(n) if n > 0 => Ok(Some(n)),
        _ => Err(ApiError::NotFound),
    }
}

pub async fn get_version(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path((id, version)): Path<(String, String)>,
) -> ApiResult<Json<TemplateVersionOut>> {
    let t = state.resources.get_template(&auth.org_id, &id).await?;
    let v = state.resources.get_template_version(&auth.org_id, &t.id, version_param(&version)?).await?;
    Ok(Json(v.into()))
}

pub async fn render(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> ApiResult<Json<RenderOut>> {
    // The template first: another organisation's id is not found, whatever the body.
    let t = state.resources.get_template(&auth.org_id, &id).await?;
    let input: RenderIn = parse_json(&body)?;
    check_sample(&input)?;
    let (version, compiled) = match input.source {
        Some(source) => {
            let default = match input.format {
                Some(_) => Format::Json,
                None => {
                    let latest = state.resources.get_template_version(&auth.org_id, &t.id, None).await?;
                    Format::parse(&latest.format).unwrap_or_default()
                }
            };
            let format = format_of("format", input.format.as_deref(), default)?;
            match tpl::Template::compile(&source, format) {
                Ok(c) => (None, c),
                Err(e) => return Ok(Json(failed(None, format, e))),
            }
        }
        None => {
            let wanted = input.version.as_ref().and_then(VersionWire::number);
            let v = match state.resources.get_template_version(&auth.org_id, &t.id, wanted).await {
                Ok(v) => v,
                Err(StoreError::NotFound) => {
                    return Err(ApiError::body_field("version", format!("template `{id}` has no such version")))
                }
                Err(e) => return Err(e.into()),
            };
            let format = Format::parse(&v.format).unwrap_or_default();
            match tpl::Template::compile(&v.source, format) {
                Ok(c) => (Some(v.version), c),
                Err(e) => return Ok(Json(failed(Some(v.version), format, e))),
            }
        }
    };
    let payload = input.payload.unwrap_or_else(|| serde_json::json!({}));
    let event_type = input.event_type.unwrap_or_else(|| "test.event".into());
    let msg_id = input.msg_id.unwrap_or_else(|| new_id(IdPrefix::Message));
    let sample = input.endpoint.unwrap_or_default();
    let endpoint_id = sample.id.unwrap_or_else(|| new_id(IdPrefix::Endpoint));
    let ctx = RenderContext {
        payload: &payload,
        event_type: &event_type,
        msg_id: &msg_id,
        event_id: input.event_id.as_deref(),
        timestamp: input.timestamp.unwrap_or_else(|| now() / 1000),
        channels: input.channels.as_deref(),
        endpoint: EndpointVars {
            id: &endpoint_id,
            uid: sample.uid.as_deref(),
            url: sample.url.as_deref().unwrap_or("https://example.com/webhook"),
            metadata: &sample.metadata,
        },
    };
    let format = compiled.format();
    Ok(Json(match compiled.render(&ctx, &Limits::default()) {
        Ok(bytes) => RenderOut {
            version,
            format: format.as_str().into(),
            content_type: format.content_type(),
            output: Some(String::from_utf8_lossy(&bytes).into_owned()),
            error: None,
        },
        Err(e) => failed(version, format, e),
    }))
}

fn failed(version: Option<u32>, format: Format, error: TemplateError) -> RenderOut {
    RenderOut {
        version,
        format: format.as_str().into(),
        content_type: format.content_type(),
        output: None,
        error: Some(error),
    }
}
