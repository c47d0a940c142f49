//! Who may call what: app portal tokens scoped to one application, the open
//! health and metrics routes, and the admin token created on first start.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::mgmt::{ids, read, text, wait_for_attempts};
use crate::support::{ServerOptions, Sink, TestServer};

/// GET `path` with `token` as the bearer token.
async fn get_as(server: &TestServer, token: &str, path: &str) -> (u16, serde_json::Value) {
    read(server.client.get(server.url(path)).bearer_auth(token).send().await.expect("request")).await
}

#[tokio::test]
async fn an_app_portal_token_sees_only_its_own_application() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let (_, mine) = server.post("/api/v1/app", json!({"name": "Mine", "uid": "mine", "throttleRate": 10})).await;
    let mine = text(&mine["id"]);
    let theirs = server.create_app("Theirs").await;
    let my_ep = text(&server.create_endpoint(&mine, json!({"url": sink.url("/mine")})).await["id"]);
    server.create_endpoint(&theirs, json!({"url": sink.url("/theirs")})).await;
    let my_msg = text(&server.send_message(&mine, "a.b", json!({})).await["id"]);
    let their_msg = text(&server.send_message(&theirs, "a.b", json!({})).await["id"]);

    let (status, access) = server.post(&format!("/api/v1/auth/app-portal-access/{mine}"), json!({})).await;
    assert_eq!(status, 200, "{access}");
    let token = text(&access["token"]);
    let url = text(&access["url"]);
    assert!(url.starts_with("http"), "{url}");
    assert!(url.contains("/portal/login?token=ott_"), "the portal link carries a one-time token: {url}");
    assert!(!url.contains(&token), "not the portal token itself: {url}");

    for app in [mine.as_str(), "mine"] {
        let (status, eps) = get_as(&server, &token, &format!("/api/v1/app/{app}/endpoint")).await;
        assert_eq!(status, 200, "{eps}");
        assert_eq!(ids(&eps), vec![my_ep.clone()]);
        let (status, msgs) = get_as(&server, &token, &format!("/api/v1/app/{app}/msg")).await;
        assert_eq!(status, 200, "{msgs}");
        assert_eq!(ids(&msgs), vec![my_msg.clone()]);
    }
    let (status, _) = get_as(&server, &token, &format!("/api/v1/app/{mine}/msg/{my_msg}")).await;
    assert_eq!(status, 200);

    for path in [
        format!("/api/v1/app/{theirs}"),
        format!("/api/v1/app/{theirs}/endpoint"),
        format!("/api/v1/app/{theirs}/msg"),
        format!("/api/v1/app/{theirs}/msg/{their_msg}"),
        format!("/api/v1/app/{mine}/msg/{their_msg}"),
        "/api/v1/app".to_string(),
    ] {
        let (status, body) = get_as(&server, &token, &path).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert_eq!(body["code"], "not_found", "{path}: {body}");
    }
    let resp = server
        .client
        .post(server.url("/api/v1/app"))
        .bearer_auth(&token)
        .json(&json!({"name": "Sneaky"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404, "a portal token cannot create applications");
    let resp = server
        .client
        .post(server.url(&format!("/api/v1/auth/app-portal-access/{mine}")))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403, "nor mint more tokens: its own application, but not its right");

    // Nor change or delete its own application (its name, uid or throttle).
    let own = server.url(&format!("/api/v1/app/{mine}"));
    for (method, body) in [
        (Method::PATCH, json!({"name": "Renamed", "throttleRate": null})),
        (Method::PUT, json!({"name": "Renamed", "uid": "mine"})),
        (Method::DELETE, json!({})),
    ] {
        let resp = server.client.request(method.clone(), &own).bearer_auth(&token).json(&body).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), 403, "{method} own application");
    }
    let (_, app) = server.get(&format!("/api/v1/app/{mine}")).await;
    assert_eq!(app["name"], "Mine", "{app}");
    assert_eq!(app["throttleRate"], 10, "{app}");

    let (status, _) = server.post("/api/v1/auth/app-portal-access/app_nope", json!({})).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn health_needs_no_token() {
    let server = TestServer::spawn().await;
    let (status, body) = read(server.client.get(server.url("/api/v1/health")).send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok", "{body}");
}

#[tokio::test]
async fn metrics_need_no_token_and_count_a_delivery() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let app = server.create_app("Acme").await;
    server.create_endpoint(&app, json!({"url": sink.url("/m")})).await;
    let msg = text(&server.send_message(&app, "a.b", json!({})).await["id"]);
    wait_for_attempts(&server, &app, &msg, 1).await;

    let want = ["hookd_messages_accepted_total 1", r#"hookd_attempts_total{outcome="success"} 1"#];
    let metrics = server
        .eventually(Duration::from_secs(5), || async {
            let resp = server.client.get(server.url("/metrics")).send().await.ok()?;
            (resp.status() == 200).then_some(())?;
            let body = resp.text().await.ok()?;
            want.iter().all(|w| body.lines().any(|l| l == *w)).then_some(body)
        })
        .await;
    assert!(metrics.is_some(), "metrics never showed {want:?}");
}

/// A second `hookd serve` on `dir` with no admin token configured; returns it
/// (killed when dropped), its base URL and every line it printed up to listening.
async fn serve_without_token(dir: &std::path::Path) -> (tokio::process::Child, String, Vec<String>) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_hookd"))
        .args(["serve", "--listen", "127.0.0.1:0", "--log", "warn", "--allow-private-networks"])
        .arg("--data-dir")
        .arg(dir)
        .env_remove("HOOKD_ADMIN_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start hookd");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    let base = loop {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("hookd printed nothing within 30s")
            .expect("read stdout")
            .expect("hookd exited before listening");
        printed.push(line.clone());
        if let Some(url) = line.strip_prefix("listening on ") {
            break url.trim().to_string();
        }
    };
    (child, base, printed)
}

