//! Inbound sources: the Svix ingest API, receiving from providers (signed as
//! each provider signs), dedupe, the request log, handshakes, limits, replay.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::postgres::{shared_url, TestDatabase};
use crate::support::{verify_standard_webhook, ServerOptions, Sink, TestServer};

fn hmac_hex(key: &[u8], content: &[u8]) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
    m.update(content);
    m.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// A `Stripe-Signature` header for `body`, as Stripe computes it.
fn stripe_header(secret: &str, body: &str, t: i64) -> String {
    format!("t={t},v1={}", hmac_hex(secret.as_bytes(), format!("{t}.{body}").as_bytes()))
}

/// Creates a source and one ingest endpoint to the sink; returns (source, ingest URL).
async fn source_to(node: &TestServer, sink: &Sink, body: Value) -> (Value, String) {
    let (status, src) = node.post("/ingest/api/v1/source", body).await;
    assert_eq!(status, 201, "{src}");
    let id = src["id"].as_str().unwrap();
    let (status, ep) =
        node.post(&format!("/ingest/api/v1/source/{id}/endpoint"), json!({"url": sink.url("/inbound")})).await;
    assert_eq!(status, 201, "{ep}");
    let url = src["ingestUrl"].as_str().unwrap().to_string();
    (src, url)
}

