//! The event catalog: event types with their schemas and examples; in the
//! console (not the portal) an operator adds them, edits a description or
//! schema (as a new version or in place), and archives them. A schema is
//! checked before it is saved, so a broken one never reaches senders.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use hookd_core::schema::{self, Schema};
use maud::html;
use serde_json::{json, Map, Value};

use crate::client::seg;
use crate::html::{can_write, csrf, failed, iterator_query, page, pager, pretty, text, Flash};
use crate::session::Session;
use crate::Console;

const PAGE: usize = 50;

/// Whether this session may change the catalog (an operator's, not a portal's).
fn may_edit(s: &Session) -> bool {
    s.app.is_none() && can_write(s)
}

pub async fn list(State(c): State<Console>, s: Session, Query(q): Query<HashMap<String, String>>) -> Response {
    // Operators see archived types too (to restore them); the portal does not.
    let archived = if may_edit(&s) { "&include_archived=true" } else { "" };
    let path = format!("/api/v1/event-type?limit={PAGE}&with_content=true{archived}{}", iterator_query(&q));
    let types = c.api.get(&s, &path).await;
    if !types.ok() {
        return failed(&s, "Event types", &types);
    }
    let flash = match q.get("done").map(String::as_str) {
        Some("archived") => Some(Flash::done("Archived: it no longer shows in pickers; messages of it still go out.")),
        Some("restored") => Some(Flash::done("Restored.")),
        _ => None,
    };
    let body = html! {
        h1 { "Event types" }
        @if may_edit(&s) {
            details class="card" {
                summary { "Add an event type" }
                form method="post" action="/console/event-types" {
                    (csrf(&s))
                    label for="name" { "Name" }
                    input id="name" name="name" required placeholder="invoice.paid" aria-describedby="name-help";
                    p id="name-help" class="help" { "Letters, digits, '-', '_' and '.'." }
                    label for="description" { "Description" }
                    input id="description" name="description";
                    label for="schema" { "JSON Schema (optional)" }
                    textarea id="schema" name="schema" rows="8" {}
                    button type="submit" { "Add" }
                }
            }
        }
        @for t in types.body["data"].as_array().into_iter().flatten() {
            @let name = text(t, "name");
            section class="card" aria-labelledby={ "t-" (name) } {
                h2 id={ "t-" (name) } {
                    @if may_edit(&s) { a href={ "/console/event-types/" (seg(name)) } { code { (name) } } } @else { code { (name) } }
                    @if t["archived"] == true { " " span class="badge" { "archived" } }
                }
                p { (text(t, "description")) }
                @if let Some(schemas) = t["schemas"].as_object().filter(|m| !m.is_empty()) {
                    @for (version, schema) in schemas {
                        details {
                            summary { "Schema, version " (version) }
                            pre { (pretty(schema)) }
                        }
                        @if let Some(example) = schema["examples"].as_array().and_then(|e| e.first()) {
                            details {
                                summary { "Example, version " (version) }
                                pre { (pretty(example)) }
                            }
                        }
                    }
                } @else {
                    p class="help" { "No schema." }
                }
            }
        }
        @if types.body["data"].as_array().is_none_or(|d| d.is_empty()) { p { "No event types." } }
        (pager(&types.body, &format!("{}/event-types", s.base), q.contains_key("iterator")))
    };
    page(&s, "Event types", flash, body).into_response()
}

/// A schema typed into a form: empty (none), or JSON that is a usable schema.
fn parse_schema(text: &str) -> Result<Option<Value>, String> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let schema: Value = serde_json::from_str(text).map_err(|e| format!("the schema is not JSON: {e}"))?;
    Schema::compile(&schema).map_err(|e| format!("the schema is not a usable JSON Schema: {e}"))?;
    Ok(Some(schema))
}

