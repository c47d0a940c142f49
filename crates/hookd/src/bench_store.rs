//! Benchmarks of the store's queue, without HTTP: `hookd bench-claim` (what a
//! claim costs with nothing, or 100,000 deliveries, in flight) and `hookd
//! bench-retention` (a soak of expired messages swept, the space freed, and how
//! enqueues fare meanwhile). Measurements, not tests: they print figures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use hookd_core::id::{new_id, IdPrefix};
use hookd_core::timefmt::now_millis;
use hookd_core::{AttemptTrigger, MessageStatus, Secret};
use hookd_delivery::retention::{sweep, RetentionConfig};
use hookd_store::postgres::PostgresStore;
use hookd_store::sqlite::SqliteStore;
use hookd_store::*;

#[derive(Debug, Args)]
pub struct ClaimBenchOptions {
    /// Database to use, `postgres://…` or `sqlite:///path` (it must be one you can
    /// discard); default: a temporary SQLite store.
    #[arg(long)]
    database_url: Option<String>,
    /// Deliveries held in flight (leased by another node) for the second measurement.
    #[arg(long, default_value_t = 100_000)]
    in_flight: usize,
    /// Claims timed per measurement.
    #[arg(long, default_value_t = 200)]
    rounds: usize,
}

#[derive(Debug, Args)]
pub struct RetentionBenchOptions {
    /// Database to use, `postgres://…` or `sqlite:///path` (it must be one you can
    /// discard); default: a temporary SQLite store.
    #[arg(long)]
    database_url: Option<String>,
    /// Expired messages to sweep, each with one delivered attempt.
    #[arg(long, default_value_t = 1_000_000)]
    messages: usize,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 512)]
    payload_bytes: usize,
}

struct Opened {
    store: Arc<dyn Store>,
    sqlite_file: Option<std::path::PathBuf>,
    sqlite: Option<Arc<SqliteStore>>,
    _dir: Option<tempfile::TempDir>,
    postgres: Option<Arc<PostgresStore>>,
}

async fn open(database_url: Option<&str>) -> anyhow::Result<Opened> {
    match database_url {
        Some(url) if url.starts_with("sqlite://") => {
            let path = std::path::PathBuf::from(&url["sqlite://".len()..]);
            let store = Arc::new(SqliteStore::open(&path)?);
            Ok(Opened {
                store: store.clone(),
                sqlite_file: Some(path),
                sqlite: Some(store),
                _dir: None,
                postgres: None,
            })
        }
        Some(url) => {
            let pg = Arc::new(PostgresStore::connect(url).await.context("cannot connect to PostgreSQL")?);
            Ok(Opened { store: pg.clone(), sqlite_file: None, sqlite: None, _dir: None, postgres: Some(pg) })
        }
        None => {
            let dir = tempfile::tempdir()?;
            let store = Arc::new(SqliteStore::open_dir(dir.path())?);
            let file = Some(dir.path().join("hookd.db"));
            Ok(Opened { store: store.clone(), sqlite_file: file, sqlite: Some(store), _dir: Some(dir), postgres: None })
        }
    }
}

async fn app_with_endpoints(store: &dyn Store, n: usize) -> anyhow::Result<(String, String, Vec<Endpoint>)> {
    let org = store.default_org().await?;
    let t = now_millis();
    let app = store
        .create_app(
            Application {
                org_id: org.clone(),
                id: new_id(IdPrefix::Application),
                uid: None,
                name: "bench".into(),
                rate_limit: None,
                metadata: Default::default(),
                created_at: t,
                updated_at: t,
            },
            None,
        )
        .await?;
    let mut eps = Vec::new();
    for i in 0..n {
        let ep = Endpoint {
            org_id: org.clone(),
            app_id: app.id.clone(),
            id: new_id(IdPrefix::Endpoint),
            uid: None,
            url: "https://example.com/hook".into(),
            description: String::new(),
            version: 1,
            disabled: false,
            event_types: Some(vec![format!("e{i}")]),
            channels: None,
            rate_limit: None,
            metadata: Default::default(),
            headers: Default::default(),
            secret: Secret::generate(),
            retired_secrets: Vec::new(),
            created_at: t,
            updated_at: t,
            revision: 0,
            control: Default::default(),
            auth: Default::default(),
            health: None,
        };
        eps.push(store.create_endpoint(ep, None).await?);
    }
    Ok((org, app.id, eps))
}

fn message(org: &str, app: &str, event_type: &str, payload: &Arc<[u8]>, expires_at: i64) -> Message {
    Message {
        org_id: org.into(),
        app_id: app.into(),
        id: new_id(IdPrefix::Message),
        event_id: None,
        event_type: event_type.into(),
        channels: None,
        tags: None,
        payload: Some(payload.clone()),
        created_at: now_millis(),
        expires_at,
        deliver_at: None,
    }
}

