//! An endpoint's shaping on its page: the filter that picks its messages and
//! the connector (a preset or one of the organisation's) that reshapes them
//! for their destination, with its variables and credentials in one form.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde_json::{json, Map, Value};

use crate::client::seg;
use crate::endpoints::{fields, one};
use crate::html::{act, csrf, text};
use crate::session::Session;
use crate::Console;

/// The credential fields a connector may take, with their labels.
const CREDENTIALS: &[(&str, &str, bool)] = &[
    ("token", "Access token", true),
    ("apiKey", "API key", true),
    ("apiToken", "API token", true),
    ("clientId", "OAuth client id", false),
    ("clientSecret", "OAuth client secret", true),
    ("refreshToken", "OAuth refresh token", true),
    ("tokenUrl", "OAuth token URL (empty: the provider's)", false),
];

/// What the endpoint page shows and offers for shaping. The presets and the
/// organisation's connectors are read by organisation sessions only (a portal
/// token cannot list them).
pub async fn card(c: &Console, s: &Session, base: &str, e: &Value) -> Markup {
    let (presets, connectors) = if s.app.is_none() {
        let presets = c.api.get(s, "/api/v1/connector-preset").await;
        let connectors = c.api.get(s, "/api/v1/connector?limit=250").await;
        (list(presets.body), list(connectors.body))
    } else {
        (Vec::new(), Vec::new())
    };
    html! {
        details class="card" {
            summary { "Shape what it receives" }
            table {
                tbody {
                    tr { th scope="row" { "Filter" } td { @if let Some(f) = e["filter"].as_str() { code { (f) } } @else { "none" } } }
                    tr { th scope="row" { "Template" } td { @if e["template"].is_object() { code { (text(&e["template"], "id")) } " version " (e["template"]["version"]) } @else { "none" } } }
                    tr { th scope="row" { "Connector" } td { @if let Some(k) = e["connector"].as_str() { code { (k) } } @else { "none" } } }
                }
            }
            form method="post" action={ (base) "/filter" } {
                (csrf(s))
                label for="shape-filter" { "Filter (empty: every message of its event types and channels)" }
                input id="shape-filter" name="filter" value=(e["filter"].as_str().unwrap_or("")) placeholder="/amount gt 100 and eventType eq \"invoice.paid\"" aria-describedby="filter-help";
                p id="filter-help" class="help" { "JSON Pointers into the payload, eventType, channels, tags; eq ne in contains exists gt gte lt lte; and or not." }
                button type="submit" class="secondary" { "Save filter" }
            }
            @if !presets.is_empty() || !connectors.is_empty() {
                form method="post" action={ (base) "/connector" } {
                    (csrf(s))
                    label for="shape-connector" { "Connector" }
                    select id="shape-connector" name="connector" required {
                        @for p in &presets { option value=(text(p, "name")) { (text(p, "title")) " (preset)" } }
                        @for k in &connectors { option value=(text(k, "id")) { (text(k, "name")) } }
                    }
                    label for="shape-variables" { "Variables, one \"name=value\" a line" }
                    textarea id="shape-variables" name="variables" aria-describedby="variables-help" {}
                    p id="variables-help" class="help" { "What each preset takes is listed below. Field maps are JSON: {\"LastName\": \"/last_name\"}." }
                    fieldset {
                        legend { "Credentials (only what the connector needs)" }
                        @for (name, label, secret) in CREDENTIALS {
                            label for={ "cred-" (name) } { (label) }
                            input id={ "cred-" (name) } name={ "cred-" (name) } type=(if *secret { "password" } else { "text" }) autocomplete="off";
                        }
                    }
                    button type="submit" { "Use connector" }
                }
                @if e["connector"].is_string() {
                    form method="post" action={ (base) "/connector/remove" } class="inline" {
                        (csrf(s)) button type="submit" class="secondary" { "Stop using the connector" }
                    }
                }
                details {
                    summary { "Presets" }
                    table {
                        thead { tr { th scope="col" { "Preset" } th scope="col" { "URL" } th scope="col" { "Variables" } th scope="col" { "Credentials" } } }
                        tbody {
                            @for p in &presets {
                                tr {
                                    td { (text(p, "title")) }
                                    td { code { (text(p, "exampleUrl")) } }
                                    td {
                                        @for v in p["variables"].as_array().into_iter().flatten() {
                                            code { (text(v, "name")) } @if v["required"] == true { " (required)" } ": " (text(v, "help")) br;
                                        }
                                    }
                                    td { (text(p, "credentials")) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn list(answer: Value) -> Vec<Value> {
    answer["data"].as_array().cloned().unwrap_or_default()
}

fn back(s: &Session, app: &str, ep: &str) -> String {
    format!("{}/apps/{}/endpoints/{}?done=saved", s.base, seg(app), seg(ep))
}

pub async fn set_filter(
    State(c): State<Console>,
    s: Session,
    Path((app, ep)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let f = fields(&body);
    if let Err(r) = s.check(one(&f, "csrf")) {
        return r.into_response();
    }
    let filter = Some(one(&f, "filter")).filter(|v| !v.is_empty());
    let path = format!("/api/v1/app/{}/endpoint/{}", seg(&app), seg(&ep));
    act(&c, &s, Method::PATCH, &path, &json!({ "filter": filter }), "The filter was not saved", back(&s, &app, &ep))
        .await
}

pub async fn use_connector(
    State(c): State<Console>,
    s: Session,
    Path((app, ep)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let f = fields(&body);
    if let Err(r) = s.check(one(&f, "csrf")) {
        return r.into_response();
    }
    let mut variables = Map::new();
    for line in one(&f, "variables").lines() {
        if let Some((name, value)) = line.split_once('=') {
            if !name.trim().is_empty() {
                variables.insert(name.trim().to_string(), json!(value.trim()));
            }
        }
    }
    let mut credentials = Map::new();
    for (name, _, _) in CREDENTIALS {
        let v = one(&f, &format!("cred-{name}"));
        if !v.is_empty() {
            credentials.insert(name.to_string(), json!(v));
        }
    }
    let mut using = json!({ "connector": one(&f, "connector"), "variables": variables });
    if !credentials.is_empty() {
        using["credentials"] = Value::Object(credentials);
    }
    let path = format!("/api/v1/app/{}/endpoint/{}/connector", seg(&app), seg(&ep));
    act(&c, &s, Method::PUT, &path, &using, "The connector was not applied", back(&s, &app, &ep)).await
}

pub async fn remove_connector(
    State(c): State<Console>,
    s: Session,
    Path((app, ep)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let f = fields(&body);
    if let Err(r) = s.check(one(&f, "csrf")) {
        return r.into_response();
    }
    let path = format!("/api/v1/app/{}/endpoint/{}/connector", seg(&app), seg(&ep));
    act(&c, &s, Method::DELETE, &path, &Value::Null, "The connector was not removed", back(&s, &app, &ep)).await
}