async fn post_raw(url: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let mut req = reqwest::Client::new().post(url).body(body.to_string());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

async fn requests(node: &TestServer, source: &str) -> Vec<Value> {
    let (status, list) = node.get(&format!("/ingest/api/v1/source/{source}/request")).await;
    assert_eq!(status, 200, "{list}");
    list["data"].as_array().unwrap().clone()
}

async fn verified_stripe_requests_are_forwarded_once_and_forgeries_never(node: TestServer) {
    let sink = Sink::start().await;
    let (src, url) = source_to(
        &node,
        &sink,
        json!({"name": "Stripe", "uid": "stripe", "type": "stripe", "config": {"secret": "whsec_stripe_test"}}),
    )
    .await;
    // The secret never comes back.
    assert_eq!(src["config"], json!({}));
    assert_eq!(src["type"], "stripe");
    let body = r#"{"id":"evt_1","type":"payment_intent.succeeded","data":{"object":{"amount":100}}}"#;
    let sig = stripe_header("whsec_stripe_test", body, now_secs());
    let (status, answer) =
        post_raw(&url, &[("stripe-signature", &sig), ("content-type", "application/json")], body).await;
    assert_eq!(status, 200, "{answer}");
    // The provider retries the same event: acknowledged, not forwarded again.
    let (status, _) = post_raw(&url, &[("stripe-signature", &sig)], body).await;
    assert_eq!(status, 200);
    // A forgery and a stale replay: 401, never forwarded.
    let forged = stripe_header("whsec_wrong", body, now_secs());
    assert_eq!(post_raw(&url, &[("stripe-signature", &forged)], body).await.0, 401);
    let stale = stripe_header("whsec_stripe_test", r#"{"id":"evt_2","type":"x"}"#, now_secs() - 3600);
    let (status, detail) = post_raw(&url, &[("stripe-signature", &stale)], r#"{"id":"evt_2","type":"x"}"#).await;
    assert_eq!(status, 401);
    assert!(detail.contains("tolerance"), "{detail}");

    let got = sink.wait_for(1, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.count(), 1, "forwarded exactly once");
    // Byte for byte, signed with the ingest endpoint's Standard Webhooks secret,
    // under the provider's event type.
    assert_eq!(&got[0].body[..], body.as_bytes());
    let sid = src["id"].as_str().unwrap();
    let (_, eps) = node.get(&format!("/ingest/api/v1/source/{sid}/endpoint")).await;
    let ep = eps["data"][0]["id"].as_str().unwrap();
    let (_, secret) = node.get(&format!("/ingest/api/v1/source/{sid}/endpoint/{ep}/secret")).await;
    assert!(verify_standard_webhook(secret["key"].as_str().unwrap(), &got[0]));

    let log = requests(&node, "stripe").await;
    let statuses: Vec<&str> = log.iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["rejected", "rejected", "duplicate", "forwarded"], "{log:?}");
    assert_eq!(log[3]["eventType"], "payment_intent.succeeded");
    assert_eq!(log[3]["eventId"], "evt_1");
    assert_eq!(log[2]["msgId"], log[3]["msgId"]);
    assert_eq!(log[3]["body"], body);
    // Svix's error log lists the refusals.
    let (_, errors) = node.get(&format!("/ingest/api/v1/source/{sid}/log")).await;
    assert_eq!(errors["data"].as_array().unwrap().len(), 2);
    assert_eq!(errors["data"][0]["status_code"], 401);
    assert!(errors["data"][0]["error_text"].as_str().unwrap().contains("tolerance"));
}

#[tokio::test]
async fn stripe_requests_are_verified_deduplicated_and_forwarded() {
    verified_stripe_requests_are_forwarded_once_and_forgeries_never(TestServer::spawn().await).await;
}

#[tokio::test]
async fn stripe_requests_are_verified_deduplicated_and_forwarded_on_postgres() {
    let Some(admin) = shared_url() else { return };
    let db = TestDatabase::create(&admin);
    let opts = ServerOptions { extra_args: vec!["--database-url".into(), db.url.clone()], ..Default::default() };
    verified_stripe_requests_are_forwarded_once_and_forgeries_never(TestServer::spawn_with(opts).await).await;
}

#[tokio::test]
async fn sources_follow_the_svix_shapes_and_refuse_bad_configuration() {
    let node = TestServer::spawn().await;
    let bad = [
        (json!({"name": "x", "type": "stripe", "config": {"secret": "s"}}), "name"),
        (json!({"name": "Stripe", "type": "stripe", "config": {}}), "config.secret"),
        (json!({"name": "Nope", "type": "nope"}), "not a source type"),
        (json!({"name": "VGS", "type": "vgs", "config": {"secret": "s"}}), "hmac"),
        (json!({"name": "Svix", "type": "svix", "config": {"secret": "not base64!"}}), "config.secret"),
        (
            json!({"name": "Hmac", "type": "hmac", "config": {"secret": "s", "algorithm": "sha3", "header": "x"}}),
            "algorithm",
        ),
        (json!({"name": "Gen", "type": "generic-webhook", "allowedIps": ["10.0.0.0/33"]}), "allowedIps"),
        (json!({"name": "Gen", "type": "generic-webhook", "maxBodyBytes": 0}), "maxBodyBytes"),
        (json!({"name": "Gen", "type": "generic-webhook", "bogusField": 1}), "bogusField"),
        (json!({"name": "Cron", "type": "cron", "config": {"schedule": "every minute", "payload": "{}"}}), "schedule"),
    ];
    for (body, needle) in bad {
        let (status, err) = node.post("/ingest/api/v1/source", body.clone()).await;
        assert_eq!(status, 422, "{body} -> {err}");
        assert!(err.to_string().contains(needle), "{body}: {err} does not name {needle}");
    }
    let (status, src) = node
        .post(
            "/ingest/api/v1/source",
            json!({"name": "GitHub", "uid": "gh", "type": "github", "config": {"secret": "octo"}, "metadata": {"team": "infra"}}),
        )
        .await;
    assert_eq!(status, 201, "{src}");
    for field in ["id", "uid", "name", "type", "config", "ingestUrl", "createdAt", "updatedAt", "metadata"] {
        assert!(src.get(field).is_some(), "{field} missing from {src}");
    }
    assert!(src["id"].as_str().unwrap().starts_with("src_"));
    assert!(src["ingestUrl"].as_str().unwrap().starts_with(&format!("{}/ingest/", node.base)));
    // A uid is unique.
    let (status, _) =
        node.post("/ingest/api/v1/source", json!({"name": "GitHub 2", "uid": "gh", "type": "github"})).await;
    assert_eq!(status, 409);
    // Get by uid, patch, put, list, delete.
    let (status, got) = node.get("/ingest/api/v1/source/gh").await;
    assert_eq!((status, &got["id"]), (200, &src["id"]));
    let (status, patched) = node.patch("/ingest/api/v1/source/gh", json!({"name": "GitHub org", "rateLimit": 5})).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!((patched["name"].as_str(), patched["rateLimit"].as_i64()), (Some("GitHub org"), Some(5)));
    assert_eq!(patched["metadata"]["team"], "infra");
    let (status, put) = node
        .put(
            "/ingest/api/v1/source/shopify-main",
            json!({"name": "Shopify", "type": "shopify", "config": {"secret": "shp"}}),
        )
        .await;
    assert_eq!(status, 201, "{put}");
    assert_eq!(put["uid"], "shopify-main");
    let (_, list) = node.get("/ingest/api/v1/source").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
    // The source's application is visible, named after it.
    let (_, app) = node.get(&format!("/api/v1/app/{}", src["appId"].as_str().unwrap())).await;
    assert_eq!(app["name"], "inbound: GitHub org");
    assert_eq!(node.delete("/ingest/api/v1/source/gh").await.0, 204);
    assert_eq!(node.get("/ingest/api/v1/source/gh").await.0, 404);
    assert_eq!(node.get(&format!("/api/v1/app/{}", src["appId"].as_str().unwrap())).await.0, 404);
    // The deleted source's URL is gone too.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(post_raw(src["ingestUrl"].as_str().unwrap(), &[], "{}").await.0, 404);
}

#[tokio::test]
async fn github_events_filter_by_type_and_dedupe_on_the_delivery_id() {
    let node = TestServer::spawn().await;
    let sink = Sink::start().await;
    let (status, src) = node
        .post("/ingest/api/v1/source", json!({"name": "GitHub", "type": "github", "config": {"secret": "octo"}}))
        .await;
    assert_eq!(status, 201);
    let id = src["id"].as_str().unwrap();
    let url = src["ingestUrl"].as_str().unwrap();
    // Only pushes reach this endpoint.
    let (status, _) = node
        .post(
            &format!("/ingest/api/v1/source/{id}/endpoint"),
            json!({"url": sink.url("/push"), "eventTypes": ["push"]}),
        )
        .await;
    assert_eq!(status, 201);
    let send = |event: &'static str, delivery: &'static str| {
        let body = format!(r#"{{"ref":"refs/heads/main","event":"{event}"}}"#);
        let sig = format!("sha256={}", hmac_hex(b"octo", body.as_bytes()));
        async move {
            post_raw(
                url,
                &[("x-hub-signature-256", &sig), ("x-github-event", event), ("x-github-delivery", delivery)],
                &body,
            )
            .await
            .0
        }
    };
    assert_eq!(send("push", "d-1").await, 200);
    assert_eq!(send("issues", "d-2").await, 200);
    assert_eq!(send("push", "d-1").await, 200);
    assert_eq!(send("push", "d-3").await, 200);
    sink.wait_for(2, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = sink.received();
    assert_eq!(got.len(), 2, "d-1 and d-3, once each");
    assert!(got.iter().all(|r| r.json()["event"] == "push"));
    let log = requests(&node, id).await;
    let statuses: Vec<&str> = log.iter().map(|r| r["status"].as_str().unwrap()).collect();
    // Newest first: d-3, the repeated d-1, issues (no endpoint took it), d-1.
    assert_eq!(statuses, ["forwarded", "duplicate", "verified", "forwarded"], "{log:?}");
    // Filters on the log.
    let (_, issues) = node.get(&format!("/ingest/api/v1/source/{id}/request?eventType=issues")).await;
    assert_eq!(issues["data"].as_array().unwrap().len(), 1);
    let (_, dups) = node.get(&format!("/ingest/api/v1/source/{id}/request?outcome=duplicate&with_content=false")).await;
    assert_eq!(dups["data"].as_array().unwrap().len(), 1);
    assert!(dups["data"][0].get("body").is_none());
}

#[tokio::test]
async fn handshakes_are_answered_and_not_forwarded() {
    let node = TestServer::spawn().await;
    let sink = Sink::start().await;
    // Slack: a signed url_verification gets its challenge back.
    let (_, slack) =
        source_to(&node, &sink, json!({"name": "Slack", "type": "slack", "config": {"secret": "slack-signing"}})).await;
    let body =
        r#"{"type":"url_verification","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","token":"x"}"#;
    let ts = now_secs().to_string();
    let sig = format!("v0={}", hmac_hex(b"slack-signing", format!("v0:{ts}:{body}").as_bytes()));
    let (status, answer) =
        post_raw(&slack, &[("x-slack-signature", &sig), ("x-slack-request-timestamp", &ts)], body).await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&answer).unwrap()["challenge"],
        "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    );
    // Unsigned, it is refused.
    assert_eq!(post_raw(&slack, &[], body).await.0, 401);

    // Zoom: the plain token comes back with its HMAC under the secret.
    let (_, zoom) =
        source_to(&node, &sink, json!({"name": "Zoom", "type": "zoom", "config": {"secret": "zoom-secret"}})).await;
    let body = r#"{"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event_ts":1654503849680,"event":"endpoint.url_validation"}"#;
    let ts = now_secs().to_string();
    let sig = format!("v0={}", hmac_hex(b"zoom-secret", format!("v0:{ts}:{body}").as_bytes()));
    let (status, answer) = post_raw(&zoom, &[("x-zm-signature", &sig), ("x-zm-request-timestamp", &ts)], body).await;
    assert_eq!(status, 200, "{answer}");
    let answer: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(answer["plainToken"], "qgg8vlvZRS6UYooatFL8Aw");
    assert_eq!(answer["encryptedToken"], hmac_hex(b"zoom-secret", b"qgg8vlvZRS6UYooatFL8Aw"));

    // Meta: the subscription GET.
    let (_, meta) = source_to(
        &node,
        &sink,
        json!({"name": "Meta", "type": "meta", "config": {"secret": "app-secret", "verifyToken": "vt-123"}}),
    )
    .await;
    let ok = reqwest::get(format!("{meta}?hub.mode=subscribe&hub.verify_token=vt-123&hub.challenge=1158201444"))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), "1158201444");
    let bad = reqwest::get(format!("{meta}?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1")).await.unwrap();
    assert_eq!(bad.status(), 403);

    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.count(), 0, "handshakes are not events");
}