/// Enqueues `n` messages from 64 tasks at once; returns the leased jobs.
async fn enqueue_many(
    store: &Arc<dyn Store>,
    n: usize,
    make: impl Fn() -> Message + Send + Sync + 'static,
    lease: Option<Lease>,
) -> anyhow::Result<Vec<DeliveryJob>> {
    let make = Arc::new(make);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let (store, make, next, lease) = (store.clone(), make.clone(), next.clone(), lease.clone());
        tasks.push(tokio::spawn(async move {
            let mut jobs = Vec::new();
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < n {
                jobs.extend(store.enqueue(make(), None, lease.clone(), None).await?);
            }
            Ok::<_, StoreError>(jobs)
        }));
    }
    let mut jobs = Vec::new();
    for t in tasks {
        jobs.extend(t.await??);
    }
    Ok(jobs)
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn summary(mut times: Vec<Duration>) -> String {
    times.sort();
    let at = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
    format!("p50 {:.2} ms  p99 {:.2} ms", millis(at(0.5)), millis(at(0.99)))
}

/// Times claims that find nothing due, and claims of 500 due deliveries.
async fn time_claims(store: &Arc<dyn Store>, org: &str, app: &str, rounds: usize) -> anyhow::Result<(String, String)> {
    let claimer = Lease { owner: "bench-claimer".into(), duration_ms: 3_600_000 };
    let mut idle = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t0 = Instant::now();
        let jobs = store.claim_due(&claimer, 500, &[]).await?;
        idle.push(t0.elapsed());
        anyhow::ensure!(jobs.is_empty(), "nothing should be due");
    }
    let payload: Arc<[u8]> = Arc::from(&b"{\"bench\":true}"[..]);
    let mut busy = Vec::new();
    for _ in 0..(rounds / 10).max(5) {
        let (o, a, p) = (org.to_string(), app.to_string(), payload.clone());
        enqueue_many(store, 500, move || message(&o, &a, "e1", &p, i64::MAX), None).await?;
        let t0 = Instant::now();
        let jobs = store.claim_due(&claimer, 500, &[]).await?;
        busy.push(t0.elapsed());
        anyhow::ensure!(jobs.len() == 500, "500 due deliveries claimed, got {}", jobs.len());
        let done: Vec<Outcome> = jobs
            .iter()
            .map(|j| Outcome {
                delivery_id: j.delivery_id,
                lease_token: j.lease_token,
                attempt: None,
                next: NextState::Succeeded,
                attempts: 1,
            })
            .collect();
        store.record_outcomes(Arc::from(done)).await?;
    }
    Ok((summary(idle), summary(busy)))
}

pub async fn claim(opts: ClaimBenchOptions) -> anyhow::Result<()> {
    let opened = open(opts.database_url.as_deref()).await?;
    let store = opened.store.clone();
    let (org, app, _eps) = app_with_endpoints(&*store, 2).await?;
    let kind = if opened.postgres.is_some() { "PostgreSQL" } else { "embedded SQLite" };
    println!("hookd bench-claim ({kind}): claims of up to 500 deliveries, {} rounds", opts.rounds);
    let (idle, busy) = time_claims(&store, &org, &app, opts.rounds).await?;
    println!("  0 in flight:        nothing due {idle}   |   500 due {busy}");

    // Deliveries in flight: leased (for an hour) by another node, to another endpoint.
    let holder = Lease { owner: "bench-holder".into(), duration_ms: 3_600_000 };
    let payload: Arc<[u8]> = Arc::from(&b"{\"held\":true}"[..]);
    let started = Instant::now();
    let (o, a) = (org.clone(), app.clone());
    let held =
        enqueue_many(&store, opts.in_flight, move || message(&o, &a, "e0", &payload, i64::MAX), Some(holder)).await?;
    anyhow::ensure!(held.len() == opts.in_flight, "every delivery leased to the holder");
    println!("  (put {} deliveries in flight in {:.1}s)", opts.in_flight, started.elapsed().as_secs_f64());
    let (idle, busy) = time_claims(&store, &org, &app, opts.rounds).await?;
    println!("  {} in flight:  nothing due {idle}   |   500 due {busy}", opts.in_flight);
    Ok(())
}

fn file_bytes(path: &std::path::Path) -> (u64, u64) {
    let size = |p: std::path::PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    (size(path.to_path_buf()), size(path.with_extension("db-wal")))
}

