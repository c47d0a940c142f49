//! Delivery: signed requests, retries, the SSRF guard at send time, crash safety
//! and graceful shutdown.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::json;

use crate::support::{verify_standard_webhook, ServerOptions, Sink, TestServer};

#[tokio::test]
async fn a_message_arrives_signed_with_standard_webhooks_headers() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let app = server.create_app("Acme").await;
    let ep = server.create_endpoint(&app, json!({"url": sink.url("/hook"), "headers": {"X-Tenant": "acme"}})).await;
    let (_, secret) = server.get(&format!("/api/v1/app/{app}/endpoint/{}/secret", ep["id"].as_str().unwrap())).await;
    let secret = secret["key"].as_str().unwrap().to_string();

    let msg = server.send_message(&app, "invoice.paid", json!({"amount": 42, "currency": "EUR"})).await;
    let got = sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.path, "/hook");
    assert_eq!(r.json(), json!({"amount": 42, "currency": "EUR"}));
    assert_eq!(r.header("content-type"), "application/json");
    assert!(r.header("user-agent").starts_with("hookd/"), "{}", r.header("user-agent"));
    assert_eq!(r.header("webhook-id"), msg["id"].as_str().unwrap());
    assert_eq!(r.header("svix-id"), r.header("webhook-id"));
    assert_eq!(r.header("svix-timestamp"), r.header("webhook-timestamp"));
    assert_eq!(r.header("svix-signature"), r.header("webhook-signature"));
    assert_eq!(r.header("x-tenant"), "acme");
    assert!(verify_standard_webhook(&secret, r), "signature must verify with the endpoint secret");
    assert!(!verify_standard_webhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", r), "and only with it");
}

#[tokio::test]
async fn a_failing_endpoint_is_retried_until_it_succeeds() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    sink.script(&[500, 503]);
    let app = server.create_app("Acme").await;
    let ep = server.create_endpoint(&app, json!({"url": sink.url("/flaky")})).await;
    let ep_id = ep["id"].as_str().unwrap();
    let msg = server.send_message(&app, "user.created", json!({"id": 1})).await;
    let msg_id = msg["id"].as_str().unwrap();

    let got = sink.wait_for(3, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 3, "two failures then a success");
    assert!(got.iter().all(|r| r.header("webhook-id") == msg_id), "the id is stable across retries");
    // Retries follow the schedule (200ms ± 20%), not immediately.
    for pair in got.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(gap >= Duration::from_millis(150), "retry came after {gap:?}");
    }

    let attempts = server
        .eventually(Duration::from_secs(5), || async {
            let (_, list) = server.get(&format!("/api/v1/app/{app}/attempt/msg/{msg_id}")).await;
            let data = list["data"].as_array().unwrap().clone();
            (data.len() == 3).then_some(data)
        })
        .await
        .expect("three attempts recorded");
    // Newest first.
    let codes: Vec<i64> = attempts.iter().map(|a| a["responseStatusCode"].as_i64().unwrap()).collect();
    assert_eq!(codes, vec![200, 503, 500]);
    let statuses: Vec<i64> = attempts.iter().map(|a| a["status"].as_i64().unwrap()).collect();
    assert_eq!(statuses, vec![0, 2, 2]);
    let (_, dest) = server.get(&format!("/api/v1/app/{app}/msg/{msg_id}/endpoint")).await;
    assert_eq!(dest["data"][0]["id"], ep_id);
    assert_eq!(dest["data"][0]["status"], 0);
    let (_, stats) = server.get(&format!("/api/v1/app/{app}/endpoint/{ep_id}/stats")).await;
    assert_eq!(stats["success"], 1);
    assert_eq!(stats["fail"], 0);
}

