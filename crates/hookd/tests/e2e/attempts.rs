//! Attempts and delivery state (`…/attempt/…`, `…/msg/{msg}/endpoint`,
//! `…/endpoint/{ep}/msg`), and sending again: resend, send-example,
//! replay-missing and recover.

use std::time::Duration;

use serde_json::{json, Value};

use crate::mgmt::{ids, text, wait_for_attempts, wait_for_delivery_status};
use crate::support::{ServerOptions, Sink, TestServer};

/// One app, one endpoint to `sink`, one message delivered and its attempt recorded.
struct Delivered {
    app: String,
    ep: String,
    msg: String,
    attempt: Value,
}

async fn deliver_one(server: &TestServer, sink: &Sink) -> Delivered {
    let app = server.create_app("Acme").await;
    let ep = text(&server.create_endpoint(&app, json!({"url": sink.url("/hook")})).await["id"]);
    let msg = text(&server.send_message(&app, "invoice.paid", json!({"amount": 1})).await["id"]);
    let attempt = wait_for_attempts(server, &app, &msg, 1).await.remove(0);
    Delivered { app, ep, msg, attempt }
}

#[tokio::test]
async fn attempts_are_listed_by_endpoint_and_by_message() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let d = deliver_one(&server, &sink).await;
    let a = &d.attempt;
    assert!(text(&a["id"]).starts_with("atmpt_"), "{a}");
    assert_eq!(a["status"], 0);
    assert_eq!(a["statusText"], "success");
    assert_eq!(a["responseStatusCode"], 200);
    assert_eq!(a["response"], "ok");
    assert_eq!(a["triggerType"], 0);
    assert_eq!(a["msgId"], d.msg.as_str());
    assert_eq!(a["endpointId"], d.ep.as_str());
    assert_eq!(a["url"], sink.url("/hook"));
    assert!(a["responseDurationMs"].is_i64() && a["timestamp"].is_string(), "{a}");

    let by_ep = format!("/api/v1/app/{}/attempt/endpoint/{}", d.app, d.ep);
    let by_msg = format!("/api/v1/app/{}/attempt/msg/{}", d.app, d.msg);
    for base in [&by_ep, &by_msg] {
        let (status, list) = server.get(base).await;
        assert_eq!(status, 200, "{list}");
        assert_eq!(list["data"], json!([a]), "{base}");
        assert_eq!(list["done"], true);
        let (_, ok) = server.get(&format!("{base}?status=0")).await;
        assert_eq!(ids(&ok), vec![text(&a["id"])]);
        let (_, failed) = server.get(&format!("{base}?status=2")).await;
        assert!(ids(&failed).is_empty(), "{failed}");
        let (_, with_msg) = server.get(&format!("{base}?with_msg=true&with_content=true")).await;
        assert_eq!(with_msg["data"][0]["msg"]["payload"], json!({"amount": 1}));
    }
    let (_, by_ep_filter) = server.get(&format!("{by_msg}?endpoint_id={}", d.ep)).await;
    assert_eq!(ids(&by_ep_filter), vec![text(&a["id"])]);
}

#[tokio::test]
async fn an_attempt_is_read_by_id() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let d = deliver_one(&server, &sink).await;
    let id = text(&d.attempt["id"]);
    let (status, got) = server.get(&format!("/api/v1/app/{}/msg/{}/attempt/{id}", d.app, d.msg)).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got, d.attempt);
    let (status, _) = server.get(&format!("/api/v1/app/{}/msg/{}/attempt/atmpt_nope", d.app, d.msg)).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn destinations_and_attempted_messages_carry_the_delivery_status() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let d = deliver_one(&server, &sink).await;
    let dest = wait_for_delivery_status(&server, &d.app, &d.msg, 0).await;
    assert_eq!(dest["id"], d.ep.as_str());
    assert_eq!(dest["url"], sink.url("/hook"));
    assert_eq!(dest["statusText"], "success");

    let (status, list) = server.get(&format!("/api/v1/app/{}/endpoint/{}/msg", d.app, d.ep)).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(ids(&list), vec![d.msg.clone()]);
    let m = &list["data"][0];
    assert_eq!(m["status"], 0);
    assert_eq!(m["statusText"], "success");
    assert_eq!(m["eventType"], "invoice.paid");
    assert_eq!(m["payload"], json!({"amount": 1}));
    let (_, lean) = server.get(&format!("/api/v1/app/{}/endpoint/{}/msg?with_content=false", d.app, d.ep)).await;
    assert_eq!(lean["data"][0]["payload"], json!({}));
    let (_, failed) = server.get(&format!("/api/v1/app/{}/endpoint/{}/msg?status=2", d.app, d.ep)).await;
    assert!(ids(&failed).is_empty());
}

