//! Applications (`/api/v1/app`): create, read by id and uid, upsert, patch,
//! delete, pagination, and the error bodies and authentication every route
//! shares.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::mgmt::{assert_http_error, assert_validation_error, ids, read, send_raw, text, wait_for_attempts};
use crate::support::{Sink, TestServer};

#[tokio::test]
async fn create_then_get_by_id_and_by_uid() {
    let server = TestServer::spawn().await;
    let (status, app) =
        server.post("/api/v1/app", json!({"name": "Acme", "uid": "acme", "metadata": {"tier": "gold"}})).await;
    assert_eq!(status, 201, "{app}");
    let id = text(&app["id"]);
    assert!(id.starts_with("app_"), "{id}");
    assert_eq!(app["name"], "Acme");
    assert_eq!(app["uid"], "acme");
    assert_eq!(app["metadata"], json!({"tier": "gold"}));
    assert!(app["createdAt"].as_str().is_some_and(|t| t.ends_with('Z')), "{app}");
    assert!(app["updatedAt"].is_string(), "{app}");

    for key in [id.as_str(), "acme"] {
        let (status, got) = server.get(&format!("/api/v1/app/{key}")).await;
        assert_eq!(status, 200, "{got}");
        assert_eq!(got, app, "GET by {key} returns what create returned");
    }
}

#[tokio::test]
async fn get_if_exists_returns_the_existing_application_with_200() {
    let server = TestServer::spawn().await;
    let body = json!({"name": "Acme", "uid": "acme"});
    let (status, first) = server.post("/api/v1/app?get_if_exists=true", body.clone()).await;
    assert_eq!(status, 201, "{first}");
    let (status, again) = server.post("/api/v1/app?get_if_exists=true", body).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["id"], first["id"]);
    let (_, list) = server.get("/api/v1/app").await;
    assert_eq!(ids(&list), vec![text(&first["id"])], "no second application");
}

#[tokio::test]
async fn a_duplicate_uid_is_a_conflict() {
    let server = TestServer::spawn().await;
    let (status, _) = server.post("/api/v1/app", json!({"name": "One", "uid": "same"})).await;
    assert_eq!(status, 201);
    let (status, body) = server.post("/api/v1/app", json!({"name": "Two", "uid": "same"})).await;
    assert_http_error(status, &body, 409, "conflict");
    let (_, list) = server.get("/api/v1/app").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn list_pages_forward_with_iterator_and_back_with_prev_iterator() {
    let server = TestServer::spawn().await;
    let mut created = Vec::new();
    for i in 0..7 {
        created.push(server.create_app(&format!("app {i}")).await);
    }

    let mut pages: Vec<(Vec<String>, serde_json::Value)> = Vec::new();
    let mut path = "/api/v1/app?limit=3".to_string();
    loop {
        let (status, page) = server.get(&path).await;
        assert_eq!(status, 200, "{page}");
        assert!(page.get("iterator").is_some() && page.get("prevIterator").is_some(), "{page}");
        pages.push((ids(&page), page.clone()));
        if page["done"] == true {
            break;
        }
        assert!(pages.len() < 10, "pagination does not end");
        path = format!("/api/v1/app?limit=3&iterator={}", text(&page["iterator"]));
    }
    let seen: Vec<String> = pages.iter().flat_map(|(ids, _)| ids.clone()).collect();
    assert_eq!(seen, created, "every application exactly once, in creation order");
    let sizes: Vec<usize> = pages.iter().map(|(ids, _)| ids.len()).collect();
    assert_eq!(sizes, vec![3, 3, 1]);

    // From the last page, prevIterator goes back to the second, then the first.
    let prev = text(&pages[2].1["prevIterator"]);
    let (status, back) = server.get(&format!("/api/v1/app?limit=3&iterator={prev}")).await;
    assert_eq!(status, 200, "{back}");
    assert_eq!(ids(&back), pages[1].0);
    let prev = text(&back["prevIterator"]);
    let (_, back) = server.get(&format!("/api/v1/app?limit=3&iterator={prev}")).await;
    assert_eq!(ids(&back), pages[0].0);
}

#[tokio::test]
async fn limit_out_of_range_is_a_validation_error() {
    let server = TestServer::spawn().await;
    for limit in ["0", "251", "-1", "many"] {
        let (status, body) = server.get(&format!("/api/v1/app?limit={limit}")).await;
        assert_validation_error(status, &body);
    }
    let (status, body) = server.get("/api/v1/app?limit=250").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn put_creates_with_the_path_as_uid_then_updates() {
    let server = TestServer::spawn().await;
    let (status, created) = server.put("/api/v1/app/billing", json!({"name": "Billing"})).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["uid"], "billing");
    assert_eq!(created["name"], "Billing");
    assert!(text(&created["id"]).starts_with("app_"));

    let (status, updated) =
        server.put("/api/v1/app/billing", json!({"name": "Billing v2", "uid": "billing", "throttleRate": 5})).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["id"], created["id"]);
    assert_eq!(updated["name"], "Billing v2");
    assert_eq!(updated["throttleRate"], 5);

    let (_, got) = server.get(&format!("/api/v1/app/{}", text(&created["id"]))).await;
    assert_eq!(got["name"], "Billing v2");
    let (_, list) = server.get("/api/v1/app").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn patch_changes_only_the_given_fields_and_null_clears_uid() {
    let server = TestServer::spawn().await;
    let (_, app) = server
        .post("/api/v1/app", json!({"name": "Acme", "uid": "acme", "throttleRate": 10, "metadata": {"k": "v"}}))
        .await;
    let id = text(&app["id"]);

    let (status, patched) = server.patch(&format!("/api/v1/app/{id}"), json!({"name": "Acme Inc"})).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["name"], "Acme Inc");
    assert_eq!(patched["uid"], "acme");
    assert_eq!(patched["throttleRate"], 10);
    assert_eq!(patched["metadata"], json!({"k": "v"}));

    let (status, cleared) = server.patch("/api/v1/app/acme", json!({"uid": null})).await;
    assert_eq!(status, 200, "{cleared}");
    assert!(cleared["uid"].is_null(), "{cleared}");
    assert_eq!(cleared["name"], "Acme Inc");
    assert_eq!(cleared["throttleRate"], 10);

    let (status, _) = server.get("/api/v1/app/acme").await;
    assert_eq!(status, 404, "the uid no longer names the application");
    let (status, got) = server.get(&format!("/api/v1/app/{id}")).await;
    assert_eq!(status, 200);
    assert!(got["uid"].is_null());
}

