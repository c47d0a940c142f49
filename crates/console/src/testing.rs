//! The testing console of one endpoint: pick an event type, edit its example
//! (or write a payload), check it against the event type's schema, and send it
//! to this endpoint only; the message page then follows the attempt live.
//!
//! A portal session sends the event type's examples only (the API refuses an
//! application-scoped token a payload of its own: hookd signs what it sends).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use hookd_core::schema::{self, Schema, SchemaError};
use maud::{html, Markup};
use serde_json::{json, Value};

use crate::apps::event_types;
use crate::client::seg;
use crate::html::{csrf, failed, may, page, pretty, text, Flash, CREATE_ATTEMPTS};
use crate::session::Session;
use crate::Console;

/// Most bytes of a payload typed into the form (the API's own limit is larger).
const MAX_PAYLOAD: usize = 256 * 1024;
/// How many times the message page reloads itself waiting for the attempt.
pub const WATCH_RELOADS: u32 = 60;

/// What the form holds: the event type and the payload as typed.
struct Draft {
    event_type: String,
    payload: String,
}

/// What checking the draft found.
enum Checked {
    NotJson(String),
    /// The event type has no schema to check against.
    NoSchema,
    UnusableSchema(String),
    Matches,
    Mismatches(Vec<SchemaError>),
}

