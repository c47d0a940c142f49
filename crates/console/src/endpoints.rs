//! One endpoint: adding it, its page (settings, health, secret, recent
//! attempts), and its actions: rotate the secret, enable or disable, send a
//! test event.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::Method;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde_json::{json, Map, Value};

use crate::apps::event_types;
use crate::charts;
use crate::client::seg;
use crate::html::{
    act, csrf, failed, may, page, text, Flash, CREATE_ATTEMPTS, MANAGE_ENDPOINT, MANAGE_SECRET, VIEW_SECRET,
};
use crate::session::Session;
use crate::Console;

/// A form's fields; a repeated field (checkboxes) keeps every value.
pub(crate) fn fields(body: &[u8]) -> HashMap<String, Vec<String>> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(body) {
        out.entry(k.into_owned()).or_default().push(v.into_owned());
    }
    out
}

pub(crate) fn one<'a>(f: &'a HashMap<String, Vec<String>>, name: &str) -> &'a str {
    f.get(name).and_then(|v| v.first()).map_or("", |s| s.trim())
}

pub async fn create(State(c): State<Console>, s: Session, Path(app): Path<String>, body: Bytes) -> Response {
    let f = fields(&body);
    if let Err(r) = s.check(one(&f, "csrf")) {
        return r.into_response();
    }
    let mut ep = Map::new();
    ep.insert("url".into(), json!(one(&f, "url")));
    if !one(&f, "description").is_empty() {
        ep.insert("description".into(), json!(one(&f, "description")));
    }
    if let Some(types) = f.get("filterTypes").filter(|t| !t.is_empty()) {
        ep.insert("filterTypes".into(), json!(types));
    }
    let channels: Vec<&str> = one(&f, "channels").split(',').map(str::trim).filter(|c| !c.is_empty()).collect();
    if !channels.is_empty() {
        ep.insert("channels".into(), json!(channels));
    }
    if let Ok(rate) = one(&f, "rateLimit").parse::<u64>() {
        ep.insert("rateLimit".into(), json!(rate));
    }
    let made = c.api.send(&s, Method::POST, &format!("/api/v1/app/{}/endpoint", seg(&app)), &Value::Object(ep)).await;
    if !made.ok() {
        return failed(&s, "The endpoint was not added", &made);
    }
    Redirect::to(&format!("{}/apps/{}/endpoints/{}", s.base, seg(&app), seg(text(&made.body, "id")))).into_response()
}

fn done_flash(q: &HashMap<String, String>) -> Option<Flash> {
    Some(Flash::done(match q.get("done")?.as_str() {
        "rotated" => "The secret was rotated; the previous one stays valid for 24 hours.",
        "enabled" => "The endpoint is enabled.",
        "disabled" => "The endpoint is disabled: messages wait for it.",
        "saved" => "Saved.",
        _ => return None,
    }))
}

