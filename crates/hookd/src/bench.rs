//! `hookd bench`: starts a loopback sink, drives hookd (a running one, or one it
//! starts on a temporary data dir) with messages, and prints throughput, end-to-end
//! latency (from sending the message to its arrival at the sink), duplicates and
//! losses. A measurement, not a test: it prints figures and asserts nothing.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use clap::Args;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

#[derive(Debug, Args)]
pub struct BenchOptions {
    /// hookd to drive; when absent, one is started on a temporary data dir.
    #[arg(long)]
    url: Option<String>,
    /// Admin token for --url.
    #[arg(long, env = "HOOKD_BENCH_TOKEN")]
    token: Option<String>,
    /// Messages to send.
    #[arg(long, short = 'n', default_value_t = 10_000)]
    messages: usize,
    /// Concurrent senders.
    #[arg(long, short = 'c', default_value_t = 32)]
    concurrency: usize,
    /// Fixed message rate per second (default: as fast as accepted).
    #[arg(long)]
    rate: Option<f64>,
    /// Endpoints each message fans out to.
    #[arg(long, short = 'e', default_value_t = 1)]
    fanout: usize,
    /// Payload size in bytes (approximate).
    #[arg(long, default_value_t = 256)]
    payload_bytes: usize,
    /// Database for the nodes the bench starts (default: an embedded SQLite store
    /// in a temporary dir). With PostgreSQL, use a database you can discard.
    #[arg(long)]
    database_url: Option<String>,
    /// Nodes to start on that database (PostgreSQL only for more than one); the
    /// load goes round-robin over them.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Seconds to wait for the last deliveries.
    #[arg(long, default_value_t = 60)]
    drain_timeout: u64,
    /// Fairness: also send this many messages to a second application, as fast
    /// as accepted, starting just before the measured load (whose figures show
    /// what the flood costs it; compare with a run without).
    #[arg(long, default_value_t = 0)]
    flood: usize,
    /// Isolation: also send to a third application whose endpoint never
    /// answers (each request times out), at the measured rate (or 50/s).
    #[arg(long)]
    hang_neighbour: bool,
    /// Settings merged into each endpoint made (JSON), e.g.
    /// '{"batch": {"maxMessages": 100, "maxWaitMs": 20}}' or '{"ordering": {"key": "/key"}}'.
    #[arg(long)]
    endpoint: Option<String>,
    /// A JSON template every endpoint renders its bodies with (made first, as
    /// version 1), e.g. '{"text": {{ "order " ~ payload.seq }}, "key": {{ payload.key }}}'.
    #[arg(long)]
    template: Option<String>,
    /// Messages carry `key`: their number modulo this (for an ordering key).
    #[arg(long, default_value_t = 1000)]
    keys: usize,
}

/// What the sink saw: first arrival per (message, endpoint) and the repeats.
#[derive(Default)]
struct SinkLog {
    first: HashMap<(String, usize), Instant>,
    duplicates: usize,
}

type Sink = Arc<Mutex<SinkLog>>;

async fn sink_handler(
    State(log): State<Sink>,
    Path(ep): Path<usize>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    let now = Instant::now();
    let Some(id) = headers.get("webhook-id").and_then(|v| v.to_str().ok()) else {
        return StatusCode::BAD_REQUEST;
    };
    // A batch: each member counts as its message.
    let ids: Vec<String> = if id.starts_with("batch_") {
        let items: Vec<Value> = serde_json::from_slice(&body).unwrap_or_default();
        items.iter().filter_map(|i| i["id"].as_str().map(String::from)).collect()
    } else {
        vec![id.to_string()]
    };
    let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
    for id in ids {
        if log.first.insert((id, ep), now).is_some() {
            log.duplicates += 1;
        }
    }
    StatusCode::OK
}

pub(crate) struct Child {
    pub(crate) child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

pub(crate) async fn start_node(token: &str, database_url: Option<&str>) -> anyhow::Result<(String, Child)> {
    let dir = tempfile::tempdir()?;
    let exe = std::env::current_exe()?;
    let mut cmd = tokio::process::Command::new(exe);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--allow-private-networks", "--log", "warn"])
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--admin-token")
        .arg(token)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    if let Some(url) = database_url {
        cmd.args(["--database-url", url]);
    }
    let mut child = cmd.spawn().context("cannot start hookd serve")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .context("hookd did not start within 30s")??
            .context("hookd exited before listening")?;
        if let Some(url) = line.strip_prefix("listening on ") {
            break url.trim().to_string();
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((url, Child { child, _dir: dir }))
}

/// CPU seconds (user + system) a process has used, from /proc.
pub(crate) fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    // Fields after the command name (which may contain spaces) start after ')'.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks: f64 = [11, 12].iter().filter_map(|&i| fields.get(i)?.parse::<f64>().ok()).sum();
    ticks / 100.0
}

/// CPU seconds used by every `postgres` process on this machine.
fn postgres_cpu_seconds() -> f64 {
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0.0 };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "postgres"))
        .map(cpu_seconds)
        .sum()
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