#[tokio::test]
async fn resend_sends_again_with_the_same_id_as_a_manual_attempt() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let d = deliver_one(&server, &sink).await;

    let (status, body) = server
        .call(reqwest::Method::POST, &format!("/api/v1/app/{}/msg/{}/endpoint/{}/resend", d.app, d.msg, d.ep), None)
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body, json!({}), "the SDKs parse a JSON object");

    let got = sink.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].header("webhook-id"), d.msg);
    assert_eq!(got[1].header("webhook-id"), d.msg, "same id, so receivers can deduplicate");
    assert_eq!(got[1].body, got[0].body);

    let attempts = wait_for_attempts(&server, &d.app, &d.msg, 2).await;
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["triggerType"], 1, "newest first: the manual one");
    assert_eq!(attempts[0]["status"], 0);
    assert_eq!(attempts[1]["triggerType"], 0);
    assert_eq!(attempts[1]["id"], d.attempt["id"]);
}

#[tokio::test]
async fn send_example_sends_the_schema_example_to_that_endpoint_only() {
    let server = TestServer::spawn().await;
    let (target, bystander) = (Sink::start().await, Sink::start().await);
    let (status, body) = server
        .post(
            "/api/v1/event-type",
            json!({
                "name": "invoice.paid",
                "description": "An invoice was paid",
                "schemas": {"1": {"examples": [{"hello": "world"}]}},
            }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let app = server.create_app("Acme").await;
    let ep = text(&server.create_endpoint(&app, json!({"url": target.url("/t")})).await["id"]);
    server.create_endpoint(&app, json!({"url": bystander.url("/b")})).await;

    let (status, msg) = server
        .post(&format!("/api/v1/app/{app}/endpoint/{ep}/send-example"), json!({"eventType": "invoice.paid"}))
        .await;
    assert!((200..300).contains(&status), "{status} {msg}");
    assert!(text(&msg["id"]).starts_with("msg_"), "{msg}");
    assert_eq!(msg["eventType"], "invoice.paid");
    assert_eq!(msg["payload"], json!({"hello": "world"}));

    let got = target.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].json(), json!({"hello": "world"}));
    assert_eq!(got[0].header("webhook-id"), msg["id"].as_str().unwrap());
    let (_, dest) = server.get(&format!("/api/v1/app/{app}/msg/{}/endpoint", text(&msg["id"]))).await;
    assert_eq!(ids(&dest), vec![ep], "only the chosen endpoint");
    assert_eq!(bystander.count(), 0);
}

#[tokio::test]
async fn replay_missing_sends_what_was_sent_before_the_endpoint_existed() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let app = server.create_app("Acme").await;
    let m1 = text(&server.send_message(&app, "a.b", json!({"n": 1})).await["id"]);
    let m2 = text(&server.send_message(&app, "a.b", json!({"n": 2})).await["id"]);
    let ep = text(&server.create_endpoint(&app, json!({"url": sink.url("/late")})).await["id"]);
    let m3 = text(&server.send_message(&app, "a.b", json!({"n": 3})).await["id"]);
    // m3 went out on its own; wait for it so the replay below is what sends the rest.
    sink.wait_for(1, Duration::from_secs(10)).await;

    let (status, task) = server
        .post(
            &format!("/api/v1/app/{app}/endpoint/{ep}/replay-missing"),
            json!({"since": crate::support::seconds_ago(3600)}),
        )
        .await;
    assert_eq!(status, 202, "{task}");
    assert_eq!(task["task"], "endpoint.replay");
    assert!(task["id"].is_string() && task["status"].is_string() && task["updatedAt"].is_string(), "{task}");

    let got = sink.wait_for(3, Duration::from_secs(10)).await;
    let mut seen: Vec<String> = got.iter().map(|r| r.header("webhook-id").to_string()).collect();
    seen.sort();
    let mut want = vec![m1, m2, m3];
    want.sort();
    assert_eq!(seen, want, "each message once");
}

