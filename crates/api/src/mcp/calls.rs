//! What each tool does: its arguments read and bounded, then the API calls
//! it makes. A refusal by the API (not found, forbidden, invalid) is the
//! tool's error result with the API's `detail`, so the assistant can read it.

use axum::http::Method;
use serde_json::{json, Map, Value};

use super::tools::{Tool, DEFAULT_LIMIT, MAX_LIMIT, MAX_NAME_LEN};
use super::{explain, Backend, Server};

/// Largest text a tool returns; past it the caller is asked for less.
const MAX_RESULT_BYTES: usize = 256 * 1024;
/// A payload or schema larger than this is left out of a result.
const MAX_PAYLOAD_BYTES: usize = 16 * 1024;
/// A response body is cut to this many bytes.
pub const MAX_RESPONSE_BYTES: usize = 2048;

/// A tool's result: texts for the assistant, and whether the tool failed.
#[derive(Debug)]
pub struct ToolOutput {
    pub texts: Vec<String>,
    pub is_error: bool,
}

impl ToolOutput {
    pub fn error(detail: impl Into<String>) -> Self {
        ToolOutput { texts: vec![detail.into()], is_error: true }
    }

    /// A JSON result, made small enough (see [`shrink`]) or refused when it is
    /// still too large.
    pub fn json(mut value: Value) -> Self {
        shrink(&mut value);
        let text = serde_json::to_string_pretty(&value).unwrap_or_default();
        if text.len() > MAX_RESULT_BYTES {
            return ToolOutput::error(format!(
                "the result is {} bytes, more than {MAX_RESULT_BYTES}: ask for fewer items (limit) or leave the \
                 content out (withContent: false)",
                text.len()
            ));
        }
        ToolOutput { texts: vec![text], is_error: false }
    }

    /// A sentence saying what happened, then the JSON it is about.
    pub fn said(summary: impl Into<String>, value: Value) -> Self {
        let mut out = ToolOutput::json(value);
        if !out.is_error {
            out.texts.insert(0, summary.into());
        }
        out
    }

    /// The `CallToolResult`.
    pub fn into_json(self) -> Value {
        let content: Vec<Value> = self.texts.into_iter().map(|t| json!({"type": "text", "text": t})).collect();
        json!({"content": content, "isError": self.is_error})
    }
}

/// Leaves large payloads and schemas out of `v`, and cuts long response bodies.
pub fn shrink(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                match (key.as_str(), &*child) {
                    ("payload" | "schemas", c) if !c.is_null() => {
                        let size = c.to_string().len();
                        if size > MAX_PAYLOAD_BYTES {
                            *child =
                                json!(format!("({size} bytes, left out: get_message shows one message's payload)"));
                        }
                    }
                    ("response", Value::String(s)) if s.len() > MAX_RESPONSE_BYTES => {
                        *child = json!(cut(s, MAX_RESPONSE_BYTES));
                    }
                    _ => shrink(child),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(shrink),
        _ => {}
    }
}

/// `s` cut to at most `max` bytes (on a character boundary), saying so.
pub fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &s[..end], s.len())
}

/// A tool's arguments, read with their bounds.
pub struct Args<'a> {
    map: &'a Map<String, Value>,
}

type ArgResult<T> = Result<T, String>;

impl<'a> Args<'a> {
    /// Refuses arguments the tool does not take (a misspelt one would be
    /// silently ignored otherwise).
    fn new(tool: Tool, map: &'a Map<String, Value>) -> ArgResult<Self> {
        let scope = super::Scope { app_id: None, read_only: false };
        let schema = tool.describe(&scope);
        let known = schema["inputSchema"]["properties"].as_object().cloned().unwrap_or_default();
        if let Some(unknown) = map.keys().find(|k| !known.contains_key(k.as_str())) {
            let mut names: Vec<&String> = known.keys().collect();
            names.sort();
            let names: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
            let shown: String = unknown.chars().take(64).collect();
            return Err(format!("unknown argument `{shown}`; {} takes {}", tool.name(), names.join(", ")));
        }
        Ok(Args { map })
    }

