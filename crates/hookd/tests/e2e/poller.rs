//! Polling endpoints: poller sinks made as Svix makes them, read in pages in
//! order and filtered, consumers whose place hookd keeps (across restarts), v2
//! leases and commits (what is not committed is shown again), poller tokens
//! that read their own sink only, and bad input refused with a detail.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::mgmt::{ids, read, send_raw, text};
use crate::support::{ServerOptions, TestServer};

/// Makes a poller sink through `/stream/sink`; returns its id.
async fn poller_sink(server: &TestServer, app: &str, body: Value) -> String {
    let (status, sink) = server.post(&format!("/api/v1/app/{app}/stream/sink"), body).await;
    assert_eq!(status, 201, "{sink}");
    assert_eq!(sink["type"], "poller", "{sink}");
    text(&sink["id"])
}

async fn send(server: &TestServer, app: &str, event_type: &str, channels: Value) -> String {
    let (status, msg) = server
        .post(
            &format!("/api/v1/app/{app}/msg"),
            json!({"eventType": event_type, "payload": {"type": event_type}, "channels": channels}),
        )
        .await;
    assert_eq!(status, 202, "{msg}");
    text(&msg["id"])
}

/// GET `path` with `token`.
async fn get_as(server: &TestServer, token: &str, path: &str) -> (u16, Value) {
    read(server.client.get(server.url(path)).bearer_auth(token).send().await.unwrap()).await
}

async fn post_as(server: &TestServer, token: &str, path: &str, body: Value) -> (u16, Value) {
    read(server.client.post(server.url(path)).bearer_auth(token).json(&body).send().await.unwrap()).await
}

/// The offsets of a v2 page's messages.
fn offsets(page: &Value) -> Vec<u64> {
    page["data"].as_array().unwrap().iter().map(|m| m["offset"].as_u64().expect("an offset")).collect()
}

/// The first field error's message of a 422 body.
fn detail(body: &Value) -> String {
    text(&body["detail"][0]["msg"])
}

