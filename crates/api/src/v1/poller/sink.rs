//! Poller sinks: `/api/v1/app/{app}/stream/sink` (`StreamSinkIn`/`Out`, type
//! `poller`) and `/api/v1/app/{app}/destination` (`DestinationIn`/`Out`, type
//! `pollingEndpoint`), two names for the same objects. Only polling endpoints
//! are sinks here; any other type is refused. `batchSize` and `maxWaitSecs`
//! are kept and shown but, as in Svix, mean nothing to a polling endpoint.

use axum::extract::{MatchedPath, OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use hookd_core::id::{looks_like_id, new_id, IdPrefix};
use hookd_core::timefmt::format_millis;
use hookd_core::validate;
use hookd_store::{Metadata, PollerSink, StoreError};
use serde::{Deserialize, Serialize};

use super::load_sink;
use super::token::new_token;
use crate::auth::AppAuth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{parse_json, QueryParams, RawBody};
use crate::idempotency::{self, Begin};
use crate::pagination::{self, list_response, DefaultOrder, ListResponse};
use crate::v1::{now, validate_metadata};
use crate::wire::patch_field;
use crate::AppState;

const MAX_EVENT_TYPES: usize = 256;
/// Svix's bounds.
const MAX_UID_LEN: usize = 60;
const MAX_BATCH_SIZE: i64 = 1000;
const MAX_WAIT_SECS: i64 = 300;
const DEFAULT_BATCH_SIZE: i32 = 100;

/// Which API a request came through: it names the type in its answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavour {
    /// `/stream/sink`: `"type": "poller"`.
    StreamSink,
    /// `/destination`: `"type": "pollingEndpoint"`.
    Destination,
}

impl Flavour {
    fn of(route: &MatchedPath) -> Flavour {
        if route.as_str().contains("/destination") {
            Flavour::Destination
        } else {
            Flavour::StreamSink
        }
    }

    fn type_name(self) -> &'static str {
        match self {
            Flavour::StreamSink => "poller",
            Flavour::Destination => "pollingEndpoint",
        }
    }
}

/// `StreamSinkIn` / `DestinationIn` (PUT too) for a polling endpoint.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SinkIn {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub uid: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub batch_size: Option<i64>,
    #[serde(default)]
    pub max_wait_secs: Option<i64>,
    #[serde(default, alias = "filterTypes")]
    pub event_types: Option<Vec<String>>,
    #[serde(default)]
    pub channels: Option<Vec<String>>,
    #[serde(default)]
    pub metadata: Option<Metadata>,
    /// A polling endpoint has no configuration: an SDK sends `{}`.
    #[serde(default)]
    pub config: Option<serde_json::Value>,
}

/// `StreamSinkPatch` / `DestinationPatch`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SinkPatch {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "patch_field")]
    pub uid: Option<Option<String>>,
    #[serde(default, deserialize_with = "patch_field")]
    pub status: Option<Option<String>>,
    #[serde(default, deserialize_with = "patch_field")]
    pub batch_size: Option<Option<i64>>,
    #[serde(default, deserialize_with = "patch_field")]
    pub max_wait_secs: Option<Option<i64>>,
    #[serde(default, alias = "filterTypes", deserialize_with = "patch_field")]
    pub event_types: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "patch_field")]
    pub channels: Option<Option<Vec<String>>>,
    #[serde(default)]
    pub metadata: Option<Metadata>,
    #[serde(default)]
    pub config: Option<serde_json::Value>,
}

/// `StreamSinkOut` / `DestinationOut` of a polling endpoint.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SinkOut {
    pub id: String,
    pub uid: Option<String>,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub config: serde_json::Value,
    pub status: &'static str,
    /// Where the sink's stream starts: `iterator` for a poll from the beginning.
    pub current_iterator: String,
    pub failure_reason: Option<String>,
    pub next_retry_at: Option<String>,
    pub batch_size: i32,
    pub max_wait_secs: i32,
    pub event_types: Vec<String>,
    pub channels: Vec<String>,
    pub metadata: Metadata,
    pub created_at: String,
    pub updated_at: String,
}

impl SinkOut {
    fn new(s: PollerSink, flavour: Flavour) -> Self {
        SinkOut {
            id: s.id,
            uid: s.uid,
            kind: flavour.type_name(),
            config: serde_json::json!({}),
            status: if s.disabled { "disabled" } else { "enabled" },
            current_iterator: s.start_offset.to_string(),
            failure_reason: None,
            next_retry_at: None,
            batch_size: s.batch_size,
            max_wait_secs: s.max_wait_secs,
            event_types: s.event_types.unwrap_or_default(),
            channels: s.channels.unwrap_or_default(),
            metadata: s.metadata,
            created_at: format_millis(s.created_at),
            updated_at: format_millis(s.updated_at),
        }
    }
}

