//! Inbound webhooks over HTTP: the Svix ingest API under `/ingest/api/v1`
//! (sources, their endpoints, their request log) and `/ingest/{token}`, where
//! providers send ([`receive`]).

pub mod alerts;
pub mod cache;
pub mod endpoints;
pub mod log;
pub mod objects;
pub mod receive;
pub mod scheduled;
pub mod sources;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
pub use cache::SourceCache;
use hookd_core::id::{new_id, IdPrefix};
use hookd_store::{Message, Source};

use crate::AppState;

/// The message a source's accepted request becomes, in the source's application.
pub fn source_message(
    state: &AppState,
    src: &Source,
    event_type: String,
    event_id: Option<String>,
    payload: Vec<u8>,
    now: i64,
) -> Message {
    Message {
        org_id: src.org_id.clone(),
        app_id: src.app_id.clone(),
        id: new_id(IdPrefix::Message),
        event_id,
        event_type,
        channels: None,
        tags: None,
        payload: Some(Arc::from(payload)),
        created_at: now,
        expires_at: now.saturating_add(state.config.payload_retention.as_millis() as i64),
        deliver_at: None,
    }
}

/// The management routes (authenticated, audited).
pub fn router() -> Router<AppState> {
    let src = "/ingest/api/v1/source/{source_id}";
    let ep = "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}";
    Router::new()
        .route("/ingest/api/v1/source", get(sources::list).post(sources::create))
        .route(src, get(sources::get).put(sources::upsert).patch(sources::patch).delete(sources::delete))
        .route(&format!("{src}/token/rotate"), post(sources::rotate_token))
        .route(&format!("{src}/log"), get(log::list_errors))
        .route(&format!("{src}/request"), get(log::list))
        .route(&format!("{src}/request/replay"), post(log::replay_many))
        .route(&format!("{src}/request/{{request_id}}"), get(log::get))
        .route(&format!("{src}/request/{{request_id}}/replay"), post(log::replay_one))
        .route(&format!("{src}/object/{{object_id}}"), get(objects::get))
        .route(&format!("{src}/schedule"), get(scheduled::get))
        .route(&format!("{src}/schedule/run"), post(scheduled::run_now))
        .route(&format!("{src}/endpoint"), get(endpoints::list).post(endpoints::create))
        .route(ep, get(endpoints::get).put(endpoints::upsert).delete(endpoints::delete))
        .route(&format!("{ep}/secret"), get(endpoints::get_secret))
        .route(&format!("{ep}/secret/rotate"), post(endpoints::rotate_secret))
        .route(&format!("{ep}/headers"), get(endpoints::get_headers).put(endpoints::update_headers))
}

/// Where providers send: no token, no audit of each request (failed
/// verifications are audited by the handler itself).
pub fn receive_router() -> Router<AppState> {
    Router::new().route("/ingest/{token}", get(receive::receive).post(receive::receive).put(receive::receive))
}
