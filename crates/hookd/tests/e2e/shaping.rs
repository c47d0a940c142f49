//! Payload shaping, end to end: filters at fan-out, versioned templates and
//! JavaScript transformations at send time, against a real sink.

use std::time::Duration;

use serde_json::json;

use crate::mgmt::{assert_validation_error, secret_of, text, wait_for_attempts, wait_for_delivery_status};
use crate::support::{verify_standard_webhook, Sink, TestServer};

#[tokio::test]
async fn a_filter_decides_which_messages_an_endpoint_gets() {
    let server = TestServer::spawn().await;
    let (all, big) = (Sink::start().await, Sink::start().await);
    let app = server.create_app("Acme").await;
    server.create_endpoint(&app, json!({"url": all.url("/all")})).await;
    let filter = r#"eventType eq "invoice.paid" and (/amount gt 100 or /customer/tier in ["gold", "vip"])"#;
    let ep = server.create_endpoint(&app, json!({"url": big.url("/big"), "filter": filter})).await;
    assert_eq!(ep["filter"], filter);

    let sends = [
        ("invoice.paid", json!({"amount": 500, "n": 0})),
        ("invoice.paid", json!({"amount": 50, "n": 1})),
        ("invoice.paid", json!({"amount": 50, "customer": {"tier": "vip"}, "n": 2})),
        ("invoice.created", json!({"amount": 500, "n": 3})),
        ("invoice.paid", json!({"n": 4})),
    ];
    for (event_type, payload) in &sends {
        server.send_message(&app, event_type, payload.clone()).await;
    }
    all.wait_for(sends.len(), Duration::from_secs(10)).await;
    // The filtered endpoint had its chance at every message by now.
    big.wait_for(2, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut got: Vec<u64> = big.received().iter().map(|r| r.json()["n"].as_u64().unwrap()).collect();
    got.sort();
    assert_eq!(got, vec![0, 2], "only the paid invoices over 100 or from gold and vip customers");
    assert_eq!(all.count(), sends.len());
}

#[tokio::test]
async fn filters_are_checked_when_written_and_can_be_cleared() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let app = server.create_app("Acme").await;
    let path = format!("/api/v1/app/{app}/endpoint");
    let (status, err) =
        server.post(&path, json!({"url": sink.url("/h"), "filter": "/amount gt 100 and evenType eq \"x\""})).await;
    assert_validation_error(status, &err);
    let msg = err["detail"][0]["msg"].as_str().unwrap().to_string();
    assert!(msg.starts_with("at position 19:"), "{msg}");
    assert!(msg.contains("evenType"), "{msg}");
    assert_eq!(err["detail"][0]["loc"], json!(["body", "filter"]));

    let ep = server.create_endpoint(&app, json!({"url": sink.url("/h"), "filter": "channels contains \"eu\""})).await;
    let ep_path = format!("{path}/{}", text(&ep["id"]));
    server.send_message(&app, "a", json!({"n": 1})).await; // no channel: filtered out
    let (status, _) = server
        .post(&format!("/api/v1/app/{app}/msg"), json!({"eventType": "a", "payload": {"n": 2}, "channels": ["eu"]}))
        .await;
    assert_eq!(status, 202);
    let got = sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].json()["n"], 2);

    let (status, out) = server.patch(&ep_path, json!({"filter": null})).await;
    assert_eq!(status, 200, "{out}");
    assert!(out.get("filter").is_none(), "{out}");
    server.send_message(&app, "a", json!({"n": 3})).await;
    let got = sink.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(got[1].json()["n"], 3);
    let (status, err) = server.patch(&ep_path, json!({"filter": "(/a eq 1"})).await;
    assert_validation_error(status, &err);
}

const SLACK: &str = r#"{"text": {{ "New order " ~ payload.id }}, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": {{ "*" ~ payload.customer ~ "* paid " ~ payload.total }}}}], "event": {{ event_type }}, "env": {{ endpoint.metadata.env }}}"#;