/// A sink's `type`: a polling endpoint, by either API's name.
fn check_type(kind: Option<&str>, required: bool) -> ApiResult<()> {
    match kind {
        Some("poller" | "pollingEndpoint") => Ok(()),
        None if !required => Ok(()),
        None => Err(ApiError::body_field("type", "type is required: `poller` (or `pollingEndpoint`)")),
        Some(other) => Err(ApiError::body_field(
            "type",
            format!("`{other}` sinks are not supported; hookd's sinks are polling endpoints (`poller`)"),
        )),
    }
}

fn check_uid(uid: &str) -> ApiResult<()> {
    let ok = (1..=MAX_UID_LEN).contains(&uid.len())
        && !uid.starts_with("sink_")
        && uid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !ok {
        return Err(ApiError::body_field(
            "uid",
            format!("uid is 1 to {MAX_UID_LEN} of a-z, A-Z, 0-9, _ and -, not starting with `sink_`"),
        ));
    }
    Ok(())
}

fn disabled(status: &str) -> ApiResult<bool> {
    match status {
        "enabled" => Ok(false),
        "disabled" => Ok(true),
        _ => Err(ApiError::body_field("status", "status is `enabled` or `disabled`")),
    }
}

fn batch_size(v: i64) -> ApiResult<i32> {
    if !(1..=MAX_BATCH_SIZE).contains(&v) {
        return Err(ApiError::body_field("batchSize", format!("batchSize is 1 to {MAX_BATCH_SIZE}")));
    }
    Ok(v as i32)
}

fn max_wait_secs(v: i64) -> ApiResult<i32> {
    if !(0..=MAX_WAIT_SECS).contains(&v) {
        return Err(ApiError::body_field("maxWaitSecs", format!("maxWaitSecs is 0 to {MAX_WAIT_SECS}")));
    }
    Ok(v as i32)
}

/// Checks an event type filter; an empty one is none.
fn event_types(v: Option<Vec<String>>) -> ApiResult<Option<Vec<String>>> {
    let Some(types) = v.filter(|t| !t.is_empty()) else { return Ok(None) };
    if types.len() > MAX_EVENT_TYPES {
        return Err(ApiError::body_field("eventTypes", format!("at most {MAX_EVENT_TYPES} event types")));
    }
    for t in &types {
        validate::event_type_name(t).map_err(|e| ApiError::body_field("eventTypes", e))?;
    }
    Ok(Some(types))
}

/// Checks a channel filter; an empty one is none.
fn channels(v: Option<Vec<String>>) -> ApiResult<Option<Vec<String>>> {
    let Some(channels) = v.filter(|c| !c.is_empty()) else { return Ok(None) };
    if channels.len() > validate::MAX_CHANNELS {
        return Err(ApiError::body_field("channels", format!("at most {} channels", validate::MAX_CHANNELS)));
    }
    for c in &channels {
        validate::channel(c).map_err(|e| ApiError::body_field("channels", e))?;
    }
    Ok(Some(channels))
}

/// A new sink from its input (where it starts is the store's to set).
fn new_sink(input: SinkIn, org_id: &str, app_id: &str) -> ApiResult<PollerSink> {
    check_type(input.kind.as_deref(), true)?;
    if let Some(uid) = &input.uid {
        check_uid(uid)?;
    }
    let metadata = input.metadata.unwrap_or_default();
    validate_metadata(&metadata)?;
    let t = now();
    Ok(PollerSink {
        org_id: org_id.to_string(),
        app_id: app_id.to_string(),
        id: new_id(IdPrefix::Sink),
        uid: input.uid,
        disabled: disabled(input.status.as_deref().unwrap_or("enabled"))?,
        batch_size: input.batch_size.map(batch_size).transpose()?.unwrap_or(DEFAULT_BATCH_SIZE),
        max_wait_secs: input.max_wait_secs.map(max_wait_secs).transpose()?.unwrap_or(0),
        event_types: event_types(input.event_types)?,
        channels: channels(input.channels)?,
        metadata,
        start_offset: 0,
        created_at: t,
        updated_at: t,
    })
}

pub async fn list(
    State(state): State<AppState>,
    auth: AppAuth,
    route: MatchedPath,
    uri: OriginalUri,
) -> ApiResult<Json<ListResponse<SinkOut>>> {
    let flavour = Flavour::of(&route);
    let page = pagination::page(&QueryParams::parse(uri.query()), DefaultOrder::Ascending)?;
    let rows = state.resources.list_poller_sinks(auth.org_id(), &auth.app.id, &page).await?;
    Ok(Json(list_response(&page, rows, |s| s.id.clone(), |s| SinkOut::new(s, flavour))))
}