fn form_fields(body: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

pub async fn create(State(c): State<Console>, s: Session, body: Bytes) -> Response {
    let f = form_fields(&body);
    let field = |n: &str| f.get(n).map(String::as_str).unwrap_or("");
    if let Err(r) = s.check(field("csrf")) {
        return r.into_response();
    }
    let schema = match parse_schema(field("schema")) {
        Ok(s) => s,
        Err(e) => return refused(&s, "The event type was not added", e),
    };
    let mut input = json!({ "name": field("name").trim(), "description": field("description").trim() });
    if let Some(schema) = schema {
        input["schemas"] = json!({ "1": schema });
    }
    let made = c.api.send(&s, Method::POST, "/api/v1/event-type", &input).await;
    if !made.ok() {
        return failed(&s, "The event type was not added", &made);
    }
    Redirect::to(&format!("/console/event-types/{}?done=added", seg(text(&made.body, "name")))).into_response()
}

fn refused(s: &Session, what: &str, why: String) -> Response {
    let body = html! { h1 { (what) } p { a href="/console/event-types" { "Back" } } };
    (StatusCode::UNPROCESSABLE_ENTITY, page(s, what, Some(Flash::error(why)), body)).into_response()
}

pub async fn edit_page(
    State(c): State<Console>,
    s: Session,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let t = c.api.get(&s, &format!("/api/v1/event-type/{}", seg(&name))).await;
    if !t.ok() {
        return failed(&s, "Event type", &t);
    }
    let flash = match q.get("done").map(String::as_str) {
        Some("added") => Some(Flash::done("Added.")),
        Some("saved") => Some(Flash::done("Saved.")),
        _ => None,
    };
    let et = &t.body;
    let latest = schema::latest(&et["schemas"]).map(pretty).unwrap_or_default();
    // The highest version number (versions need not be numbered 1, 2, 3…).
    let versions =
        et["schemas"].as_object().map_or(0, |m| m.keys().filter_map(|v| v.parse::<u64>().ok()).max().unwrap_or(0));
    let base = format!("/console/event-types/{}", seg(&name));
    let archived = et["archived"] == true;
    let body = html! {
        p { a href="/console/event-types" { "Event types" } " / " (name) }
        h1 { code { (name) } @if archived { " " span class="badge" { "archived" } } }
        @if may_edit(&s) {
            form method="post" action=(base) class="card" {
                (csrf(&s))
                label for="description" { "Description" }
                input id="description" name="description" value=(text(et, "description"));
                label for="schema" { "JSON Schema" @if versions > 0 { " (version " (versions) ")" } }
                textarea id="schema" name="schema" rows="14" { (latest) }
                @if versions > 0 {
                    label class="check" { input type="checkbox" name="newVersion" checked; "Save as a new version (senders of the old one keep it)" }
                }
                button type="submit" { "Save" }
            }
            form method="post" action={ (base) "/archive" } class="inline" {
                (csrf(&s))
                input type="hidden" name="archived" value=(if archived { "false" } else { "true" });
                button type="submit" class="secondary" { @if archived { "Restore" } @else { "Archive" } }
            }
        } @else {
            p { (text(et, "description")) }
            pre { (latest) }
        }
    };
    page(&s, "Event type", flash, body).into_response()
}

pub async fn save(State(c): State<Console>, s: Session, Path(name): Path<String>, body: Bytes) -> Response {
    let f = form_fields(&body);
    let field = |n: &str| f.get(n).map(String::as_str).unwrap_or("");
    if let Err(r) = s.check(field("csrf")) {
        return r.into_response();
    }
    let schema = match parse_schema(field("schema")) {
        Ok(s) => s,
        Err(e) => return refused(&s, "The event type was not saved", e),
    };
    let path = format!("/api/v1/event-type/{}", seg(&name));
    let current = c.api.get(&s, &path).await;
    if !current.ok() {
        return failed(&s, "The event type was not saved", &current);
    }
    let mut schemas: Map<String, Value> = current.body["schemas"].as_object().cloned().unwrap_or_default();
    let latest = schemas.keys().filter_map(|v| v.parse::<u64>().ok()).max().unwrap_or(0);
    if let Some(schema) = schema {
        // A new version, or the latest one replaced (the first is version 1).
        let version = if field("newVersion") == "on" || latest == 0 { latest + 1 } else { latest };
        if schemas.get(&latest.to_string()) != Some(&schema) {
            schemas.insert(version.to_string(), schema);
        }
    }
    let input = json!({ "description": field("description").trim(), "schemas": schemas });
    let saved = c.api.send(&s, Method::PATCH, &path, &input).await;
    if !saved.ok() {
        return failed(&s, "The event type was not saved", &saved);
    }
    Redirect::to(&format!("/console/event-types/{}?done=saved", seg(&name))).into_response()
}

pub async fn archive(State(c): State<Console>, s: Session, Path(name): Path<String>, body: Bytes) -> Response {
    let f = form_fields(&body);
    if let Err(r) = s.check(f.get("csrf").map(String::as_str).unwrap_or("")) {
        return r.into_response();
    }
    let archived = f.get("archived").is_some_and(|a| a == "true");
    let path = format!("/api/v1/event-type/{}", seg(&name));
    let done = c.api.send(&s, Method::PATCH, &path, &json!({ "archived": archived })).await;
    if !done.ok() {
        return failed(&s, "The event type was not changed", &done);
    }
    let then = if archived { "archived" } else { "restored" };
    Redirect::to(&format!("/console/event-types?done={then}")).into_response()
}
