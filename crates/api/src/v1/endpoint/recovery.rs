//! Sending again: a test message (`send-example`), failed deliveries
//! (`recover`), and messages the endpoint never got (`replay-missing`).

use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use hookd_core::timefmt::format_millis;
use hookd_store::StoreError;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::load_endpoint;
use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{parse_datetime, parse_json, RawBody};
use crate::idempotency::{self, Begin};
use crate::v1::message::{accept_message, new_message, MessageIn};
use crate::v1::now;
use crate::wire::MessageOut;
use crate::AppState;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventExampleIn {
    pub event_type: String,
    #[serde(default)]
    pub example_index: Option<usize>,
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

/// `RecoverOut` / `ReplayOut`. The work is done before answering, so the task is
/// `finished`; `count` (a hookd extension) says how many deliveries it scheduled.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskOut {
    pub id: String,
    pub status: &'static str,
    pub task: &'static str,
    pub updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}

fn range(input: &TimeRangeIn) -> ApiResult<(i64, i64)> {
    let since =
        parse_datetime(&input.since).ok_or_else(|| ApiError::body_field("since", "expected an RFC 3339 timestamp"))?;
    let until = match &input.until {
        Some(u) => parse_datetime(u).ok_or_else(|| ApiError::body_field("until", "expected an RFC 3339 timestamp"))?,
        None => now() + 1,
    };
    if since >= until {
        return Err(ApiError::body_field("since", "since must be before until"));
    }
    Ok((since, until))
}

/// The example payload: the given one, else `examples[index]` of the event
/// type's newest schema, else `{}`.
async fn example_payload(state: &AppState, auth: &Auth, input: &EventExampleIn) -> ApiResult<String> {
    if let Some(p) = &input.payload {
        return Ok(p.get().to_string());
    }
    let et = match state.store.get_event_type(&auth.org_id, &input.event_type).await {
        Ok(et) => et,
        Err(StoreError::NotFound) => return Err(ApiError::body_field("eventType", "no such event type")),
        Err(e) => return Err(e.into()),
    };
    let schemas: serde_json::Value =
        et.schemas.as_deref().and_then(|s| serde_json::from_str(s).ok()).unwrap_or_default();
    let newest = schemas
        .as_object()
        .and_then(|m| m.iter().max_by_key(|(k, _)| k.parse::<u64>().unwrap_or(0)).map(|(_, v)| v.clone()));
    let example = newest
        .as_ref()
        .and_then(|s| s.get("examples"))
        .and_then(|e| e.get(input.example_index.unwrap_or(0)))
        .filter(|e| e.is_object())
        .cloned()
        .unwrap_or_else(|| serde_json::json!({}));
    Ok(example.to_string())
}

pub async fn send_example(
    State(state): State<AppState>,
    auth: Auth,
    Path((app_id, endpoint_id)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Json<MessageOut>)> {
    let input: EventExampleIn = parse_json(&body)?;
    let (app, ep) = load_endpoint(&state, &auth, &app_id, &endpoint_id).await?;
    let payload = example_payload(&state, &auth, &input).await?;
    let msg_in = MessageIn {
        event_type: input.event_type,
        payload: RawValue::from_string(payload).map_err(|e| ApiError::Internal(e.to_string()))?,
        event_id: None,
        channels: None,
        tags: None,
        application: None,
        deliver_at: None,
        transformations_params: None,
    };
    let msg = new_message(&state, &msg_in, &auth.org_id, &app.id)?;
    let msg = accept_message(&state, msg, Some(ep.id), None).await?;
    Ok((StatusCode::ACCEPTED, Json(MessageOut::new(msg, true))))
}

fn task(kind: &'static str, count: Option<u64>) -> TaskOut {
    TaskOut {
        id: hookd_core::new_id(hookd_core::IdPrefix::Message).replacen("msg_", "qtask_", 1),
        status: "finished",
        task: kind,
        updated_at: format_millis(now()),
        count,
    }
}

/// The two ways of sending again over a time range.
#[derive(Clone, Copy)]
enum Resend {
    /// Failed deliveries to the endpoint.
    Recover,
    /// Messages the endpoint should have had but never got.
    ReplayMissing,
}

impl Resend {
    fn task(self) -> &'static str {
        match self {
            Resend::Recover => "endpoint.recover",
            Resend::ReplayMissing => "endpoint.replay",
        }
    }
}

pub async fn recover(
    state: State<AppState>,
    auth: Auth,
    path: Path<(String, String)>,
    uri: OriginalUri,
    headers: HeaderMap,
    body: RawBody,
) -> ApiResult<(StatusCode, Json<TaskOut>)> {
    resend_range(Resend::Recover, state, auth, path, uri, headers, body).await
}

pub async fn replay_missing(
    state: State<AppState>,
    auth: Auth,
    path: Path<(String, String)>,
    uri: OriginalUri,
    headers: HeaderMap,
    body: RawBody,
) -> ApiResult<(StatusCode, Json<TaskOut>)> {
    resend_range(Resend::ReplayMissing, state, auth, path, uri, headers, body).await
}

/// Schedules the deliveries in one transaction and answers with a finished task.
async fn resend_range(
    kind: Resend,
    State(state): State<AppState>,
    auth: Auth,
    Path((app_id, endpoint_id)): Path<(String, String)>,
    uri: OriginalUri,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Json<TaskOut>)> {
    let input: TimeRangeIn = parse_json(&body)?;
    let (since, until) = range(&input)?;
    let (app, ep) = load_endpoint(&state, &auth, &app_id, &endpoint_id).await?;
    let replayed = || Ok((StatusCode::ACCEPTED, Json(task(kind.task(), None))));
    let ticket = match idempotency::begin(&state, &auth, uri.path(), &headers, &body).await? {
        Begin::Replay(_) => return replayed(),
        Begin::Fresh(t) => t,
    };
    let record = idempotency::record(&ticket, 202, None);
    let scheduled = match kind {
        Resend::Recover => state.store.recover_failed(&auth.org_id, &app.id, &ep.id, since, until, record).await,
        Resend::ReplayMissing => state.store.replay_missing(&auth.org_id, &app.id, &ep.id, since, until, record).await,
    };
    let n = match scheduled {
        Ok(n) => n,
        Err(StoreError::IdempotencyReplay(_)) => return replayed(),
        Err(e) => return Err(e.into()),
    };
    if let Some(d) = &state.dispatcher {
        d.wake();
    }
    Ok((StatusCode::ACCEPTED, Json(task(kind.task(), Some(n)))))
}
