//! What a verified request becomes: its event id (the dedupe key), its event
//! type (what ingest endpoints filter on) and the JSON payload forwarded.

use serde_json::{Map, Value};

use crate::Incoming;

/// Where a value is read from: a header, or a JSON pointer into the body (or
/// into the form fields of a form-encoded body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    Header(String),
    Pointer(String),
}

impl Selector {
    fn header(h: &str) -> Selector {
        Selector::Header(h.to_string())
    }
    fn pointer(p: &str) -> Selector {
        Selector::Pointer(p.to_string())
    }
}

/// The provider's own event id, by convention.
pub fn default_event_id(kind: &str, svix_config: bool) -> Vec<Selector> {
    if svix_config {
        return vec![Selector::header("webhook-id"), Selector::header("svix-id")];
    }
    match kind {
        "stripe" => vec![Selector::pointer("/id")],
        "github" => vec![Selector::header("x-github-delivery")],
        "shopify" => vec![Selector::header("x-shopify-webhook-id"), Selector::header("x-shopify-event-id")],
        "slack" => vec![Selector::pointer("/event_id")],
        "segment" => vec![Selector::pointer("/messageId")],
        "twilio" => vec![Selector::header("i-twilio-idempotency-token")],
        "telnyx" => vec![Selector::pointer("/data/id")],
        "hubspot" => vec![Selector::pointer("/0/eventId")],
        "zoom" => vec![Selector::header("x-zm-trackingid")],
        "tailscale" | "veriff" | "rutter" | "easypost" => vec![Selector::pointer("/id")],
        _ => Vec::new(),
    }
}

/// The provider's own event type, by convention.
pub fn default_event_type(kind: &str, svix_config: bool) -> Vec<Selector> {
    if svix_config {
        return vec![Selector::pointer("/type")];
    }
    match kind {
        "stripe" | "segment" | "tailscale" => vec![Selector::pointer("/type")],
        "github" => vec![Selector::header("x-github-event")],
        "shopify" => vec![Selector::header("x-shopify-topic")],
        "slack" => vec![Selector::pointer("/event/type"), Selector::pointer("/type")],
        "zoom" => vec![Selector::pointer("/event")],
        "meta" => vec![Selector::pointer("/object")],
        "twilio" => vec![Selector::pointer("/MessageStatus"), Selector::pointer("/CallStatus")],
        "telnyx" => vec![Selector::pointer("/data/event_type")],
        "hubspot" => vec![Selector::pointer("/0/subscriptionType")],
        "docusign" | "easypost" | "veriff" => vec![Selector::pointer("/event")],
        _ => Vec::new(),
    }
}

/// The first selector that yields a value (strings and numbers).
pub fn pick(selectors: &[Selector], req: &Incoming, payload: &Value) -> Option<String> {
    selectors
        .iter()
        .find_map(|s| match s {
            Selector::Header(h) => req.header(h).map(str::to_string),
            Selector::Pointer(p) => match payload.pointer(p)? {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            },
        })
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// An event type name hookd accepts (`[a-zA-Z0-9._-]`, at most 256): other
/// characters become `.` (Shopify's `orders/create` is `orders.create`).
pub fn event_type_name(raw: &str) -> String {
    let name: String = raw
        .chars()
        .take(256)
        .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' { c } else { '.' })
        .collect();
    if name.is_empty() {
        "inbound".into()
    } else {
        name
    }
}

/// The key a request is deduplicated on: the provider's id, bounded.
pub fn dedupe_key(id: &str) -> String {
    if id.len() <= 200 {
        return id.to_string();
    }
    use sha2::Digest;
    format!("sha256:{}", crate::hmac::hex(&sha2::Sha256::digest(id.as_bytes())))
}

/// The payload forwarded for a body: JSON as received; a form-encoded body as
/// an object of its fields (a repeated field as a list); anything else as
/// `{"contentType": …, "body": …}` (text as is, binary as `bodyBase64`).
pub fn payload(req: &Incoming) -> Value {
    if let Ok(v) = serde_json::from_slice::<Value>(req.body) {
        return v;
    }
    let content_type = req.header("content-type").unwrap_or("").to_string();
    if content_type.starts_with("application/x-www-form-urlencoded") {
        let mut fields = Map::new();
        for (k, v) in url::form_urlencoded::parse(req.body) {
            match fields.get_mut(k.as_ref()) {
                Some(Value::Array(list)) => list.push(Value::String(v.into_owned())),
                Some(first) => *first = Value::Array(vec![first.take(), Value::String(v.into_owned())]),
                None => {
                    fields.insert(k.into_owned(), Value::String(v.into_owned()));
                }
            }
        }
        return Value::Object(fields);
    }
    let mut out = Map::new();
    out.insert("contentType".into(), Value::String(content_type));
    match std::str::from_utf8(req.body) {
        Ok(text) => out.insert("body".into(), Value::String(text.to_string())),
        Err(_) => {
            use base64::Engine;
            out.insert("bodyBase64".into(), Value::String(base64::engine::general_purpose::STANDARD.encode(req.body)))
        }
    };
    Value::Object(out)
}

/// Checks a five-field cron expression (minute hour day-of-month month
/// day-of-week; `*`, `*/n`, `a-b`, `a-b/n` and lists).
pub fn check_cron(expr: &str) -> Result<(), String> {
    Cron::parse(expr).map(|_| ())
}

/// A parsed cron schedule: which minutes, hours, days, months and weekdays match.
#[derive(Debug, Clone)]
pub struct Cron {
    fields: [u64; 5],
}

const CRON_RANGES: [(u32, u32); 5] = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)];