#[tokio::test]
async fn templates_have_immutable_versions_and_render_sample_data() {
    let server = TestServer::spawn().await;
    let (status, t) =
        server.post("/api/v1/template", json!({"name": "Slack order", "uid": "slack-order", "source": SLACK})).await;
    assert_eq!(status, 201, "{t}");
    let id = text(&t["id"]);
    assert!(id.starts_with("tmpl_"), "{id}");
    assert_eq!(t["latestVersion"], 1);

    let sample = json!({
        "payload": {"id": "o_1", "customer": "Ada \"the\" Lovelace", "total": "12.50"},
        "eventType": "order.paid",
        "endpoint": {"metadata": {"env": "prod"}},
    });
    let (status, out) = server.post("/api/v1/template/slack-order/render", sample.clone()).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["contentType"], "application/json");
    let rendered: serde_json::Value = serde_json::from_str(out["output"].as_str().unwrap()).unwrap();
    assert_eq!(rendered["text"], "New order o_1");
    assert_eq!(rendered["blocks"][0]["text"]["text"], "*Ada \"the\" Lovelace* paid 12.50");
    assert_eq!(rendered["env"], "prod");

    // A second version in another format; the first stays as it was.
    let xml = "<order id=\"{{ payload.id }}\">{{ payload | toxml(\"data\") }}</order>";
    let (status, v2) =
        server.post(&format!("/api/v1/template/{id}/version"), json!({"source": xml, "format": "xml"})).await;
    assert_eq!(status, 201, "{v2}");
    assert_eq!(v2["version"], 2);
    assert_eq!(v2["contentType"], "application/xml");
    let (_, v1) = server.get(&format!("/api/v1/template/{id}/version/1")).await;
    assert_eq!(v1["source"], SLACK);
    let (_, list) = server.get(&format!("/api/v1/template/{id}/version")).await;
    let numbers: Vec<u64> = list["data"].as_array().unwrap().iter().map(|v| v["version"].as_u64().unwrap()).collect();
    assert_eq!(numbers, vec![2, 1]);
    let (_, out) = server.post(&format!("/api/v1/template/{id}/render"), sample.clone()).await;
    assert_eq!(out["version"], 2);
    assert!(out["output"].as_str().unwrap().starts_with("<order id=\"o_1\"><data>"), "{out}");
    let mut pinned = sample.clone();
    pinned["version"] = json!(1);
    let (_, out) = server.post(&format!("/api/v1/template/{id}/render"), pinned).await;
    assert_eq!(out["version"], 1);

    // Errors name the line and column: a draft that does not compile, a bad
    // version, a render that makes invalid JSON.
    let mut draft = sample.clone();
    draft["source"] = json!("{\n  \"a\": {{ payload.id }\n}");
    draft["format"] = json!("json");
    let (status, out) = server.post(&format!("/api/v1/template/{id}/render"), draft).await;
    assert_eq!(status, 200, "{out}");
    assert!(out["output"].is_null(), "{out}");
    assert_eq!(out["error"]["line"], 2, "{out}");
    let mut broken = sample.clone();
    broken["source"] = json!("{\"a\": {{ payload.id }}");
    broken["format"] = json!("json");
    let (_, out) = server.post(&format!("/api/v1/template/{id}/render"), broken).await;
    assert!(text(&out["error"]["message"]).contains("not valid JSON"), "{out}");
    let (status, err) = server.post(&format!("/api/v1/template/{id}/version"), json!({"source": "{% if %}"})).await;
    assert_validation_error(status, &err);
    assert!(text(&err["detail"][0]["msg"]).contains("line 1"), "{err}");
    let (status, err) = server.post("/api/v1/template", json!({"name": "x", "source": "{}", "format": "yaml"})).await;
    assert_validation_error(status, &err);
    // Sample data is bounded like the real thing.
    for (field, value) in
        [("channels", json!(["not a channel!"])), ("eventType", json!("bad type!")), ("msgId", json!("x".repeat(3000)))]
    {
        let mut bad = sample.clone();
        bad[field] = value;
        let (status, err) = server.post(&format!("/api/v1/template/{id}/render"), bad).await;
        assert_validation_error(status, &err);
        assert_eq!(err["detail"][0]["loc"], json!(["body", field]), "{err}");
    }
}

#[tokio::test]
async fn an_endpoint_sends_what_its_template_renders_signed_as_sent() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let app = server.create_app("Acme").await;
    let (_, t) = server.post("/api/v1/template", json!({"name": "Slack", "source": SLACK})).await;
    let id = text(&t["id"]);
    let pinned = server
        .create_endpoint(
            &app,
            json!({"url": sink.url("/pinned"), "template": {"id": id, "version": 1}, "metadata": {"env": "prod"}}),
        )
        .await;
    assert_eq!(pinned["template"], json!({"id": id, "version": 1}));
    let latest = server
        .create_endpoint(&app, json!({"url": sink.url("/latest"), "template": {"id": id, "version": "latest"}}))
        .await;
    assert_eq!(latest["template"]["version"], "latest");
    let secret = secret_of(&server, &app, &text(&pinned["id"])).await;

    // A new version reaches the endpoint on `latest`, not the pinned one.
    server
        .post(&format!("/api/v1/template/{id}/version"), json!({"source": "order {{ payload.id }}", "format": "text"}))
        .await;
    server.send_message(&app, "order.paid", json!({"id": "o_7", "customer": "Ada", "total": 3})).await;
    let got = sink.wait_for(2, Duration::from_secs(10)).await;
    let by_path = |p: &str| got.iter().find(|r| r.path == p).unwrap().clone();
    let p = by_path("/pinned");
    assert_eq!(p.header("content-type"), "application/json");
    assert_eq!(p.json()["text"], "New order o_7");
    assert_eq!(p.json()["env"], "prod");
    assert!(verify_standard_webhook(&secret, &p), "the rendered body is what is signed");
    let l = by_path("/latest");
    assert_eq!(l.header("content-type"), "text/plain; charset=utf-8");
    assert_eq!(&l.body[..], b"order o_7");

    // Pinning checks the template and version exist; a template in use stays.
    let path = format!("/api/v1/app/{app}/endpoint");
    for bad in [json!({"id": id, "version": 9}), json!({"id": "tmpl_nope"})] {
        let (status, err) = server.post(&path, json!({"url": sink.url("/x"), "template": bad})).await;
        assert_validation_error(status, &err);
    }
    let (status, err) =
        server.post(&path, json!({"url": sink.url("/x"), "template": {"id": id}, "batch": {"maxMessages": 5}})).await;
    assert_validation_error(status, &err);
    let (status, err) = server.delete(&format!("/api/v1/template/{id}")).await;
    assert_eq!(status, 409, "{err}");
    assert!(
        text(&err["detail"]).contains(text(&pinned["id"]).as_str()) || text(&err["detail"]).contains("ep_"),
        "{err}"
    );
}

