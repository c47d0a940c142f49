//! Sources that run on a schedule: a `cron` source emits its payload when its
//! expression fires; a `poll` source GETs its status URL every interval and
//! feeds in each item it has not seen (or, with status tracking, each item
//! whose status moved forward) as a request of the source.
//!
//! Every delivering node runs [`run`]. A due source is taken with a lease in
//! the store, so one node runs it at a time; a node that dies mid-run leaves
//! the lease to lapse and another runs it again. Runs are idempotent: a cron
//! firing's event id is its due time, a polled item's is its id (and status),
//! so a repeated run forwards nothing twice.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::Json;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hookd_core::id::{new_id, IdPrefix};
use hookd_core::timefmt::{format_millis, now_millis};
use hookd_inbound::extract::{self, Selector};
use hookd_inbound::schedule::{Cron, PollConfig};
use hookd_inbound::Incoming;
use hookd_store::{InboundOutcome, InboundRequest, ObjectStatus, Source, StoreError};
use serde::Serialize;
use serde_json::{json, Value};

use super::cache::Loaded;
use super::sources;
use crate::auth::OrgAuth;
use crate::error::{ApiError, ApiResult};
use crate::AppState;

/// How long a node holds a source it runs before another may take it: well
/// beyond a poll (a fetch within the request timeout, then at most 1,000 items).
const RUN_LEASE_MS: i64 = 120_000;
/// Sources one node runs at once (a slow poll does not hold up a cron firing).
const RUNS_AT_ONCE: usize = 8;
/// How often a node looks for due sources when none was.
const TICK: Duration = Duration::from_secs(1);
/// When a source cannot run (its configuration no longer parses), it is tried
/// again after this.
const RETRY_MS: i64 = 60_000;

/// When a source runs next after `now` (ms); `None`: it runs on no schedule.
pub fn next_due(src: &Source, now: i64, first: bool) -> Option<i64> {
    match src.kind.as_str() {
        "cron" => {
            let schedule = src.config.get("schedule")?.as_str()?;
            Cron::parse(schedule).ok()?.next_after(now.div_euclid(1000)).map(|s| s * 1000)
        }
        // A new or changed poll source polls at once.
        "poll" if first => Some(now),
        "poll" => {
            let interval = src.config.get("intervalSeconds").and_then(Value::as_i64).unwrap_or(60);
            Some(now + interval * 1000)
        }
        _ => None,
    }
}

/// Sets (or clears) a source's schedule after it was created or changed.
pub async fn reschedule(state: &AppState, src: &Source) -> ApiResult<()> {
    let due = next_due(src, now_millis(), true);
    Ok(state.resources.set_source_schedule(&src.org_id, &src.id, due).await?)
}

/// The loop each delivering node runs.
pub async fn run(state: AppState) {
    let mut running = tokio::task::JoinSet::new();
    loop {
        while running.try_join_next().is_some() {}
        if running.len() >= RUNS_AT_ONCE {
            let _ = running.join_next().await;
            continue;
        }
        let now = now_millis();
        let lease_until = now + RUN_LEASE_MS;
        match state.resources.claim_due_source(now, lease_until).await {
            Ok(Some((src, due_at))) => {
                let state = state.clone();
                running.spawn(async move {
                    let (next, result) = run_one(&state, &src, due_at).await;
                    let done = now_millis();
                    let finished = state.resources.finish_source_run(&src.id, due_at, lease_until, next, done, result);
                    if let Err(e) = finished.await {
                        tracing::warn!(source = %src.id, error = %e, "recording a scheduled source's run failed");
                    }
                });
            }
            Ok(None) => tokio::time::sleep(TICK).await,
            Err(e) => {
                tracing::warn!(error = %e, "looking for due scheduled sources failed");
                tokio::time::sleep(TICK).await;
            }
        }
    }
}

/// Runs a source once; when it runs next and what this run did.
async fn run_one(state: &AppState, src: &Source, due_at: i64) -> (i64, Value) {
    let now = now_millis();
    let loaded = match Loaded::of(src.clone()) {
        Ok(l) => l,
        Err(e) => return (now + RETRY_MS, json!({ "error": format!("the configuration does not parse: {e}") })),
    };
    let next = next_due(src, now, false).unwrap_or(now + RETRY_MS);
    let result = if let Some(cron) = &loaded.config.cron {
        emit(state, &loaded, cron.payload.as_bytes(), cron.content_type.as_deref(), due_at).await
    } else if let Some(poll) = &loaded.config.poll {
        poll_once(state, &loaded, poll).await
    } else {
        json!({ "error": "not a scheduled source" })
    };
    if let Some(e) = result.get("error") {
        tracing::warn!(source = %src.id, error = %e, "a scheduled source's run failed");
    }
    (next, result)
}