#[tokio::test]
async fn poller_sinks_are_made_as_svix_makes_them_and_read_in_order() {
    let server = TestServer::spawn().await;
    let app = server.create_app("polled").await;
    let before = send(&server, &app, "order.created", json!(null)).await;

    let (status, orders) = server
        .post(
            &format!("/api/v1/app/{app}/stream/sink"),
            json!({"type": "poller", "uid": "orders", "eventTypes": ["order.created"], "metadata": {"team": "a"}}),
        )
        .await;
    assert_eq!(status, 201, "{orders}");
    assert!(text(&orders["id"]).starts_with("sink_"), "{orders}");
    assert_eq!(
        (&orders["status"], &orders["batchSize"], &orders["maxWaitSecs"], &orders["eventTypes"], &orders["channels"]),
        (&json!("enabled"), &json!(100), &json!(0), &json!(["order.created"]), &json!([])),
    );
    let orders = text(&orders["id"]);
    // The same object through the newer `destination` API, by uid.
    let (status, dest) = server.get(&format!("/api/v1/app/{app}/destination/orders")).await;
    assert_eq!((status, text(&dest["id"]), text(&dest["type"])), (200, orders.clone(), "pollingEndpoint".into()));
    let (status, all) =
        server.post(&format!("/api/v1/app/{app}/destination"), json!({"type": "pollingEndpoint"})).await;
    assert_eq!((status, text(&all["type"])), (201, "pollingEndpoint".into()), "{all}");
    let all = text(&all["id"]);
    let (_, listed) = server.get(&format!("/api/v1/app/{app}/stream/sink")).await;
    assert_eq!(ids(&listed), vec![orders.clone(), all.clone()]);

    let o1 = send(&server, &app, "order.created", json!(null)).await;
    let s1 = send(&server, &app, "user.signup", json!(["eu"])).await;
    let o2 = send(&server, &app, "order.created", json!(["eu", "us"])).await;

    // A sink shows what came after it, filtered by its event types, in order.
    let (status, page) = server.get(&format!("/api/v1/app/{app}/poller/{orders}")).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(ids(&page), vec![o1.clone(), o2.clone()], "not {before}, made before the sink");
    assert_eq!((&page["done"], &page["data"][0]["payload"]), (&json!(true), &json!({"type": "order.created"})));
    assert_eq!(page["data"][1]["channels"], json!(["eu", "us"]));

    // Pages follow the iterator; at the end the iterator stays.
    let poll = format!("/api/v1/app/{app}/poller/{all}");
    let (_, first) = server.get(&format!("{poll}?limit=2")).await;
    assert_eq!((ids(&first), &first["done"]), (vec![o1.clone(), s1.clone()], &json!(false)));
    let (_, second) = server.get(&format!("{poll}?limit=2&iterator={}", text(&first["iterator"]))).await;
    assert_eq!((ids(&second), &second["done"]), (vec![o2.clone()], &json!(true)));
    let (_, third) = server.get(&format!("{poll}?iterator={}", text(&second["iterator"]))).await;
    assert_eq!((ids(&third), &third["iterator"]), (Vec::<String>::new(), &second["iterator"]));
    // A raw payload is polled as it was sent, with its content type.
    let raw = json!({"eventType": "order.raw", "payload": {},
        "transformationsParams": {"rawPayload": "<order/>", "headers": {"content-type": "application/xml"}}});
    let (status, _) = server.post(&format!("/api/v1/app/{app}/msg"), raw).await;
    assert_eq!(status, 202);
    let (_, fourth) = server.get(&format!("{poll}?iterator={}", text(&second["iterator"]))).await;
    assert_eq!(fourth["data"][0]["transformationsParams"]["rawPayload"], "<order/>", "{fourth}");
    assert_eq!(fourth["data"][0]["transformationsParams"]["headers"]["content-type"], "application/xml");
    // A read's own filters, and a start by time.
    let (_, signups) = server.get(&format!("{poll}?event_type=user.signup")).await;
    assert_eq!(ids(&signups), vec![s1.clone()]);
    let (_, us) = server.get(&format!("{poll}?channel=us")).await;
    assert_eq!(ids(&us), vec![o2.clone()]);
    let (_, later) = server.get(&format!("{poll}?after=2999-01-01T00:00:00Z")).await;
    assert_eq!(ids(&later), Vec::<String>::new());

    // Changing the filter changes what the sink shows; a disabled sink shows
    // nothing until it is enabled again.
    let sink_path = format!("/api/v1/app/{app}/stream/sink/{orders}");
    let (status, patched) = server.patch(&sink_path, json!({"eventTypes": ["user.signup"], "channels": ["eu"]})).await;
    assert_eq!((status, &patched["metadata"]), (200, &json!({"team": "a"})), "{patched}");
    let (_, page) = server.get(&format!("/api/v1/app/{app}/poller/{orders}")).await;
    assert_eq!(ids(&page), vec![s1.clone()]);
    assert_eq!(server.patch(&sink_path, json!({"status": "disabled"})).await.0, 200);
    let (_, page) = server.get(&format!("/api/v1/app/{app}/poller/{orders}")).await;
    assert_eq!((ids(&page), &page["done"]), (Vec::<String>::new(), &json!(true)));
    assert_eq!(server.patch(&sink_path, json!({"status": "enabled"})).await.0, 200);
    let (_, page) = server.get(&format!("/api/v1/app/{app}/poller/{orders}")).await;
    assert_eq!(ids(&page), vec![s1.clone()]);

    // PUT makes (201) and replaces (200); DELETE removes.
    let nightly = format!("/api/v1/app/{app}/stream/sink/nightly");
    let (status, made) = server.put(&nightly, json!({"type": "poller"})).await;
    assert_eq!((status, &made["uid"]), (201, &json!("nightly")), "{made}");
    let (status, replaced) = server.put(&nightly, json!({"type": "poller", "batchSize": 10})).await;
    assert_eq!((status, &replaced["id"], &replaced["batchSize"]), (200, &made["id"], &json!(10)));
    assert_eq!(server.delete(&nightly).await.0, 204);
    assert_eq!(server.get(&nightly).await.0, 404);
    assert_eq!(server.get(&format!("/api/v1/app/{app}/poller/nightly")).await.0, 404);
}