    /// An id, uid or name: safe in a path (`[a-zA-Z0-9._-]`, not `.` or `..`).
    pub fn name(&self, key: &str) -> ArgResult<Option<String>> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if valid_name(s) => Ok(Some(s.clone())),
            Some(_) => {
                Err(format!("`{key}` must be an id or name of 1 to {MAX_NAME_LEN} of a-z, A-Z, 0-9, `.`, `_` and `-`"))
            }
        }
    }

    pub fn required_name(&self, key: &str) -> ArgResult<String> {
        self.name(key)?.ok_or_else(|| format!("`{key}` is required"))
    }

    fn names(&self, key: &str, max: usize) -> ArgResult<Vec<String>> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) if items.len() <= max => items
                .iter()
                .map(|i| match i {
                    Value::String(s) if valid_name(s) => Ok(s.clone()),
                    _ => Err(format!("`{key}` holds names of a-z, A-Z, 0-9, `.`, `_` and `-`")),
                })
                .collect(),
            Some(_) => Err(format!("`{key}` must be a list of at most {max} names")),
        }
    }

    fn bool(&self, key: &str, default: bool) -> ArgResult<bool> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(format!("`{key}` must be true or false")),
        }
    }

    fn integer(&self, key: &str, min: u64, max: u64) -> ArgResult<Option<u64>> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
                _ => Err(format!("`{key}` must be a whole number from {min} to {max}")),
            },
        }
    }

    /// A time, checked by the API; here only its length and characters.
    fn time(&self, key: &str) -> ArgResult<Option<String>> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s))
                if (1..=64).contains(&s.len())
                    && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-:.+".contains(&b)) =>
            {
                Ok(Some(s.clone()))
            }
            Some(_) => Err(format!("`{key}` must be an RFC 3339 time, e.g. 2025-01-31T12:00:00Z")),
        }
    }

    /// `limit` and `iterator` as a query.
    fn page(&self, query: &mut Query) -> ArgResult<()> {
        let limit = self.integer("limit", 1, MAX_LIMIT)?.unwrap_or(DEFAULT_LIMIT);
        query.append_pair("limit", &limit.to_string());
        match self.map.get("iterator") {
            None | Some(Value::Null) => {}
            Some(Value::String(s))
                if s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) =>
            {
                query.append_pair("iterator", s);
            }
            Some(_) => return Err("`iterator` must be the `iterator` a previous page returned".into()),
        }
        Ok(())
    }
}

fn valid_name(s: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&s.len())
        && s != "."
        && s != ".."
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// A query string, its values percent-encoded. (`url`'s own serializer is
/// not `Send`, and a tool's future must be.)
#[derive(Default)]
struct Query(String);

impl Query {
    fn append_pair(&mut self, key: &str, value: &str) {
        if !self.0.is_empty() {
            self.0.push('&');
        }
        self.0.push_str(key);
        self.0.push('=');
        self.0.extend(url::form_urlencoded::byte_serialize(value.as_bytes()));
    }

    fn finish(&self) -> &str {
        &self.0
    }
}

fn query() -> Query {
    Query::default()
}

/// GETs `path`: its JSON, or the API's refusal.
pub async fn get<B: Backend>(api: &B, path: &str) -> Result<Value, String> {
    let answer = api.call(Method::GET, path, None).await;
    if answer.ok() {
        Ok(answer.body)
    } else {
        Err(answer.detail())
    }
}

async fn post<B: Backend>(api: &B, path: &str, body: Value) -> Result<Value, String> {
    let answer = api.call(Method::POST, path, Some(body)).await;
    if answer.ok() {
        Ok(answer.body)
    } else {
        Err(answer.detail())
    }
}

/// Runs `tool` for the caller of `server`.
pub async fn call<B: Backend>(server: &Server<B>, tool: Tool, args: &Map<String, Value>) -> ToolOutput {
    if tool.mutates() && server.scope.read_only {
        return ToolOutput::error(format!(
            "`{}` sends webhooks, and this connection is read-only (a read-only token, or `hookd mcp --read-only`)",
            tool.name()
        ));
    }
    match run(server, tool, args).await {
        Ok(out) => out,
        Err(detail) => ToolOutput::error(detail),
    }
}