#[tokio::test]
async fn delete_then_get_is_not_found() {
    let server = TestServer::spawn().await;
    let (_, app) = server.post("/api/v1/app", json!({"name": "Gone", "uid": "gone"})).await;
    let id = text(&app["id"]);
    let (status, body) = server.delete(&format!("/api/v1/app/{id}")).await;
    assert_eq!(status, 204, "{body}");
    for key in [id.as_str(), "gone"] {
        let (status, body) = server.get(&format!("/api/v1/app/{key}")).await;
        assert_http_error(status, &body, 404, "not_found");
    }
    let (status, body) = server.delete(&format!("/api/v1/app/{id}")).await;
    assert_http_error(status, &body, 404, "not_found");
    let (_, list) = server.get("/api/v1/app").await;
    assert!(ids(&list).is_empty());
}

#[tokio::test]
async fn malformed_json_is_400_with_code_and_detail() {
    let server = TestServer::spawn().await;
    for body in [r#"{"name": "#, "{name: 'x'}", "not json"] {
        let (status, out) = send_raw(&server, Method::POST, "/api/v1/app", body).await;
        assert_eq!(status, 400, "{body} -> {out}");
        assert!(out["code"].as_str().is_some_and(|c| !c.is_empty()), "{out}");
        assert!(out["detail"].as_str().is_some_and(|d| !d.is_empty()), "{out}");
    }
}

#[tokio::test]
async fn a_missing_or_empty_name_is_a_validation_error() {
    let server = TestServer::spawn().await;
    let (status, body) = server.post("/api/v1/app", json!({"uid": "nameless"})).await;
    assert_validation_error(status, &body);
    assert_eq!(body["detail"][0]["loc"][0], "body", "{body}");
    let (status, body) = server.post("/api/v1/app", json!({"name": ""})).await;
    assert_validation_error(status, &body);
    let (status, body) = server.post("/api/v1/app", json!({"name": "x", "uid": "has space"})).await;
    assert_validation_error(status, &body);
    let (_, list) = server.get("/api/v1/app").await;
    assert!(ids(&list).is_empty(), "nothing was created");
}

#[tokio::test]
async fn an_unknown_application_is_not_found() {
    let server = TestServer::spawn().await;
    for path in ["/api/v1/app/app_2pQwCjfFWdLkQ6Zp3mKq7Lr0bXn", "/api/v1/app/no-such-uid"] {
        let (status, body) = server.get(path).await;
        assert_http_error(status, &body, 404, "not_found");
        let (status, body) = server.patch(path, json!({"name": "x"})).await;
        assert_http_error(status, &body, 404, "not_found");
        let (status, body) = server.delete(path).await;
        assert_http_error(status, &body, 404, "not_found");
        let (status, body) = server.get(&format!("{path}/endpoint")).await;
        assert_http_error(status, &body, 404, "not_found");
    }
}

