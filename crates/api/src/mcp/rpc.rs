//! The protocol: JSON-RPC 2.0 messages as MCP uses them. One transport
//! message (a line on stdio, a POST body) is a request, a notification, a
//! response, or a batch of them (2025-03-26 allows batches); each request
//! gets a result or a JSON-RPC error. A tool that fails is not an error here:
//! its result says `isError` (see [`super::calls`]).

use serde_json::{json, Map, Value};

use super::{calls, tools, Backend, Server};

/// The MCP versions spoken, newest first: an `initialize` asking for one of
/// them gets it, any other the newest.
pub const PROTOCOL_VERSIONS: [&str; 2] = ["2025-06-18", "2025-03-26"];
/// Largest transport message read, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// Most messages in one batch.
pub const MAX_BATCH: usize = 32;

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;

/// What `initialize` tells the client about using these tools.
const INSTRUCTIONS: &str = "hookd sends webhooks to the endpoints of applications. Start with \
list_applications and list_endpoints; list_messages and list_attempts show what was sent and how \
each attempt went; explain_delivery_failure says why a message did not reach an endpoint and what \
to do next. Unless this connection is read-only, resend_message, recover_endpoint and \
send_test_event send webhooks again.";

/// A JSON-RPC error answer.
pub fn error(id: Value, code: i64, message: impl Into<String>) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message.into()}})
}

/// Whether `reply` is an error that belongs to no request (the message could
/// not be read as one): HTTP answers it with 400.
pub fn is_unaddressed_error(reply: &Value) -> bool {
    reply.get("error").is_some() && reply["id"].is_null()
}

/// Handles one transport message; `None` when nothing is to be answered
/// (notifications and responses only).
pub async fn handle_bytes<B: Backend>(server: &Server<B>, bytes: &[u8]) -> Option<Value> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Some(error(Value::Null, INVALID_REQUEST, format!("a message is at most {MAX_MESSAGE_BYTES} bytes")));
    }
    let value: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => return Some(error(Value::Null, PARSE_ERROR, format!("not valid JSON: {e}"))),
    };
    match value {
        Value::Array(items) if items.is_empty() => Some(error(Value::Null, INVALID_REQUEST, "an empty batch")),
        Value::Array(items) if items.len() > MAX_BATCH => {
            Some(error(Value::Null, INVALID_REQUEST, format!("a batch holds at most {MAX_BATCH} messages")))
        }
        Value::Array(items) => {
            let mut replies = Vec::new();
            for item in items {
                replies.extend(handle_message(server, item).await);
            }
            (!replies.is_empty()).then_some(Value::Array(replies))
        }
        single => handle_message(server, single).await,
    }
}

/// Handles one JSON-RPC message.
pub async fn handle_message<B: Backend>(server: &Server<B>, message: Value) -> Option<Value> {
    let Value::Object(message) = message else {
        return Some(error(Value::Null, INVALID_REQUEST, "a JSON-RPC message is a JSON object"));
    };
    let id = message.get("id").cloned();
    let method = message.get("method");
    // A response: hookd sends no requests, so there is nothing to match it to.
    if method.is_none() && (message.contains_key("result") || message.contains_key("error")) {
        return None;
    }
    let reply_id = match &id {
        Some(v @ (Value::String(_) | Value::Number(_))) => v.clone(),
        _ => Value::Null,
    };
    if message.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Some(error(reply_id, INVALID_REQUEST, "`jsonrpc` must be \"2.0\""));
    }
    let Some(Value::String(method)) = method else {
        return Some(error(reply_id, INVALID_REQUEST, "`method` must be a string"));
    };
    match &id {
        // A notification (`notifications/initialized`, `…/cancelled`): no
        // answer, and none of them needs anything done.
        None => return None,
        Some(Value::String(_) | Value::Number(_)) => {}
        Some(_) => return Some(error(Value::Null, INVALID_REQUEST, "`id` must be a string or a number")),
    }
    let params = match message.get("params") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(p)) => p.clone(),
        Some(_) => return Some(error(reply_id, INVALID_PARAMS, "`params` must be an object")),
    };
    let result = match method.as_str() {
        "initialize" => initialize(&params),
        "ping" => Ok(json!({})),
        "tools/list" => Ok(json!({"tools": tools::list(&server.scope)})),
        "tools/call" => call_tool(server, &params).await,
        other => {
            let shown: String = other.chars().take(64).collect();
            Err((METHOD_NOT_FOUND, format!("unknown method `{shown}`")))
        }
    };
    Some(match result {
        Ok(result) => json!({"jsonrpc": "2.0", "id": reply_id, "result": result}),
        Err((code, message)) => error(reply_id, code, message),
    })
}

type RpcResult = Result<Value, (i64, String)>;

fn initialize(params: &Map<String, Value>) -> RpcResult {
    let Some(asked) = params.get("protocolVersion").and_then(Value::as_str) else {
        return Err((INVALID_PARAMS, "`protocolVersion` is required".into()));
    };
    let version = PROTOCOL_VERSIONS.iter().find(|v| **v == asked).unwrap_or(&PROTOCOL_VERSIONS[0]);
    Ok(json!({
        "protocolVersion": version,
        "capabilities": {"tools": {"listChanged": false}},
        "serverInfo": {"name": "hookd", "title": "hookd webhooks", "version": env!("CARGO_PKG_VERSION")},
        "instructions": INSTRUCTIONS,
    }))
}

