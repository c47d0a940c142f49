//! A source's request log: `GET …/source/{id}/log` in Svix's `IngestLogOut`
//! shape (the requests that were refused), and hookd's full log,
//! `GET …/source/{id}/request[/{req_id}]`, with each request's raw headers and
//! body, its outcome and how far its message got; and replay.
//!
//! Replaying a request runs it through the source again as if it arrived when
//! it first did (so a timestamp window is judged against its first receipt):
//! a request refused under a wrong secret is accepted once the secret is put
//! right. An accepted request replayed is forwarded again as a new message.

use std::collections::BTreeMap;

use axum::extract::{OriginalUri, Path, State};
use axum::Json;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hookd_core::id::{new_id, IdPrefix};
use hookd_core::timefmt::{format_millis, now_millis};
use hookd_inbound::Incoming;
use hookd_store::{Forwarding, InboundFilter, InboundOutcome, InboundRequest, Page};
use serde::{Deserialize, Serialize};

use super::cache::Loaded;
use super::receive::{check, Checked};
use super::sources::{self, ingest_url};
use crate::auth::OrgAuth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{parse_json_or_default, QueryParams, RawBody};
use crate::pagination::{self, list_response, DefaultOrder, ListResponse};
use crate::AppState;

/// Svix's `IngestLogOut` (snake_case, as the spec has it).
#[derive(Debug, Serialize)]
pub struct IngestLogOut {
    pub id: String,
    pub source_id: String,
    pub status_code: u16,
    pub error_text: String,
    pub headers: BTreeMap<String, String>,
    pub payload: String,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InboundRequestOut {
    pub id: String,
    pub source_id: String,
    pub received_at: String,
    pub method: String,
    pub remote_addr: Option<String>,
    /// `rejected`, `duplicate`, `ignored` (status tracking: its status did
    /// not move its object forward), or how far an accepted request got:
    /// `verified` (no endpoint took it), `forwarding`, `forwarded`, `failed`.
    pub status: &'static str,
    pub outcome: &'static str,
    pub status_code: u16,
    pub error: Option<String>,
    pub event_type: Option<String>,
    pub event_id: Option<String>,
    pub msg_id: Option<String>,
    pub replay_of: Option<String>,
    /// Status tracking: the object and the status the request reports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_status: Option<String>,
    pub deliveries: DeliveriesOut,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<Vec<(String, String)>>,
    /// The raw body, as text when it is UTF-8, else base64 (`bodyEncoding`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_encoding: Option<&'static str>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveriesOut {
    pub total: u64,
    pub succeeded: u64,
    pub failed: u64,
}

fn status_of(r: &InboundRequest, f: &Forwarding) -> &'static str {
    match r.outcome {
        InboundOutcome::Rejected => "rejected",
        InboundOutcome::Duplicate => "duplicate",
        InboundOutcome::Ignored => "ignored",
        InboundOutcome::Accepted if f.deliveries == 0 => "verified",
        InboundOutcome::Accepted if f.failed > 0 => "failed",
        InboundOutcome::Accepted if f.succeeded == f.deliveries => "forwarded",
        InboundOutcome::Accepted => "forwarding",
    }
}

/// The stored body, opened when it was sealed.
fn body_of(r: &InboundRequest) -> Vec<u8> {
    hookd_store::crypt::open_body(&r.body, &format!("{}:body", r.id)).unwrap_or_else(|_| r.body.clone())
}

pub(super) fn request_out(r: InboundRequest, f: Forwarding, with_content: bool) -> InboundRequestOut {
    let (body, body_encoding) = if with_content {
        let raw = body_of(&r);
        match String::from_utf8(raw) {
            Ok(text) => (Some(text), Some("utf8")),
            Err(e) => (Some(B64.encode(e.as_bytes())), Some("base64")),
        }
    } else {
        (None, None)
    };
    InboundRequestOut {
        status: status_of(&r, &f),
        outcome: r.outcome.as_str(),
        id: r.id,
        source_id: r.source_id,
        received_at: format_millis(r.received_at),
        method: r.method,
        remote_addr: r.remote_addr,
        status_code: r.status_code,
        error: r.error,
        event_type: r.event_type,
        event_id: r.event_id,
        msg_id: r.msg_id,
        replay_of: r.replay_of,
        object_id: r.object.as_ref().map(|o| o.object_id.clone()),
        object_status: r.object.map(|o| o.status),
        deliveries: DeliveriesOut { total: f.deliveries, succeeded: f.succeeded, failed: f.failed },
        headers: with_content.then_some(r.headers),
        body,
        body_encoding,
    }
}