async fn run<B: Backend>(server: &Server<B>, tool: Tool, map: &Map<String, Value>) -> Result<ToolOutput, String> {
    let args = Args::new(tool, map)?;
    let api = &server.api;
    if !tool.in_application() {
        let mut q = query();
        args.page(&mut q)?;
        return match tool {
            Tool::ListApplications => match &server.scope.app_id {
                // A token of one application cannot list; it sees its own.
                Some(own) => {
                    let app = get(api, &format!("/api/v1/app/{own}")).await?;
                    Ok(ToolOutput::json(json!({"data": [app], "iterator": null, "done": true})))
                }
                None => {
                    q.append_pair("order", "descending");
                    Ok(ToolOutput::json(get(api, &format!("/api/v1/app?{}", q.finish())).await?))
                }
            },
            _ => {
                q.append_pair("include_archived", &args.bool("includeArchived", false)?.to_string());
                Ok(ToolOutput::json(get(api, &format!("/api/v1/event-type?{}", q.finish())).await?))
            }
        };
    }
    let app_id = match (args.name("appId")?, &server.scope.app_id) {
        (Some(a), _) => a,
        (None, Some(own)) => own.clone(),
        (None, None) => return Err("`appId` is required".into()),
    };
    let app = format!("/api/v1/app/{app_id}");
    match tool {
        Tool::GetApplication => Ok(ToolOutput::json(get(api, &app).await?)),
        Tool::ListEndpoints => {
            let mut q = query();
            args.page(&mut q)?;
            Ok(ToolOutput::json(get(api, &format!("{app}/endpoint?{}", q.finish())).await?))
        }
        Tool::GetEndpoint => {
            let ep = format!("{app}/endpoint/{}", args.required_name("endpointId")?);
            let endpoint = get(api, &ep).await?;
            let stats = get(api, &format!("{ep}/stats")).await?;
            Ok(ToolOutput::json(json!({"endpoint": endpoint, "stats": stats})))
        }
        Tool::ListMessages => {
            let mut q = query();
            args.page(&mut q)?;
            for t in args.names("eventTypes", 10)? {
                q.append_pair("event_types", &t);
            }
            for (arg, param) in [("since", "after"), ("until", "before")] {
                if let Some(t) = args.time(arg)? {
                    q.append_pair(param, &t);
                }
            }
            if let Some(c) = args.name("channel")? {
                q.append_pair("channel", &c);
            }
            q.append_pair("with_content", &args.bool("withContent", false)?.to_string());
            Ok(ToolOutput::json(get(api, &format!("{app}/msg?{}", q.finish())).await?))
        }
        Tool::GetMessage => {
            let msg_id = args.required_name("msgId")?;
            let with_content = args.bool("withContent", true)?;
            let message = get(api, &format!("{app}/msg/{msg_id}?with_content={with_content}")).await?;
            let id = message["id"].as_str().unwrap_or(&msg_id).to_string();
            let destinations = get(api, &format!("{app}/msg/{id}/endpoint?limit={MAX_LIMIT}")).await?;
            let deliveries: Vec<Value> = destinations["data"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|d| {
                    json!({
                        "endpointId": d["id"], "url": d["url"], "status": d["statusText"],
                        "nextAttempt": d["nextAttempt"], "endpointDisabled": d["disabled"],
                    })
                })
                .collect();
            Ok(ToolOutput::json(json!({"message": message, "deliveries": deliveries})))
        }
        Tool::ListAttempts => {
            let mut q = query();
            args.page(&mut q)?;
            if let Some(status) = args.map.get("status").filter(|s| !s.is_null()) {
                let code = ["success", "pending", "fail", "sending", "canceled"]
                    .iter()
                    .position(|s| status.as_str() == Some(s))
                    .ok_or("`status` is success, pending, fail, sending or canceled")?;
                q.append_pair("status", &code.to_string());
            }
            let path = match (args.name("msgId")?, args.name("endpointId")?) {
                (Some(msg), endpoint) => {
                    if let Some(ep) = endpoint {
                        q.append_pair("endpoint_id", &ep);
                    }
                    format!("{app}/attempt/msg/{msg}")
                }
                (None, Some(ep)) => format!("{app}/attempt/endpoint/{ep}"),
                (None, None) => return Err("give `msgId`, `endpointId`, or both".into()),
            };
            Ok(ToolOutput::json(get(api, &format!("{path}?{}", q.finish())).await?))
        }
        Tool::ExplainDeliveryFailure => {
            let target = match (args.name("msgId")?, args.name("endpointId")?, args.name("attemptId")?) {
                (msg, None, Some(attempt)) => explain::Target::Attempt { attempt, msg },
                (Some(msg), Some(endpoint), None) => explain::Target::Delivery { msg, endpoint },
                _ => return Err("give `msgId` and `endpointId`, or `attemptId`".into()),
            };
            explain::run(api, &app, target).await
        }
        Tool::ResendMessage => {
            let (msg, ep) = (args.required_name("msgId")?, args.required_name("endpointId")?);
            post(api, &format!("{app}/msg/{msg}/endpoint/{ep}/resend"), json!({})).await?;
            Ok(ToolOutput {
                texts: vec![format!(
                    "Message {msg} is being sent to endpoint {ep} again, now. list_attempts with msgId and \
                     endpointId shows how the new attempt went."
                )],
                is_error: false,
            })
        }
        Tool::RecoverEndpoint => {
            let ep = args.required_name("endpointId")?;
            let since = args.time("since")?.ok_or("`since` is required")?;
            let body = json!({"since": since, "until": args.time("until")?});
            let task = post(api, &format!("{app}/endpoint/{ep}/recover"), body).await?;
            let summary = format!(
                "Recovering endpoint {ep}: every message that failed to reach it since {since} is sent again by \
                 background task {}.",
                task["id"].as_str().unwrap_or("?")
            );
            Ok(ToolOutput::said(summary, task))
        }
        Tool::SendTestEvent => {
            let ep = args.required_name("endpointId")?;
            let event_type = args.required_name("eventType")?;
            let mut body = json!({"eventType": event_type});
            if let Some(i) = args.integer("exampleIndex", 0, 100)? {
                body["exampleIndex"] = json!(i);
            }
            let msg = post(api, &format!("{app}/endpoint/{ep}/send-example"), body).await?;
            let summary = format!(
                "Sent an example of {event_type} to endpoint {ep} as message {}; list_attempts with that msgId \
                 shows how it went.",
                msg["id"].as_str().unwrap_or("?")
            );
            Ok(ToolOutput::said(summary, msg))
        }
        Tool::ListApplications | Tool::ListEventTypes => unreachable!("handled above"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_payloads_are_left_out_and_long_responses_cut() {
        let mut v = json!({"data": [
            {"payload": {"big": "x".repeat(MAX_PAYLOAD_BYTES)}, "response": "é".repeat(MAX_RESPONSE_BYTES)},
            {"payload": {"small": 1}, "response": "ok"},
        ]});
        shrink(&mut v);
        assert!(v["data"][0]["payload"].as_str().unwrap().contains("left out"));
        let cut_text = v["data"][0]["response"].as_str().unwrap();
        assert!(cut_text.ends_with(&format!("({} bytes in all)", MAX_RESPONSE_BYTES * 2)), "{cut_text}");
        assert_eq!(v["data"][1], json!({"payload": {"small": 1}, "response": "ok"}));
    }

    #[test]
    fn names_are_safe_in_a_path() {
        for ok in ["app_2x", "my-app.v2", "A_b"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a?b", "a b", "%2e", &"x".repeat(MAX_NAME_LEN + 1)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn unknown_arguments_are_refused_with_the_known_ones() {
        let map = json!({"appId": "a", "endpointID": "e"});
        let err = Args::new(Tool::GetEndpoint, map.as_object().unwrap()).err().unwrap();
        assert!(err.contains("`endpointID`") && err.contains("endpointId"), "{err}");
    }
}
