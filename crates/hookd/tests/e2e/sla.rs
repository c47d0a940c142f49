//! SLAs: judged from the statistics rollups, a breach and a recovery are
//! operational webhooks, entries of the SLA's history and a metric.

use std::time::Duration;

use serde_json::{json, Value};

use crate::mgmt::text;
use crate::support::{ServerOptions, Sink, TestServer};

async fn sla_state(server: &TestServer, id: &str, want: &str) -> Value {
    server
        .eventually(Duration::from_secs(20), || async {
            let (_, s) = server.get(&format!("/api/v1/sla/{id}")).await;
            (s["state"] == want).then_some(s)
        })
        .await
        .unwrap_or_else(|| panic!("the SLA never became {want}"))
}

#[tokio::test]
async fn an_sla_is_breached_and_recovers_with_operational_webhooks() {
    let opts = ServerOptions {
        // One attempt each, and a breaker that stays closed: the figures are the sends.
        retry_schedule: String::new(),
        extra_args: ["--sla-interval", "200ms", "--breaker-min-requests", "100000"].map(String::from).to_vec(),
        ..Default::default()
    };
    let server = TestServer::spawn_with(opts).await;
    let ops = Sink::start().await;
    server.post("/api/v1/operational-webhook/endpoint", json!({"url": ops.url("/ops")})).await;
    let receiver = Sink::start().await;
    receiver.script(&[500; 5]);
    let app = server.create_app("Promised").await;
    let ep = text(&server.create_endpoint(&app, json!({"url": receiver.url("/in"), "uid": "main"})).await["id"]);

    let (status, sla) = server
        .post(
            "/api/v1/sla",
            json!({"name": "99% delivered", "appId": app, "endpointId": "main", "targetSuccessRatio": 0.9,
                   "windowSeconds": 600, "minAttempts": 5}),
        )
        .await;
    assert_eq!(status, 201, "{sla}");
    let id = text(&sla["id"]);
    assert_eq!((&sla["endpointId"], &sla["state"]), (&json!(ep), &json!("unknown")), "the uid became the id");
    // Too few attempts are not judged: the SLA is met.
    sla_state(&server, &id, "met").await;

    for n in 0..5 {
        server.send_message(&app, "order.paid", json!({"n": n})).await;
    }
    let breached = sla_state(&server, &id, "breached").await;
    assert_eq!(breached["figures"]["attempts"], 5, "{breached}");
    assert_eq!(breached["figures"]["successRatio"], 0.0, "{breached}");
    assert!(text(&breached["figures"]["reasons"][0]).contains("below the target 0.9000"), "{breached}");
    let metrics = text(&server.get("/metrics").await.1);
    assert!(metrics.contains("hookd_slas{state=\"breached\"} 1"), "{metrics}");
    assert!(!metrics.contains(&id), "no tenant's ids in /metrics");

    // 45 successes: 45 of 50 is 0.9, the target.
    for n in 0..45 {
        server.send_message(&app, "order.paid", json!({"n": n})).await;
    }
    let met = sla_state(&server, &id, "met").await;
    assert_eq!((&met["figures"]["attempts"], &met["figures"]["success"]), (&json!(50), &json!(45)), "{met}");

    let events = server
        .eventually(Duration::from_secs(10), || async {
            let got: Vec<Value> = ops
                .received()
                .iter()
                .map(|r| r.json())
                .filter(|e| e["type"].as_str().unwrap().starts_with("sla."))
                .collect();
            (got.len() >= 2).then_some(got)
        })
        .await
        .expect("sla.breached and sla.recovered");
    assert_eq!((&events[0]["type"], &events[1]["type"]), (&json!("sla.breached"), &json!("sla.recovered")));
    assert_eq!((&events[0]["data"]["slaId"], &events[0]["data"]["appId"]), (&json!(id), &json!(app)));
    assert_eq!(events[0]["data"]["figures"]["attempts"], 5);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        ops.received().iter().filter(|r| r.json()["type"].as_str().unwrap().starts_with("sla.")).count(),
        2,
        "each change is announced once"
    );

    let (_, history) = server.get(&format!("/api/v1/sla/{id}/history")).await;
    let states: Vec<&str> = history["data"].as_array().unwrap().iter().map(|e| e["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["met", "breached", "met"], "newest first: {history}");

    // A PATCH judges it afresh; a DELETE takes its history and metric away.
    let (status, patched) = server.patch(&format!("/api/v1/sla/{id}"), json!({"targetSuccessRatio": 0.95})).await;
    assert_eq!((status, &patched["state"]), (200, &json!("unknown")), "{patched}");
    sla_state(&server, &id, "breached").await;
    assert_eq!(server.delete(&format!("/api/v1/sla/{id}")).await.0, 204);
    assert_eq!(server.get(&format!("/api/v1/sla/{id}/history")).await.0, 404);
    let gone = server
        .eventually(Duration::from_secs(5), || async {
            let m = text(&server.get("/metrics").await.1);
            m.contains("hookd_slas{state=\"breached\"} 0").then_some(())
        })
        .await;
    assert!(gone.is_some(), "a deleted SLA is no longer counted");
}

#[tokio::test]
async fn sla_input_is_checked() {
    let server = TestServer::spawn().await;
    let app = server.create_app("Checked").await;
    let base = json!({"name": "x", "appId": app, "targetSuccessRatio": 0.99});
    for (change, field) in [
        (json!({"targetSuccessRatio": 1.5}), "targetSuccessRatio"),
        (json!({"targetSuccessRatio": 0}), "targetSuccessRatio"),
        (json!({"latencyPercentile": 99}), "latencyTargetMs"),
        (json!({"latencyPercentile": 120, "latencyTargetMs": 500}), "latencyPercentile"),
        (json!({"windowSeconds": 10}), "windowSeconds"),
        (json!({"endpointId": "ep_missing"}), "endpointId"),
        (json!({"appId": "app_missing"}), "appId"),
        (json!({"eventTypes": ["bad type!"]}), "eventTypes"),
        (json!({"name": ""}), "name"),
    ] {
        let mut body = base.clone();
        body.as_object_mut().unwrap().extend(change.as_object().unwrap().clone());
        let (status, out) = server.post("/api/v1/sla", body).await;
        assert_eq!(status, 422, "{change}: {out}");
        assert_eq!(out["detail"][0]["loc"][1], field, "{change}: {out}");
    }
    let (status, ok) = server
        .post(
            "/api/v1/sla",
            json!({"name": "fast", "appId": app, "targetSuccessRatio": 0.99,
                                     "latencyPercentile": 99, "latencyTargetMs": 2000}),
        )
        .await;
    assert_eq!(status, 201, "{ok}");
    assert_eq!((&ok["windowSeconds"], &ok["minAttempts"]), (&json!(3600), &json!(10)));
    let (_, list) = server.get("/api/v1/sla").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
}

/// A mass outage: an application's attempts start failing; one operational
/// webhook says so, once.
#[tokio::test]
async fn a_failure_spike_is_announced_once() {
    let opts = ServerOptions {
        retry_schedule: String::new(),
        extra_args: ["--spike-interval", "200ms", "--breaker-min-requests", "100000"].map(String::from).to_vec(),
        ..Default::default()
    };
    let server = TestServer::spawn_with(opts).await;
    let ops = Sink::start().await;
    server.post("/api/v1/operational-webhook/endpoint", json!({"url": ops.url("/ops")})).await;
    let receiver = Sink::start().await;
    receiver.script(&[503; 30]);
    let app = server.create_app("Outage").await;
    server.create_endpoint(&app, json!({"url": receiver.url("/down")})).await;
    for n in 0..25 {
        server.send_message(&app, "order.paid", json!({"n": n})).await;
    }
    let spikes = |ops: &Sink| -> Vec<Value> {
        ops.received().iter().map(|r| r.json()).filter(|e| e["type"] == "application.failure_spike").collect()
    };
    let got = server
        .eventually(Duration::from_secs(20), || async { spikes(&ops).first().cloned() })
        .await
        .expect("a failure spike");
    assert_eq!(got["data"]["appId"], json!(app), "{got}");
    assert!(got["data"]["failures"].as_u64().unwrap() >= 20, "{got}");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(spikes(&ops).len(), 1, "once an hour at most");
    assert!(
        ops.received().iter().all(|r| r.json()["type"] != "application.ingest_spike"),
        "no baseline: no ingest spike"
    );
}
