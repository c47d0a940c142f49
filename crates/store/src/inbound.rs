//! Inbound sources and the requests they received.
//!
//! A source owns an application of its own: its ingest endpoints are that
//! application's endpoints, and an accepted request becomes one of its
//! messages, committed in the same transaction as the request's log row
//! ([`crate::Queue::ingest`]). A request's event id is the message's `eventId`,
//! so a repeated provider event is found and acknowledged without a second
//! message.

use crate::model::Metadata;

#[derive(Debug, Clone)]
pub struct Source {
    pub org_id: String,
    pub id: String,
    pub uid: Option<String>,
    pub name: String,
    /// The source type (`stripe`, `github`, `hmac`…).
    pub kind: String,
    /// The type's configuration as given (secrets included; sealed at rest).
    pub config: serde_json::Value,
    /// Receiving settings (hookd extensions), JSON.
    pub settings: serde_json::Value,
    pub metadata: Metadata,
    pub app_id: String,
    /// The token in the source's URL (`/ingest/{token}`).
    pub token: String,
    /// The token it replaced, still accepted until `prev_token_until`.
    pub prev_token: Option<String>,
    pub prev_token_until: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboundOutcome {
    /// Verified and stored; forwarded as the message `msg_id`.
    Accepted,
    /// Verified, and its event id was seen before (`msg_id` is the first's message).
    Duplicate,
    /// Refused (verification, allowlist, size…): never forwarded.
    Rejected,
    /// Verified, and the status it reports does not move its object forward
    /// (status tracking): kept, not forwarded.
    Ignored,
}

impl InboundOutcome {
    pub const fn as_str(self) -> &'static str {
        match self {
            InboundOutcome::Accepted => "accepted",
            InboundOutcome::Duplicate => "duplicate",
            InboundOutcome::Rejected => "rejected",
            InboundOutcome::Ignored => "ignored",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "accepted" => Some(InboundOutcome::Accepted),
            "duplicate" => Some(InboundOutcome::Duplicate),
            "rejected" => Some(InboundOutcome::Rejected),
            "ignored" => Some(InboundOutcome::Ignored),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct InboundRequest {
    pub org_id: String,
    pub id: String,
    pub source_id: String,
    pub received_at: i64,
    pub method: String,
    /// The query string of the URL called (providers such as Twilio sign it).
    pub query: String,
    pub remote_addr: Option<String>,
    /// Header names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    /// The raw body (sealed when the organisation encrypts payloads).
    pub body: Vec<u8>,
    pub outcome: InboundOutcome,
    /// What the caller was answered.
    pub status_code: u16,
    pub error: Option<String>,
    pub event_type: Option<String>,
    pub event_id: Option<String>,
    pub msg_id: Option<String>,
    /// For a replay: the request replayed.
    pub replay_of: Option<String>,
    /// Status tracking: the object and status the request reports.
    pub object: Option<ObjectStatus>,
}

/// An object's status as a request reports it, with the status's step in the
/// source's lifecycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectStatus {
    pub object_id: String,
    pub status: String,
    pub rank: i32,
}

/// A tracked object: its furthest status so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackedObject {
    pub source_id: String,
    pub object_id: String,
    pub status: String,
    /// The request that brought the status.
    pub request_id: String,
    pub created_at: i64,
    pub updated_at: i64,
}

/// How far an accepted request's message got: its deliveries by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Forwarding {
    pub deliveries: u64,
    pub succeeded: u64,
    pub failed: u64,
}

#[derive(Debug, Clone, Default)]
pub struct InboundFilter {
    pub outcome: Option<InboundOutcome>,
    pub event_type: Option<String>,
    pub object_id: Option<String>,
    /// Received in [after, before).
    pub after: Option<i64>,
    pub before: Option<i64>,
}

/// What [`crate::Queue::ingest`] did with a request.
#[derive(Debug, Default)]
pub struct Ingested {
    /// Deliveries leased to the caller, ready to send.
    pub jobs: Vec<crate::DeliveryJob>,
    /// The request's event id was seen before: the first one's message.
    pub duplicate_of: Option<String>,
    /// The request's status did not move its object forward: not forwarded.
    pub ignored: bool,
}

/// When a scheduled source (cron, poll) runs next and what its last run did.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceSchedule {
    pub due_at: i64,
    pub last_run_at: Option<i64>,
    pub last_result: Option<serde_json::Value>,
}

/// SHA-256 of a source token, hex: what lookups compare.
pub fn token_hash(token: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The name of a source's application.
pub fn app_name(source_name: &str) -> String {
    format!("inbound: {source_name}")
}
