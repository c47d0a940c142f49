//! The rows the store keeps. Times are Unix milliseconds.

use std::collections::BTreeMap;
use std::sync::Arc;

use hookd_core::{AttemptTrigger, Secret};

pub type Metadata = BTreeMap<String, String>;

#[derive(Debug, Clone)]
pub struct ApiToken {
    pub id: String,
    pub org_id: String,
    /// SHA-256 of the token, hex. The token itself is never stored.
    pub token_hash: String,
    /// `Some` for a token scoped to one application (app portal access).
    pub app_id: Option<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
}

/// One page request. `iterator` is the id (or name) of the last row seen, and
/// `backwards` pages towards earlier rows from it. List queries return up to
/// `limit + 1` rows in the order they walk (reversed when `backwards`); the extra
/// row tells the caller there is more.
#[derive(Debug, Clone)]
pub struct Page {
    pub limit: usize,
    pub iterator: Option<String>,
    pub backwards: bool,
    pub descending: bool,
}

#[derive(Debug, Clone)]
pub struct Application {
    pub org_id: String,
    pub id: String,
    pub uid: Option<String>,
    pub name: String,
    pub rate_limit: Option<u32>,
    pub metadata: Metadata,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub struct EventType {
    pub org_id: String,
    pub name: String,
    pub description: String,
    pub archived: bool,
    pub deprecated: bool,
    /// JSON text.
    pub schemas: Option<String>,
    pub feature_flags: Option<Vec<String>>,
    pub group_name: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A secret that was rotated out and still signs until `expires_at`.
#[derive(Debug, Clone)]
pub struct RetiredSecret {
    pub secret: Secret,
    pub expires_at: i64,
}

#[derive(Clone)]
pub struct Endpoint {
    pub org_id: String,
    pub app_id: String,
    pub id: String,
    pub uid: Option<String>,
    pub url: String,
    pub description: String,
    pub version: i32,
    pub disabled: bool,
    pub event_types: Option<Vec<String>>,
    pub channels: Option<Vec<String>>,
    pub rate_limit: Option<u32>,
    pub metadata: Metadata,
    pub headers: BTreeMap<String, String>,
    pub secret: Secret,
    pub retired_secrets: Vec<RetiredSecret>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Header values may be credentials (`Authorization`…): `Debug` shows their
/// names only, as `Secret` shows no key.
impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("id", &self.id)
            .field("app_id", &self.app_id)
            .field("url", &self.url)
            .field("disabled", &self.disabled)
            .field("header_names", &self.headers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// Whether a message with this event type and these channels goes to this
    /// endpoint: it must be enabled, list the event type (or list none), and share
    /// a channel with the message when the endpoint names channels.
    pub fn accepts(&self, event_type: &str, channels: Option<&[String]>) -> bool {
        if self.disabled {
            return false;
        }
        if let Some(types) = &self.event_types {
            if !types.is_empty() && !types.iter().any(|t| t == event_type) {
                return false;
            }
        }
        if let Some(wanted) = &self.channels {
            if !wanted.is_empty() {
                let Some(have) = channels else { return false };
                if !have.iter().any(|c| wanted.contains(c)) {
                    return false;
                }
            }
        }
        true
    }

    /// Secrets that sign a request sent at `now`: the current one, then retired
    /// ones still in their grace period.
    pub fn signing_secrets(&self, now: i64) -> Vec<Secret> {
        let mut out = vec![self.secret.clone()];
        out.extend(self.retired_secrets.iter().filter(|r| r.expires_at > now).map(|r| r.secret.clone()));
        out
    }
}

#[derive(Debug, Clone)]
pub struct Message {
    pub org_id: String,
    pub app_id: String,
    pub id: String,
    pub event_id: Option<String>,
    pub event_type: String,
    pub channels: Option<Vec<String>>,
    pub tags: Option<Vec<String>>,
    /// The JSON payload as received; `None` once expunged.
    pub payload: Option<Arc<[u8]>>,
    pub created_at: i64,
}

#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    pub event_types: Vec<String>,
    pub channel: Option<String>,
    pub tag: Option<String>,
    pub before: Option<i64>,
    pub after: Option<i64>,
    pub with_content: bool,
}

/// Internal delivery states. 0–3 are Svix's `MessageStatus`; canceled is shown
/// to clients as failed and counted apart in endpoint stats.
pub mod status {
    pub const SUCCESS: i64 = 0;
    pub const PENDING: i64 = 1;
    pub const FAIL: i64 = 2;
    /// Attempted and failed, retries remain.
    pub const SENDING: i64 = 3;
    /// Dropped because the endpoint was disabled or deleted.
    pub const CANCELED: i64 = 4;
}

/// One message's delivery to one endpoint.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: i64,
    pub msg_id: String,
    pub endpoint_id: String,
    pub status: i64,
    pub attempts: u32,
    pub next_attempt_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Who holds deliveries in memory, and until when.
#[derive(Debug, Clone)]
pub struct Lease {
    pub owner: String,
    pub until: i64,
}

/// What the dispatcher needs to send one delivery.
#[derive(Debug, Clone)]
pub struct DeliveryJob {
    pub delivery_id: i64,
    pub org_id: String,
    pub app_id: String,
    pub msg_id: String,
    pub event_type: String,
    /// Accept time of the message, for end-to-end latency.
    pub msg_created_at: i64,
    /// `None` when the payload was expunged.
    pub payload: Option<Arc<[u8]>>,
    pub endpoint: Arc<Endpoint>,
    /// Attempts made before this one.
    pub attempts: u32,
    pub trigger: AttemptTrigger,
}

/// The result of one attempt and the delivery's next state.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub delivery_id: i64,
    /// `None` when no request was made (endpoint disabled or deleted: canceled).
    pub attempt: Option<Attempt>,
    pub new_status: i64,
    pub attempts: u32,
    pub next_attempt_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct Attempt {
    pub id: String,
    pub org_id: String,
    pub app_id: String,
    pub msg_id: String,
    pub endpoint_id: String,
    pub url: String,
    /// 0 success, 2 fail (Svix `MessageStatus`).
    pub status: i64,
    /// 0 when no response was received.
    pub response_status_code: i32,
    pub response: String,
    pub response_duration_ms: i64,
    pub trigger: AttemptTrigger,
    pub created_at: i64,
}

#[derive(Debug, Clone, Default)]
pub struct AttemptFilter {
    pub msg_id: Option<String>,
    pub endpoint_id: Option<String>,
    pub status: Option<i64>,
    /// 0 for attempts without a response, else 100, 200… for that class of codes.
    pub status_code_class: Option<i64>,
    pub before: Option<i64>,
    pub after: Option<i64>,
    /// Filters on the attempted message: its event type, a channel, a tag.
    pub message: MessageFilter,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointStats {
    pub success: u64,
    pub pending: u64,
    pub sending: u64,
    pub fail: u64,
    pub canceled: u64,
}

/// An idempotency key, scoped as decision 3 of the design says.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    pub method: String,
    pub path: String,
    pub key: String,
}

/// What is kept of a first response: its status and the id of what it created,
/// enough to rebuild it. Never a payload, token or secret.
#[derive(Debug, Clone)]
pub struct IdempotencyOutcome {
    pub request_hash: String,
    pub status: u16,
    pub resource_id: Option<String>,
}

/// Stored in the same transaction as what the request creates.
#[derive(Debug, Clone)]
pub struct IdempotencyRecord {
    pub org_id: String,
    pub key: IdempotencyKey,
    pub request_hash: String,
    pub status: u16,
    pub resource_id: Option<String>,
    pub expires_at: i64,
}