fn filter_of(q: &QueryParams) -> ApiResult<InboundFilter> {
    let outcome = match q.get("outcome") {
        None => None,
        Some(o) => Some(InboundOutcome::parse(o).ok_or_else(|| {
            ApiError::invalid(&["query", "outcome"], "one of accepted, duplicate, rejected, ignored")
        })?),
    };
    Ok(InboundFilter {
        outcome,
        event_type: q.get("eventType").or(q.get("event_type")).map(str::to_string),
        object_id: q.get("objectId").or(q.get("object_id")).map(str::to_string),
        after: q.datetime("after")?.or(q.datetime("since")?),
        before: q.datetime("before")?.or(q.datetime("until")?),
    })
}

pub async fn list_errors(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path(source_id): Path<String>,
    uri: OriginalUri,
) -> ApiResult<Json<ListResponse<IngestLogOut>>> {
    let src = sources::load(&state, &auth, &source_id).await?;
    let q = QueryParams::parse(uri.query());
    let page = pagination::page(&q, DefaultOrder::Descending)?;
    let filter = InboundFilter { outcome: Some(InboundOutcome::Rejected), ..Default::default() };
    let rows = state.resources.list_inbound_requests(&auth.org_id, &src.id, &filter, &page).await?;
    Ok(Json(list_response(
        &page,
        rows,
        |(r, _)| r.id.clone(),
        |(r, _)| {
            let payload = String::from_utf8_lossy(&body_of(&r)).into_owned();
            IngestLogOut {
                status_code: r.status_code,
                error_text: r.error.unwrap_or_default(),
                headers: r.headers.into_iter().collect(),
                payload,
                created_at: format_millis(r.received_at),
                updated_at: format_millis(r.received_at),
                id: r.id,
                source_id: r.source_id,
            }
        },
    )))
}

pub async fn list(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path(source_id): Path<String>,
    uri: OriginalUri,
) -> ApiResult<Json<ListResponse<InboundRequestOut>>> {
    let src = sources::load(&state, &auth, &source_id).await?;
    let q = QueryParams::parse(uri.query());
    let page = pagination::page(&q, DefaultOrder::Descending)?;
    let with_content = q.bool("with_content", true)?;
    let rows = state.resources.list_inbound_requests(&auth.org_id, &src.id, &filter_of(&q)?, &page).await?;
    Ok(Json(list_response(&page, rows, |(r, _)| r.id.clone(), |(r, f)| request_out(r, f, with_content))))
}

pub async fn get(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path((source_id, request_id)): Path<(String, String)>,
) -> ApiResult<Json<InboundRequestOut>> {
    let src = sources::load(&state, &auth, &source_id).await?;
    let (r, f) = state.resources.get_inbound_request(&auth.org_id, &src.id, &request_id).await?;
    Ok(Json(request_out(r, f, true)))
}

