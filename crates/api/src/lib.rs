//! hookd's HTTP API: the Svix-compatible management API under `/api/v1`,
//! `/metrics`, the MCP server at `/mcp` ([`mcp`]), and the shared request
//! plumbing (auth, errors, pagination, idempotency). Routes are grouped by
//! resource under [`v1`].

pub mod audit;
pub mod auth;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod ingest;
pub mod mcp;
pub mod pagination;
pub mod quota;
pub mod relay;
pub mod schemas;
pub mod v1;
mod wire;

use std::ops::Deref;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use error::ApiError;
use hookd_delivery::Deliveries;
use hookd_store::Resources;

#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Largest message payload accepted, in bytes.
    pub max_payload_bytes: usize,
    /// Base URL written into app portal links.
    pub public_url: String,
    /// How long a message's payload is kept when the message does not say.
    pub payload_retention: std::time::Duration,
    /// Messages per second an application may send (when it sets no
    /// `throttleRate` of its own), and an organisation; `None`: no quota.
    pub app_ingest_rate: Option<u32>,
    pub org_ingest_rate: Option<u32>,
    /// Requests per second one token may make; `None`: no limit.
    pub token_rate_limit: Option<u32>,
    /// The server's destination policy (organisations narrow it).
    pub destination: hookd_core::policy::DestinationPolicy,
    /// Proxies whose `X-Forwarded-For` inbound sources believe.
    pub trusted_proxies: Vec<hookd_core::policy::Network>,
}

pub struct State {
    /// What the API reads and edits.
    pub resources: Arc<dyn Resources>,
    /// The delivery pipeline: accepting messages, resending, background tasks.
    pub deliveries: Deliveries,
    pub config: ApiConfig,
    /// The organisation this node serves (one default organisation for now).
    pub org_id: String,
    /// Hash of the token given by `--admin-token`, accepted without a stored row.
    pub bootstrap_token_hash: Option<String>,
    pub tokens: auth::TokenCache,
    pub idempotency: idempotency::InFlightKeys,
    pub quotas: quota::Quotas,
    /// Inbound sources recently looked up by their URL token.
    pub sources: ingest::SourceCache,
    /// Verification failures per source, for the spike alert.
    pub failure_spikes: ingest::alerts::FailureSpikes,
    /// Event types' compiled schemas, for the ones that validate payloads.
    pub schemas: schemas::SchemaCache,
}

#[derive(Clone)]
pub struct AppState(Arc<State>);

impl AppState {
    pub fn new(state: State) -> Self {
        AppState(Arc::new(state))
    }
}

impl Deref for AppState {
    type Target = State;
    fn deref(&self) -> &State {
        &self.0
    }
}

/// The whole HTTP surface. Wrap it in [`tower_http::normalize_path`] so that a
/// trailing slash is optional.
pub fn router(state: AppState) -> Router {
    // Room for the payload plus the rest of a message body.
    let body_limit = state.config.max_payload_bytes + 64 * 1024;
    let api = v1::router()
        .merge(ingest::router())
        .route("/api/v1/audit", axum::routing::get(audit::list))
        // Every change through a route is recorded in the audit trail.
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), audit::layer))
        .route("/metrics", axum::routing::get(v1::health::metrics))
        .route("/livez", axum::routing::get(v1::health::live))
        .route("/relay/{channel}", axum::routing::get(relay::attach))
        .route("/relay/in/{org}/{channel}", axum::routing::any(relay::inbound))
        .route("/relay/in/{org}/{channel}/{*rest}", axum::routing::any(relay::inbound))
        .merge(ingest::receive_router())
        // Unknown paths and methods get the same JSON error bodies as everything
        // else: the SDKs parse every error body as JSON.
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state);
    // The MCP server calls the rest of the API in-process, with its caller's token.
    api.clone().merge(mcp::http::router(api))
}

/// Health and metrics only: what a worker-only node serves.
pub fn ops_router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/health", axum::routing::get(v1::health::health))
        .route("/metrics", axum::routing::get(v1::health::metrics))
        .route("/livez", axum::routing::get(v1::health::live))
        .fallback(|| async { ApiError::NotFound })
        .with_state(state)
}
