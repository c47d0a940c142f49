//! Recovering an endpoint (resend what failed since a time) and replaying
//! what it missed: both start a background task, whose page shows its
//! progress (reloading itself while it runs, without JavaScript).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::Method;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde_json::json;

use crate::client::seg;
use crate::html::utc_datetime;
use crate::html::{failed, page, text};
use crate::session::Session;
use crate::Console;

async fn start(c: &Console, s: &Session, app: &str, ep: &str, what: &str, body: &[u8]) -> Response {
    let form: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
    let field = |n: &str| form.iter().find(|(k, _)| k == n).map_or("", |(_, v)| v.as_str());
    if let Err(r) = s.check(field("csrf")) {
        return r.into_response();
    }
    let path = format!("/api/v1/app/{}/endpoint/{}/{what}", seg(app), seg(ep));
    let task = c.api.send(s, Method::POST, &path, &json!({ "since": utc_datetime(field("since")) })).await;
    if !task.ok() {
        return failed(s, "The task was not started", &task);
    }
    Redirect::to(&format!("{}/tasks/{}", s.base, seg(text(&task.body, "id")))).into_response()
}

pub async fn recover(
    State(c): State<Console>,
    s: Session,
    Path((app, ep)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    start(&c, &s, &app, &ep, "recover", &body).await
}

pub async fn replay_missing(
    State(c): State<Console>,
    s: Session,
    Path((app, ep)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    start(&c, &s, &app, &ep, "replay-missing", &body).await
}

pub async fn task(State(c): State<Console>, s: Session, Path(id): Path<String>) -> Response {
    let task = c.api.get(&s, &format!("/api/v1/background-task/{}", seg(&id))).await;
    if !task.ok() {
        return failed(&s, "Background task", &task);
    }
    let t = &task.body;
    let running = t["status"] == "running";
    let app = t["data"]["appId"].as_str().unwrap_or("");
    let ep = t["data"]["endpointId"].as_str().unwrap_or("");
    let body = html! {
        @if running { meta http-equiv="refresh" content="2"; }
        h1 { "Background task" }
        table {
            tbody {
                tr { th scope="row" { "Task" } td { (text(t, "task")) " " code { (text(t, "id")) } } }
                tr { th scope="row" { "Status" } td {
                    span class=(match text(t, "status") { "finished" => "badge good", "failed" => "badge bad", _ => "badge" }) { (text(t, "status")) }
                    @if running { " (this page reloads every 2 seconds)" }
                } }
                tr { th scope="row" { "Messages sent" } td { (t["data"]["messagesSent"].as_u64().unwrap_or(0)) } }
                @if let Some(e) = t["data"]["error"].as_str() { tr { th scope="row" { "Error" } td { (e) } } }
                tr { th scope="row" { "Updated" } td { (text(t, "updatedAt")) } }
            }
        }
        @if !app.is_empty() && !ep.is_empty() {
            p { a href={ (s.base) "/apps/" (seg(app)) "/endpoints/" (seg(ep)) } { "Back to the endpoint" } }
        }
    };
    page(&s, "Background task", None, body).into_response()
}
