//! Payload validation against event type schemas (opt-in per event type with
//! `validatePayloads`): the compiled schema of each event type, read at most
//! every [`TTL`] per node (at once on the node that changed the event type).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hookd_core::schema::{self, Schema};
use hookd_store::StoreError;

use crate::error::{ApiError, ApiResult, FieldError};
use crate::AppState;

/// How long a node keeps what it read of an event type's validation.
pub const TTL: Duration = Duration::from_secs(5);
/// Event types remembered at most (past it the cache starts over).
const MAX_ENTRIES: usize = 10_000;

/// `None`: the event type does not validate (or does not exist).
type Entry = (Instant, Option<Arc<Schema>>);

#[derive(Default)]
pub struct SchemaCache {
    entries: Mutex<HashMap<(String, String), Entry>>,
}

impl SchemaCache {
    /// The event type was written on this node: read it afresh next time.
    pub fn forget(&self, org_id: &str, event_type: &str) {
        lock(&self.entries).remove(&(org_id.to_string(), event_type.to_string()));
    }

    /// Forgets the event type when the returned guard is dropped: at the end
    /// of the handler that writes it, after the write, whatever it answers.
    pub fn forget_after<'a>(&'a self, org_id: &str, event_type: &str) -> ForgetOnDrop<'a> {
        ForgetOnDrop { cache: self, org_id: org_id.to_string(), event_type: event_type.to_string() }
    }

    async fn get(&self, state: &AppState, org_id: &str, event_type: &str) -> ApiResult<Option<Arc<Schema>>> {
        let key = (org_id.to_string(), event_type.to_string());
        if let Some((at, schema)) = lock(&self.entries).get(&key) {
            if at.elapsed() < TTL {
                return Ok(schema.clone());
            }
        }
        let schema = match state.resources.get_event_type(org_id, event_type).await {
            Ok(et) if et.validate_payloads => et
                .schemas
                .as_deref()
                .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
                .and_then(|s| schema::latest(&s).and_then(|latest| Schema::compile(latest).ok()))
                .map(Arc::new),
            Ok(_) | Err(StoreError::NotFound) => None,
            Err(e) => return Err(e.into()),
        };
        let mut entries = lock(&self.entries);
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key, (Instant::now(), schema.clone()));
        Ok(schema)
    }
}

pub struct ForgetOnDrop<'a> {
    cache: &'a SchemaCache,
    org_id: String,
    event_type: String,
}

impl Drop for ForgetOnDrop<'_> {
    fn drop(&mut self) {
        self.cache.forget(&self.org_id, &self.event_type);
    }
}

/// Refuses a payload that does not match its event type's latest schema, when
/// the event type validates: 422 with one entry per failing place, at
/// `["body", "payload", …path]`. `payload` is `None` for a raw (non-JSON) payload.
pub async fn check(state: &AppState, org_id: &str, event_type: &str, payload: Option<&str>) -> ApiResult<()> {
    let Some(schema) = state.schemas.get(state, org_id, event_type).await? else { return Ok(()) };
    let Some(payload) = payload else {
        return Err(ApiError::body_field(
            "transformationsParams",
            format!("event type {event_type} validates its payloads against its schema: send a JSON payload"),
        ));
    };
    let value: serde_json::Value =
        serde_json::from_str(payload).map_err(|e| ApiError::body_field("payload", e.to_string()))?;
    let errors = schema.errors(&value);
    if errors.is_empty() {
        return Ok(());
    }
    Err(ApiError::Validation(
        errors
            .into_iter()
            .map(|e| {
                let mut loc = vec!["body".to_string(), "payload".to_string()];
                loc.extend(e.path.split('/').skip(1).map(|s| s.replace("~1", "/").replace("~0", "~")));
                FieldError { loc, msg: format!("{} (schema of {event_type})", e.message), kind: "value_error".into() }
            })
            .collect(),
    ))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
