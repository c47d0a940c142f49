//! Endpoints (`/api/v1/app/{app}/endpoint`): create, read by id and uid,
//! upsert, patch, delete, custom headers, stats, the signing secret and its
//! rotation, and the SSRF check on URLs at creation.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use reqwest::Method;
use serde_json::{json, Value};

use crate::mgmt::{
    assert_http_error, assert_validation_error, error_loc, ids, secret_of, send_raw, text, wait_for_delivery_status,
};
use crate::support::{verify_standard_webhook, ServerOptions, Sink, TestServer};

/// The Standard Webhooks spec's example secret (24 bytes of key).
const KNOWN_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn ep_path(app: &str, ep: &str) -> String {
    format!("/api/v1/app/{app}/endpoint/{ep}")
}

#[tokio::test]
async fn create_with_a_secret_and_headers() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let app = server.create_app("Acme").await;
    let (status, ep) = server
        .post(
            &format!("/api/v1/app/{app}/endpoint"),
            json!({
                "url": sink.url("/hook"),
                "description": "primary",
                "secret": KNOWN_SECRET,
                "headers": {"X-Tenant": "acme"},
                "metadata": {"team": "billing"},
            }),
        )
        .await;
    assert_eq!(status, 201, "{ep}");
    let id = text(&ep["id"]);
    assert!(id.starts_with("ep_"), "{id}");
    assert_eq!(ep["url"], sink.url("/hook"));
    assert_eq!(ep["description"], "primary");
    assert_eq!(ep["metadata"], json!({"team": "billing"}));
    assert_eq!(ep["disabled"], false);
    assert!(ep.get("secret").is_none(), "the secret is not part of EndpointOut: {ep}");

    assert_eq!(secret_of(&server, &app, &id).await, KNOWN_SECRET);
    let (status, headers) = server.get(&format!("{}/headers", ep_path(&app, &id))).await;
    assert_eq!(status, 200, "{headers}");
    assert_eq!(headers["headers"], json!({"X-Tenant": "acme"}));
    assert_eq!(headers["sensitive"], json!([]));

    let (status, got) = server.get(&ep_path(&app, &id)).await;
    assert_eq!(status, 200);
    assert_eq!(got, ep);
    let (_, list) = server.get(&format!("/api/v1/app/{app}/endpoint")).await;
    assert_eq!(ids(&list), vec![id]);
}

#[tokio::test]
async fn a_generated_secret_is_a_whsec_key() {
    let server = TestServer::spawn().await;
    let app = server.create_app("Acme").await;
    let a = server.create_endpoint(&app, json!({"url": "https://example.com/a"})).await;
    let b = server.create_endpoint(&app, json!({"url": "https://example.com/b"})).await;
    let sa = secret_of(&server, &app, &text(&a["id"])).await;
    let sb = secret_of(&server, &app, &text(&b["id"])).await;
    for s in [&sa, &sb] {
        let key = s.strip_prefix("whsec_").unwrap_or_else(|| panic!("{s} starts with whsec_"));
        let bytes = STANDARD.decode(key).expect("base64 after the prefix");
        assert!(bytes.len() >= 24, "{} bytes of key", bytes.len());
    }
    assert_ne!(sa, sb, "every endpoint gets its own secret");
}

#[tokio::test]
async fn a_bad_url_is_a_validation_error() {
    let server = TestServer::spawn().await;
    let app = server.create_app("Acme").await;
    for url in ["not a url", "ftp://x", "", "https://user:pw@example.com/"] {
        let (status, body) = server.post(&format!("/api/v1/app/{app}/endpoint"), json!({"url": url})).await;
        assert_validation_error(status, &body);
        assert_eq!(error_loc(&body), vec!["body", "url"], "{url}: {body}");
    }
    let ep = server.create_endpoint(&app, json!({"url": "https://example.com/ok"})).await;
    let (status, body) = server.patch(&ep_path(&app, &text(&ep["id"])), json!({"url": "ftp://x"})).await;
    assert_validation_error(status, &body);
    let (_, list) = server.get(&format!("/api/v1/app/{app}/endpoint")).await;
    assert_eq!(list["data"][0]["url"], "https://example.com/ok");
}

