//! Connector presets, end to end: each destination is a local server that
//! accepts exactly the request its provider documents (path, method, body
//! shape, authentication and, for OAuth2, the refresh-token flow with a 401
//! when a token expires) and refuses anything else with the provider's error.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use base64::Engine;
use md5::Digest;
use serde_json::{json, Value};

use crate::mgmt::{assert_validation_error, text};
use crate::support::TestServer;

/// The OAuth client every provider here knows.
const CLIENT_ID: &str = "client-1";
const CLIENT_SECRET: &str = "client-secret-1";
const REFRESH_TOKEN: &str = "refresh-1";

#[derive(Default)]
struct Provider {
    /// (what, path, body) of each request the provider took.
    accepted: Vec<(&'static str, String, Value)>,
    /// Why each other request was refused.
    refused: Vec<String>,
    /// Access tokens handed out, in order.
    issued: Vec<String>,
    /// The first token expires after one use (the API answers 401 with it).
    first_token_used: bool,
}

#[derive(Clone)]
struct Mock {
    addr: std::net::SocketAddr,
    state: Arc<Mutex<Provider>>,
}

type Answer = (StatusCode, Value);

fn refuse(status: u16, why: impl Into<String>) -> Result<Answer, (u16, String)> {
    Err((status, why.into()))
}

impl Mock {
    async fn start() -> Mock {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state: Arc<Mutex<Provider>> = Arc::default();
        let app = axum::Router::new().fallback(handle).with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Mock { addr, state }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    async fn accepted(&self, n: usize) -> Vec<(&'static str, String, Value)> {
        for _ in 0..200 {
            {
                let s = self.state.lock().unwrap();
                if s.accepted.len() >= n {
                    return s.accepted.clone();
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let s = self.state.lock().unwrap();
        panic!("the provider took {} of {n} requests; refused: {:?}", s.accepted.len(), s.refused);
    }

    fn refused(&self) -> Vec<String> {
        self.state.lock().unwrap().refused.clone()
    }
}

async fn handle(
    State(state): State<Arc<Mutex<Provider>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, axum::Json<Value>) {
    let mut s = state.lock().unwrap();
    let path = uri.path().to_string();
    match route(&mut s, &method, &uri, &headers, &body) {
        Ok((status, answer)) => (status, axum::Json(answer)),
        Err((status, why)) => {
            s.refused.push(format!("{method} {path}: {why}"));
            (StatusCode::from_u16(status).unwrap(), axum::Json(json!({"error": why})))
        }
    }
}

fn json_body(headers: &HeaderMap, body: &[u8]) -> Result<Value, (u16, String)> {
    let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    if !ct.starts_with("application/json") {
        return Err((415, format!("content-type {ct:?} is not JSON")));
    }
    serde_json::from_slice(body).map_err(|e| (400, format!("invalid JSON: {e}")))
}

fn form(body: &[u8]) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    headers.get("authorization")?.to_str().ok()?.strip_prefix("Bearer ").map(str::to_string)
}

/// An OAuth2 token endpoint: the refresh-token grant with the client's id and
/// secret in the form (client_secret_post).
fn token(s: &mut Provider, headers: &HeaderMap, body: &[u8]) -> Result<Answer, (u16, String)> {
    let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    if ct != "application/x-www-form-urlencoded" {
        return refuse(400, format!("the token request is {ct:?}, not a form"));
    }
    let f = form(body);
    let get = |k: &str| f.get(k).map(String::as_str);
    if get("grant_type") != Some("refresh_token") {
        return refuse(400, "unsupported_grant_type");
    }
    if get("client_id") != Some(CLIENT_ID) || get("client_secret") != Some(CLIENT_SECRET) {
        return refuse(401, "invalid_client");
    }
    if get("refresh_token") != Some(REFRESH_TOKEN) {
        return refuse(400, "invalid_grant");
    }
    let access = format!("access-{}", s.issued.len() + 1);
    s.issued.push(access.clone());
    Ok((StatusCode::OK, json!({"access_token": access, "token_type": "Bearer", "expires_in": 3600})))
}

/// A bearer API call: the latest token, or the first one for one use.
fn authorised(s: &mut Provider, headers: &HeaderMap) -> Result<(), (u16, String)> {
    let Some(token) = bearer(headers) else { return Err((401, "no bearer token".into())) };
    if s.issued.first() == Some(&token) && s.issued.len() == 1 {
        if s.first_token_used {
            return Err((401, "INVALID_SESSION_ID: the session expired".into()));
        }
        s.first_token_used = true;
        return Ok(());
    }
    if s.issued.last() == Some(&token) || token == "pat-private-app" {
        return Ok(());
    }
    Err((401, format!("unknown token {token}")))
}

fn scalar(v: &Value) -> bool {
    v.is_string() || v.is_number() || v.is_boolean() || v.is_null()
}

fn route(
    s: &mut Provider,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Answer, (u16, String)> {
    let path = uri.path().to_string();
    let seg: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let query: BTreeMap<String, String> =
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).into_owned().collect();
    let post = method == Method::POST;
    let take = |s: &mut Provider, what: &'static str, b: Value, status: StatusCode, answer: Value| {
        s.accepted.push((what, path.clone(), b));
        Ok((status, answer))
    };
    // Token endpoints (Salesforce, HubSpot, Google).
    if post && matches!(path.as_str(), "/services/oauth2/token" | "/oauth/v1/token" | "/token") {
        return token(s, headers, body);
    }
    // The chat and catch-hook URLs carry their own secret: another provider's
    // credentials arriving there are a leak.
    let chat = path.starts_with("/services/") && seg.get(1) != Some(&"data") || path.starts_with("/hooks/catch/");
    if chat && (headers.contains_key("authorization") || headers.contains_key("x-api-token")) {
        return refuse(400, "credentials sent to a webhook URL");
    }
    // Slack: POST /services/T…/B…/secret with text and Block Kit blocks.
    if post && seg.len() == 4 && seg[0] == "services" && seg[1] != "data" {
        let b = json_body(headers, body)?;
        if !b["text"].as_str().is_some_and(|t| !t.is_empty() && t.len() <= 40_000) {
            return refuse(400, "invalid_payload: no text");
        }
        let Some(blocks) = b["blocks"].as_array() else { return refuse(400, "invalid_blocks") };
        for block in blocks {
            let ok = match block["type"].as_str() {
                Some("header") => {
                    block["text"]["type"] == "plain_text"
                        && block["text"]["text"].as_str().is_some_and(|t| t.chars().count() <= 150)
                }
                Some("section") => block["text"]["text"].as_str().is_some_and(|t| t.chars().count() <= 3000),
                Some("context") => block["elements"].as_array().is_some_and(|e| !e.is_empty() && e.len() <= 10),
                Some("divider") => true,
                _ => false,
            };
            if !ok {
                return refuse(400, format!("invalid_blocks: {block}"));
            }
        }
        return take(s, "slack", b, StatusCode::OK, json!("ok"));
    }
    // Teams (Workflows): a message with an Adaptive Card attachment.
    if post && path.contains("/workflows/") {
        let b = json_body(headers, body)?;
        let card = &b["attachments"][0];
        let ok = b["type"] == "message"
            && card["contentType"] == "application/vnd.microsoft.card.adaptive"
            && card["content"]["type"] == "AdaptiveCard"
            && card["content"]["version"].is_string()
            && card["content"]["body"]
                .as_array()
                .is_some_and(|items| !items.is_empty() && items.iter().all(|i| i["type"].is_string()));
        if !ok {
            return refuse(400, "the body is not a message with an Adaptive Card");
        }
        return take(s, "teams", b, StatusCode::ACCEPTED, json!({}));
    }
    // Discord: POST /api/webhooks/{id}/{token}.
    if post && seg.len() == 4 && seg[0] == "api" && seg[1] == "webhooks" {
        let b = json_body(headers, body)?;
        let content_ok = b["content"].as_str().is_none_or(|c| c.chars().count() <= 2000);
        let embeds = b["embeds"].as_array().cloned().unwrap_or_default();
        let embeds_ok = embeds.len() <= 10
            && embeds.iter().all(|e| {
                e["title"].as_str().is_none_or(|t| t.chars().count() <= 256)
                    && e["fields"].as_array().is_none_or(|f| {
                        f.len() <= 25
                            && f.iter().all(|f| {
                                f["name"].as_str().is_some_and(|n| !n.is_empty() && n.chars().count() <= 256)
                                    && f["value"].as_str().is_some_and(|v| !v.is_empty() && v.chars().count() <= 1024)
                            })
                    })
            });
        if !content_ok || !embeds_ok || (b["content"].is_null() && embeds.is_empty()) {
            return refuse(400, "Invalid Form Body");
        }
        return take(s, "discord", b, StatusCode::NO_CONTENT, Value::Null);
    }
    // Google Chat: POST /v1/spaces/{space}/messages?key=…&token=….
    if post && seg.len() == 4 && seg[0] == "v1" && seg[1] == "spaces" && seg[3] == "messages" {
        if !query.contains_key("key") || !query.contains_key("token") {
            return refuse(401, "the webhook URL lost its key or token");
        }
        let b = json_body(headers, body)?;
        if !b["text"].as_str().is_some_and(|t| !t.is_empty() && t.len() <= 32_000) {
            return refuse(400, "INVALID_ARGUMENT: no text");
        }
        return take(s, "google-chat", b, StatusCode::OK, json!({"name": format!("spaces/{}/messages/1", seg[2])}));
    }
    // Zapier: POST /hooks/catch/{account}/{hook}/.
    if post && path.starts_with("/hooks/catch/") {
        let b = json_body(headers, body)?;
        if !b.is_object() {
            return refuse(400, "a catch hook takes a JSON object");
        }
        return take(s, "zapier", b, StatusCode::OK, json!({"status": "success"}));
    }
    // Salesforce: POST /services/data/vNN.N/sobjects/{Object}/ with a bearer token.
    if seg.len() >= 5 && seg[0] == "services" && seg[1] == "data" && seg[3] == "sobjects" {
        if !post || !path.ends_with('/') && seg.len() != 5 {
            return refuse(405, "METHOD_NOT_ALLOWED");
        }
        authorised(s, headers)?;
        let b = json_body(headers, body)?;
        let Some(fields) = b.as_object() else { return refuse(400, "JSON_PARSER_ERROR") };
        if !fields.values().all(scalar) {
            return refuse(400, "INVALID_FIELD: field values are scalars");
        }
        if seg[4] == "Lead" && !(fields.contains_key("LastName") && fields.contains_key("Company")) {
            return refuse(400, "REQUIRED_FIELD_MISSING: LastName, Company");
        }
        return take(
            s,
            "salesforce",
            b,
            StatusCode::CREATED,
            json!({"id": "00Q000000000001", "success": true, "errors": []}),
        );
    }
    // HubSpot: POST /crm/v3/objects/{type} with {"properties": {…strings}}.
    if seg.len() == 4 && seg[0] == "crm" && seg[1] == "v3" && seg[2] == "objects" {
        if !post {
            return refuse(405, "method not allowed");
        }
        authorised(s, headers)?;
        let b = json_body(headers, body)?;
        let ok = b.as_object().is_some_and(|o| o.len() == 1)
            && b["properties"].as_object().is_some_and(|p| p.values().all(Value::is_string));
        if !ok {
            return refuse(400, "VALIDATION_ERROR: properties are strings");
        }
        return take(s, "hubspot", b, StatusCode::CREATED, json!({"id": "501", "properties": {}}));
    }
    // Pipedrive: POST /api/v1/{object} with the API token in x-api-token.
    if seg.len() == 3 && seg[0] == "api" && seg[1] == "v1" {
        if headers.get("x-api-token").and_then(|v| v.to_str().ok()) != Some("pd-token-1") {
            return refuse(401, "You need to be authorized to make this request.");
        }
        if !post {
            return refuse(405, "method not allowed");
        }
        let b = json_body(headers, body)?;
        if seg[2] == "persons" && b["name"].as_str().is_none_or(str::is_empty) {
            return refuse(400, "Name must be given.");
        }
        return take(s, "pipedrive", b, StatusCode::CREATED, json!({"success": true, "data": {"id": 7}}));
    }
    // Mailchimp: PUT /3.0/lists/{list}/members/{md5 of the lowercase email}, basic auth with the key.
    if seg.len() == 5 && seg[0] == "3.0" && seg[1] == "lists" && seg[3] == "members" {
        let expected = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("hookd:key-us21"));
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
        let password_ok = auth
            .strip_prefix("Basic ")
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .and_then(|b| String::from_utf8(b).ok())
            .is_some_and(|pair| pair.split_once(':').is_some_and(|(_, key)| key == "key-us21"));
        if !password_ok {
            return refuse(401, format!("API Key Invalid ({auth:?}, expected like {expected:?})"));
        }
        if method != Method::PUT {
            return refuse(405, "use PUT to add or update a member");
        }
        let b = json_body(headers, body)?;
        let email = b["email_address"].as_str().unwrap_or("");
        let hash = format!("{:x}", md5::Md5::digest(email.to_lowercase().as_bytes()));
        if seg[4] != hash {
            return refuse(400, format!("the subscriber hash {} is not the MD5 of {email:?}", seg[4]));
        }
        let statuses = ["subscribed", "unsubscribed", "cleaned", "pending", "transactional"];
        if !b["status_if_new"].as_str().is_some_and(|st| statuses.contains(&st)) {
            return refuse(400, "Invalid Resource: status_if_new");
        }
        if !b["merge_fields"].as_object().is_none_or(|m| m.values().all(scalar)) {
            return refuse(400, "Invalid Resource: merge_fields");
        }
        return take(s, "mailchimp", b, StatusCode::OK, json!({"id": hash, "status": "subscribed"}));
    }
    // Google Sheets: POST /v4/spreadsheets/{id}/values/{range}:append?valueInputOption=….
    if seg.len() == 5 && seg[0] == "v4" && seg[1] == "spreadsheets" && seg[3] == "values" {
        authorised(s, headers)?;
        if !post || !seg[4].ends_with(":append") {
            return refuse(404, "not found");
        }
        if !query.get("valueInputOption").is_some_and(|v| v == "RAW" || v == "USER_ENTERED") {
            return refuse(400, "valueInputOption is required");
        }
        let b = json_body(headers, body)?;
        let ok = b["values"].as_array().is_some_and(|rows| {
            !rows.is_empty() && rows.iter().all(|r| r.as_array().is_some_and(|cells| cells.iter().all(scalar)))
        });
        if !ok {
            return refuse(400, "Invalid values: rows of cells");
        }
        return take(
            s,
            "google-sheets",
            b,
            StatusCode::OK,
            json!({"spreadsheetId": seg[2], "updates": {"updatedRows": 1}}),
        );
    }
    refuse(404, "no such API")
}

/// Makes an application with an endpoint using `connector`, and sends one
/// message; answers the application's id and the endpoint.
async fn send_through(server: &TestServer, url: String, connector: Value, payload: Value) -> (String, Value) {
    let app = server.create_app("Acme").await;
    let (status, ep) =
        server.post(&format!("/api/v1/app/{app}/endpoint"), json!({"url": url, "connector": connector})).await;
    assert_eq!(status, 201, "{ep}");
    server.send_message(&app, "order.paid", payload).await;
    (app, ep)
}

#[tokio::test]
async fn chat_and_catch_hook_presets_post_what_each_tool_accepts() {
    let server = TestServer::spawn().await;
    let mock = Mock::start().await;
    let order = json!({"id": "o_1", "total": 12.5, "customer": "Ada"});
    let cases = [
        ("slack", "/services/T01/B02/secret"),
        ("teams", "/workflows/abc/triggers/manual/paths/invoke?api-version=1"),
        ("discord", "/api/webhooks/123/token-x"),
        ("google-chat", "/v1/spaces/AAA/messages?key=k1&token=t1"),
        ("zapier", "/hooks/catch/1/abc/"),
    ];
    for (preset, path) in cases {
        let (_, ep) = send_through(&server, mock.url(path), json!({"connector": preset}), order.clone()).await;
        assert_eq!(ep["connector"], format!("preset:{preset}"));
    }
    let got = mock.accepted(cases.len()).await;
    assert!(mock.refused().is_empty(), "{:?}", mock.refused());
    let by: BTreeMap<&str, &Value> = got.iter().map(|(what, _, body)| (*what, body)).collect();
    assert_eq!(by["slack"]["text"], "order.paid");
    assert_eq!(by["discord"]["embeds"][0]["fields"][0], json!({"name": "customer", "value": "Ada", "inline": true}));
    assert_eq!(by["zapier"]["event_type"], "order.paid");
    assert_eq!(by["zapier"]["total"], 12.5);
    assert!(by["google-chat"]["text"].as_str().unwrap().contains("\"o_1\""));
}

#[tokio::test]
async fn salesforce_creates_a_record_and_refreshes_an_expired_token_once() {
    let server = TestServer::spawn().await;
    let mock = Mock::start().await;
    let connector = json!({
        "connector": "salesforce",
        "variables": {"sobject": "Lead", "fields": r#"{"LastName": "/last", "Company": "/company", "LeadSource": "Web"}"#},
        "credentials": {"clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET, "refreshToken": REFRESH_TOKEN,
                        "tokenUrl": mock.url("/services/oauth2/token")}
    });
    let (app, _) =
        send_through(&server, mock.url(""), connector, json!({"last": "Lovelace", "company": "Engines"})).await;
    let got = mock.accepted(1).await;
    assert_eq!(got[0].1, "/services/data/v60.0/sobjects/Lead/");
    assert_eq!(got[0].2, json!({"LastName": "Lovelace", "Company": "Engines", "LeadSource": "Web"}));

    // The first token expires: the next send gets a 401, refreshes, and retries once.
    server.send_message(&app, "order.paid", json!({"last": "Hopper", "company": "Navy"})).await;
    let got = mock.accepted(2).await;
    assert_eq!(got[1].2["LastName"], "Hopper");
    let s = mock.state.lock().unwrap();
    assert_eq!(s.issued.len(), 2, "one refresh after the 401");
    assert_eq!(s.refused.len(), 1, "{:?}", s.refused);
    assert!(s.refused[0].contains("INVALID_SESSION_ID"), "{:?}", s.refused);
}

#[tokio::test]
async fn hubspot_pipedrive_mailchimp_and_sheets_get_their_documented_requests() {
    let server = TestServer::spawn().await;
    let mock = Mock::start().await;
    let lead =
        json!({"email": "Ada@Example.com", "first": "Ada", "last": "Lovelace", "plan": {"name": "pro"}, "seats": 3});
    send_through(
        &server,
        mock.url(""),
        json!({"connector": "hubspot", "variables": {"objectType": "contacts",
               "properties": r#"{"email": "/email", "firstname": "/first", "seats": "/seats", "plan": "/plan"}"#},
               "credentials": {"token": "pat-private-app"}}),
        lead.clone(),
    )
    .await;
    send_through(
        &server,
        mock.url(""),
        json!({"connector": "pipedrive", "variables": {"object": "persons", "fields": r#"{"name": "/first", "email": "/email"}"#},
               "credentials": {"apiToken": "pd-token-1"}}),
        lead.clone(),
    )
    .await;
    send_through(
        &server,
        mock.url(""),
        json!({"connector": "mailchimp", "variables": {"listId": "a1b2c3", "mergeFields": r#"{"FNAME": "/first", "LNAME": "/last"}"#},
               "credentials": {"apiKey": "key-us21"}}),
        lead.clone(),
    )
    .await;
    send_through(
        &server,
        mock.url("/"),
        json!({"connector": "google-sheets", "variables": {"spreadsheetId": "sheet-1", "columns": r#"["$eventType", "/email", "/seats"]"#},
               "credentials": {"clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET, "refreshToken": REFRESH_TOKEN,
                               "tokenUrl": mock.url("/token")}}),
        lead,
    )
    .await;
    let got = mock.accepted(4).await;
    assert!(mock.refused().is_empty(), "{:?}", mock.refused());
    let by: BTreeMap<&str, (&String, &Value)> = got.iter().map(|(what, path, body)| (*what, (path, body))).collect();
    assert_eq!(by["hubspot"].0, "/crm/v3/objects/contacts");
    assert_eq!(
        by["hubspot"].1["properties"],
        json!({"email": "Ada@Example.com", "firstname": "Ada", "seats": "3", "plan": "{\"name\":\"pro\"}"})
    );
    assert_eq!(by["pipedrive"].1, &json!({"name": "Ada", "email": "Ada@Example.com"}));
    assert_eq!(by["mailchimp"].0, "/3.0/lists/a1b2c3/members/3e3417d7ef77d5932a6734b916515ed5");
    assert_eq!(by["mailchimp"].1["merge_fields"], json!({"FNAME": "Ada", "LNAME": "Lovelace"}));
    assert_eq!(by["google-sheets"].0, "/v4/spreadsheets/sheet-1/values/Sheet1!A1:append");
    assert_eq!(by["google-sheets"].1, &json!({"values": [["order.paid", "Ada@Example.com", 3]]}));
}

#[tokio::test]
async fn connectors_are_checked_before_anything_is_made() {
    let server = TestServer::spawn().await;
    let mock = Mock::start().await;
    let app = server.create_app("Acme").await;
    let path = format!("/api/v1/app/{app}/endpoint");
    let cases = [
        (json!({"url": mock.url("/not-slack"), "connector": {"connector": "slack"}}), json!(["body", "connector"])),
        (json!({"url": mock.url(""), "connector": {"connector": "nope"}}), json!(["body", "connector"])),
        (
            json!({"url": mock.url(""), "connector": {"connector": "salesforce", "variables": {"fields": "{}"}}}),
            json!(["body", "variables", "sobject"]),
        ),
        (
            json!({"url": mock.url(""), "connector": {"connector": "pipedrive",
                   "variables": {"object": "persons", "fields": "{}"}}}),
            json!(["body", "credentials", "apiToken"]),
        ),
        (
            json!({"url": mock.url(""), "connector": {"connector": "salesforce",
                   "variables": {"sobject": "Lead", "fields": "{}", "apiVersion": "60.0"}}}),
            json!(["body", "variables", "apiVersion"]),
        ),
        (
            json!({"url": mock.url("/services/T/B/x"), "batch": {"maxMessages": 10, "maxWaitMs": 100},
                   "connector": {"connector": "slack"}}),
            json!(["body", "connector"]),
        ),
    ];
    for (body, loc) in cases {
        let (status, err) = server.post(&path, body).await;
        assert_validation_error(status, &err);
        assert_eq!(err["detail"][0]["loc"], loc, "{err}");
    }
    let (_, list) = server.get(&path).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0, "nothing was made");
}

#[tokio::test]
async fn an_organisations_connectors_are_svix_resources_an_endpoint_can_use() {
    let server = TestServer::spawn().await;
    let mock = Mock::start().await;
    // From a preset, under the organisation's own name.
    let (status, made) =
        server.post("/api/v1/connector", json!({"preset": "slack", "name": "Ops Slack", "uid": "ops-slack"})).await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(made["kind"], "Slack");
    assert!(made["id"].as_str().unwrap().starts_with("trtmpl_"));
    assert!(made["transformation"].as_str().unwrap().contains("function handler"));
    // A custom one.
    let code = "function handler(webhook) { webhook.payload = {custom: webhook.eventType}; return webhook; }";
    let (status, custom) = server
        .post("/api/v1/connector", json!({"name": "Mine", "transformation": code, "allowedEventTypes": ["order.paid"]}))
        .await;
    assert_eq!(status, 201, "{custom}");
    assert_eq!(custom["kind"], "Custom");
    let (status, err) =
        server.post("/api/v1/connector", json!({"name": "Bad", "transformation": "function nope() {}"})).await;
    assert_validation_error(status, &err);
    assert_eq!(err["detail"][0]["loc"], json!(["body", "transformation"]));
    let (_, list) = server.get("/api/v1/connector").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
    let (status, patched) =
        server.patch("/api/v1/connector/ops-slack", json!({"description": "the ops channel"})).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["description"], "the ops channel");

    let app = server.create_app("Acme").await;
    let ep = server.create_endpoint(&app, json!({"url": mock.url("/services/T/B/x")})).await;
    let ep_path = format!("/api/v1/app/{app}/endpoint/{}", text(&ep["id"]));
    assert_eq!(server.get(&format!("{ep_path}/connector")).await.0, 204);
    let (status, out) = server.put(&format!("{ep_path}/connector"), json!({"connector": "ops-slack"})).await;
    assert_eq!(status, 204, "{out}");
    let (status, used) = server.get(&format!("{ep_path}/connector")).await;
    assert_eq!(status, 200);
    assert_eq!(used["name"], "Ops Slack");
    let (_, t) = server.get(&format!("{ep_path}/transformation")).await;
    assert_eq!(t["enabled"], true);
    server.send_message(&app, "order.paid", json!({"id": 1})).await;
    let got = mock.accepted(1).await;
    assert_eq!(got[0].0, "slack");

    // The custom connector on another endpoint; the presets are listed for forms.
    let sink_ep = server
        .create_endpoint(&app, json!({"url": mock.url("/hooks/catch/9/z/"), "filterTypes": ["order.paid"]}))
        .await;
    let sink_path = format!("/api/v1/app/{app}/endpoint/{}", text(&sink_ep["id"]));
    let (status, _) = server.put(&format!("{sink_path}/connector"), json!({"connector": text(&custom["id"])})).await;
    assert_eq!(status, 204);
    server.send_message(&app, "order.paid", json!({"id": 2})).await;
    let got = mock.accepted(3).await;
    assert!(got.iter().any(|(what, _, body)| *what == "zapier" && body == &json!({"custom": "order.paid"})), "{got:?}");
    let (_, presets) = server.get("/api/v1/connector-preset").await;
    assert_eq!(presets["data"].as_array().unwrap().len(), 12);
    assert_eq!(server.delete(&format!("{sink_path}/connector")).await.0, 204);
    let (_, t) = server.get(&format!("{sink_path}/transformation")).await;
    assert_eq!(t["code"], Value::Null);
    assert_eq!(server.delete("/api/v1/connector/ops-slack").await.0, 204);
    assert_eq!(server.get(&format!("{ep_path}/connector")).await.0, 204, "the endpoint keeps its code only");
}

#[tokio::test]
async fn switching_connectors_leaves_no_credential_of_the_last_provider_behind() {
    let server = TestServer::spawn().await;
    let mock = Mock::start().await;
    let app = server.create_app("Acme").await;
    let (status, ep) = server
        .post(
            &format!("/api/v1/app/{app}/endpoint"),
            json!({"url": mock.url(""), "connector": {"connector": "pipedrive",
                   "variables": {"object": "persons", "fields": r#"{"name": "/name"}"#},
                   "credentials": {"apiToken": "pd-token-1"}}}),
        )
        .await;
    assert_eq!(status, 201, "{ep}");
    let ep_path = format!("/api/v1/app/{app}/endpoint/{}", text(&ep["id"]));
    let (status, _) = server.put(&format!("{ep_path}/auth"), json!({"type": "bearer", "token": "left-over"})).await;
    assert_eq!(status, 204);
    // The same endpoint moves to a Zapier catch hook: its URL, then the preset.
    let (status, out) = server.patch(&ep_path, json!({"url": mock.url("/hooks/catch/1/b/")})).await;
    assert_eq!(status, 200, "{out}");
    let (status, out) = server.put(&format!("{ep_path}/connector"), json!({"connector": "zapier"})).await;
    assert_eq!(status, 204, "{out}");
    server.send_message(&app, "order.paid", json!({"name": "Ada"})).await;
    let got = mock.accepted(1).await;
    assert_eq!(got[0].0, "zapier");
    assert!(mock.refused().is_empty(), "{:?}", mock.refused());
    assert_eq!(server.get(&format!("{ep_path}/auth")).await.0, 404, "no credentials are left");

    // A connector made for some event types only fits endpoints limited to them.
    let code = "function handler(webhook) { return webhook; }";
    let (_, only) = server
        .post(
            "/api/v1/connector",
            json!({"name": "Paid only", "transformation": code, "allowedEventTypes": ["order.paid"]}),
        )
        .await;
    let (status, err) = server.put(&format!("{ep_path}/connector"), json!({"connector": text(&only["id"])})).await;
    assert_validation_error(status, &err);
    server.patch(&ep_path, json!({"filterTypes": ["order.paid"]})).await;
    let (status, out) = server.put(&format!("{ep_path}/connector"), json!({"connector": text(&only["id"])})).await;
    assert_eq!(status, 204, "{out}");
}
