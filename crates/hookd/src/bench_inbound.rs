//! `hookd bench-inbound`: drives a source's URL with signed provider requests
//! (Stripe's scheme, a fresh event id each) and prints how many were verified,
//! stored and acknowledged per second, the acknowledgement latency, and the
//! latency from receipt to the forwarded delivery reaching a loopback sink. A
//! measurement, not a test: it prints figures and asserts nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use clap::Args;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::bench::{cpu_seconds, percentile, start_node};

#[derive(Debug, Args)]
pub struct InboundBenchOptions {
    /// hookd to drive; when absent, one is started on a temporary data dir.
    #[arg(long)]
    url: Option<String>,
    /// Admin token for --url.
    #[arg(long, env = "HOOKD_BENCH_TOKEN")]
    token: Option<String>,
    /// Requests to send.
    #[arg(long, short = 'n', default_value_t = 20_000)]
    requests: usize,
    /// Concurrent senders.
    #[arg(long, short = 'c', default_value_t = 32)]
    concurrency: usize,
    /// Fixed request rate per second (default: as fast as acknowledged).
    #[arg(long)]
    rate: Option<f64>,
    /// Database for the node the bench starts (default: embedded SQLite).
    #[arg(long)]
    database_url: Option<String>,
    /// Seconds to wait for the last forwarded deliveries.
    #[arg(long, default_value_t = 60)]
    drain_timeout: u64,
}

const SECRET: &str = "whsec_bench_inbound_secret";

/// When each forwarded event (by its provider id) first reached the sink.
type Arrivals = Arc<Mutex<(HashMap<String, Instant>, usize)>>;

async fn sink(State(arrivals): State<Arrivals>, body: Bytes) -> StatusCode {
    let now = Instant::now();
    let Some(id) = serde_json::from_slice::<Value>(&body).ok().and_then(|v| v["id"].as_str().map(String::from)) else {
        return StatusCode::BAD_REQUEST;
    };
    let mut a = arrivals.lock().unwrap_or_else(|e| e.into_inner());
    if a.0.insert(id, now).is_some() {
        a.1 += 1;
    }
    StatusCode::OK
}

fn stripe_signature(body: &str, t: i64) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key length");
    m.update(format!("{t}.{body}").as_bytes());
    let hex: String = m.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    format!("t={t},v1={hex}")
}

