//! A sink's poller token: `GET /api/v1/auth/app/{app}/poller/{sink}/token`
//! shows the current one, `POST …/token/rotate` makes a new one. A poller
//! token (`sk_poll_…`) reads its sink and moves that sink's consumers, and
//! can do nothing else (see `crate::auth`). Every sink is made with one.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use hookd_core::id::{new_id, IdPrefix};
use hookd_core::timefmt::format_millis;
use hookd_store::{PollerSink, PollerToken};
use serde::{Deserialize, Serialize};

use super::load_sink;
use crate::auth::{generate_token, hash_token, AppAuth, POLLER_TOKEN_PREFIX};
use crate::error::{ApiError, ApiResult};
use crate::extract::{parse_json_or_default, RawBody};
use crate::v1::now;
use crate::AppState;

/// Svix's bounds: a token lives up to a year; the one it replaces up to a
/// day more (5 minutes unless told).
const MAX_EXPIRY_SECS: i64 = 31_536_000;
const MAX_OLD_TOKEN_EXPIRY_SECS: i64 = 86_400;
const DEFAULT_OLD_TOKEN_EXPIRY_SECS: i64 = 300;

/// A new token for `sink` (the token, and its row), expiring at `expires_at`.
pub fn new_token(sink: &PollerSink, expires_at: Option<i64>) -> (String, PollerToken) {
    let token = generate_token(POLLER_TOKEN_PREFIX);
    let row = PollerToken {
        id: new_id(IdPrefix::Token),
        org_id: sink.org_id.clone(),
        app_id: sink.app_id.clone(),
        sink_id: sink.id.clone(),
        token_hash: hash_token(&token),
        token: token.clone(),
        created_at: now(),
        expires_at,
    };
    (token, row)
}

/// `ApiTokenOut`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PollerTokenOut {
    pub id: String,
    pub token: String,
    pub name: Option<String>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub scopes: Option<Vec<String>>,
}

impl From<PollerToken> for PollerTokenOut {
    fn from(t: PollerToken) -> Self {
        PollerTokenOut {
            id: t.id,
            token: t.token,
            name: None,
            created_at: format_millis(t.created_at),
            expires_at: t.expires_at.map(format_millis),
            scopes: None,
        }
    }
}

/// `RotatePollerTokenIn`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RotatePollerTokenIn {
    /// Seconds the new token is valid for (forever when left out).
    #[serde(default)]
    pub expiry: Option<i64>,
    /// Seconds the sink's older tokens stay valid (0: revoked now).
    #[serde(default)]
    pub old_token_expiry: Option<i64>,
}

/// The sink's current token (its newest).
pub async fn get(
    State(state): State<AppState>,
    auth: AppAuth,
    Path((_, sink_id)): Path<(String, String)>,
) -> ApiResult<Json<PollerTokenOut>> {
    let sink = load_sink(&state, &auth, &sink_id).await?;
    match state.resources.current_poller_token(auth.org_id(), &sink.id).await? {
        Some(t) => Ok(Json(t.into())),
        // Every sink is made with a token; this one's went with a database
        // restored without it, say: make another.
        None => {
            let (_, row) = new_token(&sink, None);
            state.resources.rotate_poller_token(row.clone(), now()).await?;
            Ok(Json(row.into()))
        }
    }
}

/// A new token for the sink; the older ones stop working after
/// `oldTokenExpiry` seconds. Answers 201. Not idempotent: each call makes a
/// token.
pub async fn rotate(
    State(state): State<AppState>,
    auth: AppAuth,
    Path((_, sink_id)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Json<PollerTokenOut>)> {
    let input: RotatePollerTokenIn = parse_json_or_default(&body)?;
    if input.expiry.is_some_and(|s| !(1..=MAX_EXPIRY_SECS).contains(&s)) {
        return Err(ApiError::body_field("expiry", format!("expiry is 1 to {MAX_EXPIRY_SECS} seconds")));
    }
    let old = input.old_token_expiry.unwrap_or(DEFAULT_OLD_TOKEN_EXPIRY_SECS);
    if !(0..=MAX_OLD_TOKEN_EXPIRY_SECS).contains(&old) {
        return Err(ApiError::body_field(
            "oldTokenExpiry",
            format!("oldTokenExpiry is 0 to {MAX_OLD_TOKEN_EXPIRY_SECS} seconds"),
        ));
    }
    let sink = load_sink(&state, &auth, &sink_id).await?;
    let t = now();
    let (_, row) = new_token(&sink, input.expiry.map(|s| t + s * 1000));
    state.resources.rotate_poller_token(row.clone(), t + old * 1000).await?;
    Ok((StatusCode::CREATED, Json(row.into())))
}
