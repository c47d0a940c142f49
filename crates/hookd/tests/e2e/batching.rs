//! Batched endpoints, end to end: several messages per request, signed once,
//! each message with its own attempts.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;

use crate::mgmt::{secret_of, text, wait_for_attempts};
use crate::support::{verify_standard_webhook, Reply, Sink, TestServer};

#[tokio::test]
async fn a_batched_endpoint_gets_several_messages_per_signed_request() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let app = server.create_app("Acme").await;
    let batch = json!({"maxMessages": 5, "maxWaitMs": 300});
    let ep = server.create_endpoint(&app, json!({"url": sink.url("/hook"), "batch": batch})).await;
    assert_eq!(ep["batch"], batch);
    let secret = secret_of(&server, &app, &text(&ep["id"])).await;

    // The first request fails: its messages come back together, once.
    sink.reply(&[Reply::new(500, &[])]);
    let mut sent = Vec::new();
    for n in 0..12 {
        sent.push(text(&server.send_message(&app, "order.created", json!({"n": n})).await["id"]));
    }
    let got = server
        .eventually(Duration::from_secs(15), || async {
            let got = sink.received();
            let members: usize = got.iter().skip(1).map(|r| r.json().as_array().map_or(0, Vec::len)).sum();
            (members >= 12).then_some(got)
        })
        .await
        .expect("every message delivered after the failed request");
    let mut delivered = BTreeSet::new();
    for r in &got {
        assert!(verify_standard_webhook(&secret, r), "signed once over the whole body");
        assert!(r.header("webhook-id").starts_with("batch_"), "{}", r.header("webhook-id"));
        let items = r.json().as_array().cloned().expect("a JSON array");
        assert!((1..=5).contains(&items.len()), "{}", items.len());
        for item in items {
            assert_eq!(item["eventType"], "order.created");
            assert!(text(&item["timestamp"]).ends_with('Z'));
            assert!(item["payload"]["n"].as_u64().is_some());
            delivered.insert(text(&item["id"]));
        }
    }
    assert_eq!(delivered, sent.iter().cloned().collect::<BTreeSet<_>>());
    assert!(got.len() < 12, "fewer requests than messages: {}", got.len());
    let failed_batch: Vec<String> = got[0].json().as_array().unwrap().iter().map(|i| text(&i["id"])).collect();
    // Each message of the failed request has its own two attempts; the others one.
    for msg in &sent {
        let expected = if failed_batch.contains(msg) { 2 } else { 1 };
        let attempts = wait_for_attempts(&server, &app, msg, expected).await;
        assert_eq!(attempts.len(), expected, "{msg}: {attempts:?}");
        assert!(text(&attempts[0]["response"]).contains("a batch of"), "{}", attempts[0]);
    }
}

#[tokio::test]
async fn batch_settings_are_checked() {
    let server = TestServer::spawn().await;
    let app = server.create_app("Acme").await;
    let path = format!("/api/v1/app/{app}/endpoint");
    for bad in [json!({"maxMessages": 0}), json!({"maxMessages": 5, "maxWaitMs": 600_000}), json!({"size": 5})] {
        let (status, err) = server.post(&path, json!({"url": "https://example.com/h", "batch": bad})).await;
        assert_eq!(status, 422, "{bad}: {err}");
        assert!(err.to_string().contains("batch"), "{bad}: {err}");
    }
}

/// A batch that does not fill goes when its first message has waited `maxWaitMs`.
#[tokio::test]
async fn a_batch_that_does_not_fill_goes_after_its_wait() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let app = server.create_app("Acme").await;
    let batch = json!({"maxMessages": 100, "maxWaitMs": 600});
    server.create_endpoint(&app, json!({"url": sink.url("/hook"), "batch": batch})).await;
    let started = std::time::Instant::now();
    for n in 0..3 {
        server.send_message(&app, "a.b", json!({"n": n})).await;
    }
    let got = sink.wait_for(1, Duration::from_secs(10)).await;
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(550), "went after {waited:?}");
    assert_eq!(got[0].json().as_array().map(Vec::len), Some(3), "all three in one request");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.count(), 1);
}
