//! What delivering needs of an organisation (its destination policy, whether
//! its payloads are sealed at rest), read from the store at most every 10 s
//! per organisation and shared by the API side and the dispatcher.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hookd_core::timefmt::now_millis;
use hookd_store::{OrgSettings, Queue};

const TTL_MS: i64 = 10_000;
const MAX_ORGS: usize = 10_000;

pub struct OrgSettingsCache {
    queue: Arc<dyn Queue>,
    known: Mutex<HashMap<String, (i64, Arc<OrgSettings>)>>,
}

impl OrgSettingsCache {
    pub fn new(queue: Arc<dyn Queue>) -> Self {
        OrgSettingsCache { queue, known: Mutex::default() }
    }

    /// The organisation's settings (an operational webhook's are its
    /// organisation's). When the store cannot be read, the last known ones;
    /// with none known, an error: nothing is sent or stored on a guess.
    pub async fn get(&self, org_id: &str) -> Result<Arc<OrgSettings>, String> {
        let org_id = org_id.strip_suffix(".operational").unwrap_or(org_id);
        let now = now_millis();
        let cached = {
            let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
            known.get(org_id).filter(|(at, _)| now - at < TTL_MS).map(|(_, s)| s.clone())
        };
        if let Some(s) = cached {
            return Ok(s);
        }
        match self.queue.org_settings(org_id).await {
            Ok(s) => {
                let s = Arc::new(s);
                let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
                if known.len() >= MAX_ORGS {
                    known.clear();
                }
                known.insert(org_id.to_string(), (now, s.clone()));
                Ok(s)
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading the organisation's settings failed");
                let known = self.known.lock().unwrap_or_else(|e| e.into_inner());
                known
                    .get(org_id)
                    .map(|(_, s)| s.clone())
                    .ok_or_else(|| "the organisation's settings could not be read".to_string())
            }
        }
    }

    /// `msg`'s payload sealed when its organisation encrypts payloads.
    pub async fn seal_message(&self, msg: &mut hookd_store::Message) -> Result<(), String> {
        let Some(payload) = &msg.payload else { return Ok(()) };
        if !self.get(&msg.org_id).await?.encrypt_payloads {
            return Ok(());
        }
        let sealed = hookd_store::crypt::seal_body(payload, &format!("{}:payload", msg.id))
            .ok_or("the organisation encrypts payloads, and no encryption key was given (--encryption-key)")?;
        msg.payload = Some(Arc::from(sealed));
        Ok(())
    }
}
