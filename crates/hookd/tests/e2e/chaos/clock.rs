//! One node's clock ten minutes ahead or behind (libfaketime): leases are
//! judged by the database's clock, so the skewed node takes nothing over
//! early and delivers nothing late; what the skew does show is in the
//! `webhook-timestamp` that node signs, counted here. Every tenth message is
//! refused once, so the skewed node schedules retries too (by the database's
//! clock: none is delivered late).

use std::time::Duration;

use super::harness::{node, settle, setup, ChaosSink, Load};
use super::{size, Report};
use crate::postgres::{shared_url, TestDatabase};
use crate::support::TestServer;

/// libfaketime, when installed (Debian: `faketime`).
fn libfaketime() -> Option<String> {
    let found =
        ["/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1", "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .map(String::from);
    if found.is_none() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI needs libfaketime (apt-get install faketime)");
        eprintln!("skipped: libfaketime not installed (apt-get install faketime)");
    }
    found
}

async fn skewed(offset: &str, label: &str) {
    let Some(admin) = shared_url() else { return };
    let Some(lib) = libfaketime() else { return };
    let db = TestDatabase::create(&admin);
    // Every tenth message is refused once: retries are scheduled too.
    let sink = ChaosSink::failing_first_of_every(2, 10).await;
    let honest = TestServer::spawn_with(node(Some(&db.url), &sink, 0, "2s", &[])).await;
    let mut opts = node(Some(&db.url), &sink, 1, "2s", &[]);
    opts.env = vec![
        ("LD_PRELOAD".into(), lib),
        ("FAKETIME".into(), offset.into()),
        // Timers and timeouts run on the monotonic clock; only the wall clock is skewed.
        ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
    ];
    let skewed = TestServer::spawn_with(opts).await;
    let (app, paths) = setup(&honest, &sink, 2).await;
    let load = Load::start(vec![honest.base.clone(), skewed.base.clone()], &app, size(8, 16), 10.0);
    tokio::time::sleep(Duration::from_secs(size(6, 60))).await;
    let (acked, client) = load.stop().await;
    let tally = settle(&sink, &acked, &paths, paths.last().map(String::as_str), Duration::from_secs(30)).await;
    let arrivals = sink.arrivals();
    let now = hookd_now();
    let by_skewed: Vec<_> = arrivals.iter().filter(|a| a.node == 1).collect();
    let off = by_skewed.iter().filter(|a| (a.timestamp - now).abs() > 300).count();
    let report = Report {
        scenario: label,
        store: "postgres",
        tally: &tally,
        client: &client,
        recovery: None,
        fenced: None,
        notes: format!(
            "two nodes; the skewed one sent {} of {} requests, {off} of them signed with a timestamp more than 5 minutes off",
            by_skewed.len(),
            arrivals.len()
        ),
    };
    report.publish();
    report.assert_held();
    // Two nodes sending to one endpoint at once (one having taken it over
    // early) would show as repeats: the sink answers each request once.
    assert_eq!(tally.duplicates, 0, "no delivery taken over while its lease was live");
}

fn hookd_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_ten_minutes_ahead_takes_nothing_over_early() {
    skewed("+10m", "clock skew: one of two nodes 10 minutes ahead").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_ten_minutes_behind_delivers_nothing_late() {
    skewed("-10m", "clock skew: one of two nodes 10 minutes behind").await;
}
