//! The MCP server at `POST /mcp`: MCP tokens (made, listed censored, revoked,
//! expiring, in the audit trail), what an application's, a dashboard's and a
//! read-only token see and may do, a failed delivery explained and resent to a
//! real sink, and the transport's answers to bad requests.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{Sink, TestServer};

/// An MCP client over HTTP with one token.
pub struct Mcp<'a> {
    pub server: &'a TestServer,
    pub token: String,
}

impl Mcp<'_> {
    pub async fn post(&self, body: &str) -> (u16, reqwest::header::HeaderMap, Value) {
        let resp = self
            .server
            .client
            .post(self.server.url("/mcp"))
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
        let text = resp.text().await.unwrap();
        (status, headers, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn rpc(&self, method: &str, params: Value) -> Value {
        let body = json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params});
        let (status, _, reply) = self.post(&body.to_string()).await;
        assert_eq!(status, 200, "{method}: {reply}");
        assert_eq!(reply["id"], 7, "{reply}");
        reply
    }

    pub async fn tool_names(&self) -> Vec<String> {
        let reply = self.rpc("tools/list", json!({})).await;
        reply["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_string()).collect()
    }

    /// Calls a tool: whether it failed, and its texts joined.
    pub async fn tool(&self, name: &str, args: Value) -> (bool, String) {
        let reply = self.rpc("tools/call", json!({"name": name, "arguments": args})).await;
        let result = &reply["result"];
        let text: Vec<&str> =
            result["content"].as_array().unwrap().iter().map(|c| c["text"].as_str().unwrap()).collect();
        (result["isError"] == true, text.join("\n"))
    }

    /// A tool's JSON result (it must succeed).
    pub async fn tool_json(&self, name: &str, args: Value) -> Value {
        let (failed, text) = self.tool(name, args).await;
        assert!(!failed, "{name}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("{name} answered no JSON: {text}"))
    }
}

/// A new MCP token of `app` (or the dashboard's, for `None`).
async fn mcp_token(server: &TestServer, app: Option<&str>, body: Value) -> String {
    let path = match app {
        Some(a) => format!("/api/v1/auth/app/{a}/mcp-token"),
        None => "/api/v1/auth/dashboard/mcp-token".to_string(),
    };
    let (status, out) = server.post(&path, body).await;
    assert_eq!(status, 200, "{out}");
    assert!(out["slug"].as_str().is_some_and(|s| !s.is_empty()), "{out}");
    out["token"].as_str().unwrap().to_string()
}

fn mcp<'a>(server: &'a TestServer, token: &str) -> Mcp<'a> {
    Mcp { server, token: token.to_string() }
}

const SENDING_TOOLS: [&str; 3] = ["resend_message", "recover_endpoint", "send_test_event"];

