//! How hookd authenticates to an endpoint's receiver, beside the signature:
//! Svix's OAuth2 client (`…/endpoint/{id}/oauth`, `EndpointOauthConfigIn`/`Out`),
//! the extension `…/endpoint/{id}/auth` for HTTP basic or a bearer token, and
//! on the TLS level Svix's mutual-TLS identity (`…/mtls`) and the receiver's
//! CA (`…/ca`).
//! Credentials are sealed at rest with the endpoint and never come back: the
//! answers name what is set, not its secrets.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use base64::Engine;
use hookd_store::{AuthChange, BasicAuth, EndpointChange, OauthAuthMethod, OauthConfig, OauthGrant, OauthJwtParams};
use serde::{Deserialize, Serialize};

use super::crud::check_destination;
use super::{change_endpoint, load_endpoint};
use crate::auth::AppAuth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{parse_json, RawBody};
use crate::AppState;

const MAX_TEXT: usize = 1024;
const MAX_SECRET: usize = 8 * 1024;
const MAX_ENTRIES: usize = 20;

/// Svix's `EndpointOauthConfigIn` (no `Debug`: it holds secrets).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OauthConfigIn {
    grant_type: OauthGrant,
    auth_method: OauthAuthMethod,
    client_id: String,
    #[serde(default)]
    client_secret: Option<String>,
    token_url: String,
    #[serde(default)]
    scopes: Option<Vec<String>>,
    #[serde(default)]
    extra_params: Option<BTreeMap<String, String>>,
    #[serde(default)]
    extra_headers: Option<BTreeMap<String, String>>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    jwt_params: Option<OauthJwtParams>,
}

/// Svix's `EndpointOauthConfigOut`: the config without its secrets.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OauthConfigOut {
    grant_type: OauthGrant,
    auth_method: OauthAuthMethod,
    client_id: String,
    token_url: String,
    scopes: Option<Vec<String>>,
    extra_params: Option<BTreeMap<String, String>>,
    extra_headers: Option<BTreeMap<String, String>>,
}

fn bounded(field: &str, value: &str, max: usize) -> ApiResult<()> {
    if value.len() > max || value.chars().any(char::is_control) {
        return Err(ApiError::body_field(field, format!("at most {max} bytes, no control characters")));
    }
    Ok(())
}

