//! Endpoint checks as stored: the last one of each endpoint, and what the
//! daily certificate re-check needs.

/// The last check of an endpoint (`hookd_delivery::probe`), as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct EndpointCheckRow {
    pub org_id: String,
    pub app_id: String,
    pub endpoint_id: String,
    /// The check, as JSON.
    pub result: String,
    /// When its TLS certificate expires, if it has one.
    pub cert_not_after: Option<i64>,
    pub checked_at: i64,
    /// When an expiry warning was last sent.
    pub warned_at: Option<i64>,
}
