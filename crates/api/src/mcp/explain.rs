//! `explain_delivery_failure`: why a message did not reach an endpoint. The
//! facts come from the API (the message, the endpoint with its health, the
//! delivery's state, the attempts); [`explain`] turns them into a cause and a
//! next step in plain language, and is a pure function for that reason.

use serde_json::{json, Value};

use super::calls::{cut, get, ToolOutput};
use super::Backend;

/// How many of the newest attempts are looked at.
const ATTEMPTS_READ: usize = 20;
/// Response bodies are shown up to this many bytes.
const BODY_SHOWN: usize = 500;

/// What to explain.
pub enum Target {
    /// One message's delivery to one endpoint.
    Delivery { msg: String, endpoint: String },
    /// The delivery an attempt belongs to (its message, when known, finds it
    /// faster).
    Attempt { attempt: String, msg: Option<String> },
}

/// Everything known about one delivery, as the API shows it.
pub struct Facts {
    pub message: Value,
    pub endpoint: Value,
    /// The delivery as a destination of the message (`status`, `statusText`,
    /// `nextAttempt`); `None` when the message was never routed to it.
    pub delivery: Option<Value>,
    /// Newest first.
    pub attempts: Vec<Value>,
}

/// Gathers the facts for `target` in application `app` (`/api/v1/app/{app}`).
pub async fn run<B: Backend>(api: &B, app: &str, target: Target) -> Result<ToolOutput, String> {
    let (msg, endpoint) = match target {
        Target::Delivery { msg, endpoint } => (msg, endpoint),
        Target::Attempt { attempt, msg } => {
            let path = match &msg {
                Some(m) => format!("{app}/msg/{m}/attempt/{attempt}"),
                None => format!("{app}/attempt/{attempt}"),
            };
            let a = get(api, &path).await?;
            let field = |k: &str| a[k].as_str().map(String::from).ok_or_else(|| format!("the attempt has no {k}"));
            (field("msgId")?, field("endpointId")?)
        }
    };
    let message = get(api, &format!("{app}/msg/{msg}?with_content=false")).await?;
    let endpoint = get(api, &format!("{app}/endpoint/{endpoint}")).await?;
    let (msg_id, ep_id) = (message["id"].as_str().unwrap_or(&msg), endpoint["id"].as_str().unwrap_or_default());
    // A message reaches 250 endpoints at most per page; the delivery is looked
    // for among the first page, which holds every endpoint of nearly any app.
    let destinations = get(api, &format!("{app}/msg/{msg_id}/endpoint?limit=250")).await?;
    let delivery = destinations["data"].as_array().into_iter().flatten().find(|d| d["id"] == ep_id).cloned();
    let attempts = get(api, &format!("{app}/attempt/msg/{msg_id}?endpoint_id={ep_id}&limit={ATTEMPTS_READ}")).await?;
    let attempts = attempts["data"].as_array().cloned().unwrap_or_default();
    let facts = Facts { message, endpoint, delivery, attempts };
    let text = explain(&facts);
    Ok(ToolOutput::said(text, facts.summary()))
}

impl Facts {
    /// The facts for the assistant to look at: the parts that explain.
    fn summary(&self) -> Value {
        let e = &self.endpoint;
        json!({
            "message": {"id": self.message["id"], "eventType": self.message["eventType"], "timestamp": self.message["timestamp"]},
            "endpoint": {
                "id": e["id"], "url": e["url"], "disabled": e["disabled"], "healthState": e["healthState"],
                "healthReason": e["healthReason"], "health": e["health"], "eventTypes": e["filterTypes"],
                "channels": e["channels"],
            },
            "delivery": self.delivery.as_ref().map(|d| json!({"status": d["statusText"], "nextAttempt": d["nextAttempt"]})),
            "attempts": self.attempts.iter().map(|a| json!({
                "id": a["id"], "timestamp": a["timestamp"], "status": a["statusText"],
                "responseStatusCode": a["responseStatusCode"], "responseDurationMs": a["responseDurationMs"],
                "response": cut(a["response"].as_str().unwrap_or(""), BODY_SHOWN),
            })).collect::<Vec<_>>(),
        })
    }
}

