//! Inbound webhooks, the part that needs no I/O: which source types exist and
//! what their configuration holds ([`source`]), how each provider family signs
//! its requests ([`verify`], [`hmac`]), the handshakes some providers make
//! before they send anything ([`handshake`]), and what a verified request
//! becomes: its event id (for dedupe), its event type and the payload that is
//! forwarded ([`extract`]).
//!
//! The server side (receiving, storing, routing onward) lives in the API and
//! the store; a verified request becomes a message of the source's application.

pub mod extract;
pub mod handshake;
pub mod hmac;
pub mod schedule;
pub mod settings;
pub mod source;
pub mod tracking;
pub mod verify;

pub use settings::SourceSettings;
pub use source::{SourceConfig, SourceType};
pub use tracking::{Observed, StatusTracking};

/// A request as it reached a source's URL.
#[derive(Debug, Clone, Copy)]
pub struct Incoming<'a> {
    pub method: &'a str,
    /// The URL the provider called, as the provider sees it (the public URL,
    /// path and query): Twilio and HubSpot sign it.
    pub url: &'a str,
    /// The raw query string, without `?`.
    pub query: &'a str,
    /// Header names in lower case, values as received.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
    pub now_secs: i64,
}

impl<'a> Incoming<'a> {
    /// The first value of a header (`name` in lower case).
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The first value of a query parameter.
    pub fn query_param(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(self.query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
    }

    /// The body as JSON, if it is JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(self.body).ok()
    }
}

/// Why a request was not accepted: shown to the caller and kept in the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Rejection(pub String);

impl Rejection {
    pub fn new(why: impl Into<String>) -> Self {
        Rejection(why.into())
    }
}
