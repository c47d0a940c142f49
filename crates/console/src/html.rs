//! The page shell, shared pieces (messages, pagination, JSON), and the stylesheet.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup, DOCTYPE};
use serde_json::Value;

use crate::client::Answer;
use crate::session::Session;

/// A message shown above a page's content.
pub struct Flash {
    pub error: bool,
    pub text: String,
}

impl Flash {
    pub fn error(text: impl Into<String>) -> Flash {
        Flash { error: true, text: text.into() }
    }
    pub fn done(text: impl Into<String>) -> Flash {
        Flash { error: false, text: text.into() }
    }
}

/// What a page may add to its `head`.
#[derive(Default)]
pub struct Head {
    /// Reload the page (or go to this URL) after a second: how a page follows
    /// something happening without scripts.
    pub reload: Option<String>,
    /// A portal's theme (its organisation's portal settings): its stylesheet,
    /// logo and display name.
    pub theme: Option<Value>,
}

fn shell(base: &str, title: &str, nav: Markup, flash: Option<Flash>, body: Markup, extra: Head) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(url) = &extra.reload { meta http-equiv="refresh" content={ "1; url=" (url) }; }
                title { (title) " · hookd" }
                link rel="stylesheet" href={ (base) "/style.css" };
                @if extra.theme.is_some() { link rel="stylesheet" href="/portal/theme.css"; }
            }
            body {
                a class="skip" href="#main" { "Skip to content" }
                header { (brand(extra.theme.as_ref())) (nav) }
                main id="main" {
                    @if let Some(f) = flash {
                        p class=(if f.error { "flash error" } else { "flash done" }) role=(if f.error { "alert" } else { "status" }) {
                            (f.text)
                        }
                    }
                    (body)
                }
            }
        }
    }
}

/// The header's name: a portal's logo and display name, else hookd's.
fn brand(theme: Option<&Value>) -> Markup {
    let theme = theme.unwrap_or(&Value::Null);
    let name = theme["displayName"].as_str().filter(|n| !n.is_empty());
    let logo = theme["logoUrl"].as_str().filter(|u| u.starts_with("https://"));
    html! {
        span class="brand" {
            @if let Some(logo) = logo { img class="logo" src=(logo) alt=(if name.is_some() { "" } else { "Logo" }); }
            (name.unwrap_or(if logo.is_some() { "" } else { "hookd" }))
        }
    }
}

pub fn page_signed_out(base: &str, title: &str, flash: Option<Flash>, body: Markup) -> Markup {
    shell(base, title, html! {}, flash, body, Head::default())
}

pub fn page(session: &Session, title: &str, flash: Option<Flash>, body: Markup) -> Markup {
    page_with(session, title, flash, body, Head::default())
}

pub fn page_with(session: &Session, title: &str, flash: Option<Flash>, body: Markup, mut extra: Head) -> Markup {
    if let Some(app) = &session.app {
        extra.theme = Some(session.theme.clone());
        let app = crate::client::seg(app);
        let nav = html! {
            nav aria-label="Main" {
                a href={ "/portal/apps/" (app) } { "Endpoints" }
                a href={ "/portal/apps/" (app) "/msgs" } { "Messages" }
                a href="/portal/event-types" { "Event types" }
                form method="post" action="/portal/logout" class="inline" {
                    (csrf(session))
                    button type="submit" class="link" { "Sign out" }
                }
            }
        };
        return shell(session.base, title, nav, flash, body, extra);
    }
    let nav = html! {
        nav aria-label="Main" {
            a href="/console/apps" { "Applications" }
            a href="/console/event-types" { "Event types" }
            a href="/console/sources" { "Inbound" }
            a href="/console/audit" { "Audit log" }
            form method="post" action="/console/logout" class="inline" {
                (csrf(session))
                button type="submit" class="link" { "Sign out" }
            }
        }
    };
    shell(session.base, title, nav, flash, body, extra)
}

/// The hidden CSRF field of a form.
pub fn csrf(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf()); }
}

/// Whether the session may change things (the API refuses anyway; this only
/// leaves out forms that would be refused).
pub fn can_write(session: &Session) -> bool {
    session.role != "read-only"
}

/// Whether the session may change things and holds one of `caps` (a portal
/// session's capabilities; an organisation's session holds them all).
pub fn may(session: &Session, caps: &[&str]) -> bool {
    can_write(session)
        && session.capabilities.as_ref().is_none_or(|held| caps.iter().any(|c| held.iter().any(|h| h == c)))
}

pub const MANAGE_ENDPOINT: &[&str] = &["ManageEndpoint"];
pub const MANAGE_SECRET: &[&str] = &["ManageEndpointSecret", "ManageEndpoint"];
pub const VIEW_SECRET: &[&str] = &["ViewEndpointSecret", "ManageEndpointSecret", "ManageEndpoint"];
pub const CREATE_ATTEMPTS: &[&str] = &["CreateAttempts"];

/// An API error as a page.
pub fn failed(session: &Session, what: &str, answer: &Answer) -> Response {
    let status = if answer.status.is_client_error() || answer.status.is_server_error() {
        answer.status
    } else {
        StatusCode::BAD_GATEWAY
    };
    let body = html! {
        h1 { (what) }
        p { a href={ (session.base) "/apps" } { "Back" } }
    };
    (status, page(session, what, Some(Flash::error(answer.detail())), body)).into_response()
}

