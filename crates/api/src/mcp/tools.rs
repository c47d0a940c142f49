//! The tools: names, descriptions and input schemas, as `tools/list` shows
//! them. What each does is in [`super::calls`].

use serde_json::{json, Map, Value};

use super::Scope;

/// The pattern of ids, uids and event type names (the API's own).
pub const NAME_PATTERN: &str = "^[a-zA-Z0-9\\-_.]+$";
/// Longest id, uid or event type name.
pub const MAX_NAME_LEN: usize = 256;
/// Most rows one list call returns.
pub const MAX_LIMIT: u64 = 100;
pub const DEFAULT_LIMIT: u64 = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    ListApplications,
    GetApplication,
    ListEndpoints,
    GetEndpoint,
    ListMessages,
    GetMessage,
    ListAttempts,
    ExplainDeliveryFailure,
    ResendMessage,
    RecoverEndpoint,
    SendTestEvent,
    ListEventTypes,
}

impl Tool {
    pub const ALL: [Tool; 12] = [
        Tool::ListApplications,
        Tool::GetApplication,
        Tool::ListEndpoints,
        Tool::GetEndpoint,
        Tool::ListMessages,
        Tool::GetMessage,
        Tool::ListAttempts,
        Tool::ExplainDeliveryFailure,
        Tool::ResendMessage,
        Tool::RecoverEndpoint,
        Tool::SendTestEvent,
        Tool::ListEventTypes,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Tool::ListApplications => "list_applications",
            Tool::GetApplication => "get_application",
            Tool::ListEndpoints => "list_endpoints",
            Tool::GetEndpoint => "get_endpoint",
            Tool::ListMessages => "list_messages",
            Tool::GetMessage => "get_message",
            Tool::ListAttempts => "list_attempts",
            Tool::ExplainDeliveryFailure => "explain_delivery_failure",
            Tool::ResendMessage => "resend_message",
            Tool::RecoverEndpoint => "recover_endpoint",
            Tool::SendTestEvent => "send_test_event",
            Tool::ListEventTypes => "list_event_types",
        }
    }

    /// Whether the tool sends webhooks (left out when read-only).
    pub const fn mutates(self) -> bool {
        matches!(self, Tool::ResendMessage | Tool::RecoverEndpoint | Tool::SendTestEvent)
    }

    fn description(self) -> &'static str {
        match self {
            Tool::ListApplications => {
                "List the applications (each one a customer or tenant whose endpoints receive webhooks) this \
                 token can see, newest first. A token scoped to one application sees only that one."
            }
            Tool::GetApplication => "Show one application: its id, uid, name, rate limit and metadata.",
            Tool::ListEndpoints => {
                "List an application's endpoints (the URLs webhooks are delivered to), each with whether it is \
                 disabled and its health state (healthy, degraded, failing or disabled) and reason."
            }
            Tool::GetEndpoint => {
                "Show one endpoint: URL, event types it receives, whether it is disabled, its health (circuit \
                 breaker, throttling by the receiver) and delivery statistics (how many deliveries succeeded, \
                 are pending, sending, failed or were canceled). Signing secrets are never shown."
            }
            Tool::ListMessages => {
                "List an application's messages (the events sent to its endpoints), newest first, optionally \
                 only some event types or those sent in a time range. Payloads are left out unless \
                 withContent is true."
            }
            Tool::GetMessage => {
                "Show one message (by id or by its eventId) with its payload, and every endpoint it was sent to \
                 with that delivery's status (success, pending, fail, sending, canceled) and next attempt."
            }
            Tool::ListAttempts => {
                "List delivery attempts, newest first: of one message (msgId), of one endpoint (endpointId), or \
                 of one message to one endpoint (both). Each attempt has the HTTP status code the endpoint \
                 answered (0: no answer), the start of its response body and how long it took."
            }
            Tool::ExplainDeliveryFailure => {
                "Explain why a message did not reach an endpoint, and what to do next. Give msgId and endpointId, \
                 or the attemptId of a failed attempt. Gathers the attempts with their response codes and bodies, \
                 whether the endpoint is disabled, its health and circuit breaker, and the delivery's state \
                 (retrying, exhausted), and says in plain language what went wrong."
            }
            Tool::ResendMessage => {
                "Send a message to one endpoint again, now, as a new attempt (the receiver sees the same \
                 webhook-id, so it can deduplicate). Use after the receiver was fixed. The endpoint must be enabled."
            }
            Tool::RecoverEndpoint => {
                "Resend every message that failed to reach an endpoint since a time (at most 14 days back; until \
                 now unless given), as a background task. Use after an endpoint's outage."
            }
            Tool::SendTestEvent => {
                "Send an example of an event type (from its schema's examples) to one endpoint only, to test the \
                 receiver. Nothing else receives it."
            }
            Tool::ListEventTypes => {
                "List the event types of the organisation (the kinds of webhooks sent), with their descriptions \
                 and whether they are deprecated or archived."
            }
        }
    }

    /// The input schema's properties, and which of them are required.
    fn properties(self) -> (Map<String, Value>, Vec<&'static str>) {
        let mut p = Map::new();
        let mut required = Vec::new();
        let mut add = |name: &'static str, schema: Value, needed: bool| {
            p.insert(name.into(), schema);
            if needed {
                required.push(name);
            }
        };
        match self {
            Tool::ListApplications | Tool::ListEventTypes => {
                add("limit", limit(), false);
                add("iterator", iterator(), false);
                if self == Tool::ListEventTypes {
                    add("includeArchived", boolean("Also list archived event types.", false), false);
                }
            }
            Tool::GetApplication => {}
            Tool::ListEndpoints => {
                add("limit", limit(), false);
                add("iterator", iterator(), false);
            }
            Tool::GetEndpoint => add("endpointId", name("The endpoint's id (ep_…) or uid."), true),
            Tool::ListMessages => {
                let types = json!({
                    "type": "array", "items": name("An event type name."), "maxItems": 10,
                    "description": "Only messages of these event types."
                });
                add("eventTypes", types, false);
                add("since", time("Only messages sent at or after this time."), false);
                add("until", time("Only messages sent before this time."), false);
                add("channel", name("Only messages sent on this channel."), false);
                add("withContent", boolean("Include each message's payload.", false), false);
                add("limit", limit(), false);
                add("iterator", iterator(), false);
            }
            Tool::GetMessage => {
                add("msgId", name("The message's id (msg_…) or its eventId."), true);
                add("withContent", boolean("Include the payload.", true), false);
            }
            Tool::ListAttempts => {
                add("msgId", name("Attempts of this message (id or eventId)."), false);
                add("endpointId", name("Attempts to this endpoint (id or uid)."), false);
                let status = json!({
                    "type": "string", "enum": ["success", "pending", "fail", "sending", "canceled"],
                    "description": "Only attempts with this outcome."
                });
                add("status", status, false);
                add("limit", limit(), false);
                add("iterator", iterator(), false);
            }
            Tool::ExplainDeliveryFailure => {
                add("msgId", name("The message (id or eventId); with endpointId."), false);
                add("endpointId", name("The endpoint (id or uid); with msgId."), false);
                add("attemptId", name("A failed attempt's id (atmpt_…), instead of msgId and endpointId."), false);
            }
            Tool::ResendMessage => {
                add("msgId", name("The message (id or eventId)."), true);
                add("endpointId", name("The endpoint (id or uid)."), true);
            }
            Tool::RecoverEndpoint => {
                add("endpointId", name("The endpoint (id or uid)."), true);
                add("since", time("Resend failures since this time (at most 14 days ago)."), true);
                add("until", time("Up to this time (default: now)."), false);
            }
            Tool::SendTestEvent => {
                add("endpointId", name("The endpoint (id or uid)."), true);
                add("eventType", name("The event type whose example is sent."), true);
                let index = json!({
                    "type": "integer", "minimum": 0, "maximum": 100,
                    "description": "Which of the schema's examples (default: the first)."
                });
                add("exampleIndex", index, false);
            }
        }
        (p, required)
    }

    /// Whether the tool acts within one application (and takes `appId`).
    pub const fn in_application(self) -> bool {
        !matches!(self, Tool::ListApplications | Tool::ListEventTypes)
    }

    /// The tool as `tools/list` shows it to a caller with `scope`.
    pub fn describe(self, scope: &Scope) -> Value {
        let (mut properties, mut required) = self.properties();
        if self.in_application() {
            // A token of one application may leave its application out.
            let about = match &scope.app_id {
                Some(own) => format!("The application's id or uid (default: {own}, the only one this token sees)."),
                None => "The application's id (app_…) or uid.".to_string(),
            };
            properties.insert(
                "appId".into(),
                json!({"type": "string", "maxLength": MAX_NAME_LEN, "pattern": NAME_PATTERN, "description": about}),
            );
            if scope.app_id.is_none() {
                required.insert(0, "appId");
            }
        }
        json!({
            "name": self.name(),
            "title": self.name().replace('_', " "),
            "description": self.description(),
            "inputSchema": {
                "type": "object",
                "properties": properties,
                "required": required,
                "additionalProperties": false,
            },
            "annotations": {
                "readOnlyHint": !self.mutates(),
                "destructiveHint": false,
                "idempotentHint": !self.mutates(),
                "openWorldHint": self.mutates(),
            },
        })
    }
}

