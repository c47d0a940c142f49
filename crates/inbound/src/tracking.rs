//! Status tracking: a source whose requests report the status of objects
//! (an SMS, a payment, a shipment) names where the object's id and status are
//! and the order statuses come in. hookd keeps each object's furthest status
//! and forwards a request only when it moves the object forward: a late `sent`
//! after `delivered` is kept in the log and not forwarded.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Statuses a lifecycle may name at most.
const MAX_STATUSES: usize = 64;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatusTracking {
    /// JSON pointer to the object's id (in the body, or the form fields of a
    /// form-encoded body), e.g. `/MessageSid`.
    pub object_id_pointer: String,
    /// JSON pointer to the object's status, e.g. `/MessageStatus`.
    pub status_pointer: String,
    /// The order statuses come in, earliest first; statuses of one step are
    /// separated by `|` (e.g. `["queued", "sent", "delivered|failed"]`).
    pub lifecycle: Vec<String>,
}

/// An object's status as one request reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub object_id: String,
    pub status: String,
    /// The status's step in the lifecycle (0 first).
    pub rank: i32,
}

impl StatusTracking {
    pub fn check(&self) -> Result<(), String> {
        for (field, p) in [("objectIdPointer", &self.object_id_pointer), ("statusPointer", &self.status_pointer)] {
            if !p.starts_with('/') || p.len() > 256 {
                return Err(format!(
                    "statusTracking.{field}: a JSON pointer such as /data/id (at most 256 characters)"
                ));
            }
        }
        if self.lifecycle.len() < 2 {
            return Err("statusTracking.lifecycle: at least two steps, earliest first".into());
        }
        let mut seen = std::collections::HashSet::new();
        for step in &self.lifecycle {
            for status in step.split('|').map(str::trim) {
                if status.is_empty() || status.len() > 64 {
                    return Err(format!("statusTracking.lifecycle: {step:?} has an empty or over-long status"));
                }
                if !seen.insert(status) {
                    return Err(format!("statusTracking.lifecycle: {status:?} appears twice"));
                }
            }
        }
        if seen.len() > MAX_STATUSES {
            return Err(format!("statusTracking.lifecycle: at most {MAX_STATUSES} statuses"));
        }
        Ok(())
    }

    /// The step of a status, if the lifecycle names it.
    pub fn rank(&self, status: &str) -> Option<i32> {
        self.lifecycle.iter().position(|step| step.split('|').any(|s| s.trim() == status)).map(|i| i as i32)
    }

    /// The object and status a payload reports; `None` when it names no
    /// object, no status, or a status outside the lifecycle (such a request is
    /// forwarded untracked).
    pub fn observe(&self, payload: &Value) -> Option<Observed> {
        let text = |p: &str| match payload.pointer(p)? {
            Value::String(s) => Some(s.trim().to_string()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        let object_id = text(&self.object_id_pointer).filter(|s| !s.is_empty() && s.len() <= 256)?;
        let status = text(&self.status_pointer)?;
        let rank = self.rank(&status)?;
        Some(Observed { object_id, status, rank })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sms() -> StatusTracking {
        StatusTracking {
            object_id_pointer: "/MessageSid".into(),
            status_pointer: "/MessageStatus".into(),
            lifecycle: vec!["queued".into(), "sent".into(), "delivered | undelivered|failed".into()],
        }
    }

    #[test]
    fn statuses_rank_by_their_step() {
        let t = sms();
        t.check().unwrap();
        assert_eq!(t.rank("queued"), Some(0));
        assert_eq!(t.rank("undelivered"), Some(2));
        assert_eq!(t.rank("delivered"), t.rank("failed"));
        assert_eq!(t.rank("read"), None);
        let seen = t.observe(&json!({"MessageSid": "SM1", "MessageStatus": "sent"})).unwrap();
        assert_eq!(seen, Observed { object_id: "SM1".into(), status: "sent".into(), rank: 1 });
        assert_eq!(t.observe(&json!({"MessageSid": "SM1", "MessageStatus": "read"})), None);
        assert_eq!(t.observe(&json!({"MessageStatus": "sent"})), None);
    }

    #[test]
    fn bad_lifecycles_are_refused_by_name() {
        let mut t = sms();
        t.lifecycle = vec!["sent".into(), "delivered|sent".into()];
        assert!(t.check().unwrap_err().contains("\"sent\" appears twice"));
        t.lifecycle = vec!["sent".into()];
        assert!(t.check().unwrap_err().contains("at least two steps"));
        t = sms();
        t.status_pointer = "MessageStatus".into();
        assert!(t.check().unwrap_err().contains("statusPointer"));
    }
}
