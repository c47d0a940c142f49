//! Delivery statistics through the API: Svix's attempt-statistics paths and
//! hookd's summary agree with the attempts the API lists, failures are
//! classed, and `--stats false` counts nothing.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{json, Value};

use crate::mgmt::text;
use crate::support::{ServerOptions, Sink, TestServer};

/// Every attempt of the application, as the API lists them, with the message's
/// event type: (event type, endpoint id, status code).
async fn attempt_log(server: &TestServer, app: &str, msgs: &[(String, &str)]) -> Vec<(String, String, i64)> {
    let mut out = Vec::new();
    for (msg, event_type) in msgs {
        let (_, list) = server.get(&format!("/api/v1/app/{app}/attempt/msg/{msg}?limit=250")).await;
        for a in list["data"].as_array().unwrap() {
            out.push((event_type.to_string(), text(&a["endpointId"]), a["responseStatusCode"].as_i64().unwrap()));
        }
    }
    out
}

/// Waits until every message's deliveries are finished (succeeded or failed).
async fn settle(server: &TestServer, app: &str, msgs: &[(String, &str)]) {
    for (msg, _) in msgs {
        server
            .eventually(Duration::from_secs(20), || async {
                let (_, list) = server.get(&format!("/api/v1/app/{app}/msg/{msg}/endpoint")).await;
                let d = list["data"].as_array()?;
                (d.len() == 2 && d.iter().all(|e| e["status"] == 0 || e["status"] == 2)).then_some(())
            })
            .await
            .unwrap_or_else(|| panic!("{msg} never finished"));
    }
}

