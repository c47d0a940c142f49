//! The compliance trail (a hookd extension):
//! `GET /api/v1/app/{app_id}/trail?msg_id=…|tag=…|since=…&until=…&format=jsonl|csv`.
//!
//! Every message in the selection (oldest first) with its deliveries and every
//! attempt, streamed as JSON lines or CSV, each record chained to the one
//! before by `prev` (`hookd_core::trail`), ending with an `end` record. The end
//! line's digest is recorded in the audit trail (`trail.exported`), so a reader
//! can prove with `hookd trail verify` that nothing was removed or changed.

use std::convert::Infallible;

use axum::body::Body;
use axum::extract::{OriginalUri, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use hookd_core::timefmt::{format_millis, now_millis};
use hookd_core::trail::{digest, GENESIS};
use hookd_store::{AttemptFilter, AuditEvent, MessageFilter, Page};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::auth::AppAuth;
use crate::error::{ApiError, ApiResult};
use crate::extract::QueryParams;
use crate::AppState;

/// Most messages one export holds; beyond, its end record says `complete: false`.
const MAX_MESSAGES: usize = 100_000;
const PAGE: usize = 250;

/// CSV columns; `type` first, `count` second, `complete` next to last and
/// `prev` last, as the verifier reads them.
const CSV_COLUMNS: [&str; 16] = [
    "type",
    "count",
    "timestamp",
    "msgId",
    "eventId",
    "eventType",
    "tags",
    "endpointId",
    "attemptId",
    "status",
    "responseStatusCode",
    "durationMs",
    "trigger",
    "detail",
    "complete",
    "prev",
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    JsonLines,
    Csv,
}

fn csv_field(v: &Value) -> String {
    let s = match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" "),
        other => other.to_string(),
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// Writes records as lines, chaining each to the one before.
struct Writer {
    format: Format,
    prev: String,
    tx: mpsc::Sender<Result<String, Infallible>>,
}

impl Writer {
    /// Sends one record; `false` when the reader went away.
    async fn record(&mut self, mut r: Value) -> bool {
        r["prev"] = json!(self.prev);
        let line = match self.format {
            Format::JsonLines => r.to_string(),
            Format::Csv => CSV_COLUMNS.iter().map(|c| csv_field(&r[*c])).collect::<Vec<_>>().join(","),
        };
        self.prev = digest(line.as_bytes());
        self.tx.send(Ok(line + "\n")).await.is_ok()
    }
}

struct Selection {
    msg_id: Option<String>,
    filter: MessageFilter,
    limit: usize,
}

pub async fn export(State(state): State<AppState>, auth: AppAuth, uri: OriginalUri) -> ApiResult<Response> {
    let q = QueryParams::parse(uri.query());
    let format = match q.get("format") {
        None | Some("") | Some("jsonl") => Format::JsonLines,
        Some("csv") => Format::Csv,
        Some(_) => return Err(ApiError::query_field("format", "expected jsonl or csv")),
    };
    let limit = match q.int("limit")? {
        None => MAX_MESSAGES,
        Some(n) if (1..=MAX_MESSAGES as i64).contains(&n) => n as usize,
        Some(_) => return Err(ApiError::query_field("limit", format!("1 to {MAX_MESSAGES}"))),
    };
    let msg_id = q.get("msg_id").filter(|v| !v.is_empty()).map(str::to_string);
    let tag = q.get("tag").filter(|v| !v.is_empty()).map(str::to_string);
    if let Some(t) = &tag {
        if t.len() > 128 {
            return Err(ApiError::query_field("tag", "at most 128 bytes"));
        }
    }
    let until = q.datetime("until")?;
    let since = q.datetime("since")?;
    if let (Some(s), Some(u)) = (since, until) {
        if u <= s {
            return Err(ApiError::query_field("until", "must be after since"));
        }
    }
    // A message named by id is checked before anything is streamed.
    let msg_id = match msg_id {
        Some(id) => Some(state.resources.get_message(auth.org_id(), &auth.app.id, &id).await?.id),
        None => None,
    };
    let selection = Selection {
        msg_id,
        filter: MessageFilter {
            event_types: vec![],
            channel: None,
            tag,
            // `after` and `before` are exclusive: `since` is inclusive.
            after: since.map(|s| s - 1),
            before: until,
            with_content: true,
        },
        limit,
    };
    let (tx, rx) = mpsc::channel::<Result<String, Infallible>>(64);
    let writer = Writer { format, prev: GENESIS.to_string(), tx };
    let described = uri.query().unwrap_or("").to_string();
    tokio::spawn(produce(state, auth, selection, writer, described));
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    let (content_type, ext) = match format {
        Format::JsonLines => ("application/x-ndjson", "jsonl"),
        Format::Csv => ("text/csv; charset=utf-8", "csv"),
    };
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"trail.{ext}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

/// Streams the selection; on a store error the stream stops without an end
/// record (a reader sees a cut-short trail).
async fn produce(state: AppState, auth: AppAuth, sel: Selection, mut w: Writer, described: String) {
    if w.format == Format::Csv && w.tx.send(Ok(CSV_COLUMNS.join(",") + "\n")).await.is_err() {
        return;
    }
    let mut count = 0u64;
    let mut messages = 0usize;
    let mut complete = true;
    let mut iterator = None;
    'pages: loop {
        let batch = match &sel.msg_id {
            Some(id) if iterator.is_none() => {
                match state.resources.get_message(auth.org_id(), &auth.app.id, id).await {
                    Ok(m) => vec![m],
                    Err(e) => return tracing::warn!(error = %e, "exporting a trail failed"),
                }
            }
            Some(_) => break,
            None => {
                let page = Page { limit: PAGE, iterator: iterator.clone(), backwards: false, descending: false };
                match state.resources.list_messages(auth.org_id(), &auth.app.id, &sel.filter, &page).await {
                    Ok(rows) => rows,
                    Err(e) => return tracing::warn!(error = %e, "exporting a trail failed"),
                }
            }
        };
        let more = sel.msg_id.is_none() && batch.len() > PAGE;
        for m in batch.into_iter().take(PAGE) {
            if messages == sel.limit {
                complete = false;
                break 'pages;
            }
            messages += 1;
            iterator = Some(m.id.clone());
            let record = json!({
                "type": "message",
                "timestamp": format_millis(m.created_at),
                "msgId": m.id,
                "eventId": m.event_id,
                "eventType": m.event_type,
                "tags": m.tags,
                "channels": m.channels,
                // Of the payload as accepted (opened when sealed at rest).
                "payloadSha256": m.payload.as_ref().map(|p| {
                    match hookd_store::crypt::open_body(p, &format!("{}:payload", m.id)) {
                        Ok(opened) => digest(&opened),
                        Err(_) => digest(p),
                    }
                }),
            });
            if !w.record(record).await {
                return;
            }
            count += 1;
            match records_of(&state, &auth, &m.id, &mut w).await {
                Ok(Some(n)) => count += n,
                Ok(None) => return,
                Err(e) => return tracing::warn!(error = %e, "exporting a trail failed"),
            }
        }
        if !more {
            break;
        }
    }
    let exported_at = now_millis();
    let end = json!({"type": "end", "count": count, "complete": complete, "timestamp": format_millis(exported_at)});
    if !w.record(end).await {
        return;
    }
    // The end line's digest, kept where it cannot be rewritten unseen.
    let event = AuditEvent {
        org_id: auth.org_id().to_string(),
        at: exported_at,
        actor: auth.auth.token_id.clone(),
        action: "trail.exported".into(),
        // The digest first: the query (the caller's text) cannot pose as it.
        target: format!("digest={} records={count} /api/v1/app/{}/trail?{described}", w.prev, auth.app.id),
        status: 200,
        address: None,
    };
    if let Err(e) = state.resources.append_audit(vec![event]).await {
        tracing::error!(error = %e, "recording a trail export in the audit trail failed");
    }
}

/// The message's deliveries and attempts; `None` when the reader went away.
async fn records_of(
    state: &AppState,
    auth: &AppAuth,
    msg_id: &str,
    w: &mut Writer,
) -> Result<Option<u64>, hookd_store::StoreError> {
    let mut n = 0;
    let page = |iterator| Page { limit: PAGE, iterator, backwards: false, descending: false };
    let mut iterator = None;
    loop {
        let rows =
            state.resources.list_message_destinations(auth.org_id(), &auth.app.id, msg_id, &page(iterator)).await?;
        let more = rows.len() > PAGE;
        iterator = None;
        for (d, ep) in rows.into_iter().take(PAGE) {
            iterator = Some(ep.id.clone());
            let record = json!({
                "type": "delivery",
                "timestamp": format_millis(d.updated_at),
                "msgId": msg_id,
                "endpointId": ep.id,
                "status": d.status() as i64,
                "detail": format!("{} attempts; {}", d.attempts, d.state.as_str()),
            });
            if !w.record(record).await {
                return Ok(None);
            }
            n += 1;
        }
        if !more {
            break;
        }
    }
    let filter = AttemptFilter { msg_id: Some(msg_id.to_string()), ..Default::default() };
    let mut iterator = None;
    loop {
        let rows = state.resources.list_attempts(auth.org_id(), &auth.app.id, &filter, &page(iterator)).await?;
        let more = rows.len() > PAGE;
        iterator = None;
        for a in rows.into_iter().take(PAGE) {
            iterator = Some(a.id.clone());
            let record = json!({
                "type": "attempt",
                "timestamp": format_millis(a.created_at),
                "msgId": a.msg_id,
                "endpointId": a.endpoint_id,
                "attemptId": a.id,
                "status": a.status as i64,
                "responseStatusCode": a.response_status_code,
                "durationMs": a.response_duration_ms,
                "trigger": a.trigger as i64,
                "detail": a.url,
            });
            if !w.record(record).await {
                return Ok(None);
            }
            n += 1;
        }
        if !more {
            break;
        }
    }
    Ok(Some(n))
}
