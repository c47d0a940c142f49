//! The delivery lifecycle as a user meets it: recover, resend, disable and
//! enable, endpoint edits racing each other, receivers that answer oddly, the
//! database's clock, and retention.

use std::time::Duration;

use serde_json::{json, Value};

use crate::mgmt::{ids, text, wait_for_attempts, wait_for_delivery_status};
use crate::postgres::{shared_url, TestDatabase};
use crate::support::{seconds_ago, ServerOptions, Sink, TestServer};

fn with_args(args: &[&str]) -> ServerOptions {
    ServerOptions { extra_args: args.iter().map(|s| s.to_string()).collect(), ..Default::default() }
}

/// Polls the background task until it is no longer running; returns it.
async fn wait_for_task(server: &TestServer, id: &str) -> Value {
    let task = server
        .eventually(Duration::from_secs(20), || async {
            let (status, task) = server.get(&format!("/api/v1/background-task/{id}")).await;
            (status == 200 && task["status"] != "running").then_some(task)
        })
        .await;
    task.unwrap_or_else(|| panic!("task {id} did not finish"))
}

/// The delivery of `msg` to the endpoint, as `GET …/endpoint/{ep}/msg` shows it.
async fn delivery_to(server: &TestServer, app: &str, ep: &str, msg: &str) -> Value {
    let (_, list) = server.get(&format!("/api/v1/app/{app}/endpoint/{ep}/msg")).await;
    list["data"].as_array().unwrap().iter().find(|m| m["id"] == msg).cloned().expect("the message is listed")
}

/// Recover resends a message that is still waiting for its next retry, not
/// only those that exhausted every attempt: a user fixes their endpoint, calls
/// recover, and the failures are sent now rather than hours later.
#[tokio::test]
async fn recover_sends_a_failing_message_now_instead_of_at_its_next_retry() {
    let server = TestServer::spawn_with(ServerOptions { retry_schedule: "1h".into(), ..Default::default() }).await;
    let sink = Sink::start().await;
    sink.script(&[500]);
    let app = server.create_app("Acme").await;
    let ep = text(&server.create_endpoint(&app, json!({"url": sink.url("/fixed")})).await["id"]);
    let msg = text(&server.send_message(&app, "a.b", json!({"n": 1})).await["id"]);
    let waiting = server
        .eventually(Duration::from_secs(10), || async {
            let d = delivery_to(&server, &app, &ep, &msg).await;
            d["nextAttempt"].is_string().then_some(d)
        })
        .await
        .expect("a retry is scheduled");
    assert_eq!(waiting["statusText"], "sending", "failed once, next retry in an hour: {waiting}");

    let (status, task) =
        server.post(&format!("/api/v1/app/{app}/endpoint/{ep}/recover"), json!({"since": seconds_ago(60)})).await;
    assert_eq!(status, 202, "{task}");
    assert_eq!((task["task"].as_str(), task["status"].as_str()), (Some("endpoint.recover"), Some("running")));
    let got = sink.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 2, "sent again now");
    assert_eq!(got[1].header("webhook-id"), msg);
    let done = wait_for_task(&server, text(&task["id"]).as_str()).await;
    assert_eq!(done["status"], "finished", "{done}");
    assert_eq!(done["data"]["messagesSent"], 1, "{done}");
    wait_for_delivery_status(&server, &app, &msg, 0).await;
    let attempts = wait_for_attempts(&server, &app, &msg, 2).await;
    assert_eq!((attempts[0]["triggerType"].as_i64(), attempts[1]["triggerType"].as_i64()), (Some(1), Some(0)));

    let (_, list) = server.get("/api/v1/background-task?task=endpoint.recover&status=finished").await;
    assert_eq!(ids(&list), vec![text(&task["id"])]);
    let (status, body) = server.get("/api/v1/background-task?status=later").await;
    assert_eq!(status, 422, "{body}");
}

/// Recover and replay reach 14 days back at most, as in Svix; further is a
/// clear 422 rather than a scan of the whole history.
#[tokio::test]
async fn recover_and_replay_reach_fourteen_days_back_at_most() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let app = server.create_app("Acme").await;
    let ep = text(&server.create_endpoint(&app, json!({"url": sink.url("/x")})).await["id"]);
    for path in ["recover", "replay-missing"] {
        let url = format!("/api/v1/app/{app}/endpoint/{ep}/{path}");
        let (status, body) = server.post(&url, json!({"since": seconds_ago(15 * 86_400)})).await;
        assert_eq!(status, 422, "{path}: {body}");
        assert_eq!(body["detail"][0]["loc"], json!(["body", "since"]), "{body}");
        assert!(body["detail"][0]["msg"].as_str().unwrap().contains("14 days"), "{body}");
        let (status, body) = server.post(&url, json!({"since": seconds_ago(13 * 86_400)})).await;
        assert_eq!(status, 202, "{path}: {body}");
        let (status, body) = server.post(&url, json!({"since": seconds_ago(60), "until": seconds_ago(120)})).await;
        assert_eq!(status, 422, "until before since: {body}");
    }
}