/// A form's action: the API call, then on to `then`; or the API's error as a page
/// titled `failed_what`.
pub async fn act(
    c: &crate::Console,
    s: &Session,
    method: axum::http::Method,
    path: &str,
    body: &Value,
    failed_what: &str,
    then: String,
) -> Response {
    let done = c.api.send(s, method, path, body).await;
    if !done.ok() {
        return failed(s, failed_what, &done);
    }
    axum::response::Redirect::to(&then).into_response()
}

/// "Previous"/"Next" links over an API list answer (`iterator`,
/// `prevIterator`, `done`); `paged`: this page was reached by an iterator.
pub fn pager(list: &Value, base: &str, paged: bool) -> Markup {
    let sep = if base.contains('?') { '&' } else { '?' };
    let next = list["iterator"].as_str().filter(|_| list["done"] == false);
    let prev = list["prevIterator"].as_str().filter(|_| paged);
    html! {
        nav class="pager" aria-label="Pages" {
            @if let Some(p) = prev {
                a href={ (base) (sep) "iterator=" (crate::client::seg(p)) } { "← Previous" }
            }
            @if let Some(n) = next {
                a href={ (base) (sep) "iterator=" (crate::client::seg(n)) } { "Next →" }
            }
        }
    }
}

/// The API query part for the page's iterator.
pub fn iterator_query(q: &std::collections::HashMap<String, String>) -> String {
    q.get("iterator")
        .filter(|i| !i.is_empty())
        .map(|i| format!("&iterator={}", crate::client::seg(i)))
        .unwrap_or_default()
}

/// A `datetime-local` field's value (UTC, as the forms say) as RFC 3339.
pub fn utc_datetime(value: &str) -> String {
    let v = value.trim();
    match v.len() {
        16 => format!("{v}:00Z"),
        19 => format!("{v}Z"),
        _ => v.to_string(),
    }
}

pub fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// A message's payload to show: its raw payload as sent, else its JSON, pretty.
pub fn payload_of(msg: &Value) -> String {
    match msg["transformationsParams"]["rawPayload"].as_str() {
        Some(raw) => raw.to_string(),
        None => pretty(&msg["payload"]),
    }
}

pub fn text<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field].as_str().unwrap_or("")
}

pub async fn stylesheet() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8"), (header::CACHE_CONTROL, "max-age=3600")], STYLE)
        .into_response()
}

/// Readable at 4.5:1 contrast or better; focus always visible.
const STYLE: &str = r#"
:root { --fg: #1b1f24; --muted: #4a5260; --bg: #ffffff; --line: #d0d7de; --accent: #0b57d0; --bad: #a40e26; --good: #116329; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; align-items: center; gap: 2rem; padding: .6rem 1.5rem; border-bottom: 2px solid var(--nav, var(--line)); }
.brand { font-weight: 700; }
header nav { display: flex; gap: 1.2rem; align-items: center; flex: 1; }
header nav form { margin-left: auto; }
main { max-width: 72rem; margin: 0 auto; padding: 1.5rem; }
a { color: var(--link, var(--accent)); }
a:focus, button:focus, input:focus, select:focus, textarea:focus { outline: 3px solid #f0b400; outline-offset: 2px; }
.skip { position: absolute; left: -10000px; }
.skip:focus { left: 1rem; top: .5rem; background: #fff; padding: .3rem; }
table { width: 100%; border-collapse: collapse; margin: 1rem 0; }
th, td { text-align: left; padding: .45rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; }
.card { border: 1px solid var(--line); border-radius: var(--radius-card, 6px); padding: 1rem 1.2rem; margin: 1rem 0; max-width: 44rem; }
label { display: block; font-weight: 600; margin: .6rem 0 .2rem; }
input, select, textarea { font: inherit; padding: .35rem .5rem; border: 1px solid #8c959f; border-radius: var(--radius-input, 4px); width: 100%; max-width: 36rem; }
textarea { min-height: 8rem; font-family: ui-monospace, monospace; }
button { font: inherit; padding: .4rem .9rem; margin-top: .8rem; border: 1px solid var(--button, var(--accent)); background: var(--button, var(--accent)); color: #fff; border-radius: var(--radius-button, 4px); cursor: pointer; }
button.secondary { background: #fff; color: var(--accent); }
button.link { background: none; border: none; color: var(--accent); padding: 0; margin: 0; text-decoration: underline; }
form.inline { display: inline; }
.help { color: var(--muted); font-size: .9em; }
label.check { display: flex; align-items: center; gap: .4rem; font-weight: normal; margin: .2rem 0; }
label.check input { width: auto; }
fieldset { border: 1px solid var(--line); border-radius: 4px; margin: .8rem 0; max-width: 36rem; }
td form.inline button { margin-top: 0; }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
.flash { padding: .6rem .9rem; border-radius: 4px; }
.flash.error { background: #ffebe9; color: var(--bad); border: 1px solid #ff8182; }
.flash.done { background: #dafbe1; color: var(--good); border: 1px solid #4ac26b; }
.pager { display: flex; gap: 1.5rem; }
pre { background: var(--bg2, #f6f8fa); padding: .8rem; overflow: auto; border-radius: 4px; }
.badge { display: inline-block; padding: 0 .45rem; border-radius: 999px; font-size: .85em; border: 1px solid var(--line); }
.badge.bad { color: var(--bad); border-color: var(--bad); }
.badge.good { color: var(--good); border-color: var(--good); }
code { font-family: ui-monospace, monospace; }
.brand img.logo { height: 1.8rem; vertical-align: middle; margin-right: .5rem; }
"#;
