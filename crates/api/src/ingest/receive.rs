//! `/ingest/{token}`: where providers send. In order: find the source by the
//! URL's token; check the caller's address against the source's allowlist and
//! its rate; read at most the source's body limit (413 without reading the
//! rest); answer a provider handshake; verify; then store the raw request and,
//! when verified, its message in one commit, and only then answer 2xx. A
//! request that fails verification is stored as rejected and answered 401;
//! it is never forwarded.

use std::net::{IpAddr, SocketAddr};

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use hookd_core::id::{new_id, IdPrefix};
use hookd_core::timefmt::now_millis;
use hookd_inbound::{extract, handshake, Incoming, Rejection};
use hookd_store::{AuditEvent, InboundOutcome, InboundRequest, ObjectStatus};
use http_body_util::BodyExt;
use serde_json::json;

use super::cache::Loaded;
use super::sources::ingest_url;
use crate::error::ApiError;
use crate::AppState;

/// Headers kept per request at most (hyper refuses more than 100 anyway).
const MAX_HEADERS: usize = 100;

pub async fn receive(State(state): State<AppState>, Path(token): Path<String>, req: Request) -> Response {
    let socket = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let Some(loaded) = (match state.sources.get(&state, &token).await {
        Ok(l) => l,
        Err(e) => return e.into_response(),
    }) else {
        return ApiError::NotFound.into_response();
    };
    let mut response = handle(&state, &loaded, &token, socket, req).await;
    if let Some(id) = &loaded.config.client_id {
        // Adobe Sign checks that every answer echoes its client id.
        if let Ok(v) = HeaderValue::from_str(id) {
            response.headers_mut().insert("x-adobesign-clientid", v);
        }
    }
    response
}

fn answer(status: u16, content_type: &str, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let mut r = (status, body).into_response();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

fn refuse(status: StatusCode, detail: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "code": "inbound_refused", "detail": detail.into() }))).into_response()
}

/// The caller's address: the socket's, or the first of `X-Forwarded-For` when
/// the socket is a trusted proxy.
fn client_ip(state: &AppState, socket: Option<SocketAddr>, headers: &axum::http::HeaderMap) -> Option<IpAddr> {
    let ip = socket?.ip();
    if state.config.trusted_proxies.iter().any(|n| n.contains(ip)) {
        let forwarded = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
        if let Some(first) = forwarded.and_then(|f| f.split(',').next()).and_then(|f| f.trim().parse().ok()) {
            return Some(first);
        }
    }
    Some(ip)
}

