//! Bearer-token authentication and the permission extractors. Tokens are stored
//! as SHA-256 hashes; a token is either an organisation admin token or scoped to
//! one application (app portal access). A poller token (`sk_poll_…`, made per
//! poller sink) is narrower still: it reads its one sink and moves that sink's
//! consumers, and acts as a portal token with no capabilities everywhere
//! else (403 on its application, 404 beyond). An MCP token (`mcp_…`) reads
//! and makes attempts, nothing else ([`mcp`]). A token never sees another
//! organisation's objects: lookups are scoped by organisation and answer 404.
//!
//! Handlers state what they need in their signature, so a forgotten check is a
//! compile error rather than a leak: [`OrgAuth`] for organisation-wide actions
//! (an app-scoped token gets 403 on its own application, 404 elsewhere), and
//! [`AppAuth`] for the application named in the path, loaded and checked.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::extract::MatchedPath;
use axum::http::request::Parts;
use axum::http::Method;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
pub use hookd_store::TokenRole;
use hookd_store::{ApiToken, Application, PollerToken};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::AppState;

mod mcp;

/// How long a verified token is trusted without asking the store again.
const CACHE_TTL: Duration = Duration::from_secs(10);
const CACHE_MAX: usize = 10_000;

/// Who is calling.
#[derive(Debug, Clone)]
pub struct Auth {
    pub org_id: String,
    /// Set for a token that may only act on this application.
    pub app_id: Option<String>,
    /// The token's id (`tok_…`), or `bootstrap` for `--admin-token`.
    pub token_id: String,
    pub role: TokenRole,
    /// What a portal token may do on its application (everything for others).
    pub capabilities: Capabilities,
    pub session_id: Option<String>,
    /// Why a portal token may not call this route on its own application, if
    /// it may not: refused (403) once the application is known to be its own,
    /// so a foreign application still answers 404.
    pub denied: Option<String>,
    /// Set for a poller token: the one poller sink it may read (the poller
    /// routes check it; any other sink is not found).
    pub poller_sink: Option<String>,
}

impl Auth {
    /// Refuses (as not found) an application outside an app-scoped token's
    /// reach, and (403) a route its capabilities do not cover.
    pub fn check_app(&self, app_id: &str) -> Result<(), ApiError> {
        match &self.app_id {
            Some(only) if only != app_id => Err(ApiError::NotFound),
            _ => match &self.denied {
                Some(why) => Err(ApiError::Forbidden(why.clone())),
                None => Ok(()),
            },
        }
    }

    pub fn is_server_admin(&self) -> bool {
        self.role == TokenRole::Server
    }

    /// A poller token calling `route`: to the rest of the API, a portal token
    /// of its application with no capabilities.
    fn poller(t: PollerToken, route: &str) -> Auth {
        Auth {
            org_id: t.org_id,
            app_id: Some(t.app_id),
            token_id: t.id,
            role: TokenRole::Portal,
            capabilities: Capabilities::of(&[]),
            session_id: None,
            denied: poller_denial(route),
            poller_sink: Some(t.sink_id),
        }
    }
}

/// The rights of an application portal token (Svix's `AppPortalCapability`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// Read everything but endpoint secrets.
    ViewBase,
    ViewEndpointSecret,
    /// Rotate (and read) endpoint secrets.
    ManageEndpointSecret,
    ManageTransformations,
    /// Send examples, resend, recover and replay.
    CreateAttempts,
    /// Create, change and delete endpoints, secrets included.
    ManageEndpoint,
}

impl Capability {
    pub const ALL: [Capability; 6] = [
        Capability::ViewBase,
        Capability::ViewEndpointSecret,
        Capability::ManageEndpointSecret,
        Capability::ManageTransformations,
        Capability::CreateAttempts,
        Capability::ManageEndpoint,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Capability::ViewBase => "ViewBase",
            Capability::ViewEndpointSecret => "ViewEndpointSecret",
            Capability::ManageEndpointSecret => "ManageEndpointSecret",
            Capability::ManageTransformations => "ManageTransformations",
            Capability::CreateAttempts => "CreateAttempts",
            Capability::ManageEndpoint => "ManageEndpoint",
        }
    }

    pub fn parse(s: &str) -> Option<Capability> {
        Capability::ALL.into_iter().find(|c| c.name() == s)
    }
}

/// A set of [`Capability`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities(u8);

impl Capabilities {
    pub const fn all() -> Self {
        Capabilities(0b11_1111)
    }