#[tokio::test]
async fn mcp_tokens_are_listed_censored_revoked_and_expire() {
    let server = TestServer::spawn().await;
    let app = server.create_app("Tokens").await;
    let token = mcp_token(&server, Some(&app), json!({"expiry": 3600})).await;
    assert!(token.starts_with("mcp_"));
    let dashboard = mcp_token(&server, None, json!({})).await;

    let (status, list) = server.get(&format!("/api/v1/auth/app/{app}/mcp-token")).await;
    assert_eq!(status, 200, "{list}");
    let listed = &list["data"].as_array().unwrap()[..];
    assert_eq!(listed.len(), 1, "the dashboard's token is not the application's: {list}");
    let t = &listed[0];
    let id = t["id"].as_str().unwrap();
    assert!(id.starts_with("key_") && id.len() == 31, "{t}");
    let censored = t["censoredToken"].as_str().unwrap();
    assert!(censored.ends_with(&token[token.len() - 4..]) && !censored.contains(&token[4..20]), "{t}");
    assert!(t["createdAt"].is_string() && t["expiresAt"].is_string() && list["done"] == true, "{t}");
    let (_, dash_list) = server.get("/api/v1/auth/dashboard/mcp-token").await;
    assert_eq!(dash_list["data"].as_array().unwrap().len(), 1, "{dash_list}");

    // The token works until it is revoked; then it is refused at once.
    assert_eq!(mcp(&server, &token).rpc("ping", json!({})).await["result"], json!({}));
    let (status, _) = server.delete(&format!("/api/v1/auth/dashboard/mcp-token/{id}")).await;
    assert_eq!(status, 404, "an application's token is not the dashboard's to revoke");
    let (status, _) = server.delete(&format!("/api/v1/auth/app/{app}/mcp-token/{id}")).await;
    assert_eq!(status, 204);
    let (status, headers, _) = mcp(&server, &token).post(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).await;
    assert_eq!(status, 401);
    assert!(headers.get("www-authenticate").is_some());
    let (_, list) = server.get(&format!("/api/v1/auth/app/{app}/mcp-token")).await;
    assert_eq!(list["data"], json!([]));

    // Expiry: a one-second token works, then stops.
    let brief = mcp_token(&server, Some(&app), json!({"expiry": 1})).await;
    assert_eq!(mcp(&server, &brief).rpc("ping", json!({})).await["result"], json!({}));
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let (status, _, _) = mcp(&server, &brief).post(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).await;
    assert_eq!(status, 401, "an expired token is refused");
    for bad in [json!({"expiry": 0}), json!({"expiry": 400 * 86_400})] {
        let (status, out) = server.post(&format!("/api/v1/auth/app/{app}/mcp-token"), bad).await;
        assert_eq!(status, 422, "{out}");
    }

    // An MCP token cannot manage tokens or change anything beyond attempts.
    let (status, _) = server
        .client
        .post(server.url("/api/v1/auth/dashboard/mcp-token"))
        .bearer_auth(&dashboard)
        .json(&json!({}))
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .unwrap();
    assert_eq!(status, 403);
    let resp = server.client.post(server.url("/api/v1/app")).bearer_auth(&dashboard).json(&json!({"name": "x"}));
    assert_eq!(resp.send().await.unwrap().status().as_u16(), 403);

    // Making and revoking are in the audit trail, by the admin's token.
    let (_, audit) = server.get("/api/v1/audit?limit=50").await;
    let actions: Vec<&str> = audit["data"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert!(actions.contains(&"POST /api/v1/auth/app/{app_id}/mcp-token"), "{actions:?}");
    assert!(actions.contains(&"POST /api/v1/auth/dashboard/mcp-token"), "{actions:?}");
    assert!(actions.contains(&"DELETE /api/v1/auth/app/{app_id}/mcp-token/{token_id}"), "{actions:?}");
}

#[tokio::test]
async fn an_application_token_sees_its_application_only() {
    let server = TestServer::spawn().await;
    let mine = server.create_app("Mine").await;
    let other = server.create_app("Other").await;
    let other_ep = server.create_endpoint(&other, json!({"url": "https://other.example/hook"})).await;
    let token = mcp_token(&server, Some(&mine), json!({})).await;
    let client = mcp(&server, &token);

    let init = client
        .rpc(
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}}),
        )
        .await;
    assert_eq!(init["result"]["protocolVersion"], "2025-06-18");
    let names = client.tool_names().await;
    assert!(names.contains(&"explain_delivery_failure".to_string()) && names.contains(&"resend_message".to_string()));

    let apps = client.tool_json("list_applications", json!({})).await;
    let ids: Vec<&str> = apps["data"].as_array().unwrap().iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [mine.as_str()]);
    // Its own application is the default; another is not found, as in the API.
    assert_eq!(client.tool_json("get_application", json!({})).await["id"], mine.as_str());
    for (tool, args) in [
        ("get_application", json!({"appId": other})),
        ("list_endpoints", json!({"appId": other})),
        ("get_endpoint", json!({"appId": other, "endpointId": other_ep["id"]})),
    ] {
        let (failed, text) = client.tool(tool, args).await;
        assert!(failed && text.contains("404"), "{tool}: {text}");
    }
    // Arguments are checked before anything is asked.
    let (failed, text) = client.tool("get_endpoint", json!({"endpointId": "../../app"})).await;
    assert!(failed && text.contains("endpointId"), "{text}");
}

#[tokio::test]
async fn a_dashboard_token_and_api_tokens_see_the_organisation() {
    let server = TestServer::spawn().await;
    let a = server.create_app("A").await;
    let b = server.create_app("B").await;
    let dashboard = mcp_token(&server, None, json!({})).await;
    let (status, read_only) = server
        .post(
            &format!("/api/v1/management/authentication/{}/api-token", org_id(&server).await),
            json!({"scopes": ["read-only"]}),
        )
        .await;
    assert_eq!(status, 200, "{read_only}");
    for token in [dashboard.as_str(), server.token.as_str(), read_only["token"].as_str().unwrap()] {
        let apps = mcp(&server, token).tool_json("list_applications", json!({})).await;
        let ids: Vec<&str> = apps["data"].as_array().unwrap().iter().map(|x| x["id"].as_str().unwrap()).collect();
        assert_eq!(ids, [b.as_str(), a.as_str()], "newest first, for {}", &token[..6]);
        let (failed, text) = mcp(&server, token).tool("list_endpoints", json!({})).await;
        assert!(failed && text.contains("appId"), "an organisation's token names the application: {text}");
    }
    let names = mcp(&server, read_only["token"].as_str().unwrap()).tool_names().await;
    assert!(SENDING_TOOLS.iter().all(|t| !names.contains(&t.to_string())), "{names:?}");
}

