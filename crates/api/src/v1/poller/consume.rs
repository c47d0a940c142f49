//! Reading a poller sink.
//!
//! - `GET …/poller/{sink}`: a page after `iterator` (or after `after`, or from
//!   the sink's start); the caller keeps the iterator.
//! - `GET …/poller/{sink}/consumer/{consumer}`: a page from where the consumer
//!   is (or from `iterator`); the consumer moves to the page's end, so each
//!   read moves on. `POST …/consumer/{consumer}/seek` puts it before the first
//!   message created after a time.
//! - `GET …/polling-endpoint/{sink}/consumer/{consumer}` (v2): a batch after the
//!   consumer's committed offset, leased to it for `lease_duration_ms`; while
//!   the lease lasts it is shown nothing new. `POST …/commit` with the offset of
//!   the last message it processed ends the lease; uncommitted, the same batch
//!   is shown again once the lease ends: at least once.
//!
//! A disabled sink shows nothing (and moves no one) until it is enabled; what
//! was logged meanwhile is shown then.

use std::collections::BTreeMap;

use axum::extract::{OriginalUri, Path, State};
use axum::http::StatusCode;
use axum::Json;
use hookd_core::validate;
use hookd_store::{PollOnly, PollPage, PollerClaim, PollerSink, StartAt, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::load_sink;
use crate::auth::AppAuth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{parse_datetime, parse_json, QueryParams, RawBody};
use crate::wire::MessageOut;
use crate::AppState;

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 250;
/// How long a v2 batch is leased when the read does not say.
const DEFAULT_LEASE_MS: i64 = 30_000;
const MAX_LEASE_MS: i64 = 3_600_000;

/// `PollingEndpointMessageOut` (v1) and `PollerV2MessageOut` (v2, with `offset`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolledMessageOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
    pub id: String,
    pub event_id: Option<String>,
    pub event_type: String,
    pub payload: Box<RawValue>,
    pub channels: Option<Vec<String>>,
    pub tags: Option<Vec<String>>,
    pub timestamp: String,
    pub deliver_at: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
    /// A raw payload (instead of `payload`) and its content type, as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transformations_params: Option<serde_json::Value>,
}

impl PolledMessageOut {
    fn new(offset: Option<i64>, m: hookd_store::Message) -> Self {
        let m = MessageOut::new(m, true);
        PolledMessageOut {
            offset,
            id: m.id,
            event_id: m.event_id,
            event_type: m.event_type,
            payload: m.payload,
            channels: m.channels,
            tags: m.tags,
            timestamp: m.timestamp,
            deliver_at: m.deliver_at,
            headers: None,
            transformations_params: m.transformations_params,
        }
    }
}

/// `PollingEndpointOut`.
#[derive(Serialize)]
pub struct PollingEndpointOut {
    pub data: Vec<PolledMessageOut>,
    pub iterator: String,
    pub done: bool,
}

impl PollingEndpointOut {
    fn new(page: PollPage) -> Self {
        PollingEndpointOut {
            data: page.messages.into_iter().map(|(_, m)| PolledMessageOut::new(None, m)).collect(),
            iterator: page.next.to_string(),
            done: page.done,
        }
    }

    /// Nothing, from `at`: what a disabled sink shows.
    fn nothing(at: i64) -> Self {
        PollingEndpointOut { data: Vec::new(), iterator: at.to_string(), done: true }
    }
}

/// `PollerV2PollOut`.
#[derive(Serialize)]
pub struct PollerV2PollOut {
    pub data: Vec<PolledMessageOut>,
    pub done: bool,
}

/// `PollingEndpointConsumerSeekIn`.
#[derive(Debug, Deserialize)]
pub struct SeekIn {
    pub after: String,
}

/// `PollingEndpointConsumerSeekOut`.
#[derive(Serialize)]
pub struct SeekOut {
    pub iterator: String,
}

/// `PollerV2CommitIn`.
#[derive(Debug, Deserialize)]
pub struct CommitIn {
    pub offset: u64,
}

