//! `hookd loadtest URL`: drives a webhook receiver with signed requests at a
//! fixed rate and reports how it held up: latency percentiles, status codes,
//! error rate.
//!
//! The load is open-loop: request `i` is due at `start + i / rate` whether or
//! not earlier ones have been answered, and its latency counts from when it
//! was due. A receiver that falls behind shows it in the percentiles instead
//! of slowing the test down (no coordinated omission). At most
//! `--concurrency` requests are in flight; one that waits for a slot waits on
//! the clock.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;
use hookd_core::signing::Secret;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use tokio::sync::Semaphore;

use crate::bench::percentile;
use crate::client::output::{self, Cell};

#[derive(Debug, Args)]
pub struct LoadtestOptions {
    /// The receiver's URL.
    pub url: String,
    /// Requests per second.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// How long to send (`30s`, `2m`).
    #[arg(long, default_value = "10s", value_parser = duration)]
    pub duration: Duration,
    /// Sign each request with this secret (`whsec_…` or `whsk_…`) as hookd would.
    #[arg(long, env = "HOOKD_SIGNING_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
    /// A JSON payload file to send [default: a small event with a sequence number].
    #[arg(long)]
    pub payload: Option<std::path::PathBuf>,
    /// Most requests in flight.
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// Give up on a request after this long.
    #[arg(long, default_value = "15s", value_parser = duration)]
    pub timeout: Duration,
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Most requests one run sends.
const MAX_REQUESTS: u64 = 20_000_000;

fn duration(s: &str) -> Result<Duration, String> {
    hookd_core::schedule::parse_duration(s).ok_or_else(|| format!("`{s}` is not a duration like 500ms, 30s, 2m"))
}

/// What one request came to.
enum Outcome {
    Status(u16, Duration),
    Timeout,
    Error(String),
}

/// The innermost cause of a failed request (`Connection refused`), which
/// says more than reqwest's outer "error sending request".
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    cause.to_string()
}