#[tokio::test]
async fn cr_or_lf_in_a_header_value_is_refused() {
    let server = TestServer::spawn().await;
    let app = server.create_app("Acme").await;
    let (status, body) = server
        .post(
            &format!("/api/v1/app/{app}/endpoint"),
            json!({"url": "https://example.com/h", "headers": {"X-Evil": "a\r\nInjected: 1"}}),
        )
        .await;
    assert_validation_error(status, &body);
    let (_, list) = server.get(&format!("/api/v1/app/{app}/endpoint")).await;
    assert!(ids(&list).is_empty(), "nothing was created");

    let ep = server.create_endpoint(&app, json!({"url": "https://example.com/h", "headers": {"X-Good": "1"}})).await;
    let headers = format!("{}/headers", ep_path(&app, &text(&ep["id"])));
    for value in ["a\nb", "a\rb", "a\r\nSet-Cookie: x=1"] {
        let (status, body) = server.put(&headers, json!({"headers": {"X-Evil": value}})).await;
        assert_validation_error(status, &body);
        let (status, body) = server.patch(&headers, json!({"headers": {"X-Evil": value}})).await;
        assert_validation_error(status, &body);
    }
    let (_, got) = server.get(&headers).await;
    assert_eq!(got["headers"], json!({"X-Good": "1"}), "the headers are unchanged");
}

#[tokio::test]
async fn headers_can_be_replaced_patched_and_hide_sensitive_values() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let app = server.create_app("Acme").await;
    let ep = server.create_endpoint(&app, json!({"url": sink.url("/h")})).await;
    let path = format!("{}/headers", ep_path(&app, &text(&ep["id"])));

    let (status, body) =
        server.put(&path, json!({"headers": {"X-A": "1", "Authorization": "Bearer s3cr3t-value"}})).await;
    assert_eq!(status, 204, "{body}");
    let (status, got) = server.get(&path).await;
    assert_eq!(status, 200);
    assert_eq!(got["headers"], json!({"X-A": "1"}));
    assert_eq!(got["sensitive"], json!(["Authorization"]));
    assert!(!got.to_string().contains("s3cr3t-value"), "the value of a sensitive header is never shown: {got}");

    let (status, body) = server.patch(&path, json!({"headers": {"X-B": "2"}, "deleteHeaders": ["X-A"]})).await;
    assert_eq!(status, 204, "{body}");
    let (_, got) = server.get(&path).await;
    assert_eq!(got["headers"], json!({"X-B": "2"}));
    assert_eq!(got["sensitive"], json!(["Authorization"]));

    // Hidden is not dropped: the sensitive header is still sent.
    server.send_message(&app, "a.b", json!({})).await;
    let got = sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header("authorization"), "Bearer s3cr3t-value");
    assert_eq!(got[0].header("x-b"), "2");
    assert_eq!(got[0].header("x-a"), "");

    // PUT replaces the whole set.
    let (status, _) = server.put(&path, json!({"headers": {}})).await;
    assert_eq!(status, 204);
    let (_, got) = server.get(&path).await;
    assert_eq!(got, json!({"headers": {}, "sensitive": []}));
}

#[tokio::test]
async fn filter_types_is_an_alias_of_event_types() {
    let server = TestServer::spawn().await;
    let app = server.create_app("Acme").await;
    let ep =
        server.create_endpoint(&app, json!({"url": "https://example.com/f", "filterTypes": ["invoice.paid"]})).await;
    assert_eq!(ep["eventTypes"], json!(["invoice.paid"]));
    let id = text(&ep["id"]);
    let (status, patched) =
        server.patch(&ep_path(&app, &id), json!({"filterTypes": ["user.created", "user.deleted"]})).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["eventTypes"], json!(["user.created", "user.deleted"]));
    let (status, patched) = server.patch(&ep_path(&app, &id), json!({"eventTypes": null})).await;
    assert_eq!(status, 200, "{patched}");
    assert!(patched["eventTypes"].is_null(), "{patched}");
}