/// A request made by the source itself (a cron firing, a polled item).
fn own_request(src: &Source, method: &str, body: Vec<u8>, now: i64) -> InboundRequest {
    InboundRequest {
        org_id: src.org_id.clone(),
        id: new_id(IdPrefix::InboundRequest),
        source_id: src.id.clone(),
        received_at: now,
        method: method.into(),
        query: String::new(),
        remote_addr: None,
        headers: Vec::new(),
        body,
        outcome: InboundOutcome::Accepted,
        status_code: 200,
        error: None,
        event_type: None,
        event_id: None,
        msg_id: None,
        replay_of: None,
        object: None,
    }
}

/// The event type of a payload the source made: its `eventTypePointer`, else the source's type.
fn event_type_of(loaded: &Loaded, payload: &Value) -> String {
    let selectors: Vec<Selector> =
        loaded.settings.event_type_pointer.iter().map(|p| Selector::Pointer(p.clone())).collect();
    let none = Incoming { method: "GET", url: "", query: "", headers: &[], body: &[], now_secs: 0 };
    extract::pick(&selectors, &none, payload)
        .map_or_else(|| loaded.source.kind.clone(), |t| extract::event_type_name(&t))
}

/// A cron firing: the configured payload, once per due time.
async fn emit(state: &AppState, loaded: &Loaded, raw: &[u8], content_type: Option<&str>, due_at: i64) -> Value {
    let src = &loaded.source;
    let now = now_millis();
    let value = match serde_json::from_slice::<Value>(raw) {
        Ok(v) if content_type.is_none_or(|t| t.contains("json")) => v,
        _ => json!({ "contentType": content_type.unwrap_or("text/plain"), "body": String::from_utf8_lossy(raw) }),
    };
    let payload = serde_json::to_vec(&value).unwrap_or_default();
    let mut record = own_request(src, "CRON", raw.to_vec(), now);
    let event_type = event_type_of(loaded, &value);
    let event_id = format!("cron.{due_at}");
    (record.event_type, record.event_id) = (Some(event_type.clone()), Some(event_id.clone()));
    let request_id = record.id.clone();
    let msg = super::source_message(state, src, event_type, Some(event_id), payload, now);
    match state.deliveries.ingest(record, Some(msg)).await {
        Ok(i) if i.duplicate_of.is_some() => json!({ "firing": format_millis(due_at), "duplicate": true }),
        Ok(_) => json!({ "firing": format_millis(due_at), "requestId": request_id }),
        Err(e) => json!({ "error": e.to_string() }),
    }
}

/// What one poll did.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct PollResult {
    status: u16,
    items: usize,
    /// Fed in and forwarded.
    forwarded: usize,
    /// Seen before (same id, and same status when tracked).
    seen: usize,
    /// Status tracking: a status at or behind its object's.
    unchanged: usize,
    /// Items without an id at `idPointer`: skipped.
    without_id: usize,
}

fn poll_headers(poll: &PollConfig) -> Result<HeaderMap, String> {
    let mut h = HeaderMap::new();
    h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    h.insert(header::USER_AGENT, HeaderValue::from_static(concat!("hookd/", env!("CARGO_PKG_VERSION"))));
    for (name, value) in &poll.headers {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|e| e.to_string())?;
        h.insert(name, HeaderValue::from_str(value).map_err(|e| e.to_string())?);
    }
    let auth = match (&poll.bearer_token, &poll.basic) {
        (Some(t), _) => Some(format!("Bearer {t}")),
        (None, Some((u, p))) => Some(format!("Basic {}", B64.encode(format!("{u}:{p}")))),
        (None, None) => None,
    };
    if let Some(a) = auth {
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(&a).map_err(|e| e.to_string())?);
    }
    Ok(h)
}

async fn poll_once(state: &AppState, loaded: &Loaded, poll: &PollConfig) -> Value {
    match poll_items(state, loaded, poll).await {
        Ok(r) => serde_json::to_value(r).unwrap_or_default(),
        Err(e) => json!({ "error": e }),
    }
}