/// Disabling an endpoint pauses what waits for it (shown as pending or sending,
/// never failed or canceled, no attempt spent); enabling it delivers all of it.
#[tokio::test]
async fn disable_then_enable_delivers_what_was_pending() {
    let server = TestServer::spawn_with(ServerOptions { retry_schedule: "1s".into(), ..Default::default() }).await;
    let sink = Sink::start().await;
    sink.script(&[500, 500]);
    let app = server.create_app("Acme").await;
    let ep = text(&server.create_endpoint(&app, json!({"url": sink.url("/flaky")})).await["id"]);
    let msgs = [
        text(&server.send_message(&app, "a.b", json!({"n": 1})).await["id"]),
        text(&server.send_message(&app, "a.b", json!({"n": 2})).await["id"]),
    ];
    sink.wait_for(2, Duration::from_secs(10)).await;
    let (status, body) = server.patch(&format!("/api/v1/app/{app}/endpoint/{ep}"), json!({"disabled": true})).await;
    assert_eq!(status, 200, "{body}");
    for msg in &msgs {
        let d = delivery_to(&server, &app, &ep, msg).await;
        assert!(d["status"] == 1 || d["status"] == 3, "waiting, not failed or canceled: {d}");
    }
    // Well past the retry time: nothing is sent to the disabled endpoint.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(sink.count(), 2, "no attempt while disabled");
    let (_, stats) = server.get(&format!("/api/v1/app/{app}/endpoint/{ep}/stats")).await;
    assert_eq!((stats["fail"].as_i64(), stats["canceled"].as_i64()), (Some(0), Some(0)), "{stats}");
    // A resend to a disabled endpoint says why it cannot be sent.
    let (status, body) =
        server.post(&format!("/api/v1/app/{app}/msg/{}/endpoint/{ep}/resend", msgs[0]), json!({})).await;
    assert_eq!(status, 409, "{body}");

    let (status, body) = server.patch(&format!("/api/v1/app/{app}/endpoint/{ep}"), json!({"disabled": false})).await;
    assert_eq!(status, 200, "{body}");
    let got = sink.wait_for(4, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 4, "both sent again once enabled");
    for msg in &msgs {
        wait_for_delivery_status(&server, &app, msg, 0).await;
    }
}

/// A resend while the delivery's attempt is in flight must neither be skipped
/// (the API said 202) nor discard that attempt: it yields one more attempt.
#[tokio::test]
async fn a_resend_during_an_attempt_in_flight_yields_an_attempt() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    sink.set_delay(Some(Duration::from_millis(800)));
    let app = server.create_app("Acme").await;
    let ep = text(&server.create_endpoint(&app, json!({"url": sink.url("/slow")})).await["id"]);
    let msg = text(&server.send_message(&app, "a.b", json!({"n": 1})).await["id"]);
    sink.wait_for(1, Duration::from_secs(10)).await;
    // The first request is at the receiver, unanswered.
    let (status, body) = server.post(&format!("/api/v1/app/{app}/msg/{msg}/endpoint/{ep}/resend"), json!({})).await;
    assert_eq!(status, 202, "{body}");
    let got = sink.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 2, "the resend is sent after the attempt in flight");
    assert_eq!(got[1].header("webhook-id"), msg);
    let attempts = wait_for_attempts(&server, &app, &msg, 2).await;
    let triggers: Vec<i64> = attempts.iter().map(|a| a["triggerType"].as_i64().unwrap()).collect();
    assert_eq!(triggers, vec![1, 0], "the manual attempt after the scheduled one, both recorded");
}

