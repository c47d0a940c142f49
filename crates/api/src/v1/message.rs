//! Messages: `/api/v1/app/{app}/msg`. Creating one commits it with its fan-out
//! and answers 202 once that is durable (`Deliveries::accept`); the deliveries
//! go straight to this node's dispatcher.

use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use hookd_core::id::{looks_like_id, new_id, IdPrefix};
use hookd_core::validate;
use hookd_store::{Application, Message, MessageFilter, StoreError};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::application::ApplicationIn;
use super::now;
use crate::auth::{AppAuth, OrgAuth};
use crate::error::{ApiError, ApiResult};
use crate::extract::{parse_json, QueryParams, RawBody};
use crate::idempotency::{self, Begin};
use crate::pagination::{self, list_response, DefaultOrder, ListResponse};
use crate::wire::MessageOut;
use crate::AppState;

const MAX_TAGS: usize = 5;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageIn {
    pub event_type: String,
    pub payload: Box<RawValue>,
    #[serde(default)]
    pub event_id: Option<String>,
    #[serde(default)]
    pub channels: Option<Vec<String>>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Creates the application when the path names none that exists.
    #[serde(default)]
    pub application: Option<ApplicationIn>,
    /// Deliver at this time (RFC 3339) instead of now: up to 30 days ahead.
    #[serde(default)]
    pub deliver_at: Option<String>,
    /// Not supported yet (raw payloads): refused rather than sending `payload`.
    #[serde(default)]
    pub transformations_params: Option<serde_json::Value>,
    /// Days to keep the payload (Svix: 1 to 90); exclusive with the hours.
    #[serde(default)]
    pub payload_retention_period: Option<i64>,
    /// Hours to keep the payload (Svix: 1 to 2160).
    #[serde(default)]
    pub payload_retention_hours: Option<i64>,
}

/// Svix's bounds on a message's own payload retention.
const MAX_RETENTION_DAYS: i64 = 90;
const MAX_RETENTION_HOURS: i64 = 2160;

/// How long the payload is kept: the message's own period, else the server's.
fn retention_ms(state: &AppState, input: &MessageIn) -> ApiResult<i64> {
    match (input.payload_retention_period, input.payload_retention_hours) {
        (Some(_), Some(_)) => Err(ApiError::body_field(
            "payloadRetentionHours",
            "give payloadRetentionPeriod (days) or payloadRetentionHours, not both",
        )),
        (Some(days), None) if (1..=MAX_RETENTION_DAYS).contains(&days) => Ok(days * 86_400_000),
        (Some(_), None) => Err(ApiError::body_field(
            "payloadRetentionPeriod",
            format!("payloadRetentionPeriod is in days, 1 to {MAX_RETENTION_DAYS}"),
        )),
        (None, Some(hours)) if (1..=MAX_RETENTION_HOURS).contains(&hours) => Ok(hours * 3_600_000),
        (None, Some(_)) => Err(ApiError::body_field(
            "payloadRetentionHours",
            format!("payloadRetentionHours is in hours, 1 to {MAX_RETENTION_HOURS}"),
        )),
        (None, None) => Ok(state.config.payload_retention.as_millis() as i64),
    }
}