#[tokio::test]
async fn statistics_agree_with_the_attempt_log() {
    // The failing endpoint keeps its breaker closed: every attempt is made.
    let opts = ServerOptions { extra_args: vec!["--breaker-min-requests".into(), "1000".into()], ..Default::default() };
    let server = TestServer::spawn_with(opts).await;
    let good = Sink::start().await;
    let bad = Sink::start().await;
    // The failing endpoint answers 500 to its first ten requests, then 404.
    bad.script(&[500; 10]);
    bad.script(&[404; 100]);
    let app = server.create_app("Stats").await;
    let ok_ep = text(&server.create_endpoint(&app, json!({"url": good.url("/ok")})).await["id"]);
    let bad_ep = text(&server.create_endpoint(&app, json!({"url": bad.url("/bad")})).await["id"]);
    let mut msgs = Vec::new();
    for i in 0..8 {
        let event_type = ["invoice.paid", "user.created"][i % 2];
        let id = text(&server.send_message(&app, event_type, json!({"n": i})).await["id"]);
        msgs.push((id, event_type));
    }
    settle(&server, &app, &msgs).await;
    let log = attempt_log(&server, &app, &msgs).await;
    let count = |f: &dyn Fn(&(String, String, i64)) -> bool| log.iter().filter(|a| f(a)).count() as u64;
    let ok = |a: &(String, String, i64)| (200..300).contains(&a.2);
    let (success, failure) = (count(&ok), count(&|a| !ok(a)));
    assert_eq!(success, 8, "{log:?}");
    assert_eq!(failure, 8 * 4, "four attempts of each message to the failing endpoint: {log:?}");

    // Svix: totals and per event type.
    let (status, totals) = server.get(&format!("/api/v1/app/{app}/stats/attempts")).await;
    assert_eq!(status, 200, "{totals}");
    assert_eq!((totals["total_success"].as_u64(), totals["total_failure"].as_u64()), (Some(success), Some(failure)));
    assert_eq!(totals["total_canceled"], 0);
    for t in ["invoice.paid", "user.created"] {
        let want = json!({
            "success": count(&|a| a.0 == t && ok(a)),
            "failure": count(&|a| a.0 == t && !ok(a)),
            "canceled": 0,
        });
        assert_eq!(totals["by_event_type"][t], want, "{totals}");
    }
    let (_, one) = server.get(&format!("/api/v1/app/{app}/stats/attempts?event_types=user.created")).await;
    assert_eq!(one["by_event_type"].as_object().unwrap().len(), 1, "{one}");

    // Svix: per period (the last day by five minutes holds them all).
    let (status, series) = server.get(&format!("/api/v1/stats/app/{app}/attempt?period=FiveMinutes")).await;
    assert_eq!(status, 200, "{series}");
    let sum = |k: &str| series["data"][k].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).sum::<u64>();
    assert_eq!((sum("successCount"), sum("failureCount")), (success, failure), "{series}");
    assert_eq!(series["period"], "FiveMinutes");
    let slots = series["data"]["successCount"].as_array().unwrap().len();
    assert!((288..=289).contains(&slots), "the last day by five minutes: {slots}");

    // hookd: failure classes, latency, bytes, per endpoint.
    let (status, summary) = server.get(&format!("/api/v1/app/{app}/stats/summary?endpoint_id={bad_ep}")).await;
    assert_eq!(status, 200, "{summary}");
    let t = &summary["totals"];
    let by_code = |lo: i64, hi: i64| count(&|a| a.1 == bad_ep && (lo..hi).contains(&a.2));
    assert_eq!(t["failures"]["http5xx"].as_u64(), Some(by_code(500, 600)), "{summary}");
    assert_eq!(t["failures"]["http4xx"].as_u64(), Some(by_code(400, 500)), "{summary}");
    assert_eq!(t["success"], 0);
    assert!(t["latencyMs"]["p50"].as_f64().is_some() && t["latencyMs"]["p99"].as_f64().is_some(), "{summary}");
    assert!(t["bytes"].as_u64().unwrap() > 0);
    let (_, good_summary) = server.get(&format!("/api/v1/app/{app}/stats/summary?endpoint_id={ok_ep}")).await;
    let g = &good_summary["totals"];
    assert_eq!((g["attempts"].as_u64(), g["successRatio"].as_f64()), (Some(8), Some(1.0)), "{good_summary}");
    assert_eq!(g["deliveryLatencyMs"]["count"], 8, "every scheduled success has its accept-to-delivery time");
    assert_eq!(good_summary["queue"]["depth"], 0);

    // A closed port is a connection failure.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let gone = text(&server.create_endpoint(&app, json!({"url": format!("http://{closed}/")})).await["id"]);
    server.send_message(&app, "invoice.paid", json!({})).await;
    let classes = server
        .eventually(Duration::from_secs(20), || async {
            let (_, s) = server.get(&format!("/api/v1/app/{app}/stats/summary?endpoint_id={gone}")).await;
            (s["totals"]["failures"]["connection"].as_u64() == Some(4)).then_some(s)
        })
        .await
        .expect("four connection failures counted");
    assert_eq!(classes["totals"]["attempts"], 4, "{classes}");

    // Bad input: a clear 422.
    for (query, field) in [
        ("period=Weekly", "period"),
        ("since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z", "until"),
        ("period=OneMinute&since=2020-01-01T00:00:00Z", "since"),
        ("since=yesterday", "since"),
    ] {
        let (status, body) = server.get(&format!("/api/v1/app/{app}/stats/summary?{query}")).await;
        assert_eq!(status, 422, "{query}: {body}");
        assert_eq!(body["detail"][0]["loc"][1], field, "{query}: {body}");
    }
    let (status, body) = server.get("/api/v1/app/app_missing/stats/summary").await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test]
async fn statistics_can_be_turned_off() {
    let opts = ServerOptions { extra_args: vec!["--stats".into(), "false".into()], ..Default::default() };
    let server = TestServer::spawn_with(opts).await;
    let sink = Sink::start().await;
    let app = server.create_app("Quiet").await;
    server.create_endpoint(&app, json!({"url": sink.url("/")})).await;
    server.send_message(&app, "a.b", json!({})).await;
    sink.wait_for(1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, totals) = server.get(&format!("/api/v1/app/{app}/stats/attempts")).await;
    let by_type: &HashMap<String, Value> = &serde_json::from_value(totals["by_event_type"].clone()).unwrap();
    assert!(by_type.is_empty() && totals["total_success"] == 0, "{totals}");
}
