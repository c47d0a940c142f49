//! Signing in and out. The session cookie holds the API token itself (the
//! console keeps no state of its own, so any node serves any session); it is
//! httpOnly, `SameSite=Strict` and sent only to `/console`. Forms carry a CSRF
//! token derived from the session token.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use axum::Form;
use maud::html;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::html::{page_signed_out, Flash};
use crate::Console;

pub(crate) const COOKIE: &str = "hookd_console";
/// The application portal's session cookie (an app-scoped portal token).
const PORTAL_COOKIE: &str = "hookd_portal";

/// A signed-in browser: its token and address.
pub struct Session {
    pub token: String,
    pub peer: Option<SocketAddr>,
    /// The token's role (`admin`, `read-only`, `portal`…).
    pub role: String,
    /// Where its pages are: `/console`, or `/portal` for a portal session.
    pub base: &'static str,
    /// A portal session's one application.
    pub app: Option<String>,
    /// A portal session's theme: its organisation's portal settings
    /// (`EnvironmentSettingsOut`); `Null` in the console.
    pub theme: serde_json::Value,
    /// A portal session's capabilities (`None`: an organisation token's, all).
    pub capabilities: Option<Vec<String>>,
}

impl Session {
    /// The CSRF token every form of this session carries.
    pub fn csrf(&self) -> String {
        csrf_of(&self.token)
    }

    /// Refuses a form whose CSRF token is not this session's.
    pub fn check(&self, given: &str) -> Result<(), ForgedForm> {
        if bool::from(self.csrf().as_bytes().ct_eq(given.as_bytes())) {
            Ok(())
        } else {
            Err(ForgedForm)
        }
    }
}

/// A form without this session's CSRF token.
pub struct ForgedForm;

impl IntoResponse for ForgedForm {
    fn into_response(self) -> Response {
        let why = "the form has expired or did not come from this console: reload the page";
        (StatusCode::FORBIDDEN, why).into_response()
    }
}

fn csrf_of(token: &str) -> String {
    let digest = Sha256::digest(format!("hookd-console-csrf:{token}").as_bytes());
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// The value of the request's cookie `name`, as sent.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn cookie_token(headers: &HeaderMap, name: &str) -> Option<String> {
    cookie(headers, name).filter(|t| valid_token(t))
}

/// Token characters only: nothing that could end a header or a cookie.
fn valid_token(t: &str) -> bool {
    !t.is_empty() && t.len() <= 256 && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
}

impl FromRequestParts<Console> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
        let portal = parts.uri.path().starts_with("/portal/");
        let cookie = if portal { PORTAL_COOKIE } else { COOKIE };
        let Some(token) = cookie_token(&parts.headers, cookie) else {
            return Err(if portal { portal_ended() } else { Redirect::to("/console/login").into_response() });
        };
        // A revoked or expired token ends the session.
        let me = console.api.call(&token, peer, Method::GET, "/api/v1/auth/whoami", None).await;
        if !me.ok() || (me.body["role"] == "portal") != portal {
            return Err(if portal { portal_ended() } else { Redirect::to("/console/login?expired=1").into_response() });
        }
        let role = me.body["role"].as_str().unwrap_or_default().to_string();
        let app = me.body["appId"].as_str().map(str::to_string);
        let theme = if portal {
            console.api.call(&token, peer, Method::GET, "/api/v1/environment/settings", None).await.body
        } else {
            serde_json::Value::Null
        };
        let capabilities = me.body["capabilities"]
            .as_array()
            .map(|caps| caps.iter().filter_map(|c| c.as_str().map(str::to_string)).collect());
        Ok(Session { token, peer, role, base: if portal { "/portal" } else { "/console" }, app, theme, capabilities })
    }
}

pub async fn login_page(State(console): State<Console>, uri: axum::http::Uri) -> Response {
    let expired = uri.query().is_some_and(|q| q.contains("expired"));
    let flash = expired.then(|| Flash::error("Your session has ended: sign in again."));
    login_form(&console, StatusCode::OK, flash)
}

fn login_form(console: &Console, status: StatusCode, flash: Option<Flash>) -> Response {
    let body = html! {
        h1 { "Sign in to hookd" }
        @if console.sso.is_some() {
            p class="card" {
                a href="/console/oidc/login" { "Sign in with single sign-on" }
                span class="help" { " (your organisation's identity provider)" }
            }
        }
        form method="post" action="/console/login" class="card" {
            label for="token" { "API token" }
            input id="token" name="token" type="password" autocomplete="current-password" required
                placeholder="sk_…" aria-describedby="token-help";
            p id="token-help" class="help" {
                "An organisation token (admin or read-only). The first start of hookd prints one; "
                code { "hookd token create" } " makes more."
            }
            button type="submit" { "Sign in" }
        }
    };
    (status, page_signed_out("/console", "Sign in", flash, body)).into_response()
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
}