fn checked(input: OauthConfigIn) -> ApiResult<OauthConfig> {
    if input.client_id.is_empty() {
        return Err(ApiError::body_field("clientId", "the client id is required"));
    }
    bounded("clientId", &input.client_id, MAX_TEXT)?;
    let url =
        url::Url::parse(&input.token_url).map_err(|e| ApiError::body_field("tokenUrl", format!("not a URL: {e}")))?;
    if !matches!(url.scheme(), "https" | "http") || input.token_url.len() > 2048 {
        return Err(ApiError::body_field("tokenUrl", "an http(s) URL of at most 2048 bytes"));
    }
    if let Some(s) = &input.client_secret {
        bounded("clientSecret", s, MAX_SECRET)?;
    }
    let needs_secret =
        matches!(input.auth_method, OauthAuthMethod::ClientSecretBasic | OauthAuthMethod::ClientSecretPost);
    if needs_secret && input.client_secret.as_deref().is_none_or(str::is_empty) {
        return Err(ApiError::body_field("clientSecret", "required for clientSecretBasic and clientSecretPost"));
    }
    match input.grant_type {
        OauthGrant::RefreshToken if input.refresh_token.as_deref().is_none_or(str::is_empty) => {
            return Err(ApiError::body_field("refreshToken", "required for the refreshToken grant"));
        }
        _ => {}
    }
    if let Some(t) = &input.refresh_token {
        bounded("refreshToken", t, MAX_SECRET)?;
    }
    if input.auth_method == OauthAuthMethod::ClientSecretJwt {
        let params = input
            .jwt_params
            .as_ref()
            .ok_or_else(|| ApiError::body_field("jwtParams", "required for clientSecretJwt"))?;
        if params.signing_algorithm != "RS256" {
            return Err(ApiError::body_field("jwtParams.signingAlgorithm", "only RS256"));
        }
        if params.token_expiry_secs.is_some_and(|s| !(1..=3600).contains(&s)) {
            return Err(ApiError::body_field("jwtParams.tokenExpirySecs", "from 1 to 3600"));
        }
        if let Some(id) = &params.secret_id {
            bounded("jwtParams.secretId", id, MAX_TEXT)?;
        }
        bounded("jwtParams.secretBase64", &params.secret_base64, MAX_SECRET)?;
        let der = base64::engine::general_purpose::STANDARD
            .decode(params.secret_base64.trim())
            .map_err(|_| ApiError::body_field("jwtParams.secretBase64", "not base64"))?;
        let key = jsonwebtoken::EncodingKey::from_rsa_der(&der);
        let probe = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            &serde_json::json!({}),
            &key,
        );
        if probe.is_err() {
            return Err(ApiError::body_field(
                "jwtParams.secretBase64",
                "not an RSA private key (base64 of its PKCS#1 DER)",
            ));
        }
    }
    let scopes = input.scopes.unwrap_or_default();
    if scopes.len() > MAX_ENTRIES * 2 {
        return Err(ApiError::body_field("scopes", format!("at most {} scopes", MAX_ENTRIES * 2)));
    }
    for s in &scopes {
        if s.is_empty() || s.len() > 256 || !s.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\') {
            return Err(ApiError::body_field("scopes", format!("`{s}` is not a scope token (RFC 6749 §3.3)")));
        }
    }
    for (field, map) in [("extraParams", &input.extra_params), ("extraHeaders", &input.extra_headers)] {
        let map = map.iter().flatten().collect::<Vec<_>>();
        if map.len() > MAX_ENTRIES {
            return Err(ApiError::body_field(field, format!("at most {MAX_ENTRIES} entries")));
        }
        for (k, v) in map {
            bounded(field, k, 256)?;
            bounded(field, v, MAX_TEXT)?;
        }
    }
    for (k, v) in input.extra_headers.iter().flatten() {
        let ok =
            axum::http::HeaderName::from_bytes(k.as_bytes()).is_ok() && axum::http::HeaderValue::from_str(v).is_ok();
        if !ok {
            return Err(ApiError::body_field("extraHeaders", format!("`{k}` is not a valid header")));
        }
    }
    Ok(OauthConfig {
        grant_type: input.grant_type,
        auth_method: input.auth_method,
        client_id: input.client_id,
        client_secret: input.client_secret.filter(|s| !s.is_empty()),
        token_url: input.token_url,
        scopes: (!scopes.is_empty()).then_some(scopes),
        extra_params: input.extra_params.filter(|m| !m.is_empty()),
        extra_headers: input.extra_headers.filter(|m| !m.is_empty()),
        refresh_token: input.refresh_token.filter(|t| !t.is_empty()),
        jwt_params: input.jwt_params,
    })
}

pub async fn get_oauth(
    State(state): State<AppState>,
    auth: AppAuth,
    Path((_, endpoint_id)): Path<(String, String)>,
) -> ApiResult<Json<OauthConfigOut>> {
    let ep = load_endpoint(&state, &auth, &endpoint_id).await?;
    let c = ep.auth.oauth.ok_or(ApiError::NotFound)?;
    Ok(Json(OauthConfigOut {
        grant_type: c.grant_type,
        auth_method: c.auth_method,
        client_id: c.client_id,
        token_url: c.token_url,
        scopes: c.scopes,
        extra_params: c.extra_params,
        extra_headers: c.extra_headers,
    }))
}