/// Checks a message's fields and turns it into a row.
pub fn new_message(state: &AppState, input: &MessageIn, org_id: &str, app_id: &str) -> ApiResult<Message> {
    validate::event_type_name(&input.event_type).map_err(|e| ApiError::body_field("eventType", e))?;
    // The id carries its creation time: the timestamp is that very time, so
    // a bound by time and a bound by id agree (a poller's seek, list filters).
    let id = new_id(IdPrefix::Message);
    let created_at = hookd_core::id::id_millis(&id).map_or_else(now, |ms| ms as i64);
    let deliver_at = deliver_at(input.deliver_at.as_deref(), created_at)?;
    let raw = raw_payload(input.transformations_params.as_ref())?;
    let payload = match &raw {
        Some((_, body)) => body.as_bytes(),
        None => input.payload.get().as_bytes(),
    };
    if payload.len() > state.config.max_payload_bytes {
        return Err(ApiError::PayloadTooLarge(format!(
            "payload is {} bytes; the limit is {} (--max-payload-bytes)",
            payload.len(),
            state.config.max_payload_bytes
        )));
    }
    if !input.payload.get().starts_with('{') {
        return Err(ApiError::body_field("payload", "payload must be a JSON object"));
    }
    if raw.is_none() && validate::json_depth(payload) > validate::MAX_JSON_DEPTH {
        return Err(ApiError::body_field(
            "payload",
            format!("payload nests arrays and objects deeper than {} levels", validate::MAX_JSON_DEPTH),
        ));
    }
    if let Some(eid) = &input.event_id {
        validate::uid(eid).map_err(|e| ApiError::body_field("eventId", e.replace("uid", "eventId")))?;
    }
    let channels = input.channels.clone().filter(|c| !c.is_empty());
    if let Some(channels) = &channels {
        if channels.len() > validate::MAX_CHANNELS {
            return Err(ApiError::body_field("channels", format!("at most {} channels", validate::MAX_CHANNELS)));
        }
        for c in channels {
            validate::channel(c).map_err(|e| ApiError::body_field("channels", e))?;
        }
    }
    let tags = input.tags.clone().filter(|t| !t.is_empty());
    if let Some(tags) = &tags {
        if tags.len() > MAX_TAGS || tags.iter().any(|t| validate::channel(t).is_err()) {
            return Err(ApiError::body_field("tags", format!("at most {MAX_TAGS} tags, each like a channel name")));
        }
    }
    let retention = retention_ms(state, input)?;
    Ok(Message {
        org_id: org_id.to_string(),
        app_id: app_id.to_string(),
        id,
        event_id: input.event_id.clone(),
        event_type: input.event_type.clone(),
        channels,
        tags,
        payload: Some(match &raw {
            Some((content_type, body)) => hookd_core::payload::store_raw(content_type, body.as_bytes()).into(),
            None => payload.into(),
        }),
        created_at,
        // The payload is kept for its retention after it is due, not after it was sent in.
        expires_at: deliver_at.unwrap_or(created_at).saturating_add(retention),
        deliver_at,
    })
}

/// `transformationsParams`: a raw payload (`rawPayload`, a string sent byte for
/// byte instead of `payload`) with its `headers` (`content-type` only); `None`
/// when there is none.
fn raw_payload(params: Option<&serde_json::Value>) -> ApiResult<Option<(String, String)>> {
    let field = "transformationsParams";
    let params = match params {
        None | Some(serde_json::Value::Null) => return Ok(None),
        Some(serde_json::Value::Object(p)) => p,
        Some(_) => return Err(ApiError::body_field(field, "an object: {\"rawPayload\": \"…\", \"headers\": {…}}")),
    };
    if let Some(unknown) = params.keys().find(|k| !matches!(k.as_str(), "rawPayload" | "headers")) {
        return Err(ApiError::body_field(field, format!("`{unknown}` is not known: rawPayload and headers are")));
    }
    let body = match params.get("rawPayload") {
        None | Some(serde_json::Value::Null) => return Ok(None),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(_) => return Err(ApiError::body_field(field, "`rawPayload` is a string")),
    };
    let mut content_type = hookd_core::payload::DEFAULT_RAW_CONTENT_TYPE.to_string();
    match params.get("headers") {
        None | Some(serde_json::Value::Null) => {}
        Some(serde_json::Value::Object(h)) => {
            for (name, value) in h {
                let value = value
                    .as_str()
                    .filter(|v| !v.is_empty() && v.len() <= 256 && v.bytes().all(|b| (0x20..0x7f).contains(&b)));
                match (name.eq_ignore_ascii_case("content-type"), value) {
                    (true, Some(v)) => content_type = v.to_string(),
                    (true, None) => {
                        return Err(ApiError::body_field(field, "`content-type`: 1 to 256 visible characters"))
                    }
                    (false, _) => {
                        return Err(ApiError::body_field(field, format!("header `{name}`: only content-type is taken")))
                    }
                }
            }
        }
        Some(_) => return Err(ApiError::body_field(field, "`headers` is an object of strings")),
    }
    Ok(Some((content_type, body)))
}

/// Furthest ahead a message may be scheduled (Svix allows 24 hours).
const MAX_DELIVER_AHEAD_MS: i64 = 30 * 86_400_000;
/// A `deliverAt` this little in the past (clocks disagree) means now.
const DELIVER_AT_SKEW_MS: i64 = 60_000;