pub async fn login(
    State(console): State<Console>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    Form(form): Form<LoginForm>,
) -> Response {
    let token = form.token.trim().to_string();
    if !valid_token(&token) {
        return login_form(&console, StatusCode::UNAUTHORIZED, Some(Flash::error("That is not an API token.")));
    }
    let me = console.api.call(&token, peer.map(|c| c.0 .0), Method::GET, "/api/v1/auth/whoami", None).await;
    if !me.ok() {
        let flash = Flash::error("That token is not valid (or has expired).");
        return login_form(&console, StatusCode::UNAUTHORIZED, Some(flash));
    }
    if me.body["role"] == "portal" {
        let msg = "An application portal token opens the portal, not the console.";
        return login_form(&console, StatusCode::FORBIDDEN, Some(Flash::error(msg)));
    }
    let secure = if console.secure_cookies { "; Secure" } else { "" };
    let cookie = format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/console{secure}");
    let mut resp = Redirect::to("/console/apps").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

/// A portal page without a live portal session: the link has to be opened again.
fn portal_ended() -> Response {
    let body = html! {
        h1 { "This portal session has ended" }
        p { "Open the portal from your provider's dashboard again to continue." }
    };
    (StatusCode::UNAUTHORIZED, page_signed_out("/portal", "Session ended", None, body)).into_response()
}

/// `GET /portal/login?token=…`: a portal link's one-time token exchanged for a
/// portal session, whose cookie works inside another site's iframe
/// (`SameSite=None; Secure; Partitioned`) when hookd is served over https.
pub async fn portal_login(
    State(console): State<Console>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    let peer = peer.map(|c| c.0 .0);
    let once = q.get("token").map(String::as_str).unwrap_or("");
    let body = serde_json::json!({ "oneTimeToken": once });
    let exchanged = console.api.call("", peer, Method::POST, "/api/v1/auth/one-time-token", Some(&body)).await;
    if !exchanged.ok() && exchanged.status != StatusCode::UNAUTHORIZED {
        // Busy or unavailable: the link was not used; it can be opened again.
        let body = html! { h1 { "The portal could not open" } p { (exchanged.detail()) ". Try the link again." } };
        return (exchanged.status, page_signed_out("/portal", "Try again", None, body)).into_response();
    }
    let token = exchanged.body["token"].as_str().filter(|t| exchanged.ok() && valid_token(t)).map(str::to_string);
    let Some(token) = token else {
        let body = html! {
            h1 { "This portal link has been used or has expired" }
            p { "A portal link opens once, within 10 minutes. Open the portal from your provider's dashboard again." }
        };
        return (StatusCode::UNAUTHORIZED, page_signed_out("/portal", "Link expired", None, body)).into_response();
    };
    let me = console.api.call(&token, peer, Method::GET, "/api/v1/auth/whoami", None).await;
    let Some(app) = me.body["appId"].as_str().filter(|_| me.ok()) else { return portal_ended() };
    let cookie = format!("{PORTAL_COOKIE}={token}; HttpOnly; Path=/portal; {}", portal_same_site(&console));
    let mut resp = Redirect::to(&format!("/portal/apps/{}", crate::client::seg(app))).into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

/// The portal cookie's attributes: framable cross-site over https.
fn portal_same_site(console: &Console) -> &'static str {
    if console.secure_cookies {
        "SameSite=None; Secure; Partitioned"
    } else {
        "SameSite=Lax"
    }
}

pub async fn portal_logout(State(console): State<Console>, session: Session, Form(form): Form<CsrfForm>) -> Response {
    if let Err(r) = session.check(&form.csrf) {
        return r.into_response();
    }
    // The same attributes as when it was set, or a framed browser keeps it.
    let clear = format!("{PORTAL_COOKIE}=; HttpOnly; Path=/portal; {}; Max-Age=0", portal_same_site(&console));
    let mut resp = portal_ended();
    if let Ok(v) = HeaderValue::from_str(&clear) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

pub async fn logout(State(console): State<Console>, session: Session, Form(form): Form<CsrfForm>) -> Response {
    if let Err(r) = session.check(&form.csrf) {
        return r.into_response();
    }
    // A session that single sign-on started ends its token too: it was made
    // for this browser alone. A pasted API token lives on.
    if let Some(sso) = &console.sso {
        sso.end_session(&session.token, session.peer).await;
    }
    let mut resp = Redirect::to("/console/login").into_response();
    let clear = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/console; Max-Age=0");
    if let Ok(v) = HeaderValue::from_str(&clear) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_token_characters_make_a_cookie() {
        assert!(valid_token("sk_abc-DEF.123"));
        assert!(!valid_token("sk_abc; Path=/"));
        assert!(!valid_token("sk\r\nSet-Cookie: x"));
        assert!(!valid_token(""));
    }

    #[test]
    fn the_csrf_token_is_the_sessions_own() {
        let session = |t: &str| Session {
            token: t.into(),
            peer: None,
            role: "admin".into(),
            base: "/console",
            app: None,
            theme: serde_json::Value::Null,
            capabilities: None,
        };
        let (a, b) = (session("sk_a"), session("sk_b"));
        assert!(a.check(&a.csrf()).is_ok());
        assert!(a.check(&b.csrf()).is_err());
        assert!(a.check("").is_err());
    }
}