    pub fn of(caps: &[Capability]) -> Self {
        Capabilities(caps.iter().fold(0, |bits, c| bits | 1 << *c as u8))
    }

    pub fn contains(self, c: Capability) -> bool {
        self.0 & (1 << c as u8) != 0
    }

    pub fn names(self) -> Vec<String> {
        Capability::ALL.into_iter().filter(|c| self.contains(*c)).map(|c| c.name().to_string()).collect()
    }

    /// Read from stored names; `None` (tokens made before capabilities) is all.
    pub fn stored(names: Option<&[String]>) -> Self {
        match names {
            None => Capabilities::all(),
            Some(names) => Capabilities::of(&names.iter().filter_map(|n| Capability::parse(n)).collect::<Vec<_>>()),
        }
    }
}

/// What a poller token starts with (as Svix's); only such a token is looked up
/// among poller tokens.
pub const POLLER_TOKEN_PREFIX: &str = "sk_poll_";
/// The routes that show and rotate a sink's poller token.
const POLLER_TOKEN_ROUTE: &str = "/api/v1/auth/app/{app_id}/poller/";

/// Why a poller token may not call `route`, if it may not: it reads its sink
/// (v1 and v2 polls) and moves its consumers (seek, commit), nothing else. Its
/// own sink is checked by the poller routes.
fn poller_denial(route: &str) -> Option<String> {
    const READS: [&str; 2] = ["/api/v1/app/{app_id}/poller/", "/api/v1/app/{app_id}/polling-endpoint/"];
    if READS.iter().any(|r| route.starts_with(r)) {
        return None;
    }
    Some("a poller token can only read its polling endpoint".to_string())
}

/// Why a portal token holding `caps` may not call `method` on `route` (the
/// router's path template), if it may not. What no capability names is
/// refused: a new route is closed to portal tokens until it is listed here.
fn portal_denial(method: &Method, route: &str, caps: Capabilities) -> Option<String> {
    use Capability::*;
    const APP: &str = "/api/v1/app/{app_id}";
    const EP: &str = "/api/v1/app/{app_id}/endpoint/{endpoint_id}";
    let attempts = ["/send-example", "/recover", "/replay-missing", "/bulk-replay", "/resend"];
    // Reading a poller sink and moving one's consumers in it are reads; the
    // sinks themselves are managed as endpoints are, their tokens as secrets.
    let poll = [format!("{APP}/poller/"), format!("{APP}/polling-endpoint/")];
    let sinks = [format!("{APP}/stream/sink"), format!("{APP}/destination")];
    let need: &[Capability] = if route.starts_with(POLLER_TOKEN_ROUTE) {
        if *method == Method::GET {
            &[ViewEndpointSecret, ManageEndpointSecret, ManageEndpoint]
        } else {
            &[ManageEndpointSecret, ManageEndpoint]
        }
    } else if !route.starts_with(APP) && !route.starts_with("/api/v1/event-type") {
        // Organisation-wide routes (background tasks, whoami) read; OrgAuth
        // refuses the rest.
        &[ViewBase]
    } else if *method == Method::GET || *method == Method::HEAD {
        if route == format!("{EP}/secret") {
            &[ViewEndpointSecret, ManageEndpointSecret, ManageEndpoint]
        } else {
            &[ViewBase]
        }
    } else if *method == Method::POST && route == format!("{EP}/secret/rotate") {
        &[ManageEndpointSecret, ManageEndpoint]
    } else if *method == Method::POST && attempts.iter().any(|a| route.ends_with(a)) {
        &[CreateAttempts]
    } else if route.contains("/transformation") {
        &[ManageTransformations]
    } else if route == format!("{APP}/endpoint") || route.starts_with(EP) {
        &[ManageEndpoint]
    } else if poll.iter().any(|p| route.starts_with(p.as_str())) {
        &[ViewBase]
    } else if sinks.iter().any(|p| route.starts_with(p.as_str())) {
        &[ManageEndpoint]
    } else {
        &[]
    };
    if need.iter().any(|c| caps.contains(*c)) {
        return None;
    }
    Some(match need {
        [] => "an application-scoped token cannot do this; it needs an organisation token".to_string(),
        [one] => format!("this token lacks the `{}` capability", one.name()),
        many => format!(
            "this token needs one of the capabilities {}",
            many.iter().map(|c| format!("`{}`", c.name())).collect::<Vec<_>>().join(", ")
        ),
    })
}

/// An organisation token: may do anything in its organisation (reads only,
/// for a read-only token).
#[derive(Debug, Clone)]
pub struct OrgAuth {
    pub org_id: String,
    pub token_id: String,
    pub role: TokenRole,
}

