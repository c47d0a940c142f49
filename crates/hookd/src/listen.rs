//! `hookd listen LOCAL_URL`: webhooks to a server on this machine, through a
//! tunnel to a hookd server (its `/relay` WebSocket), with no public address
//! and no hosted relay.
//!
//! By default it keeps one endpoint per machine (uid `listen-HOSTNAME`, in the
//! application `--app`, else one with uid `listen`) whose URL is
//! `relay://CHANNEL`: the server's deliveries to it travel down the tunnel,
//! are posted to LOCAL_URL, and the local answer is the attempt's response.
//! With `--source NAME` it is receiver-only: the server forwards whatever a
//! provider posts to its `/relay/in/CHANNEL/…` URL, raw, to LOCAL_URL.
//!
//! The channel stays the same across restarts (the endpoint's URL keeps it;
//! a source's is derived from the token and the name), so nothing needs
//! reconfiguring. A lost connection is made again with backoff; deliveries
//! meanwhile fail and are retried on the endpoint's schedule.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use base64::Engine;
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, Semaphore};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::client::output::{self, Cell, Style};
use crate::client::{urlencode, Api, ApiFailure, ConnOptions};

/// Local requests in flight at once.
const MAX_IN_FLIGHT: usize = 32;
/// Answers waiting to go up the socket.
const OUTBOX: usize = 64;
/// Longest wait between reconnects.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Largest local response body sent back.
const MAX_LOCAL_BODY: usize = 1024 * 1024;

#[derive(Debug, Args)]
pub struct ListenOptions {
    /// Where to post what arrives (e.g. http://localhost:3000/webhooks).
    pub local_url: String,
    #[command(flatten)]
    pub conn: ConnOptions,
    /// The application whose endpoint this is (id or uid) [default: one with uid `listen`, made if missing].
    #[arg(long)]
    pub app: Option<String>,
    /// The endpoint's uid [default: listen-HOSTNAME].
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Only these event types (repeatable) [default: every type].
    #[arg(long = "event-type")]
    pub event_types: Vec<String>,
    /// Receiver-only: print a relay URL for a provider (a name such as `stripe`)
    /// and forward its raw requests.
    #[arg(long, conflicts_with_all = ["app", "endpoint", "event_types"])]
    pub source: Option<String>,
    /// Print each request's and response's body.
    #[arg(long)]
    pub print_json: bool,
}

/// What the tunnel is for once set up.
struct Tunnel {
    channel: String,
    source: bool,
    what: String,
}

fn hostname() -> String {
    let raw = std::fs::read_to_string("/etc/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "local".into());
    let name: String = raw
        .trim()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .take(40)
        .collect();
    if name.is_empty() {
        "local".into()
    } else {
        name
    }
}

fn random_channel() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    (0..32).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect()
}

fn is_not_found(e: &anyhow::Error) -> bool {
    e.downcast_ref::<ApiFailure>().is_some_and(|f| f.status == 404)
}

/// Finds or makes the endpoint whose deliveries come down the tunnel.
async fn endpoint_tunnel(api: &Api, opts: &ListenOptions) -> anyhow::Result<Tunnel> {
    let app = match &opts.app {
        Some(a) => api.get(&format!("/api/v1/app/{}", urlencode(a))).await?,
        None => match api.get("/api/v1/app/listen").await {
            Ok(app) => app,
            Err(e) if is_not_found(&e) => {
                let body = json!({ "name": "hookd listen", "uid": "listen" });
                api.ok(Method::POST, "/api/v1/app", Some(&body)).await?
            }
            Err(e) => return Err(e),
        },
    };
    let app_id = app["id"].as_str().unwrap_or_default().to_string();
    let uid = opts.endpoint.clone().unwrap_or_else(|| format!("listen-{}", hostname()));
    let path = format!("/api/v1/app/{app_id}/endpoint/{}", urlencode(&uid));
    let endpoint = match api.get(&path).await {
        Ok(ep) => {
            let url = ep["url"].as_str().unwrap_or_default();
            if !url.starts_with("relay://") {
                bail!(
                    "endpoint `{uid}` delivers to {url}, not through a tunnel; name another with --endpoint, \
                     or delete it (`hookd endpoint delete --app {app_id} {uid}`)"
                );
            }
            if !opts.event_types.is_empty() {
                let body = json!({ "filterTypes": opts.event_types });
                api.ok(Method::PATCH, &path, Some(&body)).await?;
            }
            ep
        }
        Err(e) if is_not_found(&e) => {
            let mut body = json!({
                "url": format!("relay://{}", random_channel()),
                "uid": uid,
                "description": format!("hookd listen on {}", hostname()),
            });
            if !opts.event_types.is_empty() {
                body["filterTypes"] = json!(opts.event_types);
            }
            api.ok(Method::POST, &format!("/api/v1/app/{app_id}/endpoint"), Some(&body)).await?
        }
        Err(e) => return Err(e),
    };
    let url = endpoint["url"].as_str().unwrap_or_default();
    let channel = url.trim_start_matches("relay://").trim_end_matches('/').to_string();
    let ep_id = endpoint["id"].as_str().unwrap_or_default().to_string();
    let secret = api.get(&format!("/api/v1/app/{app_id}/endpoint/{ep_id}/secret")).await?;
    eprintln!("endpoint {ep_id} (uid {uid}) of app {app_id}");
    eprintln!("signing secret {}", secret["key"].as_str().unwrap_or("?"));
    Ok(Tunnel { channel, source: false, what: format!("deliveries to {ep_id}") })
}

