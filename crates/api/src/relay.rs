//! The relay's HTTP side: `GET /relay/{channel}` is the WebSocket a `hookd
//! listen` holds open (an organisation token; `?mode=source` for the
//! receiver-only mode), and `/relay/in/{org}/{channel}/…` takes any
//! provider's raw requests for that organisation's source-mode channel and answers with the listener's local
//! server's response.
//!
//! On the socket, each side sends JSON text frames:
//! - server: `{"type":"ready","channel","mode","url"}` once attached, then
//!   `{"type":"request","id","method","path","headers":[[n,v]…],"body":base64,
//!   "msgId","eventType"}` per request;
//! - listener: `{"type":"response","id","status","headers","body"}`, or
//!   `{"type":"response","id","error"}` when its local server did not answer.
//!
//! The server pings every 15 s and drops a socket that stays silent for 60 s.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use hookd_delivery::relay::{Mode, RelayCall, RelayError, RelayRequest, RelayResponse};
use hookd_store::TokenRole;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::auth::OrgAuth;
use crate::error::ApiError;
use crate::AppState;

/// Largest frame a listener may send (a response with its body, in base64).
const MAX_FRAME: usize = 16 * 1024 * 1024;
/// Largest response body passed back to a provider.
const MAX_RESPONSE_BODY: usize = 1024 * 1024;
/// How long a provider's request waits for the local server.
const SOURCE_TIMEOUT: Duration = Duration::from_secs(30);
const PING_EVERY: Duration = Duration::from_secs(15);
const SILENCE: Duration = Duration::from_secs(60);
/// Requests in flight on one socket.
const MAX_PENDING: usize = 256;

/// Headers that belong to one hop, not to the request relayed.
const HOP_BY_HOP: [&str; 8] =
    ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer", "host"];

