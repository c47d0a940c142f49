//! Sending again: a test message (`send-example`), every failure since a time
//! (`recover`), and messages the endpoint never got (`replay-missing`). The last
//! two run as background tasks (Svix's shape): the call answers at once with
//! the task, which works through the range in batches.

use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use hookd_core::id::{new_id, IdPrefix};
use hookd_core::validate;
use hookd_core::MessageStatus;
use hookd_store::{BackgroundTask, ReplayFilter, StoreError, TaskKind, TaskStatus};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::load_endpoint;
use crate::auth::AppAuth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{parse_datetime, parse_json, RawBody};
use crate::idempotency::{self, Begin};
use crate::v1::background_task::TaskOut;
use crate::v1::message::{new_message, MessageIn};
use crate::v1::now;
use crate::wire::MessageOut;
use crate::AppState;

/// How far back recover and replay may reach, as in Svix.
pub const MAX_RANGE_DAYS: i64 = 14;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventExampleIn {
    pub event_type: String,
    #[serde(default)]
    pub example_index: Option<usize>,
    /// A payload to send instead of the schema's example (organisation tokens only).
    #[serde(default)]
    pub payload: Option<Box<RawValue>>,
}

/// `RecoverIn` and `ReplayIn`.
#[derive(Debug, Deserialize)]
pub struct TimeRangeIn {
    pub since: String,
    #[serde(default)]
    pub until: Option<String>,
}

/// `BulkReplayIn`: a range and filters.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkReplayIn {
    pub since: String,
    #[serde(default)]
    pub until: Option<String>,
    #[serde(default)]
    pub event_types: Option<Vec<String>>,
    #[serde(default)]
    pub channel: Option<String>,
    #[serde(default)]
    pub tag: Option<String>,
    #[serde(default)]
    pub status: Option<i64>,
    #[serde(default)]
    pub status_code_class: Option<i64>,
}

impl BulkReplayIn {
    fn filter(&self) -> ApiResult<ReplayFilter> {
        if let Some(types) = &self.event_types {
            for t in types {
                validate::event_type_name(t).map_err(|e| ApiError::body_field("eventTypes", e))?;
            }
        }
        for (field, value) in [("channel", &self.channel), ("tag", &self.tag)] {
            if let Some(v) = value {
                validate::channel(v).map_err(|e| ApiError::body_field(field, e))?;
            }
        }
        if self.status.is_some_and(|s| MessageStatus::from_i64(s).is_none()) {
            return Err(ApiError::body_field("status", "status must be 0 to 4"));
        }
        if self.status_code_class.is_some_and(|c| !matches!(c, 0 | 100 | 200 | 300 | 400 | 500)) {
            return Err(ApiError::body_field("statusCodeClass", "must be 0, 100, 200, 300, 400 or 500"));
        }
        Ok(ReplayFilter {
            event_types: self.event_types.clone().filter(|t| !t.is_empty()),
            channel: self.channel.clone(),
            tag: self.tag.clone(),
            status: self.status,
            status_code_class: self.status_code_class,
        })
    }
}

/// [since, until) in Unix ms: `since` at most 14 days back, `until` (default:
/// now) after it.
fn range(input: &TimeRangeIn, now: i64) -> ApiResult<(i64, i64)> {
    let since =
        parse_datetime(&input.since).ok_or_else(|| ApiError::body_field("since", "expected an RFC 3339 timestamp"))?;
    let until = match &input.until {
        Some(u) => parse_datetime(u).ok_or_else(|| ApiError::body_field("until", "expected an RFC 3339 timestamp"))?,
        None => now + 1,
    };
    if since < now - MAX_RANGE_DAYS * 86_400_000 {
        return Err(ApiError::body_field("since", format!("since may be at most {MAX_RANGE_DAYS} days in the past")));
    }
    if since >= until {
        return Err(ApiError::body_field("since", "since must be before until"));
    }
    Ok((since, until))
}

/// The example payload: the given one, else `examples[index]` of the event
/// type's newest schema, else one built from that schema, else `{}`.
async fn example_payload(state: &AppState, org_id: &str, input: &EventExampleIn) -> ApiResult<String> {
    if let Some(p) = &input.payload {
        return Ok(p.get().to_string());
    }
    let et = match state.resources.get_event_type(org_id, &input.event_type).await {
        Ok(et) => et,
        Err(StoreError::NotFound) => return Err(ApiError::body_field("eventType", "no such event type")),
        Err(e) => return Err(e.into()),
    };
    let schemas: serde_json::Value =
        et.schemas.as_deref().and_then(|s| serde_json::from_str(s).ok()).unwrap_or_default();
    let example = match hookd_core::schema::latest(&schemas) {
        None => serde_json::json!({}),
        Some(schema) => match (schema.get("examples").and_then(|e| e.as_array()), input.example_index) {
            (Some(examples), Some(i)) => examples.get(i).cloned().ok_or_else(|| {
                ApiError::body_field("exampleIndex", format!("the schema has {} examples", examples.len()))
            })?,
            // Its first example, else one built from the schema.
            _ => hookd_core::schema::example(schema),
        },
    };
    if !example.is_object() {
        return Err(ApiError::body_field("eventType", "the schema's example is not a JSON object"));
    }
    Ok(example.to_string())
}