/// Why the delivery in `facts` failed (or has not happened), and what to do.
pub fn explain(facts: &Facts) -> String {
    let (m, e) = (&facts.message, &facts.endpoint);
    let msg_id = m["id"].as_str().unwrap_or("?");
    let ep_id = e["id"].as_str().unwrap_or("?");
    let mut out = format!(
        "Message {msg_id} (event type `{}`, sent {}) to endpoint {ep_id} ({}).\n",
        m["eventType"].as_str().unwrap_or("?"),
        m["timestamp"].as_str().unwrap_or("?"),
        e["url"].as_str().unwrap_or("?"),
    );
    let Some(delivery) = &facts.delivery else {
        out.push_str(&not_routed(facts));
        return out;
    };
    let status = delivery["statusText"].as_str().unwrap_or("unknown");
    let failures: Vec<&Value> = facts.attempts.iter().take_while(|a| a["statusText"] != "success").collect();
    let latest = facts.attempts.first();
    out.push_str(&format!("State: {}.\n", state_line(status, delivery, facts.attempts.len())));
    if let Some(note) = endpoint_line(e) {
        out.push_str(&note);
    }
    match latest {
        None => out.push_str(&format!("Cause: {}\n", unattempted(status, e))),
        Some(a) if a["statusText"] == "success" => {
            out.push_str("Cause: none; the latest attempt succeeded.\nNext step: nothing to do.\n");
            return out;
        }
        Some(a) => {
            let code = a["responseStatusCode"].as_i64().unwrap_or(0);
            let body = a["response"].as_str().unwrap_or("");
            let same = failures.iter().filter(|f| f["responseStatusCode"].as_i64() == Some(code)).count();
            let (cause, step) = classify(code, body);
            let times =
                if same > 1 { format!(" (the last {same} failed attempts the same way)") } else { String::new() };
            out.push_str(&format!("Cause: {cause}{times}.\n"));
            if !body.trim().is_empty() {
                out.push_str(&format!("Its response: {}\n", cut(body.trim(), BODY_SHOWN)));
            }
            let first_failure = failures.last().and_then(|f| f["timestamp"].as_str()).unwrap_or("the first failure");
            let then = match status {
                "fail" => format!(
                    "then resend it with resend_message, or with recover_endpoint since {first_failure} resend every \
                     message that failed to reach this endpoint since then."
                ),
                "canceled" => "the delivery was canceled; resend_message sends the message anew.".into(),
                _ => "hookd keeps retrying on its schedule; resend_message tries again at once.".into(),
            };
            out.push_str(&format!("Next step: {step}; {then}\n"));
        }
    }
    out
}

fn state_line(status: &str, delivery: &Value, attempts: usize) -> String {
    let n = if attempts == 1 { "1 attempt".to_string() } else { format!("{attempts} attempts") };
    match (status, delivery["nextAttempt"].as_str()) {
        ("success", _) => format!("delivered ({n})"),
        ("fail", _) => {
            format!("failed: retries are exhausted after {n}; the message is in the endpoint's dead letters")
        }
        ("canceled", _) => format!("canceled after {n}"),
        ("sending", _) => format!("an attempt is in flight ({n} so far)"),
        (_, Some(next)) => format!("pending: {n} so far, the next at {next}"),
        _ => format!("pending ({n} so far)"),
    }
}

/// The endpoint's own state, when it holds deliveries back.
fn endpoint_line(e: &Value) -> Option<String> {
    if e["disabled"] == true {
        return Some(
            "Endpoint: disabled (by someone, or by hookd after it failed for too long); its deliveries wait until it is \
             enabled again (PATCH the endpoint with disabled: false).\n"
                .into(),
        );
    }
    let h = &e["health"];
    match h["breaker"].as_str() {
        Some("open") => Some(format!(
            "Endpoint: its circuit breaker is open after {} failures in a row: hookd holds its deliveries and probes \
             it at {}.\n",
            h["failures"],
            h["nextProbeAt"].as_str().unwrap_or("intervals")
        )),
        Some("halfOpen") => {
            Some("Endpoint: its circuit breaker is half open: hookd is probing whether it recovered.\n".into())
        }
        _ => match h["throttledUntil"].as_str() {
            Some(until) => Some(format!(
                "Endpoint: the receiver asked hookd to slow down (429/503 or Retry-After) until {until}.\n"
            )),
            None => match e["healthState"].as_str() {
                Some(state @ ("degraded" | "failing")) => {
                    Some(format!("Endpoint: {state} ({}).\n", e["healthReason"].as_str().unwrap_or("")))
                }
                _ => None,
            },
        },
    }
}

