//! `hookd simulate`: sends events of one type to an application through the
//! API, as the product would: payloads generated from the event type's schema
//! (or read from a file), at a steady rate, with a progress bar.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::client::{output, urlencode, ConnOptions};

/// Most messages one run sends.
const MAX_COUNT: u64 = 10_000_000;
/// Most requests in flight at once.
const MAX_IN_FLIGHT: usize = 64;

#[derive(Debug, Args)]
pub struct SimulateOptions {
    #[command(flatten)]
    pub conn: ConnOptions,
    /// The application (id or uid).
    #[arg(long)]
    pub app: String,
    /// The event type to send.
    #[arg(long)]
    pub event_type: String,
    /// How many messages.
    #[arg(long, default_value_t = 10)]
    pub count: u64,
    /// Messages per second.
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// A JSON payload file [default: generated from the event type's schema].
    #[arg(long)]
    pub payload: Option<std::path::PathBuf>,
    /// Print a JSON summary (with the message ids).
    #[arg(long)]
    pub json: bool,
}

/// The payload to send: the file's, or one generated from the event type's
/// latest schema (an empty object when it has none).
async fn payload(opts: &SimulateOptions, api: &crate::client::Api) -> anyhow::Result<(Value, &'static str)> {
    if let Some(path) = &opts.payload {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let value = serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
        return Ok((value, "file"));
    }
    let (status, et) =
        api.call(Method::GET, &format!("/api/v1/event-type/{}", urlencode(&opts.event_type)), None).await?;
    match status {
        200 => Ok(match hookd_core::schema::latest(&et["schemas"]) {
            Some(schema) => (hookd_core::schema::example(schema), "schema"),
            None => (json!({}), "none"),
        }),
        404 => bail!(
            "no event type `{}`; create it (`hookd event-type create {} --schema FILE`) or give --payload FILE",
            opts.event_type,
            opts.event_type
        ),
        _ => bail!("reading the event type: {status} {et}"),
    }
}

pub async fn run(opts: SimulateOptions) -> anyhow::Result<()> {
    if opts.count == 0 || opts.count > MAX_COUNT {
        bail!("--count is 1 to {MAX_COUNT}");
    }
    if !(opts.rate.is_finite() && opts.rate > 0.0 && opts.rate <= 100_000.0) {
        bail!("--rate is messages per second, more than 0 and at most 100000");
    }
    let api = opts.conn.resolve()?;
    let (payload, from) = payload(&opts, &api).await?;
    if !opts.json {
        eprintln!(
            "sending {} × {} to {} at {}/s (payload from {from})",
            opts.count, opts.event_type, opts.app, opts.rate
        );
    }
    let bar = if opts.json { ProgressBar::hidden() } else { ProgressBar::new(opts.count) };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {per_sec} eta {eta} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let path = format!("/api/v1/app/{}/msg", urlencode(&opts.app));
    let body = Arc::new(json!({ "eventType": opts.event_type, "payload": payload }));
    let gate = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut tasks = tokio::task::JoinSet::new();
    let started = Instant::now();
    let gap = Duration::from_secs_f64(1.0 / opts.rate);
    let mut sent = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    for i in 0..opts.count {
        tokio::time::sleep_until((started + gap.mul_f64(i as f64)).into()).await;
        let permit = gate.clone().acquire_owned().await?;
        let (api, path, body) = (api.clone(), path.clone(), body.clone());
        tasks.spawn(async move {
            let r = api.ok(Method::POST, &path, Some(&body)).await;
            drop(permit);
            r
        });
        while let Some(done) = tasks.try_join_next() {
            record(done?, &mut sent, &mut failures, &bar);
        }
        if failures.len() > 10 && sent.is_empty() {
            break;
        }
    }
    while let Some(done) = tasks.join_next().await {
        record(done?, &mut sent, &mut failures, &bar);
    }
    bar.finish_and_clear();
    let elapsed = started.elapsed().as_secs_f64();
    if opts.json {
        output::print_json(&json!({
            "sent": sent.len(), "failed": failures.len(), "seconds": elapsed,
            "messageIds": sent, "errors": failures.iter().take(10).collect::<Vec<_>>(),
        }));
    } else {
        println!(
            "sent {} messages in {elapsed:.1}s ({:.1}/s), {} failed",
            sent.len(),
            sent.len() as f64 / elapsed,
            failures.len()
        );
        if let Some(first) = failures.first() {
            println!("first failure: {first}");
        }
    }
    if !failures.is_empty() {
        bail!("{} of {} messages were not accepted", failures.len(), failures.len() + sent.len());
    }
    Ok(())
}

fn record(done: anyhow::Result<Value>, sent: &mut Vec<String>, failures: &mut Vec<String>, bar: &ProgressBar) {
    match done {
        Ok(msg) => sent.push(msg["id"].as_str().unwrap_or_default().to_string()),
        Err(e) => {
            if failures.is_empty() {
                bar.set_message(format!("failing: {e}"));
            }
            failures.push(format!("{e:#}"));
        }
    }
    bar.inc(1);
}