#[tokio::test]
async fn a_rotated_token_keeps_working_and_limits_hold() {
    let node = TestServer::spawn().await;
    let sink = Sink::start().await;
    let (src, old_url) = source_to(
        &node,
        &sink,
        json!({"name": "Gen", "type": "generic-webhook", "maxBodyBytes": 1024, "rateLimit": 3, "eventTypePointer": "/kind"}),
    )
    .await;
    let id = src["id"].as_str().unwrap();
    let (status, rotated) = node.post(&format!("/ingest/api/v1/source/{id}/token/rotate"), json!({})).await;
    assert_eq!(status, 200);
    let new_url = rotated["ingestUrl"].as_str().unwrap();
    assert_ne!(new_url, old_url);
    assert_eq!(post_raw(new_url, &[], r#"{"kind":"a"}"#).await.0, 200);
    assert_eq!(post_raw(&old_url, &[], r#"{"kind":"b"}"#).await.0, 200, "the old token works for 48 hours");
    // Over the body limit: 413, without reading the rest.
    let big = format!(r#"{{"kind":"c","pad":"{}"}}"#, "x".repeat(2000));
    assert_eq!(post_raw(new_url, &[], &big).await.0, 413);
    // Over the rate: 429 with Retry-After.
    let mut limited = false;
    for _ in 0..10 {
        let resp = reqwest::Client::new().post(new_url).body("{}").send().await.unwrap();
        if resp.status() == 429 {
            assert!(resp.headers().get("retry-after").is_some());
            limited = true;
            break;
        }
    }
    assert!(limited, "a source over its rateLimit answers 429");
    let got = sink.wait_for(2, Duration::from_secs(10)).await;
    let mut types: Vec<String> = Vec::new();
    for r in &got {
        types.push(r.json()["kind"].as_str().unwrap_or("").to_string());
    }
    types.sort();
    assert_eq!(types[..2], ["a".to_string(), "b".to_string()]);
    let log = requests(&node, id).await;
    let accepted: Vec<&Value> = log.iter().filter(|r| r["outcome"] == "accepted").collect();
    assert!(accepted.iter().any(|r| r["eventType"] == "a"), "{log:?}");
}

#[tokio::test]
async fn an_allowlist_refuses_other_addresses() {
    let node = TestServer::spawn().await;
    let sink = Sink::start().await;
    let (_, open) =
        source_to(&node, &sink, json!({"name": "Local", "type": "generic-webhook", "allowedIps": ["127.0.0.0/8"]}))
            .await;
    assert_eq!(post_raw(&open, &[], "{}").await.0, 200);
    let (_, closed) =
        source_to(&node, &sink, json!({"name": "Far", "type": "generic-webhook", "allowedIps": ["203.0.113.0/24"]}))
            .await;
    let (status, detail) = post_raw(&closed, &[("x-forwarded-for", "203.0.113.9")], "{}").await;
    // X-Forwarded-For is not believed from an untrusted peer.
    assert_eq!(status, 403, "{detail}");
    assert!(detail.contains("allowedIps"));
}

#[tokio::test]
async fn twilio_form_reports_become_json_and_a_rejected_request_replays_once_fixed() {
    let node = TestServer::spawn().await;
    let sink = Sink::start().await;
    let (src, url) =
        source_to(&node, &sink, json!({"name": "Twilio", "type": "twilio", "config": {"authToken": "wrong-token"}}))
            .await;
    let id = src["id"].as_str().unwrap();
    let form = "MessageSid=SM123&MessageStatus=delivered&To=%2B15551234567";
    // Twilio's signature: HMAC-SHA1 over the URL and the sorted parameters.
    let mut content = url.clone();
    for (k, v) in [("MessageSid", "SM123"), ("MessageStatus", "delivered"), ("To", "+15551234567")] {
        content.push_str(k);
        content.push_str(v);
    }
    let mut m = Hmac::<sha1::Sha1>::new_from_slice(b"real-token").unwrap();
    m.update(content.as_bytes());
    let sig = B64.encode(m.finalize().into_bytes());
    let headers = [("x-twilio-signature", sig.as_str()), ("content-type", "application/x-www-form-urlencoded")];
    // Configured with the wrong token: refused and kept.
    assert_eq!(post_raw(&url, &headers, form).await.0, 401);
    assert_eq!(sink.count(), 0);
    // Fixed, then the refused request replayed: forwarded as JSON.
    let (status, _) =
        node.patch(&format!("/ingest/api/v1/source/{id}"), json!({"config": {"authToken": "real-token"}})).await;
    assert_eq!(status, 200);
    let (status, summary) = node.post(&format!("/ingest/api/v1/source/{id}/request/replay"), json!({})).await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!((summary["replayed"].as_u64(), summary["accepted"].as_u64()), (Some(1), Some(1)), "{summary}");
    let got = sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].json(), json!({"MessageSid": "SM123", "MessageStatus": "delivered", "To": "+15551234567"}));
    let log = requests(&node, id).await;
    assert_eq!(log[0]["replayOf"], log[1]["id"]);
    assert_eq!(log[0]["eventType"], "delivered");
    // Signed correctly now, the same report is accepted directly.
    assert_eq!(post_raw(&url, &headers, form).await.0, 200);
}

/// SMS delivery reports: a source tracks each message's status, forwards a
/// report only when it moves the message forward, and serves its history.
async fn delivery_reports_forward_only_status_changes(node: TestServer) {
    let sink = Sink::start().await;
    let tracking = json!({
        "objectIdPointer": "/MessageSid",
        "statusPointer": "/MessageStatus",
        "lifecycle": ["queued", "sent", "delivered | undelivered | failed"],
    });
    let (src, url) =
        source_to(&node, &sink, json!({"name": "SMS", "type": "generic-webhook", "statusTracking": tracking})).await;
    let id = src["id"].as_str().unwrap();
    assert_eq!(src["statusTracking"]["lifecycle"][2], "delivered | undelivered | failed", "{src}");
    let report = |sid: &str, status: &str| json!({"MessageSid": sid, "MessageStatus": status}).to_string();

    for status in ["queued", "delivered", "sent", "delivered", "failed"] {
        let (code, body) = post_raw(&url, &[], &report("SM1", status)).await;
        assert_eq!(code, 200, "{status}: {body}");
    }
    // A status the lifecycle does not name passes through untracked.
    assert_eq!(post_raw(&url, &[], &report("SM1", "read")).await.0, 200);
    let got = sink.wait_for(3, Duration::from_secs(10)).await;
    let mut forwarded: Vec<String> =
        got.iter().map(|r| r.json()["MessageStatus"].as_str().unwrap().to_string()).collect();
    forwarded.sort();
    assert_eq!(
        forwarded,
        ["delivered", "queued", "read"],
        "the late sent and the second terminal status are kept back"
    );

    let (status, object) = node.get(&format!("/ingest/api/v1/source/{id}/object/SM1")).await;
    assert_eq!(status, 200, "{object}");
    assert_eq!(object["status"], "delivered");
    let history: Vec<(String, String)> = object["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["objectStatus"].as_str().unwrap().to_string(), r["outcome"].as_str().unwrap().to_string()))
        .collect();
    let expected = [("queued", "accepted"), ("delivered", "accepted"), ("sent", "ignored"), ("delivered", "ignored")];
    let expected: Vec<(String, String)> = expected.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    assert_eq!(history[..4], expected[..], "{object}");
    assert_eq!(history[4], ("failed".to_string(), "ignored".to_string()));
    assert_eq!(object["history"][2]["status"], "ignored");
    assert!(object["history"][2]["msgId"].is_null(), "an ignored report makes no message: {object}");
    assert_eq!(object["requestId"], object["history"][1]["id"]);
    let (status, _) = node.get(&format!("/ingest/api/v1/source/{id}/object/SM404")).await;
    assert_eq!(status, 404);
    let (status, log) = node.get(&format!("/ingest/api/v1/source/{id}/request?objectId=SM1&outcome=ignored")).await;
    assert_eq!((status, log["data"].as_array().unwrap().len()), (200, 3), "{log}");

    // Reports of one message racing each other: it ends at its furthest
    // status, and each forwarded report moved it forward (no status twice).
    let before = sink.count();
    let statuses = ["sent", "queued", "delivered", "sent", "queued", "undelivered", "sent", "delivered"];
    let sends: Vec<_> = statuses
        .iter()
        .cycle()
        .take(24)
        .map(|s| {
            let (url, body) = (url.clone(), report("SM2", s));
            tokio::spawn(async move { post_raw(&url, &[], &body).await.0 })
        })
        .collect();
    for send in sends {
        assert_eq!(send.await.unwrap(), 200);
    }
    let (_, object) = node.get(&format!("/ingest/api/v1/source/{id}/object/SM2")).await;
    assert!(["delivered", "undelivered"].contains(&object["status"].as_str().unwrap()), "{object}");
    let accepted = object["history"].as_array().unwrap().iter().filter(|r| r["outcome"] == "accepted").count();
    assert!((1..=3).contains(&accepted), "{object}");
    let got = sink.wait_for(before + accepted, Duration::from_secs(10)).await;
    let mut ranks: Vec<String> =
        got[before..].iter().map(|r| r.json()["MessageStatus"].as_str().unwrap().to_string()).collect();
    assert_eq!(ranks.len(), accepted);
    ranks.dedup();
    assert_eq!(ranks.len(), accepted, "a status forwarded twice: {ranks:?}");

    // A lifecycle that cannot be ordered is refused by name.
    let bad = json!({"objectIdPointer": "/id", "statusPointer": "/s", "lifecycle": ["sent", "sent|delivered"]});
    let (status, out) = node
        .post("/ingest/api/v1/source", json!({"name": "bad", "type": "generic-webhook", "statusTracking": bad}))
        .await;
    assert_eq!(status, 422, "{out}");
    assert!(out.to_string().contains("appears twice"), "{out}");
}

#[tokio::test]
async fn delivery_reports_forward_only_status_changes_embedded() {
    delivery_reports_forward_only_status_changes(TestServer::spawn().await).await;
}

#[tokio::test]
async fn delivery_reports_forward_only_status_changes_on_postgres() {
    let Some(admin) = shared_url() else { return };
    let db = TestDatabase::create(&admin);
    let opts = ServerOptions { extra_args: vec!["--database-url".into(), db.url.clone()], ..Default::default() };
    delivery_reports_forward_only_status_changes(TestServer::spawn_with(opts).await).await;
}

/// Waits until the source's schedule shows a run after `after` (its `lastRunAt`).
async fn next_run(node: &TestServer, id: &str, after: &Value) -> Value {
    let found = node
        .eventually(Duration::from_secs(15), || async {
            let (status, s) = node.get(&format!("/ingest/api/v1/source/{id}/schedule")).await;
            assert_eq!(status, 200, "{s}");
            (s["lastRunAt"] != *after && !s["lastRunAt"].is_null()).then_some(s)
        })
        .await;
    found.expect("the source ran")
}

#[tokio::test]
async fn a_cron_source_emits_its_payload_on_its_schedule() {
    let node = TestServer::spawn().await;
    let sink = Sink::start().await;
    let config = json!({"schedule": "*/5 * * * *", "payload": r#"{"job": "reconcile"}"#});
    let (src, url) = source_to(&node, &sink, json!({"name": "Nightly", "type": "cron", "config": config})).await;
    let id = src["id"].as_str().unwrap();
    let (_, schedule) = node.get(&format!("/ingest/api/v1/source/{id}/schedule")).await;
    let next = hookd_core::timefmt::parse_rfc3339_millis(schedule["nextRunAt"].as_str().unwrap()).expect("a time");
    let now = hookd_core::timefmt::now_millis();
    assert!(next > now && next <= now + 5 * 60_000 && next % 300_000 == 0, "{schedule}");
    assert!(schedule["lastRunAt"].is_null());
    // Nothing is received…
    assert_eq!(post_raw(&url, &[], "{}").await.0, 405);
    // …and a run can be asked for now.
    let (status, _) = node.post(&format!("/ingest/api/v1/source/{id}/schedule/run"), json!({})).await;
    assert_eq!(status, 202);
    let got = sink.wait_for(1, Duration::from_secs(15)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].json(), json!({"job": "reconcile"}));
    let after = next_run(&node, id, &Value::Null).await;
    assert!(after["lastResult"]["requestId"].is_string(), "{after}");
    let next = hookd_core::timefmt::parse_rfc3339_millis(after["nextRunAt"].as_str().unwrap()).unwrap();
    assert_eq!(next % 300_000, 0, "the schedule goes on: {after}");
    let log = requests(&node, id).await;
    assert_eq!((log[0]["method"].as_str(), log[0]["eventType"].as_str()), (Some("CRON"), Some("cron")));
    let req = log[0]["id"].as_str().unwrap();
    let (status, out) = node.post(&format!("/ingest/api/v1/source/{id}/request/{req}/replay"), json!({})).await;
    assert_eq!(status, 400, "a firing is resent, not replayed: {out}");
    // A payload that is not JSON needs its content type.
    let bad = json!({"name": "Bad", "type": "cron", "config": {"schedule": "0 * * * *", "payload": "hello"}});
    let (status, out) = node.post("/ingest/api/v1/source", bad).await;
    assert_eq!(status, 422, "{out}");
    let (status, out) = node.post(&format!("/ingest/api/v1/source/{id}/request/replay"), json!({})).await;
    assert_eq!(status, 400, "{out}");
}

/// The seed's fallback for lost callbacks: a poll source fetches a provider's
/// status list, feeds in what changed, and never forwards an item twice.
#[tokio::test]
async fn a_poll_source_feeds_in_only_what_changed() {
    let node = TestServer::spawn().await;
    let sink = Sink::start().await;
    let provider = Sink::start().await;
    provider.set_body(br#"{"messages": [{"sid": "SM1", "status": "sent"}, {"sid": "SM2", "status": "queued"}]}"#);
    let config = json!({"url": provider.url("/messages"), "itemsPointer": "/messages", "idPointer": "/sid",
                        "bearerToken": "provider-key", "intervalSeconds": 3600});
    let tracking = json!({"objectIdPointer": "/sid", "statusPointer": "/status",
                          "lifecycle": ["queued", "sent", "delivered|failed"]});
    let (src, url) = source_to(
        &node,
        &sink,
        json!({"name": "SMS status", "type": "poll", "config": config, "statusTracking": tracking,
               "eventTypePointer": "/status"}),
    )
    .await;
    assert_eq!((src["type"].as_str(), src["hookdType"].as_str()), (Some("generic-webhook"), Some("poll")), "{src}");
    assert!(src["hookdConfig"].get("bearerToken").is_none(), "credentials are not shown: {src}");
    assert_eq!(src["hookdConfig"]["idPointer"], "/sid");
    let id = src["id"].as_str().unwrap();
    // A new poll source polls at once.
    let got = sink.wait_for(2, Duration::from_secs(15)).await;
    assert_eq!(got.len(), 2);
    let polled = provider.received();
    assert_eq!(polled[0].header("authorization"), "Bearer provider-key");
    let first = next_run(&node, id, &Value::Null).await;
    assert_eq!(first["lastResult"]["forwarded"], 2, "{first}");
    let (_, types) = node.get(&format!("/api/v1/app/{}/msg", src["appId"].as_str().unwrap())).await;
    let mut kinds: Vec<&str> =
        types["data"].as_array().unwrap().iter().map(|m| m["eventType"].as_str().unwrap()).collect();
    kinds.sort();
    assert_eq!(kinds, ["queued", "sent"]);

    // SM1 moves on, SM2 does not: one item is fed in.
    provider.set_body(br#"{"messages": [{"sid": "SM1", "status": "delivered"}, {"sid": "SM2", "status": "queued"}]}"#);
    node.post(&format!("/ingest/api/v1/source/{id}/schedule/run"), json!({})).await;
    let second = next_run(&node, id, &first["lastRunAt"]).await;
    assert_eq!((second["lastResult"]["forwarded"].as_u64(), second["lastResult"]["seen"].as_u64()), (Some(1), Some(1)));
    assert_eq!(sink.wait_for(3, Duration::from_secs(10)).await[2].json()["status"], "delivered");

    // A stale list (SM1 back at queued, a status it never showed) feeds in nothing.
    provider.set_body(br#"{"messages": [{"sid": "SM1", "status": "queued"}]}"#);
    node.post(&format!("/ingest/api/v1/source/{id}/schedule/run"), json!({})).await;
    let third = next_run(&node, id, &second["lastRunAt"]).await;
    assert_eq!(third["lastResult"]["unchanged"], 1, "{third}");
    let (_, object) = node.get(&format!("/ingest/api/v1/source/{id}/object/SM1")).await;
    assert_eq!(object["status"], "delivered");
    let log = requests(&node, id).await;
    assert_eq!(log.len(), 3, "only what changed is stored");
    assert!(log.iter().all(|r| r["method"] == "POLL"));

    // A failing provider is reported on the schedule; the next run works again.
    provider.script(&[500]);
    node.post(&format!("/ingest/api/v1/source/{id}/schedule/run"), json!({})).await;
    let failed = next_run(&node, id, &third["lastRunAt"]).await;
    assert!(failed["lastResult"]["error"].as_str().unwrap().contains("500"), "{failed}");
    assert_eq!(post_raw(&url, &[], "{}").await.0, 405);
    assert_eq!(sink.count(), 3);
}

/// A poll source feeding the source that receives the callbacks: a status the
/// callback already brought is not forwarded again; a missed one is.
#[tokio::test]
async fn polled_items_fill_the_gaps_of_a_callback_source() {
    let node = TestServer::spawn().await;
    let sink = Sink::start().await;
    let provider = Sink::start().await;
    let tracking = |id: &str, status: &str| json!({"objectIdPointer": id, "statusPointer": status, "lifecycle": ["queued", "sent", "delivered|failed"]});
    let (callbacks, url) = source_to(
        &node,
        &sink,
        json!({"name": "SMS callbacks", "type": "generic-webhook", "uid": "sms-callbacks",
               "statusTracking": tracking("/MessageSid", "/MessageStatus")}),
    )
    .await;
    let report = json!({"MessageSid": "SM9", "MessageStatus": "delivered"}).to_string();
    assert_eq!(post_raw(&url, &[], &report).await.0, 200);
    sink.wait_for(1, Duration::from_secs(10)).await;
    // SM9's callback arrived; SM8's was lost.
    provider.set_body(br#"[{"sid": "SM9", "status": "delivered"}, {"sid": "SM8", "status": "failed"}]"#);
    let config = json!({"url": provider.url("/status"), "idPointer": "/sid", "targetSource": "sms-callbacks"});
    let (status, poller) = node
        .post(
            "/ingest/api/v1/source",
            json!({"name": "SMS poll", "type": "poll", "config": config, "statusTracking": tracking("/sid", "/status")}),
        )
        .await;
    assert_eq!(status, 201, "{poller}");
    let run = next_run(&node, poller["id"].as_str().unwrap(), &Value::Null).await;
    assert_eq!((run["lastResult"]["forwarded"].as_u64(), run["lastResult"]["unchanged"].as_u64()), (Some(1), Some(1)));
    let got = sink.wait_for(2, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].json(), json!({"sid": "SM8", "status": "failed"}));
    let cb = callbacks["id"].as_str().unwrap();
    let (_, object) = node.get(&format!("/ingest/api/v1/source/{cb}/object/SM8")).await;
    assert_eq!((object["status"].as_str(), object["history"][0]["method"].as_str()), (Some("failed"), Some("POLL")));
    // A target that is not there, or is itself scheduled, is refused.
    for target in ["nope", poller["id"].as_str().unwrap()] {
        let config = json!({"url": provider.url("/status"), "idPointer": "/sid", "targetSource": target});
        let (status, out) =
            node.post("/ingest/api/v1/source", json!({"name": "x2", "type": "poll", "config": config})).await;
        assert_eq!(status, 422, "{target}: {out}");
    }
}

/// Operational webhooks for inbound: a spike of failed verifications, and
/// Svix's `ingest.*` events for ingest endpoints.
#[tokio::test]
async fn inbound_trouble_reaches_the_operational_webhooks() {
    let node = TestServer::spawn().await;
    let sink = Sink::start().await;
    let ops = Sink::start().await;
    let (status, _) = node.post("/api/v1/operational-webhook/endpoint", json!({"url": ops.url("/ops")})).await;
    assert_eq!(status, 201);
    let (src, url) = source_to(
        &node,
        &sink,
        json!({"name": "Stripe", "type": "stripe", "config": {"secret": "whsec_ops"}, "verificationAlertThreshold": 3}),
    )
    .await;
    let id = src["id"].as_str().unwrap();
    for _ in 0..5 {
        let forged = stripe_header("whsec_wrong", "{}", now_secs());
        assert_eq!(post_raw(&url, &[("stripe-signature", &forged)], "{}").await.0, 401);
    }
    let of_type = |t: &'static str| {
        let ops = &ops;
        move || async move { ops.received().iter().map(|r| r.json()).find(|e| e["type"] == t) }
    };
    let event = node
        .eventually(Duration::from_secs(10), of_type("ingest.source.verification_failing"))
        .await
        .expect("ingest.source.verification_failing");
    assert_eq!((event["data"]["sourceId"].as_str(), event["data"]["failures"].as_u64()), (Some(id), Some(3)));

    // The ingest endpoint answers 410: it is disabled, as an ingest endpoint.
    sink.script(&[410]);
    let body = r#"{"id": "evt_ops_1", "type": "charge.succeeded"}"#;
    let signed = stripe_header("whsec_ops", body, now_secs());
    assert_eq!(post_raw(&url, &[("stripe-signature", &signed)], body).await.0, 200);
    let found = node
        .eventually(Duration::from_secs(10), of_type("ingest.endpoint.disabled"))
        .await
        .expect("ingest.endpoint.disabled");
    assert_eq!(found["data"]["sourceId"], id, "{found}");
    assert!(found["data"]["endpointId"].as_str().unwrap().starts_with("ep_"));
    let spikes = ops.received().iter().filter(|r| r.json()["type"] == "ingest.source.verification_failing").count();
    assert_eq!(spikes, 1, "one spike event, however many failures");
}

/// hookd's own types are shown to Svix's SDKs (which accept only Svix's types)
/// as `generic-webhook`, the real type in `hookdType`; writing such a source back
/// without `hookdType` cannot turn its verification off.
#[tokio::test]
async fn hookd_only_types_read_as_generic_webhooks_with_their_real_type_beside() {
    let node = TestServer::spawn().await;
    let (status, src) = node
        .post("/ingest/api/v1/source", json!({"name": "SMS", "type": "twilio", "config": {"authToken": "t0k"}}))
        .await;
    assert_eq!(status, 201, "{src}");
    assert_eq!((src["type"].as_str(), src["config"].clone()), (Some("generic-webhook"), json!({})));
    assert_eq!((src["hookdType"].as_str(), src["hookdConfig"].clone()), (Some("twilio"), json!({})));
    let id = src["id"].as_str().unwrap();
    // An SDK round trip (type generic-webhook, no hookdType) is refused…
    let (status, out) =
        node.put(&format!("/ingest/api/v1/source/{id}"), json!({"name": "SMS", "type": "generic-webhook"})).await;
    assert_eq!(status, 422, "{out}");
    assert!(out.to_string().contains("hookdType"), "{out}");
    let (status, _) = node.patch(&format!("/ingest/api/v1/source/{id}"), json!({"type": "generic-webhook"})).await;
    assert_eq!(status, 422);
    // …and still verifies; hookdType/hookdConfig write the real type.
    let (status, out) = node
        .put(
            &format!("/ingest/api/v1/source/{id}"),
            json!({"name": "SMS", "type": "generic-webhook", "hookdType": "hmac",
                   "hookdConfig": {"header": "x-sig", "secret": "s"}}),
        )
        .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!((out["hookdType"].as_str(), out["hookdConfig"]["header"].as_str()), (Some("hmac"), Some("x-sig")));
    assert_eq!(post_raw(out["ingestUrl"].as_str().unwrap(), &[], "{}").await.0, 401);
    // A source written back without the secret it never showed keeps it.
    let (_, gh) = node
        .post("/ingest/api/v1/source", json!({"name": "GitHub", "type": "github", "config": {"secret": "g"}}))
        .await;
    let gh_id = gh["id"].as_str().unwrap();
    let (status, out) = node
        .put(&format!("/ingest/api/v1/source/{gh_id}"), json!({"name": "GitHub 2", "type": "github", "config": {}}))
        .await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(post_raw(gh["ingestUrl"].as_str().unwrap(), &[], "{}").await.0, 401, "still verified");
    // Svix's own types read as they are.
    let (_, stripe) = node
        .post("/ingest/api/v1/source", json!({"name": "Stripe", "type": "stripe", "config": {"secret": "whsec_x"}}))
        .await;
    assert_eq!(stripe["type"], "stripe");
    assert!(stripe.get("hookdType").is_none(), "{stripe}");
}