#[tokio::test]
async fn the_first_start_prints_an_admin_token_and_later_starts_do_not() {
    let mut first = TestServer::spawn_with(ServerOptions { admin_token: None, ..Default::default() }).await;
    let token = first.token.clone();
    assert!(token.starts_with("sk_"), "{token}");
    assert_ne!(token, crate::support::TOKEN);
    let (status, body) = first.get("/api/v1/app").await;
    assert_eq!(status, 200, "the printed token works: {body}");
    let app = first.create_app("Survives").await;

    let dir: Arc<tempfile::TempDir> = first.data_dir.clone();
    first.child.kill().await.expect("stop the first server");

    let (_second, base, printed) = serve_without_token(dir.path()).await;
    assert!(!printed.iter().any(|l| l.starts_with("sk_")), "no second token: {printed:?}");
    let client = reqwest::Client::new();
    let (status, list) = read(client.get(format!("{base}/api/v1/app")).bearer_auth(&token).send().await.unwrap()).await;
    assert_eq!(status, 200, "the first token still works: {list}");
    assert_eq!(ids(&list), vec![app]);
    let resp = client.get(format!("{base}/api/v1/app")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
}

/// A portal token is handed to end customers in a URL: with it, nobody may make
/// hookd sign and send events of their choosing. Sending a message (or an
/// example with a payload of one's own) on its own application is 403; on any
/// other application, 404.
#[tokio::test]
async fn an_app_portal_token_cannot_send_messages() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let mine = server.create_app("Mine").await;
    let theirs = server.create_app("Theirs").await;
    let ep = text(&server.create_endpoint(&mine, json!({"url": sink.url("/mine")})).await["id"]);
    let (_, access) = server.post(&format!("/api/v1/auth/app-portal-access/{mine}"), json!({})).await;
    let token = text(&access["token"]);
    let post_as = |path: String, body: serde_json::Value| {
        let req = server.client.post(server.url(&path)).bearer_auth(&token).json(&body);
        async move { read(req.send().await.unwrap()).await }
    };

    let (status, body) = post_as(format!("/api/v1/app/{mine}/msg"), json!({"eventType": "a.b", "payload": {}})).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["code"], "forbidden", "{body}");
    let (status, _) = post_as(format!("/api/v1/app/{theirs}/msg"), json!({"eventType": "a.b", "payload": {}})).await;
    assert_eq!(status, 404, "another application stays unseen");
    let example = json!({"eventType": "a.b", "payload": {"forged": true}});
    let (status, body) = post_as(format!("/api/v1/app/{mine}/endpoint/{ep}/send-example"), example).await;
    assert_eq!(status, 403, "{body}");
    // The event type's own example it may send (the portal's "send test event").
    server.post("/api/v1/event-type", json!({"name": "a.b", "description": "A"})).await;
    let (status, body) =
        post_as(format!("/api/v1/app/{mine}/endpoint/{ep}/send-example"), json!({"eventType": "a.b"})).await;
    assert_eq!(status, 202, "{body}");
    let got = sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].json(), json!({}));
    // It may recover its own endpoint, and follow that task, not others'.
    let since = json!({"since": crate::support::seconds_ago(60)});
    let (status, task) = post_as(format!("/api/v1/app/{mine}/endpoint/{ep}/recover"), since).await;
    assert_eq!(status, 202, "{task}");
    let (status, _) = get_as(&server, &token, &format!("/api/v1/background-task/{}", text(&task["id"]))).await;
    assert_eq!(status, 200);
    let their_ep = text(&server.create_endpoint(&theirs, json!({"url": sink.url("/theirs")})).await["id"]);
    let (_, other) = server
        .post(
            &format!("/api/v1/app/{theirs}/endpoint/{their_ep}/recover"),
            json!({"since": crate::support::seconds_ago(60)}),
        )
        .await;
    let (status, _) = get_as(&server, &token, &format!("/api/v1/background-task/{}", text(&other["id"]))).await;
    assert_eq!(status, 404, "another application's task stays unseen");
    let (_, listed) = get_as(&server, &token, "/api/v1/background-task").await;
    assert_eq!(ids(&listed), vec![text(&task["id"])]);
    assert_eq!(sink.count(), 1, "nothing else was sent");
}