/// `deliverAt`: `None` for now (absent, or a moment ago), else the time; 422
/// beyond 30 days ahead, further back than a minute, or unreadable.
fn deliver_at(value: Option<&str>, now: i64) -> ApiResult<Option<i64>> {
    let Some(value) = value else { return Ok(None) };
    let at = hookd_core::timefmt::parse_rfc3339_millis(value)
        .ok_or_else(|| ApiError::body_field("deliverAt", "deliverAt must be an RFC 3339 date-time"))?;
    if at > now + MAX_DELIVER_AHEAD_MS {
        return Err(ApiError::body_field("deliverAt", "deliverAt is at most 30 days ahead"));
    }
    if at < now - DELIVER_AT_SKEW_MS {
        return Err(ApiError::body_field("deliverAt", "deliverAt is in the past"));
    }
    Ok((at > now).then_some(at))
}

/// The application for a new message: the one named, or one created from the
/// body's `application` with the path as its uid.
async fn app_for_message(state: &AppState, auth: &OrgAuth, app_id: &str, input: &MessageIn) -> ApiResult<Application> {
    let get = || async { Ok::<_, ApiError>(state.resources.get_app(&auth.org_id, app_id).await?) };
    match get().await {
        Err(ApiError::NotFound) if input.application.is_some() => {
            // A message that will be refused must not leave a new application behind.
            new_message(state, input, &auth.org_id, app_id)?;
            let mut app_in = input.application.clone().unwrap_or_default();
            if app_in.uid.is_none() && !looks_like_id(IdPrefix::Application, app_id) {
                app_in.uid = Some(app_id.to_string());
            }
            app_in.validate()?;
            match state.resources.create_app(app_in.into_new(&auth.org_id), None).await {
                Ok(app) => Ok(app),
                // Created meanwhile by a concurrent request.
                Err(StoreError::Conflict { .. }) => get().await,
                Err(e) => Err(e.into()),
            }
        }
        other => other,
    }
}

/// Counts the message against its application's and organisation's ingest
/// quotas; 429 when one is used up.
fn within_quota(state: &AppState, org_id: &str, app: &Application) -> ApiResult<()> {
    let quotas = [
        ("application", format!("app:{}", app.id), app.rate_limit.or(state.config.app_ingest_rate)),
        ("organisation", format!("org:{org_id}"), state.config.org_ingest_rate),
    ];
    for (what, key, rate) in quotas {
        let Some(rate) = rate else { continue };
        if let Err(wait) = state.quotas.take(&key, rate) {
            return Err(ApiError::TooManyRequests {
                detail: format!(
                    "this {what} may send {rate} messages per second; retry after the Retry-After header's seconds"
                ),
                retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
            });
        }
    }
    Ok(())
}

/// Sending a message needs an organisation token (as in Svix): a portal token
/// is handed to end customers, who must not make hookd sign arbitrary events.
pub async fn create(
    state: State<AppState>,
    auth: OrgAuth,
    Path(app_id): Path<String>,
    uri: OriginalUri,
    headers: HeaderMap,
    body: RawBody,
) -> ApiResult<(StatusCode, Json<MessageOut>)> {
    use tracing::Instrument;
    // One span per message accepted (exported with `--otlp-endpoint`).
    let span = tracing::info_span!("message.accept", org_id = %auth.org_id, app_id = %app_id);
    accept(state, auth, app_id, uri, headers, body).instrument(span).await
}

async fn accept(
    State(state): State<AppState>,
    auth: OrgAuth,
    app_id: String,
    uri: OriginalUri,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Json<MessageOut>)> {
    let input: MessageIn = parse_json(&body)?;
    let with_content = QueryParams::parse(uri.query()).bool("with_content", true)?;
    let json_payload = match raw_payload(input.transformations_params.as_ref())? {
        Some(_) => None,
        None => Some(input.payload.get()),
    };
    crate::schemas::check(&state, &auth.org_id, &input.event_type, json_payload).await?;
    let app = app_for_message(&state, &auth, &app_id, &input).await?;
    let msg = new_message(&state, &input, &auth.org_id, &app.id)?;
    let ticket = match idempotency::begin(&state, &auth.org_id, uri.path(), &headers, &body).await? {
        Begin::Replay(prev) => return replay(&state, &auth.org_id, &app.id, prev, with_content).await,
        Begin::Fresh(t) => t,
    };
    within_quota(&state, &auth.org_id, &app)?;
    let record = idempotency::record(&ticket, 202, Some(msg.id.clone()));
    match state.deliveries.accept(msg.clone(), None, record).await {
        Ok(()) => Ok((StatusCode::ACCEPTED, Json(MessageOut::new(msg, with_content)))),
        Err(StoreError::IdempotencyReplay(prev)) => {
            replay(&state, &auth.org_id, &app.id, idempotency::replay_after_race(&ticket, prev)?, with_content).await
        }
        Err(e) => Err(e.into()),
    }
}

