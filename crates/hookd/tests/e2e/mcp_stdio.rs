//! `hookd mcp`: the MCP server on stdio, acting through a running server's API
//! with a token, one JSON-RPC message a line.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::support::TestServer;

/// `hookd mcp` started against `server` with `args`.
struct StdioClient {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl StdioClient {
    fn start(server: &TestServer, token: &str, extra: &[&str]) -> StdioClient {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookd"))
            .args(["mcp", "--server", &server.base, "--token", token])
            .args(extra)
            .env_remove("HOOKD_TOKEN")
            .env_remove("HOOKD_URL")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start hookd mcp");
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        StdioClient { child, stdin, lines }
    }

    async fn send(&mut self, line: &str) {
        self.stdin.write_all(format!("{line}\n").as_bytes()).await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    async fn reply(&mut self) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(20), self.lines.next_line())
            .await
            .expect("an answer within 20s")
            .unwrap()
            .expect("hookd mcp ended");
        serde_json::from_str(&line).unwrap()
    }

    async fn call(&mut self, id: u64, method: &str, params: Value) -> Value {
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}).to_string()).await;
        let reply = self.reply().await;
        assert_eq!(reply["id"], id, "{reply}");
        reply
    }
}

#[tokio::test]
async fn hookd_mcp_serves_tools_on_stdio_with_the_tokens_scope() {
    let server = TestServer::spawn().await;
    let app = server.create_app("Stdio").await;
    server.create_endpoint(&app, json!({"url": "https://stdio.example/hook"})).await;
    let (status, out) = server.post(&format!("/api/v1/auth/app/{app}/mcp-token"), json!({})).await;
    assert_eq!(status, 200, "{out}");
    let token = out["token"].as_str().unwrap();

    let mut mcp = StdioClient::start(&server, token, &[]);
    let init = mcp
        .call(
            1,
            "initialize",
            json!({"protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}}),
        )
        .await;
    assert_eq!(init["result"]["protocolVersion"], "2025-03-26");
    mcp.send(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).await;
    mcp.send("this is not json").await;
    assert_eq!(mcp.reply().await["error"]["code"], -32700, "a bad line is answered and the server goes on");
    let tools = mcp.call(2, "tools/list", json!({})).await;
    let names: Vec<&str> =
        tools["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"send_test_event") && names.len() == 12, "{names:?}");
    let listed = mcp.call(3, "tools/call", json!({"name": "list_endpoints", "arguments": {}})).await;
    let text = listed["result"]["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("https://stdio.example/hook"), "{text}");
    drop(mcp.stdin);
    let status = tokio::time::timeout(Duration::from_secs(10), mcp.child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "the end of input ends it");

    // --read-only holds whatever the token may do.
    let mut ro = StdioClient::start(&server, &server.token, &["--read-only"]);
    let tools = ro.call(1, "tools/list", json!({})).await;
    assert_eq!(tools["result"]["tools"].as_array().unwrap().len(), 9);
    let refused = ro
        .call(
            2,
            "tools/call",
            json!({"name": "send_test_event", "arguments": {"appId": app, "endpointId": "x", "eventType": "y"}}),
        )
        .await;
    assert_eq!(refused["result"]["isError"], true, "{refused}");

    // A token hookd does not know ends it with a clear error.
    let mut bad = StdioClient::start(&server, "mcp_unknown", &[]);
    let status = tokio::time::timeout(Duration::from_secs(10), bad.child.wait()).await.unwrap().unwrap();
    assert!(!status.success());
    let mut err = String::new();
    tokio::io::AsyncReadExt::read_to_string(bad.child.stderr.as_mut().unwrap(), &mut err).await.unwrap();
    assert!(err.contains("refused the token"), "{err}");
}
