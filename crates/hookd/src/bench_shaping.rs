//! `hookd bench-shaping`: what shaping costs per message, in process: a
//! filter evaluated at fan-out (on a payload parsed once), a template
//! rendered at send time (payload parsed, rendered, output checked), and a
//! JavaScript transformation run in a fresh sandbox.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hookd_core::filter::{Filter, FilterInput};
use hookd_shaping::template::{EndpointVars, Format, Limits, RenderContext, Template};
use hookd_shaping::transform::{self, WebhookIn};

#[derive(clap::Args, Debug)]
pub struct ShapingBenchOptions {
    /// Evaluations of the filter and renders of the template timed.
    #[arg(short = 'n', long, default_value_t = 200_000)]
    iterations: usize,
    /// Runs of the transformation timed (each a fresh sandbox).
    #[arg(long, default_value_t = 2_000)]
    transform_runs: usize,
}

const PAYLOAD: &str = r#"{"id":"o_1042","customer":{"name":"Ada Lovelace","tier":"gold"},"amount":129.5,"currency":"EUR","items":[{"sku":"A-1","qty":2},{"sku":"B-7","qty":1}]}"#;
const FILTER: &str = r#"eventType eq "order.paid" and (/amount gt 100 or /customer/tier in ["gold", "vip"])"#;
const TEMPLATE: &str = r#"{"text": {{ "New order " ~ payload.id }}, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": {{ "*" ~ payload.customer.name ~ "* paid " ~ payload.amount ~ " " ~ payload.currency }}}}]}"#;
const TRANSFORMATION: &str =
    "function handler(webhook) { webhook.payload = { order: webhook.payload.id, total: webhook.payload.amount }; return webhook; }";

pub fn run(opts: ShapingBenchOptions) -> anyhow::Result<()> {
    let n = opts.iterations.max(1);
    let payload: serde_json::Value = serde_json::from_str(PAYLOAD)?;

    let filter = Filter::parse(FILTER).map_err(|e| anyhow::anyhow!("{e}"))?;
    let input = FilterInput {
        event_type: "order.paid",
        event_id: None,
        msg_id: "msg_1",
        channels: None,
        tags: None,
        payload: Some(&payload),
    };
    let mut passed = 0usize;
    let filter_time = timed(n, || passed += usize::from(filter.matches(&input)));
    anyhow::ensure!(passed == n, "the filter should pass the sample");
    let parse_time = timed(n, || {
        let v: serde_json::Value = serde_json::from_str(PAYLOAD).expect("valid");
        std::hint::black_box(v);
    });

    let template = Template::compile(TEMPLATE, Format::Json).map_err(|e| anyhow::anyhow!("{e}"))?;
    let metadata = BTreeMap::new();
    let limits = Limits::default();
    let mut bytes = 0usize;
    let render_time = timed(n, || {
        let payload: serde_json::Value = serde_json::from_str(PAYLOAD).expect("valid");
        let ctx = RenderContext {
            payload: &payload,
            event_type: "order.paid",
            msg_id: "msg_1",
            event_id: None,
            timestamp: 1_700_000_000,
            channels: None,
            endpoint: EndpointVars { id: "ep_1", uid: None, url: "https://example.com/hook", metadata: &metadata },
        };
        bytes += template.render(&ctx, &limits).expect("renders").len();
    });

    let runs = opts.transform_runs.max(1);
    let webhook = WebhookIn {
        method: "POST".into(),
        url: "https://example.com/hook".into(),
        event_type: "order.paid".into(),
        msg_id: "msg_1".into(),
        channels: None,
        payload: payload.clone(),
        headers: BTreeMap::new(),
        variables: BTreeMap::new(),
    };
    let transform_limits = transform::Limits::default();
    let transform_time = timed(runs, || {
        transform::run(TRANSFORMATION, &webhook, &transform_limits).expect("runs");
    });

    println!("shaping cost per message ({n} iterations; transformation {runs} runs)");
    println!("  filter          {:>8.3} µs  {FILTER}", micros(filter_time, n));
    println!(
        "  payload parse   {:>8.3} µs  ({} bytes, once per message when a filter reads it)",
        micros(parse_time, n),
        PAYLOAD.len()
    );
    println!(
        "  template        {:>8.3} µs  parse + render + JSON check, {} bytes out",
        micros(render_time, n),
        bytes / n
    );
    println!("  transformation  {:>8.3} µs  a fresh QuickJS sandbox per run", micros(transform_time, runs));
    Ok(())
}

fn timed(n: usize, mut f: impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..n {
        f();
    }
    start.elapsed()
}

fn micros(d: Duration, n: usize) -> f64 {
    d.as_secs_f64() * 1e6 / n as f64
}
