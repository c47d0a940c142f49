//! What every fault scenario is made of: a counting sink that knows which node
//! sent each request, a TCP proxy that can cut, slow or drop a node's database
//! connection, a load of ordered message streams acknowledged like a careful
//! client would, and the tally of what arrived.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::support::{ServerOptions, TOKEN};

/// One request the sink got.
#[derive(Debug, Clone)]
pub struct Arrival {
    /// The node that sent it (the sink port it came through).
    pub node: usize,
    pub path: String,
    pub msg_id: String,
    pub key: String,
    pub seq: u64,
    /// Its `webhook-timestamp`.
    pub timestamp: i64,
    pub at: Instant,
    /// Whether the sink answered 2xx.
    pub accepted: bool,
}

/// Every request, and the (endpoint, message) pairs answered 2xx so far.
#[derive(Default)]
struct Received {
    all: Vec<Arrival>,
    requested: HashSet<(String, String)>,
    accepted: HashSet<(String, String)>,
}

type Arrivals = Arc<Mutex<Received>>;

/// How the sink answers: 200, except the first request of every `nth`
/// message (by payload `seq`) per endpoint, which gets a 500 and is retried.
/// (Not a 503 or 429: those ask hookd to slow down, and it does.)
#[derive(Clone, Copy, Default)]
struct Answers {
    fail_first_of_every: Option<u64>,
}

type SinkState = (usize, Arrivals, Answers);

/// A receiver on loopback that answers 200 and records every request with the
/// node that sent it: each node's `--egress-proxy` is its own port of the sink,
/// which takes the proxied (absolute-form) request as any other.
pub struct ChaosSink {
    ports: Vec<u16>,
    arrivals: Arrivals,
}

async fn record(
    State((node, arrivals, answers)): State<SinkState>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> axum::http::StatusCode {
    let payload: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let path = uri.path().to_string();
    let msg_id = headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let seq = payload["seq"].as_u64().unwrap_or(u64::MAX);
    let mut received = arrivals.lock().unwrap();
    let first = received.requested.insert((path.clone(), msg_id.clone()));
    let refuse = first && answers.fail_first_of_every.is_some_and(|n| seq.is_multiple_of(n));
    if !refuse {
        received.accepted.insert((path.clone(), msg_id.clone()));
    }
    received.all.push(Arrival {
        node,
        path,
        msg_id,
        key: payload["key"].as_str().unwrap_or_default().to_string(),
        seq,
        timestamp: headers.get("webhook-timestamp").and_then(|v| v.to_str().ok()?.parse().ok()).unwrap_or(0),
        at: Instant::now(),
        accepted: !refuse,
    });
    if refuse {
        axum::http::StatusCode::INTERNAL_SERVER_ERROR
    } else {
        axum::http::StatusCode::OK
    }
}

impl ChaosSink {
    /// A sink with a port for each of `nodes` nodes.
    pub async fn start(nodes: usize) -> ChaosSink {
        Self::start_with(nodes, Answers::default()).await
    }

    /// A sink that refuses the first request of every `nth` message once, so
    /// that retries are part of the load.
    pub async fn failing_first_of_every(nodes: usize, nth: u64) -> ChaosSink {
        Self::start_with(nodes, Answers { fail_first_of_every: Some(nth) }).await
    }

    async fn start_with(nodes: usize, answers: Answers) -> ChaosSink {
        let arrivals: Arrivals = Arc::default();
        let mut ports = Vec::new();
        for node in 0..nodes.max(1) {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            ports.push(listener.local_addr().unwrap().port());
            let app = axum::Router::new().fallback(record).with_state((node, arrivals.clone(), answers));
            tokio::spawn(async move { axum::serve(listener, app).await });
        }
        ChaosSink { ports, arrivals }
    }

    /// An endpoint URL on the sink.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ports[0])
    }

    /// What node `i` passes as `--egress-proxy`.
    pub fn proxy_for(&self, node: usize) -> String {
        format!("http://127.0.0.1:{}", self.ports[node])
    }

    pub fn arrivals(&self) -> Vec<Arrival> {
        self.arrivals.lock().unwrap().all.clone()
    }

    /// How many requests arrived, and how many of `acked` × `paths` were
    /// answered 2xx (cheap: no copy of what arrived).
    fn progress(&self, acked: &[Acked], paths: &[String]) -> (usize, usize) {
        let received = self.arrivals.lock().unwrap();
        let mut delivered = 0;
        for p in paths {
            for m in acked {
                if received.accepted.contains(&(p.clone(), m.msg_id.clone())) {
                    delivered += 1;
                }
            }
        }
        (received.all.len(), delivered)
    }
}