impl OrgAuth {
    pub fn as_auth(&self) -> Auth {
        Auth {
            org_id: self.org_id.clone(),
            app_id: None,
            token_id: self.token_id.clone(),
            role: self.role,
            capabilities: Capabilities::all(),
            session_id: None,
            denied: None,
            poller_sink: None,
        }
    }
}

/// A server admin token: the bootstrap token, or one made by `hookd token
/// create` without `--org`. Organisation tokens get 403, portal tokens 404.
#[derive(Debug, Clone)]
pub struct ServerAuth(pub Auth);

impl FromRequestParts<AppState> for ServerAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let auth = Auth::from_request_parts(parts, state).await?;
        match auth.role {
            TokenRole::Server => Ok(ServerAuth(auth)),
            TokenRole::Portal => Err(ApiError::NotFound),
            TokenRole::Admin | TokenRole::ReadOnly => {
                Err(ApiError::Forbidden("this needs a server admin token (`hookd token create` without --org)".into()))
            }
        }
    }
}

/// A caller allowed on the application named in the path (`{app_id}`, by id or
/// uid): an organisation token, or a token scoped to that application.
#[derive(Debug, Clone)]
pub struct AppAuth {
    pub auth: Auth,
    pub app: Application,
}

impl AppAuth {
    pub fn org_id(&self) -> &str {
        &self.auth.org_id
    }

    /// Whether the caller holds an app-scoped (portal) token.
    pub fn is_app_scoped(&self) -> bool {
        self.auth.app_id.is_some()
    }
}

/// The `{app_id}` of the path, if the route has one.
async fn path_app_id(parts: &mut Parts, state: &AppState) -> Option<String> {
    use axum::extract::Path;
    let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state).await.ok()?;
    params.get("app_id").cloned()
}

impl FromRequestParts<AppState> for OrgAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let auth = Auth::from_request_parts(parts, state).await?;
        let Some(own) = &auth.app_id else {
            if auth.role == TokenRole::Portal {
                return Err(ApiError::NotFound);
            }
            return Ok(OrgAuth { org_id: auth.org_id, token_id: auth.token_id, role: auth.role });
        };
        // A portal token on its own application lacks the right (403); anywhere
        // else it must not learn what exists (404).
        if let Some(app_id) = path_app_id(parts, state).await {
            if let Ok(app) = state.resources.get_app(&auth.org_id, &app_id).await {
                if &app.id == own {
                    return Err(ApiError::Forbidden(
                        "an application-scoped token cannot do this; it needs an organisation token".into(),
                    ));
                }
            }
        }
        Err(ApiError::NotFound)
    }
}

impl FromRequestParts<AppState> for AppAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let auth = Auth::from_request_parts(parts, state).await?;
        let app_id = path_app_id(parts, state).await.ok_or(ApiError::NotFound)?;
        let app = state.resources.get_app(&auth.org_id, &app_id).await?;
        auth.check_app(&app.id)?;
        Ok(AppAuth { auth, app })
    }
}

/// Counts a request against its token's rate (`--token-rate-limit`, off by
/// default); 429 with `Retry-After` beyond it.
fn within_rate(state: &AppState, token_id: &str) -> Result<(), ApiError> {
    let Some(rate) = state.config.token_rate_limit else { return Ok(()) };
    state.quotas.take(&format!("token:{token_id}"), rate).map_err(|wait| ApiError::TooManyRequests {
        detail: format!("this token may make {rate} requests per second; retry after the Retry-After header's seconds"),
        retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
    })
}

/// A new random token with `prefix` (`sk_` admin, `appsk_` app portal).
pub fn generate_token(prefix: &str) -> String {
    let bytes: [u8; 32] = rand::random();
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

pub fn hash_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    hookd_core::text::hex(&digest)
}

/// Recently verified tokens, so authentication does not read the store on every request.
#[derive(Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<String, (ApiToken, Instant)>>,
}

impl TokenCache {
    /// Forgets every verified token (after tokens were expired).
    pub fn clear(&self) {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    fn get(&self, hash: &str) -> Option<ApiToken> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.get(hash).filter(|(_, at)| at.elapsed() < CACHE_TTL).map(|(t, _)| t.clone())
    }