#[tokio::test]
async fn a_missing_or_wrong_token_is_401() {
    let server = TestServer::spawn().await;
    let app = server.create_app("Acme").await;
    for path in ["/api/v1/app".to_string(), format!("/api/v1/app/{app}")] {
        let (status, body) = read(server.client.get(server.url(&path)).send().await.unwrap()).await;
        assert_http_error(status, &body, 401, "authentication_failed");
        let resp = server.client.get(server.url(&path)).bearer_auth("sk_not_the_token").send().await.unwrap();
        let (status, body) = read(resp).await;
        assert_http_error(status, &body, 401, "authentication_failed");
    }
    let resp = server
        .client
        .post(server.url("/api/v1/app"))
        .bearer_auth("sk_not_the_token")
        .json(&json!({"name": "Intruder"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let (_, list) = server.get("/api/v1/app").await;
    assert_eq!(ids(&list), vec![app], "nothing was created");
}

#[tokio::test]
async fn a_trailing_slash_works_on_every_path() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let ok = |status: u16, body: &serde_json::Value, want: u16, what: &str| {
        assert_eq!(status, want, "{what}: {body}");
    };

    let (s, b) = server.get("/api/v1/health/").await;
    ok(s, &b, 200, "health");
    let (s, app) = server.post("/api/v1/app/", json!({"name": "Slash", "uid": "slash"})).await;
    ok(s, &app, 201, "create app");
    let app = text(&app["id"]);
    let (s, b) = server.get("/api/v1/app/?limit=1").await;
    ok(s, &b, 200, "list apps");
    assert_eq!(b["data"].as_array().unwrap().len(), 1, "the query survives the slash");
    let (s, b) = server.get("/api/v1/app/slash/").await;
    ok(s, &b, 200, "get app");
    let (s, b) = server.patch(&format!("/api/v1/app/{app}/"), json!({"name": "Slash 2"})).await;
    ok(s, &b, 200, "patch app");
    let (s, b) = server.put(&format!("/api/v1/app/{app}/"), json!({"name": "Slash 3", "uid": "slash"})).await;
    ok(s, &b, 200, "put app");

    let (s, b) = server.post("/api/v1/event-type/", json!({"name": "slash.test", "description": "d"})).await;
    ok(s, &b, 201, "create event type");
    let (s, b) = server.get("/api/v1/event-type/").await;
    ok(s, &b, 200, "list event types");
    let (s, b) = server.get("/api/v1/event-type/slash.test/").await;
    ok(s, &b, 200, "get event type");
    let (s, b) = server.patch("/api/v1/event-type/slash.test/", json!({"description": "e"})).await;
    ok(s, &b, 200, "patch event type");
    let (s, b) = server.put("/api/v1/event-type/slash.test/", json!({"description": "f"})).await;
    ok(s, &b, 200, "put event type");

    let (s, ep) = server.post(&format!("/api/v1/app/{app}/endpoint/"), json!({"url": sink.url("/s")})).await;
    ok(s, &ep, 201, "create endpoint");
    let ep = text(&ep["id"]);
    let base = format!("/api/v1/app/{app}/endpoint/{ep}");
    let (s, b) = server.get(&format!("/api/v1/app/{app}/endpoint/")).await;
    ok(s, &b, 200, "list endpoints");
    for sub in ["", "/secret", "/headers", "/stats", "/msg"] {
        let (s, b) = server.get(&format!("{base}{sub}/")).await;
        ok(s, &b, 200, &format!("GET endpoint{sub}"));
    }
    let (s, b) = server.patch(&format!("{base}/"), json!({"description": "x"})).await;
    ok(s, &b, 200, "patch endpoint");
    let (s, b) = server.put(&format!("{base}/"), json!({"url": sink.url("/s")})).await;
    ok(s, &b, 200, "put endpoint");
    let (s, b) = server.put(&format!("{base}/headers/"), json!({"headers": {"X-A": "1"}})).await;
    ok(s, &b, 204, "put headers");
    let (s, b) = server.patch(&format!("{base}/headers/"), json!({"headers": {"X-B": "2"}})).await;
    ok(s, &b, 204, "patch headers");
    let (s, b) = server.post(&format!("{base}/secret/rotate/"), json!({})).await;
    ok(s, &b, 200, "rotate secret");

    let (s, msg) =
        server.post(&format!("/api/v1/app/{app}/msg/"), json!({"eventType": "slash.test", "payload": {}})).await;
    ok(s, &msg, 202, "create message");
    let msg = text(&msg["id"]);
    sink.wait_for(1, Duration::from_secs(10)).await;
    let attempts = wait_for_attempts(&server, &app, &msg, 1).await;
    let attempt = text(&attempts[0]["id"]);
    for path in [
        format!("/api/v1/app/{app}/msg/"),
        format!("/api/v1/app/{app}/msg/{msg}/"),
        format!("/api/v1/app/{app}/msg/{msg}/endpoint/"),
        format!("/api/v1/app/{app}/msg/{msg}/attempt/{attempt}/"),
        format!("/api/v1/app/{app}/attempt/msg/{msg}/"),
        format!("/api/v1/app/{app}/attempt/endpoint/{ep}/"),
    ] {
        let (s, b) = server.get(&path).await;
        ok(s, &b, 200, &path);
    }
    let (s, b) = server.post(&format!("/api/v1/app/{app}/msg/{msg}/endpoint/{ep}/resend/"), json!({})).await;
    ok(s, &b, 202, "resend");
    let since = json!({"since": crate::support::seconds_ago(3600)});
    let (s, b) = server.post(&format!("{base}/recover/"), since.clone()).await;
    ok(s, &b, 202, "recover");
    let (s, b) = server.post(&format!("{base}/replay-missing/"), since).await;
    ok(s, &b, 202, "replay-missing");
    let (s, b) = server.post(&format!("{base}/send-example/"), json!({"eventType": "slash.test"})).await;
    assert!((200..300).contains(&s), "send-example: {s} {b}");
    let (s, b) = server.delete(&format!("/api/v1/app/{app}/msg/{msg}/content/")).await;
    ok(s, &b, 204, "expunge content");
    let (s, b) = server.post(&format!("/api/v1/auth/app-portal-access/{app}/"), json!({})).await;
    ok(s, &b, 200, "app portal access");

    let (s, b) = server.delete(&format!("{base}/")).await;
    ok(s, &b, 204, "delete endpoint");
    let (s, b) = server.delete("/api/v1/event-type/slash.test/?expunge=true").await;
    ok(s, &b, 204, "delete event type");
    let (s, b) = server.delete(&format!("/api/v1/app/{app}/")).await;
    ok(s, &b, 204, "delete app");
    let (s, b) = server.get(&format!("/api/v1/app/{app}/")).await;
    ok(s, &b, 404, "deleted app");
}

#[tokio::test]
async fn rate_limit_is_accepted_as_an_alias_of_throttle_rate() {
    let server = TestServer::spawn().await;
    let (status, app) = server.post("/api/v1/app", json!({"name": "Old SDK", "rateLimit": 25})).await;
    assert_eq!(status, 201, "{app}");
    assert_eq!(app["throttleRate"], 25);
    let id = text(&app["id"]);
    let (_, got) = server.get(&format!("/api/v1/app/{id}")).await;
    assert_eq!(got["throttleRate"], 25);

    let (status, patched) = server.patch(&format!("/api/v1/app/{id}"), json!({"rateLimit": 7})).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["throttleRate"], 7);
    let (status, patched) = server.patch(&format!("/api/v1/app/{id}"), json!({"throttleRate": null})).await;
    assert_eq!(status, 200, "{patched}");
    assert!(patched["throttleRate"].is_null(), "{patched}");
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_with_json_errors() {
    let server = TestServer::spawn().await;
    let app = server.create_app("Acme").await;
    // Typos, and calls the SDKs have that hookd does not serve: the SDKs parse
    // every error body as JSON, so these must be `{code, detail}` too.
    for (method, path) in [
        (Method::GET, "/api/v1/nope".to_string()),
        (Method::GET, format!("/api/v1/app/{app}/endpoint/ep_x/attempt-stats")),
        (Method::POST, "/api/v1/auth/logout".to_string()),
        (Method::DELETE, format!("/api/v1/app/{app}/msg/m/attempt/a/content")),
    ] {
        let (status, body) = read(server.request(method.clone(), &path).send().await.unwrap()).await;
        assert_http_error(status, &body, 404, "not_found");
    }
    for (method, path) in [
        (Method::DELETE, "/api/v1/app".to_string()),
        (Method::POST, format!("/api/v1/app/{app}/msg/bulk-expunge")),
        (Method::POST, "/api/v1/health".to_string()),
    ] {
        let (status, body) = read(server.request(method.clone(), &path).send().await.unwrap()).await;
        assert_http_error(status, &body, 405, "method_not_allowed");
    }
}
