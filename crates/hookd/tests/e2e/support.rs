//! The test harness: [`TestServer`] starts the real `hookd` binary on an ephemeral
//! port with its own data dir, and [`Sink`] is a real HTTP receiver on loopback
//! that records what arrives and answers as told.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

pub const TOKEN: &str = "sk_test_admin_token_for_e2e";

/// Options for one server start.
#[derive(Clone)]
pub struct ServerOptions {
    pub allow_private: bool,
    pub retry_schedule: String,
    pub admin_token: Option<String>,
    pub extra_args: Vec<String>,
    /// `--log` (default `warn`).
    pub log: Option<String>,
    /// Where stderr (the logs) goes; inherited when `None`.
    pub stderr: Option<std::path::PathBuf>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            allow_private: true,
            retry_schedule: "200ms,200ms,200ms".into(),
            admin_token: Some(TOKEN.into()),
            extra_args: Vec::new(),
            log: None,
            stderr: None,
            env: Vec::new(),
        }
    }
}

pub struct TestServer {
    pub base: String,
    pub client: reqwest::Client,
    pub child: tokio::process::Child,
    pub data_dir: Arc<tempfile::TempDir>,
    /// Lines the server printed on stdout.
    pub stdout: Arc<Mutex<Vec<String>>>,
    pub token: String,
}

impl TestServer {
    pub async fn spawn() -> TestServer {
        Self::spawn_with(ServerOptions::default()).await
    }

    pub async fn spawn_with(opts: ServerOptions) -> TestServer {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        Self::spawn_in(dir, opts).await
    }

    /// Starts on an existing data dir (to restart after a crash).
    pub async fn spawn_in(data_dir: Arc<tempfile::TempDir>, opts: ServerOptions) -> TestServer {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookd"));
        cmd.arg("serve")
            .args(["--listen", "127.0.0.1:0", "--retry-schedule", &opts.retry_schedule])
            .args(["--log", opts.log.as_deref().unwrap_or("warn")])
            .arg("--data-dir")
            .arg(data_dir.path())
            .args(&opts.extra_args)
            .envs(opts.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env_remove("HOOKD_ADMIN_TOKEN")
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        match &opts.stderr {
            Some(path) => cmd.stderr(std::fs::File::create(path).expect("log file")),
            None => cmd.stderr(Stdio::inherit()),
        };
        if opts.allow_private {
            cmd.arg("--allow-private-networks");
        }
        if let Some(t) = &opts.admin_token {
            cmd.args(["--admin-token", t]);
        }
        let mut child = cmd.spawn().expect("start hookd");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let base = loop {
            let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
                .await
                .expect("hookd printed nothing within 30s")
                .expect("read stdout")
                .expect("hookd exited before listening");
            stdout.lock().unwrap().push(line.clone());
            if let Some(url) = line.strip_prefix("listening on ") {
                break url.trim().to_string();
            }
        };
        let out = stdout.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                out.lock().unwrap().push(line);
            }
        });
        let token = opts.admin_token.clone().unwrap_or_else(|| {
            stdout.lock().unwrap().iter().find(|l| l.starts_with("sk_")).cloned().expect("first start prints a token")
        });
        TestServer { base, client: reqwest::Client::new(), child, data_dir, stdout, token }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path)).bearer_auth(&self.token)
    }

    /// Sends a JSON request and returns status and parsed body (`Null` when empty).
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self.request(method, path);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let value =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        (status, value)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::PUT, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::DELETE, path, None).await
    }

    /// Creates an application and returns its id.
    pub async fn create_app(&self, name: &str) -> String {
        let (status, body) = self.post("/api/v1/app", json!({ "name": name })).await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().to_string()
    }

    /// Creates an endpoint and returns its body.
    pub async fn create_endpoint(&self, app: &str, body: Value) -> Value {
        let (status, out) = self.post(&format!("/api/v1/app/{app}/endpoint"), body).await;
        assert_eq!(status, 201, "{out}");
        out
    }

    pub async fn send_message(&self, app: &str, event_type: &str, payload: Value) -> Value {
        let (status, out) =
            self.post(&format!("/api/v1/app/{app}/msg"), json!({ "eventType": event_type, "payload": payload })).await;
        assert_eq!(status, 202, "{out}");
        out
    }

    /// Polls `check` until it returns `Some` or `timeout` passes.
    pub async fn eventually<T, F, Fut>(&self, timeout: Duration, mut check: F) -> Option<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        eventually(timeout, &mut check).await
    }

    pub fn kill9(&mut self) {
        let pid = self.child.id().expect("running") as i32;
        // SIGKILL: no chance to flush or release anything.
        unsafe_kill(pid, 9);
    }

    pub fn sigterm(&mut self) {
        let pid = self.child.id().expect("running") as i32;
        unsafe_kill(pid, 15);
    }
}

