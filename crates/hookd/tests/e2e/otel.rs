//! OpenTelemetry traces (`--otlp-endpoint`) to a collector on loopback that
//! takes OTLP/HTTP JSON: a span per message accepted and per attempt, and the
//! attempt's `traceparent` on the request the receiver gets.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::post;
use serde_json::{json, Value};

use crate::support::{ServerOptions, Sink, TestServer};

/// Spans received, as (name, traceId, spanId).
type Spans = Arc<Mutex<Vec<(String, String, String)>>>;

async fn collector() -> (String, Spans) {
    let spans: Spans = Arc::default();
    let keep = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        post(move |body: axum::body::Bytes| {
            let keep = keep.clone();
            async move {
                let v: Value = serde_json::from_slice(&body).unwrap_or_default();
                for rs in v["resourceSpans"].as_array().into_iter().flatten() {
                    for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
                        for s in ss["spans"].as_array().into_iter().flatten() {
                            let f = |k: &str| s[k].as_str().unwrap_or_default().to_string();
                            keep.lock().unwrap().push((f("name"), f("traceId"), f("spanId")));
                        }
                    }
                }
                axum::Json(json!({}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, spans)
}

#[tokio::test]
async fn attempts_and_accepts_are_traced_and_receivers_join_the_trace() {
    let (url, spans) = collector().await;
    let opts = ServerOptions {
        extra_args: vec!["--otlp-endpoint".into(), url],
        env: vec![("OTEL_BSP_SCHEDULE_DELAY".into(), "100".into())],
        ..Default::default()
    };
    let server = TestServer::spawn_with(opts).await;
    let sink = Sink::start().await;
    let app = server.create_app("Traced").await;
    server.create_endpoint(&app, json!({"url": sink.url("/in")})).await;
    server.send_message(&app, "order.paid", json!({"n": 1})).await;
    let got = sink.wait_for(1, Duration::from_secs(10)).await;
    let tp = got[0].header("traceparent").to_string();
    let parts: Vec<&str> = tp.split('-').collect();
    assert_eq!((parts.len(), parts[0], parts[1].len(), parts[2].len()), (4, "00", 32, 16), "{tp}");
    let (trace, parent) = (parts[1].to_string(), parts[2].to_string());
    let found = server
        .eventually(Duration::from_secs(15), || async {
            let s = spans.lock().unwrap().clone();
            let delivery = s.iter().any(|(n, t, id)| n == "delivery" && *t == trace && *id == parent);
            let accept = s.iter().any(|(n, _, _)| n == "message.accept");
            (delivery && accept).then_some(())
        })
        .await;
    assert!(found.is_some(), "spans: {:?}", spans.lock().unwrap());
}