/// A source's channel: the same for the same token and name, unguessable without the token.
fn source_channel(token: &str, name: &str) -> String {
    let digest = Sha256::digest(format!("hookd listen source\0{token}\0{name}").as_bytes());
    hookd_core::text::hex(&digest[..16])
}

pub async fn run(opts: ListenOptions) -> anyhow::Result<()> {
    let local = reqwest::Url::parse(&opts.local_url)
        .with_context(|| format!("`{}` is not a URL (e.g. http://localhost:3000/webhooks)", opts.local_url))?;
    if !matches!(local.scheme(), "http" | "https") {
        bail!("the local URL must be http:// or https://");
    }
    let api = opts.conn.resolve()?;
    let tunnel = match &opts.source {
        Some(name) => {
            if name.is_empty() || name.len() > 64 {
                bail!("--source is a name of 1 to 64 characters");
            }
            Tunnel { channel: source_channel(api.token(), name), source: true, what: format!("{name} requests") }
        }
        None => endpoint_tunnel(&api, &opts).await?,
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let forwarder = Arc::new(Forwarder { client, local, print_json: opts.print_json, colour: output::colour() });
    let mut backoff = Duration::from_secs(1);
    loop {
        let started = Instant::now();
        let ended = tokio::select! {
            ended = connect_and_serve(&api, &tunnel, forwarder.clone()) => ended,
            _ = tokio::signal::ctrl_c() => {
                eprintln!("stopped");
                return Ok(());
            }
        };
        match ended {
            Err(Fatal(e)) => return Err(e),
            Ok(reason) => {
                // A connection that held a while starts the backoff over.
                if started.elapsed() > Duration::from_secs(30) {
                    backoff = Duration::from_secs(1);
                }
                let jitter = Duration::from_millis(rand::random::<u64>() % 500);
                eprintln!("disconnected ({reason}); reconnecting in {}s", backoff.as_secs());
                tokio::select! {
                    _ = tokio::time::sleep(backoff + jitter) => {}
                    _ = tokio::signal::ctrl_c() => {
                        eprintln!("stopped");
                        return Ok(());
                    }
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// An error that reconnecting will not fix (a refused token).
struct Fatal(anyhow::Error);

/// Holds one connection until it ends; `Ok` says why it ended.
async fn connect_and_serve(api: &Api, tunnel: &Tunnel, forwarder: Arc<Forwarder>) -> Result<String, Fatal> {
    let ws_base = api.base.replacen("http://", "ws://", 1).replacen("https://", "wss://", 1);
    let mode = if tunnel.source { "?mode=source" } else { "" };
    let mut request = match format!("{ws_base}/relay/{}{mode}", tunnel.channel).into_client_request() {
        Ok(r) => r,
        Err(e) => return Err(Fatal(anyhow::anyhow!("the server URL does not make a WebSocket URL: {e}"))),
    };
    let auth =
        format!("Bearer {}", api.token()).parse().map_err(|_| Fatal(anyhow::anyhow!("the token is not valid")))?;
    request.headers_mut().insert("authorization", auth);
    let (socket, _) = match tokio_tungstenite::connect_async(request).await {
        Ok(s) => s,
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let status = resp.status().as_u16();
            let body = resp.body().as_ref().map(|b| String::from_utf8_lossy(b).to_string()).unwrap_or_default();
            let detail =
                serde_json::from_str::<Value>(&body).ok().and_then(|v| v["detail"].as_str().map(str::to_string));
            let failure = ApiFailure { status, detail: detail.unwrap_or(body) };
            return match status {
                401 | 403 | 404 => Err(Fatal(failure.into())),
                _ => Ok(failure.to_string()),
            };
        }
        Err(e) => return Ok(format!("cannot reach {}: {e}", api.base)),
    };
    let (mut sink, mut stream) = socket.split();
    let (outbox, mut answers) = mpsc::channel::<String>(OUTBOX);
    let gate = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    loop {
        tokio::select! {
            answer = answers.recv() => {
                let Some(answer) = answer else { continue };
                if let Err(e) = sink.send(Message::text(answer)).await {
                    return Ok(e.to_string());
                }
            }
            frame = stream.next() => {
                let text = match frame {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | None => return Ok("the server closed the tunnel".into()),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Ok(e.to_string()),
                };
                let Ok(frame) = serde_json::from_str::<Value>(&text) else { continue };
                match frame["type"].as_str() {
                    Some("ready") => {
                        if let Some(url) = frame["url"].as_str() {
                            eprintln!("relay URL {url}");
                            eprintln!("  (give it to the provider; requests to it and to paths under it go to {})", forwarder.local);
                        }
                        eprintln!("ready: {} → {}", tunnel.what, forwarder.local);
                    }
                    Some("request") => {
                        let Ok(permit) = gate.clone().acquire_owned().await else { continue };
                        let (forwarder, outbox) = (forwarder.clone(), outbox.clone());
                        tokio::spawn(async move {
                            let answer = forwarder.forward(&frame).await;
                            drop(permit);
                            let _ = outbox.send(answer.to_string()).await;
                        });
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Posts what came down the tunnel to the local server.
struct Forwarder {
    client: reqwest::Client,
    local: reqwest::Url,
    print_json: bool,
    colour: bool,
}

impl Forwarder {
    /// The local URL for a relayed path: the path under the local URL's own.
    /// `None` when the result would leave that path (the server refuses dot
    /// segments already; this does not rely on it).
    fn target(&self, path: &str) -> Option<reqwest::Url> {
        if path == "/" || path.is_empty() {
            return Some(self.local.clone());
        }
        let joined = reqwest::Url::parse(&format!("{}{path}", self.local.as_str().trim_end_matches('/'))).ok()?;
        let base = self.local.path().trim_end_matches('/');
        let inside = joined.origin() == self.local.origin()
            && (joined.path() == base || joined.path().starts_with(&format!("{base}/")));
        inside.then_some(joined)
    }

    async fn forward(&self, frame: &Value) -> Value {
        let b64 = base64::engine::general_purpose::STANDARD;
        let id = frame["id"].clone();
        let body = b64.decode(frame["body"].as_str().unwrap_or_default()).unwrap_or_default();
        let method = Method::from_bytes(frame["method"].as_str().unwrap_or("POST").as_bytes()).unwrap_or(Method::POST);
        let Some(target) = self.target(frame["path"].as_str().unwrap_or("/")) else {
            return json!({ "type": "response", "id": id, "error": "the path leaves the local URL's path" });
        };
        let mut req = self.client.request(method.clone(), target);
        for pair in frame["headers"].as_array().into_iter().flatten() {
            let (Some(n), Some(v)) = (pair[0].as_str(), pair[1].as_str()) else { continue };
            if !n.eq_ignore_ascii_case("content-length") && !n.eq_ignore_ascii_case("host") {
                req = req.header(n, v);
            }
        }
        let started = Instant::now();
        let label = frame["eventType"].as_str().map(str::to_string).unwrap_or_else(|| method.to_string());
        let what = frame["msgId"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| frame["path"].as_str().unwrap_or("/").to_string());
        let result = req.body(body.clone()).send().await;
        let (answer, status, reply_body) = match result {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let headers: Vec<(String, String)> = resp
                    .headers()
                    .iter()
                    .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
                    .collect();
                let bytes = resp.bytes().await.unwrap_or_default();
                let kept = &bytes[..bytes.len().min(MAX_LOCAL_BODY)];
                let answer = json!({ "type": "response", "id": id, "status": status, "headers": headers, "body": b64.encode(kept) });
                (answer, Cell::status(Some(status as i64)), String::from_utf8_lossy(kept).to_string())
            }
            Err(e) => {
                let mut cause: &dyn std::error::Error = &e;
                while let Some(inner) = cause.source() {
                    cause = inner;
                }
                let error = format!("{}: {cause}", self.local);
                (json!({ "type": "response", "id": id, "error": error }), Cell::styled("error", Style::Bad), error)
            }
        };
        let ms = started.elapsed().as_millis();
        let time = hookd_core::timefmt::format_millis(hookd_core::timefmt::now_millis());
        let line = output::table(
            &["", "", "", "", ""],
            vec![vec![
                Cell::styled(time, Style::Dim),
                Cell::plain(label),
                Cell::plain(what),
                status,
                Cell::plain(format!("{ms} ms")),
            ]],
            self.colour,
        );
        // The table's first line is its (empty) header.
        print!("{}", line.lines().nth(1).map(|l| format!("{l}\n")).unwrap_or_default());
        if self.print_json {
            println!("{}", pretty(&body));
            println!("← {}", reply_body.trim_end());
        }
        if !std::io::stdout().is_terminal() {
            use std::io::Write;
            let _ = std::io::stdout().flush();
        }
        answer
    }
}

/// A body for the terminal: indented when it is JSON.
fn pretty(body: &[u8]) -> String {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => serde_json::to_string_pretty(&v).unwrap_or_default(),
        Err(_) => String::from_utf8_lossy(body).to_string(),
    }
}