fn unsafe_kill(pid: i32, signal: i32) {
    let status =
        std::process::Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status().expect("kill");
    assert!(status.success());
}

pub async fn eventually<T, F, Fut>(timeout: Duration, check: &mut F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// One request the sink received.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

#[derive(Default)]
struct SinkState {
    received: Vec<Received>,
    /// Statuses to answer with, in order; then 200.
    script: VecDeque<u16>,
    /// Replies with headers, in order, before `script`.
    replies: VecDeque<Reply>,
    /// A delay before answering.
    delay: Option<Duration>,
    /// The body to answer with (default `ok`).
    body: Option<Bytes>,
}

/// A real HTTP receiver on 127.0.0.1.
#[derive(Clone)]
pub struct Sink {
    pub addr: std::net::SocketAddr,
    state: Arc<Mutex<SinkState>>,
}

/// A scripted reply: a status with response headers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    pub fn new(status: u16, headers: &[(&'static str, &str)]) -> Reply {
        Reply { status, headers: headers.iter().map(|(k, v)| (*k, v.to_string())).collect() }
    }
}

async fn sink_handler(
    State(state): State<Arc<Mutex<SinkState>>>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, HeaderMap, Bytes) {
    let (reply, delay, body_out) = {
        let mut s = state.lock().unwrap();
        s.received.push(Received {
            method: method.to_string(),
            path: uri.path().to_string(),
            headers,
            body,
            at: Instant::now(),
        });
        let reply = match s.replies.pop_front() {
            Some(r) => r,
            None => Reply { status: s.script.pop_front().unwrap_or(200), headers: Vec::new() },
        };
        (reply, s.delay, s.body.clone().unwrap_or_else(|| Bytes::from_static(b"ok")))
    };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    let mut out = HeaderMap::new();
    for (name, value) in reply.headers {
        out.insert(name, value.parse().unwrap());
    }
    (StatusCode::from_u16(reply.status).unwrap(), out, body_out)
}

impl Sink {
    pub async fn start() -> Sink {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state: Arc<Mutex<SinkState>> = Arc::default();
        let app = axum::Router::new().fallback(sink_handler).with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Sink { addr, state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Answer the next requests with these statuses (then 200).
    pub fn script(&self, statuses: &[u16]) {
        self.state.lock().unwrap().script.extend(statuses.iter().copied());
    }

    /// Answer the next requests with these replies (then as `script` says).
    pub fn reply(&self, replies: &[Reply]) {
        self.state.lock().unwrap().replies.extend(replies.iter().cloned());
    }

    pub fn set_delay(&self, d: Option<Duration>) {
        self.state.lock().unwrap().delay = d;
    }

    /// Answer with this body from now on.
    pub fn set_body(&self, body: &'static [u8]) {
        self.state.lock().unwrap().body = Some(Bytes::from_static(body));
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    pub fn count(&self) -> usize {
        self.state.lock().unwrap().received.len()
    }

    /// Waits until at least `n` requests arrived; returns them.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.received();
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// An RFC 3339 time `secs` seconds ago (recover and replay reach 14 days back at most).
pub fn seconds_ago(secs: i64) -> String {
    hookd_core::timefmt::format_millis(hookd_core::timefmt::now_millis() - secs * 1000)
}

/// Standard Webhooks verification written from the spec, independent of hookd's
/// own signing code: HMAC-SHA256 over "{id}.{timestamp}.{body}".
pub fn verify_standard_webhook(secret: &str, r: &Received) -> bool {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let key = STANDARD.decode(secret.trim_start_matches("whsec_")).expect("secret is base64");
    let id = r.header("webhook-id");
    let ts = r.header("webhook-timestamp");
    let Ok(ts_num) = ts.parse::<i64>() else { return false };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    if (now - ts_num).abs() > 300 {
        return false;
    }
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(&r.body);
    let expected = STANDARD.encode(mac.finalize().into_bytes());
    r.header("webhook-signature").split(' ').any(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
}