async fn replay(
    state: &AppState,
    org_id: &str,
    app_id: &str,
    prev: hookd_store::IdempotencyOutcome,
    with_content: bool,
) -> ApiResult<(StatusCode, Json<MessageOut>)> {
    let msg = state.resources.get_message(org_id, app_id, &prev.resource_id.unwrap_or_default()).await?;
    Ok((StatusCode::from_u16(prev.status).unwrap_or(StatusCode::ACCEPTED), Json(MessageOut::new(msg, with_content))))
}

/// The message filters of a list query: `event_types`, `channel`, `tag`, and
/// (when `with_times`) `before`/`after` on the message's time, and `with_content`.
pub fn message_filter(q: &QueryParams, with_times: bool) -> ApiResult<MessageFilter> {
    let filter = MessageFilter {
        event_types: q.list("event_types"),
        channel: q.get("channel").filter(|c| !c.is_empty()).map(String::from),
        tag: q.get("tag").filter(|c| !c.is_empty()).map(String::from),
        before: if with_times { q.datetime("before")? } else { None },
        after: if with_times { q.datetime("after")? } else { None },
        with_content: q.bool("with_content", true)?,
    };
    if filter.event_types.len() > 100 {
        return Err(ApiError::query_field("event_types", "at most 100 event types"));
    }
    Ok(filter)
}

pub async fn list(
    State(state): State<AppState>,
    auth: AppAuth,
    uri: OriginalUri,
) -> ApiResult<Json<ListResponse<MessageOut>>> {
    let app = &auth.app;
    let q = QueryParams::parse(uri.query());
    let page = pagination::page(&q, DefaultOrder::Descending)?;
    let filter = message_filter(&q, true)?;
    let with_content = filter.with_content;
    let rows = state.resources.list_messages(auth.org_id(), &app.id, &filter, &page).await?;
    Ok(Json(list_response(&page, rows, |m| m.id.clone(), |m| MessageOut::new(m, with_content))))
}

pub async fn get(
    State(state): State<AppState>,
    auth: AppAuth,
    Path((_, msg_id)): Path<(String, String)>,
    uri: OriginalUri,
) -> ApiResult<Json<MessageOut>> {
    let with_content = QueryParams::parse(uri.query()).bool("with_content", true)?;
    let msg = state.resources.get_message(auth.org_id(), &auth.app.id, &msg_id).await?;
    Ok(Json(MessageOut::new(msg, with_content)))
}

/// `POST …/msg/{id}/cancel` (extension): cancels the message's deliveries that
/// have not been made — a message scheduled with `deliverAt`, or waiting for a
/// retry or a disabled endpoint. One in flight finishes its attempt.
/// Like sending, it needs an organisation token.
pub async fn cancel(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path((app_id, msg_id)): Path<(String, String)>,
) -> ApiResult<Json<serde_json::Value>> {
    let app = state.resources.get_app(&auth.org_id, &app_id).await?;
    let msg = state.resources.get_message(&auth.org_id, &app.id, &msg_id).await?;
    let canceled = state.resources.cancel_message(&auth.org_id, &app.id, &msg.id).await?;
    Ok(Json(serde_json::json!({ "canceled": canceled })))
}

pub async fn expunge_content(
    State(state): State<AppState>,
    auth: AppAuth,
    Path((_, msg_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let msg = state.resources.get_message(auth.org_id(), &auth.app.id, &msg_id).await?;
    state.resources.expunge_message_content(auth.org_id(), &auth.app.id, &msg.id).await?;
    state.deliveries.message_expunged(&msg.id);
    Ok(StatusCode::NO_CONTENT)
}