/// Creates a sink with its first poller token. Answers 201.
pub async fn create(
    State(state): State<AppState>,
    auth: AppAuth,
    route: MatchedPath,
    uri: OriginalUri,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Json<SinkOut>)> {
    let flavour = Flavour::of(&route);
    let input: SinkIn = parse_json(&body)?;
    let sink = new_sink(input, auth.org_id(), &auth.app.id)?;
    let ticket = match idempotency::begin(&state, auth.org_id(), uri.path(), &headers, &body).await? {
        Begin::Replay(prev) => return replay(&state, &auth, prev, flavour).await,
        Begin::Fresh(t) => t,
    };
    let record = idempotency::record(&ticket, 201, Some(sink.id.clone()));
    let (_, token) = new_token(&sink, None);
    match state.resources.create_poller_sink(sink, token, record).await {
        Ok(sink) => Ok((StatusCode::CREATED, Json(SinkOut::new(sink, flavour)))),
        Err(StoreError::IdempotencyReplay(prev)) => {
            replay(&state, &auth, idempotency::replay_after_race(&ticket, prev)?, flavour).await
        }
        Err(e) => Err(e.into()),
    }
}

async fn replay(
    state: &AppState,
    auth: &AppAuth,
    prev: hookd_store::IdempotencyOutcome,
    flavour: Flavour,
) -> ApiResult<(StatusCode, Json<SinkOut>)> {
    let sink = load_sink(state, auth, &prev.resource_id.unwrap_or_default()).await?;
    Ok((StatusCode::from_u16(prev.status).unwrap_or(StatusCode::OK), Json(SinkOut::new(sink, flavour))))
}

pub async fn get(
    State(state): State<AppState>,
    auth: AppAuth,
    route: MatchedPath,
    Path((_, sink_id)): Path<(String, String)>,
) -> ApiResult<Json<SinkOut>> {
    Ok(Json(SinkOut::new(load_sink(&state, &auth, &sink_id).await?, Flavour::of(&route))))
}

/// PUT: replaces the sink's settings (200), or creates it (201).
pub async fn upsert(
    State(state): State<AppState>,
    auth: AppAuth,
    route: MatchedPath,
    Path((_, sink_id)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Json<SinkOut>)> {
    let flavour = Flavour::of(&route);
    let mut input: SinkIn = parse_json(&body)?;
    // Named by its uid in the path, the sink keeps (or is made with) that uid.
    if input.uid.is_none() && !looks_like_id(IdPrefix::Sink, &sink_id) {
        input.uid = Some(sink_id.clone());
    }
    match state.resources.get_poller_sink(auth.org_id(), &auth.app.id, &sink_id).await {
        Ok(existing) => {
            let given = new_sink(input, auth.org_id(), &auth.app.id)?;
            let sink = PollerSink {
                id: existing.id,
                start_offset: existing.start_offset,
                created_at: existing.created_at,
                ..given
            };
            let sink = state.resources.update_poller_sink(sink).await?;
            Ok((StatusCode::OK, Json(SinkOut::new(sink, flavour))))
        }
        Err(StoreError::NotFound) => {
            let sink = new_sink(input, auth.org_id(), &auth.app.id)?;
            let (_, token) = new_token(&sink, None);
            let sink = state.resources.create_poller_sink(sink, token, None).await?;
            Ok((StatusCode::CREATED, Json(SinkOut::new(sink, flavour))))
        }
        Err(e) => Err(e.into()),
    }
}

/// PATCH: changes only the settings given.
pub async fn patch(
    State(state): State<AppState>,
    auth: AppAuth,
    route: MatchedPath,
    Path((_, sink_id)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> ApiResult<Json<SinkOut>> {
    let p: SinkPatch = parse_json(&body)?;
    check_type(p.kind.as_deref(), false)?;
    let mut sink = load_sink(&state, &auth, &sink_id).await?;
    if let Some(uid) = p.uid {
        if let Some(uid) = &uid {
            check_uid(uid)?;
        }
        sink.uid = uid;
    }
    if let Some(Some(status)) = p.status {
        sink.disabled = disabled(&status)?;
    }
    if let Some(Some(v)) = p.batch_size {
        sink.batch_size = batch_size(v)?;
    }
    if let Some(Some(v)) = p.max_wait_secs {
        sink.max_wait_secs = max_wait_secs(v)?;
    }
    if let Some(types) = p.event_types {
        sink.event_types = event_types(types)?;
    }
    if let Some(chans) = p.channels {
        sink.channels = channels(chans)?;
    }
    if let Some(metadata) = p.metadata {
        validate_metadata(&metadata)?;
        sink.metadata = metadata;
    }
    sink.updated_at = now();
    let sink = state.resources.update_poller_sink(sink).await?;
    Ok(Json(SinkOut::new(sink, Flavour::of(&route))))
}

/// Deletes the sink with its consumers and tokens. Answers 204.
pub async fn delete(
    State(state): State<AppState>,
    auth: AppAuth,
    Path((_, sink_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let sink = load_sink(&state, &auth, &sink_id).await?;
    state.resources.delete_poller_sink(auth.org_id(), &auth.app.id, &sink.id).await?;
    Ok(StatusCode::NO_CONTENT)
}
