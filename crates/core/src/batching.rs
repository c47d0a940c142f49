//! Batched endpoints: several messages in one request. The body is a JSON
//! array of envelopes, one per message, in the order they were queued:
//!
//! ```json
//! [{"id": "msg_…", "eventType": "invoice.paid", "timestamp": "2026-…Z", "payload": {…}}, …]
//! ```
//!
//! The request is signed once, as any other, over that body; its `webhook-id`
//! is `batch_` and 27 base62 characters derived from the member message ids,
//! so the same messages in the same order always make the same id (a receiver
//! can drop a batch it already took) while each member keeps its own `id` to
//! drop a message it already took in another batch.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Most messages one request may carry.
pub const MAX_MESSAGES: u32 = 1000;
/// Longest a batch may wait to fill, in milliseconds.
pub const MAX_WAIT_MS: u64 = 60_000;
/// A batch stops growing past this many payload bytes (one message always goes).
pub const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;

/// An endpoint's `batch` (a hookd extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Batching {
    /// Up to this many messages per request.
    pub max_messages: u32,
    /// A request goes when it is full, or when its first message has waited
    /// this long (0: whatever is waiting goes at once).
    #[serde(default)]
    pub max_wait_ms: u64,
}

impl Batching {
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_MESSAGES).contains(&self.max_messages) {
            return Err(format!("maxMessages is from 1 to {MAX_MESSAGES}"));
        }
        if self.max_wait_ms > MAX_WAIT_MS {
            return Err(format!("maxWaitMs is at most {MAX_WAIT_MS}"));
        }
        Ok(())
    }
}

/// One message of a batch.
pub struct Member<'a> {
    pub msg_id: &'a str,
    pub event_type: &'a str,
    /// The message's creation time, Unix ms.
    pub created_at: i64,
    /// The payload as JSON text (a payload that is not JSON goes as a string).
    pub payload: &'a [u8],
}

/// The batch's `webhook-id`.
pub fn batch_id(msg_ids: &[&str]) -> String {
    const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let digest = Sha256::digest(msg_ids.join(",").as_bytes());
    let mut n = u128::from_be_bytes(digest[..16].try_into().expect("16 bytes"));
    let mut out = String::from("batch_");
    for _ in 0..27 {
        out.push(BASE62[(n % 62) as usize] as char);
        n /= 62;
        if n == 0 {
            n = u128::from_be_bytes(digest[16..].try_into().expect("16 bytes"));
        }
    }
    out
}

/// The request body of a batch.
pub fn batch_body(members: &[Member<'_>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(members.iter().map(|m| m.payload.len() + 128).sum());
    out.push(b'[');
    for (i, m) in members.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let head = serde_json::json!({
            "id": m.msg_id,
            "eventType": m.event_type,
            "timestamp": crate::timefmt::format_millis(m.created_at),
        });
        let head = serde_json::to_string(&head).expect("a JSON object");
        // The envelope's fields, then the payload byte for byte.
        out.extend_from_slice(&head.as_bytes()[..head.len() - 1]);
        out.extend_from_slice(b",\"payload\":");
        if serde_json::from_slice::<serde::de::IgnoredAny>(m.payload).is_ok() {
            out.extend_from_slice(m.payload);
        } else {
            let text = String::from_utf8_lossy(m.payload);
            out.extend_from_slice(serde_json::to_string(&text).expect("a string").as_bytes());
        }
        out.push(b'}');
    }
    out.push(b']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_an_array_of_envelopes_with_each_payload_as_sent() {
        let members = [
            Member { msg_id: "msg_1", event_type: "a.b", created_at: 0, payload: br#"{"n": 1}"# },
            Member { msg_id: "msg_2", event_type: "c.d", created_at: 1_000, payload: b"not json" },
        ];
        let body = batch_body(&members);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v[0]["id"], "msg_1");
        assert_eq!(v[0]["eventType"], "a.b");
        assert_eq!(v[0]["payload"], serde_json::json!({"n": 1}));
        assert_eq!(v[1]["payload"], "not json");
        assert_eq!(v[1]["timestamp"], "1970-01-01T00:00:01.000Z");
        assert!(String::from_utf8(body).unwrap().contains(r#""payload":{"n": 1}"#), "payload bytes kept");
    }

    #[test]
    fn batch_ids_follow_the_members() {
        let a = batch_id(&["msg_1", "msg_2"]);
        assert!(a.starts_with("batch_") && a.len() == 33, "{a}");
        assert_eq!(a, batch_id(&["msg_1", "msg_2"]));
        assert_ne!(a, batch_id(&["msg_2", "msg_1"]));
        assert!(Batching { max_messages: 0, max_wait_ms: 0 }.validate().is_err());
        assert!(Batching { max_messages: 10, max_wait_ms: 120_000 }.validate().is_err());
        assert!(Batching { max_messages: 10, max_wait_ms: 500 }.validate().is_ok());
    }
}
