//! The browser's side of a sign-in: off to the provider with a sealed state
//! cookie, back through the callback, then a console session or a page that
//! says why not.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use maud::html;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::provider::{printable, Client, Failure};
use super::{check_issuer, Grant, SessionError, Settings, SsoServer};
use crate::html::page_signed_out;
use crate::Console;

/// The cookie that holds a sign-in in progress (sealed).
const STATE_COOKIE: &str = "hookd_oidc";
/// What the sealed state is bound to: it opens as this cookie only.
const SEAL_CONTEXT: &str = "console_oidc_state";
/// How long a sign-in may take at the provider.
const SIGN_IN_WINDOW: Duration = Duration::from_secs(600);

/// Single sign-on, set up: the settings, the server's part, and the provider.
pub struct Sso {
    settings: Settings,
    server: Arc<dyn SsoServer>,
    provider: Client,
}

impl Sso {
    /// `public_url`: this server as browsers reach it; the provider sends them
    /// back to `{public_url}/console/oidc/callback`.
    pub fn new(settings: Settings, public_url: &str, server: Arc<dyn SsoServer>) -> Result<Sso, String> {
        check_issuer(&settings.issuer)?;
        let redirect_uri = format!("{}/console/oidc/callback", public_url.trim_end_matches('/'));
        let provider = Client::new(&settings.issuer, &settings.client_id, &settings.client_secret, &redirect_uri)?;
        Ok(Sso { settings, server, provider })
    }

    /// What to register at the provider as this client's redirect URI.
    pub fn redirect_uri(&self) -> &str {
        self.provider.redirect_uri()
    }

    /// Ends a session that single sign-on started (sign-out); other sessions' tokens stay.
    pub async fn end_session(&self, token: &str, peer: Option<SocketAddr>) {
        self.server.end_session(token, peer.map(|p| p.ip())).await;
    }

    /// The rest of the flow once the provider sent the browser back: the
    /// state checked, the code exchanged, the ID token verified, a mapping found.
    async fn finish(&self, headers: &HeaderMap, q: &CallbackQuery) -> Result<Grant, Refusal> {
        let pending = self.pending(headers)?;
        let given = q.state.as_deref().unwrap_or("");
        if !bool::from(given.as_bytes().ct_eq(pending.state.as_bytes())) {
            return Err(Refusal::BadState("the state does not match this browser's sign-in"));
        }
        if let Some(error) = &q.error {
            return Err(Refusal::Denied(format!("it answered `{}`", printable(error))));
        }
        let code = q.code.as_deref().filter(|c| !c.is_empty()).ok_or(Refusal::BadState("no code came back"))?;
        let id_token = self.provider.exchange(code, &pending.verifier).await?;
        let claims = self.provider.verify(&id_token, &pending.nonce).await?;
        // An email names the person only when the provider vouches for it.
        let claim = |c: &str| claims.get(c).and_then(Value::as_str).filter(|s| !s.is_empty());
        let verified = claims.get("email_verified").is_some_and(|v| v == true || v == "true");
        let who = match (claim("email"), claim("sub")) {
            (Some(email), _) if verified => email.to_string(),
            (Some(email), Some(sub)) => format!("{sub} ({email}, unverified)"),
            (None, Some(sub)) => sub.to_string(),
            (Some(email), None) => format!("{email} (unverified)"),
            (None, None) => "unknown".to_string(),
        };
        let who = who.chars().filter(|c| !c.is_control()).take(200).collect::<String>();
        let groups = groups(&claims, &self.settings.groups_claim);
        let Some(m) = self.settings.mappings.iter().find(|m| groups.contains(&m.group)) else {
            return Err(Refusal::NotMapped(who));
        };
        Ok(Grant { org: m.org.clone(), role: m.role, who, ttl: self.settings.session_ttl })
    }

    /// The sign-in this browser started: its sealed cookie, opened and not too old.
    fn pending(&self, headers: &HeaderMap) -> Result<Pending, Refusal> {
        let stale = Refusal::BadState("no sign-in was started in this browser, or it took too long");
        let altered = Refusal::BadState("this browser's sign-in state was altered");
        let sealed = crate::session::cookie(headers, STATE_COOKIE).ok_or(stale)?;
        let Some(opened) = self.server.open(&sealed, SEAL_CONTEXT) else { return Err(altered) };
        let Ok(pending) = serde_json::from_str::<Pending>(&opened) else { return Err(altered) };
        if now_secs().saturating_sub(pending.at) > SIGN_IN_WINDOW.as_secs() {
            return Err(Refusal::BadState("the sign-in took too long"));
        }
        Ok(pending)
    }
}

