//! A source's receiving settings: hookd extensions beside Svix's `config`,
//! top-level camelCase fields of `IngestSourceIn`/`Out`.

use hookd_core::policy::Network;
use serde::{Deserialize, Serialize};

use crate::extract::Selector;
use crate::tracking::StatusTracking;

/// Largest body a source may be configured to take.
pub const MAX_BODY_LIMIT: u32 = 10 * 1024 * 1024;
/// The body limit when a source sets none.
pub const DEFAULT_BODY_LIMIT: u32 = 1024 * 1024;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SourceSettings {
    /// Networks (CIDRs) requests may come from; empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_ips: Vec<String>,
    /// Requests per second this source accepts on one node (429 beyond).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<u32>,
    /// Largest body accepted (413 beyond), in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<u32>,
    /// Refuse (415, 400) a request whose body is not JSON.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_json: bool,
    /// Where the provider's event id is (a header, or a JSON pointer into the
    /// body): it replaces the provider's convention.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id_header: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id_pointer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type_header: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type_pointer: Option<String>,
    /// The answer to an accepted request (default 200 `{}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_content_type: Option<String>,
    /// Verification failures in a minute that fire the operational event
    /// `ingest.source.verification_failing` (default 10; 0: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_alert_threshold: Option<u32>,
    /// Keep each object's status and forward only what moves it forward.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_tracking: Option<StatusTracking>,
}

impl SourceSettings {
    /// Checks every field; the error names it.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if self.allowed_ips.len() > 64 {
            return Err(("allowedIps", "at most 64 networks".into()));
        }
        for n in &self.allowed_ips {
            Network::parse(n).map_err(|e| ("allowedIps", e))?;
        }
        if self.rate_limit == Some(0) {
            return Err(("rateLimit", "at least 1 request per second".into()));
        }
        if self.max_body_bytes.is_some_and(|b| !(1..=MAX_BODY_LIMIT).contains(&b)) {
            return Err(("maxBodyBytes", format!("between 1 and {MAX_BODY_LIMIT}")));
        }
        for (field, h) in [("eventIdHeader", &self.event_id_header), ("eventTypeHeader", &self.event_type_header)] {
            if let Some(h) = h {
                crate::hmac::check_header_name(field, h).map_err(|e| (field, e))?;
            }
        }
        for (field, p) in [("eventIdPointer", &self.event_id_pointer), ("eventTypePointer", &self.event_type_pointer)] {
            if let Some(p) = p {
                if !p.starts_with('/') || p.len() > 256 {
                    return Err((field, "a JSON pointer such as /data/id (at most 256 characters)".into()));
                }
            }
        }
        if self.response_status.is_some_and(|s| !(200..=299).contains(&s)) {
            return Err(("responseStatus", "a 2xx status".into()));
        }
        if self.response_body.as_ref().is_some_and(|b| b.len() > 4096) {
            return Err(("responseBody", "at most 4096 bytes".into()));
        }
        if let Some(ct) = &self.response_content_type {
            if ct.len() > 128 || ct.chars().any(|c| c.is_control()) {
                return Err(("responseContentType", "a content type of at most 128 characters".into()));
            }
        }
        if let Some(t) = &self.status_tracking {
            t.check().map_err(|e| ("statusTracking", e))?;
        }
        Ok(())
    }

    pub fn networks(&self) -> Vec<Network> {
        self.allowed_ips.iter().filter_map(|n| Network::parse(n).ok()).collect()
    }

    pub fn body_limit(&self) -> usize {
        self.max_body_bytes.unwrap_or(DEFAULT_BODY_LIMIT) as usize
    }

    pub fn event_id_selectors(&self) -> Option<Vec<Selector>> {
        configured(&self.event_id_header, &self.event_id_pointer)
    }

    pub fn event_type_selectors(&self) -> Option<Vec<Selector>> {
        configured(&self.event_type_header, &self.event_type_pointer)
    }
}

fn configured(header: &Option<String>, pointer: &Option<String>) -> Option<Vec<Selector>> {
    let mut out = Vec::new();
    out.extend(header.as_ref().map(|h| Selector::Header(h.to_ascii_lowercase())));
    out.extend(pointer.as_ref().map(|p| Selector::Pointer(p.clone())));
    (!out.is_empty()).then_some(out)
}
