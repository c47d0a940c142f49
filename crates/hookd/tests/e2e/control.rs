//! Delivery control against misbehaving receivers on loopback: throttling,
//! `Retry-After`, the `webhook-delivery` header, 410, the circuit breaker,
//! per-endpoint and per-event-type retry schedules, and every kind of transport
//! error retried until the schedule ends (none leaves a delivery stuck).

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::mgmt::{text, wait_for_attempts, wait_for_delivery_status};
use crate::postgres::{shared_url, TestDatabase};
use crate::support::{Reply, ServerOptions, Sink, TestServer};

fn with_args(args: &[&str]) -> ServerOptions {
    ServerOptions { extra_args: args.iter().map(|s| s.to_string()).collect(), ..Default::default() }
}

async fn endpoint(server: &TestServer, app: &str, ep: &str) -> Value {
    let (status, body) = server.get(&format!("/api/v1/app/{app}/endpoint/{ep}")).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// A 429 with `Retry-After: 15` holds that delivery *and* the endpoint for 15 s:
/// the retry and a message sent meanwhile both wait, and the rate-limit status
/// says so.
#[tokio::test]
async fn retry_after_on_429_holds_the_delivery_and_the_endpoint() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    sink.reply(&[Reply::new(429, &[("retry-after", "15")])]);
    let app = server.create_app("Acme").await;
    let ep = text(&server.create_endpoint(&app, json!({"url": sink.url("/busy")})).await["id"]);
    let first = text(&server.send_message(&app, "a.b", json!({"n": 1})).await["id"]);
    sink.wait_for(1, Duration::from_secs(10)).await;
    let status = server
        .eventually(Duration::from_secs(5), || async {
            let (_, s) = server.get(&format!("/api/v1/app/{app}/endpoint/{ep}/rate-limit-status")).await;
            (s["status"] == "RateLimited").then_some(s)
        })
        .await
        .expect("the endpoint reports that it is held back");
    assert!(status["throttledSince"].is_string(), "{status}");
    let second = text(&server.send_message(&app, "a.b", json!({"n": 2})).await["id"]);

    let got = sink.wait_for(3, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 3);
    let waited = got[1].at.duration_since(got[0].at);
    assert!(waited >= Duration::from_millis(14_900), "the next request came after {waited:?}");
    let sent: Vec<&str> = got[1..].iter().map(|r| r.header("webhook-id")).collect();
    assert!(sent.contains(&first.as_str()) && sent.contains(&second.as_str()), "{sent:?}");
    wait_for_delivery_status(&server, &app, &first, 0).await;
    wait_for_delivery_status(&server, &app, &second, 0).await;
    let (_, s) = server.get(&format!("/api/v1/app/{app}/endpoint/{ep}/rate-limit-status")).await;
    assert_eq!(s, json!({"status": "Ok", "throttledSince": null}));
}

/// `webhook-delivery: abort-message` ends that message's retries at once;
/// `webhook-delivery: disable` disables the endpoint, and its queue waits.
#[tokio::test]
async fn the_webhook_delivery_header_aborts_a_message_or_disables_the_endpoint() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let app = server.create_app("Acme").await;
    let ep = text(&server.create_endpoint(&app, json!({"url": sink.url("/signals")})).await["id"]);

    sink.reply(&[Reply::new(400, &[("webhook-delivery", "abort-message")])]);
    let aborted = text(&server.send_message(&app, "a.b", json!({"n": 1})).await["id"]);
    wait_for_delivery_status(&server, &app, &aborted, 2).await;
    let attempt = &wait_for_attempts(&server, &app, &aborted, 1).await[0];
    assert!(
        text(&attempt["response"]).ends_with("[hookd: webhook-delivery: abort-message: no more attempts]"),
        "{attempt}"
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(sink.count(), 1, "no retry after abort-message (the schedule is 200ms × 3)");

    sink.reply(&[Reply::new(500, &[("webhook-delivery", "disable")])]);
    let msg = text(&server.send_message(&app, "a.b", json!({"n": 2})).await["id"]);
    let disabled = server
        .eventually(Duration::from_secs(10), || async {
            let e = endpoint(&server, &app, &ep).await;
            (e["disabled"] == true).then_some(e)
        })
        .await;
    assert!(disabled.is_some(), "the endpoint is disabled");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(sink.count(), 2, "nothing more is sent to a disabled endpoint");

    // Enabling resumes the message where it was.
    let (status, _) = server.patch(&format!("/api/v1/app/{app}/endpoint/{ep}"), json!({"disabled": false})).await;
    assert_eq!(status, 200);
    wait_for_delivery_status(&server, &app, &msg, 0).await;
    assert_eq!(sink.count(), 3);
}

