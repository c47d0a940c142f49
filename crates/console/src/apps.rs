//! Applications: the list (paged), creating one, and one application's page
//! with its endpoints and the form to add one.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::Method;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::html;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::client::seg;
use crate::html::{act, can_write, csrf, failed, iterator_query, may, page, pager, text, MANAGE_ENDPOINT};
use crate::session::Session;
use crate::Console;

const PAGE: usize = 50;

pub async fn list(State(c): State<Console>, s: Session, Query(q): Query<HashMap<String, String>>) -> Response {
    if let Some(app) = &s.app {
        // A portal session has one application.
        return Redirect::to(&format!("{}/apps/{}", s.base, seg(app))).into_response();
    }
    let apps = c.api.get(&s, &format!("/api/v1/app?limit={PAGE}{}", iterator_query(&q))).await;
    if !apps.ok() {
        return failed(&s, "Applications", &apps);
    }
    let body = html! {
        h1 { "Applications" }
        form method="get" action={ (s.base) "/apps/find" } role="search" {
            label for="find" { "Go to an application by id or uid" }
            input id="find" name="q" required;
            button type="submit" class="secondary" { "Go" }
        }
        table {
            thead { tr { th scope="col" { "Name" } th scope="col" { "UID" } th scope="col" { "ID" } th scope="col" { "Created" } } }
            tbody {
                @for app in apps.body["data"].as_array().into_iter().flatten() {
                    tr {
                        td { a href={ (s.base) "/apps/" (seg(text(app, "id"))) } { (text(app, "name")) } }
                        td { (text(app, "uid")) }
                        td { code { (text(app, "id")) } }
                        td { (text(app, "createdAt")) }
                    }
                }
            }
        }
        @if apps.body["data"].as_array().is_none_or(|d| d.is_empty()) { p { "No applications yet." } }
        (pager(&apps.body, &format!("{}/apps", s.base), q.contains_key("iterator")))
        @if can_write(&s) {
            form method="post" action={ (s.base) "/apps" } class="card" {
                h2 { "New application" }
                (csrf(&s))
                label for="name" { "Name" }
                input id="name" name="name" required maxlength="256";
                label for="uid" { "UID (optional)" }
                input id="uid" name="uid" maxlength="256" aria-describedby="uid-help";
                p id="uid-help" class="help" { "Your own identifier for it, usable in place of its id." }
                button type="submit" { "Create application" }
            }
        }
    };
    page(&s, "Applications", None, body).into_response()
}

/// Goes to the application with this id or uid (the API finds either).
pub async fn find(s: Session, Query(q): Query<HashMap<String, String>>) -> Response {
    let wanted = q.get("q").map(|s| s.trim()).unwrap_or("");
    if wanted.is_empty() {
        return Redirect::to(&format!("{}/apps", s.base)).into_response();
    }
    Redirect::to(&format!("{}/apps/{}", s.base, seg(wanted))).into_response()
}

#[derive(Deserialize)]
pub struct Rename {
    #[serde(default)]
    csrf: String,
    name: String,
}

pub async fn rename(State(c): State<Console>, s: Session, Path(app): Path<String>, Form(f): Form<Rename>) -> Response {
    if let Err(r) = s.check(&f.csrf) {
        return r.into_response();
    }
    let path = format!("/api/v1/app/{}", seg(&app));
    act(
        &c,
        &s,
        Method::PATCH,
        &path,
        &json!({ "name": f.name.trim() }),
        "The application was not renamed",
        format!("{}/apps/{}", s.base, seg(&app)),
    )
    .await
}

#[derive(Deserialize)]
pub struct NewApp {
    #[serde(default)]
    csrf: String,
    name: String,
    #[serde(default)]
    uid: String,
}

pub async fn create(State(c): State<Console>, s: Session, Form(f): Form<NewApp>) -> Response {
    if let Err(r) = s.check(&f.csrf) {
        return r.into_response();
    }
    let mut body = json!({ "name": f.name.trim() });
    if !f.uid.trim().is_empty() {
        body["uid"] = json!(f.uid.trim());
    }
    let made = c.api.send(&s, Method::POST, "/api/v1/app", &body).await;
    if !made.ok() {
        return failed(&s, "The application was not created", &made);
    }
    Redirect::to(&format!("{}/apps/{}", s.base, seg(text(&made.body, "id")))).into_response()
}

/// Event types for the endpoint form's picker (the first 250).
pub async fn event_types(c: &Console, s: &Session) -> Vec<Value> {
    let types = c.api.get(s, "/api/v1/event-type?limit=250").await;
    types.body["data"].as_array().cloned().unwrap_or_default()
}