#[tokio::test]
async fn a_consumer_keeps_its_place_across_calls_and_restarts() {
    let mut server = TestServer::spawn().await;
    let app = server.create_app("consumed").await;
    let sink = poller_sink(&server, &app, json!({"type": "poller"})).await;
    let m1 = send(&server, &app, "a.b", json!(null)).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let m2 = send(&server, &app, "a.b", json!(null)).await;
    let m3 = send(&server, &app, "a.b", json!(null)).await;

    let consumer = |name: &str| format!("/api/v1/app/{app}/poller/{sink}/consumer/{name}");
    let (status, page) = server.get(&format!("{}?limit=2", consumer("a"))).await;
    assert_eq!((status, ids(&page)), (200, vec![m1.clone(), m2.clone()]), "{page}");
    let (_, page) = server.get(&consumer("a")).await;
    assert_eq!((ids(&page), &page["done"]), (vec![m3.clone()], &json!(true)));
    let (_, page) = server.get(&consumer("a")).await;
    assert_eq!(ids(&page), Vec::<String>::new(), "each read moves on");
    let (_, page) = server.get(&consumer("b")).await;
    assert_eq!(ids(&page), vec![m1.clone(), m2.clone(), m3.clone()], "another consumer has its own place");

    // The places survive a restart.
    let m4 = send(&server, &app, "a.b", json!(null)).await;
    server.sigterm();
    let _ = server.child.wait().await;
    let server = TestServer::spawn_in(server.data_dir.clone(), ServerOptions::default()).await;
    let (_, page) = server.get(&consumer("a")).await;
    assert_eq!(ids(&page), vec![m4.clone()]);
    let (_, page) = server.get(&consumer("b")).await;
    assert_eq!(ids(&page), vec![m4.clone()]);

    // A seek puts the consumer before the first message made after a time.
    let (_, m2_out) = server.get(&format!("/api/v1/app/{app}/msg/{m2}")).await;
    let m1_time = {
        let (_, m) = server.get(&format!("/api/v1/app/{app}/msg/{m1}")).await;
        text(&m["timestamp"])
    };
    assert_ne!(m1_time, text(&m2_out["timestamp"]));
    let (status, seek) = server.post(&format!("{}/seek", consumer("a")), json!({"after": m1_time})).await;
    assert_eq!(status, 200, "{seek}");
    assert!(text(&seek["iterator"]).parse::<u64>().is_ok(), "{seek}");
    let (_, page) = server.get(&consumer("a")).await;
    assert_eq!(ids(&page), vec![m2.clone(), m3.clone(), m4.clone()]);
    // An iterator given to a consumer read reads from there, and moves it there.
    let (_, page) = server.get(&format!("{}?iterator={}", consumer("a"), text(&seek["iterator"]))).await;
    assert_eq!(ids(&page), vec![m2, m3, m4]);
}

#[tokio::test]
async fn v2_leases_a_batch_and_shows_again_what_was_not_committed_on_sqlite() {
    v2_leases_a_batch_and_shows_again_what_was_not_committed(None).await;
}

#[tokio::test]
async fn v2_leases_a_batch_and_shows_again_what_was_not_committed_on_postgres() {
    let Some(admin) = crate::postgres::shared_url() else { return };
    let db = crate::postgres::TestDatabase::create(&admin);
    v2_leases_a_batch_and_shows_again_what_was_not_committed(Some(&db.url)).await;
}

