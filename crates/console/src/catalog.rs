//! The audit log, and inbound sources with their request log: read-only pages.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use maud::html;

use crate::client::seg;
use crate::html::{failed, iterator_query, page, pager, text};
use crate::session::Session;
use crate::Console;

const PAGE: usize = 50;

pub async fn audit(State(c): State<Console>, s: Session, Query(q): Query<HashMap<String, String>>) -> Response {
    let entries = c.api.get(&s, &format!("/api/v1/audit?limit={PAGE}{}", iterator_query(&q))).await;
    if !entries.ok() {
        return failed(&s, "Audit log", &entries);
    }
    let body = html! {
        h1 { "Audit log" }
        p class="help" { "Every change made through the API or this console, newest first; "
            code { "hookd audit verify" } " checks the chain." }
        table {
            thead { tr { th scope="col" { "When" } th scope="col" { "Who" } th scope="col" { "What" } th scope="col" { "On" } th scope="col" { "Status" } th scope="col" { "From" } } }
            tbody {
                @for e in entries.body["data"].as_array().into_iter().flatten() {
                    tr {
                        td { (text(e, "timestamp")) }
                        td { code { (text(e, "actor")) } }
                        td { (text(e, "action")) }
                        td { code { (text(e, "target")) } }
                        td { (e["status"].as_i64().unwrap_or(0)) }
                        td { (text(e, "address")) }
                    }
                }
            }
        }
        @if entries.body["data"].as_array().is_none_or(|d| d.is_empty()) { p { "Nothing yet." } }
        (pager(&entries.body, "/console/audit", q.contains_key("iterator")))
    };
    page(&s, "Audit log", None, body).into_response()
}

pub async fn sources(State(c): State<Console>, s: Session, Query(q): Query<HashMap<String, String>>) -> Response {
    let list = c.api.get(&s, &format!("/ingest/api/v1/source?limit={PAGE}{}", iterator_query(&q))).await;
    if !list.ok() {
        return failed(&s, "Inbound sources", &list);
    }
    let body = html! {
        h1 { "Inbound sources" }
        p class="help" { "Where providers send webhooks to hookd; see docs/inbound.md to add one." }
        table {
            thead { tr { th scope="col" { "Name" } th scope="col" { "Type" } th scope="col" { "Ingest URL" } } }
            tbody {
                @for src in list.body["data"].as_array().into_iter().flatten() {
                    tr {
                        td { a href={ "/console/sources/" (seg(text(src, "id"))) } { (text(src, "name")) } }
                        td { (src["hookdType"].as_str().unwrap_or(text(src, "type"))) }
                        td { code { (text(src, "ingestUrl")) } }
                    }
                }
            }
        }
        @if list.body["data"].as_array().is_none_or(|d| d.is_empty()) { p { "No inbound sources." } }
        (pager(&list.body, "/console/sources", q.contains_key("iterator")))
    };
    page(&s, "Inbound sources", None, body).into_response()
}

pub async fn source(
    State(c): State<Console>,
    s: Session,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let src = c.api.get(&s, &format!("/ingest/api/v1/source/{}", seg(&id))).await;
    if !src.ok() {
        return failed(&s, "Inbound source", &src);
    }
    let outcome = q.get("outcome").map(String::as_str).filter(|o| !o.is_empty());
    let filter = outcome.map(|o| format!("&outcome={}", seg(o))).unwrap_or_default();
    let path = format!(
        "/ingest/api/v1/source/{}/request?limit={PAGE}&with_content=false{filter}{}",
        seg(&id),
        iterator_query(&q)
    );
    let log = c.api.get(&s, &path).await;
    if !log.ok() {
        return failed(&s, "Request log", &log);
    }
    let base = match outcome {
        Some(o) => format!("/console/sources/{}?outcome={}", seg(&id), seg(o)),
        None => format!("/console/sources/{}", seg(&id)),
    };
    let sv = &src.body;
    let body = html! {
        p { a href="/console/sources" { "Inbound sources" } " / " (text(sv, "name")) }
        h1 { (text(sv, "name")) }
        p { "Type " code { (sv["hookdType"].as_str().unwrap_or(text(sv, "type"))) } " · forwards through application "
            a href={ "/console/apps/" (seg(text(sv, "appId"))) } { code { (text(sv, "appId")) } } }
        p { "Ingest URL " code { (text(sv, "ingestUrl")) } }
        h2 { "Request log" }
        form method="get" action={ "/console/sources/" (seg(&id)) } role="search" {
            label for="outcome" { "Outcome" }
            select id="outcome" name="outcome" {
                option value="" { "any" }
                @for o in ["accepted", "duplicate", "ignored", "rejected"] {
                    option value=(o) selected[outcome == Some(o)] { (o) }
                }
            }
            button type="submit" { "Filter" }
        }
        table {
            thead { tr { th scope="col" { "Received" } th scope="col" { "Status" } th scope="col" { "Event" } th scope="col" { "From" } th scope="col" { "Error" } } }
            tbody {
                @for r in log.body["data"].as_array().into_iter().flatten() {
                    tr {
                        td { (text(r, "receivedAt")) }
                        td { span class=(if r["status"] == "rejected" { "badge bad" } else { "badge" }) { (text(r, "status")) } }
                        td { (text(r, "eventType")) " " code { (text(r, "eventId")) } }
                        td { (text(r, "remoteAddr")) }
                        td { (text(r, "error")) }
                    }
                }
            }
        }
        @if log.body["data"].as_array().is_none_or(|d| d.is_empty()) { p { "No requests." } }
        (pager(&log.body, &base, q.contains_key("iterator")))
    };
    page(&s, "Inbound source", None, body).into_response()
}