#[tokio::test]
async fn endpoints_are_found_by_uid() {
    let server = TestServer::spawn().await;
    let (_, app) = server.post("/api/v1/app", json!({"name": "Acme", "uid": "acme"})).await;
    let app = text(&app["id"]);
    let ep = server
        .create_endpoint(&app, json!({"url": "https://example.com/u", "uid": "primary", "secret": KNOWN_SECRET}))
        .await;
    for (a, e) in [("acme", "primary"), (app.as_str(), "primary"), ("acme", ep["id"].as_str().unwrap())] {
        let (status, got) = server.get(&ep_path(a, e)).await;
        assert_eq!(status, 200, "{a}/{e}: {got}");
        assert_eq!(got["id"], ep["id"]);
        assert_eq!(got["uid"], "primary");
        assert_eq!(secret_of(&server, a, e).await, KNOWN_SECRET);
    }
    let (status, body) = server.get(&ep_path("acme", "secondary")).await;
    assert_http_error(status, &body, 404, "not_found");
    let (status, body) = server
        .post(&format!("/api/v1/app/{app}/endpoint"), json!({"url": "https://example.com/v", "uid": "primary"}))
        .await;
    assert_http_error(status, &body, 409, "conflict");
}

#[tokio::test]
async fn put_creates_then_replaces() {
    let server = TestServer::spawn().await;
    let app = server.create_app("Acme").await;
    let path = ep_path(&app, "orders");
    let (status, created) = server.put(&path, json!({"url": "https://example.com/1", "description": "one"})).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["uid"], "orders");
    assert!(text(&created["id"]).starts_with("ep_"));

    let (status, updated) =
        server.put(&path, json!({"url": "https://example.com/2", "uid": "orders", "channels": ["eu"]})).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["id"], created["id"]);
    assert_eq!(updated["url"], "https://example.com/2");
    assert_eq!(updated["description"], "", "PUT replaces");
    assert_eq!(updated["channels"], json!(["eu"]));
    let (_, list) = server.get(&format!("/api/v1/app/{app}/endpoint")).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn patch_disables_an_endpoint_and_it_gets_no_messages() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let app = server.create_app("Acme").await;
    let ep = server.create_endpoint(&app, json!({"url": sink.url("/d"), "description": "keep me"})).await;
    let id = text(&ep["id"]);
    let (status, patched) = server.patch(&ep_path(&app, &id), json!({"disabled": true})).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["disabled"], true);
    assert_eq!(patched["description"], "keep me");
    assert_eq!(patched["url"], sink.url("/d"));

    let msg = server.send_message(&app, "a.b", json!({})).await;
    let (_, dest) = server.get(&format!("/api/v1/app/{app}/msg/{}/endpoint", text(&msg["id"]))).await;
    assert!(ids(&dest).is_empty(), "a disabled endpoint is not a destination: {dest}");

    let (_, patched) = server.patch(&ep_path(&app, &id), json!({"disabled": false})).await;
    assert_eq!(patched["disabled"], false);
    let msg = server.send_message(&app, "a.b", json!({"n": 2})).await;
    let got = sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].header("webhook-id"), msg["id"].as_str().unwrap());
}

#[tokio::test]
async fn delete_removes_the_endpoint() {
    let server = TestServer::spawn().await;
    let app = server.create_app("Acme").await;
    let ep = server.create_endpoint(&app, json!({"url": "https://example.com/x", "uid": "x"})).await;
    let id = text(&ep["id"]);
    let (status, body) = server.delete(&ep_path(&app, &id)).await;
    assert_eq!(status, 204, "{body}");
    for key in [id.as_str(), "x"] {
        let (status, body) = server.get(&ep_path(&app, key)).await;
        assert_http_error(status, &body, 404, "not_found");
    }
    let (status, body) = server.delete(&ep_path(&app, &id)).await;
    assert_http_error(status, &body, 404, "not_found");
    let (_, list) = server.get(&format!("/api/v1/app/{app}/endpoint")).await;
    assert!(ids(&list).is_empty());
}

#[tokio::test]
async fn stats_count_deliveries_by_state() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let app = server.create_app("Acme").await;
    let ep = text(&server.create_endpoint(&app, json!({"url": sink.url("/s")})).await["id"]);
    let (status, stats) = server.get(&format!("{}/stats", ep_path(&app, &ep))).await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats, json!({"success": 0, "pending": 0, "sending": 0, "fail": 0, "canceled": 0}));

    let msg = server.send_message(&app, "a.b", json!({})).await;
    wait_for_delivery_status(&server, &app, &text(&msg["id"]), 0).await;
    let (_, stats) = server.get(&format!("{}/stats", ep_path(&app, &ep))).await;
    assert_eq!(stats, json!({"success": 1, "pending": 0, "sending": 0, "fail": 0, "canceled": 0}));
}