pub async fn put_oauth(
    State(state): State<AppState>,
    auth: AppAuth,
    Path((_, endpoint_id)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> ApiResult<StatusCode> {
    let config = checked(parse_json(&body)?)?;
    // The token request goes where deliveries may go, no further.
    check_destination(&state, auth.org_id(), Some(&config.token_url))
        .await
        .map_err(|_| ApiError::body_field("tokenUrl", "the destination policy does not allow this address"))?;
    let ep = load_endpoint(&state, &auth, &endpoint_id).await?;
    change_endpoint(&state, &auth, &ep.id, EndpointChange::Auth(AuthChange::Oauth(Some(Box::new(config)))), None)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn delete_oauth(
    State(state): State<AppState>,
    auth: AppAuth,
    Path((_, endpoint_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let ep = load_endpoint(&state, &auth, &endpoint_id).await?;
    change_endpoint(&state, &auth, &ep.id, EndpointChange::Auth(AuthChange::Oauth(None)), None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Extension: `{"type": "basic", "username", "password"}`,
/// `{"type": "bearer", "token"}`, or `{"type": "jwt", "algorithm", "key", …}`
/// (a JWT signed for each request).
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum AuthIn {
    Basic {
        username: String,
        password: String,
    },
    Bearer {
        token: String,
    },
    #[serde(rename_all = "camelCase")]
    Jwt {
        algorithm: String,
        key: String,
        #[serde(default)]
        key_id: Option<String>,
        #[serde(default)]
        issuer: Option<String>,
        #[serde(default)]
        audience: Option<String>,
        #[serde(default)]
        lifetime_secs: Option<u64>,
        #[serde(default)]
        claims: BTreeMap<String, serde_json::Value>,
    },
}

/// What is set, without its secret.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum AuthOut {
    Basic {
        username: String,
    },
    Bearer {},
    #[serde(rename_all = "camelCase")]
    Jwt {
        algorithm: String,
        key_id: Option<String>,
        issuer: Option<String>,
        audience: Option<String>,
        lifetime_secs: u64,
        claims: BTreeMap<String, serde_json::Value>,
    },
}

/// A JWT lasts 5 minutes unless set, at most an hour.
const JWT_LIFETIME_SECS: u64 = 300;
const MAX_JWT_LIFETIME_SECS: u64 = 3600;

pub async fn get_auth(
    State(state): State<AppState>,
    auth: AppAuth,
    Path((_, endpoint_id)): Path<(String, String)>,
) -> ApiResult<Json<AuthOut>> {
    let ep = load_endpoint(&state, &auth, &endpoint_id).await?;
    match (ep.auth.basic, ep.auth.bearer, ep.auth.jwt) {
        (Some(b), _, _) => Ok(Json(AuthOut::Basic { username: b.username })),
        (None, Some(_), _) => Ok(Json(AuthOut::Bearer {})),
        (None, None, Some(j)) => Ok(Json(AuthOut::Jwt {
            algorithm: j.algorithm,
            key_id: j.key_id,
            issuer: j.issuer,
            audience: j.audience,
            lifetime_secs: j.lifetime_secs,
            claims: j.claims,
        })),
        (None, None, None) => Err(ApiError::NotFound),
    }
}

pub async fn put_auth(
    State(state): State<AppState>,
    auth: AppAuth,
    Path((_, endpoint_id)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> ApiResult<StatusCode> {
    let change = match parse_json::<AuthIn>(&body)? {
        AuthIn::Basic { username, password } => {
            // RFC 7617: the user-id cannot hold a colon.
            if username.is_empty() || username.contains(':') {
                return Err(ApiError::body_field("username", "required, and without ':'"));
            }
            bounded("username", &username, MAX_TEXT)?;
            bounded("password", &password, MAX_SECRET)?;
            AuthChange::Basic(Some(BasicAuth { username, password }))
        }
        AuthIn::Bearer { token } => {
            let ok = !token.is_empty() && axum::http::HeaderValue::from_str(&format!("Bearer {token}")).is_ok();
            if !ok || token.len() > MAX_SECRET {
                return Err(ApiError::body_field("token", "a non-empty header value of at most 8 KiB"));
            }
            AuthChange::Bearer(Some(token))
        }
        AuthIn::Jwt { algorithm, key, key_id, issuer, audience, lifetime_secs, claims } => {
            bounded("key", &key, MAX_SECRET)?;
            // RFC 7518 §3.2: an HS256 key at least as long as the hash.
            if algorithm == "HS256" && key.len() < 32 {
                return Err(ApiError::body_field("key", "an HS256 key of at least 32 bytes"));
            }
            for (field, v) in [("keyId", &key_id), ("issuer", &issuer), ("audience", &audience)] {
                if let Some(v) = v {
                    bounded(field, v, MAX_TEXT)?;
                }
            }
            let lifetime_secs = lifetime_secs.unwrap_or(JWT_LIFETIME_SECS);
            if !(1..=MAX_JWT_LIFETIME_SECS).contains(&lifetime_secs) {
                return Err(ApiError::body_field("lifetimeSecs", format!("from 1 to {MAX_JWT_LIFETIME_SECS}")));
            }
            if let Some(c) = claims.keys().find(|c| hookd_delivery::jwt::RESERVED_CLAIMS.contains(&c.as_str())) {
                return Err(ApiError::body_field("claims", format!("`{c}` is set by hookd")));
            }
            if claims.len() > MAX_ENTRIES || serde_json::to_string(&claims).map_or(0, |c| c.len()) > MAX_SECRET {
                return Err(ApiError::body_field("claims", format!("at most {MAX_ENTRIES} claims, 8 KiB in all")));
            }
            let config = hookd_store::JwtAuth { algorithm, key, key_id, issuer, audience, lifetime_secs, claims };
            // It must sign now, not fail every attempt later.
            hookd_delivery::jwt::token(&config, "msg_probe", b"", 0, 0).map_err(|e| {
                let field = if e.contains("HS256, RS256 or EdDSA") { "algorithm" } else { "key" };
                ApiError::body_field(field, e)
            })?;
            AuthChange::Jwt(Some(Box::new(config)))
        }
    };
    let ep = load_endpoint(&state, &auth, &endpoint_id).await?;
    change_endpoint(&state, &auth, &ep.id, EndpointChange::Auth(change), None).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn delete_auth(
    State(state): State<AppState>,
    auth: AppAuth,
    Path((_, endpoint_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let ep = load_endpoint(&state, &auth, &endpoint_id).await?;
    change_endpoint(&state, &auth, &ep.id, EndpointChange::Auth(AuthChange::Basic(None)), None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Most bytes of a PEM identity or CA.
const MAX_PEM: usize = 64 * 1024;

/// Svix's `EndpointMtlsConfigIn`.
#[derive(Debug, Deserialize)]
pub struct MtlsIn {
    identity: String,
}

/// `GET …/mtls`: `EndpointMtlsConfigOut` (an empty object: the identity, a
/// private key, never comes back); 404 when none is set.
pub async fn get_mtls(
    State(state): State<AppState>,
    auth: AppAuth,
    Path((_, endpoint_id)): Path<(String, String)>,
) -> ApiResult<Json<serde_json::Value>> {
    let ep = load_endpoint(&state, &auth, &endpoint_id).await?;
    ep.auth.mtls_identity.ok_or(ApiError::NotFound)?;
    Ok(Json(serde_json::json!({})))
}

pub async fn put_mtls(
    State(state): State<AppState>,
    auth: AppAuth,
    Path((_, endpoint_id)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> ApiResult<StatusCode> {
    let input: MtlsIn = parse_json(&body)?;
    let usable = input.identity.len() <= MAX_PEM
        && reqwest::Identity::from_pem(input.identity.as_bytes())
            .is_ok_and(|id| reqwest::Client::builder().identity(id).build().is_ok());
    if !usable {
        return Err(ApiError::body_field(
            "identity",
            "a PEM private key (PKCS#8, PKCS#1 or SEC1) followed by its certificate (chain), at most 64 KiB",
        ));
    }
    let ep = load_endpoint(&state, &auth, &endpoint_id).await?;
    change_endpoint(&state, &auth, &ep.id, EndpointChange::Auth(AuthChange::Mtls(Some(input.identity))), None).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn delete_mtls(
    State(state): State<AppState>,
    auth: AppAuth,
    Path((_, endpoint_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let ep = load_endpoint(&state, &auth, &endpoint_id).await?;
    change_endpoint(&state, &auth, &ep.id, EndpointChange::Auth(AuthChange::Mtls(None)), None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Svix's `EndpointServerCaIn` / `Out`: `null` is the standard roots.
#[derive(Debug, Deserialize, Serialize)]
pub struct ServerCa {
    #[serde(default)]
    cert: Option<String>,
}

pub async fn get_ca(
    State(state): State<AppState>,
    auth: AppAuth,
    Path((_, endpoint_id)): Path<(String, String)>,
) -> ApiResult<Json<ServerCa>> {
    let ep = load_endpoint(&state, &auth, &endpoint_id).await?;
    Ok(Json(ServerCa { cert: ep.auth.server_ca }))
}

pub async fn put_ca(
    State(state): State<AppState>,
    auth: AppAuth,
    Path((_, endpoint_id)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> ApiResult<StatusCode> {
    let input: ServerCa = parse_json(&body)?;
    if let Some(pem) = &input.cert {
        // Parsed as the client will: a trust anchor it can build with.
        let usable = pem.len() <= MAX_PEM
            && pem.contains("-----BEGIN CERTIFICATE-----")
            && reqwest::Certificate::from_pem(pem.as_bytes()).is_ok_and(|ca| {
                reqwest::Client::builder().tls_built_in_root_certs(false).add_root_certificate(ca).build().is_ok()
            });
        if !usable {
            return Err(ApiError::body_field("cert", "a PEM X.509 certificate of at most 64 KiB (or null)"));
        }
    }
    let ep = load_endpoint(&state, &auth, &endpoint_id).await?;
    change_endpoint(&state, &auth, &ep.id, EndpointChange::Auth(AuthChange::ServerCa(input.cert)), None).await?;
    Ok(StatusCode::NO_CONTENT)
}