pub async fn form(
    State(c): State<Console>,
    s: Session,
    Path((app, ep)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let types = event_types(&c, &s).await;
    let chosen = q.get("eventType").filter(|t| !t.is_empty()).cloned();
    let event_type = chosen.or_else(|| types.first().map(|t| text(t, "name").to_string())).unwrap_or_default();
    let example = example_of(&types, &event_type);
    let draft = Draft { event_type, payload: pretty(&example) };
    render(&c, &s, &app, &ep, &types, &draft, None, None).await
}

pub async fn submit(
    State(c): State<Console>,
    s: Session,
    Path((app, ep)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let f: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |name: &str| f.get(name).map(String::as_str).unwrap_or("");
    if let Err(r) = s.check(field("csrf")) {
        return r.into_response();
    }
    let types = event_types(&c, &s).await;
    let event_type = field("eventType").trim().to_string();
    let portal = s.app.is_some();
    // A portal session sends the example as it is; the form shows it read-only.
    let payload = if portal { pretty(&example_of(&types, &event_type)) } else { field("payload").trim().to_string() };
    let draft = Draft { event_type, payload };
    if draft.payload.len() > MAX_PAYLOAD {
        let flash = Flash::error(format!("The payload is larger than {} KiB.", MAX_PAYLOAD / 1024));
        return render(&c, &s, &app, &ep, &types, &draft, None, Some(flash)).await;
    }
    let checked = check(&types, &draft);
    let send = field("action") == "send";
    let sendable = match &checked {
        Checked::NotJson(_) => false,
        Checked::Mismatches(_) | Checked::UnusableSchema(_) => field("force") == "on",
        Checked::NoSchema | Checked::Matches => true,
    };
    if !send || !sendable {
        let flash = send.then(|| Flash::error("Not sent: the payload does not pass the checks below."));
        return render(&c, &s, &app, &ep, &types, &draft, Some(checked), flash).await;
    }
    let mut input = json!({ "eventType": draft.event_type });
    if !portal {
        input["payload"] = serde_json::from_str(&draft.payload).unwrap_or(Value::Null);
    }
    let path = format!("/api/v1/app/{}/endpoint/{}/send-example", seg(&app), seg(&ep));
    let sent = c.api.send(&s, Method::POST, &path, &input).await;
    if !sent.ok() {
        return failed(&s, "The test event was not sent", &sent);
    }
    let msg = text(&sent.body, "id");
    Redirect::to(&format!("{}/apps/{}/msgs/{}?watch={WATCH_RELOADS}", s.base, seg(&app), seg(msg))).into_response()
}

/// The example of `event_type`'s latest schema (`{}` when it has none).
fn example_of(types: &[Value], event_type: &str) -> Value {
    let Some(t) = types.iter().find(|t| text(t, "name") == event_type) else { return json!({}) };
    schema::latest(&t["schemas"])
        .and_then(|s| s["examples"].get(0))
        .filter(|e| e.is_object())
        .cloned()
        .unwrap_or_else(|| json!({}))
}

fn check(types: &[Value], draft: &Draft) -> Checked {
    let payload: Value = match serde_json::from_str(&draft.payload) {
        Ok(p) => p,
        Err(e) => return Checked::NotJson(e.to_string()),
    };
    let Some(t) = types.iter().find(|t| text(t, "name") == draft.event_type) else { return Checked::NoSchema };
    let Some(schema) = schema::latest(&t["schemas"]) else { return Checked::NoSchema };
    match Schema::compile(schema) {
        Err(e) => Checked::UnusableSchema(e),
        Ok(s) => match s.errors(&payload) {
            errors if errors.is_empty() => Checked::Matches,
            errors => Checked::Mismatches(errors),
        },
    }
}

#[allow(clippy::too_many_arguments)]
async fn render(
    c: &Console,
    s: &Session,
    app: &str,
    ep: &str,
    types: &[Value],
    draft: &Draft,
    checked: Option<Checked>,
    flash: Option<Flash>,
) -> Response {
    let endpoint = c.api.get(s, &format!("/api/v1/app/{}/endpoint/{}", seg(app), seg(ep))).await;
    if !endpoint.ok() {
        return failed(s, "Testing", &endpoint);
    }
    let base = format!("{}/apps/{}/endpoints/{}", s.base, seg(app), seg(ep));
    let portal = s.app.is_some();
    let status = match &checked {
        Some(Checked::NotJson(_) | Checked::Mismatches(_) | Checked::UnusableSchema(_)) => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        _ => StatusCode::OK,
    };
    let body = html! {
        p { a href=(base) { "Endpoint" } " / testing" }
        h1 { "Send a test event" }
        p { "To " code { (text(&endpoint.body, "url")) } " only: no other endpoint gets it." }
        form method="get" action={ (base) "/testing" } class="card" {
            label for="pick" { "Event type" }
            select id="pick" name="eventType" {
                @for t in types {
                    @let name = text(t, "name");
                    option value=(name) selected[name == draft.event_type] { (name) }
                }
            }
            button type="submit" class="secondary" { "Use its example" }
            @if types.is_empty() { p class="help" { "No event types yet: define one to have examples and a schema." } }
        }
        form method="post" action={ (base) "/testing" } class="card" {
            (csrf(s))
            input type="hidden" name="eventType" value=(draft.event_type);
            label for="payload" { "Payload of " code { (draft.event_type) } }
            @if portal {
                textarea id="payload" name="payload" rows="14" readonly { (draft.payload) }
                p class="help" { "The event type's example, as it will be sent." }
            } @else {
                textarea id="payload" name="payload" rows="14" aria-describedby="payload-help" { (draft.payload) }
                p id="payload-help" class="help" { "JSON. " b { "Check" } " validates it against the event type's schema without sending it." }
                label class="check" { input type="checkbox" name="force"; "Send even if it does not match the schema" }
            }
            @if let Some(checked) = &checked { (report(checked)) }
            @if may(s, CREATE_ATTEMPTS) {
                @if !portal { button type="submit" name="action" value="check" class="secondary" { "Check" } " " }
                button type="submit" name="action" value="send" { "Send" }
            }
        }
    };
    (status, page(s, "Testing", flash, body)).into_response()
}

/// The inspector's verdict, announced to screen readers.
fn report(checked: &Checked) -> Markup {
    html! {
        div id="inspector" role="status" {
            @match checked {
                Checked::NotJson(e) => { p class="flash error" { "Not JSON: " (e) } }
                Checked::NoSchema => { p class="flash done" { "Valid JSON. The event type has no schema to check it against." } }
                Checked::UnusableSchema(e) => { p class="flash error" { "The event type's schema cannot be used: " (e) } }
                Checked::Matches => { p class="flash done" { "Matches the event type's schema." } }
                Checked::Mismatches(errors) => {
                    p class="flash error" { "Does not match the event type's schema:" }
                    table {
                        thead { tr { th scope="col" { "Where" } th scope="col" { "What" } } }
                        tbody {
                            @for e in errors {
                                tr { td { code { @if e.path.is_empty() { "(the payload)" } @else { (e.path) } } } td { (e.message) } }
                            }
                        }
                    }
                }
            }
        }
    }
}