async fn handle(state: &AppState, loaded: &Loaded, token: &str, socket: Option<SocketAddr>, req: Request) -> Response {
    let src = &loaded.source;
    let metrics = state.deliveries.metrics();
    let ip = client_ip(state, socket, req.headers());
    if !loaded.networks.is_empty() && !ip.is_some_and(|ip| loaded.networks.iter().any(|n| n.contains(ip))) {
        metrics.inbound_request("rejected");
        return refuse(StatusCode::FORBIDDEN, "this address may not send to this source (allowedIps)");
    }
    if let Some(rate) = loaded.settings.rate_limit {
        if let Err(wait) = state.quotas.take(&format!("inbound:{}", src.id), rate) {
            metrics.inbound_request("limited");
            return ApiError::TooManyRequests {
                detail: format!("this source takes {rate} requests per second"),
                retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
            }
            .into_response();
        }
    }
    if loaded.config.cron.is_some() || loaded.config.poll.is_some() {
        return refuse(StatusCode::METHOD_NOT_ALLOWED, "this source receives nothing: it runs on its schedule");
    }
    let (parts, body) = req.into_parts();
    let limit = loaded.settings.body_limit();
    let declared = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        metrics.inbound_request("rejected");
        return refuse(StatusCode::PAYLOAD_TOO_LARGE, format!("this source takes bodies of at most {limit} bytes"));
    }
    let body = match read_limited(body, limit).await {
        Ok(b) => b,
        Err(resp) => {
            metrics.inbound_request("rejected");
            return resp;
        }
    };
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .take(MAX_HEADERS)
        .map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect();
    let query = parts.uri.query().unwrap_or("");
    let base = ingest_url(state, token);
    let url = if query.is_empty() { base } else { format!("{base}?{query}") };
    let now = now_millis();
    let incoming = Incoming {
        method: parts.method.as_str(),
        url: &url,
        query,
        headers: &headers,
        body: &body,
        now_secs: now.div_euclid(1000),
    };
    if parts.method == Method::GET {
        return match handshake::answer_get(&loaded.config, &incoming) {
            Ok(a) => {
                metrics.inbound_request("handshake");
                answer(a.status, a.content_type, a.body)
            }
            Err(Rejection(why)) if loaded.config.verify_token.is_some() => refuse(StatusCode::FORBIDDEN, why),
            Err(_) if loaded.config.client_id.is_some() => match loaded.config.scheme.verify(&incoming) {
                // Adobe Sign's verification of intent: a GET with the client id.
                Ok(()) => answer(
                    200,
                    "application/json",
                    json!({ "xAdobeSignClientId": loaded.config.client_id }).to_string(),
                ),
                Err(Rejection(why)) => refuse(StatusCode::UNAUTHORIZED, why),
            },
            Err(Rejection(why)) => refuse(StatusCode::METHOD_NOT_ALLOWED, why),
        };
    }
    let mut record = InboundRequest {
        org_id: src.org_id.clone(),
        id: new_id(IdPrefix::InboundRequest),
        source_id: src.id.clone(),
        received_at: now,
        method: parts.method.as_str().to_string(),
        query: query.to_string(),
        remote_addr: ip.map(|i| i.to_string()),
        headers: headers.clone(),
        body: body.to_vec(),
        outcome: InboundOutcome::Rejected,
        status_code: 401,
        error: None,
        event_type: None,
        event_id: None,
        msg_id: None,
        replay_of: None,
        object: None,
    };
    let Checked { event_type, event_id, payload, object } = match check(loaded, &incoming) {
        Ok(checked) => checked,
        Err((status, Rejection(why))) => {
            record.status_code = status.as_u16();
            record.error = Some(why.clone());
            metrics.inbound_request("rejected");
            security_event(state, src, &record);
            if status == StatusCode::UNAUTHORIZED {
                spike_alert(state, loaded, &record);
            }
            return match state.deliveries.ingest(record, None).await {
                Ok(_) => refuse(status, why),
                Err(e) => ApiError::from(e).into_response(),
            };
        }
    };
    if let Some(a) = handshake::answer_verified(&loaded.config, &serde_json::from_slice(&payload).unwrap_or_default()) {
        metrics.inbound_request("handshake");
        return answer(a.status, a.content_type, a.body);
    }
    let settings = &loaded.settings;
    let status = settings.response_status.unwrap_or(200);
    (record.event_type, record.event_id, record.status_code) = (Some(event_type.clone()), event_id.clone(), status);
    record.object = object;
    let msg = super::source_message(state, src, event_type, event_id, payload, now);
    let request_id = record.id.clone();
    match state.deliveries.ingest(record, Some(msg)).await {
        Ok(ingested) => {
            metrics.inbound_request(if ingested.duplicate_of.is_some() {
                "duplicate"
            } else if ingested.ignored {
                "ignored"
            } else {
                "accepted"
            });
            let mut r = match &settings.response_body {
                Some(b) => answer(status, settings.response_content_type.as_deref().unwrap_or("text/plain"), b.clone()),
                None => answer(status, "application/json", json!({ "id": request_id }).to_string()),
            };
            if let Ok(v) = HeaderValue::from_str(&request_id) {
                r.headers_mut().insert("x-hookd-request-id", v);
            }
            r
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// What a verified request becomes.
pub struct Checked {
    pub event_type: String,
    pub event_id: Option<String>,
    /// The JSON forwarded.
    pub payload: Vec<u8>,
    /// Status tracking: the object and status it reports.
    pub object: Option<ObjectStatus>,
}

/// Verification and what the request becomes.
pub fn check(loaded: &Loaded, req: &Incoming) -> Result<Checked, (StatusCode, Rejection)> {
    let is_json = serde_json::from_slice::<serde::de::IgnoredAny>(req.body).is_ok();
    if loaded.settings.require_json && !is_json {
        return Err((StatusCode::BAD_REQUEST, Rejection::new("the body is not JSON (requireJson)")));
    }
    loaded.config.scheme.verify(req).map_err(|r| (StatusCode::UNAUTHORIZED, r))?;
    let value = extract::payload(req);
    let kind = loaded.config.kind.as_str();
    let svix = loaded.config.kind.is_svix_config();
    let type_selectors =
        loaded.settings.event_type_selectors().unwrap_or_else(|| extract::default_event_type(kind, svix));
    let id_selectors = loaded.settings.event_id_selectors().unwrap_or_else(|| extract::default_event_id(kind, svix));
    let event_type =
        extract::pick(&type_selectors, req, &value).map_or_else(|| kind.to_string(), |t| extract::event_type_name(&t));
    let event_id = extract::pick(&id_selectors, req, &value).map(|id| extract::dedupe_key(&id));
    // JSON is forwarded byte for byte; other bodies as the JSON made of them.
    let payload = if is_json { req.body.to_vec() } else { serde_json::to_vec(&value).unwrap_or_default() };
    let object = loaded.settings.status_tracking.as_ref().and_then(|t| t.observe(&value)).map(|o| ObjectStatus {
        object_id: o.object_id,
        status: o.status,
        rank: o.rank,
    });
    Ok(Checked { event_type, event_id, payload, object })
}

async fn read_limited(body: Body, limit: usize) -> Result<bytes::Bytes, Response> {
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            Err(refuse(StatusCode::PAYLOAD_TOO_LARGE, format!("this source takes bodies of at most {limit} bytes")))
        }
        Err(_) => Err(refuse(StatusCode::BAD_REQUEST, "the request body could not be read")),
    }
}

