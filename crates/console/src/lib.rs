//! The web console at `/console`: server-rendered pages (maud) over the
//! management API. Every page calls the API in-process with the signed-in
//! token, so what the console shows and changes is exactly what that token may
//! see and change through the API (organisation isolation, roles, validation,
//! the audit trail). No page needs JavaScript. One signs in with an API token,
//! or through an OpenID Connect provider ([`oidc`]), which yields a short-lived
//! token of the organisation and role one's groups map to.
//!
//! Security: the session cookie is httpOnly, `SameSite=Strict`, limited to
//! `/console` (and `Secure` behind an https public URL); every form carries a
//! CSRF token derived from the session; every answer carries a strict CSP
//! (no scripts, no framing) and `Cache-Control: no-store`.

mod apps;
mod catalog;
mod charts;
mod client;
mod endpoints;
mod event_types;
mod html;
mod messages;
pub mod oidc;
mod session;
mod shaping;
mod tasks;
mod testing;
mod theme;

use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

pub use client::Api;

/// What the console needs: the API router it calls, whether cookies must be
/// `Secure` (the public URL is https), who may frame the portal, and single
/// sign-on when it is set up.
#[derive(Clone)]
pub struct Console {
    pub api: Api,
    pub secure_cookies: bool,
    /// The portal's CSP `frame-ancestors` (e.g. `https://app.example.com`);
    /// `'none'` forbids embedding it.
    pub portal_frame_ancestors: String,
    /// Single sign-on with an OpenID Connect provider, when set up.
    pub sso: Option<std::sync::Arc<oidc::Sso>>,
}

pub fn router(console: Console) -> Router {
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/apps") }))
        .route("/console/style.css", get(html::stylesheet))
        .route("/console/login", get(session::login_page).post(session::login))
        .route("/console/logout", post(session::logout))
        .route("/console/oidc/login", get(oidc::login))
        .route("/console/oidc/callback", get(oidc::callback))
        .route("/console/apps", get(apps::list).post(apps::create))
        .route("/console/apps/find", get(apps::find))
        .route("/console/apps/{app}/edit", post(apps::rename))
        .route("/console/event-types", post(event_types::create))
        .route("/console/event-types/{name}", get(event_types::edit_page).post(event_types::save))
        .route("/console/event-types/{name}/archive", post(event_types::archive))
        .route("/console/audit", get(catalog::audit))
        .route("/console/sources", get(catalog::sources))
        .route("/console/sources/{src}", get(catalog::source))
        .merge(application_routes("/console"))
        // The application portal: the same pages for one application, opened
        // through a portal link.
        .route("/portal/style.css", get(html::stylesheet))
        .route("/portal/theme.css", get(theme::stylesheet))
        .route("/portal/login", get(session::portal_login))
        .route("/portal/logout", post(session::portal_logout))
        .route("/portal/apps", get(apps::list))
        .merge(application_routes("/portal"))
        .layer(axum::middleware::from_fn_with_state(console.clone(), security_headers))
        .with_state(console)
}

/// One application's pages, under `/console` or `/portal`.
fn application_routes(base: &str) -> Router<Console> {
    let app = format!("{base}/apps/{{app}}");
    let ep = format!("{app}/endpoints/{{ep}}");
    Router::new()
        .route(&app, get(apps::detail))
        .route(&format!("{app}/endpoints"), post(endpoints::create))
        .route(&ep, get(endpoints::detail))
        .route(&format!("{ep}/rotate"), post(endpoints::rotate))
        .route(&format!("{ep}/health"), get(endpoints::health))
        .route(&format!("{ep}/toggle"), post(endpoints::toggle))
        .route(&format!("{ep}/test"), post(endpoints::send_test))
        .route(&format!("{ep}/testing"), get(testing::form).post(testing::submit))
        .route(&format!("{ep}/edit"), post(endpoints::edit))
        .route(&format!("{ep}/headers"), post(endpoints::set_headers))
        .route(&format!("{ep}/filter"), post(shaping::set_filter))
        .route(&format!("{ep}/connector"), post(shaping::use_connector))
        .route(&format!("{ep}/connector/remove"), post(shaping::remove_connector))
        .route(&format!("{ep}/recover"), post(tasks::recover))
        .route(&format!("{ep}/replay-missing"), post(tasks::replay_missing))
        .route(&format!("{app}/msgs"), get(messages::list))
        .route(&format!("{app}/msgs/{{msg}}"), get(messages::detail))
        .route(&format!("{app}/msgs/{{msg}}/resend/{{ep}}"), post(messages::resend))
        .route(&format!("{app}/msgs/{{msg}}/attempts/{{attempt}}"), get(messages::attempt))
        .route(&format!("{base}/tasks/{{task}}"), get(tasks::task))
        .route(&format!("{base}/event-types"), get(event_types::list))
}

/// A form posted from another site's page (its `Origin` is not this host) is
/// refused, signing in included; then the headers of every console answer.
async fn security_headers(
    axum::extract::State(console): axum::extract::State<Console>,
    req: Request,
    next: Next,
) -> Response {
    let portal = req.uri().path().starts_with("/portal");
    if req.method() == axum::http::Method::POST && !same_origin(req.headers()) {
        let refused = (axum::http::StatusCode::FORBIDDEN, "forms are taken from this console's own pages only");
        return refused.into_response();
    }
    let mut resp = next.run(req).await.into_response();
    let h = resp.headers_mut();
    let frame_ancestors = if portal { console.portal_frame_ancestors.as_str() } else { "'none'" };
    // A portal's theme may load its logo, font stylesheet and fonts from the
    // organisation's https hosts; scripts stay forbidden everywhere.
    let assets = if portal {
        "style-src 'self' https:; img-src 'self' data: https:; font-src https:"
    } else {
        "style-src 'self'; img-src 'self' data:"
    };
    let csp =
        format!("default-src 'none'; {assets}; form-action 'self'; frame-ancestors {frame_ancestors}; base-uri 'none'");
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // `same-origin`: other sites get no referrer, and the console's own form
    // posts carry their real `Origin` (with `no-referrer` browsers send `null`).
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !portal {
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// The browser says the form is this site's own (`Sec-Fetch-Site`); or, from a
/// browser that does not say, no `Origin` (not a browser, or an old one: the
/// CSRF token still guards) or one naming this host.
fn same_origin(h: &axum::http::HeaderMap) -> bool {
    if let Some(site) = h.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return site == "same-origin";
    }
    let Some(origin) = h.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else { return true };
    let host = h.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    let bare = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
    !host.is_empty() && bare == Some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_come_from_this_host_only() {
        let mut h = axum::http::HeaderMap::new();
        assert!(same_origin(&h));
        h.insert(header::HOST, HeaderValue::from_static("hookd.example.com"));
        h.insert(header::ORIGIN, HeaderValue::from_static("https://hookd.example.com"));
        assert!(same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert!(!same_origin(&h));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&h));
        // What Chromium sends for the console's own form.
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(same_origin(&h));
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        h.insert(header::ORIGIN, HeaderValue::from_static("https://hookd.example.com"));
        assert!(!same_origin(&h));
    }
}