pub async fn detail(
    State(c): State<Console>,
    s: Session,
    Path((app, ep_id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let path = format!("/api/v1/app/{}/endpoint/{}", seg(&app), seg(&ep_id));
    let ep = c.api.get(&s, &path).await;
    if !ep.ok() {
        return failed(&s, "Endpoint", &ep);
    }
    let can_view_secret = may(&s, VIEW_SECRET);
    let secret = if q.contains_key("reveal") { Some(c.api.get(&s, &format!("{path}/secret")).await) } else { None };
    // One bounded read: the chart's last 250 attempts, the table's first 20.
    let recent = c.api.get(&s, &format!("/api/v1/app/{}/attempt/endpoint/{}?limit=250", seg(&app), seg(&ep_id))).await;
    let latest: Vec<Value> = recent.body["data"].as_array().into_iter().flatten().take(20).cloned().collect();
    let types = event_types(&c, &s).await;
    let stats = c.api.get(&s, &format!("{path}/stats")).await;
    let headers = c.api.get(&s, &format!("{path}/headers")).await;
    let e = &ep.body;
    let base = format!("{}/apps/{}/endpoints/{}", s.base, seg(&app), seg(&ep_id));
    let disabled = e["disabled"] == true;
    let shaping = match may(&s, MANAGE_ENDPOINT) {
        true => Some(crate::shaping::card(&c, &s, &base, e).await),
        false => None,
    };
    let body = html! {
        p { @if s.app.is_none() { a href={ (s.base) "/apps" } { "Applications" } " / " } a href={ (s.base) "/apps/" (seg(&app)) } { "Application" } " / endpoint" }
        h1 { (text(e, "url")) }
        table {
            tbody {
                tr { th scope="row" { "ID" } td { code { (text(e, "id")) } } }
                tr { th scope="row" { "Description" } td { (text(e, "description")) } }
                tr { th scope="row" { "State" } td { @if disabled { span class="badge bad" { "disabled" } } @else { span class="badge good" { "enabled" } } } }
                tr { th scope="row" { "Event types" } td { (e["filterTypes"].as_array().map(|t| t.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")).unwrap_or_else(|| "all".into())) } }
                tr { th scope="row" { "Channels" } td { (e["channels"].as_array().map(|t| t.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")).unwrap_or_default()) } }
                tr { th scope="row" { "Rate limit" } td { (e["rateLimit"].as_u64().map(|r| format!("{r}/s")).unwrap_or_else(|| "none".into())) } }
                tr {
                    th scope="row" { "Health" }
                    td {
                        @match text(e, "healthState") {
                            "healthy" => span class="badge good" { "healthy" },
                            "" => span class="badge" { "unknown" },
                            other => span class="badge bad" { (other) },
                        }
                        @if !text(e, "healthReason").is_empty() { " " (text(e, "healthReason")) }
                        " · " a href={ (base) "/health" } { "history and checks" }
                    }
                }
                @if let Some(h) = e.get("health").filter(|h| !h.is_null()) {
                    tr { th scope="row" { "Breaker and throttling" } td { pre { (crate::html::pretty(h)) } } }
                }
                tr {
                    th scope="row" { "Signing secret" }
                    td {
                        @match &secret {
                            Some(a) if a.ok() => { code { (text(&a.body, "key")) } }
                            Some(a) => { (a.detail()) }
                            None if can_view_secret => { a href={ (base) "?reveal=1" } { "Reveal" } }
                            None => { span class="help" { "hidden" } }
                        }
                    }
                }
            }
        }
        div class="actions" {
            @if may(&s, MANAGE_SECRET) {
                form method="post" action={ (base) "/rotate" } class="inline" {
                    (csrf(&s)) button type="submit" class="secondary" { "Rotate secret" }
                }
                " "
            }
            @if may(&s, MANAGE_ENDPOINT) {
                form method="post" action={ (base) "/toggle" } class="inline" {
                    (csrf(&s))
                    input type="hidden" name="disabled" value=(if disabled { "false" } else { "true" });
                    button type="submit" class="secondary" { @if disabled { "Enable" } @else { "Disable" } }
                }
            }
        }
        @if may(&s, CREATE_ATTEMPTS) {
            form method="post" action={ (base) "/test" } class="card" {
                h2 { "Send a test event" }
                (csrf(&s))
                label for="eventType" { "Event type" }
                select id="eventType" name="eventType" required {
                    @for t in &types { option value=(text(t, "name")) { (text(t, "name")) } }
                }
                @if types.is_empty() { p class="help" { "Define an event type first: a test event is one of its examples." } }
                button type="submit" { "Send example" }
                p { a href={ (base) "/testing" } { "Testing console" } ": edit the payload and check it against the event type's schema first." }
            }
        }
        @if may(&s, MANAGE_ENDPOINT) { (edit_forms(&s, &base, e, &types, &headers.body)) }
        @if let Some(card) = shaping { (card) }
        @if stats.ok() { (charts::stats_chart(&stats.body)) }
        @if recent.ok() { (charts::attempts_chart(&recent.body)) }
        @if may(&s, CREATE_ATTEMPTS) {
            div class="card" {
                h2 { "Recover and replay" }
                p class="help" { "Times are UTC. Recover resends every message that failed to reach this endpoint since then; replay sends the ones it never got." }
                form method="post" action={ (base) "/recover" } {
                    (csrf(&s))
                    label for="recover-since" { "Recover failed messages since" }
                    input id="recover-since" name="since" type="datetime-local" required;
                    button type="submit" class="secondary" { "Recover" }
                }
                form method="post" action={ (base) "/replay-missing" } {
                    (csrf(&s))
                    label for="replay-since" { "Replay missing messages since" }
                    input id="replay-since" name="since" type="datetime-local" required;
                    button type="submit" class="secondary" { "Replay missing" }
                }
            }
        }
        h2 { "Recent attempts" }
        table {
            thead { tr { th scope="col" { "When" } th scope="col" { "Message" } th scope="col" { "Status" } th scope="col" { "Response" } } }
            tbody {
                @for a in &latest {
                    @let msg = format!("{}/apps/{}/msgs/{}", s.base, seg(&app), seg(text(a, "msgId")));
                    tr {
                        td { a href={ (msg) "/attempts/" (seg(text(a, "id"))) } { (text(a, "timestamp")) } }
                        td { a href=(msg) { code { (text(a, "msgId")) } } }
                        td { (crate::messages::attempt_status(a)) }
                        td { (a["responseStatusCode"].as_i64().unwrap_or(0)) }
                    }
                }
            }
        }
        @if latest.is_empty() { p { "No attempts yet." } }
    };
    page(&s, "Endpoint", done_flash(&q), body).into_response()
}

pub async fn rotate(
    State(c): State<Console>,
    s: Session,
    Path((app, ep)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let f = fields(&body);
    if let Err(r) = s.check(one(&f, "csrf")) {
        return r.into_response();
    }
    let path = format!("/api/v1/app/{}/endpoint/{}/secret/rotate", seg(&app), seg(&ep));
    act(
        &c,
        &s,
        Method::POST,
        &path,
        &json!({}),
        "The secret was not rotated",
        format!("{}/apps/{}/endpoints/{}?done=rotated", s.base, seg(&app), seg(&ep)),
    )
    .await
}

pub async fn toggle(
    State(c): State<Console>,
    s: Session,
    Path((app, ep)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let f = fields(&body);
    if let Err(r) = s.check(one(&f, "csrf")) {
        return r.into_response();
    }
    let disabled = one(&f, "disabled") == "true";
    let path = format!("/api/v1/app/{}/endpoint/{}", seg(&app), seg(&ep));
    let word = if disabled { "disabled" } else { "enabled" };
    act(
        &c,
        &s,
        Method::PATCH,
        &path,
        &json!({ "disabled": disabled }),
        "The endpoint was not changed",
        format!("{}/apps/{}/endpoints/{}?done={word}", s.base, seg(&app), seg(&ep)),
    )
    .await
}

pub async fn send_test(
    State(c): State<Console>,
    s: Session,
    Path((app, ep)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let f = fields(&body);
    if let Err(r) = s.check(one(&f, "csrf")) {
        return r.into_response();
    }
    let path = format!("/api/v1/app/{}/endpoint/{}/send-example", seg(&app), seg(&ep));
    let sent = c.api.send(&s, Method::POST, &path, &json!({ "eventType": one(&f, "eventType") })).await;
    if !sent.ok() {
        return failed(&s, "The test event was not sent", &sent);
    }
    // The message page follows the attempt as it arrives.
    let msg = seg(text(&sent.body, "id"));
    Redirect::to(&format!("{}/apps/{}/msgs/{msg}?watch={}", s.base, seg(&app), crate::testing::WATCH_RELOADS))
        .into_response()
}

/// The forms that change an endpoint: its settings, and its custom headers.
fn edit_forms(s: &Session, base: &str, e: &Value, types: &[Value], headers: &Value) -> maud::Markup {
    let chosen: Vec<&str> = e["filterTypes"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let channels = e["channels"].as_array().map(|t| t.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "));
    let header_lines: String = headers["headers"]
        .as_object()
        .map(|h| h.iter().map(|(k, v)| format!("{k}: {}\n", v.as_str().unwrap_or(""))).collect())
        .unwrap_or_default();
    let sensitive: Vec<&str> =
        headers["sensitive"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    maud::html! {
        details class="card" {
            summary { "Edit endpoint" }
            form method="post" action={ (base) "/edit" } {
                (csrf(s))
                label for="edit-url" { "URL" }
                input id="edit-url" name="url" type="url" required value=(text(e, "url"));
                label for="edit-description" { "Description" }
                input id="edit-description" name="description" value=(text(e, "description"));
                fieldset {
                    legend { "Event types (none: all)" }
                    @for t in types {
                        label class="check" {
                            input type="checkbox" name="filterTypes" value=(text(t, "name")) checked[chosen.contains(&text(t, "name"))];
                            " " (text(t, "name"))
                        }
                    }
                    // Filters the picker does not list (archived, or beyond its
                    // first 250) stay as they are unless unticked.
                    @for name in chosen.iter().filter(|c| !types.iter().any(|t| text(t, "name") == **c)) {
                        label class="check" {
                            input type="checkbox" name="filterTypes" value=(name) checked;
                            " " (name)
                        }
                    }
                }
                label for="edit-channels" { "Channels (comma-separated)" }
                input id="edit-channels" name="channels" value=(channels.unwrap_or_default());
                label for="edit-rate" { "Rate limit (messages per second; empty: none)" }
                input id="edit-rate" name="rateLimit" type="number" min="1" value=(e["rateLimit"].as_u64().map(|r| r.to_string()).unwrap_or_default());
                button type="submit" { "Save endpoint" }
            }
            form method="post" action={ (base) "/headers" } {
                (csrf(s))
                label for="edit-headers" { "Custom headers, one \"Name: value\" a line" }
                textarea id="edit-headers" name="headers" aria-describedby="headers-help" { (header_lines) }
                p id="headers-help" class="help" {
                    "Sent with every request to this endpoint."
                    @if !sensitive.is_empty() { " Sensitive headers (" (sensitive.join(", ")) ") are not shown; list them again to keep them." }
                }
                button type="submit" class="secondary" { "Save headers" }
            }
        }
    }
}

pub async fn edit(
    State(c): State<Console>,
    s: Session,
    Path((app, ep)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let f = fields(&body);
    if let Err(r) = s.check(one(&f, "csrf")) {
        return r.into_response();
    }
    let channels: Vec<&str> = one(&f, "channels").split(',').map(str::trim).filter(|c| !c.is_empty()).collect();
    let types = f.get("filterTypes").filter(|t| !t.is_empty());
    let rate = one(&f, "rateLimit").parse::<u64>().ok();
    let patch = json!({
        "url": one(&f, "url"),
        "description": one(&f, "description"),
        "filterTypes": types,
        "channels": (!channels.is_empty()).then_some(channels),
        "rateLimit": rate,
    });
    let path = format!("/api/v1/app/{}/endpoint/{}", seg(&app), seg(&ep));
    act(
        &c,
        &s,
        Method::PATCH,
        &path,
        &patch,
        "The endpoint was not changed",
        format!("{}/apps/{}/endpoints/{}?done=saved", s.base, seg(&app), seg(&ep)),
    )
    .await
}

pub async fn set_headers(
    State(c): State<Console>,
    s: Session,
    Path((app, ep)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let f = fields(&body);
    if let Err(r) = s.check(one(&f, "csrf")) {
        return r.into_response();
    }
    let mut headers = Map::new();
    for line in one(&f, "headers").lines() {
        if let Some((name, value)) = line.split_once(':') {
            if !name.trim().is_empty() {
                headers.insert(name.trim().to_string(), json!(value.trim()));
            }
        }
    }
    let path = format!("/api/v1/app/{}/endpoint/{}/headers", seg(&app), seg(&ep));
    act(
        &c,
        &s,
        Method::PUT,
        &path,
        &json!({ "headers": headers }),
        "The headers were not saved",
        format!("{}/apps/{}/endpoints/{}?done=saved", s.base, seg(&app), seg(&ep)),
    )
    .await
}

/// The endpoint's health history and its last check (certificate, DNS, test event).
pub async fn health(
    axum::extract::State(c): axum::extract::State<crate::Console>,
    s: crate::session::Session,
    axum::extract::Path((app, ep)): axum::extract::Path<(String, String)>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let api = format!("/api/v1/app/{}/endpoint/{}", seg(&app), seg(&ep));
    let history = c.api.get(&s, &format!("{api}/health-history")).await;
    if !history.ok() {
        return crate::html::failed(&s, "Endpoint health", &history);
    }
    let check = c.api.get(&s, &format!("{api}/check")).await;
    let base = format!("{}/apps/{}/endpoints/{}", s.base, seg(&app), seg(&ep));
    let body = maud::html! {
        p { a href=(base) { "Endpoint" } " / health" }
        h1 { "Health" }
        p { "Now: " strong { (text(&history.body, "state")) } " " (text(&history.body, "reason")) }
        h2 { "Changes" }
        table {
            thead { tr { th scope="col" { "When" } th scope="col" { "State" } th scope="col" { "Why" } } }
            tbody {
                @for e in history.body["data"].as_array().into_iter().flatten() {
                    tr { td { (text(e, "timestamp")) } td { (text(e, "state")) } td { (text(e, "reason")) } }
                }
            }
        }
        @if history.body["data"].as_array().is_none_or(|d| d.is_empty()) { p { "No changes reported yet." } }
        h2 { "Last check" }
        @if check.ok() {
            @let tls = &check.body["tls"];
            p {
                @if check.body["ok"] == true { span class="badge good" { "passed" } } @else { span class="badge bad" { "problems" } }
                " at " (text(&check.body, "checkedAt"))
            }
            @for problem in check.body["problems"].as_array().into_iter().flatten() { p { (problem.as_str().unwrap_or_default()) } }
            @if !tls.is_null() {
                p { "Certificate: " (text(tls, "subject")) ", expires " (text(tls, "notAfter")) " (" (tls["daysLeft"]) " days)" }
            }
        } @else {
            p { "Not checked yet." }
        }
    };
    crate::html::page(&s, "Endpoint health", None, body).into_response()
}
