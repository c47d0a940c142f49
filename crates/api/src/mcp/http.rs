//! `POST /mcp`: the MCP server over Streamable HTTP, on the server itself.
//!
//! Each POST carries one JSON-RPC message (or a batch) and gets one JSON
//! answer (`application/json`); a POST of notifications or responses only
//! gets 202. The server keeps no session: every request names its token in
//! `Authorization: Bearer …`, which is checked by asking the API who it is,
//! so no `Mcp-Session-Id` is issued (the transport makes sessions optional)
//! and one sent is ignored. Nothing is streamed: `GET` (a stream of
//! server-initiated messages) and `DELETE` (ending a session) answer 405.
//! Browsers cannot send the bearer token cross-origin without a CORS
//! preflight, which hookd does not answer, so another site's page cannot
//! drive it.
//!
//! The tools call the API router in-process with the caller's token
//! ([`InProcess`]), through the same authentication, scoping and audit
//! layer as any API request.

use std::net::SocketAddr;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Extension};
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

use super::rpc::{self, PROTOCOL_VERSIONS};
use super::{Answer, Backend, Scope, Server};

/// Answers of the API are read up to this size.
const MAX_ANSWER: usize = 16 * 1024 * 1024;
/// The header a client names its negotiated protocol version in.
const VERSION_HEADER: &str = "mcp-protocol-version";

/// The API router, called in-process.
#[derive(Clone)]
pub struct InProcess(pub Router);

/// The API with one caller's token (and address, for the audit trail).
pub struct RouterBackend {
    router: Router,
    authorization: HeaderValue,
    peer: Option<SocketAddr>,
}

impl Backend for RouterBackend {
    async fn call(&self, method: Method, path_and_query: &str, body: Option<Value>) -> Answer {
        let request = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(header::AUTHORIZATION, self.authorization.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.map(|b| b.to_string()).unwrap_or_default()));
        let mut request = match request {
            Ok(r) => r,
            Err(e) => return Answer { status: 0, body: json!({"detail": format!("bad request to the API: {e}")}) },
        };
        if let Some(peer) = self.peer {
            request.extensions_mut().insert(ConnectInfo(peer));
        }
        let response = match self.router.clone().oneshot(request).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let status = response.status().as_u16();
        match http_body_util::Limited::new(response.into_body(), MAX_ANSWER).collect().await {
            Ok(c) => Answer { status, body: serde_json::from_slice(&c.to_bytes()).unwrap_or(Value::Null) },
            Err(_) => Answer { status: 0, body: json!({"detail": "the API's answer was too large"}) },
        }
    }
}

/// The `/mcp` route, calling `api` in-process.
pub fn router(api: Router) -> Router {
    Router::new()
        .route("/mcp", post(handle).get(not_allowed).delete(not_allowed))
        .layer(Extension(InProcess(api)))
        .layer(DefaultBodyLimit::max(rpc::MAX_MESSAGE_BYTES))
}

/// An HTTP error with a JSON-RPC error body (no request to address it to).
fn refused(status: StatusCode, code: i64, message: &str) -> Response {
    (status, axum::Json(rpc::error(Value::Null, code, message))).into_response()
}

async fn not_allowed() -> Response {
    let mut r = refused(
        StatusCode::METHOD_NOT_ALLOWED,
        rpc::INVALID_REQUEST,
        "this MCP server answers POST only: it streams nothing and keeps no session",
    );
    r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
    r
}

async fn handle(
    Extension(api): Extension<InProcess>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let Ok(body) = body else {
        let too_large = format!("a message is at most {} bytes", rpc::MAX_MESSAGE_BYTES);
        return refused(StatusCode::PAYLOAD_TOO_LARGE, rpc::INVALID_REQUEST, &too_large);
    };
    if let Some(v) = headers.get(VERSION_HEADER) {
        if !PROTOCOL_VERSIONS.iter().any(|p| v.as_bytes() == p.as_bytes()) {
            let why = format!("unsupported {VERSION_HEADER}; this server speaks {}", PROTOCOL_VERSIONS.join(", "));
            return refused(StatusCode::BAD_REQUEST, rpc::INVALID_REQUEST, &why);
        }
    }
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("application/json");
    if !content_type.trim_start().to_ascii_lowercase().starts_with("application/json") {
        return refused(StatusCode::UNSUPPORTED_MEDIA_TYPE, rpc::INVALID_REQUEST, "send application/json");
    }
    let Some(authorization) = headers.get(header::AUTHORIZATION).cloned() else {
        return unauthorized(Answer {
            status: 401,
            body: json!({"code": "authentication_failed", "detail": "send the token in Authorization: Bearer <token>"}),
        });
    };
    let backend = RouterBackend { router: api.0, authorization, peer: peer.map(|Extension(c)| c.0) };
    let scope = match Scope::discover(&backend).await {
        Ok(scope) => scope,
        Err(refusal) if refusal.status == 401 => return unauthorized(refusal),
        Err(refusal) => {
            let status = StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::BAD_GATEWAY);
            return (status, axum::Json(refusal.body)).into_response();
        }
    };
    let server = Server::new(backend, scope);
    match rpc::handle_bytes(&server, &body).await {
        None => StatusCode::ACCEPTED.into_response(),
        Some(reply) if rpc::is_unaddressed_error(&reply) => {
            (StatusCode::BAD_REQUEST, axum::Json(reply)).into_response()
        }
        Some(reply) => axum::Json(reply).into_response(),
    }
}

/// 401 with the API's body and a `WWW-Authenticate` challenge.
fn unauthorized(refusal: Answer) -> Response {
    let mut r = (StatusCode::UNAUTHORIZED, axum::Json(refusal.body)).into_response();
    r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"hookd\""));
    r
}
