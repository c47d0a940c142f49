//! `GET /api/v1/health` (readiness: the store answers), `GET /livez`
//! (liveness: the process serves; never asks the store) and `GET /metrics`,
//! all without a token.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use crate::AppState;

/// 200 with a status per component when healthy, 503 with the same body when not.
pub async fn health(State(state): State<AppState>) -> impl IntoResponse {
    let db = state.resources.ping().await;
    let status = if db.is_ok() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let db_status = match &db {
        Ok(()) => json!({"status": "ok"}),
        Err(e) => json!({"status": "down", "error": e.to_string()}),
    };
    let overall = if db.is_ok() { "ok" } else { "down" };
    (status, Json(json!({"status": overall, "database": db_status, "version": env!("CARGO_PKG_VERSION")})))
}

/// 200 while the process serves requests, whatever the store's state: a
/// liveness probe that restarts a node only when the node itself is stuck, not
/// when its database is down (a restart would not bring the database back).
pub async fn live() -> impl IntoResponse {
    Json(json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let metrics = state.deliveries.metrics();
    match state.deliveries.queue_depth().await {
        Ok(n) => {
            metrics.queue_depth.set(n as i64);
            metrics.database_up.set(1);
        }
        Err(_) => {
            metrics.database_up.set(0);
        }
    }
    if let Ok(ms) = state.deliveries.queue_lag_ms().await {
        metrics.queue_lag.set(ms as f64 / 1000.0);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], metrics.render())
}
