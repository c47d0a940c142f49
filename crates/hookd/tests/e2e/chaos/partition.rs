//! A node cut off from PostgreSQL while it still reaches the receivers: its
//! leases lapse, the other node takes its endpoints over, and the cut-off node
//! sends nothing once it can no longer have held a lease (a request it starts
//! must have a renewal within two thirds of the lease behind it).

use std::time::{Duration, Instant};

use super::harness::{drained_after, node, pg_addr, settle, setup, ChaosSink, FaultProxy, Link, Load};
use super::{size, Report};
use crate::postgres::{shared_url, TestDatabase};
use crate::support::TestServer;

const LEASE: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_partitioned_from_postgres_stops_sending_and_another_takes_over() {
    let Some(admin) = shared_url() else { return };
    let db = TestDatabase::create(&admin);
    let sink = ChaosSink::start(2).await;
    let mut proxies = Vec::new();
    let mut nodes = Vec::new();
    for slot in 0..2 {
        let proxy = FaultProxy::start(pg_addr(&db.url)).await;
        nodes.push(TestServer::spawn_with(node(Some(&proxy.url(&db.url)), &sink, slot, "2s", &[])).await);
        proxies.push(proxy);
    }
    let (app, paths) = setup(&nodes[0], &sink, 2).await;
    // The first messages go through node 0, which takes the queues as it
    // accepts them: the node about to be cut is the one delivering.
    let load = Load::start(vec![nodes[0].base.clone()], &app, size(8, 16), 10.0);
    tokio::time::sleep(Duration::from_secs(1)).await;
    *load.bases.lock().unwrap() = nodes.iter().map(|n| n.base.clone()).collect();
    let cuts = size(1, 3);
    let mut fenced = 0;
    let mut last_heal = Instant::now();
    for cut in 0..cuts {
        tokio::time::sleep(Duration::from_secs(3)).await;
        if cut == 0 {
            assert!(sink.arrivals().iter().any(|a| a.node == 0), "node 0 was delivering before the cut");
        }
        let cut_at = Instant::now();
        proxies[0].set(Link::Cut);
        tokio::time::sleep(LEASE * 4).await;
        proxies[0].set(Link::Up);
        last_heal = Instant::now();
        // Anything node 0 started after its lease ran out, before the heal.
        let deadline = cut_at + LEASE + Duration::from_millis(250);
        fenced += sink.arrivals().iter().filter(|a| a.node == 0 && a.at > deadline && a.at < last_heal).count();
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (acked, client) = load.stop().await;
    let tally = settle(&sink, &acked, &paths, paths.last().map(String::as_str), Duration::from_secs(30)).await;
    let by_node1 = sink.arrivals().iter().filter(|a| a.node == 1).count();
    let report = Report {
        scenario: "partition: one of two nodes cut from PostgreSQL for 4 leases",
        store: "postgres",
        tally: &tally,
        client: &client,
        recovery: drained_after(last_heal, &acked, &sink.arrivals(), &paths),
        fenced: Some(fenced),
        notes: format!("{cuts} cut(s) of 8 s, lease 2 s; {by_node1} requests sent by the other node"),
    };
    report.publish();
    report.assert_held();
    assert!(by_node1 > 0, "the other node took over");
}