fn name(description: &str) -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": MAX_NAME_LEN, "pattern": NAME_PATTERN, "description": description})
}

fn time(description: &str) -> Value {
    json!({"type": "string", "format": "date-time", "maxLength": 64, "description": format!("{description} RFC 3339, e.g. 2025-01-31T12:00:00Z.")})
}

fn boolean(description: &str, default: bool) -> Value {
    json!({"type": "boolean", "default": default, "description": description})
}

fn limit() -> Value {
    json!({"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT, "description": "How many to list."})
}

fn iterator() -> Value {
    json!({"type": "string", "maxLength": 64, "description": "The `iterator` of the previous page, to list the next one."})
}

/// The tools a caller with `scope` is shown: all of them, less those that
/// send webhooks when it is read-only.
pub fn list(scope: &Scope) -> Vec<Value> {
    Tool::ALL.iter().filter(|t| !(scope.read_only && t.mutates())).map(|t| t.describe(scope)).collect()
}

pub fn find(name: &str) -> Option<Tool> {
    Tool::ALL.into_iter().find(|t| t.name() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_has_a_snake_case_name_and_an_object_schema() {
        let scope = Scope { app_id: None, read_only: false };
        for tool in Tool::ALL {
            let t = tool.describe(&scope);
            let name = t["name"].as_str().unwrap();
            assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{name}");
            assert_eq!(t["inputSchema"]["type"], "object");
            assert!(t["description"].as_str().unwrap().len() > 40, "{name}");
            for r in t["inputSchema"]["required"].as_array().unwrap() {
                assert!(t["inputSchema"]["properties"].get(r.as_str().unwrap()).is_some(), "{name}: {r}");
            }
            assert_eq!(find(name), Some(tool));
        }
    }

    #[test]
    fn an_application_token_may_leave_the_application_out() {
        let own = Scope { app_id: Some("app_1".into()), read_only: false };
        let org = Scope { app_id: None, read_only: false };
        let required = |s: &Scope| Tool::GetEndpoint.describe(s)["inputSchema"]["required"].clone();
        assert_eq!(required(&org), json!(["appId", "endpointId"]));
        assert_eq!(required(&own), json!(["endpointId"]));
    }
}
