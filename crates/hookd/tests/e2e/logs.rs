//! `--log-format json`: one JSON object per line, and every line of a
//! delivery carries its ids.

use std::time::Duration;

use serde_json::{json, Value};

use crate::mgmt::text;
use crate::support::{ServerOptions, Sink, TestServer};

#[tokio::test]
async fn json_logs_carry_each_deliverys_ids() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("hookd.log");
    let opts = ServerOptions {
        extra_args: vec!["--log-format".into(), "json".into()],
        log: Some("info,hookd_delivery=debug".into()),
        stderr: Some(log.clone()),
        ..Default::default()
    };
    let server = TestServer::spawn_with(opts).await;
    let sink = Sink::start().await;
    sink.script(&[500]);
    let app = server.create_app("Logs").await;
    let ep = text(&server.create_endpoint(&app, json!({"url": sink.url("/")})).await["id"]);
    let msg = text(&server.send_message(&app, "order.paid", json!({"n": 1})).await["id"]);
    sink.wait_for(2, Duration::from_secs(10)).await;

    let attempts = server
        .eventually(Duration::from_secs(10), || async {
            let lines: Vec<Value> = std::fs::read_to_string(&log)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
                .collect();
            let attempts: Vec<Value> = lines.into_iter().filter(|l| l["message"] == "attempt").collect();
            (attempts.len() >= 2).then_some(attempts)
        })
        .await
        .expect("two attempt lines");
    for (line, status) in attempts.iter().zip([500, 200]) {
        assert_eq!(line["level"], "DEBUG", "{line}");
        assert_eq!(line["status"], status, "{line}");
        let span = &line["span"];
        assert_eq!(
            (&span["name"], &span["msg_id"], &span["endpoint_id"], &span["app_id"], &span["event_type"]),
            (&json!("delivery"), &json!(msg), &json!(ep), &json!(app), &json!("order.paid")),
            "{line}"
        );
        assert!(line["timestamp"].is_string() && line["duration_ms"].is_u64(), "{line}");
    }
    assert_eq!(attempts[0]["class"], "Http5xx");
    assert_eq!((&attempts[0]["span"]["attempt"], &attempts[1]["span"]["attempt"]), (&json!(1), &json!(2)));
}

#[tokio::test]
async fn an_unknown_log_format_is_refused() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookd"))
        .args(["serve", "--log-format", "xml", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--log-format: `xml` is not one of text, json"), "{err}");
}
