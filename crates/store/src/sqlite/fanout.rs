//! The endpoints each application fans out to, remembered by the writer.
//!
//! Fan-out reads every endpoint of the message's application, JSON columns and
//! secrets decoded, for every message: the largest share of an enqueue's work.
//! All writes go through the one writer thread, so it can keep what it read and
//! know exactly when that goes stale: every write that changes an application's
//! endpoints forgets its entry (in the same closure, so later writes of the same
//! group read afresh), and a group that is rolled back forgets everything, since
//! an entry may have been read from writes that never committed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rusqlite::Connection;

use super::endpoints;
use crate::model::Endpoint;
use crate::Result;

pub type AppEndpoints = Arc<[Arc<Endpoint>]>;

#[derive(Default)]
pub struct FanOutCache {
    /// By (organisation, application).
    by_app: Mutex<HashMap<(String, String), AppEndpoints>>,
}

/// Entries kept at most; past it the cache starts over (it refills as messages come).
const MAX_APPS: usize = 10_000;

impl FanOutCache {
    /// The application's endpoints, from memory or read now. Call on the writer thread only.
    pub fn endpoints(&self, c: &Connection, org_id: &str, app_id: &str) -> Result<AppEndpoints> {
        let key = (org_id.to_string(), app_id.to_string());
        if let Some(eps) = self.lock().get(&key) {
            return Ok(eps.clone());
        }
        let eps: AppEndpoints = endpoints::all_of_app(c, org_id, app_id)?.into_iter().map(Arc::new).collect();
        let mut map = self.lock();
        if map.len() >= MAX_APPS {
            map.clear();
        }
        map.insert(key, eps.clone());
        Ok(eps)
    }

    /// The application's endpoints changed (or it is gone).
    pub fn forget(&self, org_id: &str, app_id: &str) {
        self.lock().remove(&(org_id.to_string(), app_id.to_string()));
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), AppEndpoints>> {
        self.by_app.lock().unwrap_or_else(|e| e.into_inner())
    }
}