async fn call_tool<B: Backend>(server: &Server<B>, params: &Map<String, Value>) -> RpcResult {
    let Some(name) = params.get("name").and_then(Value::as_str) else {
        return Err((INVALID_PARAMS, "`name` (the tool's) is required".into()));
    };
    let Some(tool) = tools::find(name) else {
        let shown: String = name.chars().take(64).collect();
        return Err((INVALID_PARAMS, format!("unknown tool `{shown}`; tools/list names them")));
    };
    let args = match params.get("arguments") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(a)) => a.clone(),
        Some(_) => return Err((INVALID_PARAMS, "`arguments` must be an object".into())),
    };
    Ok(calls::call(server, tool, &args).await.into_json())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::{Answer, Scope};
    use axum::http::Method;

    /// An API that knows nothing: enough for the protocol.
    struct NoApi;

    impl Backend for NoApi {
        async fn call(&self, _: Method, _: &str, _: Option<Value>) -> Answer {
            Answer { status: 404, body: json!({"code": "not_found", "detail": "Entity not found"}) }
        }
    }

    fn server(read_only: bool) -> Server<NoApi> {
        Server::new(NoApi, Scope { app_id: None, read_only })
    }

    async fn send(s: &Server<NoApi>, text: &str) -> Option<Value> {
        handle_bytes(s, text.as_bytes()).await
    }

    #[tokio::test]
    async fn initialize_negotiates_a_version() {
        let s = server(false);
        for (asked, got) in [("2025-03-26", "2025-03-26"), ("2025-06-18", "2025-06-18"), ("2024-11-05", "2025-06-18")] {
            let text = format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{{"protocolVersion":"{asked}","capabilities":{{}},"clientInfo":{{"name":"t","version":"1"}}}}}}"#
            );
            let reply = send(&s, &text).await.unwrap();
            assert_eq!(reply["result"]["protocolVersion"], got, "{reply}");
            assert_eq!(reply["result"]["serverInfo"]["name"], "hookd");
            assert!(reply["result"]["capabilities"]["tools"].is_object());
        }
        let reply = send(&s, r#"{"jsonrpc":"2.0","id":"a","method":"initialize","params":{}}"#).await.unwrap();
        assert_eq!((reply["id"].clone(), reply["error"]["code"].clone()), (json!("a"), json!(INVALID_PARAMS)));
    }

    #[tokio::test]
    async fn malformed_messages_get_json_rpc_errors() {
        let s = server(false);
        let code = |r: Option<Value>| r.unwrap()["error"]["code"].as_i64().unwrap();
        assert_eq!(code(send(&s, "{not json").await), PARSE_ERROR);
        assert_eq!(code(send(&s, "[]").await), INVALID_REQUEST);
        assert_eq!(code(send(&s, "42").await), INVALID_REQUEST);
        assert_eq!(code(send(&s, r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#).await), INVALID_REQUEST);
        assert_eq!(code(send(&s, r#"{"jsonrpc":"2.0","id":1,"method":7}"#).await), INVALID_REQUEST);
        assert_eq!(code(send(&s, r#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#).await), INVALID_REQUEST);
        assert_eq!(code(send(&s, r#"{"jsonrpc":"2.0","id":1,"method":"nope"}"#).await), METHOD_NOT_FOUND);
        assert_eq!(code(send(&s, r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":[1]}"#).await), INVALID_PARAMS);
        let unknown_tool = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"rm_rf"}}"#;
        assert_eq!(code(send(&s, unknown_tool).await), INVALID_PARAMS);
        let big = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"x":"{}"}}}}"#,
            "x".repeat(MAX_MESSAGE_BYTES)
        );
        assert_eq!(code(send(&s, &big).await), INVALID_REQUEST);
        assert!(is_unaddressed_error(&send(&s, "{").await.unwrap()));
    }

    #[tokio::test]
    async fn notifications_and_responses_get_no_answer_and_batches_answer_each_request() {
        let s = server(false);
        assert_eq!(send(&s, r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).await, None);
        assert_eq!(send(&s, r#"{"jsonrpc":"2.0","id":5,"result":{}}"#).await, None);
        let batch = r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","id":2,"method":"ping"}]"#;
        let replies = send(&s, batch).await.unwrap();
        let ids: Vec<&Value> = replies.as_array().unwrap().iter().map(|r| &r["id"]).collect();
        assert_eq!(ids, [&json!(1), &json!(2)]);
    }

    #[tokio::test]
    async fn read_only_leaves_out_and_refuses_the_changing_tools() {
        let names = |s: &Server<NoApi>| -> Vec<String> {
            tools::list(&s.scope).iter().map(|t| t["name"].as_str().unwrap().to_string()).collect()
        };
        let (rw, ro) = (server(false), server(true));
        assert!(names(&rw).contains(&"resend_message".to_string()));
        for t in ["resend_message", "recover_endpoint", "send_test_event"] {
            assert!(!names(&ro).contains(&t.to_string()), "{t}");
        }
        assert!(names(&ro).contains(&"explain_delivery_failure".to_string()));
        let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"resend_message","arguments":{"appId":"a","msgId":"m","endpointId":"e"}}}"#;
        let reply = send(&ro, call).await.unwrap();
        assert_eq!(reply["result"]["isError"], true, "{reply}");
        assert!(reply["result"]["content"][0]["text"].as_str().unwrap().contains("read-only"));
        // A tool's failure at the API is a result with the API's detail.
        let reply = send(&rw, call).await.unwrap();
        assert_eq!(reply["result"]["isError"], true, "{reply}");
        assert!(reply["result"]["content"][0]["text"].as_str().unwrap().contains("Entity not found"), "{reply}");
    }
}