/// `410 Gone` disables the endpoint: the message waits, spending no attempts,
/// until it is enabled again.
#[tokio::test]
async fn gone_disables_the_endpoint_and_its_queue_waits() {
    let server = TestServer::spawn_with(ServerOptions { retry_schedule: "1s".into(), ..Default::default() }).await;
    let sink = Sink::start().await;
    sink.script(&[410]);
    let app = server.create_app("Acme").await;
    let ep = text(&server.create_endpoint(&app, json!({"url": sink.url("/gone")})).await["id"]);
    let msg = text(&server.send_message(&app, "a.b", json!({"n": 1})).await["id"]);
    server
        .eventually(Duration::from_secs(10), || async {
            (endpoint(&server, &app, &ep).await["disabled"] == true).then_some(())
        })
        .await
        .expect("410 disables the endpoint");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(sink.count(), 1, "the retry waits for the endpoint to be enabled");
    let (_, metrics) = server.get("/metrics").await;
    assert!(metrics.as_str().unwrap_or_default().contains("hookd_endpoints_disabled_total{reason=\"gone\"} 1"));
    // hookd's own change is in the audit trail.
    let audit = server
        .eventually(Duration::from_secs(5), || async {
            let (_, page) = server.get("/api/v1/audit").await;
            page["data"].as_array()?.iter().find(|e| e["action"] == "endpoint.disabled (gone)").cloned()
        })
        .await
        .expect("the disable is audited");
    assert_eq!(
        (audit["actor"].as_str(), audit["target"].as_str()),
        (Some("hookd"), Some(format!("/api/v1/app/{app}/endpoint/{ep}").as_str()))
    );

    let (status, _) = server.patch(&format!("/api/v1/app/{app}/endpoint/{ep}"), json!({"disabled": false})).await;
    assert_eq!(status, 200);
    wait_for_delivery_status(&server, &app, &msg, 0).await;
    let attempts = wait_for_attempts(&server, &app, &msg, 2).await;
    assert_eq!(attempts.len(), 2, "the 410, then the success once enabled");
}

/// The breaker opens when most requests fail, sends nothing while open, lets
/// one probe through after the open period, and closes when it succeeds.
#[tokio::test]
async fn the_breaker_opens_probes_and_closes() {
    let server = TestServer::spawn_with(ServerOptions {
        retry_schedule: "300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms".into(),
        extra_args: ["--breaker-min-requests", "4", "--breaker-open", "3s", "--endpoint-concurrency", "1"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        ..Default::default()
    })
    .await;
    let sink = Sink::start().await;
    sink.script(&[500; 4]);
    let app = server.create_app("Acme").await;
    let ep = text(&server.create_endpoint(&app, json!({"url": sink.url("/flaky")})).await["id"]);
    let msgs: Vec<String> = {
        let mut v = Vec::new();
        for n in 0..4 {
            v.push(text(&server.send_message(&app, "a.b", json!({"n": n})).await["id"]));
        }
        v
    };
    let open = server
        .eventually(Duration::from_secs(10), || async {
            let e = endpoint(&server, &app, &ep).await;
            (e["health"]["breaker"] == "open").then_some(e)
        })
        .await
        .expect("the breaker opens after 4 failures of 4");
    assert_eq!(open["health"]["failures"], 4, "{open}");
    assert!(open["health"]["nextProbeAt"].is_string(), "{open}");
    let opened = Instant::now();
    let count_at_open = sink.count();
    assert_eq!(count_at_open, 4);

    // Nothing is sent while it is open; then one probe, which succeeds, and
    // the rest follow.
    let got = sink.wait_for(5, Duration::from_secs(10)).await;
    assert!(got.len() >= 5);
    let waited = got[4].at.duration_since(got[3].at);
    assert!(waited >= Duration::from_millis(2_500), "the probe came {waited:?} after the last failure");
    assert!(opened.elapsed() >= Duration::from_millis(1_500));
    for m in &msgs {
        wait_for_delivery_status(&server, &app, m, 0).await;
    }
    let closed = endpoint(&server, &app, &ep).await;
    assert_eq!(closed["health"]["breaker"], "closed", "{closed}");
    let attempts: usize = {
        let mut n = 0;
        for m in &msgs {
            n += wait_for_attempts(&server, &app, m, 2).await.len();
        }
        n
    };
    assert_eq!(attempts, 8, "no attempt was spent while the breaker was open");
    let (_, metrics) = server.get("/metrics").await;
    let metrics = metrics.as_str().unwrap_or_default().to_string();
    assert!(metrics.contains("hookd_endpoint_breaker_transitions_total{to=\"open\"} 1"), "{metrics}");
    assert!(metrics.contains("hookd_endpoint_breaker_transitions_total{to=\"closed\"} 1"), "{metrics}");
}

/// `throttleRate` spaces requests at the sink to the set rate (±10%).
#[tokio::test]
async fn the_throttle_rate_holds_at_the_sink() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let app = server.create_app("Acme").await;
    server.create_endpoint(&app, json!({"url": sink.url("/slowly"), "throttleRate": 20})).await;
    for n in 0..80 {
        server.send_message(&app, "a.b", json!({"n": n})).await;
    }
    let got = sink.wait_for(80, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 80);
    // The first two may go at once (the burst); the rest follow at the rate.
    let span = got[79].at.duration_since(got[2].at).as_secs_f64();
    let rate = 77.0 / span;
    assert!((18.0..=22.0).contains(&rate), "{rate:.1} requests/s for a throttle rate of 20");
}