/// Fires `ingest.source.verification_failing` when failures spike (see [`super::alerts`]).
fn spike_alert(state: &AppState, loaded: &Loaded, record: &InboundRequest) {
    let src = &loaded.source;
    let threshold = loaded.settings.verification_alert_threshold.unwrap_or(super::alerts::DEFAULT_THRESHOLD);
    let Some(failures) = state.failure_spikes.failed(&src.id, threshold, record.received_at) else { return };
    tracing::warn!(source = %src.id, failures, "inbound verification failures spiked");
    let data = json!({
        "sourceId": src.id,
        "sourceUid": src.uid,
        "failures": failures,
        "windowSeconds": 60,
        "lastError": record.error,
        "lastRequestId": record.id,
        "lastRemoteAddr": record.remote_addr,
    });
    let (ops, org_id) = (state.deliveries.operational().clone(), src.org_id.clone());
    tokio::spawn(async move { ops.emit(&org_id, "ingest.source.verification_failing", data).await });
}

/// A failed verification goes to the audit trail: at most one entry per
/// source a second, so a flood of forgeries does not flood the trail.
fn security_event(state: &AppState, src: &hookd_store::Source, record: &InboundRequest) {
    if state.quotas.take(&format!("audit:inbound:{}", src.id), 1).is_err() {
        return;
    }
    let event = AuditEvent {
        org_id: src.org_id.clone(),
        at: record.received_at,
        actor: "inbound".into(),
        action: format!("inbound verification failed: {}", record.error.as_deref().unwrap_or("")),
        target: format!("/ingest/api/v1/source/{}", src.id),
        status: i32::from(record.status_code),
        address: record.remote_addr.clone(),
    };
    let resources = state.resources.clone();
    tokio::spawn(async move {
        if let Err(e) = resources.append_audit(vec![event]).await {
            tracing::warn!(error = %e, "recording a failed inbound verification failed");
        }
    });
}
