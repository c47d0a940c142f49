//! OAuth2 access tokens for endpoints whose receivers want one (Svix's endpoint
//! OAuth): fetched from the endpoint's token URL with its client credentials or
//! refresh token (RFC 6749 §4.4, §6), authenticated by `client_secret_basic`,
//! `client_secret_post` or an RS256 client assertion (RFC 7523), and cached per
//! endpoint until shortly before they expire. A receiver's 401 asks for a
//! fresh one (see the sender). The token request is held to the delivery's
//! destination policy (its client resolves through the guarded resolver, and
//! the URL is checked here like an endpoint's). Nothing here logs or reports
//! a secret, a token, or the token URL's query.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use hookd_core::policy::DestinationPolicy;
use hookd_store::{OauthAuthMethod, OauthConfig, OauthGrant};
use reqwest::header::{HeaderName, HeaderValue, ACCEPT};
use serde::Deserialize;

/// Most bytes of a token endpoint's answer read.
const MAX_TOKEN_ANSWER: usize = 64 * 1024;
/// A token without `expires_in` is kept this long.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);
/// A token is kept at most this long, whatever its `expires_in`.
const MAX_LIFETIME: Duration = Duration::from_secs(86_400);
/// Most tokens cached (one per endpoint); past it the cache starts again.
const MAX_CACHED: usize = 10_000;
/// A client assertion lasts this long unless the config says.
const ASSERTION_LIFETIME_SECS: u64 = 300;

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    /// A number, or (from some providers) a string holding one.
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    refresh_token: Option<String>,
}

struct Cached {
    /// The config the token was got with: a changed config is a new token.
    config: u64,
    token: String,
    renew_at: Instant,
    /// A refresh token the provider gave in place of the configured one.
    refresh_token: Option<String>,
}

/// One endpoint's token, behind a lock held while it is fetched: deliveries
/// that find none wait for the one request rather than each making their own.
type Slot = Arc<tokio::sync::Mutex<Option<Cached>>>;

#[derive(Default)]
pub struct TokenCache {
    tokens: Mutex<HashMap<String, Slot>>,
}

fn fingerprint(config: &OauthConfig) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    config.hash(&mut h);
    h.finish()
}

/// When to get a new token: a little before it expires (a tenth of its life,
/// at most a minute), so a request never carries one about to lapse.
fn renew_after(lifetime: Duration) -> Duration {
    lifetime - (lifetime / 10).min(Duration::from_secs(60))
}