/// Retry schedules: the endpoint's own beats its event type's, which beats
/// the server's; the event type's is read and written as in the Svix API.
#[tokio::test]
async fn retry_schedules_per_endpoint_and_per_event_type() {
    let server = TestServer::spawn_with(ServerOptions { retry_schedule: "1h".into(), ..Default::default() }).await;
    let sink = Sink::start().await;
    sink.script(&[500; 20]);
    let app = server.create_app("Acme").await;
    let (status, _) = server.post("/api/v1/event-type", json!({"name": "a.b", "description": "x"})).await;
    assert_eq!(status, 201);
    let (status, body) = server
        .put("/api/v1/event-type/a.b/retry-schedule", json!({"retrySchedule": [{"secs": 0, "nanos": 100_000_000}, 1]}))
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = server.get("/api/v1/event-type/a.b/retry-schedule").await;
    assert_eq!(body, json!({"retrySchedule": [{"secs": 0, "nanos": 100_000_000}, {"secs": 1, "nanos": 0}]}));
    let (status, body) = server.put("/api/v1/event-type/a.b/retry-schedule", json!({"retrySchedule": [864_000]})).await;
    assert_eq!(status, 422, "{body}");

    // The event type's schedule: 3 attempts in all.
    let ep = server.create_endpoint(&app, json!({"url": sink.url("/by-type"), "filterTypes": ["a.b"]})).await;
    let msg = text(&server.send_message(&app, "a.b", json!({})).await["id"]);
    wait_for_delivery_status(&server, &app, &msg, 2).await;
    assert_eq!(wait_for_attempts(&server, &app, &msg, 3).await.len(), 3);

    // The endpoint's own: 2 attempts.
    let (status, body) = server
        .patch(
            &format!("/api/v1/app/{app}/endpoint/{}", text(&ep["id"])),
            json!({"retrySchedule": [{"secs": 0, "nanos": 200_000_000}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["retrySchedule"], json!([{"secs": 0, "nanos": 200_000_000}]));
    let msg = text(&server.send_message(&app, "a.b", json!({})).await["id"]);
    wait_for_delivery_status(&server, &app, &msg, 2).await;
    assert_eq!(wait_for_attempts(&server, &app, &msg, 2).await.len(), 2);

    let (status, body) =
        server.patch(&format!("/api/v1/app/{app}/endpoint/{}", text(&ep["id"])), json!({"maxConcurrency": 0})).await;
    assert_eq!(status, 422, "{body}");
}

/// A receiver on loopback that misbehaves at the TCP level.
#[derive(Clone, Copy)]
enum Misbehaviour {
    /// Reads the request and closes the connection without a response.
    Reset,
    /// Reads the request and never answers.
    Silent,
    /// Answers with a status line, then a body that trickles in a byte every
    /// 200 ms, for 20 s.
    Trickle(u16),
}

async fn misbehaving(kind: Misbehaviour) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                let _ = sock.read(&mut buf).await;
                match kind {
                    Misbehaviour::Reset => {
                        #[allow(deprecated)] // an abortive close (RST) is the point here
                        let _ = sock.set_linger(Some(Duration::ZERO));
                        drop(sock);
                    }
                    Misbehaviour::Silent => {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                    }
                    Misbehaviour::Trickle(status) => {
                        let head = format!("HTTP/1.1 {status} Whatever\r\ncontent-length: 100\r\n\r\n");
                        if sock.write_all(head.as_bytes()).await.is_err() {
                            return;
                        }
                        for _ in 0..100 {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            if sock.write_all(b"x").await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    format!("http://{addr}/")
}

/// Every kind of transport error is retried on the schedule and ends the
/// delivery as failed with each attempt recorded: refused, DNS failure, TLS
/// error, reset, no answer, a 500 whose body trickles past the timeout, a
/// redirect, and a 10 MiB response (kept truncated). A 200 whose body trickles
/// past the timeout was accepted: it succeeds, once.
#[tokio::test]
async fn every_transport_error_is_retried_and_none_leaves_a_delivery_stuck() {
    let server = TestServer::spawn_with(with_args(&["--request-timeout", "1s"])).await;
    let app = server.create_app("Acme").await;
    let plain = Sink::start().await;
    plain.script(&[302; 8]);
    let big = Sink::start().await;
    big.script(&[500; 8]);
    big.set_body(Box::leak(vec![b'x'; 10 * 1024 * 1024].into_boxed_slice()));
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        format!("http://127.0.0.1:{port}/")
    };
    let cases: Vec<(&str, String)> = vec![
        ("refused", refused),
        ("dns", "http://no-such-host.invalid/".to_string()),
        ("tls", format!("https://{}/", plain.addr)),
        ("reset", misbehaving(Misbehaviour::Reset).await),
        ("silent", misbehaving(Misbehaviour::Silent).await),
        ("trickle", misbehaving(Misbehaviour::Trickle(500)).await),
        ("redirect", plain.url("/moved")),
        ("huge", big.url("/huge")),
    ];
    let mut sent = Vec::new();
    for (name, url) in &cases {
        let own_app = server.create_app(name).await;
        server.create_endpoint(&own_app, json!({"url": url})).await;
        let msg = text(&server.send_message(&own_app, "a.b", json!({"case": name})).await["id"]);
        sent.push((name, own_app, msg));
    }
    let _ = app;
    let slow_ok = server.create_app("slow-ok").await;
    server.create_endpoint(&slow_ok, json!({"url": misbehaving(Misbehaviour::Trickle(200)).await})).await;
    let ok_msg = text(&server.send_message(&slow_ok, "a.b", json!({})).await["id"]);
    for (name, app, msg) in &sent {
        let dest = server
            .eventually(Duration::from_secs(30), || async {
                let (_, list) = server.get(&format!("/api/v1/app/{app}/msg/{msg}/endpoint")).await;
                let dest = list["data"].get(0)?.clone();
                (dest["status"] == 2).then_some(dest)
            })
            .await
            .unwrap_or_else(|| panic!("{name}: the delivery did not end failed"));
        let attempts = wait_for_attempts(&server, app, msg, 4).await;
        assert_eq!(attempts.len(), 4, "{name}: {dest}");
        let a = &attempts[0];
        match **name {
            "redirect" => assert_eq!(a["responseStatusCode"], 302, "{a}"),
            "trickle" => {
                assert_eq!(a["responseStatusCode"], 500, "{a}");
                assert!(text(&a["response"]).contains("timed out reading"), "{a}");
            }
            "huge" => {
                assert_eq!(a["responseStatusCode"], 500, "{a}");
                assert!(text(&a["response"]).len() <= 64 * 1024, "the response is kept truncated");
            }
            "silent" => {
                assert!(text(&a["response"]).contains("timed out"), "{name}: {a}");
                assert_eq!(a["responseStatusCode"], 0, "{name}: {a}");
            }
            _ => assert_eq!(a["responseStatusCode"], 0, "{name}: {a}"),
        }
        assert_eq!(a["status"], 2, "{name}: {a}");
    }
    wait_for_delivery_status(&server, &slow_ok, &ok_msg, 0).await;
    let attempts = wait_for_attempts(&server, &slow_ok, &ok_msg, 1).await;
    assert_eq!(attempts.len(), 1, "a 200 is not sent again");
    assert!(text(&attempts[0]["response"]).contains("timed out reading"), "{}", attempts[0]);
}

/// `deliverAt`: the message is stored and listed now, delivered at its time
/// (not before), and one canceled before then is never sent.
async fn scheduled_messages_are_delivered_at_their_time(database_url: Option<&str>) {
    let mut args = vec!["--poll-interval", "100ms"];
    if let Some(url) = database_url {
        args.extend(["--database-url", url]);
    }
    let server = TestServer::spawn_with(with_args(&args)).await;
    let sink = Sink::start().await;
    let app = server.create_app("Acme").await;
    server.create_endpoint(&app, json!({"url": sink.url("/later")})).await;
    let at = hookd_core::timefmt::now_millis() + 3_000;
    let when = hookd_core::timefmt::format_millis(at);
    let body = json!({"eventType": "a.b", "payload": {"n": 1}, "deliverAt": when});
    let (status, msg) = server.post(&format!("/api/v1/app/{app}/msg"), body).await;
    assert_eq!(status, 202, "{msg}");
    assert_eq!(msg["deliverAt"], json!(when));
    let body = json!({"eventType": "a.b", "payload": {"n": 2}, "deliverAt": when});
    let (_, canceled) = server.post(&format!("/api/v1/app/{app}/msg"), body).await;
    let (status, out) =
        server.post(&format!("/api/v1/app/{app}/msg/{}/cancel", text(&canceled["id"])), json!({})).await;
    assert_eq!((status, &out), (200, &json!({"canceled": 1})));

    let (_, listed) = server.get(&format!("/api/v1/app/{app}/msg/{}", text(&msg["id"]))).await;
    assert_eq!(listed["deliverAt"], json!(when));
    let (_, dests) = server.get(&format!("/api/v1/app/{app}/msg/{}/endpoint", text(&msg["id"]))).await;
    assert_eq!(dests["data"][0]["nextAttempt"], json!(when), "{dests}");
    tokio::time::sleep(Duration::from_millis(2_000)).await;
    assert_eq!(sink.count(), 0, "nothing before its time");
    let got = sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header("webhook-id"), text(&msg["id"]));
    let late = hookd_core::timefmt::now_millis() - at;
    assert!(late >= -50, "delivered {}ms early", -late);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.count(), 1, "the canceled one is never sent");
    wait_for_delivery_status(&server, &app, text(&msg["id"]).as_str(), 0).await;
}

#[tokio::test]
async fn scheduled_messages_are_delivered_at_their_time_on_sqlite() {
    scheduled_messages_are_delivered_at_their_time(None).await;
}

#[tokio::test]
async fn scheduled_messages_are_delivered_at_their_time_on_postgres() {
    let Some(admin) = shared_url() else { return };
    let db = TestDatabase::create(&admin);
    scheduled_messages_are_delivered_at_their_time(Some(&db.url)).await;
}

/// The dead-letter view is the endpoint's messages with status 2; bulk replay
/// sends the ones its filters pick again, as a background task.
#[tokio::test]
async fn dead_letters_are_listed_and_bulk_replayed_by_filter() {
    let server = TestServer::spawn_with(ServerOptions { retry_schedule: "100ms".into(), ..Default::default() }).await;
    let sink = Sink::start().await;
    sink.script(&[500; 6]);
    let app = server.create_app("Acme").await;
    let ep = text(&server.create_endpoint(&app, json!({"url": sink.url("/dlq")})).await["id"]);
    let mut by_type = Vec::new();
    for t in ["order.paid", "order.paid", "user.created"] {
        by_type.push((t, text(&server.send_message(&app, t, json!({"t": t})).await["id"])));
    }
    for (_, m) in &by_type {
        wait_for_delivery_status(&server, &app, m, 2).await;
    }
    let (_, dead) = server.get(&format!("/api/v1/app/{app}/endpoint/{ep}/msg?status=2")).await;
    assert_eq!(dead["data"].as_array().unwrap().len(), 3, "{dead}");

    let (status, body) = server
        .post(
            &format!("/api/v1/app/{app}/endpoint/{ep}/bulk-replay"),
            json!({"since": crate::support::seconds_ago(60), "eventTypes": ["order.paid"], "status": 2, "statusCodeClass": 500}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["task"], "endpoint.bulk-replay");
    let task = server
        .eventually(Duration::from_secs(10), || async {
            let (_, t) = server.get(&format!("/api/v1/background-task/{}", text(&body["id"]))).await;
            (t["status"] == "finished").then_some(t)
        })
        .await
        .expect("the task finishes");
    assert_eq!(task["data"]["messagesSent"], 2, "{task}");
    for (t, m) in &by_type {
        let want = if *t == "order.paid" { 0 } else { 2 };
        wait_for_delivery_status(&server, &app, m, want).await;
    }
    let (_, dead) = server.get(&format!("/api/v1/app/{app}/endpoint/{ep}/msg?status=2")).await;
    assert_eq!(dead["data"].as_array().unwrap().len(), 1, "{dead}");
    let (status, body) = server
        .post(
            &format!("/api/v1/app/{app}/endpoint/{ep}/bulk-replay"),
            json!({"since": crate::support::seconds_ago(60), "status": 9}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
}

/// Operational webhooks: an organisation registers an endpoint under
/// `/api/v1/operational-webhook/endpoint` and receives, signed with that
/// endpoint's secret, events about its endpoints, failing messages and tasks.
#[tokio::test]
async fn operational_webhooks_report_endpoint_message_and_task_events() {
    let server = TestServer::spawn().await;
    let ops_sink = Sink::start().await;
    let (status, ops_ep) =
        server.post("/api/v1/operational-webhook/endpoint", json!({"url": ops_sink.url("/ops"), "uid": "ops"})).await;
    assert_eq!(status, 201, "{ops_ep}");
    let (_, secret) = server.get("/api/v1/operational-webhook/endpoint/ops/secret").await;
    let secret = text(&secret["key"]);
    let (_, list) = server.get("/api/v1/operational-webhook/endpoint").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);

    let sink = Sink::start().await;
    let app = server.create_app("Acme").await;
    let (_, apps) = server.get("/api/v1/app").await;
    assert_eq!(apps["data"].as_array().unwrap().len(), 1, "the operational application is not listed: {apps}");
    let ep = text(&server.create_endpoint(&app, json!({"url": sink.url("/gone")})).await["id"]);
    sink.script(&[500, 500, 500, 500, 410]);
    // Four failures: exhausted (the schedule has three retries).
    let msg = text(&server.send_message(&app, "a.b", json!({})).await["id"]);
    wait_for_delivery_status(&server, &app, &msg, 2).await;
    // Then a 410 disables the endpoint.
    server.send_message(&app, "a.b", json!({})).await;
    let (status, task) = server
        .post(
            &format!("/api/v1/app/{app}/endpoint/{ep}/replay-missing"),
            json!({"since": crate::support::seconds_ago(60)}),
        )
        .await;
    assert_eq!(status, 202, "{task}");

    let wanted = ["endpoint.created", "message.attempt.exhausted", "endpoint.disabled", "background_task.finished"];
    let events = server
        .eventually(Duration::from_secs(15), || async {
            let got: Vec<Value> = ops_sink.received().iter().map(|r| r.json()).collect();
            wanted.iter().all(|w| got.iter().any(|e| e["type"] == *w)).then_some(got)
        })
        .await
        .unwrap_or_else(|| panic!("events: {:?}", ops_sink.received().iter().map(|r| r.json()).collect::<Vec<_>>()));
    for r in ops_sink.received() {
        assert!(crate::support::verify_standard_webhook(&secret, &r), "signed with the operational endpoint's secret");
    }
    let find = |t: &str| events.iter().find(|e| e["type"] == t).unwrap().clone();
    assert_eq!(find("endpoint.created")["data"]["endpointId"], json!(ep));
    let exhausted = find("message.attempt.exhausted");
    assert_eq!(exhausted["data"]["msgId"], json!(msg), "{exhausted}");
    assert_eq!(exhausted["data"]["lastAttempt"]["responseStatusCode"], 500, "{exhausted}");
    let disabled = find("endpoint.disabled");
    assert_eq!(
        (disabled["data"]["trigger"].as_str(), disabled["data"]["reason"].as_str()),
        (Some("automatic"), Some("gone"))
    );
    let finished = find("background_task.finished");
    assert_eq!(finished["data"]["taskId"], task["id"], "{finished}");
    assert_eq!(finished["data"]["status"], "finished");

    // A manual enable and disable are reported as such.
    server.patch(&format!("/api/v1/app/{app}/endpoint/{ep}"), json!({"disabled": false})).await;
    server.patch(&format!("/api/v1/app/{app}/endpoint/{ep}"), json!({"disabled": true})).await;
    let manual = server
        .eventually(Duration::from_secs(10), || async {
            ops_sink
                .received()
                .iter()
                .map(|r| r.json())
                .find(|e| e["type"] == "endpoint.disabled" && e["data"]["trigger"] == "manual")
        })
        .await;
    assert!(manual.is_some());
    assert!(ops_sink.received().iter().any(|r| r.json()["type"] == "endpoint.enabled"));

    // Deleting the operational endpoint stops the events.
    let (status, _) = server.delete("/api/v1/operational-webhook/endpoint/ops").await;
    assert_eq!(status, 204);
    let (status, _) = server.get("/api/v1/operational-webhook/endpoint/ops").await;
    assert_eq!(status, 404);
}

/// `message.attempt.failing` at the fourth failure, `message.attempt.recovered`
/// when the message gets through after it.
#[tokio::test]
async fn operational_webhooks_report_failing_and_recovered_messages() {
    let server = TestServer::spawn_with(ServerOptions {
        retry_schedule: "100ms,100ms,100ms,100ms,100ms".into(),
        ..Default::default()
    })
    .await;
    let ops_sink = Sink::start().await;
    let (status, _) = server
        .post(
            "/api/v1/operational-webhook/endpoint",
            json!({"url": ops_sink.url("/ops"), "eventTypes": ["message.attempt.failing", "message.attempt.recovered"]}),
        )
        .await;
    assert_eq!(status, 201);
    let sink = Sink::start().await;
    sink.script(&[503, 500, 500, 500]);
    let app = server.create_app("Acme").await;
    server.create_endpoint(&app, json!({"url": sink.url("/flaky")})).await;
    let msg = text(&server.send_message(&app, "a.b", json!({})).await["id"]);
    wait_for_delivery_status(&server, &app, &msg, 0).await;
    let got = ops_sink.wait_for(2, Duration::from_secs(10)).await;
    let types: Vec<String> = got.iter().map(|r| text(&r.json()["type"])).collect();
    assert_eq!(types, ["message.attempt.failing", "message.attempt.recovered"], "only the types it subscribes to");
    assert_eq!(got[1].json()["data"]["lastAttempt"]["responseStatusCode"], 200);
}

/// Ingest quotas: an application's `throttleRate` (or `--app-ingest-rate`) and
/// `--org-ingest-rate` cap messages per second; beyond them the API answers 429
/// with `Retry-After`, and stores nothing.
#[tokio::test]
async fn ingest_quotas_answer_429_with_retry_after() {
    let server = TestServer::spawn_with(with_args(&["--org-ingest-rate", "8"])).await;
    let (_, app) = server.post("/api/v1/app", json!({"name": "Noisy", "throttleRate": 3})).await;
    let app = text(&app["id"]);
    let other = server.create_app("Quiet").await;
    // Buckets refill while the test runs (slowly, on a loaded machine): each
    // bound allows what could have refilled since the first request.
    let started = std::time::Instant::now();
    let refilled = |rate: f64| (started.elapsed().as_secs_f64() * rate).floor() as usize;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let resp = server
            .request(reqwest::Method::POST, &format!("/api/v1/app/{app}/msg"))
            .json(&json!({"eventType": "a.b", "payload": {}}))
            .send()
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
        if resp.status() == 429 {
            let retry: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((1..=2).contains(&retry), "{retry}");
            let body: Value = resp.json().await.unwrap();
            assert!(body["detail"].as_str().unwrap().contains("3 messages per second"), "{body}");
        }
    }
    let accepted_first = statuses.iter().filter(|s| **s == 202).count();
    assert_eq!(statuses[..3], [202, 202, 202], "{statuses:?}");
    assert!(accepted_first <= 3 + refilled(3.0), "{statuses:?} in {:?}", started.elapsed());
    if refilled(3.0) == 0 {
        assert_eq!(statuses, [202, 202, 202, 429, 429]);
    }
    let (_, list) = server.get(&format!("/api/v1/app/{app}/msg")).await;
    assert_eq!(list["data"].as_array().unwrap().len(), accepted_first, "refused messages are not stored");
    // The organisation's quota (8/s) covers both applications: what the first
    // application used is gone for the second.
    let mut accepted = 0;
    for _ in 0..7 {
        let (status, _) =
            server.post(&format!("/api/v1/app/{other}/msg"), json!({"eventType": "a.b", "payload": {}})).await;
        accepted += usize::from(status == 202);
    }
    let left = 8 - accepted_first;
    assert!(accepted >= left && accepted <= (left + refilled(8.0)).min(7), "{accepted} in {:?}", started.elapsed());
    if refilled(8.0) == 0 {
        assert_eq!(accepted, left);
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, _) = server.post(&format!("/api/v1/app/{app}/msg"), json!({"eventType": "a.b", "payload": {}})).await;
    assert_eq!(status, 202, "the allowance refills");
}

/// One application's backlog does not starve another's: while thousands of
/// messages to app A wait for a slow receiver, app B's messages are delivered
/// at once.
#[tokio::test]
async fn a_flooding_application_does_not_starve_another() {
    let server = TestServer::spawn().await;
    let slow = Sink::start().await;
    slow.set_delay(Some(Duration::from_millis(200)));
    let fast = Sink::start().await;
    let a = server.create_app("Flood").await;
    let b = server.create_app("Steady").await;
    server.create_endpoint(&a, json!({"url": slow.url("/a")})).await;
    server.create_endpoint(&b, json!({"url": fast.url("/b")})).await;
    // 3,008 messages to A at once, from 16 clients, to a receiver that takes
    // 200 ms each (64 at a time: about 10 s to drain).
    let mut flood = Vec::new();
    for w in 0..16 {
        let (base, client, a) = (server.base.clone(), server.client.clone(), a.clone());
        let token = server.token.clone();
        flood.push(tokio::spawn(async move {
            for n in 0..188 {
                let _ = client
                    .post(format!("{base}/api/v1/app/{a}/msg"))
                    .bearer_auth(&token)
                    .json(&json!({"eventType": "a.b", "payload": {"w": w, "n": n}}))
                    .send()
                    .await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // B sends 20 messages/s while A's backlog drains at the slow receiver's pace.
    let mut worst = Duration::ZERO;
    for n in 0..40 {
        let sent = std::time::Instant::now();
        server.send_message(&b, "a.b", json!({"n": n})).await;
        let got = fast.wait_for(n + 1, Duration::from_secs(10)).await;
        assert_eq!(got.len(), n + 1);
        worst = worst.max(got[n].at.duration_since(sent));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(slow.count() < 16 * 188, "A still has a backlog while B was measured ({} delivered)", slow.count());
    assert!(worst < Duration::from_millis(1000), "B's slowest delivery took {worst:?} behind A's flood");
    for f in flood {
        f.abort();
    }
}

/// An endpoint failing for `--disable-after` with no success is disabled
/// (reason `failing`), and its waiting messages pause until it is enabled; an
/// open breaker on the way never disables it by itself.
#[tokio::test]
async fn an_endpoint_failing_too_long_is_disabled() {
    let server = TestServer::spawn_with(ServerOptions {
        retry_schedule: "300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms,300ms".into(),
        extra_args: ["--disable-after", "2s", "--breaker-min-requests", "1000"].iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    })
    .await;
    let sink = Sink::start().await;
    sink.script(&[500; 100]);
    let app = server.create_app("Acme").await;
    let ep = text(&server.create_endpoint(&app, json!({"url": sink.url("/down")})).await["id"]);
    let msg = text(&server.send_message(&app, "a.b", json!({})).await["id"]);
    let disabled = server
        .eventually(Duration::from_secs(10), || async {
            let e = endpoint(&server, &app, &ep).await;
            (e["disabled"] == true).then_some(e)
        })
        .await
        .expect("disabled after failing for 2 s");
    assert!(disabled["health"]["failingSince"].is_string(), "{disabled}");
    let attempts = sink.count();
    assert!((3..=10).contains(&attempts), "{attempts} attempts in about 2 s");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(sink.count(), attempts, "no attempts while disabled");
    let (_, metrics) = server.get("/metrics").await;
    assert!(metrics.as_str().unwrap_or_default().contains("hookd_endpoints_disabled_total{reason=\"failing\"} 1"));
    let (_, dests) = server.get(&format!("/api/v1/app/{app}/msg/{msg}/endpoint")).await;
    assert_eq!(dests["data"][0]["status"], 3, "still to be sent, not failed: {dests}");
}

/// Two nodes on one PostgreSQL, messages sent to both: the node that owns the
/// endpoint's queue sends them all, so `throttleRate` holds cluster-wide.
#[tokio::test]
async fn the_throttle_rate_holds_across_nodes() {
    let Some(admin) = shared_url() else { return };
    let db = TestDatabase::create(&admin);
    let args = ["--database-url", db.url.as_str(), "--poll-interval", "100ms"];
    let a = TestServer::spawn_with(with_args(&args)).await;
    let b = TestServer::spawn_with(with_args(&args)).await;
    let sink = Sink::start().await;
    let app = a.create_app("Acme").await;
    a.create_endpoint(&app, json!({"url": sink.url("/both"), "throttleRate": 10})).await;
    for n in 0..40 {
        let node = if n % 2 == 0 { &a } else { &b };
        let (status, _) =
            node.post(&format!("/api/v1/app/{app}/msg"), json!({"eventType": "a.b", "payload": {"n": n}})).await;
        assert_eq!(status, 202);
    }
    let got = sink.wait_for(40, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 40);
    let span = got[39].at.duration_since(got[2].at).as_secs_f64();
    let rate = 37.0 / span;
    assert!((9.0..=11.0).contains(&rate), "{rate:.2} requests/s for a throttle rate of 10 over two nodes");
}