#[tokio::test]
async fn a_delivery_that_keeps_failing_ends_failed_after_the_schedule() {
    let server =
        TestServer::spawn_with(ServerOptions { retry_schedule: "100ms,100ms".into(), ..Default::default() }).await;
    let sink = Sink::start().await;
    sink.script(&[500, 500, 500, 500, 500]);
    let app = server.create_app("Acme").await;
    let ep = server.create_endpoint(&app, json!({"url": sink.url("/down")})).await;
    let ep_id = ep["id"].as_str().unwrap().to_string();
    let msg = server.send_message(&app, "user.created", json!({})).await;
    let msg_id = msg["id"].as_str().unwrap();

    let status = server
        .eventually(Duration::from_secs(10), || async {
            let (_, dest) = server.get(&format!("/api/v1/app/{app}/msg/{msg_id}/endpoint")).await;
            let s = dest["data"][0]["status"].as_i64()?;
            (s == 2).then_some(s)
        })
        .await;
    assert_eq!(status, Some(2), "failed after three attempts");
    // No fourth attempt.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(sink.count(), 3);
    let (_, stats) = server.get(&format!("/api/v1/app/{app}/endpoint/{ep_id}/stats")).await;
    assert_eq!(stats["fail"], 1);
    let (_, failed) = server.get(&format!("/api/v1/app/{app}/attempt/endpoint/{ep_id}?status=2")).await;
    assert_eq!(failed["data"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn a_redirect_is_a_failure_and_is_not_followed() {
    let server = TestServer::spawn_with(ServerOptions { retry_schedule: "".into(), ..Default::default() }).await;
    let sink = Sink::start().await;
    sink.script(&[302]);
    let app = server.create_app("Acme").await;
    server.create_endpoint(&app, json!({"url": sink.url("/moved")})).await;
    let msg = server.send_message(&app, "a.b", json!({})).await;
    let msg_id = msg["id"].as_str().unwrap();
    let attempt = server
        .eventually(Duration::from_secs(5), || async {
            let (_, list) = server.get(&format!("/api/v1/app/{app}/attempt/msg/{msg_id}")).await;
            list["data"].as_array().and_then(|d| d.first().cloned())
        })
        .await
        .unwrap();
    assert_eq!(attempt["responseStatusCode"], 302);
    assert_eq!(attempt["status"], 2);
    assert_eq!(sink.count(), 1);
}

#[tokio::test]
async fn a_hostname_resolving_to_loopback_is_refused_at_send_time() {
    let server = TestServer::spawn_with(ServerOptions { allow_private: false, ..Default::default() }).await;
    let sink = Sink::start().await;
    let app = server.create_app("Acme").await;
    // A name is accepted at creation (it may resolve elsewhere later)...
    let url = format!("http://localhost:{}/internal", sink.addr.port());
    server.create_endpoint(&app, json!({"url": url})).await;
    let msg = server.send_message(&app, "a.b", json!({})).await;
    let msg_id = msg["id"].as_str().unwrap();
    // ...but the connection is refused after resolution, on every attempt.
    let attempts = server
        .eventually(Duration::from_secs(10), || async {
            let (_, list) = server.get(&format!("/api/v1/app/{app}/attempt/msg/{msg_id}")).await;
            let data = list["data"].as_array()?.clone();
            (data.len() == 4).then_some(data)
        })
        .await
        .expect("all four attempts made and refused");
    for a in &attempts {
        assert_eq!(a["responseStatusCode"], 0);
        assert!(a["response"].as_str().unwrap().contains("refused"), "{}", a["response"]);
    }
    assert_eq!(sink.count(), 0, "nothing reached the loopback sink");
}

#[tokio::test]
async fn fan_out_reaches_every_matching_endpoint_once() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let app = server.create_app("Acme").await;
    server.create_endpoint(&app, json!({"url": sink.url("/all")})).await;
    server.create_endpoint(&app, json!({"url": sink.url("/invoices"), "filterTypes": ["invoice.paid"]})).await;
    server.create_endpoint(&app, json!({"url": sink.url("/users"), "eventTypes": ["user.created"]})).await;
    server.create_endpoint(&app, json!({"url": sink.url("/off"), "disabled": true})).await;
    server.send_message(&app, "invoice.paid", json!({"n": 1})).await;
    server.send_message(&app, "user.created", json!({"n": 2})).await;
    let got = sink.wait_for(4, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let got = if sink.count() > got.len() { sink.received() } else { got };
    let mut paths: Vec<String> = got.iter().map(|r| r.path.clone()).collect();
    paths.sort();
    assert_eq!(paths, vec!["/all", "/all", "/invoices", "/users"]);
}

/// Sends messages, kills hookd with SIGKILL while deliveries are in flight,
/// restarts it on the same data dir, and checks that every acknowledged message
/// reaches the sink at least once, under its own stable `webhook-id`.
#[tokio::test]
async fn nothing_acknowledged_is_lost_when_hookd_is_killed() {
    let opts = ServerOptions {
        extra_args: ["--lease-duration", "1s", "--poll-interval", "100ms", "--endpoint-concurrency", "4"]
            .map(String::from)
            .to_vec(),
        ..Default::default()
    };
    let mut server = TestServer::spawn_with(opts.clone()).await;
    let sink = Sink::start().await;
    // A slow receiver, taking at most 4 requests at a time, keeps a backlog
    // queued and in flight when the kill comes (however slowly this machine
    // sends); it answers at once after the restart.
    sink.set_delay(Some(Duration::from_millis(500)));
    let app = server.create_app("Acme").await;
    server.create_endpoint(&app, json!({"url": sink.url("/count")})).await;

    let total = 400;
    let mut acknowledged: HashMap<String, i64> = HashMap::new();
    let mut killed = false;
    for seq in 0..total {
        let resp = server
            .request(reqwest::Method::POST, &format!("/api/v1/app/{app}/msg"))
            .json(&json!({"eventType": "tick", "payload": {"seq": seq}}))
            .send()
            .await;
        if let Ok(resp) = resp {
            if resp.status() == 202 {
                let body: serde_json::Value = resp.json().await.unwrap();
                acknowledged.insert(body["id"].as_str().unwrap().to_string(), seq);
            }
        }
        if seq == total / 2 {
            server.kill9();
            killed = true;
            break;
        }
    }
    assert!(killed);
    assert!(sink.count() < acknowledged.len(), "the kill must come while deliveries are pending");
    let _ = server.child.wait().await;
    sink.set_delay(None);

    // Restart on the same data dir; the dead node's leases expire and are taken over.
    let data_dir = server.data_dir.clone();
    let restarted = TestServer::spawn_in(data_dir, opts).await;
    // Send the rest through the restarted node.
    for seq in (total / 2 + 1)..total {
        let body = restarted.send_message(&app, "tick", json!({"seq": seq})).await;
        acknowledged.insert(body["id"].as_str().unwrap().to_string(), seq);
    }

    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut missing: HashSet<String>;
    loop {
        let seen: HashSet<String> = sink.received().iter().map(|r| r.header("webhook-id").to_string()).collect();
        missing = acknowledged.keys().filter(|id| !seen.contains(*id)).cloned().collect();
        if missing.is_empty() || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(missing.is_empty(), "{} acknowledged messages never arrived", missing.len());
    // Each delivery carries the payload its id was acknowledged with.
    for r in sink.received() {
        let seq = acknowledged.get(r.header("webhook-id")).expect("only acknowledged messages arrive");
        assert_eq!(r.json()["seq"], *seq);
    }
}

#[tokio::test]
async fn sigterm_finishes_in_flight_deliveries_and_exits_cleanly() {
    let mut server = TestServer::spawn().await;
    let sink = Sink::start().await;
    sink.set_delay(Some(Duration::from_millis(300)));
    let app = server.create_app("Acme").await;
    server.create_endpoint(&app, json!({"url": sink.url("/slow")})).await;
    for i in 0..5 {
        server.send_message(&app, "a.b", json!({"i": i})).await;
    }
    sink.wait_for(5, Duration::from_secs(5)).await;
    server.sigterm();
    let status = tokio::time::timeout(Duration::from_secs(15), server.child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "exit status {status:?}");

    // The outcomes were recorded before exit: a restart shows them delivered.
    let restarted = TestServer::spawn_in(server.data_dir.clone(), ServerOptions::default()).await;
    let (_, msgs) = restarted.get(&format!("/api/v1/app/{app}/msg")).await;
    for m in msgs["data"].as_array().unwrap() {
        let (_, dest) = restarted.get(&format!("/api/v1/app/{app}/msg/{}/endpoint", m["id"].as_str().unwrap())).await;
        assert_eq!(dest["data"][0]["status"], 0, "{dest}");
    }
    assert_eq!(sink.count(), 5, "nothing sent twice");
}

#[tokio::test]
async fn a_slow_endpoint_does_not_hold_up_the_others() {
    let opts = ServerOptions {
        extra_args: ["--endpoint-concurrency", "2", "--max-in-memory", "100"].map(String::from).to_vec(),
        ..Default::default()
    };
    let server = TestServer::spawn_with(opts).await;
    // So slow that no request to it completes while the test runs, however long
    // sending takes on a loaded machine: a fast endpoint held up behind it would
    // wait at least this long.
    let slow = Sink::start().await;
    slow.set_delay(Some(Duration::from_secs(30)));
    let fast = Sink::start().await;
    let app = server.create_app("Acme").await;
    server.create_endpoint(&app, json!({"url": slow.url("/slow"), "filterTypes": ["slow"]})).await;
    server.create_endpoint(&app, json!({"url": fast.url("/fast"), "filterTypes": ["fast"]})).await;
    // More deliveries to the slow endpoint than this node holds in memory.
    for i in 0..300 {
        server.send_message(&app, "slow", json!({"i": i})).await;
    }
    let started = std::time::Instant::now();
    server.send_message(&app, "fast", json!({})).await;
    let got = fast.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    assert!(started.elapsed() < Duration::from_secs(5), "the fast endpoint waited {:?}", started.elapsed());
    assert!(slow.count() <= 2, "the slow endpoint gets at most its concurrency at a time");
}

#[tokio::test]
async fn a_second_process_on_the_same_data_dir_is_refused() {
    let server = TestServer::spawn().await;
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookd"))
        .args(["serve", "--listen", "127.0.0.1:0", "--admin-token", "x"])
        .arg("--data-dir")
        .arg(server.data_dir.path())
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by another hookd process"), "{err}");
    // The first one is unaffected.
    assert_eq!(server.get("/api/v1/health").await.0, 200);
}

#[tokio::test]
async fn a_tight_memory_budget_delays_deliveries_but_loses_none() {
    let opts = ServerOptions {
        extra_args: ["--max-in-memory-bytes", "2000", "--poll-interval", "50ms"].map(String::from).to_vec(),
        ..Default::default()
    };
    let server = TestServer::spawn_with(opts).await;
    let sink = Sink::start().await;
    sink.set_delay(Some(Duration::from_millis(20)));
    let app = server.create_app("Acme").await;
    server.create_endpoint(&app, json!({"url": sink.url("/big")})).await;
    // Each payload is ~1.5 KB: about one fits the budget at a time, and one
    // larger than the whole budget still goes out.
    let mut ids = HashSet::new();
    for i in 0..20 {
        let msg = server.send_message(&app, "a.b", json!({"i": i, "pad": "x".repeat(1500)})).await;
        ids.insert(msg["id"].as_str().unwrap().to_string());
    }
    let huge = server.send_message(&app, "a.b", json!({"pad": "y".repeat(5000)})).await;
    ids.insert(huge["id"].as_str().unwrap().to_string());
    let got = sink.wait_for(21, Duration::from_secs(20)).await;
    let seen: HashSet<String> = got.iter().map(|r| r.header("webhook-id").to_string()).collect();
    assert_eq!(seen, ids);
}