pub async fn run(opts: BenchOptions) -> anyhow::Result<()> {
    if opts.messages == 0 || opts.concurrency == 0 || opts.fanout == 0 {
        bail!("--messages, --concurrency and --fanout must be at least 1");
    }
    // The sink.
    let log: Sink = Arc::default();
    let sink_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sink_addr = sink_listener.local_addr()?;
    let flooded = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = flooded.clone();
    let sink_app = axum::Router::new()
        .route("/e/{ep}", axum::routing::post(sink_handler))
        .route(
            "/flood",
            axum::routing::post(move || {
                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                async { StatusCode::OK }
            }),
        )
        .route(
            "/hang",
            axum::routing::post(|| async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                StatusCode::OK
            }),
        )
        .with_state(log.clone());
    tokio::spawn(async move { axum::serve(sink_listener, sink_app).await });

    // The server.
    if opts.nodes == 0 || (opts.nodes > 1 && opts.url.is_some()) {
        bail!("--nodes must be at least 1, and applies only to nodes the bench starts (not with --url)");
    }
    let (bases, token, mut children) = match &opts.url {
        Some(url) => {
            let token = opts.token.clone().context("--token (or HOOKD_BENCH_TOKEN) is required with --url")?;
            (vec![url.trim_end_matches('/').to_string()], token, Vec::new())
        }
        None => {
            let token = hookd_api::auth::generate_token("sk_");
            let mut bases = Vec::new();
            let mut children = Vec::new();
            for _ in 0..opts.nodes {
                let (url, child) = start_node(&token, opts.database_url.as_deref()).await?;
                bases.push(url);
                children.push(child);
            }
            (bases, token, children)
        }
    };
    let base = bases[0].clone();
    let client = reqwest::Client::builder().pool_max_idle_per_host(opts.concurrency * 2).build()?;
    let auth = format!("Bearer {token}");
    let app: Value = client
        .post(format!("{base}/api/v1/app"))
        .header("authorization", &auth)
        .json(&json!({"name": "bench"}))
        .send()
        .await?
        .error_for_status()
        .context("creating the application failed")?
        .json()
        .await?;
    let app_id = app["id"].as_str().context("no app id")?.to_string();
    let mut extra: serde_json::Map<String, Value> = match &opts.endpoint {
        Some(s) => serde_json::from_str(s).context("--endpoint is not a JSON object")?,
        None => Default::default(),
    };
    if let Some(source) = &opts.template {
        let made: Value = client
            .post(format!("{base}/api/v1/template"))
            .header("authorization", &auth)
            .json(&json!({"name": "bench", "format": "json", "source": source}))
            .send()
            .await?
            .error_for_status()
            .context("creating the template failed (is it valid?)")?
            .json()
            .await?;
        extra.insert("template".into(), json!({"id": made["id"], "version": 1}));
    }
    for ep in 0..opts.fanout {
        let mut body = json!({"url": format!("http://{sink_addr}/e/{ep}")});
        body.as_object_mut().expect("an object").extend(extra.clone());
        client
            .post(format!("{base}/api/v1/app/{app_id}/endpoint"))
            .header("authorization", &auth)
            .json(&body)
            .send()
            .await?
            .error_for_status()
            .context("creating an endpoint failed (does the server allow private networks?)")?;
    }

    // Other tenants: a flood, and a neighbour whose endpoint hangs.
    let mut others = Vec::new();
    for (name, path, wanted) in [("flood", "/flood", opts.flood > 0), ("neighbour", "/hang", opts.hang_neighbour)] {
        if !wanted {
            continue;
        }
        let app: Value = client
            .post(format!("{base}/api/v1/app"))
            .header("authorization", &auth)
            .json(&json!({ "name": name }))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let id = app["id"].as_str().context("no app id")?.to_string();
        client
            .post(format!("{base}/api/v1/app/{id}/endpoint"))
            .header("authorization", &auth)
            .json(&json!({"url": format!("http://{sink_addr}{path}")}))
            .send()
            .await?
            .error_for_status()?;
        others.push((name, format!("{base}/api/v1/app/{id}/msg")));
    }
    let mut background = Vec::new();
    for (name, url) in others {
        let senders = if name == "flood" { opts.concurrency } else { 1 };
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for _ in 0..senders {
            let (client, auth, url, next) = (client.clone(), auth.clone(), url.clone(), next.clone());
            let (total, every) = match name {
                "flood" => (opts.flood, None),
                _ => (usize::MAX, Some(Duration::from_secs_f64(1.0 / opts.rate.unwrap_or(50.0)))),
            };
            background.push(tokio::spawn(async move {
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < total {
                    let body = json!({"eventType": "bench.other", "payload": {}});
                    let _ = client.post(&url).header("authorization", &auth).json(&body).send().await;
                    if let Some(every) = every {
                        tokio::time::sleep(every).await;
                    }
                }
            }));
        }
    }
    if !background.is_empty() {
        // Let the other tenants' load build up first.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let filler = "x".repeat(opts.payload_bytes.saturating_sub(40));
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let errors = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let cpu_before: f64 = children.iter().filter_map(|c| c.child.id()).map(cpu_seconds).sum();
    let pg_before = postgres_cpu_seconds();
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..opts.concurrency {
        let (client, auth, sent, next, errors) =
            (client.clone(), auth.clone(), sent.clone(), next.clone(), errors.clone());
        let urls: Vec<String> = bases.iter().map(|b| format!("{b}/api/v1/app/{app_id}/msg")).collect();
        let (filler, total, rate, keys) = (filler.clone(), opts.messages, opts.rate, opts.keys.max(1));
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total {
                    break;
                }
                if let Some(rate) = rate {
                    let due = started + Duration::from_secs_f64(i as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                let t0 = Instant::now();
                let body =
                    json!({"eventType": "bench.event", "payload": {"seq": i, "key": i % keys, "filler": filler}});
                match client.post(&urls[i % urls.len()]).header("authorization", &auth).json(&body).send().await {
                    Ok(resp) if resp.status() == StatusCode::ACCEPTED => {
                        if let Ok(v) = resp.json::<Value>().await {
                            if let Some(id) = v["id"].as_str() {
                                sent.lock().unwrap_or_else(|e| e.into_inner()).insert(id.to_string(), t0);
                            }
                        }
                    }
                    _ => {
                        errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for w in workers {
        w.await?;
    }
    let send_elapsed = started.elapsed();
    let accepted = sent.lock().unwrap_or_else(|e| e.into_inner()).len();
    let expected = accepted * opts.fanout;

    let deadline = Instant::now() + Duration::from_secs(opts.drain_timeout);
    loop {
        let got = log.lock().unwrap_or_else(|e| e.into_inner()).first.len();
        if got >= expected || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let cpu_hookd: f64 = children.iter().filter_map(|c| c.child.id()).map(cpu_seconds).sum::<f64>() - cpu_before;
    let cpu_pg = postgres_cpu_seconds() - pg_before;
    let sent = sent.lock().unwrap_or_else(|e| e.into_inner());
    let log = log.lock().unwrap_or_else(|e| e.into_inner());
    let mut latencies: Vec<Duration> = Vec::with_capacity(expected);
    let mut last_arrival = started;
    let mut delivered = 0;
    for ((id, _), at) in &log.first {
        if let Some(t0) = sent.get(id) {
            latencies.push(at.saturating_duration_since(*t0));
            delivered += 1;
            last_arrival = last_arrival.max(*at);
        }
    }
    latencies.sort();
    let deliver_elapsed = last_arrival.saturating_duration_since(started);
    let errors = errors.load(std::sync::atomic::Ordering::Relaxed);
    let store = match (&opts.url, &opts.database_url) {
        (Some(_), _) => "running server".to_string(),
        (None, Some(url)) if url.starts_with("postgres") => format!("{} node(s) on PostgreSQL", opts.nodes),
        _ => "embedded SQLite".to_string(),
    };
    println!(
        "hookd bench ({store}): {} messages, concurrency {}, fan-out {}, rate {}",
        opts.messages,
        opts.concurrency,
        opts.fanout,
        opts.rate.map(|r| format!("{r}/s")).unwrap_or_else(|| "unlimited".into())
    );
    println!(
        "  accepted        {accepted} ({errors} errors) in {:.2}s = {:.0} msg/s",
        send_elapsed.as_secs_f64(),
        accepted as f64 / send_elapsed.as_secs_f64()
    );
    println!(
        "  delivered       {delivered} of {expected} in {:.2}s = {:.0} deliveries/s",
        deliver_elapsed.as_secs_f64(),
        delivered as f64 / deliver_elapsed.as_secs_f64().max(1e-9)
    );
    println!(
        "  latency (send -> sink)  p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.90).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    if !children.is_empty() {
        let per_k = |cpu: f64| cpu / (delivered.max(1) as f64 / 1000.0);
        let pg = if store.contains("PostgreSQL") { format!("  postgres {:.3}s", per_k(cpu_pg)) } else { String::new() };
        println!("  cpu per 1000 deliveries  hookd {:.3}s ({} node(s)){pg}", per_k(cpu_hookd), children.len());
    }
    if opts.flood > 0 {
        println!(
            "  flood           {} messages to another application; {} delivered by the end",
            opts.flood,
            flooded.load(std::sync::atomic::Ordering::Relaxed)
        );
    }
    if opts.hang_neighbour {
        println!("  neighbour       another application's endpoint never answered throughout");
    }
    for b in background {
        b.abort();
    }
    println!("  duplicates      {}", log.duplicates);
    println!("  lost            {}", expected.saturating_sub(delivered));
    for c in children.iter_mut() {
        let _ = c.child.start_kill();
    }
    Ok(())
}
