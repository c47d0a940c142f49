//! Where deliveries may go: the server's destination policy (https-only,
//! allowed and blocked networks), an organisation's narrowing of it, and the
//! egress proxy.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::mgmt::text;
use crate::support::{ServerOptions, Sink, TestServer};

fn with(allow_private: bool, args: &[&str]) -> ServerOptions {
    ServerOptions { allow_private, extra_args: args.iter().map(|s| s.to_string()).collect(), ..Default::default() }
}

/// Calls the server as `token`.
async fn call(server: &TestServer, token: &str, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    crate::mgmt::read(server.client.post(server.url(path)).bearer_auth(token).json(&body).send().await.unwrap()).await
}

/// Sends one message (as `token`) to a new endpoint at `url`; returns the first attempt.
pub(crate) async fn attempt_as(server: &TestServer, token: &str, app: &str, url: &str) -> serde_json::Value {
    call(server, token, "/api/v1/event-type", json!({"name": "a.b", "description": "x"})).await;
    let (status, ep) = call(server, token, &format!("/api/v1/app/{app}/endpoint"), json!({"url": url})).await;
    assert_eq!(status, 201, "{url}: {ep}");
    let path = format!("/api/v1/app/{app}/endpoint/{}/send-example", text(&ep["id"]));
    let (status, msg) = call(server, token, &path, json!({"eventType": "a.b"})).await;
    assert_eq!(status, 202, "{msg}");
    let msg = text(&msg["id"]);
    let attempt = server
        .eventually(Duration::from_secs(10), || async {
            let resp = server
                .client
                .get(server.url(&format!("/api/v1/app/{app}/attempt/msg/{msg}")))
                .bearer_auth(token)
                .send()
                .await
                .ok()?;
            let list: serde_json::Value = resp.json().await.ok()?;
            list["data"].as_array()?.first().cloned()
        })
        .await;
    attempt.expect("the message was attempted")
}

async fn attempt_at(server: &TestServer, app: &str, url: &str) -> serde_json::Value {
    attempt_as(server, &server.token, app, url).await
}

#[tokio::test]
async fn an_allow_list_admits_its_networks_and_nothing_else() {
    let server = TestServer::spawn_with(with(false, &["--allowed-networks", "127.0.0.1/32"])).await;
    let sink = Sink::start().await;
    let app = server.create_app("Allow").await;
    // Loopback is in the default block list, but the operator allowed it.
    let ok = attempt_at(&server, &app, &sink.url("/in")).await;
    assert_eq!(ok["responseStatusCode"], 200, "{ok}");
    let port = sink.addr.port();
    let (status, body) =
        server.post(&format!("/api/v1/app/{app}/endpoint"), json!({"url": format!("http://127.0.0.2:{port}/")})).await;
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("outside the allowed networks"), "{body}");
    assert_eq!(sink.received().len(), 1);
}

#[tokio::test]
async fn blocked_networks_https_only_and_an_organisations_policy() {
    let server = TestServer::spawn_with(with(true, &["--blocked-networks", "127.0.0.2/32"])).await;
    let sink = Sink::start().await;
    let port = sink.addr.port();
    let app = server.create_app("Default").await;
    let (status, body) =
        server.post(&format!("/api/v1/app/{app}/endpoint"), json!({"url": format!("http://127.0.0.2:{port}/")})).await;
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("blocked network 127.0.0.2/32"), "{body}");

    // Organisation B may reach https only, and never 127.0.0.1.
    let (status, env) = server
        .post(
            "/api/v1/management/environment",
            json!({"name": "B", "type": "production", "destinationPolicy": {"httpsOnly": true}}),
        )
        .await;
    assert_eq!(status, 201, "{env}");
    assert_eq!(env["destinationPolicy"]["httpsOnly"], true, "{env}");
    let env_b = text(&env["id"]);
    let (_, tok) =
        server.post(&format!("/api/v1/management/authentication/{env_b}/api-token"), json!({"name": "b"})).await;
    let b = text(&tok["token"]);
    let as_b = |method: reqwest::Method, path: &str, body: serde_json::Value| {
        server.client.request(method, server.url(path)).bearer_auth(&b).json(&body).send()
    };
    let resp = as_b(reqwest::Method::POST, "/api/v1/app", json!({"name": "B app"})).await.unwrap();
    let b_app = text(&resp.json::<serde_json::Value>().await.unwrap()["id"]);
    let resp = as_b(reqwest::Method::POST, &format!("/api/v1/app/{b_app}/endpoint"), json!({"url": sink.url("/b")}))
        .await
        .unwrap();
    assert_eq!(resp.status(), 422, "http is refused in an https-only organisation");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert!(body.to_string().contains("https"), "{body}");
    for bad in [json!({"blockedNetworks": ["not-a-network"]}), json!({"httpsOnly": "yes"}), json!({"other": 1})] {
        let (status, body) = server
            .put(&format!("/api/v1/management/environment/{env_b}"), json!({"name": "B", "destinationPolicy": bad}))
            .await;
        assert_eq!(status, 422, "{bad}: {body}");
    }
    let (status, env) = server
        .put(
            &format!("/api/v1/management/environment/{env_b}"),
            json!({"name": "B", "destinationPolicy": {"blockedNetworks": ["127.0.0.0/8", "::1/128"]}}),
        )
        .await;
    assert_eq!(status, 200, "{env}");
    // A name is judged when delivering: B's delivery to localhost is refused,
    // the default organisation's is not.
    let url = format!("http://localhost:{port}/names");
    let attempt = attempt_as(&server, &b, &b_app, &url).await;
    assert!(text(&attempt["response"]).contains("blocked network"), "{attempt}");
    let ok = attempt_at(&server, &app, &url).await;
    assert_eq!(ok["responseStatusCode"], 200, "{ok}");
    // An endpoint check follows B's policy too: no probe, no test event reaches localhost.
    let before = sink.count();
    let resp =
        as_b(reqwest::Method::POST, &format!("/api/v1/app/{b_app}/endpoint"), json!({"url": url})).await.unwrap();
    let b_ep = text(&resp.json::<serde_json::Value>().await.unwrap()["id"]);
    let resp =
        as_b(reqwest::Method::POST, &format!("/api/v1/app/{b_app}/endpoint/{b_ep}/check"), json!({})).await.unwrap();
    let check: serde_json::Value = resp.json().await.unwrap();
    assert_eq!((&check["ok"], &check["dns"]["ok"]), (&json!(false), &json!(false)), "{check}");
    assert!(text(&check["dns"]["error"]).contains("blocked network"), "{check}");
    assert_eq!(check["testEvent"]["statusCode"], serde_json::Value::Null, "{check}");
    assert_eq!(sink.count(), before, "nothing reached the sink");
}