async fn v2_leases_a_batch_and_shows_again_what_was_not_committed(database_url: Option<&str>) {
    let extra_args = database_url.map(|url| vec!["--database-url".to_string(), url.to_string()]).unwrap_or_default();
    let server = TestServer::spawn_with(ServerOptions { extra_args, ..Default::default() }).await;
    let app = server.create_app("v2").await;
    let sink = poller_sink(&server, &app, json!({"type": "poller", "eventTypes": ["a.b"]})).await;
    let m1 = send(&server, &app, "a.b", json!(null)).await;
    send(&server, &app, "x.y", json!(null)).await;
    let m2 = send(&server, &app, "a.b", json!(null)).await;
    let m3 = send(&server, &app, "a.b", json!(null)).await;

    let worker = format!("/api/v1/app/{app}/polling-endpoint/{sink}/consumer/worker");
    let (status, batch) = server.get(&format!("{worker}?limit=2&lease_duration_ms=300")).await;
    assert_eq!(status, 200, "{batch}");
    assert_eq!((ids(&batch), &batch["done"]), (vec![m1.clone(), m2.clone()], &json!(false)));
    let first = offsets(&batch);
    assert!(first[0] < first[1], "{batch}");
    let (_, leased) = server.get(&format!("{worker}?limit=2")).await;
    assert_eq!(ids(&leased), Vec::<String>::new(), "the batch is leased: nothing new meanwhile");

    // Not committed: once the lease ends, the same batch again.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (_, again) = server.get(&format!("{worker}?limit=2&lease_duration_ms=60000")).await;
    assert_eq!((ids(&again), offsets(&again)), (vec![m1.clone(), m2.clone()], first.clone()));
    let (status, body) = server.post(&format!("{worker}/commit"), json!({"offset": first[1] + 1000})).await;
    assert_eq!(status, 422, "{body}");
    assert!(detail(&body).contains("past what this consumer was shown"), "{body}");
    let (status, body) = server.post(&format!("{worker}/commit"), json!({"offset": first[1]})).await;
    assert_eq!((status, body), (204, Value::Null));
    let (_, next) = server.get(&worker).await;
    assert_eq!((ids(&next), &next["done"]), (vec![m3.clone()], &json!(true)));
    assert_eq!(server.post(&format!("{worker}/commit"), json!({"offset": offsets(&next)[0]})).await.0, 204);
    let (_, empty) = server.get(&worker).await;
    assert_eq!((ids(&empty), &empty["done"]), (Vec::<String>::new(), &json!(true)));

    // Without a lease every read shows the uncommitted batch.
    let open = format!("/api/v1/app/{app}/polling-endpoint/{sink}/consumer/open?lease_duration_ms=0&limit=1");
    assert_eq!(ids(&server.get(&open).await.1), vec![m1.clone()]);
    assert_eq!(ids(&server.get(&open).await.1), vec![m1.clone()]);
    // A new consumer at `latest` sees only what comes next.
    let late = format!("/api/v1/app/{app}/polling-endpoint/{sink}/consumer/late?starting_position=latest");
    assert_eq!(ids(&server.get(&late).await.1), Vec::<String>::new());
    let m4 = send(&server, &app, "a.b", json!(null)).await;
    assert_eq!(ids(&server.get(&late).await.1), vec![m4]);
    // A seek moves a v2 consumer too (and ends its lease).
    let seek = format!("/api/v1/app/{app}/poller/{sink}/consumer/late/seek");
    let (status, _) = server.post(&seek, json!({"after": "2000-01-01T00:00:00Z"})).await;
    assert_eq!(status, 200);
    assert_eq!(ids(&server.get(&late).await.1)[0], m1);
    let (status, _) = server
        .post(&format!("/api/v1/app/{app}/polling-endpoint/{sink}/consumer/nobody/commit"), json!({"offset": 1}))
        .await;
    assert_eq!(status, 404, "a consumer that never read has nothing to commit");
}

