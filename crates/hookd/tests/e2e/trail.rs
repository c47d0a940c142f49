//! The compliance trail: every message of a selection (by tag, id or time)
//! with its deliveries and attempts, as JSON lines and CSV, chained by digests
//! that `hookd trail verify` checks against the digest the audit trail keeps.

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::mgmt::text;
use crate::support::{Sink, TestServer};

async fn export(server: &TestServer, app: &str, query: &str) -> (u16, String, String) {
    let resp = server.request(reqwest::Method::GET, &format!("/api/v1/app/{app}/trail?{query}")).send().await.unwrap();
    let status = resp.status().as_u16();
    let ct = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    (status, ct, resp.text().await.unwrap())
}

fn verify(text: &str, ext: &str, digest: Option<&str>) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(format!("trail.{ext}"));
    std::fs::write(&file, text).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hookd"));
    cmd.args(["trail", "verify"]).arg(&file);
    if let Some(d) = digest {
        cmd.args(["--digest", d]);
    }
    let out = cmd.output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test]
async fn a_trail_export_holds_every_attempt_and_proves_nothing_was_removed() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    sink.script(&[500]);
    let app = server.create_app("Audited").await;
    let ep = text(&server.create_endpoint(&app, json!({"url": sink.url("/in")})).await["id"]);
    let mut tagged = Vec::new();
    for n in 0..3 {
        let (status, m) = server
            .post(
                &format!("/api/v1/app/{app}/msg"),
                json!({"eventType": "order.paid", "payload": {"n": n}, "tags": ["req.r-42"]}),
            )
            .await;
        assert_eq!(status, 202, "{m}");
        tagged.push(text(&m["id"]));
    }
    let other = text(&server.send_message(&app, "order.paid", json!({"n": 9})).await["id"]);
    // The first message fails once and succeeds on its retry: two attempts.
    sink.wait_for(5, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let (status, ct, body) = export(&server, &app, "tag=req.r-42").await;
    assert_eq!((status, ct.as_str()), (200, "application/x-ndjson"), "{body}");
    let records: Vec<Value> = body.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let messages: Vec<&str> =
        records.iter().filter(|r| r["type"] == "message").map(|r| r["msgId"].as_str().unwrap()).collect();
    assert_eq!(messages, tagged, "the tagged messages, oldest first; not {other}");
    let attempts = records.iter().filter(|r| r["type"] == "attempt").count();
    assert_eq!(attempts, 4, "three messages, one retried: {body}");
    assert_eq!(records.iter().filter(|r| r["type"] == "delivery" && r["endpointId"] == json!(ep)).count(), 3);
    let end = records.last().unwrap();
    assert_eq!((&end["type"], &end["count"], &end["complete"]), (&json!("end"), &json!(10), &json!(true)), "{end}");
    assert_eq!(records[0]["prev"], hookd_core::trail::GENESIS);
    let sha = hookd_core::trail::digest(br#"{"n":0}"#);
    assert_eq!(records[0]["payloadSha256"], json!(sha), "the payload as accepted");

    // The audit trail keeps the end digest; the file verifies against it.
    let (_, audit) = server.get("/api/v1/audit?limit=20").await;
    let entry =
        audit["data"].as_array().unwrap().iter().find(|e| e["action"] == "trail.exported").cloned().expect("recorded");
    let target = text(&entry["target"]);
    let recorded = target.strip_prefix("digest=").unwrap().split(' ').next().unwrap().to_string();
    let (ok, said) = verify(&body, "jsonl", Some(&recorded));
    assert!(ok, "{said}");
    assert!(said.contains("10 records") && said.contains("recorded digest"), "{said}");
    // Lines after the end record, and a file ending in another digest, are refused.
    let (ok, said) = verify(&format!("{body}{}\n", body.lines().nth(1).unwrap()), "jsonl", None);
    assert!(!ok && said.contains("after the end record"), "{said}");
    assert!(!verify(&body, "jsonl", Some(hookd_core::trail::GENESIS)).0);

    // A removed attempt, a changed status, a cut tail: each is found.
    let lines: Vec<&str> = body.lines().collect();
    let at = lines.iter().position(|l| l.contains("\"type\":\"attempt\"")).unwrap();
    let removed: String = lines.iter().enumerate().filter(|(i, _)| *i != at).map(|(_, l)| format!("{l}\n")).collect();
    let (ok, said) = verify(&removed, "jsonl", None);
    assert!(!ok && said.contains(&format!("line {}", at + 1)), "{said}");
    let (ok, said) =
        verify(&body.replacen("\"responseStatusCode\":500", "\"responseStatusCode\":200", 1), "jsonl", None);
    assert!(!ok, "{said}");
    let cut: String = lines[..lines.len() - 3].iter().map(|l| format!("{l}\n")).collect();
    assert!(!verify(&cut, "jsonl", None).0);

    // CSV, and one message by id.
    let (status, ct, csv) = export(&server, &app, &format!("msg_id={}&format=csv", tagged[0])).await;
    assert_eq!((status, ct.as_str()), (200, "text/csv; charset=utf-8"));
    assert!(csv.starts_with("type,count,timestamp,msgId,"), "{csv}");
    assert_eq!(csv.lines().count(), 1 + 1 + 1 + 2 + 1, "header, message, delivery, two attempts, end: {csv}");
    let (ok, said) = verify(&csv, "csv", None);
    assert!(ok, "{said}");

    // Bad input: 4xx before anything streams.
    assert_eq!(export(&server, &app, "format=xml").await.0, 422);
    assert_eq!(export(&server, &app, "msg_id=msg_missing").await.0, 404);
    assert_eq!(export(&server, &app, "since=2026-01-02T00:00:00Z&until=2026-01-01T00:00:00Z").await.0, 422);
}