impl Cron {
    pub fn parse(expr: &str) -> Result<Cron, String> {
        let parts: Vec<&str> = expr.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(format!("{expr:?}: five fields (minute hour day month weekday)"));
        }
        let mut fields = [0u64; 5];
        for (i, part) in parts.iter().enumerate() {
            let (lo, hi) = CRON_RANGES[i];
            for item in part.split(',') {
                let (range, step) = match item.split_once('/') {
                    Some((r, s)) => {
                        (r, s.parse::<u32>().ok().filter(|s| *s > 0).ok_or_else(|| format!("bad step in {item:?}"))?)
                    }
                    None => (item, 1),
                };
                let (a, b) = if range == "*" {
                    (lo, hi)
                } else if let Some((a, b)) = range.split_once('-') {
                    (num(a, lo, hi)?, num(b, lo, hi)?)
                } else {
                    let a = num(range, lo, hi)?;
                    (a, if step > 1 { hi } else { a })
                };
                if a > b {
                    return Err(format!("{item:?}: the range runs backwards"));
                }
                let mut v = a;
                while v <= b {
                    fields[i] |= 1 << v;
                    v += step;
                }
            }
        }
        // Sunday is 0 or 7.
        if fields[4] & (1 << 7) != 0 {
            fields[4] |= 1;
        }
        Ok(Cron { fields })
    }

    /// Whether the schedule fires in the minute starting at `unix_secs` (UTC).
    pub fn matches(&self, unix_secs: i64) -> bool {
        let t = time::OffsetDateTime::from_unix_timestamp(unix_secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let values = [
            u32::from(t.minute()),
            u32::from(t.hour()),
            u32::from(t.day()),
            u32::from(u8::from(t.month())),
            u32::from(t.weekday().number_days_from_sunday()),
        ];
        values.iter().zip(self.fields).all(|(v, f)| f & (1 << v) != 0)
    }
}

fn num(s: &str, lo: u32, hi: u32) -> Result<u32, String> {
    s.parse::<u32>().ok().filter(|n| (lo..=hi).contains(n)).ok_or_else(|| format!("{s:?} is not in {lo}-{hi}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_bodies_become_objects_and_other_bodies_are_wrapped() {
        let headers = vec![("content-type".to_string(), "application/x-www-form-urlencoded".to_string())];
        let req = Incoming {
            method: "POST",
            url: "",
            query: "",
            headers: &headers,
            body: b"MessageSid=SM1&MessageStatus=delivered&a=1&a=2",
            now_secs: 0,
        };
        let p = payload(&req);
        assert_eq!(p["MessageStatus"], "delivered");
        assert_eq!(p["a"], serde_json::json!(["1", "2"]));
        let xml = vec![("content-type".to_string(), "text/xml".to_string())];
        let req = Incoming { body: b"<a/>", headers: &xml, ..req };
        assert_eq!(payload(&req), serde_json::json!({"contentType": "text/xml", "body": "<a/>"}));
    }

    #[test]
    fn cron_schedules_match_their_minutes() {
        // 1_700_000_100 is 22:15:00 UTC.
        let every_15 = Cron::parse("*/15 * * * *").unwrap();
        assert!(every_15.matches(1_700_000_100));
        assert!(!every_15.matches(1_700_000_100 + 60));
        // 2023-11-14 is a Tuesday (2).
        assert!(Cron::parse("0 22 * * 2").unwrap().matches(1_700_000_000 - 1_700_000_000 % 3600));
        assert!(Cron::parse("61 * * * *").is_err());
        assert!(Cron::parse("* * *").is_err());
    }

    #[test]
    fn event_type_names_are_sanitised() {
        assert_eq!(event_type_name("orders/create"), "orders.create");
        assert_eq!(event_type_name("payment_intent.succeeded"), "payment_intent.succeeded");
    }
}