impl TokenCache {
    /// The endpoint's access token: the cached one, or (when there is none,
    /// it is due for renewal, or it is the `rejected` one a receiver just
    /// answered 401 to) a new one from the token endpoint, within `timeout`
    /// (waiting for another delivery's request included).
    pub async fn token(
        &self,
        to: &TokenEndpoint<'_>,
        endpoint_id: &str,
        config: &OauthConfig,
        timeout: Duration,
        rejected: Option<&str>,
    ) -> Result<String, String> {
        let print = fingerprint(config);
        let slot = {
            let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
            if tokens.len() >= MAX_CACHED && !tokens.contains_key(endpoint_id) {
                tokens.clear();
            }
            tokens.entry(endpoint_id.to_string()).or_default().clone()
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let Ok(mut cached) = tokio::time::timeout_at(deadline, slot.lock()).await else {
            return Err("timed out waiting for the OAuth token another delivery is getting".into());
        };
        let rotated_refresh = match cached.as_ref().filter(|c| c.config == print) {
            // Still good, and not the one refused (or another delivery has
            // replaced that one meanwhile).
            Some(c) if Instant::now() < c.renew_at && rejected != Some(c.token.as_str()) => {
                return Ok(c.token.clone());
            }
            Some(c) => c.refresh_token.clone(),
            None => None,
        };
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let answer = request(to, config, rotated_refresh.as_deref(), left).await?;
        let lifetime = lifetime(answer.expires_in.as_ref());
        *cached = Some(Cached {
            config: print,
            token: answer.access_token.clone(),
            renew_at: Instant::now() + renew_after(lifetime),
            refresh_token: answer.refresh_token.or(rotated_refresh),
        });
        Ok(answer.access_token)
    }
}

/// How long a token is kept: its `expires_in` (a number or a numeric string),
/// at most a day; without one, an hour.
fn lifetime(expires_in: Option<&serde_json::Value>) -> Duration {
    let secs = match expires_in {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    secs.map(Duration::from_secs).unwrap_or(DEFAULT_LIFETIME).min(MAX_LIFETIME)
}

/// Where token requests go: the delivery's client (without the endpoint's own
/// TLS settings, which are for the receiver) and its policy.
pub struct TokenEndpoint<'a> {
    pub client: &'a reqwest::Client,
    pub policy: &'a DestinationPolicy,
    /// Whether an egress proxy connects (so names are vetted here).
    pub proxied: bool,
}

/// The token URL as errors show it: scheme, host, port and path.
fn shown(token_url: &str) -> String {
    match reqwest::Url::parse(token_url) {
        Ok(mut u) => {
            u.set_query(None);
            u.set_fragment(None);
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => "the token URL".into(),
    }
}

/// One token request; the error says what went wrong without a secret.
async fn request(
    to: &TokenEndpoint<'_>,
    config: &OauthConfig,
    rotated_refresh: Option<&str>,
    timeout: Duration,
) -> Result<TokenAnswer, String> {
    let failed = |why: String| format!("the OAuth token request to {} failed: {why}", shown(&config.token_url));
    let url = reqwest::Url::parse(&config.token_url).map_err(|_| failed("the token URL is not valid".into()))?;
    crate::ssrf::check_literal(to.policy, &url).map_err(|r| failed(r.0))?;
    if to.proxied && to.policy.checks_addresses() {
        crate::ssrf::check_resolved(to.policy, &url).await.map_err(|r| failed(r.0))?;
    }
    let mut form: Vec<(String, String)> = Vec::new();
    match config.grant_type {
        OauthGrant::ClientCredentials => form.push(("grant_type".into(), "client_credentials".into())),
        OauthGrant::RefreshToken => {
            let token = rotated_refresh.or(config.refresh_token.as_deref()).unwrap_or_default();
            form.push(("grant_type".into(), "refresh_token".into()));
            form.push(("refresh_token".into(), token.into()));
        }
    }
    if let Some(scopes) = config.scopes.as_ref().filter(|s| !s.is_empty()) {
        form.push(("scope".into(), scopes.join(" ")));
    }
    for (k, v) in config.extra_params.iter().flatten() {
        form.push((k.clone(), v.clone()));
    }
    let secret = config.client_secret.as_deref().unwrap_or_default();
    let mut req = to.client.post(url).header(ACCEPT, "application/json").timeout(timeout);
    match config.auth_method {
        OauthAuthMethod::ClientSecretBasic => {
            // RFC 6749 §2.3.1: id and secret form-encoded before Basic.
            let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            req = req.basic_auth(enc(&config.client_id), Some(enc(secret)));
        }
        OauthAuthMethod::ClientSecretPost => {
            form.push(("client_id".into(), config.client_id.clone()));
            form.push(("client_secret".into(), secret.into()));
        }
        OauthAuthMethod::ClientSecretJwt => {
            form.push(("client_id".into(), config.client_id.clone()));
            form.push((
                "client_assertion_type".into(),
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
            ));
            form.push(("client_assertion".into(), assertion(config).map_err(failed)?));
        }
    }
    for (k, v) in config.extra_headers.iter().flatten() {
        let name =
            HeaderName::from_bytes(k.as_bytes()).map_err(|_| failed(format!("header name `{k}` is not valid")))?;
        let value = HeaderValue::from_str(v).map_err(|_| failed(format!("the value of header `{k}` is not valid")))?;
        req = req.header(name, value);
    }
    let mut resp = req.form(&form).send().await.map_err(|e| failed(crate::sender::describe(&e)))?;
    let status = resp.status();
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| failed(crate::sender::describe(&e)))? {
        if body.len() + chunk.len() > MAX_TOKEN_ANSWER {
            return Err(failed(format!("the answer is larger than {} KiB", MAX_TOKEN_ANSWER / 1024)));
        }
        body.extend_from_slice(&chunk);
    }
    if !status.is_success() {
        // RFC 6749 §5.2: `error` names the failure; nothing else is repeated.
        let error = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(|e| e.chars().filter(|c| c.is_ascii_graphic()).take(64).collect()))
            .unwrap_or_else(|| "no error code".to_string());
        return Err(failed(format!("{status} ({error})")));
    }
    let answer: TokenAnswer =
        serde_json::from_slice(&body).map_err(|_| failed("the answer has no usable access_token".into()))?;
    if answer.access_token.is_empty() || HeaderValue::from_str(&format!("Bearer {}", answer.access_token)).is_err() {
        return Err(failed("the access token is empty or not a header value".into()));
    }
    Ok(answer)
}

/// The RS256 client assertion (RFC 7523 §2.2) for `clientSecretJwt`.
fn assertion(config: &OauthConfig) -> Result<String, String> {
    let params = config.jwt_params.as_ref().ok_or("`clientSecretJwt` needs `jwtParams`")?;
    let der = base64::engine::general_purpose::STANDARD
        .decode(params.secret_base64.trim())
        .map_err(|_| "`jwtParams.secretBase64` is not base64".to_string())?;
    let key = jsonwebtoken::EncodingKey::from_rsa_der(&der);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
    let claims = serde_json::json!({
        "iss": config.client_id,
        "sub": config.client_id,
        "aud": config.token_url,
        "iat": now,
        "exp": now + params.token_expiry_secs.unwrap_or(ASSERTION_LIFETIME_SECS),
        "jti": format!("{:032x}", rand::random::<u128>()),
    });
    let header = jsonwebtoken::Header {
        kid: params.secret_id.clone(),
        ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256)
    };
    jsonwebtoken::encode(&header, &claims, &key).map_err(|_| "the RS256 key in `jwtParams` cannot sign".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_lifetimes_are_read_leniently_and_bounded() {
        use serde_json::json;
        assert_eq!(lifetime(Some(&json!(120))), Duration::from_secs(120));
        assert_eq!(lifetime(Some(&json!("120"))), Duration::from_secs(120));
        assert_eq!(lifetime(None), DEFAULT_LIFETIME);
        assert_eq!(lifetime(Some(&json!("soon"))), DEFAULT_LIFETIME);
        assert_eq!(lifetime(Some(&json!(u64::MAX))), MAX_LIFETIME);
    }

    #[test]
    fn token_urls_are_shown_without_query_or_user() {
        assert_eq!(shown("https://u:p@auth.example/token?key=secret#x"), "https://auth.example/token");
        assert_eq!(shown("not a url"), "the token URL");
    }

    #[test]
    fn tokens_are_renewed_before_they_expire() {
        assert_eq!(renew_after(Duration::from_secs(3600)), Duration::from_secs(3540));
        assert_eq!(renew_after(Duration::from_secs(100)), Duration::from_secs(90));
        assert_eq!(renew_after(Duration::ZERO), Duration::ZERO);
    }
}