async fn poll_items(state: &AppState, poller: &Loaded, poll: &PollConfig) -> Result<PollResult, String> {
    // The source the items are fed into: this one, or its `targetSource`.
    let target = match &poll.target_source {
        None => None,
        Some(t) => {
            let found = state.resources.get_source(&poller.source.org_id, t).await;
            let src = found.map_err(|e| format!("config.targetSource {t:?}: {e}"))?;
            let loaded = Loaded::of(src).map_err(|e| format!("config.targetSource {t:?}: {e}"))?;
            if loaded.config.cron.is_some() || loaded.config.poll.is_some() {
                return Err(format!("config.targetSource {t:?} is a scheduled source: it takes no items"));
            }
            Some(loaded)
        }
    };
    // Items are read with the poll source's pointers and ranked by the
    // lifecycle of the source that keeps their objects.
    let dest = target.as_ref().unwrap_or(poller);
    let src = &dest.source;
    let dispatcher = state.deliveries.dispatcher().ok_or("this node does not deliver")?;
    let headers = poll_headers(poll)?;
    let (status, body) = dispatcher.fetch(&poller.source.org_id, &poll.url, headers, poll.max_bytes as usize).await?;
    if !(200..300).contains(&status) {
        // The URL without credentials or query values: this is shown and logged.
        return Err(format!("{} answered {status}", hookd_inbound::source::redacted_url(&poll.url)));
    }
    let answer: Value = serde_json::from_slice(&body).map_err(|e| format!("the answer is not JSON: {e}"))?;
    let items = poll.items(&answer)?;
    let mut out = PollResult { status, items: items.len(), ..Default::default() };
    let reading = poller.settings.status_tracking.as_ref();
    let tracking = dest.settings.status_tracking.as_ref().or(reading);
    for item in items {
        let Some(id) = poll.item_id(&item) else {
            out.without_id += 1;
            continue;
        };
        let observed = reading.and_then(|r| r.observe(&item)).and_then(|mut o| {
            o.rank = tracking?.rank(&o.status)?;
            Some(o)
        });
        let event_id =
            extract::dedupe_key(&observed.as_ref().map_or_else(|| id.clone(), |o| format!("{id}:{}", o.status)));
        // What every poll sees again is left out before it is stored, so the
        // request log holds what changed, not every answer.
        match state.resources.get_message(&src.org_id, &src.app_id, &event_id).await {
            Ok(_) => {
                out.seen += 1;
                continue;
            }
            Err(StoreError::NotFound) => {}
            Err(e) => return Err(e.to_string()),
        }
        if let (Some(t), Some(o)) = (tracking, &observed) {
            match state.resources.get_tracked_object(&src.org_id, &src.id, &o.object_id).await {
                Ok(current) if t.rank(&current.status).is_some_and(|r| r >= o.rank) => {
                    out.unchanged += 1;
                    continue;
                }
                Ok(_) | Err(StoreError::NotFound) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        let now = now_millis();
        let payload = serde_json::to_vec(&item).unwrap_or_default();
        let mut record = own_request(src, "POLL", payload.clone(), now);
        let event_type = event_type_of(poller, &item);
        (record.event_type, record.event_id) = (Some(event_type.clone()), Some(event_id.clone()));
        record.object = observed.map(|o| ObjectStatus { object_id: o.object_id, status: o.status, rank: o.rank });
        let msg = super::source_message(state, src, event_type, Some(event_id), payload, now);
        let ingested = state.deliveries.ingest(record, Some(msg)).await.map_err(|e| e.to_string())?;
        if ingested.duplicate_of.is_some() {
            out.seen += 1;
        } else if ingested.ignored {
            out.unchanged += 1;
        } else {
            out.forwarded += 1;
        }
    }
    Ok(out)
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleOut {
    pub next_run_at: String,
    pub last_run_at: Option<String>,
    /// What the last run did: a cron firing's request, or a poll's counts
    /// (`status`, `items`, `forwarded`, `seen`, `unchanged`, `withoutId`), or `error`.
    pub last_result: Option<Value>,
}

/// `GET …/source/{id}/schedule`: when a cron or poll source runs next and what
/// its last run did.
pub async fn get(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path(source_id): Path<String>,
) -> ApiResult<Json<ScheduleOut>> {
    let src = sources::load(&state, &auth, &source_id).await?;
    let s = state.resources.get_source_schedule(&auth.org_id, &src.id).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(ScheduleOut {
        next_run_at: format_millis(s.due_at),
        last_run_at: s.last_run_at.map(format_millis),
        last_result: s.last_result,
    }))
}

/// `POST …/source/{id}/schedule/run`: runs a cron or poll source now (on the
/// next tick of a delivering node); its schedule then continues.
pub async fn run_now(
    State(state): State<AppState>,
    auth: OrgAuth,
    Path(source_id): Path<String>,
) -> ApiResult<StatusCode> {
    let src = sources::load(&state, &auth, &source_id).await?;
    if next_due(&src, 0, true).is_none() {
        return Err(ApiError::NotFound);
    }
    state.resources.set_source_schedule(&auth.org_id, &src.id, Some(now_millis())).await?;
    Ok(StatusCode::ACCEPTED)
}