#[tokio::test]
async fn a_poller_token_reads_its_own_sink_only() {
    let server = TestServer::spawn().await;
    let app = server.create_app("tokens").await;
    let other_app = server.create_app("other").await;
    let sink = poller_sink(&server, &app, json!({"type": "poller"})).await;
    let sibling = poller_sink(&server, &app, json!({"type": "poller"})).await;
    let foreign = poller_sink(&server, &other_app, json!({"type": "poller"})).await;
    let m1 = send(&server, &app, "a.b", json!(null)).await;

    let token_path = format!("/api/v1/auth/app/{app}/poller/{sink}/token");
    let (status, shown) = server.get(&token_path).await;
    assert_eq!(status, 200, "{shown}");
    let token = text(&shown["token"]);
    assert!(token.starts_with("sk_poll_") && shown["createdAt"].is_string(), "{shown}");
    assert_eq!(server.get(&token_path).await.1["token"], json!(token), "the current token, shown again");

    // Its sink: every way of reading it.
    let (status, page) = get_as(&server, &token, &format!("/api/v1/app/{app}/poller/{sink}")).await;
    assert_eq!((status, ids(&page)), (200, vec![m1.clone()]), "{page}");
    assert_eq!(get_as(&server, &token, &format!("/api/v1/app/{app}/poller/{sink}/consumer/c")).await.0, 200);
    let v2 = format!("/api/v1/app/{app}/polling-endpoint/{sink}/consumer/c2");
    let (status, batch) = get_as(&server, &token, &v2).await;
    assert_eq!((status, ids(&batch)), (200, vec![m1.clone()]));
    let committed = post_as(&server, &token, &format!("{v2}/commit"), json!({"offset": offsets(&batch)[0]})).await;
    assert_eq!(committed.0, 204, "{committed:?}");
    let seek = format!("/api/v1/app/{app}/poller/{sink}/consumer/c/seek");
    assert_eq!(post_as(&server, &token, &seek, json!({"after": "2000-01-01T00:00:00Z"})).await.0, 200);
    // Nothing else: another sink or application is not found; the rest of its
    // application is refused.
    assert_eq!(get_as(&server, &token, &format!("/api/v1/app/{app}/poller/{sibling}")).await.0, 404);
    assert_eq!(get_as(&server, &token, &format!("/api/v1/app/{other_app}/poller/{foreign}")).await.0, 404);
    assert_eq!(get_as(&server, &token, &format!("/api/v1/app/{other_app}")).await.0, 404);
    for path in [
        format!("/api/v1/app/{app}"),
        format!("/api/v1/app/{app}/msg"),
        format!("/api/v1/app/{app}/stream/sink/{sink}"),
        token_path.clone(),
    ] {
        let (status, body) = get_as(&server, &token, &path).await;
        assert_eq!(status, 403, "{path}: {body}");
    }
    assert_eq!(get_as(&server, &token, "/api/v1/app").await.0, 404);

    // A rotation: the new token works, the old one stops when told.
    let (status, rotated) = server.post(&format!("{token_path}/rotate"), json!({"oldTokenExpiry": 0})).await;
    assert_eq!(status, 201, "{rotated}");
    let new_token = text(&rotated["token"]);
    assert_ne!(new_token, token);
    assert_eq!(get_as(&server, &token, &format!("/api/v1/app/{app}/poller/{sink}")).await.0, 401);
    assert_eq!(get_as(&server, &new_token, &format!("/api/v1/app/{app}/poller/{sink}")).await.0, 200);
    assert_eq!(server.get(&token_path).await.1["token"], json!(new_token));
    let (status, graced) = server.post(&format!("{token_path}/rotate"), json!({"expiry": 3600})).await;
    assert_eq!(status, 201);
    assert!(graced["expiresAt"].is_string(), "{graced}");
    assert_eq!(get_as(&server, &new_token, &format!("/api/v1/app/{app}/poller/{sink}")).await.0, 200, "its grace");

    // Portal tokens read polling endpoints; showing a poller token takes a
    // secret's capability.
    let (_, viewer) =
        server.post(&format!("/api/v1/auth/app-portal-access/{app}"), json!({"capabilities": ["ViewBase"]})).await;
    let viewer = text(&viewer["token"]);
    assert_eq!(get_as(&server, &viewer, &format!("/api/v1/app/{app}/poller/{sink}")).await.0, 200);
    assert_eq!(get_as(&server, &viewer, &token_path).await.0, 403);
    let (_, manager) = server.post(&format!("/api/v1/auth/app-portal-access/{app}"), json!({})).await;
    assert_eq!(get_as(&server, &text(&manager["token"]), &token_path).await.0, 200);
    // A read-only organisation token reads sinks, not their tokens.
    let (_, me) = server.get("/api/v1/auth/whoami").await;
    let (_, ro) = server
        .post(
            &format!("/api/v1/management/authentication/{}/api-token", text(&me["envId"])),
            json!({"scopes": ["read-only"]}),
        )
        .await;
    let ro = text(&ro["token"]);
    assert_eq!(get_as(&server, &ro, &format!("/api/v1/app/{app}/poller/{sink}")).await.0, 200);
    let (status, body) = get_as(&server, &ro, &token_path).await;
    assert_eq!((status, text(&body["detail"])), (403, "a read-only token cannot read poller tokens".into()));
}

