//! Ordered endpoints, end to end: the real server, a real sink that fails on
//! purpose, and the order the sink saw.

use std::time::Duration;

use serde_json::{json, Value};

use crate::mgmt::{text, wait_for_attempts};
use crate::support::{Received, Reply, Sink, TestServer};

/// The customer and sequence number a request carried.
fn tag(r: &Received) -> (String, u64) {
    let body = r.json();
    (text(&body["customer"]), body["n"].as_u64().unwrap())
}

/// Within each customer, once a message was sent, no earlier one is sent again.
fn assert_in_order(got: &[Received]) {
    let mut last: std::collections::HashMap<String, u64> = Default::default();
    for r in got {
        let (customer, n) = tag(r);
        let before = last.insert(customer.clone(), n).unwrap_or(0);
        assert!(
            n >= before,
            "customer {customer}: {n} sent after {before}: {:?}",
            got.iter().map(tag).collect::<Vec<_>>()
        );
    }
}

#[tokio::test]
async fn an_ordered_endpoint_holds_each_key_behind_its_failing_head() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let app = server.create_app("Acme").await;
    let ordering = json!({"key": "/customer"});
    let ep = server.create_endpoint(&app, json!({"url": sink.url("/hook"), "ordering": ordering})).await;
    assert_eq!(ep["ordering"], json!({"key": "/customer", "onFailure": "block"}));

    // The first three requests fail: the head of a key is retried (200 ms
    // apart) and everything of its key waits.
    sink.reply(&[Reply::new(500, &[]), Reply::new(500, &[]), Reply::new(503, &[])]);
    for n in 1..=8u64 {
        let customer = if n % 3 == 0 { "b" } else { "a" };
        server.send_message(&app, "order.updated", json!({"customer": customer, "n": n})).await;
    }
    let got = server
        .eventually(Duration::from_secs(20), || async {
            let got = sink.received();
            (got.len() >= 11).then_some(got)
        })
        .await
        .expect("8 messages and 3 failures");
    assert_in_order(&got);
    let mut delivered: Vec<u64> = got.iter().map(|r| tag(r).1).collect();
    delivered.sort();
    delivered.dedup();
    assert_eq!(delivered, (1..=8).collect::<Vec<_>>(), "every message arrived");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.count(), 11, "3 failures and one success each, nothing more");
}

#[tokio::test]
async fn an_ordered_endpoint_that_skips_fails_its_head_at_once() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let app = server.create_app("Acme").await;
    let ordering = json!({"onFailure": "skip"});
    server.create_endpoint(&app, json!({"url": sink.url("/hook"), "ordering": ordering})).await;
    sink.reply(&[Reply::new(500, &[])]);
    let first = text(&server.send_message(&app, "a.b", json!({"customer": "a", "n": 1})).await["id"]);
    for n in 2..=4u64 {
        server.send_message(&app, "a.b", json!({"customer": "a", "n": n})).await;
    }
    let got = sink.wait_for(4, Duration::from_secs(10)).await;
    assert_eq!(got.iter().map(|r| tag(r).1).collect::<Vec<_>>(), vec![1, 2, 3, 4], "one at a time, in order");
    let attempts = wait_for_attempts(&server, &app, &first, 1).await;
    assert_eq!(attempts.len(), 1, "no retry: {attempts:?}");
    assert!(text(&attempts[0]["response"]).contains("onFailure: skip"), "{}", attempts[0]);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(sink.count(), 4, "the skipped message is not retried");
}

#[tokio::test]
async fn ordering_settings_are_checked_shown_and_cleared() {
    let server = TestServer::spawn().await;
    let app = server.create_app("Acme").await;
    let path = format!("/api/v1/app/{app}/endpoint");
    for (bad, why) in [
        (json!({"key": "customer"}), "JSON Pointer"),
        (json!({"onFailure": "later"}), "block"),
        (json!({"keys": "/a"}), "keys"),
    ] {
        let (status, err) = server.post(&path, json!({"url": "https://example.com/h", "ordering": bad})).await;
        assert_eq!(status, 422, "{bad}: {err}");
        assert!(err.to_string().contains("ordering") && err.to_string().contains(why), "{bad}: {err}");
    }
    let (status, ep) = server
        .post(&path, json!({"url": "https://example.com/h", "ordering": {"key": "channel", "onFailure": "skip"}}))
        .await;
    assert_eq!(status, 201, "{ep}");
    assert_eq!(ep["ordering"], json!({"key": "channel", "onFailure": "skip"}));
    let (_, patched) = server.patch(&format!("{path}/{}", text(&ep["id"])), json!({"ordering": null})).await;
    assert_eq!(patched.get("ordering"), None::<&Value>, "{patched}");
}

/// Two nodes on one PostgreSQL database take 1,000 messages for one ordered
/// endpoint in turn; one of them is killed half way. Each key still arrives
/// in creation order (a repeat of the message in flight at the kill is the
/// only other thing allowed).
#[tokio::test]
async fn order_holds_across_nodes_and_a_killed_node() {
    let Some(admin) = crate::postgres::shared_url() else { return };
    let db = crate::postgres::TestDatabase::create(&admin);
    let args = ["--database-url", db.url.as_str(), "--lease-duration", "2s", "--poll-interval", "200ms"];
    let opts = || crate::support::ServerOptions {
        extra_args: args.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let mut nodes = vec![TestServer::spawn_with(opts()).await, TestServer::spawn_with(opts()).await];
    let sink = Sink::start().await;
    let app = nodes[0].create_app("Acme").await;
    nodes[0].create_endpoint(&app, json!({"url": sink.url("/hook"), "ordering": {"key": "/customer"}})).await;
    // Failures early on, so heads are retried while the rest queue up.
    sink.reply(&(0..10).map(|_| Reply::new(500, &[])).collect::<Vec<_>>());
    for n in 1..=1000u64 {
        if n == 500 {
            nodes[1].kill9();
        }
        let node = if n < 500 { &nodes[(n % 2) as usize] } else { &nodes[0] };
        let customer = format!("c{}", n % 4);
        node.send_message(&app, "order.updated", json!({"customer": customer, "n": n})).await;
    }
    let got = nodes[0]
        .eventually(Duration::from_secs(60), || async {
            let got = sink.received();
            let distinct: std::collections::HashSet<u64> = got.iter().map(|r| tag(r).1).collect();
            (distinct.len() == 1000).then_some(got)
        })
        .await
        .expect("every message delivered");
    assert_in_order(&got);
    nodes.truncate(1);
}