#[tokio::test]
async fn rotation_keeps_the_old_secret_signing_during_the_grace_period() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let app = server.create_app("Acme").await;
    let ep = server.create_endpoint(&app, json!({"url": sink.url("/r"), "secret": KNOWN_SECRET})).await;
    let id = text(&ep["id"]);

    let (status, rotated) = server.post(&format!("{}/secret/rotate", ep_path(&app, &id)), json!({})).await;
    assert_eq!(status, 200, "{rotated}");
    let new_secret = text(&rotated["key"]);
    assert!(new_secret.starts_with("whsec_"), "{new_secret}");
    assert_ne!(new_secret, KNOWN_SECRET);
    assert_eq!(secret_of(&server, &app, &id).await, new_secret);

    server.send_message(&app, "a.b", json!({"after": "rotation"})).await;
    let got = sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    assert!(verify_standard_webhook(&new_secret, &got[0]), "signed with the new secret");
    assert!(verify_standard_webhook(KNOWN_SECRET, &got[0]), "and still with the old one");
    assert_eq!(got[0].header("webhook-signature").split(' ').count(), 2);
}

#[tokio::test]
async fn rotation_with_no_grace_period_leaves_only_the_new_secret() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let app = server.create_app("Acme").await;
    let ep = server.create_endpoint(&app, json!({"url": sink.url("/r"), "secret": KNOWN_SECRET})).await;
    let id = text(&ep["id"]);
    let chosen = format!("whsec_{}", STANDARD.encode([7u8; 32]));

    let (status, rotated) = server
        .post(&format!("{}/secret/rotate", ep_path(&app, &id)), json!({"key": chosen, "gracePeriodSeconds": 0}))
        .await;
    assert_eq!(status, 200, "{rotated}");
    assert_eq!(rotated["key"], chosen.as_str());

    server.send_message(&app, "a.b", json!({})).await;
    let got = sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    assert!(verify_standard_webhook(&chosen, &got[0]), "signed with the new secret");
    assert!(!verify_standard_webhook(KNOWN_SECRET, &got[0]), "the old secret is no longer valid");
    assert_eq!(got[0].header("webhook-signature").split(' ').count(), 1);

    let (status, body) =
        server.post(&format!("{}/secret/rotate", ep_path(&app, &id)), json!({"gracePeriodSeconds": -1})).await;
    assert_validation_error(status, &body);
    let (status, body) = send_raw(&server, Method::POST, &format!("{}/secret/rotate", ep_path(&app, &id)), "").await;
    assert_eq!(status, 200, "an empty body rotates too: {body}");
}

#[tokio::test]
async fn private_addresses_are_refused_at_creation_when_not_allowed() {
    let server = TestServer::spawn_with(ServerOptions { allow_private: false, ..Default::default() }).await;
    let app = server.create_app("Acme").await;
    for url in [
        "http://127.0.0.1:9/x",
        "http://[::1]/",
        "http://10.0.0.1/",
        "http://169.254.169.254/",
        "http://[::ffff:127.0.0.1]/",
    ] {
        let (status, body) = server.post(&format!("/api/v1/app/{app}/endpoint"), json!({"url": url})).await;
        assert_validation_error(status, &body);
        assert_eq!(error_loc(&body), vec!["body", "url"], "{url}: {body}");
        let (status, body) = server.put(&ep_path(&app, "via-put"), json!({"url": url})).await;
        assert_validation_error(status, &body);
    }
    // A public address is fine, and cannot be switched to a private one later.
    let ep = server.create_endpoint(&app, json!({"url": "https://example.com/hook"})).await;
    let (status, body) = server.patch(&ep_path(&app, &text(&ep["id"])), json!({"url": "http://192.168.1.1/"})).await;
    assert_validation_error(status, &body);
    let (_, list) = server.get(&format!("/api/v1/app/{app}/endpoint")).await;
    let urls: Vec<Value> = list["data"].as_array().unwrap().iter().map(|e| e["url"].clone()).collect();
    assert_eq!(urls, vec![json!("https://example.com/hook")]);
}
