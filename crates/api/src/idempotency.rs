//! The `idempotency-key` request header (decision 3 of the design).
//!
//! Keys are scoped to (organisation, method, path, key). The first request's
//! status and the id of what it created are committed in the same transaction as
//! the creation; a repeat rebuilds the response from them. A repeat while the
//! first is still running gets 409; a repeat with a different body gets 422.
//! Failed (4xx/5xx) requests are not kept. Keys expire after 24 hours.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::http::HeaderMap;
use hookd_store::{IdempotencyKey, IdempotencyOutcome, IdempotencyRecord};
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ApiResult};
use crate::AppState;

const HEADER: &str = "idempotency-key";
const MAX_KEY_LEN: usize = 256;
pub const KEY_LIFETIME_MS: i64 = 24 * 3600 * 1000;

/// Keys whose first request is running on this node.
#[derive(Default)]
pub struct InFlightKeys(Arc<Mutex<HashSet<String>>>);

/// Permission to run a request under a key; releases the key when dropped.
pub struct Ticket {
    org_id: String,
    key: IdempotencyKey,
    request_hash: String,
    slot: String,
    in_flight: Arc<Mutex<HashSet<String>>>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.slot);
    }
}

impl Ticket {
    /// The record to commit with a successful creation.
    pub fn record(&self, status: u16, resource_id: Option<String>) -> IdempotencyRecord {
        IdempotencyRecord {
            org_id: self.org_id.clone(),
            key: self.key.clone(),
            request_hash: self.request_hash.clone(),
            status,
            resource_id,
            expires_at: hookd_core::timefmt::now_millis() + KEY_LIFETIME_MS,
        }
    }
}

pub enum Begin {
    /// Run the request; the ticket is `None` when no key was sent.
    Fresh(Option<Ticket>),
    /// The key was used before: answer from this.
    Replay(IdempotencyOutcome),
}

pub fn record(ticket: &Option<Ticket>, status: u16, resource_id: Option<String>) -> Option<IdempotencyRecord> {
    ticket.as_ref().map(|t| t.record(status, resource_id))
}

/// Looks the key up: a replay, a conflict, or a ticket to go ahead.
pub async fn begin(state: &AppState, org_id: &str, path: &str, headers: &HeaderMap, body: &[u8]) -> ApiResult<Begin> {
    let Some(value) = headers.get(HEADER) else { return Ok(Begin::Fresh(None)) };
    let key = value.to_str().ok().filter(|k| !k.is_empty() && k.len() <= MAX_KEY_LEN).ok_or_else(|| {
        ApiError::invalid(&["header", HEADER], format!("must be 1 to {MAX_KEY_LEN} visible characters"))
    })?;
    let request_hash = hookd_core::text::hex(&Sha256::digest(body));
    let key = IdempotencyKey { method: "POST".into(), path: path.to_string(), key: key.to_string() };
    if let Some(prev) = state.resources.idempotency_lookup(org_id, &key).await? {
        return check_replay(prev, &request_hash);
    }
    let slot = format!("{}\n{}\n{}", org_id, key.path, key.key);
    {
        let mut set = state.idempotency.0.lock().unwrap_or_else(|e| e.into_inner());
        if !set.insert(slot.clone()) {
            return Err(ApiError::Conflict {
                detail: "a request with this idempotency key is still being processed".into(),
                existing_id: None,
            });
        }
    }
    let ticket = Ticket {
        org_id: org_id.to_string(),
        key: key.clone(),
        request_hash,
        slot,
        in_flight: state.idempotency.0.clone(),
    };
    // The first request may have finished between the lookup and taking the slot.
    if let Some(prev) = state.resources.idempotency_lookup(org_id, &key).await? {
        return check_replay(prev, &ticket.request_hash);
    }
    Ok(Begin::Fresh(Some(ticket)))
}

pub fn check_replay(prev: IdempotencyOutcome, request_hash: &str) -> ApiResult<Begin> {
    if prev.request_hash != request_hash {
        return Err(ApiError::invalid(
            &["header", HEADER],
            "this idempotency key was used with a different request body",
        ));
    }
    Ok(Begin::Replay(prev))
}

/// For a key that turned out to be used meanwhile (the store refused the
/// record): the same checks as a replay found at the start.
pub fn replay_after_race(ticket: &Option<Ticket>, prev: IdempotencyOutcome) -> ApiResult<IdempotencyOutcome> {
    match ticket {
        Some(t) => match check_replay(prev, &t.request_hash)? {
            Begin::Replay(prev) => Ok(prev),
            Begin::Fresh(_) => unreachable!("check_replay only replays or refuses"),
        },
        None => Ok(prev),
    }
}
