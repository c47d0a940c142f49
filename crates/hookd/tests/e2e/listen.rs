//! `hookd listen`: an endpoint whose deliveries come down a tunnel to a local
//! server (the attempt records the local answer), kept across restarts, and a
//! delivery made while the tunnel is down retried once it is back; the
//! receiver-only mode relaying a provider's raw request and its answer.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::mgmt::text;
use crate::support::{verify_standard_webhook, ServerOptions, Sink, TestServer};

/// A running `hookd listen` and what it printed.
struct Listener {
    child: tokio::process::Child,
    out: Arc<Mutex<Vec<String>>>,
    err: Arc<Mutex<Vec<String>>>,
}

impl Listener {
    async fn start(server: &TestServer, token: &str, args: &[&str]) -> Listener {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookd"))
            .arg("listen")
            .args(args)
            .env("HOOKD_URL", &server.base)
            .env("HOOKD_TOKEN", token)
            .env("XDG_CONFIG_HOME", "/nonexistent")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let out: Arc<Mutex<Vec<String>>> = Arc::default();
        let err: Arc<Mutex<Vec<String>>> = Arc::default();
        for (pipe, lines) in [
            (Box::new(child.stdout.take().unwrap()) as Box<dyn tokio::io::AsyncRead + Unpin + Send>, out.clone()),
            (Box::new(child.stderr.take().unwrap()), err.clone()),
        ] {
            tokio::spawn(async move {
                let mut reader = BufReader::new(pipe).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    lines.lock().unwrap().push(line);
                }
            });
        }
        Listener { child, out, err }
    }

    /// Waits for a stderr line containing `needle` and returns it.
    async fn said(&self, needle: &str) -> String {
        for _ in 0..200 {
            if let Some(l) = self.err.lock().unwrap().iter().find(|l| l.contains(needle)) {
                return l.clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("hookd listen did not say `{needle}`: {:?}", self.err.lock().unwrap());
    }

    fn printed(&self) -> Vec<String> {
        self.out.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn deliveries_come_down_the_tunnel_and_survive_a_restart_of_the_listener() {
    let opts = ServerOptions { retry_schedule: "1s,2s,4s".into(), ..Default::default() };
    let server = TestServer::spawn_with(opts).await;
    let local = Sink::start().await;
    local.set_body(b"{\"handled\":true}");
    let app = server.create_app("Dev").await;
    let url = local.url("/webhooks");
    let args = [url.as_str(), "--app", app.as_str(), "--endpoint", "laptop", "--event-type", "order.paid"];
    let listener = Listener::start(&server, &server.token, &args).await;
    let secret = listener.said("signing secret ").await.trim_start_matches("signing secret ").to_string();
    listener.said("ready:").await;

    let (s, ep) = server.get(&format!("/api/v1/app/{app}/endpoint/laptop")).await;
    assert_eq!(s, 200);
    assert!(text(&ep["url"]).starts_with("relay://"), "{ep}");
    assert_eq!(ep["filterTypes"], json!(["order.paid"]));

    let msg = text(&server.send_message(&app, "order.paid", json!({"total": 7})).await["id"]);
    server.send_message(&app, "order.refunded", json!({})).await;
    let got = local.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].path, "/webhooks");
    assert_eq!(got[0].json()["total"], 7);
    assert!(verify_standard_webhook(&secret, &got[0]), "the local server can verify with the printed secret");
    let attempt = server
        .eventually(Duration::from_secs(10), || async {
            let (_, list) = server.get(&format!("/api/v1/app/{app}/attempt/msg/{msg}")).await;
            list["data"].get(0).cloned().filter(|a| a["responseStatusCode"] == 200)
        })
        .await
        .expect("the attempt holds the local answer");
    assert_eq!(attempt["response"], "{\"handled\":true}");
    let line = server
        .eventually(Duration::from_secs(5), || async { listener.printed().into_iter().find(|l| l.contains(&msg)) })
        .await
        .expect("a line per request");
    assert!(line.contains("order.paid") && line.contains(" 200 ") && line.ends_with(" ms"), "{line}");

    // The tunnel goes down: the delivery fails and is retried on schedule;
    // the listener comes back on the same endpoint and gets it.
    drop(listener);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let msg2 = text(&server.send_message(&app, "order.paid", json!({"total": 8})).await["id"]);
    let failed = server
        .eventually(Duration::from_secs(10), || async {
            let (_, list) = server.get(&format!("/api/v1/app/{app}/attempt/msg/{msg2}")).await;
            list["data"].get(0).cloned()
        })
        .await
        .expect("a failed attempt");
    assert!(text(&failed["response"]).contains("no `hookd listen`"), "{failed}");
    let again = Listener::start(&server, &server.token, &args).await;
    again.said("ready:").await;
    let got = local.wait_for(2, Duration::from_secs(15)).await;
    assert_eq!(got[1].json()["total"], 8);
    let (_, eps) = server.get(&format!("/api/v1/app/{app}/endpoint")).await;
    assert_eq!(eps["data"].as_array().unwrap().len(), 1, "the same endpoint, not a new one");
}

#[tokio::test]
async fn source_mode_relays_a_providers_raw_request_and_the_answer() {
    let server = TestServer::spawn().await;
    let local = Sink::start().await;
    local.set_body(b"thanks");
    let url = local.url("/in");
    let listener = Listener::start(&server, &server.token, &[url.as_str(), "--source", "github", "--print-json"]).await;
    let line = listener.said("relay URL ").await;
    let relay = line.trim_start_matches("relay URL ").to_string();
    assert!(relay.starts_with(&format!("{}/relay/in/", server.base)), "{relay}");
    listener.said("ready:").await;

    let client = reqwest::Client::new();
    let resp = client
        .post(format!("{relay}/gh/push?delivery=1"))
        .header("x-hub-signature-256", "sha256=abc")
        .header("content-type", "application/json")
        .body("{\"zen\":\"Keep it simple\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "thanks");
    let got = local.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(got[0].path, "/in/gh/push");
    assert_eq!(got[0].header("x-hub-signature-256"), "sha256=abc");
    assert_eq!(&got[0].body[..], b"{\"zen\":\"Keep it simple\"}");
    let printed = server
        .eventually(Duration::from_secs(5), || async {
            let p = listener.printed();
            p.iter().any(|l| l.contains("\"zen\"")).then_some(p)
        })
        .await
        .expect("--print-json prints the body");
    assert!(printed.iter().any(|l| l.contains("/gh/push?delivery=1") && l.contains(" 200 ")), "{printed:?}");

    // A path that would climb out of the local URL's path is refused.
    // (Sent raw: URL libraries resolve `%2e%2e` away before sending.)
    let path = relay.trim_start_matches(&server.base).to_string();
    let mut conn = tokio::net::TcpStream::connect(server.base.trim_start_matches("http://")).await.unwrap();
    let raw =
        format!("POST {path}/%2e%2e/admin HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}");
    tokio::io::AsyncWriteExt::write_all(&mut conn, raw.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut conn, &mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(local.count(), 1, "nothing reached the local server");

    // The same token and name give the same URL after a restart; with no
    // listener the provider gets 503 with Retry-After.
    drop(listener);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let resp = client.post(&relay).body("{}").send().await.unwrap();
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().contains_key("retry-after"));
    let again = Listener::start(&server, &server.token, &[url.as_str(), "--source", "github"]).await;
    assert_eq!(again.said("relay URL ").await.trim_start_matches("relay URL "), relay);
}

#[tokio::test]
async fn a_refused_token_ends_listen_with_the_reason() {
    let server = TestServer::spawn().await;
    let mut listener = Listener::start(&server, "sk_not_a_token", &["http://127.0.0.1:9/", "--source", "x"]).await;
    let status = tokio::time::timeout(Duration::from_secs(20), listener.child.wait()).await.expect("it exits").unwrap();
    assert!(!status.success());
    let said = listener.said("401").await;
    assert!(said.contains("--token"), "{said}");
    // A WebSocket handshake: a channel name that is not one is refused, a
    // good one upgrades.
    let handshake = |path: &str| {
        server
            .request(reqwest::Method::GET, path)
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .send()
    };
    let resp = handshake("/relay/short").await.unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("16 to 64"));
    let resp = handshake("/relay/abcdefghijklmnop0123").await.unwrap();
    assert_eq!(resp.status(), 101);
}