#[tokio::test]
async fn a_template_that_fails_at_send_time_fails_the_attempt_with_the_reason() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let app = server.create_app("Acme").await;
    let (_, t) = server.post("/api/v1/template", json!({"name": "Broken", "source": "{\"a\": {{ payload.id }}"})).await;
    server.create_endpoint(&app, json!({"url": sink.url("/h"), "template": {"id": t["id"]}})).await;
    let msg = server.send_message(&app, "x", json!({"id": 1})).await;
    let attempts = wait_for_attempts(&server, &app, &text(&msg["id"]), 1).await;
    let response = text(&attempts[0]["response"]);
    assert!(response.contains("not valid JSON"), "{response}");
    assert_eq!(sink.count(), 0, "nothing sent");
}

#[tokio::test]
async fn a_transformation_reshapes_reroutes_or_cancels_a_webhook() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let app = server.create_app("Acme").await;
    let ep = server.create_endpoint(&app, json!({"url": sink.url("/hook")})).await;
    let ep_id = text(&ep["id"]);
    let secret = secret_of(&server, &app, &ep_id).await;
    let base = format!("/api/v1/app/{app}/endpoint/{ep_id}/transformation");
    let code = r#"function handler(webhook) {
        if (webhook.payload.skip) { webhook.cancel = true; return webhook; }
        webhook.method = "PUT";
        webhook.url = webhook.url.replace("/hook", "/orders/" + webhook.payload.id);
        webhook.headers["x-region"] = webhook.variables.region;
        webhook.payload = { order: webhook.payload.id, kind: webhook.eventType };
        return webhook;
    }"#;
    let (status, out) = server.patch(&base, json!({"code": code, "variables": {"region": "eu-west"}})).await;
    assert_eq!(status, 204, "{out}");
    let (_, got) = server.get(&base).await;
    assert_eq!(got["enabled"], false);
    assert_eq!(got["code"], code);
    assert_eq!(got["variables"]["region"], "eu-west");

    // Simulate first: nothing is sent.
    let (status, sim) = server
        .post(&format!("{base}/simulate"), json!({"code": code, "eventType": "order.paid", "payload": {"id": "o_9"}}))
        .await;
    assert_eq!(status, 200, "{sim}");
    assert_eq!(sim["method"], "PUT");
    assert!(text(&sim["url"]).ends_with("/orders/o_9"), "{sim}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(sim["payload"].as_str().unwrap()).unwrap()["order"], "o_9");
    assert_eq!(sink.count(), 0);

    server.patch(&base, json!({"enabled": true})).await;
    server.send_message(&app, "order.paid", json!({"id": "o_1"})).await;
    let skipped = server.send_message(&app, "order.paid", json!({"id": "o_2", "skip": true})).await;
    let got = sink.wait_for(1, Duration::from_secs(10)).await;
    let r = &got[0];
    assert_eq!(r.method, "PUT");
    assert_eq!(r.path, "/orders/o_1");
    assert_eq!(r.header("x-region"), "eu-west");
    assert_eq!(r.json(), json!({"order": "o_1", "kind": "order.paid"}));
    assert!(verify_standard_webhook(&secret, r), "the transformed body is what is signed");
    // The canceled message is canceled for this endpoint (Svix status 4), not failed.
    wait_for_delivery_status(&server, &app, &text(&skipped["id"]), 4).await;
    assert_eq!(sink.count(), 1);

    // Bad code is refused when written; code that throws fails the attempt with why.
    let (status, err) = server.patch(&base, json!({"code": "function handler(w) { return w; "})).await;
    assert_validation_error(status, &err);
    let (status, _) =
        server.patch(&base, json!({"code": "function handler(w) { throw new Error('no ' + w.eventType); }"})).await;
    assert_eq!(status, 204);
    let msg = server.send_message(&app, "order.paid", json!({"id": "o_3"})).await;
    let attempts = wait_for_attempts(&server, &app, &text(&msg["id"]), 1).await;
    assert!(text(&attempts[0]["response"]).contains("no order.paid"), "{}", attempts[0]);
}

