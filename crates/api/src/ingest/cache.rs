//! Sources by URL token, parsed once and kept for a moment: receiving reads
//! neither the store nor the configuration's JSON on every request. A change
//! to a source (or its deletion, or a rotation's end) is seen within [`TTL`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hookd_core::policy::Network;
use hookd_inbound::{SourceConfig, SourceSettings};
use hookd_store::Source;

use crate::error::{ApiError, ApiResult};
use crate::AppState;

pub const TTL: Duration = Duration::from_secs(2);
const MAX_ENTRIES: usize = 10_000;

/// A source ready to receive.
#[derive(Debug)]
pub struct Loaded {
    pub source: Source,
    pub config: SourceConfig,
    pub settings: SourceSettings,
    pub networks: Vec<Network>,
}

impl Loaded {
    pub fn of(source: Source) -> Result<Loaded, String> {
        let config = SourceConfig::parse(&source.kind, &source.config)?;
        let settings: SourceSettings = serde_json::from_value(source.settings.clone()).map_err(|e| e.to_string())?;
        let networks = settings.networks();
        Ok(Loaded { source, config, settings, networks })
    }
}

/// When a token was looked up, and what it found.
type Entry = (Instant, Option<Arc<Loaded>>);

#[derive(Default)]
pub struct SourceCache {
    entries: Mutex<HashMap<String, Entry>>,
}

impl SourceCache {
    /// The source with this token (`None`: no such source, also remembered
    /// for a moment).
    pub async fn get(&self, state: &AppState, token: &str) -> ApiResult<Option<Arc<Loaded>>> {
        if token.len() > 128 {
            return Ok(None);
        }
        if let Some((at, hit)) = self.entries.lock().unwrap_or_else(|e| e.into_inner()).get(token) {
            if at.elapsed() < TTL {
                return Ok(hit.clone());
            }
        }
        let loaded = match state.resources.source_by_token(token).await? {
            Some(src) => Some(Arc::new(
                Loaded::of(src).map_err(|e| ApiError::Internal(format!("a stored source no longer parses: {e}")))?,
            )),
            None => None,
        };
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, (at, _)| at.elapsed() < TTL);
        }
        if entries.len() < MAX_ENTRIES {
            entries.insert(token.to_string(), (Instant::now(), loaded.clone()));
        }
        Ok(loaded)
    }
}

impl SourceCache {
    /// Forgets everything: a source changed through this node.
    pub fn clear(&self) {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}
