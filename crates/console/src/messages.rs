//! Messages: the list (by event type, channel, tag and time, paged), one message with its
//! payload, where it went and every attempt, and resending it to an endpoint.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde_json::{json, Value};

use crate::client::{seg, Answer};
use crate::html::{
    act, csrf, failed, iterator_query, may, page, page_with, pager, payload_of, text, utc_datetime, Flash, Head,
    CREATE_ATTEMPTS,
};
use crate::session::Session;
use crate::testing::WATCH_RELOADS;
use crate::Console;

const PAGE: usize = 50;

/// Svix's `MessageStatus` as a word.
pub fn attempt_status(a: &Value) -> Markup {
    let (word, class) = match a["status"].as_i64() {
        Some(0) => ("succeeded", "badge good"),
        Some(1) => ("pending", "badge"),
        Some(2) => ("failed", "badge bad"),
        Some(3) => ("sending", "badge"),
        _ => ("unknown", "badge"),
    };
    html! { span class=(class) { (word) } }
}

pub async fn list(
    State(c): State<Console>,
    s: Session,
    Path(app): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    // Each search field: its form name, the API's query name, and how a value
    // is passed on (times from `datetime-local` fields are UTC).
    let field = |name: &str| q.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    let mut filters = String::new();
    let mut base = format!("{}/apps/{}/msgs?", s.base, seg(&app));
    for (form, api) in [
        ("event_type", "event_types"),
        ("channel", "channel"),
        ("tag", "tag"),
        ("after", "after"),
        ("before", "before"),
    ] {
        if let Some(v) = field(form) {
            let value = if matches!(form, "after" | "before") { utc_datetime(v) } else { v.to_string() };
            filters.push_str(&format!("&{api}={}", seg(&value)));
            base.push_str(&format!("{form}={}&", seg(v)));
        }
    }
    let base = base.trim_end_matches(['&', '?']).to_string();
    let msgs = c
        .api
        .get(
            &s,
            &format!("/api/v1/app/{}/msg?limit={PAGE}&with_content=false{filters}{}", seg(&app), iterator_query(&q)),
        )
        .await;
    if !msgs.ok() {
        return failed(&s, "Messages", &msgs);
    }
    let body = html! {
        p { @if s.app.is_none() { a href={ (s.base) "/apps" } { "Applications" } " / " } a href={ (s.base) "/apps/" (seg(&app)) } { "Application" } " / messages" }
        h1 { "Messages" }
        form method="get" action={ (s.base) "/apps/" (seg(&app)) "/msgs" } class="card" role="search" {
            label for="event_type" { "Event type" }
            input id="event_type" name="event_type" value=(field("event_type").unwrap_or(""));
            label for="channel" { "Channel" }
            input id="channel" name="channel" value=(field("channel").unwrap_or(""));
            label for="tag" { "Tag" }
            input id="tag" name="tag" value=(field("tag").unwrap_or(""));
            label for="after" { "Created after (UTC)" }
            input id="after" name="after" type="datetime-local" step="1" value=(field("after").unwrap_or(""));
            label for="before" { "Created before (UTC)" }
            input id="before" name="before" type="datetime-local" step="1" value=(field("before").unwrap_or(""));
            button type="submit" { "Search" }
        }
        table {
            thead { tr { th scope="col" { "Message" } th scope="col" { "Event type" } th scope="col" { "Event id" } th scope="col" { "Created" } } }
            tbody {
                @for m in msgs.body["data"].as_array().into_iter().flatten() {
                    tr {
                        td { a href={ (s.base) "/apps/" (seg(&app)) "/msgs/" (seg(text(m, "id"))) } { code { (text(m, "id")) } } }
                        td { (text(m, "eventType")) }
                        td { (text(m, "eventId")) }
                        td { (text(m, "timestamp")) }
                    }
                }
            }
        }
        @if msgs.body["data"].as_array().is_none_or(|d| d.is_empty()) { p { "No messages." } }
        (pager(&msgs.body, &base, q.contains_key("iterator")))
    };
    page(&s, "Messages", None, body).into_response()
}

