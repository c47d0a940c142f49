//! Messages (`/api/v1/app/{app}/msg`): create, `eventId` and `idempotency-key`
//! deduplication, size and shape limits, list filters, content expunging,
//! creating the application inline, and fan-out by channel and event type.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::mgmt::{
    assert_http_error, assert_validation_error, ids, read, send_raw, send_with_headers, text, wait_for_attempts,
};
use crate::support::{ServerOptions, Sink, TestServer};

async fn create_msg(server: &TestServer, app: &str, body: Value) -> Value {
    let (status, msg) = server.post(&format!("/api/v1/app/{app}/msg"), body).await;
    assert_eq!(status, 202, "{msg}");
    msg
}

/// Sorted ids of a list response, for filters whose order is not the point.
fn id_set(list: &Value) -> Vec<String> {
    let mut v = ids(list);
    v.sort();
    v
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test]
async fn create_answers_202_with_the_message() {
    let server = TestServer::spawn().await;
    let app = server.create_app("Acme").await;
    let msg = create_msg(
        &server,
        &app,
        json!({"eventType": "invoice.paid", "payload": {"amount": 42}, "channels": ["eu"], "tags": ["t1"]}),
    )
    .await;
    assert!(text(&msg["id"]).starts_with("msg_"), "{msg}");
    assert_eq!(msg["eventType"], "invoice.paid");
    assert_eq!(msg["payload"], json!({"amount": 42}));
    assert_eq!(msg["channels"], json!(["eu"]));
    assert_eq!(msg["tags"], json!(["t1"]));
    assert!(msg["eventId"].is_null());
    assert!(msg["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')), "{msg}");

    // The SDKs send with_content=false on create: the payload is then `{}`.
    let (status, lean) = server
        .post(&format!("/api/v1/app/{app}/msg?with_content=false"), json!({"eventType": "a.b", "payload": {"x": 1}}))
        .await;
    assert_eq!(status, 202, "{lean}");
    assert_eq!(lean["payload"], json!({}));
}

#[tokio::test]
async fn a_repeated_event_id_is_a_conflict_naming_the_first_message() {
    let server = TestServer::spawn().await;
    let app = server.create_app("Acme").await;
    let first = create_msg(&server, &app, json!({"eventType": "a.b", "payload": {}, "eventId": "evt-1"})).await;
    assert_eq!(first["eventId"], "evt-1");
    let (status, body) = server
        .post(
            &format!("/api/v1/app/{app}/msg"),
            json!({"eventType": "a.b", "payload": {"other": true}, "eventId": "evt-1"}),
        )
        .await;
    assert_http_error(status, &body, 409, "conflict");
    assert_eq!(body["id"], first["id"], "{body}");
    let (_, list) = server.get(&format!("/api/v1/app/{app}/msg")).await;
    assert_eq!(ids(&list), vec![text(&first["id"])]);
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_response() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let app = server.create_app("Acme").await;
    server.create_endpoint(&app, json!({"url": sink.url("/once")})).await;
    let path = format!("/api/v1/app/{app}/msg");
    let body = json!({"eventType": "order.created", "payload": {"order": 1}});
    let key = [("idempotency-key", "order-1-created")];

    let (status, first) = send_with_headers(&server, Method::POST, &path, &body, &key).await;
    assert_eq!(status, 202, "{first}");
    let (status, again) = send_with_headers(&server, Method::POST, &path, &body, &key).await;
    assert_eq!(status, 202, "{again}");
    assert_eq!(again, first, "the same response, the same message");

    let (status, err) = send_with_headers(
        &server,
        Method::POST,
        &path,
        &json!({"eventType": "order.created", "payload": {"order": 2}}),
        &key,
    )
    .await;
    assert_validation_error(status, &err);

    let (_, list) = server.get(&path).await;
    assert_eq!(ids(&list), vec![text(&first["id"])], "only one message exists");
    let msg = text(&first["id"]);
    wait_for_attempts(&server, &app, &msg, 1).await;
    // A replay creates no delivery, so nothing more can arrive; give a stray one a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = sink.received();
    assert_eq!(got.len(), 1, "one delivery at the sink");
    assert_eq!(got[0].header("webhook-id"), msg);

    // Another key is another message.
    let (status, other) =
        send_with_headers(&server, Method::POST, &path, &body, &[("idempotency-key", "order-1-again")]).await;
    assert_eq!(status, 202);
    assert_ne!(other["id"], first["id"]);
}

#[tokio::test]
async fn a_payload_over_the_limit_is_413_with_a_json_body() {
    let server = TestServer::spawn().await;
    let app = server.create_app("Acme").await;
    let path = format!("/api/v1/app/{app}/msg");
    // Just over 1 MiB of payload, and past the body limit too (1 MiB + 64 KiB).
    // Not far past it: the server answers without reading the rest, and a
    // client still writing megabytes more can meet a closed socket first.
    for size in [1024 * 1024, 1024 * 1024 + 200 * 1024] {
        let payload = json!({"data": "x".repeat(size)});
        let (status, body) = server.post(&path, json!({"eventType": "big.one", "payload": payload})).await;
        assert_http_error(status, &body, 413, "payload_too_large");
    }
    // A body past the limit is left unread, so the server closes the connection
    // after answering and says so; a pooling client then opens a fresh one.
    let resp = server
        .request(Method::POST, &path)
        .json(&json!({"eventType": "big.one", "payload": {"data": "x".repeat(1024 * 1024 + 200 * 1024)}}))
        .send()
        .await
        .expect("a 413 answer, not a broken connection");
    assert_eq!(resp.status().as_u16(), 413);
    assert_eq!(resp.headers().get("connection").map(|v| v.as_bytes()), Some(&b"close"[..]));
    let (_, list) = server.get(&path).await;
    assert!(ids(&list).is_empty());
    let payload = json!({"data": "x".repeat(1024 * 1024 - 100)});
    create_msg(&server, &app, json!({"eventType": "big.ok", "payload": payload})).await;
}

#[tokio::test]
async fn max_payload_bytes_is_configurable() {
    let opts = ServerOptions { extra_args: vec!["--max-payload-bytes".into(), "1000".into()], ..Default::default() };
    let server = TestServer::spawn_with(opts).await;
    let app = server.create_app("Acme").await;
    let path = format!("/api/v1/app/{app}/msg");
    let (status, body) = server.post(&path, json!({"eventType": "a.b", "payload": {"data": "x".repeat(1500)}})).await;
    assert_http_error(status, &body, 413, "payload_too_large");
    let (status, body) =
        server.post(&path, json!({"eventType": "a.b", "payload": {"data": "x".repeat(200_000)}})).await;
    assert_http_error(status, &body, 413, "payload_too_large");
    create_msg(&server, &app, json!({"eventType": "a.b", "payload": {"data": "x".repeat(900)}})).await;
}

#[tokio::test]
async fn a_payload_that_is_not_an_object_is_a_validation_error() {
    let server = TestServer::spawn().await;
    let app = server.create_app("Acme").await;
    let path = format!("/api/v1/app/{app}/msg");
    for payload in [json!([1, 2]), json!("text"), json!(42), json!(null), json!(true)] {
        let (status, body) = server.post(&path, json!({"eventType": "a.b", "payload": payload})).await;
        assert_validation_error(status, &body);
    }
    let (status, body) = server.post(&path, json!({"payload": {}})).await;
    assert_validation_error(status, &body);
    let (status, body) = server.post(&path, json!({"eventType": "a b", "payload": {}})).await;
    assert_validation_error(status, &body);
    let (status, body) = send_raw(&server, Method::POST, &path, r#"{"eventType": "a.b", "payload": {"#).await;
    assert_eq!(status, 400, "{body}");
    let (_, list) = server.get(&path).await;
    assert!(ids(&list).is_empty());
}

#[tokio::test]
async fn list_filters_by_event_type_channel_and_time() {
    let server = TestServer::spawn().await;
    let app = server.create_app("Acme").await;
    let m1 = create_msg(&server, &app, json!({"eventType": "a.one", "payload": {}, "channels": ["c1"]})).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let m2 = create_msg(&server, &app, json!({"eventType": "b.two", "payload": {}, "channels": ["c2"]})).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let m3 = create_msg(&server, &app, json!({"eventType": "c.three", "payload": {}, "channels": ["c1", "c2"]})).await;
    let [m1, m2, m3] = [&m1, &m2, &m3].map(|m| text(&m["id"]));
    let base = format!("/api/v1/app/{app}/msg");

    let (_, all) = server.get(&base).await;
    assert_eq!(ids(&all), vec![m3.clone(), m2.clone(), m1.clone()], "newest first");

    let (_, l) = server.get(&format!("{base}?event_types=a.one,b.two")).await;
    assert_eq!(id_set(&l), sorted(vec![m1.clone(), m2.clone()]), "comma-joined");
    let (_, l) = server.get(&format!("{base}?event_types=a.one%2Cc.three")).await;
    assert_eq!(id_set(&l), sorted(vec![m1.clone(), m3.clone()]), "comma-joined, encoded");
    let (_, l) = server.get(&format!("{base}?event_types=a.one&event_types=c.three")).await;
    assert_eq!(id_set(&l), sorted(vec![m1.clone(), m3.clone()]), "repeated keys");
    let (_, l) = server.get(&format!("{base}?event_types=nothing.here")).await;
    assert!(ids(&l).is_empty());

    let (_, l) = server.get(&format!("{base}?channel=c1")).await;
    assert_eq!(id_set(&l), sorted(vec![m1.clone(), m3.clone()]));
    let (_, l) = server.get(&format!("{base}?channel=c2&event_types=b.two")).await;
    assert_eq!(ids(&l), vec![m2.clone()]);

    let (_, got1) = server.get(&format!("{base}/{m1}")).await;
    let (_, got3) = server.get(&format!("{base}/{m3}")).await;
    let (t1, t3) = (text(&got1["timestamp"]), text(&got3["timestamp"]));
    let (status, l) = server.get(&format!("{base}?before={t3}")).await;
    assert_eq!(status, 200, "{l}");
    assert_eq!(id_set(&l), sorted(vec![m1.clone(), m2.clone()]), "before is exclusive");
    let (_, l) = server.get(&format!("{base}?after={t1}")).await;
    assert_eq!(id_set(&l), sorted(vec![m2.clone(), m3.clone()]), "after is exclusive");
    let (_, l) = server.get(&format!("{base}?after={t1}&before={t3}")).await;
    assert_eq!(ids(&l), vec![m2.clone()]);
    // An offset written as the SDKs write it (`+00:00`, percent-encoded).
    let t3_offset = t3.replace('Z', "%2B00:00");
    let (status, l) = server.get(&format!("{base}?before={t3_offset}")).await;
    assert_eq!(status, 200, "{l}");
    assert_eq!(id_set(&l), sorted(vec![m1, m2]));
    // And without an offset (naive datetimes from the Python SDK), taken as UTC.
    let (status, l) = server.get(&format!("{base}?before={}", t3.trim_end_matches('Z'))).await;
    assert_eq!(status, 200, "{l}");
    assert_eq!(id_set(&l).len(), 2, "{l}");
    let (status, body) = server.get(&format!("{base}?before=yesterday")).await;
    assert_validation_error(status, &body);
}

#[tokio::test]
async fn with_content_false_leaves_the_payload_out() {
    let server = TestServer::spawn().await;
    let app = server.create_app("Acme").await;
    let msg = create_msg(&server, &app, json!({"eventType": "a.b", "payload": {"secret": "data"}})).await;
    let id = text(&msg["id"]);
    let base = format!("/api/v1/app/{app}/msg");

    let (_, l) = server.get(&format!("{base}?with_content=false")).await;
    assert_eq!(l["data"][0]["payload"], json!({}));
    let (_, m) = server.get(&format!("{base}/{id}?with_content=false")).await;
    assert_eq!(m["payload"], json!({}));
    assert_eq!(m["eventType"], "a.b");

    let (_, l) = server.get(&base).await;
    assert_eq!(l["data"][0]["payload"], json!({"secret": "data"}));
    let (_, m) = server.get(&format!("{base}/{id}?with_content=true")).await;
    assert_eq!(m["payload"], json!({"secret": "data"}));
}

#[tokio::test]
async fn get_by_id_and_by_event_id() {
    let server = TestServer::spawn().await;
    let app = server.create_app("Acme").await;
    let msg = create_msg(&server, &app, json!({"eventType": "a.b", "payload": {"n": 1}, "eventId": "evt-42"})).await;
    let id = text(&msg["id"]);
    for key in [id.as_str(), "evt-42"] {
        let (status, got) = server.get(&format!("/api/v1/app/{app}/msg/{key}")).await;
        assert_eq!(status, 200, "{got}");
        assert_eq!(got, msg);
    }
    let (status, body) = server.get(&format!("/api/v1/app/{app}/msg/evt-43")).await;
    assert_http_error(status, &body, 404, "not_found");
    // A message is only found under its own application.
    let other = server.create_app("Other").await;
    let (status, body) = server.get(&format!("/api/v1/app/{other}/msg/{id}")).await;
    assert_http_error(status, &body, 404, "not_found");
}

#[tokio::test]
async fn expunging_content_empties_the_payload() {
    let server = TestServer::spawn().await;
    let app = server.create_app("Acme").await;
    let msg =
        create_msg(&server, &app, json!({"eventType": "a.b", "payload": {"card": "4242"}, "eventId": "e1"})).await;
    let id = text(&msg["id"]);
    let (status, body) = server.delete(&format!("/api/v1/app/{app}/msg/{id}/content")).await;
    assert_eq!(status, 204, "{body}");
    for path in [format!("/api/v1/app/{app}/msg/{id}?with_content=true"), format!("/api/v1/app/{app}/msg/e1")] {
        let (status, got) = server.get(&path).await;
        assert_eq!(status, 200, "{got}");
        assert_eq!(got["payload"], json!({}), "{path}");
        assert_eq!(got["eventType"], "a.b", "the message itself remains");
    }
    let (_, list) = server.get(&format!("/api/v1/app/{app}/msg")).await;
    assert_eq!(list["data"][0]["payload"], json!({}));
    let (status, body) = server.delete(&format!("/api/v1/app/{app}/msg/msg_unknown/content")).await;
    assert_http_error(status, &body, 404, "not_found");
}

#[tokio::test]
async fn a_message_to_an_unknown_app_is_404_unless_the_app_is_given() {
    let server = TestServer::spawn().await;
    let (status, body) = server.post("/api/v1/app/customer-7/msg", json!({"eventType": "a.b", "payload": {}})).await;
    assert_http_error(status, &body, 404, "not_found");
    let (status, _) = server.get("/api/v1/app/customer-7").await;
    assert_eq!(status, 404);

    let (status, msg) = server
        .post(
            "/api/v1/app/customer-7/msg",
            json!({"eventType": "a.b", "payload": {"hi": 1}, "application": {"name": "Customer 7"}}),
        )
        .await;
    assert_eq!(status, 202, "{msg}");
    let (status, app) = server.get("/api/v1/app/customer-7").await;
    assert_eq!(status, 200, "{app}");
    assert_eq!(app["uid"], "customer-7");
    assert_eq!(app["name"], "Customer 7");
    let (_, list) = server.get("/api/v1/app/customer-7/msg").await;
    assert_eq!(ids(&list), vec![text(&msg["id"])]);

    // A message that is refused creates no application either.
    for bad in [
        json!({"eventType": "a b", "payload": {}, "application": {"name": "Nope"}}),
        json!({"eventType": "a.b", "payload": [1], "application": {"name": "Nope"}}),
    ] {
        let (status, body) = server.post("/api/v1/app/customer-8/msg", bad).await;
        assert_validation_error(status, &body);
        let (status, _) = server.get("/api/v1/app/customer-8").await;
        assert_eq!(status, 404, "no application was left behind");
    }

    // Once it exists, `application` is ignored and no second app is made.
    create_msg(
        &server,
        "customer-7",
        json!({"eventType": "a.b", "payload": {}, "application": {"name": "Other name"}}),
    )
    .await;
    let (_, apps) = server.get("/api/v1/app").await;
    assert_eq!(apps["data"].as_array().unwrap().len(), 1);
}

/// Waits until the sink got `n` requests and returns their `webhook-id`s, sorted.
async fn received_ids(sink: &Sink, n: usize) -> Vec<String> {
    let got = sink.wait_for(n, Duration::from_secs(10)).await;
    let mut ids: Vec<String> = got.iter().map(|r| r.header("webhook-id").to_string()).collect();
    ids.sort();
    ids
}

/// The endpoints a message was fanned out to, sorted.
async fn destinations(server: &TestServer, app: &str, msg: &str) -> Vec<String> {
    let (_, list) = server.get(&format!("/api/v1/app/{app}/msg/{msg}/endpoint")).await;
    id_set(&list)
}

#[tokio::test]
async fn an_endpoint_with_channels_gets_only_messages_sharing_one() {
    let server = TestServer::spawn().await;
    let (all_sink, eu_sink) = (Sink::start().await, Sink::start().await);
    let app = server.create_app("Acme").await;
    let all = text(&server.create_endpoint(&app, json!({"url": all_sink.url("/all")})).await["id"]);
    let eu = text(
        &server.create_endpoint(&app, json!({"url": eu_sink.url("/eu"), "channels": ["eu", "eu-west"]})).await["id"],
    );
    let none = text(&create_msg(&server, &app, json!({"eventType": "a.b", "payload": {}})).await["id"]);
    let in_eu = text(
        &create_msg(&server, &app, json!({"eventType": "a.b", "payload": {}, "channels": ["us", "eu"]})).await["id"],
    );
    let in_us =
        text(&create_msg(&server, &app, json!({"eventType": "a.b", "payload": {}, "channels": ["us"]})).await["id"]);

    assert_eq!(destinations(&server, &app, &none).await, vec![all.clone()]);
    assert_eq!(destinations(&server, &app, &in_eu).await, sorted(vec![all.clone(), eu.clone()]));
    assert_eq!(destinations(&server, &app, &in_us).await, vec![all]);
    assert_eq!(received_ids(&all_sink, 3).await, sorted(vec![none, in_eu.clone(), in_us]));
    assert_eq!(received_ids(&eu_sink, 1).await, vec![in_eu]);
}

#[tokio::test]
async fn an_endpoint_with_event_types_gets_only_those() {
    let server = TestServer::spawn().await;
    let (invoices, users) = (Sink::start().await, Sink::start().await);
    let app = server.create_app("Acme").await;
    let inv_ep = text(
        &server.create_endpoint(&app, json!({"url": invoices.url("/i"), "filterTypes": ["invoice.paid"]})).await["id"],
    );
    let user_ep = text(
        &server
            .create_endpoint(&app, json!({"url": users.url("/u"), "eventTypes": ["user.created", "user.deleted"]}))
            .await["id"],
    );
    let paid = text(&server.send_message(&app, "invoice.paid", json!({})).await["id"]);
    let created = text(&server.send_message(&app, "user.created", json!({})).await["id"]);
    let other = text(&server.send_message(&app, "invoice.voided", json!({})).await["id"]);

    assert_eq!(destinations(&server, &app, &paid).await, vec![inv_ep]);
    assert_eq!(destinations(&server, &app, &created).await, vec![user_ep]);
    assert!(destinations(&server, &app, &other).await.is_empty());
    assert_eq!(received_ids(&invoices, 1).await, vec![paid]);
    assert_eq!(received_ids(&users, 1).await, vec![created]);
}

#[tokio::test]
async fn an_unregistered_event_type_is_accepted_and_delivered() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let app = server.create_app("Acme").await;
    server.create_endpoint(&app, json!({"url": sink.url("/any")})).await;
    let (_, types) = server.get("/api/v1/event-type?include_archived=true").await;
    assert!(types["data"].as_array().unwrap().is_empty());
    let msg = server.send_message(&app, "never.registered", json!({"ok": true})).await;
    let got = sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header("webhook-id"), msg["id"].as_str().unwrap());
    assert_eq!(got[0].json(), json!({"ok": true}));
}

#[tokio::test]
async fn concurrent_requests_with_one_idempotency_key_make_one_message() {
    let server = TestServer::spawn().await;
    let app = server.create_app("Acme").await;
    let path = format!("/api/v1/app/{app}/msg");
    let body = json!({"eventType": "a.b", "payload": {"n": 1}});
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let req = server.request(Method::POST, &path).header("idempotency-key", "burst").json(&body);
        calls.spawn(async move { read(req.send().await.expect("request")).await });
    }
    let answers = calls.join_all().await;
    let mut created = Vec::new();
    for (status, out) in &answers {
        match status {
            202 => created.push(text(&out["id"])),
            409 => assert_eq!(out["code"], "conflict", "{out}"),
            _ => panic!("unexpected answer {status} {out}"),
        }
    }
    assert!(!created.is_empty(), "{answers:?}");
    assert!(created.iter().all(|id| *id == created[0]), "one message id in every 202: {answers:?}");
    let (_, list) = server.get(&path).await;
    assert_eq!(ids(&list), vec![created[0].clone()], "only one message exists");
}

