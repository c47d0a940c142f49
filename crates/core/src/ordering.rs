//! Ordered endpoints: an endpoint's `ordering` setting, and the key that
//! splits its messages into independent queues.
//!
//! Within one key, messages reach the endpoint strictly in creation order: the
//! next is sent only once the one before it succeeded or gave up (`block`,
//! after its retries; `skip`, at its first failure). Different keys do not
//! wait for each other.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Longest ordering key stored as it is; a longer one is stored as its digest.
const MAX_KEY_LEN: usize = 128;
/// Longest JSON Pointer an ordering key may name.
const MAX_POINTER_LEN: usize = 256;

/// What a failing message does to the ones behind it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OnFailure {
    /// They wait until it succeeds or its retries are exhausted.
    #[default]
    Block,
    /// It fails at once (no retries; it can be resent) and the next goes.
    Skip,
}

/// An endpoint's `ordering` (a hookd extension).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Ordering {
    /// `channel` (the message's channels), a JSON Pointer into the payload
    /// (`/customer/id`), or none: one queue for the whole endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default)]
    pub on_failure: OnFailure,
}

impl Ordering {
    /// Why the setting cannot be used, if it cannot.
    pub fn validate(&self) -> Result<(), String> {
        match self.key.as_deref() {
            None | Some("channel") => Ok(()),
            Some(p) if p.starts_with('/') && p.len() <= MAX_POINTER_LEN => Ok(()),
            Some(p) if p.starts_with('/') => Err(format!("a JSON Pointer of at most {MAX_POINTER_LEN} characters")),
            Some(other) => Err(format!("`{other}` is neither `channel` nor a JSON Pointer (starting with `/`)")),
        }
    }

    /// The queue a message goes to: its channels (sorted, comma-joined), or
    /// the payload's value at the pointer (a string as it is, anything else
    /// as compact JSON; missing: the empty key), or the empty key.
    pub fn key_of(&self, channels: Option<&[String]>, payload: Option<&[u8]>) -> String {
        let key = match self.key.as_deref() {
            None => String::new(),
            Some("channel") => {
                let mut c: Vec<&str> = channels.unwrap_or_default().iter().map(String::as_str).collect();
                c.sort_unstable();
                c.dedup();
                c.join(",")
            }
            Some(pointer) => {
                let value = payload.and_then(|p| serde_json::from_slice::<serde_json::Value>(p).ok());
                match value.as_ref().and_then(|v| v.pointer(pointer)) {
                    None | Some(serde_json::Value::Null) => String::new(),
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                }
            }
        };
        if key.len() <= MAX_KEY_LEN {
            return key;
        }
        let digest = Sha256::digest(key.as_bytes());
        format!("sha256:{}", digest.iter().map(|b| format!("{b:02x}")).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(key: Option<&str>) -> Ordering {
        Ordering { key: key.map(String::from), on_failure: OnFailure::Block }
    }

    #[test]
    fn keys_come_from_channels_or_the_payload() {
        let payload = br#"{"customer": {"id": "cus_1", "n": 7}, "flag": null}"#;
        let channels = vec!["b".to_string(), "a".to_string(), "b".to_string()];
        assert_eq!(with(None).key_of(Some(&channels), Some(payload)), "");
        assert_eq!(with(Some("channel")).key_of(Some(&channels), Some(payload)), "a,b");
        assert_eq!(with(Some("channel")).key_of(None, Some(payload)), "");
        assert_eq!(with(Some("/customer/id")).key_of(None, Some(payload)), "cus_1");
        assert_eq!(with(Some("/customer/n")).key_of(None, Some(payload)), "7");
        assert_eq!(with(Some("/customer")).key_of(None, Some(payload)), r#"{"id":"cus_1","n":7}"#);
        assert_eq!(with(Some("/flag")).key_of(None, Some(payload)), "");
        assert_eq!(with(Some("/missing")).key_of(None, Some(payload)), "");
        assert_eq!(with(Some("/customer/id")).key_of(None, Some(b"not json")), "");
    }

    #[test]
    fn long_keys_are_digested_and_settings_are_checked() {
        let long = format!(r#"{{"k": "{}"}}"#, "x".repeat(500));
        let key = with(Some("/k")).key_of(None, Some(long.as_bytes()));
        assert!(key.starts_with("sha256:") && key.len() == 71, "{key}");
        assert!(with(Some("channel")).validate().is_ok());
        assert!(with(Some("/a/b")).validate().is_ok());
        assert!(with(Some("channels")).validate().unwrap_err().contains("JSON Pointer"));
        let parsed: Result<Ordering, _> = serde_json::from_str(r#"{"onFailure": "skip", "other": 1}"#);
        assert!(parsed.is_err());
        let parsed: Ordering = serde_json::from_str(r#"{"onFailure": "skip"}"#).unwrap();
        assert_eq!(parsed, Ordering { key: None, on_failure: OnFailure::Skip });
    }
}