    fn put(&self, hash: String, token: ApiToken) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= CACHE_MAX {
            entries.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
            if entries.len() >= CACHE_MAX {
                entries.clear();
            }
        }
        entries.insert(hash, (token, Instant::now()));
    }
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(axum::http::header::AUTHORIZATION).ok_or(ApiError::Unauthorized)?;
        let value = header.to_str().map_err(|_| ApiError::Unauthorized)?;
        let token = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")).unwrap_or(value).trim();
        if token.is_empty() || token.len() > 512 {
            return Err(ApiError::Unauthorized);
        }
        let hash = hash_token(token);
        let noted = |org_id: &str, token: &str| {
            if let Some(slot) = parts.extensions.get::<crate::audit::ActorSlot>() {
                let actor = crate::audit::Actor { org_id: org_id.to_string(), token: token.to_string() };
                *slot.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(actor);
            }
        };
        // Constant time, though only hashes are compared (stored tokens are
        // found by their hash's index, which reveals nothing of a token).
        let bootstrap =
            state.bootstrap_token_hash.as_deref().is_some_and(|b| bool::from(b.as_bytes().ct_eq(hash.as_bytes())));
        if bootstrap {
            noted(&state.org_id, "bootstrap");
            within_rate(state, "bootstrap")?;
            return Ok(Auth {
                org_id: state.org_id.clone(),
                app_id: None,
                token_id: "bootstrap".into(),
                role: TokenRole::Server,
                capabilities: Capabilities::all(),
                session_id: None,
                denied: None,
                poller_sink: None,
            });
        }
        let now = hookd_core::timefmt::now_millis();
        // MCP tokens are looked up on their own, uncached: a revoked one stops at once.
        if token.starts_with(crate::v1::mcp_token::MCP_TOKEN_PREFIX) {
            let found = state.resources.mcp_token_by_hash(&hash).await?;
            let t = found.filter(|t| t.expires_at > now).ok_or(ApiError::Unauthorized)?;
            noted(&t.org_id, &t.id);
            within_rate(state, &t.id)?;
            let route = parts.extensions.get::<MatchedPath>().map_or("", |m| m.as_str());
            return mcp::caller(t, &parts.method, route);
        }
        let token = match state.tokens.get(&hash) {
            Some(t) => t,
            None => match state.resources.token_by_hash(&hash).await? {
                Some(t) => {
                    state.tokens.put(hash, t.clone());
                    t
                }
                None if token.starts_with(POLLER_TOKEN_PREFIX) => {
                    let t = state.resources.poller_token_by_hash(&hash).await?.ok_or(ApiError::Unauthorized)?;
                    if t.expires_at.is_some_and(|exp| exp <= now) {
                        return Err(ApiError::Unauthorized);
                    }
                    noted(&t.org_id, &t.id);
                    within_rate(state, &t.id)?;
                    let route = parts.extensions.get::<MatchedPath>().map_or("", |m| m.as_str());
                    return Ok(Auth::poller(t, route));
                }
                None => return Err(ApiError::Unauthorized),
            },
        };
        if token.expires_at.is_some_and(|exp| exp <= now) {
            return Err(ApiError::Unauthorized);
        }
        // A portal token always names its application.
        if token.role == TokenRole::Portal && token.app_id.is_none() {
            return Err(ApiError::Unauthorized);
        }
        noted(&token.org_id, &token.id);
        within_rate(state, &token.id)?;
        let reads = parts.method == Method::GET || parts.method == Method::HEAD;
        if token.role == TokenRole::ReadOnly {
            if !reads {
                return Err(ApiError::Forbidden("this token is read-only".into()));
            }
            // A signing secret forges webhooks: more than a read.
            let route = parts.extensions.get::<MatchedPath>().map_or("", |m| m.as_str());
            if route.ends_with("/secret") {
                return Err(ApiError::Forbidden("a read-only token cannot read signing secrets".into()));
            }
            // A poller token outlives the token that read it.
            if route.starts_with(POLLER_TOKEN_ROUTE) {
                return Err(ApiError::Forbidden("a read-only token cannot read poller tokens".into()));
            }
        }
        let (capabilities, denied) = match token.role {
            TokenRole::Portal => {
                let caps = Capabilities::stored(token.capabilities.as_deref());
                let route = parts.extensions.get::<MatchedPath>().map_or("", |m| m.as_str());
                (caps, portal_denial(&parts.method, route, caps))
            }
            _ => (Capabilities::all(), None),
        };
        Ok(Auth {
            org_id: token.org_id,
            app_id: token.app_id,
            token_id: token.id,
            role: token.role,
            capabilities,
            session_id: token.session_id,
            denied,
            poller_sink: None,
        })
    }
}
