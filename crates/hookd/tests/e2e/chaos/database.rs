//! The database slow, and the database restarted, under load: acknowledged
//! means committed (every 2xx is delivered), and while the database is down
//! the API answers 503 with `Retry-After`.

use std::time::{Duration, Instant};

use super::harness::{drained_after, node, pg_addr, settle, setup, ChaosSink, FaultProxy, Link, Load};
use super::{size, Report};
use crate::postgres::{shared_url, PrivatePostgres, TestDatabase};
use crate::support::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_database_delays_but_loses_nothing() {
    let Some(admin) = shared_url() else { return };
    let db = TestDatabase::create(&admin);
    let sink = ChaosSink::start(2).await;
    let proxy = FaultProxy::start(pg_addr(&db.url)).await;
    let mut nodes = Vec::new();
    for slot in 0..2 {
        nodes.push(TestServer::spawn_with(node(Some(&proxy.url(&db.url)), &sink, slot, "2s", &[])).await);
    }
    let (app, paths) = setup(&nodes[0], &sink, 2).await;
    let load = Load::start(nodes.iter().map(|n| n.base.clone()).collect(), &app, size(8, 16), 10.0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let delay = Duration::from_millis(size(50, 200));
    proxy.set(Link::Slow(delay));
    tokio::time::sleep(Duration::from_secs(size(5, 30))).await;
    proxy.set(Link::Up);
    let healed = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (acked, client) = load.stop().await;
    let tally = settle(&sink, &acked, &paths, paths.last().map(String::as_str), Duration::from_secs(30)).await;
    let report = Report {
        scenario: "slow database: every packet to PostgreSQL delayed",
        store: "postgres",
        tally: &tally,
        client: &client,
        recovery: drained_after(healed, &acked, &sink.arrivals(), &paths),
        fenced: None,
        notes: format!("{} ms each way for {} s, two nodes", delay.as_millis(), size(5, 30)),
    };
    report.publish();
    report.assert_held();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_answers_503_with_retry_after_and_loses_nothing() {
    let Some(pg) = PrivatePostgres::start() else { return };
    let url = pg.url();
    let sink = ChaosSink::start(2).await;
    let mut nodes = Vec::new();
    for slot in 0..2 {
        nodes.push(TestServer::spawn_with(node(Some(&url), &sink, slot, "2s", &[])).await);
    }
    let (app, paths) = setup(&nodes[0], &sink, 2).await;
    let load = Load::start(nodes.iter().map(|n| n.base.clone()).collect(), &app, size(8, 16), 10.0);
    let restarts = size(1, 5);
    let mut healed = Instant::now();
    for _ in 0..restarts {
        tokio::time::sleep(Duration::from_secs(2)).await;
        pg.down();
        // Health says so, and liveness (which never asks the database) does not.
        let (status, health) = nodes[0].get("/api/v1/health").await;
        assert_eq!((status, &health["database"]["status"]), (503, &serde_json::json!("down")), "{health}");
        assert_eq!(nodes[0].get("/livez").await.0, 200);
        tokio::time::sleep(Duration::from_secs(3)).await;
        pg.up();
        healed = Instant::now();
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (acked, client) = load.stop().await;
    let tally = settle(&sink, &acked, &paths, paths.last().map(String::as_str), Duration::from_secs(30)).await;
    let report = Report {
        scenario: "database restart: PostgreSQL stopped for 3 s under load",
        store: "postgres",
        tally: &tally,
        client: &client,
        recovery: drained_after(healed, &acked, &sink.arrivals(), &paths),
        fenced: None,
        notes: format!("{restarts} restart(s), two nodes"),
    };
    report.publish();
    report.assert_held();
    assert!(client.statuses.get(&503).copied().unwrap_or(0) > 0, "the outage was seen: {:?}", client.statuses);
}
