//! Many nodes on one PostgreSQL sharing the work (the faults are in `chaos`).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::postgres::{shared_url, TestDatabase};
use crate::support::{ServerOptions, Sink, TestServer};

fn node_options(database_url: &str, role: &str, extra: &[&str]) -> ServerOptions {
    let mut args =
        vec!["--database-url", database_url, "--role", role, "--lease-duration", "2s", "--poll-interval", "200ms"];
    args.extend_from_slice(extra);
    ServerOptions { extra_args: args.into_iter().map(String::from).collect(), ..Default::default() }
}

/// Acknowledged message ids, with the node that acknowledged each.
type Acked = Arc<Mutex<HashMap<String, usize>>>;

/// Sends `total` messages round-robin over `bases` from `concurrency` tasks;
/// returns what was acknowledged (202) and how many requests failed.
async fn send_load(bases: Vec<String>, app: String, total: usize, concurrency: usize, acked: Acked) -> usize {
    let client = reqwest::Client::new();
    let next = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, next, failed, acked, bases) =
            (client.clone(), next.clone(), failed.clone(), acked.clone(), bases.clone());
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return;
                }
                let node = i % bases.len();
                let resp = client
                    .post(format!("{}/api/v1/app/{app}/msg", bases[node]))
                    .bearer_auth(crate::support::TOKEN)
                    .timeout(Duration::from_secs(10))
                    .json(&json!({"eventType": "load.tick", "payload": {"seq": i}}))
                    .send()
                    .await;
                match resp {
                    Ok(r) if r.status() == 202 => {
                        let body: serde_json::Value = r.json().await.unwrap();
                        acked.lock().unwrap().insert(body["id"].as_str().unwrap().to_string(), node);
                    }
                    Ok(r) => {
                        assert!(r.status() == 503, "a failed send must be 503, got {}", r.status());
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    failed.load(Ordering::Relaxed)
}

/// Waits until every acknowledged id reached the sink; returns the ids missing.
/// Waits until every acknowledged message reached the sink, and returns those
/// that did not. It gives up once nothing new arrived for `stall` (a loaded CI
/// machine delivers slowly, but it delivers), and after five minutes at most.
async fn wait_all_delivered(sink: &Sink, acked: &HashMap<String, usize>, stall: Duration) -> Vec<String> {
    let give_up = Instant::now() + Duration::from_secs(300);
    let (mut arrived, mut progress_at) = (0, Instant::now());
    loop {
        let received = sink.received();
        let seen: HashSet<String> = received.iter().map(|r| r.header("webhook-id").to_string()).collect();
        let missing: Vec<String> = acked.keys().filter(|id| !seen.contains(*id)).cloned().collect();
        if received.len() > arrived {
            (arrived, progress_at) = (received.len(), Instant::now());
        }
        if missing.is_empty() || progress_at.elapsed() > stall || Instant::now() > give_up {
            return missing;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn duplicates(sink: &Sink) -> usize {
    let received = sink.received();
    let unique: HashSet<String> = received.iter().map(|r| format!("{} {}", r.path, r.header("webhook-id"))).collect();
    received.len() - unique.len()
}

async fn setup_app(node: &TestServer, sink: &Sink, endpoints: usize) -> String {
    let app = node.create_app("Cluster").await;
    for i in 0..endpoints {
        node.create_endpoint(&app, json!({"url": sink.url(&format!("/ep{i}"))})).await;
    }
    app
}

#[tokio::test]
async fn three_nodes_deliver_ten_thousand_messages_exactly_once() {
    let Some(admin) = shared_url() else { return };
    let db = TestDatabase::create(&admin);
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(TestServer::spawn_with(node_options(&db.url, "all", &[])).await);
    }
    let sink = Sink::start().await;
    let app = setup_app(&nodes[0], &sink, 4).await;
    let acked: Acked = Arc::default();
    let failed =
        send_load(nodes.iter().map(|n| n.base.clone()).collect(), app.clone(), 10_000, 24, acked.clone()).await;
    assert_eq!(failed, 0);
    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len(), 10_000);
    let missing = wait_all_delivered(&sink, &acked, Duration::from_secs(120)).await;
    assert!(missing.is_empty(), "{} messages not delivered", missing.len());
    // Each message went to each of the 4 endpoints exactly once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.count(), 40_000);
    assert_eq!(duplicates(&sink), 0);
}

#[tokio::test]
async fn api_nodes_store_and_worker_nodes_deliver() {
    let Some(admin) = shared_url() else { return };
    let db = TestDatabase::create(&admin);
    let api = TestServer::spawn_with(node_options(&db.url, "api", &[])).await;
    let worker = TestServer::spawn_with(node_options(&db.url, "worker", &[])).await;
    let sink = Sink::start().await;
    let app = setup_app(&api, &sink, 1).await;
    // The worker serves health and metrics only.
    assert_eq!(worker.get("/api/v1/health").await.0, 200);
    assert_eq!(worker.get("/livez").await.0, 200);
    assert_eq!(worker.get(&format!("/api/v1/app/{app}")).await.0, 404);
    let started = Instant::now();
    let msg = api.send_message(&app, "a.b", json!({"x": 1})).await;
    let got = sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header("webhook-id"), msg["id"].as_str().unwrap());
    // Woken by NOTIFY, not by the 200ms poll alone: well under a second.
    assert!(started.elapsed() < Duration::from_secs(1), "took {:?}", started.elapsed());
}