pub async fn detail(
    State(c): State<Console>,
    s: Session,
    Path((app, msg_id)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let path = format!("/api/v1/app/{}/msg/{}", seg(&app), seg(&msg_id));
    let msg = c.api.get(&s, &path).await;
    if !msg.ok() {
        return failed(&s, "Message", &msg);
    }
    let destinations = c.api.get(&s, &format!("{path}/endpoint?limit=100")).await;
    let attempts_path =
        format!("/api/v1/app/{}/attempt/msg/{}?limit={PAGE}{}", seg(&app), seg(&msg_id), iterator_query(&q));
    let attempts = c.api.get(&s, &attempts_path).await;
    let m = &msg.body;
    let here = format!("{}/apps/{}/msgs/{}", s.base, seg(&app), seg(&msg_id));
    let listed = |a: &Answer| a.body["data"].as_array().cloned().unwrap_or_default();
    let (destinations_list, attempts_list) = (listed(&destinations), listed(&attempts));
    // Following a test event: reload until its first attempt is in (or a minute).
    let watch = q.get("watch").and_then(|w| w.parse::<u32>().ok()).unwrap_or(0).min(WATCH_RELOADS);
    let waiting =
        attempts_list.is_empty() && destinations_list.iter().any(|d| matches!(d["status"].as_i64(), Some(1 | 3)));
    let reload = (watch > 0 && waiting).then(|| format!("{here}?watch={}", watch - 1));
    let flash = if reload.is_some() {
        Some(Flash::done("Sent. Waiting for the attempt: this page reloads every second."))
    } else if q.contains_key("watch") && !attempts_list.is_empty() {
        Some(Flash::done("The attempt is in: see it below."))
    } else if q.contains_key("watch") {
        Some(Flash::error("No attempt yet: the endpoint may be disabled or held back. Reload to look again."))
    } else {
        q.get("done").filter(|d| *d == "resent").map(|_| Flash::done("Sent again; the attempt appears below."))
    };
    let body = html! {
        p { @if s.app.is_none() { a href={ (s.base) "/apps" } { "Applications" } " / " } a href={ (s.base) "/apps/" (seg(&app)) "/msgs" } { "Messages" } " / " (msg_id) }
        h1 { (text(m, "eventType")) }
        p { "Message " code { (text(m, "id")) } " · created " (text(m, "timestamp")) }
        h2 { "Payload" }
        pre { (payload_of(m)) }
        h2 id="destinations" { "Destinations" }
        table aria-labelledby="destinations" {
            thead { tr { th scope="col" { "Endpoint" } th scope="col" { "Status" } th scope="col" { "Next attempt" } th scope="col" { span class="visually-hidden" { "Actions" } } } }
            tbody {
                @for d in &destinations_list {
                    tr {
                        td { a href={ (s.base) "/apps/" (seg(&app)) "/endpoints/" (seg(text(d, "id"))) } { (text(d, "url")) } }
                        td { (attempt_status(d)) }
                        td { (text(d, "nextAttempt")) }
                        td {
                            @if may(&s, CREATE_ATTEMPTS) {
                                form method="post" action={ (here) "/resend/" (seg(text(d, "id"))) } class="inline" {
                                    (csrf(&s)) button type="submit" class="secondary" { "Resend" }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if destinations.body["done"] == false { p class="help" { "The first 100 destinations are shown." } }
        h2 id="attempts" { "Attempts" }
        table aria-labelledby="attempts" {
            thead { tr { th scope="col" { "Attempt" } th scope="col" { "Status" } th scope="col" { "Code" } th scope="col" { "When" } th scope="col" { "Endpoint" } th scope="col" { "Duration" } } }
            tbody {
                @for a in &attempts_list {
                    tr {
                        td { a href={ (here) "/attempts/" (seg(text(a, "id"))) } { code { (text(a, "id")) } } }
                        td { (attempt_status(a)) }
                        td { (a["responseStatusCode"].as_i64().unwrap_or(0)) }
                        td { (text(a, "timestamp")) }
                        td { (text(a, "url")) }
                        td { (a["responseDurationMs"].as_i64().unwrap_or(0)) " ms" }
                    }
                }
            }
        }
        @if attempts_list.is_empty() { p { "No attempts yet." } }
        (pager(&attempts.body, &here, q.contains_key("iterator")))
    };
    page_with(&s, "Message", flash, body, Head { reload, ..Head::default() }).into_response()
}

/// One attempt: the request as sent (headers and body) and the response.
pub async fn attempt(
    State(c): State<Console>,
    s: Session,
    Path((app, msg_id, attempt_id)): Path<(String, String, String)>,
) -> Response {
    let msg_path = format!("/api/v1/app/{}/msg/{}", seg(&app), seg(&msg_id));
    let path = format!("{msg_path}/attempt/{}", seg(&attempt_id));
    let attempt = c.api.get(&s, &path).await;
    if !attempt.ok() {
        return failed(&s, "Attempt", &attempt);
    }
    let headers = c.api.get(&s, &format!("{path}/headers")).await;
    let msg = c.api.get(&s, &msg_path).await;
    let (a, h) = (&attempt.body, &headers.body);
    let sent: Vec<(String, String)> = h["sentHeaders"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string())).collect())
        .unwrap_or_default();
    let received: Vec<(String, String)> = serde_json::from_value(h["responseHeaders"].clone()).unwrap_or_default();
    let sensitive: Vec<&str> = h["sensitive"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let header_table = |rows: &[(String, String)], caption: &str| {
        html! {
            table {
                caption class="visually-hidden" { (caption) }
                thead { tr { th scope="col" { "Header" } th scope="col" { "Value" } } }
                tbody { @for (k, v) in rows { tr { td { code { (k) } } td { code { (v) } } } } }
            }
        }
    };
    let body = html! {
        p { a href={ (s.base) "/apps/" (seg(&app)) "/msgs/" (seg(&msg_id)) } { "Message" } " / attempt" }
        h1 { "Attempt " code { (text(a, "id")) } }
        table {
            tbody {
                tr { th scope="row" { "Status" } td { (attempt_status(a)) " " (a["responseStatusCode"].as_i64().unwrap_or(0)) } }
                tr { th scope="row" { "When" } td { (text(a, "timestamp")) } }
                tr { th scope="row" { "Endpoint" } td { a href={ (s.base) "/apps/" (seg(&app)) "/endpoints/" (seg(text(a, "endpointId"))) } { (text(a, "url")) } } }
                tr { th scope="row" { "Duration" } td { (a["responseDurationMs"].as_i64().unwrap_or(0)) " ms" } }
                tr { th scope="row" { "Trigger" } td { (if a["triggerType"] == 1 { "manual" } else { "scheduled" }) } }
            }
        }
        h2 { "Request" }
        @if !sent.is_empty() {
            p class="help" { "Signatures are shown by their first characters." }
        }
        @if sent.is_empty() {
            p class="help" { "No request headers were kept for this attempt (no request was made, or it predates them)." }
        } @else {
            (header_table(&sent, "Request headers"))
        }
        @if !sensitive.is_empty() {
            p class="help" { "The endpoint's custom headers and credentials were sent and not kept: " @for (i, n) in sensitive.iter().enumerate() { @if i > 0 { ", " } code { (n) } } "." }
        }
        @if msg.ok() { pre { (payload_of(&msg.body)) } }
        h2 { "Response" }
        @if received.is_empty() { p class="help" { "No response headers (no response came back, or the attempt predates them)." } }
        @else { (header_table(&received, "Response headers")) }
        pre { (text(a, "response")) }
    };
    page(&s, "Attempt", None, body).into_response()
}

pub async fn resend(
    State(c): State<Console>,
    s: Session,
    Path((app, msg, ep)): Path<(String, String, String)>,
    body: Bytes,
) -> Response {
    let csrf = url::form_urlencoded::parse(&body).find(|(k, _)| k == "csrf").map(|(_, v)| v.into_owned());
    if let Err(r) = s.check(csrf.as_deref().unwrap_or("")) {
        return r.into_response();
    }
    let path = format!("/api/v1/app/{}/msg/{}/endpoint/{}/resend", seg(&app), seg(&msg), seg(&ep));
    act(
        &c,
        &s,
        Method::POST,
        &path,
        &json!({}),
        "The message was not resent",
        format!("{}/apps/{}/msgs/{}?done=resent", s.base, seg(&app), seg(&msg)),
    )
    .await
}