async fn org_id(server: &TestServer) -> String {
    let (_, who) = server.get("/api/v1/auth/whoami").await;
    who["envId"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn read_only_mcp_tokens_leave_out_and_refuse_the_tools_that_send() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let app = server.create_app("RO").await;
    let ep = server.create_endpoint(&app, json!({"url": sink.url("/ro")})).await;
    let msg = server.send_message(&app, "ro.event", json!({"n": 1})).await;
    sink.wait_for(1, Duration::from_secs(10)).await;
    for token in [
        mcp_token(&server, Some(&app), json!({"readOnly": true})).await,
        mcp_token(&server, None, json!({"readOnly": true})).await,
    ] {
        let client = mcp(&server, &token);
        let names = client.tool_names().await;
        assert!(SENDING_TOOLS.iter().all(|t| !names.contains(&t.to_string())), "{names:?}");
        let (failed, text) =
            client.tool("resend_message", json!({"appId": app, "msgId": msg["id"], "endpointId": ep["id"]})).await;
        assert!(failed && text.contains("read-only"), "{text}");
        // Nor can the token do it through the API itself.
        let resend = format!("/api/v1/app/{app}/msg/{}/endpoint/{}/resend", text_of(&msg["id"]), text_of(&ep["id"]));
        let status = server.client.post(server.url(&resend)).bearer_auth(&token).send().await.unwrap().status();
        assert_eq!(status.as_u16(), 403);
        let got = client.tool_json("list_attempts", json!({"appId": app, "msgId": msg["id"]})).await;
        assert_eq!(got["data"].as_array().unwrap().len(), 1, "{got}");
    }
    assert_eq!(sink.count(), 1, "nothing was sent again");
}

fn text_of(v: &Value) -> &str {
    v.as_str().unwrap()
}

#[tokio::test]
async fn a_failing_delivery_is_explained_and_resending_reaches_the_sink() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let app = server.create_app("Failing").await;
    let ep = server.create_endpoint(&app, json!({"url": sink.url("/hook")})).await;
    let ep_id = text_of(&ep["id"]).to_string();
    sink.script(&[500, 500, 500, 500]);
    sink.set_body(b"database is down");
    let msg = server.send_message(&app, "invoice.paid", json!({"amount": 5})).await;
    let msg_id = text_of(&msg["id"]).to_string();
    sink.wait_for(4, Duration::from_secs(15)).await;
    let token = mcp_token(&server, Some(&app), json!({})).await;
    let client = mcp(&server, &token);
    // The fourth attempt ends the schedule: wait for the delivery to fail.
    let failed = server
        .eventually(Duration::from_secs(10), || async {
            let got = client.tool_json("get_message", json!({"msgId": msg_id})).await;
            (got["deliveries"][0]["status"] == "fail").then_some(got)
        })
        .await;
    assert!(failed.is_some(), "the delivery did not fail");

    let (is_error, text) = client.tool("explain_delivery_failure", json!({"msgId": msg_id, "endpointId": ep_id})).await;
    assert!(!is_error, "{text}");
    assert!(text.contains("HTTP 500") && text.contains("retries are exhausted after 4 attempts"), "{text}");
    assert!(text.contains("database is down") && text.contains("resend_message"), "{text}");
    let attempts = client.tool_json("list_attempts", json!({"endpointId": ep_id, "status": "fail", "limit": 2})).await;
    assert_eq!(attempts["data"].as_array().unwrap().len(), 2, "{attempts}");
    assert_eq!(attempts["data"][0]["responseStatusCode"], 500);
    let attempt_id = text_of(&attempts["data"][0]["id"]).to_string();
    let (_, by_attempt) = client.tool("explain_delivery_failure", json!({"attemptId": attempt_id})).await;
    assert!(by_attempt.contains(&msg_id) && by_attempt.contains("HTTP 500"), "{by_attempt}");

    // The receiver is fixed: resend, and the sink gets the message again.
    let (is_error, text) = client.tool("resend_message", json!({"msgId": msg_id, "endpointId": ep_id})).await;
    assert!(!is_error, "{text}");
    let got = sink.wait_for(5, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 5);
    assert_eq!(got[4].json(), json!({"amount": 5}));
    assert_eq!(got[4].header("webhook-id"), msg_id, "the same webhook-id, for deduplication");
    let ok = server
        .eventually(Duration::from_secs(10), || async {
            let a = client.tool_json("list_attempts", json!({"msgId": msg_id, "status": "success"})).await;
            (a["data"].as_array().unwrap().len() == 1).then_some(())
        })
        .await;
    assert!(ok.is_some(), "the resend's success is listed");
    let (_, text) = client.tool("explain_delivery_failure", json!({"msgId": msg_id, "endpointId": ep_id})).await;
    assert!(text.contains("latest attempt succeeded"), "{text}");

    // Recover and a test event go out too; the resend is in the audit trail.
    let (is_error, text) =
        client.tool("recover_endpoint", json!({"endpointId": ep_id, "since": crate::support::seconds_ago(600)})).await;
    assert!(!is_error && text.contains("qtask_"), "{text}");
    let schemas = json!({"1": {"type": "object", "examples": [{"example": true}]}});
    let (status, _) = server
        .post("/api/v1/event-type", json!({"name": "invoice.paid", "description": "d", "schemas": schemas}))
        .await;
    assert_eq!(status, 201);
    let (is_error, text) =
        client.tool("send_test_event", json!({"endpointId": ep_id, "eventType": "invoice.paid"})).await;
    assert!(!is_error, "{text}");
    let got = sink.wait_for(6, Duration::from_secs(10)).await;
    assert!(got.iter().any(|r| r.json() == json!({"example": true})), "the example arrived");
    let (_, audit) = server.get("/api/v1/audit?limit=50").await;
    let resend = audit["data"].as_array().unwrap().iter().find(|e| e["action"].as_str().unwrap().ends_with("/resend"));
    assert!(resend.is_some_and(|e| e["actor"].as_str().unwrap().starts_with("key_")), "{audit}");
}