pub async fn replay_one(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path((source_id, request_id)): Path<(String, String)>,
) -> ApiResult<Json<InboundRequestOut>> {
    let src = sources::load(&state, &auth, &source_id).await?;
    let (r, _) = state.resources.get_inbound_request(&auth.org_id, &src.id, &request_id).await?;
    if made_by_hookd(&r) {
        return Err(ApiError::BadRequest(MADE_BY_HOOKD.into()));
    }
    let loaded = replayable(src)?;
    let replayed = replay(&state, &loaded, r).await?;
    let (r, f) = state.resources.get_inbound_request(&auth.org_id, &loaded.source.id, &replayed).await?;
    Ok(Json(request_out(r, f, false)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkReplayIn {
    /// Only requests with this outcome (default: `rejected`).
    #[serde(default)]
    pub outcome: Option<String>,
    #[serde(default)]
    pub since: Option<String>,
    #[serde(default)]
    pub until: Option<String>,
    #[serde(default)]
    pub event_type: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BulkReplayOut {
    pub replayed: u64,
    pub accepted: u64,
    pub rejected: u64,
    /// More matched than one call replays (1,000): call again with `until`
    /// set to the oldest replayed request's time… or narrow the filter.
    pub done: bool,
}

const BULK_REPLAY_MAX: usize = 1000;

/// Replays the source's requests that match (at most 1,000 a call, oldest first).
pub async fn replay_many(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path(source_id): Path<String>,
    RawBody(body): RawBody,
) -> ApiResult<Json<BulkReplayOut>> {
    let input: BulkReplayIn = parse_json_or_default(&body)?;
    let src = sources::load(&state, &auth, &source_id).await?;
    let outcome = match input.outcome.as_deref() {
        None => InboundOutcome::Rejected,
        Some(o) => InboundOutcome::parse(o)
            .ok_or_else(|| ApiError::body_field("outcome", "one of accepted, duplicate, rejected, ignored"))?,
    };
    let time = |field: &str, v: &Option<String>| -> ApiResult<Option<i64>> {
        match v {
            None => Ok(None),
            Some(s) => crate::extract::parse_datetime(s)
                .map(Some)
                .ok_or_else(|| ApiError::body_field(field, "an RFC 3339 date-time")),
        }
    };
    let filter = InboundFilter {
        outcome: Some(outcome),
        event_type: input.event_type.clone(),
        object_id: None,
        after: time("since", &input.since)?,
        // Not what this call itself adds.
        before: Some(time("until", &input.until)?.unwrap_or_else(now_millis)),
    };
    let page = Page { limit: BULK_REPLAY_MAX, iterator: None, backwards: false, descending: false };
    let rows = state.resources.list_inbound_requests(&auth.org_id, &src.id, &filter, &page).await?;
    let done = rows.len() <= BULK_REPLAY_MAX;
    let loaded = replayable(src)?;
    let mut out = BulkReplayOut { replayed: 0, accepted: 0, rejected: 0, done };
    for (r, _) in rows.into_iter().take(BULK_REPLAY_MAX).filter(|(r, _)| !made_by_hookd(r)) {
        let id = replay(&state, &loaded, r).await?;
        let (r, _) = state.resources.get_inbound_request(&auth.org_id, &loaded.source.id, &id).await?;
        out.replayed += 1;
        match r.outcome {
            InboundOutcome::Rejected => out.rejected += 1,
            _ => out.accepted += 1,
        }
    }
    Ok(Json(out))
}

const MADE_BY_HOOKD: &str =
    "this request was made by a cron or poll source, not received: resend its message instead of replaying it";

/// A cron firing or a polled item (possibly fed into another source): there is
/// no received request to run again.
fn made_by_hookd(r: &InboundRequest) -> bool {
    r.remote_addr.is_none() && matches!(r.method.as_str(), "CRON" | "POLL")
}

/// A source whose requests can be run again: not a scheduled one (its
/// requests are its own; resend their messages instead).
fn replayable(src: hookd_store::Source) -> ApiResult<Loaded> {
    let loaded = Loaded::of(src).map_err(ApiError::Internal)?;
    if loaded.config.cron.is_some() || loaded.config.poll.is_some() {
        return Err(ApiError::BadRequest(
            "a cron or poll source makes its own requests: resend their messages instead of replaying".into(),
        ));
    }
    Ok(loaded)
}

/// Runs a stored request through the source again; returns the new request's id.
async fn replay(state: &AppState, loaded: &Loaded, original: InboundRequest) -> ApiResult<String> {
    let src = &loaded.source;
    let body = body_of(&original);
    let query = original.query.as_str();
    let base = ingest_url(state, &src.token);
    let url = if query.is_empty() { base } else { format!("{base}?{query}") };
    let incoming = Incoming {
        method: &original.method,
        url: &url,
        query,
        headers: &original.headers,
        body: &body,
        now_secs: original.received_at.div_euclid(1000),
    };
    let now = now_millis();
    let mut record = InboundRequest {
        id: new_id(IdPrefix::InboundRequest),
        received_at: now,
        body: body.clone(),
        outcome: InboundOutcome::Rejected,
        error: None,
        event_type: None,
        event_id: None,
        msg_id: None,
        replay_of: Some(original.id.clone()),
        object: None,
        ..original.clone()
    };
    let msg = match check(loaded, &incoming) {
        Ok(Checked { event_type, event_id, payload, object }) => {
            // A request that was forwarded is sent again on purpose: no dedupe
            // and no status tracking. One that was refused counts as new.
            let first_time = original.outcome == InboundOutcome::Rejected;
            let event_id = if first_time { event_id } else { None };
            record.object = if first_time { object } else { None };
            (record.event_type, record.event_id, record.status_code) =
                (Some(event_type.clone()), event_id.clone(), 200);
            Some(super::source_message(state, src, event_type, event_id, payload, now))
        }
        Err((status, why)) => {
            (record.status_code, record.error) = (status.as_u16(), Some(why.0));
            None
        }
    };
    let id = record.id.clone();
    state.deliveries.ingest(record, msg).await?;
    Ok(id)
}