pub async fn detail(
    State(c): State<Console>,
    s: Session,
    Path(app_id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let app = c.api.get(&s, &format!("/api/v1/app/{}", seg(&app_id))).await;
    if !app.ok() {
        return failed(&s, "Application", &app);
    }
    let id = text(&app.body, "id").to_string();
    let base = format!("{}/apps/{}", s.base, seg(&id));
    let eps = c.api.get(&s, &format!("/api/v1/app/{}/endpoint?limit={PAGE}{}", seg(&id), iterator_query(&q))).await;
    if !eps.ok() {
        return failed(&s, "Endpoints", &eps);
    }
    let types = event_types(&c, &s).await;
    let name = text(&app.body, "name").to_string();
    let summary = c.api.get(&s, &format!("/api/v1/app/{}/stats/summary?period=OneHour", seg(&id))).await;
    // SLAs are the organisation's: an application-scoped session does not see them.
    let slas: Vec<Value> = if s.app.is_none() {
        let all = c.api.get(&s, "/api/v1/sla?limit=250").await;
        all.body["data"].as_array().into_iter().flatten().filter(|x| x["appId"] == id.as_str()).cloned().collect()
    } else {
        Vec::new()
    };
    let body = html! {
        p { @if s.app.is_none() { a href={ (s.base) "/apps" } { "Applications" } " / " } (name) }
        h1 { (name) }
        p { "ID " code { (id) } " · " a href={ (base) "/msgs" } { "Messages" } }
        h2 { "Endpoints" }
        table {
            thead { tr { th scope="col" { "URL" } th scope="col" { "Event types" } th scope="col" { "State" } } }
            tbody {
                @for ep in eps.body["data"].as_array().into_iter().flatten() {
                    tr {
                        td { a href={ (base) "/endpoints/" (seg(text(ep, "id"))) } { (text(ep, "url")) } }
                        td { (ep["filterTypes"].as_array().map(|t| t.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")).unwrap_or_else(|| "all".into())) }
                        td { @if ep["disabled"] == true { span class="badge bad" { "disabled" } } @else { span class="badge good" { "enabled" } } }
                    }
                }
            }
        }
        @if eps.body["data"].as_array().is_none_or(|d| d.is_empty()) { p { "No endpoints yet." } }
        (pager(&eps.body, &base, q.contains_key("iterator")))
        @if summary.ok() { (health(&summary.body, &slas)) }
        @if can_write(&s) && s.app.is_none() {
            form method="post" action={ (base) "/edit" } class="card" {
                h2 { "Rename" }
                (csrf(&s))
                label for="app-name" { "Name" }
                input id="app-name" name="name" required maxlength="256" value=(name);
                button type="submit" class="secondary" { "Save" }
            }
        }
        @if may(&s, MANAGE_ENDPOINT) {
            form method="post" action={ (base) "/endpoints" } class="card" {
                h2 { "New endpoint" }
                (csrf(&s))
                label for="url" { "URL" }
                input id="url" name="url" type="url" required placeholder="https://example.com/webhooks";
                label for="description" { "Description" }
                input id="description" name="description";
                fieldset {
                    legend { "Event types (none: all)" }
                    @for t in &types {
                        label class="check" {
                            input type="checkbox" name="filterTypes" value=(text(t, "name"));
                            " " (text(t, "name"))
                        }
                    }
                    @if types.is_empty() { p class="help" { "No event types are defined: the endpoint receives every event." } }
                }
                label for="channels" { "Channels (comma-separated, optional)" }
                input id="channels" name="channels";
                label for="rateLimit" { "Rate limit (messages per second, optional)" }
                input id="rateLimit" name="rateLimit" type="number" min="1";
                button type="submit" { "Add endpoint" }
            }
        }
    };
    page(&s, &name, None, body).into_response()
}

/// The last day's delivery figures (from the statistics rollups) and the
/// application's SLAs with their state.
fn health(summary: &Value, slas: &[Value]) -> maud::Markup {
    let t = &summary["totals"];
    let num = |v: &Value| v.as_u64().map(|n| n.to_string()).unwrap_or_else(|| "–".into());
    let ms = |v: &Value| v.as_f64().map(|n| format!("{n:.1} ms")).unwrap_or_else(|| "–".into());
    let ratio = |v: &Value| v.as_f64().map(|r| format!("{:.2}%", r * 100.0)).unwrap_or_else(|| "–".into());
    html! {
        section class="card" aria-labelledby="health-h" {
            h2 id="health-h" { "Delivery, last 24 hours" }
            table {
                thead { tr {
                    th scope="col" { "Attempts" } th scope="col" { "Succeeded" } th scope="col" { "Response p50 / p99" }
                    th scope="col" { "Delivered after p50 / p99" } th scope="col" { "Waiting now" }
                } }
                tbody { tr {
                    td { (num(&t["attempts"])) }
                    td { (ratio(&t["successRatio"])) }
                    td { (ms(&t["latencyMs"]["p50"])) " / " (ms(&t["latencyMs"]["p99"])) }
                    td { (ms(&t["deliveryLatencyMs"]["p50"])) " / " (ms(&t["deliveryLatencyMs"]["p99"])) }
                    td { (num(&summary["queue"]["depth"])) }
                } }
            }
            @let f = &t["failures"];
            p class="help" {
                "Failures: " (num(&f["http4xx"])) " 4xx, " (num(&f["http5xx"])) " 5xx, " (num(&f["timeout"])) " timeouts, "
                (num(&f["connection"])) " connection, " (num(&f["tls"])) " TLS, " (num(&f["other"])) " other."
            }
            @if !slas.is_empty() {
                h3 { "SLAs" }
                table {
                    thead { tr { th scope="col" { "SLA" } th scope="col" { "Target" } th scope="col" { "Now" } th scope="col" { "State" } } }
                    tbody {
                        @for sla in slas {
                            tr {
                                td { (text(sla, "name")) }
                                td {
                                    (ratio(&sla["targetSuccessRatio"])) " over " (num(&sla["windowSeconds"])) " s"
                                    @if let (Some(p), Some(target)) = (sla["latencyPercentile"].as_f64(), sla["latencyTargetMs"].as_u64()) {
                                        ", p" (p) " ≤ " (target) " ms"
                                    }
                                }
                                td { (ratio(&sla["figures"]["successRatio"])) }
                                td {
                                    @match text(sla, "state") {
                                        "breached" => span class="badge bad" { "breached" },
                                        "met" => span class="badge good" { "met" },
                                        other => span class="badge" { (other) },
                                    }
                                    @if let Some(since) = sla["stateSince"].as_str() { " since " (since) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
