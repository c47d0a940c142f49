//! Messages: the list (by event type and channel, paged), one message with its
//! payload, where it went and every attempt, and resending it to an endpoint.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde_json::{json, Value};

use crate::client::seg;
use crate::html::{act, can_write, csrf, failed, iterator_query, page, pager, pretty, text, Flash};
use crate::session::Session;
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
    let event_type = q.get("event_type").map(|t| t.trim()).filter(|t| !t.is_empty());
    let channel = q.get("channel").map(|t| t.trim()).filter(|t| !t.is_empty());
    let mut filters = String::new();
    let mut base = format!("{}/apps/{}/msgs?", s.base, seg(&app));
    if let Some(t) = event_type {
        filters.push_str(&format!("&event_types={}", seg(t)));
        base.push_str(&format!("event_type={}&", seg(t)));
    }
    if let Some(ch) = channel {
        filters.push_str(&format!("&channel={}", seg(ch)));
        base.push_str(&format!("channel={}&", seg(ch)));
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
            input id="event_type" name="event_type" value=(event_type.unwrap_or(""));
            label for="channel" { "Channel" }
            input id="channel" name="channel" value=(channel.unwrap_or(""));
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
    let attempts = c.api.get(&s, &format!("/api/v1/app/{}/attempt/msg/{}?limit=100", seg(&app), seg(&msg_id))).await;
    let m = &msg.body;
    let flash = q.get("done").filter(|d| *d == "resent").map(|_| Flash::done("Sent again; the attempt appears below."));
    let body = html! {
        p { @if s.app.is_none() { a href={ (s.base) "/apps" } { "Applications" } " / " } a href={ (s.base) "/apps/" (seg(&app)) "/msgs" } { "Messages" } " / " (msg_id) }
        h1 { (text(m, "eventType")) }
        p { "Message " code { (text(m, "id")) } " · created " (text(m, "timestamp")) }
        h2 { "Payload" }
        pre { (pretty(&m["payload"])) }
        h2 { "Destinations" }
        table {
            thead { tr { th scope="col" { "Endpoint" } th scope="col" { "Status" } th scope="col" { "Next attempt" } th scope="col" { span class="visually-hidden" { "Actions" } } } }
            tbody {
                @for d in destinations.body["data"].as_array().into_iter().flatten() {
                    tr {
                        td { a href={ (s.base) "/apps/" (seg(&app)) "/endpoints/" (seg(text(d, "id"))) } { (text(d, "url")) } }
                        td { (attempt_status(d)) }
                        td { (text(d, "nextAttempt")) }
                        td {
                            @if can_write(&s) {
                                form method="post" action={ (s.base) "/apps/" (seg(&app)) "/msgs/" (seg(&msg_id)) "/resend/" (seg(text(d, "id"))) } class="inline" {
                                    (csrf(&s)) button type="submit" class="secondary" { "Resend" }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Attempts" }
        @for a in attempts.body["data"].as_array().into_iter().flatten() {
            section class="card" aria-label={ "Attempt " (text(a, "id")) } {
                p { (attempt_status(a)) " " (a["responseStatusCode"].as_i64().unwrap_or(0)) " · " (text(a, "timestamp")) " · " (text(a, "url")) " · " (a["responseDurationMs"].as_i64().unwrap_or(0)) " ms" }
                pre { (text(a, "response")) }
            }
        }
        @if attempts.body["data"].as_array().is_none_or(|d| d.is_empty()) { p { "No attempts yet." } }
    };
    page(&s, "Message", flash, body).into_response()
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