pub async fn run(opts: InboundBenchOptions) -> anyhow::Result<()> {
    if opts.requests == 0 || opts.concurrency == 0 {
        bail!("--requests and --concurrency must be at least 1");
    }
    let arrivals: Arrivals = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sink_addr = listener.local_addr()?;
    let app = axum::Router::new().route("/in", axum::routing::post(sink)).with_state(arrivals.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let (base, token, mut child) = match &opts.url {
        Some(url) => {
            let token = opts.token.clone().context("--token (or HOOKD_BENCH_TOKEN) is required with --url")?;
            (url.trim_end_matches('/').to_string(), token, None)
        }
        None => {
            let token = hookd_api::auth::generate_token("sk_");
            let (url, child) = start_node(&token, opts.database_url.as_deref()).await?;
            (url, token, Some(child))
        }
    };
    let client = reqwest::Client::builder().pool_max_idle_per_host(opts.concurrency * 2).build()?;
    let auth = format!("Bearer {token}");
    let source: Value = client
        .post(format!("{base}/ingest/api/v1/source"))
        .header("authorization", &auth)
        .json(&json!({"name": "bench", "type": "stripe", "config": {"secret": SECRET}}))
        .send()
        .await?
        .error_for_status()
        .context("creating the source failed")?
        .json()
        .await?;
    let source_id = source["id"].as_str().context("no source id")?;
    let ingest_url = source["ingestUrl"].as_str().context("no ingestUrl")?.to_string();
    client
        .post(format!("{base}/ingest/api/v1/source/{source_id}/endpoint"))
        .header("authorization", &auth)
        .json(&json!({"url": format!("http://{sink_addr}/in")}))
        .send()
        .await?
        .error_for_status()
        .context("creating the ingest endpoint failed (does the server allow private networks?)")?;

    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let acks: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let errors = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let cpu_before = child.as_ref().and_then(|c| c.child.id()).map(cpu_seconds).unwrap_or(0.0);
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..opts.concurrency {
        let (client, url, sent, acks, next, errors) =
            (client.clone(), ingest_url.clone(), sent.clone(), acks.clone(), next.clone(), errors.clone());
        let (total, rate) = (opts.requests, opts.rate);
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total {
                    break;
                }
                if let Some(rate) = rate {
                    tokio::time::sleep_until((started + Duration::from_secs_f64(i as f64 / rate)).into()).await;
                }
                let id = format!("evt_bench_{i}");
                let body = json!({"id": id, "object": "event", "type": "payment_intent.succeeded",
                    "data": {"object": {"id": format!("pi_{i}"), "amount": 4200, "currency": "eur"}}})
                .to_string();
                let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                let signature = stripe_signature(&body, t.as_secs() as i64);
                let t0 = Instant::now();
                let resp = client
                    .post(&url)
                    .header("stripe-signature", signature)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                match resp {
                    Ok(r) if r.status() == StatusCode::OK => {
                        acks.lock().unwrap_or_else(|e| e.into_inner()).push(t0.elapsed());
                        sent.lock().unwrap_or_else(|e| e.into_inner()).insert(id, t0);
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
    let deadline = Instant::now() + Duration::from_secs(opts.drain_timeout);
    while arrivals.lock().unwrap_or_else(|e| e.into_inner()).0.len() < accepted && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let cpu = child.as_ref().and_then(|c| c.child.id()).map(cpu_seconds).unwrap_or(0.0) - cpu_before;

    let sent = sent.lock().unwrap_or_else(|e| e.into_inner());
    let arrivals = arrivals.lock().unwrap_or_else(|e| e.into_inner());
    let mut forward: Vec<Duration> =
        arrivals.0.iter().filter_map(|(id, at)| Some(at.saturating_duration_since(*sent.get(id)?))).collect();
    forward.sort();
    let mut acks = acks.lock().unwrap_or_else(|e| e.into_inner()).clone();
    acks.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "hookd bench-inbound ({}): {} Stripe-signed requests, concurrency {}, rate {}",
        if opts.url.is_some() {
            "running server"
        } else if opts.database_url.is_some() {
            "PostgreSQL"
        } else {
            "embedded SQLite"
        },
        opts.requests,
        opts.concurrency,
        opts.rate.map(|r| format!("{r}/s")).unwrap_or_else(|| "unlimited".into())
    );
    println!(
        "  verified+stored {accepted} ({} errors) in {:.2}s = {:.0} requests/s",
        errors.load(std::sync::atomic::Ordering::Relaxed),
        send_elapsed.as_secs_f64(),
        accepted as f64 / send_elapsed.as_secs_f64()
    );
    println!(
        "  acknowledgement         p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
        ms(percentile(&acks, 0.5)),
        ms(percentile(&acks, 0.99)),
        ms(acks.last().copied().unwrap_or_default())
    );
    println!(
        "  receipt -> forwarded    p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
        ms(percentile(&forward, 0.5)),
        ms(percentile(&forward, 0.9)),
        ms(percentile(&forward, 0.99)),
        ms(forward.last().copied().unwrap_or_default())
    );
    if child.is_some() {
        println!("  cpu per 1000 requests   hookd {:.3}s", cpu / (accepted.max(1) as f64 / 1000.0));
    }
    println!("  duplicates forwarded    {}", arrivals.1);
    println!("  lost                    {}", accepted.saturating_sub(forward.len()));
    if let Some(c) = child.as_mut() {
        let _ = c.child.start_kill();
    }
    Ok(())
}