/// Sends an example of the event type to this endpoint only. A portal
/// (app-scoped) token may send the event type's own examples, not a payload of
/// its choosing: hookd signs what it sends.
pub async fn send_example(
    State(state): State<AppState>,
    auth: AppAuth,
    Path((_, endpoint_id)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Json<MessageOut>)> {
    let input: EventExampleIn = parse_json(&body)?;
    // Nor may an MCP token, which can send examples but not change endpoints.
    let limited = !auth.auth.capabilities.contains(crate::auth::Capability::ManageEndpoint);
    if input.payload.is_some() && (auth.is_app_scoped() || limited) {
        return Err(ApiError::Forbidden(
            "an application-scoped or MCP token can send the event type's examples only, not a payload of its own"
                .into(),
        ));
    }
    let ep = load_endpoint(&state, &auth, &endpoint_id).await?;
    let payload = example_payload(&state, auth.org_id(), &input).await?;
    crate::schemas::check(&state, auth.org_id(), &input.event_type, Some(&payload)).await?;
    let msg_in = MessageIn {
        event_type: input.event_type,
        payload: RawValue::from_string(payload).map_err(|e| ApiError::Internal(e.to_string()))?,
        event_id: None,
        channels: None,
        tags: None,
        application: None,
        deliver_at: None,
        transformations_params: None,
        payload_retention_period: None,
        payload_retention_hours: None,
    };
    let msg = new_message(&state, &msg_in, auth.org_id(), &auth.app.id)?;
    state.deliveries.accept(msg.clone(), Some(ep.id), None).await?;
    Ok((StatusCode::ACCEPTED, Json(MessageOut::new(msg, true))))
}

pub async fn recover(
    state: State<AppState>,
    auth: AppAuth,
    path: Path<(String, String)>,
    uri: OriginalUri,
    headers: HeaderMap,
    body: RawBody,
) -> ApiResult<(StatusCode, Json<TaskOut>)> {
    let input: TimeRangeIn = parse_json(&body.0)?;
    start_range_task(TaskKind::EndpointRecover, input, None, state, auth, path, uri, headers, body).await
}

pub async fn replay_missing(
    state: State<AppState>,
    auth: AppAuth,
    path: Path<(String, String)>,
    uri: OriginalUri,
    headers: HeaderMap,
    body: RawBody,
) -> ApiResult<(StatusCode, Json<TaskOut>)> {
    let input: TimeRangeIn = parse_json(&body.0)?;
    start_range_task(TaskKind::EndpointReplay, input, None, state, auth, path, uri, headers, body).await
}

/// `POST …/endpoint/{id}/bulk-replay`: sends again the endpoint's deliveries of
/// messages in the range that match the filters (a status of 2 replays its
/// dead letters), as an `endpoint.bulk-replay` task.
pub async fn bulk_replay(
    state: State<AppState>,
    auth: AppAuth,
    path: Path<(String, String)>,
    uri: OriginalUri,
    headers: HeaderMap,
    body: RawBody,
) -> ApiResult<(StatusCode, Json<TaskOut>)> {
    let input: BulkReplayIn = parse_json(&body.0)?;
    let filter = input.filter()?;
    let range = TimeRangeIn { since: input.since, until: input.until };
    start_range_task(TaskKind::EndpointBulkReplay, range, Some(filter), state, auth, path, uri, headers, body).await
}

/// Stores the task (with the idempotency key, in one transaction) and answers
/// 202 with it, `running`; a delivering node works through it.
#[allow(clippy::too_many_arguments)]
async fn start_range_task(
    kind: TaskKind,
    input: TimeRangeIn,
    filter: Option<ReplayFilter>,
    State(state): State<AppState>,
    auth: AppAuth,
    Path((_, endpoint_id)): Path<(String, String)>,
    uri: OriginalUri,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Json<TaskOut>)> {
    let t = now();
    let (since, until) = range(&input, t)?;
    let ep = load_endpoint(&state, &auth, &endpoint_id).await?;
    let replay = |prev: hookd_store::IdempotencyOutcome| async {
        let task = state.resources.get_task(auth.org_id(), &prev.resource_id.unwrap_or_default()).await?;
        Ok((StatusCode::ACCEPTED, Json(TaskOut::from(&task))))
    };
    let ticket = match idempotency::begin(&state, auth.org_id(), uri.path(), &headers, &body).await? {
        Begin::Replay(prev) => return replay(prev).await,
        Begin::Fresh(t) => t,
    };
    let task = BackgroundTask {
        id: new_id(IdPrefix::Task),
        org_id: auth.org_id().to_string(),
        app_id: auth.app.id.clone(),
        endpoint_id: ep.id,
        kind,
        status: TaskStatus::Running,
        since,
        until,
        cursor: None,
        messages_sent: 0,
        error: None,
        created_at: t,
        updated_at: t,
        filter,
        result: None,
    };
    let record = idempotency::record(&ticket, 202, Some(task.id.clone()));
    match state.deliveries.start_task(task, record).await {
        Ok(task) => Ok((StatusCode::ACCEPTED, Json(TaskOut::from(&task)))),
        Err(StoreError::IdempotencyReplay(prev)) => replay(idempotency::replay_after_race(&ticket, prev)?).await,
        Err(e) => Err(e.into()),
    }
}