pub async fn retention(opts: RetentionBenchOptions) -> anyhow::Result<()> {
    let opened = open(opts.database_url.as_deref()).await?;
    let store = opened.store.clone();
    let (org, app, eps) = app_with_endpoints(&*store, 1).await?;
    let kind = if opened.postgres.is_some() { "PostgreSQL" } else { "embedded SQLite" };
    println!(
        "hookd bench-retention ({kind}): {} expired messages of {} bytes, each with one delivered attempt",
        opts.messages, opts.payload_bytes
    );
    let payload: Arc<[u8]> =
        Arc::from(format!("{{\"filler\":\"{}\"}}", "x".repeat(opts.payload_bytes.saturating_sub(13))).into_bytes());
    let lease = Lease { owner: "bench".into(), duration_ms: 3_600_000 };
    let started = Instant::now();
    let mut seeded = 0;
    while seeded < opts.messages {
        let chunk = (opts.messages - seeded).min(20_000);
        let (o, a, p) = (org.clone(), app.clone(), payload.clone());
        let jobs =
            enqueue_many(&store, chunk, move || message(&o, &a, "e0", &p, now_millis() - 1), Some(lease.clone()))
                .await?;
        let response = "r".repeat(256);
        // What a delivery stores: its request's and response's headers.
        let headers = hookd_store::AttemptHeaders {
            sent: Some(format!(
                r#"{{"content-type":"application/json","user-agent":"hookd","webhook-id":"msg_x","webhook-timestamp":"1","webhook-signature":"v1,{sig}","svix-id":"msg_x","svix-timestamp":"1","svix-signature":"v1,{sig}","content-length":"{}"}}"#,
                payload.len(),
                sig = "s".repeat(44)
            )),
            received: Some(
                r#"[["content-type","text/plain"],["content-length","2"],["date","Sat, 05 Dec 2026 08:00:00 GMT"]]"#
                    .into(),
            ),
        };
        let outcomes: Vec<Outcome> = jobs
            .iter()
            .map(|j| Outcome {
                delivery_id: j.delivery_id,
                lease_token: j.lease_token,
                attempt: Some(Attempt {
                    id: new_id(IdPrefix::Attempt),
                    org_id: j.org_id.clone(),
                    app_id: j.app_id.clone(),
                    msg_id: j.msg_id.clone(),
                    endpoint_id: eps[0].id.clone(),
                    url: eps[0].url.clone(),
                    status: MessageStatus::Success,
                    response_status_code: 200,
                    response: response.clone(),
                    response_duration_ms: 3,
                    trigger: AttemptTrigger::Scheduled,
                    created_at: now_millis(),
                    headers: Some(headers.clone()),
                    facts: Some(hookd_store::AttemptFacts {
                        event_type: "bench.event".into(),
                        class: hookd_store::AttemptClass::Success,
                        bytes: 256,
                        delivered_after_ms: Some(5),
                    }),
                }),
                next: NextState::Succeeded,
                attempts: 1,
            })
            .collect();
        for batch in outcomes.chunks(1000) {
            store.record_outcomes(Arc::from(batch.to_vec())).await?;
        }
        seeded += chunk;
    }
    println!("  seeded in {:.1}s", started.elapsed().as_secs_f64());
    let size_before = sizes(&opened).await?;
    println!("  before the sweep: {size_before}");

    // A light load of enqueues meanwhile, timed, to see the sweep does not stall them.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let probe = {
        let (store, o, a, p, stop) = (store.clone(), org.clone(), app.clone(), payload.clone(), stop.clone());
        tokio::spawn(async move {
            let mut times = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let t0 = Instant::now();
                if store.enqueue(message(&o, &a, "none", &p, i64::MAX), None, None, None).await.is_err() {
                    break;
                }
                times.push(t0.elapsed());
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            times
        })
    };
    let quiet = {
        let mut times = Vec::new();
        for _ in 0..200 {
            let t0 = Instant::now();
            store.enqueue(message(&org, &app, "none", &payload, i64::MAX), None, None, None).await?;
            times.push(t0.elapsed());
        }
        times
    };
    // First the payloads expire (the messages stay), then the messages go whole.
    let started = Instant::now();
    let swept = sweep(&*store, &RetentionConfig::default()).await?;
    let took = started.elapsed();
    let p = swept.pruned;
    println!(
        "  payloads expired in {:.1}s: {} expunged, {} response bodies cleared, {} pages given back",
        took.as_secs_f64(),
        p.messages,
        p.attempts,
        swept.pages_freed
    );
    println!("  after:            {}", sizes(&opened).await?);
    let started = Instant::now();
    let everything = RetentionConfig { message_retention: Duration::ZERO, ..RetentionConfig::default() };
    let swept = sweep(&*store, &everything).await?;
    let took = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let during = probe.await.unwrap_or_default();
    println!(
        "  messages expired in {:.1}s: {} deleted with their deliveries and attempts, {} pages given back",
        took.as_secs_f64(),
        swept.pruned.deleted,
        swept.pages_freed
    );
    println!("  after:            {}", sizes(&opened).await?);
    println!("  an enqueue alone: {}   |   during the sweeps: {}", summary(quiet), summary_or_none(during));
    Ok(())
}

fn summary_or_none(times: Vec<Duration>) -> String {
    if times.is_empty() {
        "no samples".into()
    } else {
        summary(times)
    }
}

/// Sizes on disk, SQLite's after a checkpoint (the file shrinks only then).
async fn sizes(opened: &Opened) -> anyhow::Result<String> {
    if let (Some(path), Some(sqlite)) = (&opened.sqlite_file, &opened.sqlite) {
        sqlite.checkpoint().await?;
        let (db, wal) = file_bytes(path);
        return Ok(format!("database file {:.1} MB, WAL {:.1} MB", db as f64 / 1e6, wal as f64 / 1e6));
    }
    let pg = opened.postgres.as_ref().context("a store")?;
    let tables = pg.table_sizes().await?;
    Ok(tables.iter().map(|(t, b)| format!("{t} {:.1} MB", *b as f64 / 1e6)).collect::<Vec<_>>().join(", "))
}