#[tokio::test]
async fn recover_resends_deliveries_that_failed() {
    let opts = ServerOptions { extra_args: vec!["--poll-interval".into(), "50ms".into()], ..Default::default() };
    let server = TestServer::spawn_with(opts).await;
    let sink = Sink::start().await;
    sink.script(&[500, 500, 500, 500]);
    let app = server.create_app("Acme").await;
    let ep = text(&server.create_endpoint(&app, json!({"url": sink.url("/down")})).await["id"]);
    let msg = text(&server.send_message(&app, "a.b", json!({"n": 1})).await["id"]);

    let dest = wait_for_delivery_status(&server, &app, &msg, 2).await;
    assert_eq!(dest["statusText"], "fail");
    assert_eq!(sink.count(), 4, "the first attempt and three retries");
    let (_, failed) = server.get(&format!("/api/v1/app/{app}/attempt/endpoint/{ep}?status=2")).await;
    assert_eq!(failed["data"].as_array().unwrap().len(), 4);

    let (status, task) = server
        .post(&format!("/api/v1/app/{app}/endpoint/{ep}/recover"), json!({"since": crate::support::seconds_ago(3600)}))
        .await;
    assert_eq!(status, 202, "{task}");
    assert_eq!(task["task"], "endpoint.recover");

    let got = sink.wait_for(5, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 5);
    assert_eq!(got[4].header("webhook-id"), msg);
    wait_for_delivery_status(&server, &app, &msg, 0).await;
    let attempts = wait_for_attempts(&server, &app, &msg, 5).await;
    assert_eq!(attempts[0]["responseStatusCode"], 200);
    assert_eq!(attempts[0]["status"], 0);
}

#[tokio::test]
async fn an_attempts_headers_are_what_was_sent_and_received_without_credentials() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    sink.reply(&[crate::support::Reply::new(202, &[("x-receiver", "r1")])]);
    let app = server.create_app("Acme").await;
    let body = json!({
        "url": sink.url("/hook"),
        "headers": {"x-tenant": "t1", "authorization": "Bearer sk_live_secret", "x-api-key": "k1"}
    });
    server.create_endpoint(&app, body).await;
    let msg = text(&server.send_message(&app, "invoice.paid", json!({"amount": 1})).await["id"]);
    let attempt = wait_for_attempts(&server, &app, &msg, 1).await.remove(0);
    let got = sink.received().remove(0);

    let path = format!("/api/v1/app/{app}/msg/{msg}/attempt/{}/headers", text(&attempt["id"]));
    let (status, h) = server.get(&path).await;
    assert_eq!(status, 200, "{h}");
    let sent = h["sentHeaders"].as_object().unwrap();
    // What the receiver got: hookd's own headers as sent...
    for name in ["webhook-id", "webhook-timestamp", "svix-id", "svix-timestamp", "content-type", "user-agent"] {
        assert_eq!(sent[name], got.header(name), "{name}: {h}");
    }
    assert_eq!(sent["webhook-id"], msg.as_str());
    assert_eq!(sent["content-length"], got.body.len().to_string());
    // ...the signature by its first characters only (enough to compare, too
    // few to replay)...
    let kept = sent["webhook-signature"].as_str().unwrap();
    let prefix = kept.strip_suffix('…').expect("cut short");
    assert!(got.header("webhook-signature").starts_with(prefix) && prefix.len() == "v1,".len() + 8, "{kept}");
    // ...and the endpoint's custom headers by name: their values (credentials
    // among them) are never copied out of the sealed endpoint.
    assert_eq!(h["sensitive"], json!(["authorization", "x-api-key", "x-tenant"]), "{h}");
    for value in ["sk_live_secret", "\"k1\"", "\"t1\""] {
        assert!(!h.to_string().contains(value), "{value}: {h}");
    }
    let received: Vec<(String, String)> =
        serde_json::from_value(h["responseHeaders"].clone()).expect("[name, value] pairs");
    assert!(received.contains(&("x-receiver".into(), "r1".into())), "{h}");

    let (status, _) =
        server.get(&format!("/api/v1/app/{app}/msg/{msg}/attempt/atmpt_2mXsYe2kTuyvCDhTMjwQwfvDQdP/headers")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn an_attempt_without_a_response_has_sent_headers_and_no_response_headers() {
    let server = TestServer::spawn().await;
    let app = server.create_app("Acme").await;
    // Nothing listens there: the request is made, no response comes back.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    server.create_endpoint(&app, json!({"url": format!("http://{closed}/hook")})).await;
    let msg = text(&server.send_message(&app, "invoice.paid", json!({"amount": 1})).await["id"]);
    let attempt = wait_for_attempts(&server, &app, &msg, 1).await.remove(0);
    let path = format!("/api/v1/app/{app}/msg/{msg}/attempt/{}/headers", text(&attempt["id"]));
    let (status, h) = server.get(&path).await;
    assert_eq!(status, 200, "{h}");
    assert_eq!(h["sentHeaders"]["webhook-id"], msg.as_str());
    assert_eq!(h["responseHeaders"], Value::Null, "{h}");
}