#[tokio::test]
async fn a_raw_payload_is_signed_and_sent_byte_for_byte() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let app = server.create_app("Acme").await;
    let ep = server.create_endpoint(&app, json!({"url": sink.url("/h")})).await;
    let secret = secret_of(&server, &app, &text(&ep["id"])).await;
    let xml = "<order id=\"7\">\n  <total currency=\"EUR\">12.50</total>\n</order>";
    let (status, msg) = server
        .post(
            &format!("/api/v1/app/{app}/msg"),
            json!({"eventType": "order.paid", "payload": {},
                   "transformationsParams": {"rawPayload": xml, "headers": {"content-type": "application/xml"}}}),
        )
        .await;
    assert_eq!(status, 202, "{msg}");
    // As the Svix SDKs build it: no content type given means JSON.
    let compact = "{\"a\":1,   \"b\": [1,2]}";
    server
        .post(
            &format!("/api/v1/app/{app}/msg"),
            json!({"eventType": "x", "payload": {}, "transformationsParams": {"rawPayload": compact}}),
        )
        .await;
    let got = sink.wait_for(2, Duration::from_secs(10)).await;
    let r = got.iter().find(|r| r.header("content-type") == "application/xml").expect("the XML one");
    assert_eq!(&r.body[..], xml.as_bytes());
    assert!(verify_standard_webhook(&secret, r));
    let j = got.iter().find(|r| r.header("content-type") == "application/json").expect("the JSON one");
    assert_eq!(&j.body[..], compact.as_bytes(), "not normalised");

    let (_, out) = server.get(&format!("/api/v1/app/{app}/msg/{}", text(&msg["id"]))).await;
    assert_eq!(out["payload"], json!({}));
    assert_eq!(out["transformationsParams"]["rawPayload"], xml);
    assert_eq!(out["transformationsParams"]["headers"]["content-type"], "application/xml");

    for bad in [
        json!({"rawPayload": 5}),
        json!({"rawPayload": "x", "headers": {"x-other": "1"}}),
        json!({"rawPayload": "x", "headers": {"content-type": "a\nb"}}),
        json!({"somethingElse": true}),
    ] {
        let (status, err) = server
            .post(
                &format!("/api/v1/app/{app}/msg"),
                json!({"eventType": "x", "payload": {}, "transformationsParams": bad}),
            )
            .await;
        assert_validation_error(status, &err);
    }
}

#[tokio::test]
async fn a_transformation_sending_elsewhere_sends_no_endpoint_credentials() {
    let server = TestServer::spawn().await;
    let (own, other) = (Sink::start().await, Sink::start().await);
    let app = server.create_app("Acme").await;
    let ep = server.create_endpoint(&app, json!({"url": own.url("/in"), "headers": {"x-tenant": "t1"}})).await;
    let ep_path = format!("/api/v1/app/{app}/endpoint/{}", text(&ep["id"]));
    let (status, _) = server.put(&format!("{ep_path}/auth"), json!({"type": "bearer", "token": "bt-secret"})).await;
    assert_eq!(status, 204);
    // Messages with `elsewhere` go to the other sink; the rest to a path of the endpoint's own host.
    let code = format!(
        "function handler(webhook) {{ webhook.url = webhook.payload.elsewhere ? {:?} : webhook.url + '/sub'; return webhook; }}",
        other.url("/stolen")
    );
    let (status, out) =
        server.patch(&format!("{ep_path}/transformation"), json!({"code": code, "enabled": true})).await;
    assert_eq!(status, 204, "{out}");
    server.send_message(&app, "a", json!({"elsewhere": true})).await;
    server.send_message(&app, "a", json!({"elsewhere": false})).await;
    let foreign = other.wait_for(1, Duration::from_secs(10)).await;
    let home = own.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(foreign[0].path, "/stolen");
    assert!(foreign[0].headers.get("authorization").is_none(), "no bearer token to another origin");
    assert!(foreign[0].headers.get("x-tenant").is_none(), "no custom headers to another origin");
    assert!(foreign[0].headers.get("webhook-signature").is_some(), "still signed");
    assert_eq!(home[0].path, "/in/sub");
    assert_eq!(home[0].header("authorization"), "Bearer bt-secret");
    assert_eq!(home[0].header("x-tenant"), "t1");
}
