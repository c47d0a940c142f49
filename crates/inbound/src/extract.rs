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
    fn event_type_names_are_sanitised() {
        assert_eq!(event_type_name("orders/create"), "orders.create");
        assert_eq!(event_type_name("payment_intent.succeeded"), "payment_intent.succeeded");
    }
}