/// `limit`: 1 to 250, 50 when left out.
fn limit(q: &QueryParams) -> ApiResult<usize> {
    match q.int("limit")?.unwrap_or(DEFAULT_LIMIT) {
        n @ 1..=MAX_LIMIT => Ok(n as usize),
        _ => Err(ApiError::query_field("limit", format!("limit must be between 1 and {MAX_LIMIT}"))),
    }
}

/// `iterator`: an offset a read of this sink answered, never before where the
/// sink starts.
fn iterator(q: &QueryParams, sink: &PollerSink) -> ApiResult<Option<i64>> {
    match q.get("iterator").filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(it) => match it.parse::<i64>() {
            Ok(n) if n >= 0 => Ok(Some(n.max(sink.start_offset))),
            _ => Err(ApiError::query_field("iterator", "iterator must be one a poll of this sink returned")),
        },
    }
}

/// A consumer id: 1 to 256 of a-z, A-Z, 0-9, `-`, `_` and `.`.
fn consumer_id(id: &str) -> ApiResult<()> {
    validate::uid(id).map_err(|e| ApiError::invalid(&["path", "consumer_id"], e.replace("uid", "consumer_id")))
}

/// The store's refusal of a consumer, on the path parameter it is about.
fn consumer_error(e: StoreError) -> ApiError {
    match e {
        StoreError::Invalid { field: "consumer_id", msg } => ApiError::invalid(&["path", "consumer_id"], msg),
        other => other.into(),
    }
}

/// v1: a page after `iterator`, else after `after`, else from the sink's start.
pub async fn poll(
    State(state): State<AppState>,
    auth: AppAuth,
    Path((_, sink_id)): Path<(String, String)>,
    uri: OriginalUri,
) -> ApiResult<Json<PollingEndpointOut>> {
    let q = QueryParams::parse(uri.query());
    let limit = limit(&q)?;
    let event_type = q.get("event_type").filter(|s| !s.is_empty()).map(String::from);
    if let Some(t) = &event_type {
        validate::event_type_name(t).map_err(|e| ApiError::query_field("event_type", e))?;
    }
    let channel = q.get("channel").filter(|s| !s.is_empty()).map(String::from);
    if let Some(c) = &channel {
        validate::channel(c).map_err(|e| ApiError::query_field("channel", e))?;
    }
    let after = q.datetime("after")?;
    let sink = load_sink(&state, &auth, &sink_id).await?;
    let from = match (iterator(&q, &sink)?, after) {
        (Some(it), _) => it,
        (None, Some(ms)) => state.resources.poller_offset_after(&sink, ms).await?,
        (None, None) => sink.start_offset,
    };
    if sink.disabled {
        return Ok(Json(PollingEndpointOut::nothing(from)));
    }
    let page = state.resources.read_poller(&sink, from, &PollOnly { event_type, channel }, limit).await?;
    Ok(Json(PollingEndpointOut::new(page)))
}

/// v1: a page from where the consumer is (or from `iterator`); the consumer
/// moves to the page's end.
pub async fn consumer_poll(
    State(state): State<AppState>,
    auth: AppAuth,
    Path((_, sink_id, consumer)): Path<(String, String, String)>,
    uri: OriginalUri,
) -> ApiResult<Json<PollingEndpointOut>> {
    let q = QueryParams::parse(uri.query());
    let limit = limit(&q)?;
    consumer_id(&consumer)?;
    let sink = load_sink(&state, &auth, &sink_id).await?;
    let given = iterator(&q, &sink)?;
    let c = state.resources.poller_consumer(&sink, &consumer, StartAt::Earliest).await.map_err(consumer_error)?;
    let from = given.unwrap_or(c.position);
    if sink.disabled {
        return Ok(Json(PollingEndpointOut::nothing(from)));
    }
    let page = state.resources.read_poller(&sink, from, &PollOnly::default(), limit).await?;
    if page.next != c.position {
        state.resources.move_poller_consumer(&sink, &consumer, page.next).await?;
    }
    Ok(Json(PollingEndpointOut::new(page)))
}