pub async fn run(opts: LoadtestOptions) -> anyhow::Result<()> {
    let url = reqwest::Url::parse(&opts.url).map_err(|e| anyhow::anyhow!("`{}` is not a URL: {e}", opts.url))?;
    if !matches!(url.scheme(), "http" | "https") {
        bail!("the URL must be http:// or https://");
    }
    if !(opts.rate.is_finite() && opts.rate > 0.0 && opts.rate <= 1_000_000.0) {
        bail!("--rate is requests per second, more than 0 and at most 1000000");
    }
    if opts.duration.is_zero() || opts.duration > Duration::from_secs(24 * 3600) {
        bail!("--duration is more than 0 and at most 24h");
    }
    if !(1..=10_000).contains(&opts.concurrency) {
        bail!("--concurrency is 1 to 10000");
    }
    let secret = match &opts.secret {
        Some(s) => Some(Secret::parse(s.trim()).map_err(|e| anyhow::anyhow!("--secret: {e}"))?),
        None => None,
    };
    let template = match &opts.payload {
        Some(p) => Some(std::fs::read(p).map_err(|e| anyhow::anyhow!("reading {}: {e}", p.display()))?),
        None => None,
    };
    let total = (opts.rate * opts.duration.as_secs_f64()).ceil().max(1.0) as u64;
    // Every latency is kept (8 bytes each) for exact percentiles.
    if total > MAX_REQUESTS {
        bail!("--rate × --duration is {total} requests; at most {MAX_REQUESTS} in one run");
    }
    let client = reqwest::Client::builder()
        .timeout(opts.timeout)
        .pool_max_idle_per_host(opts.concurrency)
        .user_agent(concat!("hookd-loadtest/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let bar = if opts.json { ProgressBar::hidden() } else { ProgressBar::new(total) };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {per_sec} eta {eta} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let gate = Arc::new(Semaphore::new(opts.concurrency));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Outcome>();
    let started = Instant::now();
    let gap = Duration::from_secs_f64(1.0 / opts.rate);
    let secret = Arc::new(secret);
    let sender = {
        let (client, url, gate, secret) = (client.clone(), url.clone(), gate.clone(), secret.clone());
        tokio::spawn(async move {
            for i in 0..total {
                let due = started + gap.mul_f64(i as f64);
                tokio::time::sleep_until(due.into()).await;
                let Ok(permit) = gate.clone().acquire_owned().await else { return };
                let body = match &template {
                    Some(b) => b.clone(),
                    None => json!({ "type": "loadtest.ping", "timestamp": hookd_core::timefmt::now_millis(), "data": { "seq": i } })
                        .to_string()
                        .into_bytes(),
                };
                let mut req = client.post(url.clone()).header("content-type", "application/json");
                if let Some(secret) = secret.as_ref() {
                    let id = format!("msg_loadtest{i}");
                    let ts = hookd_core::timefmt::now_millis() / 1000;
                    req = req
                        .header("webhook-id", &id)
                        .header("webhook-timestamp", ts.to_string())
                        .header("webhook-signature", secret.sign(&id, ts, &body));
                }
                let tx = tx.clone();
                tokio::spawn(async move {
                    let outcome = match req.body(body).send().await {
                        Ok(resp) => {
                            let status = resp.status().as_u16();
                            // The answer counts once its body is read.
                            let _ = resp.bytes().await;
                            Outcome::Status(status, due.elapsed())
                        }
                        Err(e) if e.is_timeout() => Outcome::Timeout,
                        Err(e) => Outcome::Error(root_cause(&e)),
                    };
                    drop(permit);
                    let _ = tx.send(outcome);
                });
            }
        })
    };
    let mut latencies = Vec::with_capacity(total as usize);
    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    let (mut timeouts, mut errors) = (0u64, BTreeMap::<String, u64>::new());
    for _ in 0..total {
        let Some(outcome) = rx.recv().await else { break };
        match outcome {
            Outcome::Status(s, d) => {
                *statuses.entry(s).or_default() += 1;
                latencies.push(d);
            }
            Outcome::Timeout => timeouts += 1,
            Outcome::Error(e) => *errors.entry(e).or_default() += 1,
        }
        bar.inc(1);
    }
    sender.await?;
    bar.finish_and_clear();
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let ok: u64 = statuses.iter().filter(|(s, _)| (200..300).contains(*s)).map(|(_, n)| n).sum();
    let sent = latencies.len() as u64 + timeouts + errors.values().sum::<u64>();
    let failed = sent - ok;
    let ms = |d: Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
    let pcts = [("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("p99.9", 0.999)];
    if opts.json {
        // No answered request, no latency (null rather than 0).
        let answered = !latencies.is_empty();
        let mut latency = serde_json::Map::new();
        for (name, p) in pcts {
            latency.insert(name.into(), json!(answered.then(|| ms(percentile(&latencies, p)))));
        }
        latency.insert("max".into(), json!(latencies.last().map(|d| ms(*d))));
        output::print_json(&json!({
            "url": opts.url, "requests": sent, "seconds": elapsed, "rate": sent as f64 / elapsed,
            "targetRate": opts.rate, "latencyMs": latency,
            "statusCodes": statuses.iter().map(|(s, n)| (s.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
            "timeouts": timeouts, "errors": errors, "errorRate": failed as f64 / sent.max(1) as f64,
        }));
        return Ok(());
    }
    let colour = output::colour();
    println!(
        "{sent} requests in {elapsed:.1}s ({:.1}/s of {} asked), {:.2}% failed",
        sent as f64 / elapsed,
        opts.rate,
        100.0 * failed as f64 / sent.max(1) as f64
    );
    let mut rows: Vec<Vec<Cell>> = pcts
        .iter()
        .map(|(n, p)| vec![Cell::plain(*n), Cell::plain(format!("{:.2}", ms(percentile(&latencies, *p))))])
        .collect();
    rows.push(vec![
        Cell::plain("max"),
        Cell::plain(format!("{:.2}", ms(latencies.last().copied().unwrap_or_default()))),
    ]);
    print!("\n{}", output::table(&["latency", "ms"], rows, colour));
    let mut rows: Vec<Vec<Cell>> =
        statuses.iter().map(|(s, n)| vec![Cell::status(Some(*s as i64)), Cell::plain(n.to_string())]).collect();
    if timeouts > 0 {
        rows.push(vec![Cell::styled("timeout", output::Style::Bad), Cell::plain(timeouts.to_string())]);
    }
    for (e, n) in &errors {
        rows.push(vec![Cell::styled(e.clone(), output::Style::Bad), Cell::plain(n.to_string())]);
    }
    print!("\n{}", output::table(&["status", "count"], rows, colour));
    Ok(())
}