/// PATCH and secret rotation racing each other: each rotation's caller gets
/// the secret that then signs, and every PATCH is kept.
async fn concurrent_patches_and_rotations_keep_both(database_url: Option<&str>) {
    let server = match database_url {
        Some(url) => TestServer::spawn_with(with_args(&["--database-url", url])).await,
        None => TestServer::spawn().await,
    };
    let sink = Sink::start().await;
    let app = server.create_app("Acme").await;
    let ep = text(&server.create_endpoint(&app, json!({"url": sink.url("/x")})).await["id"]);
    let base = format!("/api/v1/app/{app}/endpoint/{ep}");
    let rotate_path = format!("{base}/secret/rotate");
    for i in 0..50 {
        let patch = server.patch(&base, json!({"description": format!("edit {i}")}));
        let rotate = server.post(&rotate_path, json!({"gracePeriodSeconds": 0}));
        let ((ps, pb), (rs, rb)) = tokio::join!(patch, rotate);
        assert_eq!((ps, rs), (200, 200), "{pb} {rb}");
        let (_, secret) = server.get(&format!("{base}/secret")).await;
        assert_eq!(secret["key"], rb["key"], "pair {i}: the rotated secret is the one kept");
        let (_, now) = server.get(&base).await;
        assert_eq!(now["description"], format!("edit {i}"), "pair {i}: the PATCH is kept");
    }
    // And the secret handed out is the one that signs.
    let (_, secret) = server.get(&format!("{base}/secret")).await;
    server.send_message(&app, "a.b", json!({})).await;
    let got = sink.wait_for(1, Duration::from_secs(10)).await;
    assert!(crate::support::verify_standard_webhook(&text(&secret["key"]), &got[0]));
}

#[tokio::test]
async fn concurrent_patches_and_rotations_keep_both_on_sqlite() {
    concurrent_patches_and_rotations_keep_both(None).await;
}

#[tokio::test]
async fn concurrent_patches_and_rotations_keep_both_on_postgres() {
    let Some(admin) = shared_url() else { return };
    let db = TestDatabase::create(&admin);
    concurrent_patches_and_rotations_keep_both(Some(&db.url)).await;
}

/// A receiver that answers 200 with a NUL byte (or invalid UTF-8) in its body:
/// the delivery succeeds once, its attempt is recorded, and it is never sent
/// again. On PostgreSQL the unsanitised text was refused, the outcome dropped,
/// and the delivery resent every lease period, forever.
async fn a_nul_in_a_response_is_recorded_once(database_url: Option<&str>) {
    let mut args = vec!["--lease-duration", "1s", "--poll-interval", "100ms"];
    if let Some(url) = database_url {
        args.extend(["--database-url", url]);
    }
    let server = TestServer::spawn_with(with_args(&args)).await;
    let sink = Sink::start().await;
    sink.set_body(b"ok\0\xff tail");
    let app = server.create_app("Acme").await;
    server.create_endpoint(&app, json!({"url": sink.url("/nul")})).await;
    let msg = text(&server.send_message(&app, "a.b", json!({})).await["id"]);
    let attempts = wait_for_attempts(&server, &app, &msg, 1).await;
    assert_eq!(attempts[0]["status"], 0, "{}", attempts[0]);
    assert_eq!(attempts[0]["response"], "ok\u{FFFD}\u{FFFD} tail");
    wait_for_delivery_status(&server, &app, &msg, 0).await;
    // Three lease periods: a dropped outcome would have been sent again by now.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(sink.count(), 1, "delivered once");
}

#[tokio::test]
async fn a_nul_in_a_response_is_recorded_once_on_sqlite() {
    a_nul_in_a_response_is_recorded_once(None).await;
}

#[tokio::test]
async fn a_nul_in_a_response_is_recorded_once_on_postgres() {
    let Some(admin) = shared_url() else { return };
    let db = TestDatabase::create(&admin);
    a_nul_in_a_response_is_recorded_once(Some(&db.url)).await;
}

/// Two nodes on one PostgreSQL, one whose clock runs ten minutes ahead. Leases
/// and due times follow the database's clock, so the fast node neither takes
/// over the other's deliveries in flight nor sends a retry before its time:
/// every message arrives exactly once, and nothing more.
#[tokio::test]
async fn a_node_whose_clock_runs_ahead_takes_nothing_early() {
    let Some(admin) = shared_url() else { return };
    let db = TestDatabase::create(&admin);
    let common = ["--database-url", &db.url, "--lease-duration", "3s", "--poll-interval", "100ms"];
    // Retries come due in 5 minutes: before that by the database's clock, long
    // past by the fast node's.
    let normal = TestServer::spawn_with(ServerOptions { retry_schedule: "5m".into(), ..with_args(&common) }).await;
    let slow = Sink::start().await;
    slow.set_delay(Some(Duration::from_millis(1500)));
    let failing = Sink::start().await;
    failing.script(&[500; 5]);
    let app = normal.create_app("Acme").await;
    normal.create_endpoint(&app, json!({"url": slow.url("/slow"), "filterTypes": ["slow"]})).await;
    normal.create_endpoint(&app, json!({"url": failing.url("/down"), "filterTypes": ["down"]})).await;
    // The normal node owns both endpoints: its deliveries are in flight (slow)
    // or waiting five minutes for their retry (down).
    let mut sent = Vec::new();
    for i in 0..5 {
        sent.push(text(&normal.send_message(&app, "slow", json!({"i": i})).await["id"]));
        normal.send_message(&app, "down", json!({"i": i})).await;
    }
    failing.wait_for(5, Duration::from_secs(10)).await;

    let mut ahead_args = common.to_vec();
    ahead_args.extend(["--clock-offset", "600s"]);
    let ahead = TestServer::spawn_with(ServerOptions { retry_schedule: "5m".into(), ..with_args(&ahead_args) }).await;
    // Long enough for the slow deliveries to finish and for many polls and
    // several lease periods of the node ahead.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let mut got: Vec<String> = slow.received().iter().map(|r| r.header("webhook-id").to_string()).collect();
    got.sort();
    sent.sort();
    assert_eq!(got, sent, "each message in flight arrived once: nothing was taken over early");
    assert_eq!(failing.count(), 5, "no retry was sent before its time");
    drop(ahead);
}