#[tokio::test]
async fn the_transport_answers_as_the_spec_says() {
    let server = TestServer::spawn().await;
    let client = mcp(&server, &server.token);
    // Older clients get the version they ask for; unknown ones the newest.
    for (asked, got) in [("2025-03-26", "2025-03-26"), ("2099-01-01", "2025-06-18")] {
        let init = client
            .rpc(
                "initialize",
                json!({"protocolVersion": asked, "capabilities": {}, "clientInfo": {"name": "e", "version": "1"}}),
            )
            .await;
        assert_eq!(init["result"]["protocolVersion"], got);
    }
    let (status, headers, body) = client.post(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).await;
    assert_eq!((status, body), (202, Value::Null));
    assert!(headers.get("mcp-session-id").is_none(), "no session is kept");
    let (status, _, body) = client.post("{oops").await;
    assert_eq!((status, body["error"]["code"].as_i64()), (400, Some(-32700)));
    let (status, _, body) = client.post(r#"{"jsonrpc":"2.0","id":1,"method":"resources/read"}"#).await;
    assert_eq!((status, body["error"]["code"].as_i64()), (200, Some(-32601)));
    let (_, _, body) = client.post(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"nope"}}"#).await;
    assert_eq!(body["error"]["code"], -32602);
    let batch = r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"tools/list"}]"#;
    let (status, _, body) = client.post(batch).await;
    assert_eq!((status, body.as_array().map(Vec::len)), (200, Some(2)));

    let version = server
        .client
        .post(server.url("/mcp"))
        .bearer_auth(&server.token)
        .header("mcp-protocol-version", "1999-01-01")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(version.status().as_u16(), 400);
    let get = server.client.get(server.url("/mcp")).bearer_auth(&server.token).send().await.unwrap();
    assert_eq!(get.status().as_u16(), 405);
    let anonymous = server.client.post(server.url("/mcp")).body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#);
    assert_eq!(anonymous.send().await.unwrap().status().as_u16(), 401);
    // Just past the 1 MiB bound: the server answers without reading the rest.
    let huge = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"x":"{}"}}}}"#, "x".repeat(1 << 20));
    let (status, _, _) = client.post(&huge).await;
    assert_eq!(status, 413);
    let (_, text) = client.tool("list_applications", json!({"limit": 1000})).await;
    assert!(text.contains("limit"), "{text}");
}
