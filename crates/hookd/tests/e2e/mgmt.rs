//! Helpers shared by the management API tests (applications, event types,
//! endpoints, messages, attempts, auth): raw requests, error-body checks, and
//! waiting for what the delivery engine records.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::support::TestServer;

/// The string at `v`, which must be one.
pub fn text(v: &Value) -> String {
    v.as_str().unwrap_or_else(|| panic!("expected a string, got {v}")).to_string()
}

/// The `id`s of a list response's `data`, in order.
pub fn ids(list: &Value) -> Vec<String> {
    list["data"]
        .as_array()
        .unwrap_or_else(|| panic!("expected a list response, got {list}"))
        .iter()
        .map(|item| text(&item["id"]))
        .collect()
}

/// Reads a response as status and JSON (`Null` when empty, a string when not JSON).
pub async fn read(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let body = resp.text().await.expect("response body");
    let value = if body.is_empty() { Value::Null } else { serde_json::from_str(&body).unwrap_or(Value::String(body)) };
    (status, value)
}

/// Sends `body` as it is, labelled as JSON, with the admin token.
pub async fn send_raw(server: &TestServer, method: Method, path: &str, body: &str) -> (u16, Value) {
    let resp = server
        .request(method, path)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("request");
    read(resp).await
}

/// Sends a JSON body with extra request headers.
pub async fn send_with_headers(
    server: &TestServer,
    method: Method,
    path: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    let mut req = server.request(method, path).json(body);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    read(req.send().await.expect("request")).await
}

/// Checks a 422 `HTTPValidationError`: `detail` is a non-empty list of
/// `{loc, msg, type}` (what the Svix SDKs parse).
pub fn assert_validation_error(status: u16, body: &Value) {
    assert_eq!(status, 422, "{body}");
    let detail = body["detail"].as_array().unwrap_or_else(|| panic!("detail must be a list: {body}"));
    assert!(!detail.is_empty(), "{body}");
    for item in detail {
        let loc = item["loc"].as_array().unwrap_or_else(|| panic!("loc must be a list: {body}"));
        assert!(loc.iter().all(Value::is_string), "{body}");
        assert!(item["msg"].is_string(), "{body}");
        assert!(item["type"].is_string(), "{body}");
    }
}

/// The `loc` of the first validation error, e.g. `["body", "url"]`.
pub fn error_loc(body: &Value) -> Vec<String> {
    body["detail"][0]["loc"].as_array().map(|l| l.iter().map(text).collect()).unwrap_or_default()
}

/// Checks an `HttpErrorOut`: `{"code": code, "detail": "..."}` with `status`.
pub fn assert_http_error(status: u16, body: &Value, want_status: u16, code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()), "{body}");
}

/// The endpoint's current signing secret.
pub async fn secret_of(server: &TestServer, app: &str, ep: &str) -> String {
    let (status, body) = server.get(&format!("/api/v1/app/{app}/endpoint/{ep}/secret")).await;
    assert_eq!(status, 200, "{body}");
    text(&body["key"])
}

/// Waits until `n` attempts of the message are recorded; returns them newest first.
pub async fn wait_for_attempts(server: &TestServer, app: &str, msg: &str, n: usize) -> Vec<Value> {
    server
        .eventually(Duration::from_secs(10), || async {
            let (_, list) = server.get(&format!("/api/v1/app/{app}/attempt/msg/{msg}")).await;
            let data = list["data"].as_array()?.clone();
            (data.len() >= n).then_some(data)
        })
        .await
        .unwrap_or_else(|| panic!("{n} attempts of {msg} were not recorded"))
}

/// Waits until the message's delivery to its (only) endpoint has `status`.
pub async fn wait_for_delivery_status(server: &TestServer, app: &str, msg: &str, status: i64) -> Value {
    server
        .eventually(Duration::from_secs(10), || async {
            let (_, list) = server.get(&format!("/api/v1/app/{app}/msg/{msg}/endpoint")).await;
            let dest = list["data"].get(0)?.clone();
            (dest["status"] == status).then_some(dest)
        })
        .await
        .unwrap_or_else(|| panic!("the delivery of {msg} never reached status {status}"))
}

/// Every route of the API with its methods, read from the routers' sources
/// (`crates/api/src/v1/mod.rs` and the ingest API's `crates/api/src/ingest/mod.rs`),
/// so a route added there is walked by the isolation tests without anyone
/// listing it.
pub fn router_routes() -> Vec<(String, Vec<Method>)> {
    let v1 = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../api/src/v1/mod.rs")).unwrap();
    let ingest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../api/src/ingest/mod.rs")).unwrap();
    let v1_names =
        ("/api/v1/app/{app_id}", "/api/v1/app/{app_id}/endpoint/{endpoint_id}", "/api/v1/app/{app_id}/msg/{msg_id}");
    let ingest_names =
        ("/ingest/api/v1/source/{source_id}", "/ingest/api/v1/source/{source_id}/endpoint/{endpoint_id}", "");
    let mut routes = routes_in(&v1, "pub fn router()", v1_names);
    routes.extend(routes_in(&ingest, "pub fn router()", ingest_names));
    routes
}

/// The `.route(…)` calls after `start` in a router's source; `names` are what
/// its shorthand variables stand for (`app` or `src`, `ep`, `msg`).
fn routes_in(source: &str, start: &str, names: (&str, &str, &str)) -> Vec<(String, Vec<Method>)> {
    let body = &source[source.find(start).unwrap()..];
    let body = &body[..body.find("\n}\n").unwrap_or(body.len())];
    let (app_t, ep_t, msg_t) = names;
    let mut routes = Vec::new();
    for chunk in body.split(".route(").skip(1) {
        let first = chunk.trim_start().split(',').next().unwrap().trim();
        let template = if let Some(lit) = first.strip_prefix('"') {
            lit.trim_end_matches('"').to_string()
        } else if let Some(f) = first.strip_prefix("&format!(\"") {
            f.trim_end_matches("\")")
                .replace("{app}", app_t)
                .replace("{src}", app_t)
                .replace("{ep}", ep_t)
                .replace("{msg}", msg_t)
                .replace("{{", "{")
                .replace("}}", "}")
        } else {
            match first {
                "app" | "src" => app_t.to_string(),
                "ep" => ep_t.to_string(),
                "msg" => msg_t.to_string(),
                other => panic!("cannot read the route `{other}`"),
            }
        };
        let handlers = &chunk[..chunk.find("\n        .route(").unwrap_or(chunk.len())];
        let methods = [
            (Method::GET, "get("),
            (Method::POST, "post("),
            (Method::PUT, "put("),
            (Method::PATCH, "patch("),
            (Method::DELETE, "delete("),
        ]
        .into_iter()
        .filter(|(_, name)| handlers.contains(name))
        .map(|(m, _)| m)
        .collect();
        routes.push((template, methods));
    }
    routes
}