/// Why a delivery has no attempt yet.
fn unattempted(status: &str, e: &Value) -> String {
    if e["disabled"] == true {
        return "no attempt was made: the endpoint is disabled.".into();
    }
    if e["health"]["breaker"] == "open" {
        return "no attempt was made yet: the circuit breaker holds deliveries until its next probe.".into();
    }
    match status {
        "canceled" => {
            "no attempt was made: the delivery was canceled (its message was canceled or its content expunged).".into()
        }
        _ => "no attempt was made yet: the delivery is waiting (scheduled for later, or queued behind others).".into(),
    }
}

/// The message never became a delivery to this endpoint: which filter kept it out.
fn not_routed(facts: &Facts) -> String {
    let (m, e) = (&facts.message, &facts.endpoint);
    let event_type = m["eventType"].as_str().unwrap_or("");
    let types: Vec<&str> = e["filterTypes"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let channels: Vec<&str> = e["channels"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let msg_channels: Vec<&str> = m["channels"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let cause = if !types.is_empty() && !types.contains(&event_type) {
        format!("the endpoint receives only the event types {}, not `{event_type}`", types.join(", "))
    } else if !channels.is_empty() && !msg_channels.iter().any(|c| channels.contains(c)) {
        format!(
            "the endpoint receives only the channels {}, and the message was sent on none of them",
            channels.join(", ")
        )
    } else if e["createdAt"].as_str() > m["timestamp"].as_str() {
        "the endpoint was created after the message was sent".into()
    } else if e["filter"].is_string() {
        "the endpoint's payload filter did not match the message, or the endpoint was disabled when it was sent".into()
    } else {
        "the endpoint was disabled, or did not yet match, when the message was sent".into()
    };
    format!(
        "State: never sent to this endpoint (no delivery).\nCause: {cause}.\nNext step: if it should have received \
         it, change the endpoint's filters, then send this message to it with resend_message.\n"
    )
}

/// The cause and the fix of an attempt that answered `code` with `body`.
pub fn classify(code: i64, body: &str) -> (String, &'static str) {
    let b = body.to_ascii_lowercase();
    if code <= 0 {
        return if b.contains("timed out") {
            (
                "the endpoint did not answer in time (the attempt timed out)".into(),
                "make the receiver answer 2xx at once and do its work afterwards, or raise the endpoint's timeout",
            )
        } else if b.contains("certificate") || b.contains("tls") || b.contains("handshake") {
            (
                "the TLS connection failed (certificate or handshake)".into(),
                "fix the receiver's certificate (expired, self-signed or for another name)",
            )
        } else if b.contains("dns") || b.contains("resolve") || b.contains("name or service") {
            (
                "the endpoint's host name did not resolve".into(),
                "check the endpoint's URL for a misspelt or retired host",
            )
        } else if b.contains("private")
            || b.contains("not allowed")
            || b.contains("policy")
            || b.contains("refused to connect")
        {
            (
                "hookd refused to connect: the address is not allowed by its destination policy".into(),
                "point the endpoint at a public address, or allow its network in the destination policy",
            )
        } else if b.contains("refused") || b.contains("connect") {
            (
                "hookd could not connect to the endpoint (nothing listening, or a firewall)".into(),
                "check the receiver is running and reachable at the endpoint's URL",
            )
        } else {
            ("the request failed before any answer".into(), "read the attempt's response for hookd's reason")
        };
    }
    let class = match code {
        300..=399 => ("the endpoint answered with a redirect, which hookd does not follow".to_string(), "update the endpoint's URL to where it redirects"),
        401 | 403 => (format!("the receiver refused the request (HTTP {code}): usually its signature check failed or it wants other credentials"), "check the receiver verifies with this endpoint's current signing secret (after a rotation, both secrets are valid for a while) and that its clock is right; check any auth header it expects"),
        404 => ("the URL was not found on the receiver (HTTP 404)".into(), "check the endpoint's URL path"),
        405 => ("the receiver does not accept POST at that URL (HTTP 405)".into(), "make the receiver accept POST, or fix the URL"),
        408 | 504 => (format!("the receiver or a proxy in front of it timed out (HTTP {code})"), "make the receiver answer faster (acknowledge first, work afterwards)"),
        410 => ("the receiver says the endpoint is gone (HTTP 410)".into(), "remove or disable the endpoint if it is retired, or fix its URL"),
        413 => ("the payload was too large for the receiver (HTTP 413)".into(), "raise the receiver's body size limit"),
        400 | 422 => (format!("the receiver rejected the payload (HTTP {code})"), "read its response below for what it disliked, and fix the receiver or the payload"),
        429 => ("the receiver is rate limiting hookd (HTTP 429)".into(), "lower the endpoint's throttleRate, or raise the receiver's limit"),
        502 | 503 => (format!("the receiver is unavailable (HTTP {code})"), "check the receiver's service and its proxy are up"),
        500..=599 => (format!("the receiver failed while handling the webhook (HTTP {code})"), "look in the receiver's logs for this webhook-id (the message id) and fix the error"),
        200..=299 => (format!("the receiver answered {code}, but the attempt still failed (e.g. its answer was too large)"), "read the attempt's response for hookd's reason"),
        _ => (format!("the receiver answered HTTP {code}"), "read the receiver's response for its reason"),
    };
    class
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(status: &str, codes: &[(i64, &str)], endpoint: Value) -> Facts {
        let attempts = codes
            .iter()
            .enumerate()
            .map(|(i, (code, body))| {
                let ok = (200..300).contains(code) && *body == "ok";
                json!({"id": format!("atmpt_{i}"), "responseStatusCode": code, "response": body,
                       "statusText": if ok { "success" } else { "fail" }, "timestamp": format!("2025-01-01T00:00:0{}Z", 9 - i)})
            })
            .collect();
        Facts {
            message: json!({"id": "msg_1", "eventType": "invoice.paid", "timestamp": "2025-01-01T00:00:00Z"}),
            endpoint,
            delivery: Some(json!({"statusText": status, "nextAttempt": null})),
            attempts,
        }
    }

    #[test]
    fn an_exhausted_server_error_says_so_and_what_next() {
        let ep = json!({"id": "ep_1", "url": "https://x.example/hook", "disabled": false, "healthState": "failing"});
        let text = explain(&facts("fail", &[(500, "boom"), (500, "boom"), (500, "boom")], ep));
        assert!(text.contains("retries are exhausted after 3 attempts"), "{text}");
        assert!(text.contains("HTTP 500") && text.contains("last 3 failed attempts"), "{text}");
        assert!(text.contains("Its response: boom"), "{text}");
        assert!(text.contains("recover_endpoint since 2025-01-01T00:00:07Z"), "{text}");
    }

    #[test]
    fn causes_follow_the_status_code_and_network_errors() {
        for (code, body, needle) in [
            (0, "timed out", "did not answer in time"),
            (0, "connection failed: tcp connect error: Connection refused (os error 111)", "could not connect"),
            (0, "connection failed: invalid peer certificate: Expired", "TLS"),
            (401, "bad signature", "signature"),
            (404, "", "not found"),
            (429, "", "rate limiting"),
            (503, "", "unavailable"),
            (302, "", "redirect"),
        ] {
            let (cause, _) = classify(code, body);
            assert!(cause.contains(needle), "{code} {body}: {cause}");
        }
    }

    #[test]
    fn a_disabled_endpoint_and_an_open_breaker_are_named() {
        let disabled = json!({"id": "ep_1", "url": "u", "disabled": true});
        assert!(explain(&facts("pending", &[], disabled)).contains("disabled"));
        let open = json!({"id": "ep_1", "url": "u", "disabled": false,
                          "health": {"breaker": "open", "failures": 5, "nextProbeAt": "2025-01-01T01:00:00Z"}});
        let text = explain(&facts("pending", &[(503, "")], open));
        assert!(text.contains("circuit breaker is open after 5 failures"), "{text}");
    }

    #[test]
    fn a_message_the_endpoint_filters_out_is_explained() {
        let mut f = facts("fail", &[], json!({"id": "ep_1", "url": "u", "filterTypes": ["user.created"]}));
        f.delivery = None;
        let text = explain(&f);
        assert!(text.contains("never sent") && text.contains("user.created"), "{text}");
    }
}