/// A forwarding proxy on loopback: `CONNECT` tunnels and absolute-form
/// requests; records the targets it was asked for. With `upstream`, it
/// connects there whatever the target (standing in for a network only the
/// proxy reaches).
async fn start_proxy(upstream: Option<String>) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else { return };
            let (log, upstream) = (log.clone(), upstream.clone());
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 65536 {
                    if client.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let text = String::from_utf8_lossy(&head).to_string();
                let mut line = text.lines().next().unwrap_or("").split(' ');
                let (method, target) = (line.next().unwrap_or(""), line.next().unwrap_or("").to_string());
                if method == "CONNECT" {
                    log.lock().unwrap().push(target.clone());
                    let Ok(mut upstream) = TcpStream::connect(upstream.as_deref().unwrap_or(&target)).await else {
                        return;
                    };
                    client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").await.unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                } else {
                    let rest = target.strip_prefix("http://").unwrap_or(&target);
                    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
                    log.lock().unwrap().push(authority.to_string());
                    let Ok(mut upstream) = TcpStream::connect(upstream.as_deref().unwrap_or(authority)).await else {
                        return;
                    };
                    let origin_form = text.replacen(&target, if path.is_empty() { "/" } else { path }, 1);
                    upstream.write_all(origin_form.as_bytes()).await.unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
            });
        }
    });
    (url, seen)
}

#[tokio::test]
async fn deliveries_go_through_the_egress_proxy_after_the_policy_says_yes() {
    let (proxy, seen) = start_proxy(None).await;
    let server = TestServer::spawn_with(with(true, &["--egress-proxy", &proxy])).await;
    let sink = Sink::start().await;
    let app = server.create_app("Proxied").await;
    let ok = attempt_at(&server, &app, &sink.url("/via-proxy")).await;
    assert_eq!(ok["responseStatusCode"], 200, "{ok}");
    assert_eq!(sink.received().len(), 1);
    assert_eq!(*seen.lock().unwrap(), vec![sink.addr.to_string()], "the delivery went through the proxy");

    // An organisation that may not reach loopback: its delivery to a name that
    // resolves there is refused before the proxy is asked.
    let policy = json!({"blockedNetworks": ["127.0.0.0/8", "::1/128"]});
    let (_, b) = crate::tenancy::organisation_with(&server, "B", json!({"destinationPolicy": policy})).await;
    let (_, b_app) = call(&server, &b, "/api/v1/app", json!({"name": "B"})).await;
    let b_app = text(&b_app["id"]);
    let refused = attempt_as(&server, &b, &b_app, &format!("http://localhost:{}/name", sink.addr.port())).await;
    let response = text(&refused["response"]);
    assert!(response.contains("blocked network"), "{response}");
    assert_eq!(seen.lock().unwrap().len(), 1, "the proxy was never asked for a refused destination");
    assert_eq!(sink.received().len(), 1);
    // Tenants cannot pick the proxy's identity.
    let (status, body) = server
        .post(
            &format!("/api/v1/app/{app}/endpoint"),
            json!({"url": sink.url("/h"), "headers": {"Proxy-Authorization": "Basic eDp5"}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
}

/// The proxy's own name is the operator's: it is not held to the destination
/// policy (here it resolves to loopback, which deliveries may not reach).
#[tokio::test]
async fn a_proxy_named_on_a_private_network_still_carries_allowed_deliveries() {
    let sink = Sink::start().await;
    let (proxy, seen) = start_proxy(Some(sink.addr.to_string())).await;
    let proxy = proxy.replace("127.0.0.1", "localhost");
    let server =
        TestServer::spawn_with(with(false, &["--egress-proxy", &proxy, "--allowed-networks", "127.0.0.2/32"])).await;
    let app = server.create_app("Behind a proxy").await;
    let ok = attempt_at(&server, &app, "http://127.0.0.2:9/only-the-proxy-reaches-this").await;
    assert_eq!(ok["responseStatusCode"], 200, "{ok}");
    assert_eq!(*seen.lock().unwrap(), vec!["127.0.0.2:9".to_string()]);
    let (status, _) = server.post(&format!("/api/v1/app/{app}/endpoint"), json!({"url": sink.url("/direct")})).await;
    assert_eq!(status, 422, "127.0.0.1 is still no destination");
}
