//! Delivery attempts and per-destination delivery state, and manual resend.

use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use hookd_store::{AttemptFilter, MessageStatus, StoreError};
use serde_json::{json, Value};

use super::endpoint::load_endpoint;
use super::message::message_filter;
use crate::auth::AppAuth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{QueryParams, RawBody};
use crate::idempotency::{self, Begin};
use crate::pagination::{self, list_response, DefaultOrder, ListResponse};
use crate::wire::{EndpointMessageOut, MessageAttemptHeadersOut, MessageAttemptOut, MessageEndpointOut, MessageOut};
use crate::AppState;

fn status_filter(q: &QueryParams) -> ApiResult<Option<MessageStatus>> {
    match q.int("status")? {
        Some(s) => {
            MessageStatus::from_i64(s).map(Some).ok_or_else(|| ApiError::query_field("status", "status must be 0 to 4"))
        }
        None => Ok(None),
    }
}

async fn list_attempts(
    state: &AppState,
    auth: &AppAuth,
    q: &QueryParams,
    mut filter: AttemptFilter,
) -> ApiResult<Json<ListResponse<MessageAttemptOut>>> {
    let app_id = auth.app.id.as_str();
    let page = pagination::page(q, DefaultOrder::Descending)?;
    filter.status = status_filter(q)?;
    filter.status_code_class = match q.int("status_code_class")? {
        Some(c) if ![0, 100, 200, 300, 400, 500].contains(&c) => {
            return Err(ApiError::query_field("status_code_class", "must be 0, 100, 200, 300, 400 or 500"))
        }
        other => other,
    };
    filter.before = q.datetime("before")?;
    filter.after = q.datetime("after")?;
    filter.message = message_filter(q, false)?;
    let with_msg = q.bool("with_msg", false)?;
    let rows = state.resources.list_attempts(auth.org_id(), app_id, &filter, &page).await?;
    let mut out = list_response(&page, rows, |a| a.id.clone(), MessageAttemptOut::from);
    if with_msg {
        for a in &mut out.data {
            if let Ok(m) = state.resources.get_message(auth.org_id(), app_id, &a.msg_id).await {
                a.msg = Some(MessageOut::new(m, q.bool("with_content", true)?));
            }
        }
    }
    Ok(Json(out))
}

pub async fn list_by_endpoint(
    State(state): State<AppState>,
    auth: AppAuth,
    Path((_, endpoint_id)): Path<(String, String)>,
    uri: OriginalUri,
) -> ApiResult<Json<ListResponse<MessageAttemptOut>>> {
    let ep = load_endpoint(&state, &auth, &endpoint_id).await?;
    let q = QueryParams::parse(uri.query());
    let filter = AttemptFilter { endpoint_id: Some(ep.id), ..Default::default() };
    list_attempts(&state, &auth, &q, filter).await
}

pub async fn list_by_msg(
    State(state): State<AppState>,
    auth: AppAuth,
    Path((_, msg_id)): Path<(String, String)>,
    uri: OriginalUri,
) -> ApiResult<Json<ListResponse<MessageAttemptOut>>> {
    let msg = state.resources.get_message(auth.org_id(), &auth.app.id, &msg_id).await?;
    let q = QueryParams::parse(uri.query());
    let endpoint_id = match q.get("endpoint_id").filter(|e| !e.is_empty()) {
        Some(e) => Some(load_endpoint(&state, &auth, e).await?.id),
        None => None,
    };
    let filter = AttemptFilter { msg_id: Some(msg.id), endpoint_id, ..Default::default() };
    list_attempts(&state, &auth, &q, filter).await
}

pub async fn get(
    State(state): State<AppState>,
    auth: AppAuth,
    Path((_, msg_id, attempt_id)): Path<(String, String, String)>,
) -> ApiResult<Json<MessageAttemptOut>> {
    let msg = state.resources.get_message(auth.org_id(), &auth.app.id, &msg_id).await?;
    Ok(Json(state.resources.get_attempt(auth.org_id(), &auth.app.id, Some(&msg.id), &attempt_id).await?.into()))
}