#[derive(Deserialize)]
pub struct AttachQuery {
    #[serde(default)]
    mode: Option<String>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
enum ServerFrame<'a> {
    Ready {
        channel: &'a str,
        mode: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        url: Option<String>,
    },
    #[serde(rename_all = "camelCase")]
    Request {
        id: u64,
        method: &'a str,
        path: &'a str,
        headers: &'a [(String, String)],
        body: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        msg_id: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        event_type: Option<&'a str>,
    },
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
enum ListenerFrame {
    Response {
        id: u64,
        #[serde(default)]
        status: Option<u16>,
        #[serde(default)]
        headers: Vec<(String, String)>,
        #[serde(default)]
        body: Option<String>,
        #[serde(default)]
        error: Option<String>,
    },
}

/// `GET /relay/{channel}`: attaches a listener.
pub async fn attach(
    auth: OrgAuth,
    State(state): State<AppState>,
    Path(channel): Path<String>,
    Query(q): Query<AttachQuery>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    if auth.role == TokenRole::ReadOnly {
        return Err(ApiError::Forbidden("a read-only token cannot open a relay".into()));
    }
    if !hookd_core::relay::valid_channel(&channel) {
        return Err(ApiError::BadRequest("a relay channel is 16 to 64 of a-z, A-Z, 0-9, - and _".into()));
    }
    let mode = match q.mode.as_deref() {
        None | Some("endpoint") => Mode::Endpoint,
        Some("source") => Mode::Source,
        Some(other) => return Err(ApiError::BadRequest(format!("unknown relay mode `{other}` (endpoint, source)"))),
    };
    let attachment =
        state.deliveries.relay().attach(&auth.org_id, &channel, mode).map_err(|_| ApiError::TooManyRequests {
            detail: "this node (or this organisation on it) holds as many relay channels as it may".into(),
            retry_after_secs: 30,
        })?;
    let url = (mode == Mode::Source).then(|| format!("{}/relay/in/{}/{channel}", state.config.public_url, auth.org_id));
    tracing::info!(org_id = %auth.org_id, %channel, ?mode, "hookd listen attached");
    Ok(ws
        .max_message_size(MAX_FRAME)
        .on_upgrade(move |socket| serve(socket, channel, mode, url, attachment))
        .into_response())
}

/// Relays calls to the socket and answers back until either side goes.
async fn serve(
    mut socket: WebSocket,
    channel: String,
    mode: Mode,
    url: Option<String>,
    mut attachment: hookd_delivery::relay::Attachment,
) {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mode_name = if mode == Mode::Source { "source" } else { "endpoint" };
    let ready = ServerFrame::Ready { channel: &channel, mode: mode_name, url };
    if socket.send(Message::Text(json(&ready).into())).await.is_err() {
        return;
    }
    let mut pending: HashMap<u64, oneshot::Sender<RelayResponse>> = HashMap::new();
    let mut next_id = 0u64;
    let mut ping = tokio::time::interval(PING_EVERY);
    let mut heard = tokio::time::Instant::now();
    loop {
        tokio::select! {
            call = attachment.calls.recv(), if pending.len() < MAX_PENDING => {
                let Some(RelayCall { request, reply }) = call else { break };
                next_id += 1;
                let frame = ServerFrame::Request {
                    id: next_id,
                    method: &request.method,
                    path: &request.path,
                    headers: &request.headers,
                    body: b64.encode(&request.body),
                    msg_id: request.msg_id.as_deref(),
                    event_type: request.event_type.as_deref(),
                };
                if socket.send(Message::Text(json(&frame).into())).await.is_err() {
                    break;
                }
                pending.insert(next_id, reply);
            }
            incoming = socket.recv() => {
                let Some(Ok(msg)) = incoming else { break };
                heard = tokio::time::Instant::now();
                let text = match msg {
                    Message::Text(t) => t,
                    Message::Close(_) => break,
                    _ => continue,
                };
                match serde_json::from_str::<ListenerFrame>(&text) {
                    Ok(ListenerFrame::Response { id, status, headers, body, error }) => {
                        let body = body.and_then(|b| b64.decode(b).ok()).unwrap_or_default();
                        if let Some(reply) = pending.remove(&id) {
                            let _ = reply.send(RelayResponse { status, headers, body: Bytes::from(body), error });
                        }
                    }
                    Err(e) => tracing::debug!(%channel, error = %e, "unreadable frame from hookd listen"),
                }
            }
            _ = ping.tick() => {
                if heard.elapsed() > SILENCE || socket.send(Message::Ping(Bytes::new())).await.is_err() {
                    break;
                }
            }
        }
    }
    tracing::info!(%channel, "hookd listen detached");
}

fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// `ANY /relay/in/{org}/{channel}` and `…/{channel}/{*rest}`: a provider's
/// request, relayed as it came to the organisation's source-mode listener.
/// The path under the channel is passed on as it was sent (still
/// percent-encoded), and one with a `.` or `..` segment is refused: it could
/// leave the listener's local path.
pub async fn inbound(
    State(state): State<AppState>,
    Path(params): Path<HashMap<String, String>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (Some(org), Some(channel)) = (params.get("org"), params.get("channel")) else {
        return ApiError::NotFound.into_response();
    };
    let prefix = format!("/relay/in/{org}/{channel}");
    let Some(rest) = uri.path().strip_prefix(&prefix) else {
        // The org or channel was sent percent-encoded: not a URL hookd printed.
        return ApiError::NotFound.into_response();
    };
    let dot = |seg: &str| matches!(seg.to_ascii_lowercase().replace("%2e", ".").as_str(), "." | "..");
    if rest.split('/').any(dot) {
        return ApiError::BadRequest("a relayed path has no `.` or `..` segments".into()).into_response();
    }
    let mut path = if rest.is_empty() { "/".to_string() } else { rest.to_string() };
    if let Some(q) = uri.query() {
        path.push('?');
        path.push_str(q);
    }
    let request = RelayRequest {
        method: method.to_string(),
        path,
        headers: headers
            .iter()
            .filter(|(n, _)| !HOP_BY_HOP.contains(&n.as_str()))
            .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect(),
        body,
        msg_id: None,
        event_type: None,
    };
    match state.deliveries.relay().forward(org, channel, Mode::Source, request, SOURCE_TIMEOUT).await {
        Ok(RelayResponse { status: Some(status), headers, body, .. }) => {
            let mut resp = Response::new(axum::body::Body::from(body.slice(..body.len().min(MAX_RESPONSE_BODY))));
            *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            for (n, v) in headers {
                if HOP_BY_HOP.contains(&n.to_ascii_lowercase().as_str()) || n.eq_ignore_ascii_case("content-length") {
                    continue;
                }
                if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(n.as_bytes()), HeaderValue::from_str(&v)) {
                    resp.headers_mut().append(n, v);
                }
            }
            resp
        }
        Ok(RelayResponse { error, .. }) => {
            let detail = format!("the local server did not answer: {}", error.unwrap_or_else(|| "no answer".into()));
            let body = serde_json::json!({ "code": "bad_gateway", "detail": detail });
            (StatusCode::BAD_GATEWAY, axum::Json(body)).into_response()
        }
        Err(RelayError::NoListener) => unavailable("no `hookd listen` is connected to this relay URL"),
        Err(e) => unavailable(&e.to_string()),
    }
}

/// 503 with `Retry-After`: the listener may come back.
fn unavailable(detail: &str) -> Response {
    let body = serde_json::json!({ "code": "relay_unavailable", "detail": detail });
    (StatusCode::SERVICE_UNAVAILABLE, [(axum::http::header::RETRY_AFTER, "5")], axum::Json(body)).into_response()
}