/// Puts the consumer before the first message created after `after`.
pub async fn consumer_seek(
    State(state): State<AppState>,
    auth: AppAuth,
    Path((_, sink_id, consumer)): Path<(String, String, String)>,
    RawBody(body): RawBody,
) -> ApiResult<Json<SeekOut>> {
    consumer_id(&consumer)?;
    let sink = load_sink(&state, &auth, &sink_id).await?;
    let input: SeekIn = parse_json(&body)?;
    let after = parse_datetime(&input.after)
        .ok_or_else(|| ApiError::body_field("after", "expected an RFC 3339 timestamp like 2026-01-31T12:00:00Z"))?;
    let offset = state.resources.poller_offset_after(&sink, after).await?;
    state.resources.move_poller_consumer(&sink, &consumer, offset).await.map_err(consumer_error)?;
    Ok(Json(SeekOut { iterator: offset.to_string() }))
}

/// v2: a batch after the consumer's committed offset, leased to it.
pub async fn v2_poll(
    State(state): State<AppState>,
    auth: AppAuth,
    Path((_, sink_id, consumer)): Path<(String, String, String)>,
    uri: OriginalUri,
) -> ApiResult<Json<PollerV2PollOut>> {
    let q = QueryParams::parse(uri.query());
    let limit = limit(&q)?;
    let lease_ms = q.int("lease_duration_ms")?.unwrap_or(DEFAULT_LEASE_MS);
    if !(0..=MAX_LEASE_MS).contains(&lease_ms) {
        return Err(ApiError::query_field(
            "lease_duration_ms",
            format!("lease_duration_ms is 0 (no lease) to {MAX_LEASE_MS}"),
        ));
    }
    let start = match q.get("starting_position").filter(|s| !s.is_empty()) {
        None | Some("earliest") => StartAt::Earliest,
        Some("latest") => StartAt::Latest,
        Some(_) => {
            return Err(ApiError::query_field("starting_position", "starting_position is `earliest` or `latest`"))
        }
    };
    consumer_id(&consumer)?;
    let sink = load_sink(&state, &auth, &sink_id).await?;
    let c = state.resources.poller_consumer(&sink, &consumer, start).await.map_err(consumer_error)?;
    let nothing = Json(PollerV2PollOut { data: Vec::new(), done: true });
    if sink.disabled || c.leased {
        return Ok(nothing);
    }
    let from = c.position;
    let page = state.resources.read_poller(&sink, from, &PollOnly::default(), limit).await?;
    let Some(&(end, _)) = page.messages.last() else {
        // Nothing matched up to `next`: the consumer is done with all of it.
        if page.next > from {
            state.resources.claim_poller_batch(&sink, &consumer, PollerClaim::Skip { from, to: page.next }).await?;
        }
        return Ok(Json(PollerV2PollOut { data: Vec::new(), done: page.done }));
    };
    let claim = PollerClaim::Batch { from, end, lease_ms };
    if !state.resources.claim_poller_batch(&sink, &consumer, claim).await? {
        // Another read of this consumer took the batch (or moved it) meanwhile.
        return Ok(nothing);
    }
    let data = page.messages.into_iter().map(|(offset, m)| PolledMessageOut::new(Some(offset), m)).collect();
    Ok(Json(PollerV2PollOut { data, done: page.done }))
}

/// v2: the consumer is done with every message up to `offset`. Answers 204.
pub async fn v2_commit(
    State(state): State<AppState>,
    auth: AppAuth,
    Path((_, sink_id, consumer)): Path<(String, String, String)>,
    RawBody(body): RawBody,
) -> ApiResult<StatusCode> {
    consumer_id(&consumer)?;
    let sink = load_sink(&state, &auth, &sink_id).await?;
    let input: CommitIn = parse_json(&body)?;
    let offset = i64::try_from(input.offset)
        .map_err(|_| ApiError::body_field("offset", "offset must be one a poll of this consumer returned"))?;
    state.resources.commit_poller_consumer(&sink, &consumer, offset).await?;
    Ok(StatusCode::NO_CONTENT)
}
