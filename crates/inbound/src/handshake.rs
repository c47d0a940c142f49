//! Handshakes: what some providers send before (or instead of) events, and
//! which must be answered in a set way rather than forwarded.
//!
//! - Slack's `url_verification` (signed like any event): answer the challenge.
//! - Zoom's `endpoint.url_validation` (signed): answer the plain token with its
//!   HMAC-SHA256 under the secret.
//! - Meta's subscription `GET` with `hub.mode=subscribe`, `hub.verify_token` and
//!   `hub.challenge`: answer the challenge when the token matches.

use serde_json::{json, Value};

use crate::hmac::{self, Algorithm};
use crate::{Incoming, Rejection, SourceConfig};

/// An answer to a handshake: status, content type, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

/// The answer to a handshake in a verified request, if it is one.
pub fn answer_verified(config: &SourceConfig, payload: &Value) -> Option<Answer> {
    match config.kind.as_str() {
        "slack" if payload["type"] == "url_verification" => {
            let challenge = payload["challenge"].as_str()?;
            Some(Answer {
                status: 200,
                content_type: "application/json",
                body: json!({ "challenge": challenge }).to_string(),
            })
        }
        "zoom" if payload["event"] == "endpoint.url_validation" => {
            let plain = payload["payload"]["plainToken"].as_str()?;
            let secret = config.handshake_secret.as_deref()?;
            let encrypted = hmac::hex(&hmac::mac(Algorithm::Sha256, secret.as_bytes(), plain.as_bytes()));
            Some(Answer {
                status: 200,
                content_type: "application/json",
                body: json!({ "plainToken": plain, "encryptedToken": encrypted }).to_string(),
            })
        }
        _ => None,
    }
}

/// The answer to a `GET` on a source's URL: Meta's subscription check.
pub fn answer_get(config: &SourceConfig, req: &Incoming) -> Result<Answer, Rejection> {
    let expected = config.verify_token.as_deref().ok_or_else(|| Rejection::new("this source takes POST and PUT"))?;
    if req.query_param("hub.mode").as_deref() != Some("subscribe") {
        return Err(Rejection::new("hub.mode must be subscribe"));
    }
    let token = req.query_param("hub.verify_token").unwrap_or_default();
    let same = token.len() == expected.len()
        && bool::from(subtle::ConstantTimeEq::ct_eq(token.as_bytes(), expected.as_bytes()));
    if !same {
        return Err(Rejection::new("hub.verify_token does not match"));
    }
    let challenge = req.query_param("hub.challenge").ok_or_else(|| Rejection::new("hub.challenge is missing"))?;
    if challenge.len() > 1024 {
        return Err(Rejection::new("hub.challenge is too long"));
    }
    Ok(Answer { status: 200, content_type: "text/plain", body: challenge })
}