/// What a [`FaultProxy`] does to the bytes it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    Up,
    /// Nothing passes either way, and nothing is closed: a partition.
    Cut,
    /// Every chunk waits this long.
    Slow(Duration),
}

/// A TCP proxy in front of a database, under the test's control.
pub struct FaultProxy {
    pub port: u16,
    link: watch::Sender<Link>,
}

impl FaultProxy {
    pub async fn start(target: std::net::SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (link, rx) = watch::channel(Link::Up);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let rx = rx.clone();
                tokio::spawn(async move {
                    let mut wait = rx.clone();
                    // A new connection during a partition gets no answer either.
                    if wait.wait_for(|l| *l != Link::Cut).await.is_err() {
                        return;
                    }
                    let Ok(server) = TcpStream::connect(target).await else { return };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::spawn(pump(cr, sw, rx.clone()));
                    tokio::spawn(pump(sr, cw, rx));
                });
            }
        });
        FaultProxy { port, link }
    }

    pub fn set(&self, link: Link) {
        self.link.send_replace(link);
    }

    /// `url` (a PostgreSQL URL on the proxied server) through this proxy.
    pub fn url(&self, url: &str) -> String {
        let rest = url.split_once('@').map(|(_, r)| r).unwrap_or(url);
        let path = rest.split_once('/').map(|(_, p)| p).unwrap_or("");
        format!("postgres://postgres@127.0.0.1:{}/{path}", self.port)
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    link: watch::Receiver<Link>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut link = link;
    loop {
        if link.wait_for(|l| *l != Link::Cut).await.is_err() {
            return;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // Read before the cut: held until it heals, as the network would.
        let state = *link.borrow();
        match state {
            Link::Slow(d) => tokio::time::sleep(d).await,
            Link::Cut => {
                if link.wait_for(|l| *l != Link::Cut).await.is_err() {
                    return;
                }
            }
            Link::Up => {}
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// The address of a PostgreSQL URL (`postgres://user@host:port/db`).
pub fn pg_addr(url: &str) -> std::net::SocketAddr {
    let rest = url.split_once('@').map(|(_, r)| r).unwrap_or(url);
    let hostport = rest.split('/').next().unwrap();
    let hostport = if hostport.contains(':') { hostport.to_string() } else { format!("{hostport}:5432") };
    hostport.replace("localhost", "127.0.0.1").parse().unwrap()
}

/// A node's options: the database, short leases, and the sink port it sends through.
pub fn node(database_url: Option<&str>, sink: &ChaosSink, slot: usize, lease: &str, extra: &[&str]) -> ServerOptions {
    let mut args: Vec<String> = vec!["--lease-duration", lease, "--poll-interval", "200ms", "--egress-proxy"]
        .into_iter()
        .map(String::from)
        .collect();
    args.push(sink.proxy_for(slot));
    if let Some(url) = database_url {
        args.extend(["--database-url".to_string(), url.to_string()]);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    ServerOptions { extra_args: args, retry_schedule: "200ms,500ms,1s,2s,2s,2s,2s".into(), ..Default::default() }
}

/// An acknowledged message.
#[derive(Debug, Clone)]
pub struct Acked {
    pub msg_id: String,
    pub at: Instant,
}

/// How the load went from the client's side.
#[derive(Debug, Default)]
pub struct ClientView {
    /// Answers by status (503s included).
    pub statuses: BTreeMap<u16, u64>,
    /// Requests that got no answer (connection refused, timeout).
    pub no_answer: u64,
    /// Answers a careful client could not act on: a 5xx other than 503, or a
    /// 503 without `Retry-After`.
    pub wrong: Vec<String>,
}

/// Steady load: `keys` ordered streams, each one message at a time (the next
/// once the last was acknowledged), retried on 503 or no answer with the same
/// idempotency key, spread over the nodes. Runs until stopped.
pub struct Load {
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    pub acked: Arc<Mutex<Vec<Acked>>>,
    pub client: Arc<Mutex<ClientView>>,
    /// Where requests go; a scenario may change it (a node restarted on a new port).
    pub bases: Arc<Mutex<Vec<String>>>,
}

impl Load {
    pub fn start(bases: Vec<String>, app: &str, keys: usize, per_key_rate: f64) -> Load {
        let (stop, rx) = watch::channel(false);
        let acked: Arc<Mutex<Vec<Acked>>> = Arc::default();
        let view: Arc<Mutex<ClientView>> = Arc::default();
        let bases = Arc::new(Mutex::new(bases));
        let run = rand_tag();
        let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
        let gap = Duration::from_secs_f64(1.0 / per_key_rate);
        let tasks = (0..keys)
            .map(|k| {
                let (client, acked, view, bases, rx, app, run) = (
                    client.clone(),
                    acked.clone(),
                    view.clone(),
                    bases.clone(),
                    rx.clone(),
                    app.to_string(),
                    run.clone(),
                );
                tokio::spawn(async move {
                    let key = format!("k{k}");
                    let mut try_no = k;
                    for seq in 0u64.. {
                        let next_at = Instant::now() + gap;
                        loop {
                            if *rx.borrow() {
                                return;
                            }
                            try_no += 1;
                            let base = {
                                let b = bases.lock().unwrap();
                                b[try_no % b.len()].clone()
                            };
                            let resp = client
                                .post(format!("{base}/api/v1/app/{app}/msg"))
                                .bearer_auth(TOKEN)
                                .header("idempotency-key", format!("{run}-{key}-{seq}"))
                                .json(&json!({"eventType": "chaos.tick", "payload": {"key": key, "seq": seq}}))
                                .send()
                                .await;
                            match resp {
                                Ok(r) if r.status().is_success() => {
                                    *view.lock().unwrap().statuses.entry(r.status().as_u16()).or_default() += 1;
                                    let body: Value = r.json().await.unwrap_or_default();
                                    let msg_id = body["id"].as_str().unwrap_or_default().to_string();
                                    acked.lock().unwrap().push(Acked { msg_id, at: Instant::now() });
                                    break;
                                }
                                Ok(r) => {
                                    let status = r.status().as_u16();
                                    let retry_after = r.headers().contains_key("retry-after");
                                    let mut v = view.lock().unwrap();
                                    *v.statuses.entry(status).or_default() += 1;
                                    if status != 503 || !retry_after {
                                        v.wrong.push(format!("{status} (retry-after: {retry_after})"));
                                    }
                                }
                                Err(_) => view.lock().unwrap().no_answer += 1,
                            }
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        tokio::time::sleep_until(next_at.into()).await;
                    }
                })
            })
            .collect();
        Load { stop, tasks, acked, client: view, bases }
    }

    /// Stops sending (a message in flight is finished or dropped unacknowledged).
    pub async fn stop(self) -> (Vec<Acked>, ClientView) {
        self.stop.send_replace(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
        let acked = self.acked.lock().unwrap().clone();
        let view = std::mem::take(&mut *self.client.lock().unwrap());
        (acked, view)
    }

    pub fn acked_count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }
}

fn rand_tag() -> String {
    format!("{:x}", rand::random::<u64>())
}

/// What arrived against what was acknowledged.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub acked: usize,
    /// (endpoint, message) pairs delivered of those acknowledged.
    pub delivered: usize,
    pub lost: usize,
    pub duplicates: usize,
    pub out_of_order: usize,
}

/// Counts deliveries of `acked` to every endpoint of `paths`; out-of-order
/// arrivals are counted on `ordered` (a first arrival whose sequence number is
/// below one already delivered for its key).
pub fn tally(acked: &[Acked], arrivals: &[Arrival], paths: &[String], ordered: Option<&str>) -> Tally {
    let arrivals: Vec<&Arrival> = arrivals.iter().filter(|a| a.accepted).collect();
    let seen: HashSet<(&str, &str)> = arrivals.iter().map(|a| (a.path.as_str(), a.msg_id.as_str())).collect();
    let delivered =
        paths.iter().map(|p| acked.iter().filter(|m| seen.contains(&(p.as_str(), m.msg_id.as_str()))).count()).sum();
    let duplicates = arrivals.len() - seen.len();
    let mut out_of_order = 0;
    if let Some(path) = ordered {
        let mut first = HashSet::new();
        let mut highest: HashMap<&str, u64> = HashMap::new();
        for a in arrivals.iter().filter(|a| a.path == path) {
            if !first.insert(a.msg_id.as_str()) {
                continue;
            }
            let top = highest.entry(a.key.as_str()).or_insert(0);
            if a.seq < *top {
                out_of_order += 1;
            }
            *top = (*top).max(a.seq);
        }
    }
    Tally { acked: acked.len(), delivered, lost: acked.len() * paths.len() - delivered, duplicates, out_of_order }
}

/// Waits until every acknowledged message reached every endpoint, or nothing
/// new arrived for `stall`; the tally then.
pub async fn settle(
    sink: &ChaosSink,
    acked: &[Acked],
    paths: &[String],
    ordered: Option<&str>,
    stall: Duration,
) -> Tally {
    let mut last = (0, Instant::now());
    loop {
        let (arrived, delivered) = sink.progress(acked, paths);
        if arrived > last.0 {
            last = (arrived, Instant::now());
        }
        if delivered == acked.len() * paths.len() || last.1.elapsed() > stall {
            return tally(acked, &sink.arrivals(), paths, ordered);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// How long after `from` every message acknowledged before `from` had reached
/// every endpoint (the backlog of the fault drained).
pub fn drained_after(from: Instant, acked: &[Acked], arrivals: &[Arrival], paths: &[String]) -> Option<Duration> {
    let before: HashSet<&str> = acked.iter().filter(|m| m.at <= from).map(|m| m.msg_id.as_str()).collect();
    let mut firsts: HashMap<(&str, &str), Instant> = HashMap::new();
    for a in arrivals.iter().filter(|a| a.accepted) {
        firsts.entry((a.path.as_str(), a.msg_id.as_str())).or_insert(a.at);
    }
    let mut last = from;
    for p in paths {
        for id in &before {
            last = last.max(*firsts.get(&(p.as_str(), *id))?);
        }
    }
    Some(last.saturating_duration_since(from))
}

/// Makes the application and its endpoints: `plain` unordered ones and one
/// ordered by the payload's `key`. Returns the app and the endpoints' paths
/// (the ordered one last).
pub async fn setup(server: &crate::support::TestServer, sink: &ChaosSink, plain: usize) -> (String, Vec<String>) {
    let app = server.create_app("Chaos").await;
    let mut paths = Vec::new();
    for i in 0..plain {
        let path = format!("/ep{i}");
        server.create_endpoint(&app, json!({"url": sink.url(&path)})).await;
        paths.push(path);
    }
    let path = "/ordered".to_string();
    server.create_endpoint(&app, json!({"url": sink.url(&path), "ordering": {"key": "/key"}})).await;
    paths.push(path);
    (app, paths)
}

/// The (endpoint, message) pairs acknowledged but not delivered.
pub fn missing(acked: &[Acked], arrivals: &[Arrival], paths: &[String]) -> Vec<(String, String)> {
    let seen: HashSet<(&str, &str)> =
        arrivals.iter().filter(|a| a.accepted).map(|a| (a.path.as_str(), a.msg_id.as_str())).collect();
    let mut out = Vec::new();
    for p in paths {
        for m in acked {
            if !seen.contains(&(p.as_str(), m.msg_id.as_str())) {
                out.push((p.clone(), m.msg_id.clone()));
            }
        }
    }
    out
}

/// What the server says of the first few missing deliveries (for a failure message).
pub async fn explain_missing(
    server: &crate::support::TestServer,
    app: &str,
    acked: &[Acked],
    arrivals: &[Arrival],
    paths: &[String],
) -> Vec<String> {
    let mut out = Vec::new();
    for (path, msg) in missing(acked, arrivals, paths).into_iter().take(4) {
        let (_, dests) = server.get(&format!("/api/v1/app/{app}/msg/{msg}/endpoint")).await;
        let (_, attempts) = server.get(&format!("/api/v1/app/{app}/attempt/msg/{msg}")).await;
        out.push(format!("{path} {msg}: destinations {dests} attempts {attempts}"));
    }
    out
}
