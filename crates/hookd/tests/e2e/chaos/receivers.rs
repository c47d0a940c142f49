//! Receivers failing at scale: of many endpoints, a tenth hang (read the
//! request, never answer), a tenth reset the connection, a tenth answer after
//! two seconds. The healthy ones keep their delivery latency: each endpoint's
//! queue is its own, and a slow one holds only its own concurrency.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::harness::{node, settle, Acked, Arrival, ChaosSink, Load};
use super::{full, size, Report};
use crate::support::TestServer;

#[derive(Clone, Copy)]
enum Fault {
    Hang,
    Reset,
    Slow,
}

/// A receiver that fails the same way for every request; returns its port.
async fn faulty(fault: Fault) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    // One read is enough of the request for these answers.
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    match fault {
                        Fault::Hang => {
                            // Reads on (so the sender is not blocked writing), never answers.
                            while matches!(conn.read(&mut buf).await, Ok(n) if n > 0) {}
                            return;
                        }
                        Fault::Reset => {
                            // SO_LINGER 0: the close is a RST.
                            let _ = conn.set_zero_linger();
                            return;
                        }
                        Fault::Slow => {
                            tokio::time::sleep(Duration::from_secs(2)).await;
                            let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                            if conn.write_all(ok).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    port
}

/// Accept-to-delivery latencies of the healthy endpoints' first arrivals, sorted.
fn latencies(acked: &[Acked], arrivals: &[Arrival], healthy: &[String], after: Instant) -> Vec<Duration> {
    let acked_at: std::collections::HashMap<&str, Instant> =
        acked.iter().filter(|m| m.at >= after).map(|m| (m.msg_id.as_str(), m.at)).collect();
    let mut seen = std::collections::HashSet::new();
    let mut out: Vec<Duration> = arrivals
        .iter()
        .filter(|a| a.accepted && healthy.contains(&a.path) && seen.insert((a.path.clone(), a.msg_id.clone())))
        .filter_map(|a| Some(a.at.saturating_duration_since(*acked_at.get(a.msg_id.as_str())?)))
        .collect();
    out.sort();
    out
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_endpoints_keep_their_latency_among_failing_ones() {
    let endpoints = size(100, 1000);
    let sink = ChaosSink::start(1).await;
    let opts = node(None, &sink, 0, "5s", &["--request-timeout", "5s"]);
    let server = TestServer::spawn_with(opts).await;
    let app = server.create_app("Receivers").await;
    let faulty_ports = [faulty(Fault::Hang).await, faulty(Fault::Reset).await, faulty(Fault::Slow).await];
    let mut healthy = Vec::new();
    let mut failing = Vec::new();
    for i in 0..endpoints {
        // 0-9 of every 100 hang, 10-19 reset, 20-29 are slow; the rest are healthy.
        let (url, path) = match (i % 100) / 10 {
            f @ 0..=2 => (format!("http://127.0.0.1:{}/ep{i}", faulty_ports[f]), None),
            _ => (sink.url(&format!("/ep{i}")), Some(format!("/ep{i}"))),
        };
        // Created disabled: the baseline runs with the healthy ones alone.
        let (s, ep) =
            server.post(&format!("/api/v1/app/{app}/endpoint"), json!({"url": url, "disabled": path.is_none()})).await;
        assert_eq!(s, 201, "{ep}");
        match path {
            Some(p) => healthy.push(p),
            None => failing.push(ep["id"].as_str().unwrap().to_string()),
        }
    }
    // Every message goes to every endpoint: the full size sends fewer, to many more.
    let load = Load::start(vec![server.base.clone()], &app, size(4, 2), size(2.0, 1.0));
    let phase = Duration::from_secs(size(6, 20));
    let baseline_from = Instant::now() + Duration::from_secs(1);
    tokio::time::sleep(phase).await;
    let faults_from = Instant::now();
    for id in &failing {
        let (s, body) = server.patch(&format!("/api/v1/app/{app}/endpoint/{id}"), json!({"disabled": false})).await;
        assert_eq!(s, 200, "{body}");
    }
    tokio::time::sleep(phase).await;
    let (acked, client) = load.stop().await;
    let tally = settle(&sink, &acked, &healthy, None, Duration::from_secs(30)).await;
    let arrivals = sink.arrivals();
    let before: Vec<Acked> = acked.iter().filter(|m| m.at < faults_from).cloned().collect();
    let base = latencies(&before, &arrivals, &healthy, baseline_from);
    let faulted = latencies(&acked, &arrivals, &healthy, faults_from);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let report = Report {
        scenario: "receiver faults: 10% hang, 10% reset, 10% answer in 2 s",
        store: "sqlite",
        tally: &tally,
        client: &client,
        recovery: None,
        fenced: None,
        notes: format!(
            "{endpoints} endpoints; healthy ones' accept-to-delivery p50/p99: {:.0}/{:.0} ms alone, {:.0}/{:.0} ms among the failing ({} deliveries)",
            ms(pct(&base, 0.5)),
            ms(pct(&base, 0.99)),
            ms(pct(&faulted, 0.5)),
            ms(pct(&faulted, 0.99)),
            faulted.len()
        ),
    };
    report.publish();
    report.assert_held();
    assert!(!faulted.is_empty() && !base.is_empty());
    // A failing receiver that held up the others would push them to the
    // request timeout (5 s); a loaded test machine stays well under half.
    let bound = if full() { Duration::from_secs(3) } else { Duration::from_millis(2500) };
    assert!(pct(&faulted, 0.99) < bound, "healthy p99 among failing endpoints: {:?}", pct(&faulted, 0.99));
}