#[tokio::test]
async fn bad_input_is_refused_with_a_detail() {
    let server = TestServer::spawn().await;
    let app = server.create_app("bad").await;
    let sinks = format!("/api/v1/app/{app}/stream/sink");
    for (body, field) in [
        (json!({"type": "http", "config": {"url": "https://example.com"}}), "type"),
        (json!({"uid": "no-type"}), "type"),
        (json!({"type": "poller", "uid": "sink_mine"}), "uid"),
        (json!({"type": "poller", "batchSize": 0}), "batchSize"),
        (json!({"type": "poller", "maxWaitSecs": 301}), "maxWaitSecs"),
        (json!({"type": "poller", "status": "paused"}), "status"),
        (json!({"type": "poller", "eventTypes": ["no spaces"]}), "eventTypes"),
        (json!({"type": "poller", "channels": ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k"]}), "channels"),
    ] {
        let (status, out) = server.post(&sinks, body.clone()).await;
        assert_eq!(status, 422, "{body}: {out}");
        assert_eq!(out["detail"][0]["loc"], json!(["body", field]), "{body}: {out}");
        assert!(!detail(&out).is_empty());
    }
    let (status, out) = send_raw(&server, Method::POST, &sinks, "{not json").await;
    assert_eq!(status, 400, "{out}");
    assert!(out["detail"].as_str().unwrap().contains("not valid JSON"), "{out}");

    let sink = poller_sink(&server, &app, json!({"type": "poller"})).await;
    let poll = format!("/api/v1/app/{app}/poller/{sink}");
    let v2 = format!("/api/v1/app/{app}/polling-endpoint/{sink}/consumer/c");
    for (path, field) in [
        (format!("{poll}?limit=0"), "limit"),
        (format!("{poll}?limit=251"), "limit"),
        (format!("{poll}?iterator=abc"), "iterator"),
        (format!("{poll}?iterator=-5"), "iterator"),
        (format!("{poll}?after=yesterday"), "after"),
        (format!("{poll}?event_type=a%20b"), "event_type"),
        (format!("{v2}?lease_duration_ms=-1"), "lease_duration_ms"),
        (format!("{v2}?lease_duration_ms=3600001"), "lease_duration_ms"),
        (format!("{v2}?starting_position=middle"), "starting_position"),
    ] {
        let (status, out) = server.get(&path).await;
        assert_eq!(status, 422, "{path}: {out}");
        assert_eq!(out["detail"][0]["loc"], json!(["query", field]), "{path}: {out}");
    }
    let (status, out) = server.get(&format!("/api/v1/app/{app}/polling-endpoint/{sink}/consumer/bad%20id")).await;
    assert_eq!((status, &out["detail"][0]["loc"]), (422, &json!(["path", "consumer_id"])), "{out}");
    let (status, out) = server.post(&format!("{v2}/commit"), json!({"offset": "first"})).await;
    assert_eq!(status, 422, "{out}");
    let (status, _) = send_raw(&server, Method::POST, &format!("{v2}/commit"), "offset=1").await;
    assert_eq!(status, 400);
    let (status, out) =
        server.post(&format!("/api/v1/app/{app}/poller/{sink}/consumer/c/seek"), json!({"after": "yesterday"})).await;
    assert_eq!((status, &out["detail"][0]["loc"]), (422, &json!(["body", "after"])), "{out}");
    let rotate = format!("/api/v1/auth/app/{app}/poller/{sink}/token/rotate");
    let (status, out) = server.post(&rotate, json!({"expiry": 0})).await;
    assert_eq!((status, &out["detail"][0]["loc"]), (422, &json!(["body", "expiry"])), "{out}");
    let (status, out) = server.post(&rotate, json!({"oldTokenExpiry": 86401})).await;
    assert_eq!((status, &out["detail"][0]["loc"]), (422, &json!(["body", "oldTokenExpiry"])), "{out}");
    assert_eq!(server.get(&format!("/api/v1/app/{app}/poller/sink_nope")).await.0, 404);
}