#[tokio::test]
async fn list_pages_newest_first_and_back() {
    let server = TestServer::spawn().await;
    let app = server.create_app("Acme").await;
    let mut sent = Vec::new();
    for n in 0..5 {
        sent.push(text(&server.send_message(&app, "a.b", json!({"n": n})).await["id"]));
    }
    sent.reverse();
    let base = format!("/api/v1/app/{app}/msg?limit=2");
    let (_, p1) = server.get(&base).await;
    let (_, p2) = server.get(&format!("{base}&iterator={}", text(&p1["iterator"]))).await;
    let (_, p3) = server.get(&format!("{base}&iterator={}", text(&p2["iterator"]))).await;
    assert_eq!([&p1, &p2, &p3].map(|p| p["done"].clone()), [json!(false), json!(false), json!(true)]);
    let seen: Vec<String> = [&p1, &p2, &p3].iter().flat_map(|p| ids(p)).collect();
    assert_eq!(seen, sent, "newest first, each once");
    let (_, back) = server.get(&format!("{base}&iterator={}", text(&p3["prevIterator"]))).await;
    assert_eq!(ids(&back), ids(&p2));
}

#[tokio::test]
async fn out_of_range_scheduling_and_bad_raw_payloads_are_refused_not_ignored() {
    let server = TestServer::spawn().await;
    let app = server.create_app("Acme").await;
    let too_far = hookd_core::timefmt::format_millis(hookd_core::timefmt::now_millis() + 31 * 86_400_000);
    for (field, value) in [
        ("deliverAt", json!(too_far)),
        ("deliverAt", json!(crate::support::seconds_ago(3600))),
        ("deliverAt", json!("tomorrow")),
        ("transformationsParams", json!({"rawPayload": 5})),
        ("transformationsParams", json!({"rawPayload": "x", "headers": {"x-other": "1"}})),
    ] {
        let mut body = json!({"eventType": "a.b", "payload": {}});
        body[field] = value;
        let (status, out) = server.post(&format!("/api/v1/app/{app}/msg"), body).await;
        assert_eq!(status, 422, "{out}");
        assert_eq!(out["detail"][0]["loc"], json!(["body", field]));
    }
    let (_, list) = server.get(&format!("/api/v1/app/{app}/msg")).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0, "nothing was stored");
}