/// A message's own payload retention is honoured: once past, the sweep expunges
/// the payload and the response bodies of its attempts; bounds are checked.
#[tokio::test]
async fn payload_retention_expires_payloads() {
    let server = TestServer::spawn_with(with_args(&[
        "--payload-retention",
        "1s",
        "--message-retention",
        "1h",
        "--prune-interval",
        "200ms",
    ]))
    .await;
    let sink = Sink::start().await;
    let app = server.create_app("Acme").await;
    server.create_endpoint(&app, json!({"url": sink.url("/r")})).await;
    let (status, kept) = server
        .post(
            &format!("/api/v1/app/{app}/msg"),
            json!({"eventType": "a.b", "payload": {"keep": 1}, "payloadRetentionHours": 1}),
        )
        .await;
    assert_eq!(status, 202, "{kept}");
    let gone = text(&server.send_message(&app, "a.b", json!({"secret": "s"})).await["id"]);
    wait_for_attempts(&server, &app, &gone, 1).await;
    let expunged = server
        .eventually(Duration::from_secs(10), || async {
            let (_, m) = server.get(&format!("/api/v1/app/{app}/msg/{gone}")).await;
            (m["payload"] == json!({})).then_some(())
        })
        .await;
    assert!(expunged.is_some(), "the server's retention (1s) expunged the payload");
    let attempts = wait_for_attempts(&server, &app, &gone, 1).await;
    assert_eq!(attempts[0]["response"], "", "its response body went with it");
    let (_, m) = server.get(&format!("/api/v1/app/{app}/msg/{}", text(&kept["id"]))).await;
    assert_eq!(m["payload"], json!({"keep": 1}), "the message's own retention (1h) holds");

    for (body, field) in [
        (json!({"payloadRetentionPeriod": 91}), "payloadRetentionPeriod"),
        (json!({"payloadRetentionHours": 0}), "payloadRetentionHours"),
        (json!({"payloadRetentionPeriod": 1, "payloadRetentionHours": 1}), "payloadRetentionHours"),
    ] {
        let mut msg = json!({"eventType": "a.b", "payload": {}});
        msg.as_object_mut().unwrap().extend(body.as_object().unwrap().clone());
        let (status, err) = server.post(&format!("/api/v1/app/{app}/msg"), msg).await;
        assert_eq!(status, 422, "{err}");
        assert_eq!(err["detail"][0]["loc"], json!(["body", field]), "{err}");
    }
}

/// `hookd prune` runs the sweep now, on a store the server left, and says what
/// it did.
#[tokio::test]
async fn hookd_prune_sweeps_now() {
    let mut server = TestServer::spawn_with(with_args(&["--payload-retention", "1s"])).await;
    let sink = Sink::start().await;
    let app = server.create_app("Acme").await;
    server.create_endpoint(&app, json!({"url": sink.url("/p")})).await;
    let msg = text(&server.send_message(&app, "a.b", json!({"old": true})).await["id"]);
    wait_for_attempts(&server, &app, &msg, 1).await;
    server.sigterm();
    let _ = server.child.wait().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;

    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookd"))
        .args(["prune", "--payload-retention", "1s", "--data-dir"])
        .arg(server.data_dir.path())
        .output()
        .await
        .expect("run hookd prune");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{printed} {}", String::from_utf8_lossy(&out.stderr));
    assert!(printed.contains("expunged 1 payloads, cleared 1 response bodies"), "{printed}");

    let restarted = TestServer::spawn_in(server.data_dir.clone(), ServerOptions::default()).await;
    let (_, m) = restarted.get(&format!("/api/v1/app/{app}/msg/{msg}")).await;
    assert_eq!(m["payload"], json!({}), "{m}");
}
