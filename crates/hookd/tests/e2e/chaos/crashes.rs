//! Crash loops under load: a node killed with SIGKILL and started again, many
//! times (alone on the embedded store, alone on PostgreSQL, one of three on
//! PostgreSQL); and a node stopped (SIGSTOP) for longer than its lease, as a
//! long pause would, then continued.

use std::time::{Duration, Instant};

use super::harness::{drained_after, explain_missing, node, settle, setup, ChaosSink, Load};
use super::{size, Report};
use crate::postgres::{shared_url, TestDatabase};
use crate::support::{ServerOptions, TestServer};

/// Kills one node `cycles` times (node `cycle % nodes`), restarting it each time.
async fn crash_loop(database_url: Option<&str>, nodes: usize, cycles: usize, scenario: &str, store: &str) {
    let sink = ChaosSink::start(nodes).await;
    let options: Vec<ServerOptions> = (0..nodes).map(|slot| node(database_url, &sink, slot, "1s", &[])).collect();
    let mut servers = Vec::new();
    for opts in &options {
        servers.push(TestServer::spawn_with(opts.clone()).await);
    }
    let (app, paths) = setup(&servers[0], &sink, 2).await;
    let load = Load::start(servers.iter().map(|s| s.base.clone()).collect(), &app, size(8, 16), 20.0);
    let mut healed = Instant::now();
    for cycle in 0..cycles {
        tokio::time::sleep(Duration::from_millis(200 + (cycle as u64 * 37) % 400)).await;
        let i = cycle % nodes;
        servers[i].kill9();
        let _ = servers[i].child.wait().await;
        servers[i] = TestServer::spawn_in(servers[i].data_dir.clone(), options[i].clone()).await;
        load.bases.lock().unwrap()[i] = servers[i].base.clone();
        healed = Instant::now();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (acked, client) = load.stop().await;
    let tally = settle(&sink, &acked, &paths, paths.last().map(String::as_str), Duration::from_secs(30)).await;
    let report = Report {
        scenario,
        store,
        tally: &tally,
        client: &client,
        recovery: drained_after(healed, &acked, &sink.arrivals(), &paths),
        fenced: None,
        notes: format!("{cycles} kill -9 cycles, {nodes} node(s), lease 1 s"),
    };
    report.publish();
    if tally.lost > 0 {
        let why = explain_missing(&servers[0], &app, &acked, &sink.arrivals(), &paths).await;
        panic!("{scenario}: {} lost; {why:#?}", tally.lost);
    }
    report.assert_held();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_loop_of_the_embedded_store() {
    let cycles = size(20, 100);
    crash_loop(None, 1, cycles, "crash loop: kill -9 and restart, embedded store", "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_loop_of_a_single_postgres_node() {
    let Some(admin) = shared_url() else { return };
    let db = TestDatabase::create(&admin);
    let cycles = size(10, 100);
    crash_loop(Some(&db.url), 1, cycles, "crash loop: kill -9 and restart, one node", "postgres").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_loop_of_one_node_of_three() {
    let Some(admin) = shared_url() else { return };
    let db = TestDatabase::create(&admin);
    let cycles = size(9, 100);
    crash_loop(Some(&db.url), 3, cycles, "crash loop: kill -9 one node of three in turn", "postgres").await;
}

fn signal(server: &TestServer, sig: &str) {
    let pid = server.child.id().expect("running").to_string();
    assert!(std::process::Command::new("kill").args([sig, &pid]).status().unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_paused_past_its_lease_sends_nothing_stale_when_it_wakes() {
    let Some(admin) = shared_url() else { return };
    let db = TestDatabase::create(&admin);
    let lease = Duration::from_secs(2);
    let sink = ChaosSink::start(2).await;
    let mut servers = Vec::new();
    for slot in 0..2 {
        servers.push(TestServer::spawn_with(node(Some(&db.url), &sink, slot, "2s", &[])).await);
    }
    let (app, paths) = setup(&servers[0], &sink, 2).await;
    // The first messages go through node 0, which takes the queues as it
    // accepts them and delivers; then the load goes to node 1 (the paused
    // node's API is frozen too).
    let load = Load::start(vec![servers[0].base.clone()], &app, size(8, 16), 10.0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    *load.bases.lock().unwrap() = vec![servers[1].base.clone()];
    let before = sink.arrivals().iter().filter(|a| a.node == 0).count();
    assert!(before > 0, "node 0 was delivering before its pause");
    let pauses = size(1, 5);
    let (mut fenced, mut resumed_at) = (0, Instant::now());
    for _ in 0..pauses {
        tokio::time::sleep(Duration::from_secs(2)).await;
        signal(&servers[0], "-STOP");
        tokio::time::sleep(lease * 3).await;
        signal(&servers[0], "-CONT");
        resumed_at = Instant::now();
        // Requests it had in flight finish now; none may start on a lease it lost.
        tokio::time::sleep(lease).await;
        let window = resumed_at + Duration::from_millis(300)..resumed_at + lease;
        fenced += sink.arrivals().iter().filter(|a| a.node == 0 && window.contains(&a.at)).count();
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (acked, client) = load.stop().await;
    let tally = settle(&sink, &acked, &paths, paths.last().map(String::as_str), Duration::from_secs(30)).await;
    let report = Report {
        scenario: "pause: SIGSTOP of one of two nodes for 3 leases, then SIGCONT",
        store: "postgres",
        tally: &tally,
        client: &client,
        recovery: drained_after(resumed_at, &acked, &sink.arrivals(), &paths),
        fenced: Some(fenced),
        notes: format!("{pauses} pause(s) of 6 s, lease 2 s"),
    };
    report.publish();
    report.assert_held();
}