/// `GET /api/v1/app/{app_id}/attempt/{attempt_id}` (a hookd extension): an
/// attempt found by its id alone, for a caller that has no message id.
pub async fn get_by_id(
    State(state): State<AppState>,
    auth: AppAuth,
    Path((_, attempt_id)): Path<(String, String)>,
) -> ApiResult<Json<MessageAttemptOut>> {
    Ok(Json(state.resources.get_attempt(auth.org_id(), &auth.app.id, None, &attempt_id).await?.into()))
}

/// The headers an attempt's request carried and its response came back with.
pub async fn headers(
    State(state): State<AppState>,
    auth: AppAuth,
    Path((_, msg_id, attempt_id)): Path<(String, String, String)>,
) -> ApiResult<Json<MessageAttemptHeadersOut>> {
    let msg = state.resources.get_message(auth.org_id(), &auth.app.id, &msg_id).await?;
    let headers = state.resources.get_attempt_headers(auth.org_id(), &auth.app.id, &msg.id, &attempt_id).await?;
    Ok(Json(MessageAttemptHeadersOut::from_stored(headers, &attempt_id)))
}

/// The endpoints a message went to, with each delivery's state.
pub async fn list_attempted_destinations(
    State(state): State<AppState>,
    auth: AppAuth,
    Path((_, msg_id)): Path<(String, String)>,
    uri: OriginalUri,
) -> ApiResult<Json<ListResponse<MessageEndpointOut>>> {
    let msg = state.resources.get_message(auth.org_id(), &auth.app.id, &msg_id).await?;
    let page = pagination::page(&QueryParams::parse(uri.query()), DefaultOrder::Ascending)?;
    let rows = state.resources.list_message_destinations(auth.org_id(), &auth.app.id, &msg.id, &page).await?;
    Ok(Json(list_response(&page, rows, |(_, e)| e.id.clone(), |(d, e)| MessageEndpointOut::new(d, &e))))
}

/// The messages sent (or being sent) to an endpoint, with each delivery's state.
pub async fn list_attempted_messages(
    State(state): State<AppState>,
    auth: AppAuth,
    Path((_, endpoint_id)): Path<(String, String)>,
    uri: OriginalUri,
) -> ApiResult<Json<ListResponse<EndpointMessageOut>>> {
    let ep = load_endpoint(&state, &auth, &endpoint_id).await?;
    let q = QueryParams::parse(uri.query());
    let page = pagination::page(&q, DefaultOrder::Descending)?;
    let status = status_filter(&q)?;
    let filter = message_filter(&q, true)?;
    let with_content = filter.with_content;
    let rows =
        state.resources.list_endpoint_messages(auth.org_id(), &auth.app.id, &ep.id, status, &filter, &page).await?;
    Ok(Json(list_response(&page, rows, |(_, m)| m.id.clone(), |(d, m)| EndpointMessageOut::new(d, m, with_content))))
}

/// Sends the message to the endpoint again (a manual attempt): now, or right
/// after the attempt in flight when there is one. Answers 202 with `{}`, which
/// the SDKs parse.
pub async fn resend(
    State(state): State<AppState>,
    auth: AppAuth,
    Path((_, msg_id, endpoint_id)): Path<(String, String, String)>,
    uri: OriginalUri,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let ep = load_endpoint(&state, &auth, &endpoint_id).await?;
    let msg = state.resources.get_message(auth.org_id(), &auth.app.id, &msg_id).await?;
    if msg.payload.is_none() {
        return Err(ApiError::BadRequest("the message's content was expunged; it cannot be sent again".into()));
    }
    if ep.disabled {
        return Err(ApiError::Conflict {
            detail: "the endpoint is disabled; enable it to send (its pending deliveries resume then)".into(),
            existing_id: None,
        });
    }
    let ticket = match idempotency::begin(&state, auth.org_id(), uri.path(), &headers, &body).await? {
        Begin::Replay(_) => return Ok((StatusCode::ACCEPTED, Json(json!({})))),
        Begin::Fresh(t) => t,
    };
    let record = idempotency::record(&ticket, 202, None);
    match state.deliveries.resend(auth.org_id(), &auth.app.id, &msg.id, &ep.id, record).await {
        Ok(()) | Err(StoreError::IdempotencyReplay(_)) => Ok((StatusCode::ACCEPTED, Json(json!({})))),
        Err(e) => Err(e.into()),
    }
}