/// The user's groups: the claim as a list of strings, or one string. A
/// claim that is not at the top level is looked up as a dotted path.
fn groups(claims: &Map<String, Value>, claim: &str) -> Vec<String> {
    let found = claims.get(claim).or_else(|| {
        let mut parts = claim.split('.');
        let first = claims.get(parts.next()?)?;
        parts.try_fold(first, |v, p| v.get(p))
    });
    match found {
        Some(Value::String(g)) => vec![g.clone()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

/// A sign-in in progress, as its sealed cookie holds it.
#[derive(Serialize, Deserialize)]
struct Pending {
    state: String,
    nonce: String,
    verifier: String,
    /// When it started (Unix seconds).
    at: u64,
}

impl Pending {
    fn new() -> Pending {
        Pending { state: random(), nonce: random(), verifier: random(), at: now_secs() }
    }

    /// The PKCE S256 challenge of the verifier (RFC 7636 §4.2).
    fn challenge(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(self.verifier.as_bytes()))
    }
}

/// 256 random bits, base64url: 43 characters (a PKCE verifier's length is 43 to 128).
fn random() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

pub(super) fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Why a sign-in did not finish, and the status it answers.
#[derive(Debug)]
enum Refusal {
    /// 400: no sign-in of this browser, or the state does not match.
    BadState(&'static str),
    /// 502: the provider could not be asked, or answered nonsense.
    Provider(String),
    /// 401: the provider refused (an `error` back, or the code not accepted).
    Denied(String),
    /// 401: the ID token does not verify.
    InvalidToken(String),
    /// 403: none of the user's groups is mapped.
    NotMapped(String),
    /// 403: the mapping names an organisation that does not exist.
    UnknownOrg(String),
    /// 503: the store is unavailable.
    Unavailable,
}

impl From<Failure> for Refusal {
    fn from(f: Failure) -> Refusal {
        match f {
            Failure::Unreachable(why) => Refusal::Provider(why),
            Failure::Refused(why) => Refusal::Denied(why),
            Failure::InvalidToken(why) => Refusal::InvalidToken(why),
        }
    }
}

impl Refusal {
    fn page(&self) -> Response {
        let (status, title, text) = match self {
            Refusal::BadState(why) => (
                StatusCode::BAD_REQUEST,
                "This sign-in cannot be finished",
                format!("{}. Start the sign-in again from this browser.", capitalised(why)),
            ),
            Refusal::Provider(why) => (
                StatusCode::BAD_GATEWAY,
                "The identity provider could not be used",
                format!("The identity provider failed: {why}. Try again in a moment, or sign in with an API token."),
            ),
            Refusal::Denied(why) => (
                StatusCode::UNAUTHORIZED,
                "The identity provider did not sign you in",
                format!("The identity provider refused the sign-in: {why}."),
            ),
            Refusal::InvalidToken(why) => (
                StatusCode::UNAUTHORIZED,
                "The identity provider's answer was not accepted",
                format!("Its ID token is not valid: {why}."),
            ),
            Refusal::NotMapped(who) => (
                StatusCode::FORBIDDEN,
                "No organisation for this account",
                format!(
                    "Your account ({who}) is not mapped to any organisation. Ask the operator of this hookd server \
                     to map one of your groups."
                ),
            ),
            Refusal::UnknownOrg(org) => (
                StatusCode::FORBIDDEN,
                "No organisation for this account",
                format!("Your account is mapped to the organisation {org}, which does not exist on this server."),
            ),
            Refusal::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "The sign-in could not be finished",
                "The database is unavailable. Try again in a moment.".to_string(),
            ),
        };
        let body = html! {
            h1 { (title) }
            p { (text) }
            p { a href="/console/login" { "Back to sign-in" } }
        };
        (status, page_signed_out("/console", title, None, body)).into_response()
    }
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

fn not_set_up() -> Response {
    let body = html! {
        h1 { "Single sign-on is not set up" }
        p { "This hookd server has no identity provider. " a href="/console/login" { "Sign in with an API token" } "." }
    };
    (StatusCode::NOT_FOUND, page_signed_out("/console", "Single sign-on", None, body)).into_response()
}

fn with_cookie(mut resp: Response, cookie: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

fn secure(console: &Console) -> &'static str {
    if console.secure_cookies {
        "; Secure"
    } else {
        ""
    }
}

/// `GET /console/oidc/login`: off to the provider's authorization endpoint.
pub(crate) async fn login(State(console): State<Console>) -> Response {
    let Some(sso) = &console.sso else { return not_set_up() };
    let endpoints = match sso.provider.endpoints().await {
        Ok(e) => e,
        Err(failure) => {
            tracing::warn!(reason = ?failure, "single sign-on could not start");
            return Refusal::from(failure).page();
        }
    };
    let Ok(mut url) = url::Url::parse(&endpoints.authorization_endpoint) else {
        return Refusal::Provider("its authorization endpoint is not a URL".into()).page();
    };
    let pending = Pending::new();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", sso.provider.client_id())
        .append_pair("redirect_uri", sso.provider.redirect_uri())
        .append_pair("scope", &sso.settings.scopes)
        .append_pair("state", &pending.state)
        .append_pair("nonce", &pending.nonce)
        .append_pair("code_challenge", &pending.challenge())
        .append_pair("code_challenge_method", "S256");
    let Ok(location) = HeaderValue::from_str(url.as_str()) else {
        return Refusal::Provider("its authorization endpoint is not a URL".into()).page();
    };
    let Ok(plain) = serde_json::to_string(&pending) else { return Refusal::Unavailable.page() };
    // Lax, not Strict: the provider's redirect back is a top-level navigation
    // from another site, which must carry it.
    let cookie = format!(
        "{STATE_COOKIE}={}; HttpOnly; SameSite=Lax; Path=/console/oidc; Max-Age={}{}",
        sso.server.seal(&plain, SEAL_CONTEXT),
        SIGN_IN_WINDOW.as_secs(),
        secure(&console)
    );
    with_cookie((StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response(), &cookie)
}

#[derive(Deserialize)]
pub(crate) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /console/oidc/callback`: the provider sent the browser back.
pub(crate) async fn callback(
    State(console): State<Console>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Query(q): Query<CallbackQuery>,
) -> Response {
    let Some(sso) = &console.sso else { return not_set_up() };
    let address = peer.map(|p| p.0 .0.ip());
    let started = match sso.finish(&headers, &q).await {
        Ok(grant) => sso.server.start_session(&grant, address).await.map_err(|e| match e {
            SessionError::UnknownOrg => Refusal::UnknownOrg(grant.org.clone()),
            SessionError::Unavailable => Refusal::Unavailable,
        }),
        Err(refusal) => Err(refusal),
    };
    // The sign-in is used up, whatever came of it.
    let spent = format!("{STATE_COOKIE}=; HttpOnly; SameSite=Lax; Path=/console/oidc; Max-Age=0{}", secure(&console));
    let token = match started {
        Ok(token) => token,
        Err(refusal) => {
            match &refusal {
                Refusal::NotMapped(who) => tracing::info!(%who, "single sign-on: no mapping for the account's groups"),
                other => tracing::warn!(reason = ?other, "single sign-on refused"),
            }
            return with_cookie(refusal.page(), &spent);
        }
    };
    // The session cookie is SameSite=Strict, and browsers leave it off every
    // request of a redirect chain that began on another site (the provider's):
    // a redirect to /console/apps would arrive signed out. So this page answers
    // 200 and moves on itself (Refresh), a navigation that starts here.
    let session =
        format!("{}={token}; HttpOnly; SameSite=Strict; Path=/console{}", crate::session::COOKIE, secure(&console));
    let body = html! {
        h1 { "Signed in" }
        p { a href="/console/apps" { "Continue to the console" } }
    };
    let page = (
        StatusCode::OK,
        [(header::REFRESH, HeaderValue::from_static("0; url=/console/apps"))],
        page_signed_out("/console", "Signed in", None, body),
    )
        .into_response();
    with_cookie(with_cookie(page, &spent), &session)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_come_from_a_list_a_string_or_a_nested_claim() {
        let claims: Map<String, Value> = serde_json::from_value(serde_json::json!({
            "groups": ["a", "b", 3],
            "role": "ops",
            "realm_access": { "roles": ["admins"] },
            "urn:x.y": ["dotted"],
        }))
        .unwrap();
        assert_eq!(groups(&claims, "groups"), ["a", "b"]);
        assert_eq!(groups(&claims, "role"), ["ops"]);
        assert_eq!(groups(&claims, "realm_access.roles"), ["admins"]);
        assert_eq!(groups(&claims, "urn:x.y"), ["dotted"]);
        assert!(groups(&claims, "missing").is_empty());
    }

    #[test]
    fn the_pkce_challenge_is_s256_of_the_verifier() {
        // RFC 7636 appendix B.
        let p = Pending {
            state: String::new(),
            nonce: String::new(),
            verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".into(),
            at: 0,
        };
        assert_eq!(p.challenge(), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        assert_eq!(random().len(), 43);
    }
}
