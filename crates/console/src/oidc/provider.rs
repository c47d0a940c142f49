//! The OpenID provider as this client calls it: its discovery document, its
//! token endpoint, and the verification of its ID tokens against its keys
//! (JWKS). The discovery document and the keys are cached for an hour; the
//! keys are fetched sooner when a token names one the cache lacks (the
//! provider rotated them).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{header, StatusCode};
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};
use subtle::ConstantTimeEq;

/// Every call to the provider ends within this.
const TIMEOUT: Duration = Duration::from_secs(10);
/// The discovery document and the keys are asked again after this.
const CACHE_TTL: Duration = Duration::from_secs(3600);
/// A key id the cached JWKS lacks makes the keys be fetched again, at most this often.
const JWKS_REFRESH_MIN: Duration = Duration::from_secs(30);
/// Largest answer read from the provider.
const MAX_ANSWER: usize = 1024 * 1024;
/// Clock skew allowed between the provider and this server.
const LEEWAY: Duration = Duration::from_secs(60);
/// An ID token is made for the sign-in at hand: one issued longer ago is refused.
const MAX_TOKEN_AGE: Duration = Duration::from_secs(600);
/// The signature algorithms accepted on ID tokens (never `none` or HMAC).
const ACCEPTED_ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Why a call to the provider or its answer failed.
#[derive(Debug)]
pub(super) enum Failure {
    /// The provider could not be asked, or answered nonsense.
    Unreachable(String),
    /// The provider refused (the code or this client).
    Refused(String),
    /// The ID token does not verify.
    InvalidToken(String),
}

/// The provider's endpoints, from its discovery document.
#[derive(Debug, Deserialize)]
pub(super) struct Endpoints {
    issuer: String,
    pub authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
}

/// A value and when it was fetched.
type Cached<T> = Mutex<Option<(Arc<T>, Instant)>>;

/// This client at one provider.
pub(super) struct Client {
    issuer: String,
    client_id: String,
    client_secret: String,
    redirect_uri: String,
    http: reqwest::Client,
    endpoints: Cached<Endpoints>,
    keys: Cached<Vec<Jwk>>,
}

impl Client {
    pub fn new(issuer: &str, client_id: &str, client_secret: &str, redirect_uri: &str) -> Result<Client, String> {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT / 2)
            // The provider's endpoints are called where its discovery says, not elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Client {
            issuer: issuer.trim_end_matches('/').to_string(),
            client_id: client_id.to_string(),
            client_secret: client_secret.to_string(),
            redirect_uri: redirect_uri.to_string(),
            http,
            endpoints: Mutex::new(None),
            keys: Mutex::new(None),
        })
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// The provider's endpoints (OpenID Connect Discovery 1.0).
    pub async fn endpoints(&self) -> Result<Arc<Endpoints>, Failure> {
        if let Some(e) = fresh(&self.endpoints, CACHE_TTL) {
            return Ok(e);
        }
        let url = format!("{}/.well-known/openid-configuration", self.issuer);
        let doc = self.fetch_json(self.http.get(&url), "its discovery document").await?;
        let endpoints: Endpoints = serde_json::from_value(doc)
            .map_err(|e| Failure::Unreachable(format!("its discovery document is not usable: {e}")))?;
        // Discovery §4.3: the document names the issuer it was asked for.
        if endpoints.issuer.trim_end_matches('/') != self.issuer {
            return Err(Failure::Unreachable(format!(
                "its discovery document names the issuer `{}`, not `{}`",
                endpoints.issuer, self.issuer
            )));
        }
        for (what, endpoint) in [
            ("authorization_endpoint", &endpoints.authorization_endpoint),
            ("token_endpoint", &endpoints.token_endpoint),
            ("jwks_uri", &endpoints.jwks_uri),
        ] {
            // The client secret and the tokens travel there: https only (or
            // plain http on loopback, as for the issuer).
            let ok = url::Url::parse(endpoint).is_ok_and(|u| super::secure(&u));
            if !ok {
                return Err(Failure::Unreachable(format!(
                    "its discovery document's {what} is not an https URL (plain http is for loopback only)"
                )));
            }
        }
        let endpoints = Arc::new(endpoints);
        *lock(&self.endpoints) = Some((endpoints.clone(), Instant::now()));
        Ok(endpoints)
    }

    /// The authorization code exchanged for the ID token (RFC 6749 §4.1.3,
    /// with the PKCE verifier of RFC 7636 §4.5).
    pub async fn exchange(&self, code: &str, verifier: &str) -> Result<String, Failure> {
        let endpoints = self.endpoints().await?;
        // RFC 6749 §2.3.1: the id and secret are form-encoded before Basic.
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let resp = self
            .http
            .post(&endpoints.token_endpoint)
            .basic_auth(enc(&self.client_id), Some(enc(&self.client_secret)))
            .header(header::ACCEPT, "application/json")
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", &self.redirect_uri),
                ("code_verifier", verifier),
            ])
            .send()
            .await
            .map_err(|e| {
                Failure::Unreachable(format!("its token endpoint could not be reached: {}", without_url(e)))
            })?;
        let status = resp.status();
        let body = read_json(resp).await;
        if status == StatusCode::BAD_REQUEST || status == StatusCode::UNAUTHORIZED {
            // invalid_grant (a used or expired code), invalid_client (the secret)…
            let error = body.as_ref().ok().and_then(|b| b["error"].as_str()).unwrap_or("an error");
            return Err(Failure::Refused(format!("its token endpoint answered `{}`", printable(error))));
        }
        if !status.is_success() {
            return Err(Failure::Unreachable(format!("its token endpoint answered {status}")));
        }
        let body = body.map_err(|e| Failure::Unreachable(format!("its token endpoint: {e}")))?;
        body["id_token"].as_str().map(str::to_string).ok_or_else(|| {
            Failure::Unreachable("its token endpoint gave no ID token (is `openid` among the scopes?)".into())
        })
    }

    /// The ID token's claims, once verified (OpenID Connect Core §3.1.3.7):
    /// signed by one of the provider's keys with an accepted algorithm, issued
    /// by the provider for this client (`aud`, and `azp` when there are several
    /// audiences), current (`exp`, `nbf`, `iat`), and for this sign-in (`nonce`).
    pub async fn verify(&self, id_token: &str, nonce: &str) -> Result<Map<String, Value>, Failure> {
        let invalid = Failure::InvalidToken;
        let header = jsonwebtoken::decode_header(id_token).map_err(|_| invalid("it is not a signed JWT".into()))?;
        if !ACCEPTED_ALGORITHMS.contains(&header.alg) {
            return Err(invalid(format!("it is signed with {:?}, which is not accepted", header.alg)));
        }
        let endpoints = self.endpoints().await?;
        let kid = header.kid.as_deref();
        let key = match self.key(&endpoints, kid, header.alg, false).await? {
            Some(key) => key,
            // A key the cached set lacks: the provider may have rotated.
            None => self
                .key(&endpoints, kid, header.alg, true)
                .await?
                .ok_or_else(|| invalid("none of the provider's keys signed it".into()))?,
        };
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&endpoints.issuer]);
        validation.set_audience(&[&self.client_id]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY.as_secs();
        let claims = jsonwebtoken::decode::<Map<String, Value>>(id_token, &key, &validation)
            .map_err(|e| invalid(token_error(e.kind())))?
            .claims;
        let now = super::flow::now_secs() as f64;
        let iat = claims.get("iat").and_then(Value::as_f64).ok_or_else(|| invalid("it has no `iat`".into()))?;
        if iat > now + LEEWAY.as_secs_f64() {
            return Err(invalid("it was issued in the future (are the clocks apart?)".into()));
        }
        if iat + (MAX_TOKEN_AGE + LEEWAY).as_secs_f64() < now {
            return Err(invalid("it was issued too long ago".into()));
        }
        let several_audiences = claims.get("aud").and_then(Value::as_array).is_some_and(|a| a.len() > 1);
        match claims.get("azp") {
            Some(azp) if azp.as_str() != Some(self.client_id.as_str()) => {
                return Err(invalid("it was issued to another client (`azp`)".into()))
            }
            None if several_audiences => return Err(invalid("it has several audiences and no `azp`".into())),
            _ => {}
        }
        let ours = claims
            .get("nonce")
            .and_then(Value::as_str)
            .is_some_and(|n| bool::from(n.as_bytes().ct_eq(nonce.as_bytes())));
        if !ours {
            return Err(invalid("its nonce is not this sign-in's".into()));
        }
        Ok(claims)
    }

    /// The key that verifies a token signed with `alg` under `kid`: the key of
    /// that id, or without an id the only key fit for `alg`. `Ok(None)`: the
    /// set (fetched again when `refresh`) has none.
    async fn key(
        &self,
        endpoints: &Endpoints,
        kid: Option<&str>,
        alg: Algorithm,
        refresh: bool,
    ) -> Result<Option<DecodingKey>, Failure> {
        let keys = self.keys(endpoints, refresh).await?;
        let fit: Vec<&Jwk> = keys
            .iter()
            .filter(|k| kid.is_none() || k.common.key_id.as_deref() == kid)
            .filter(|k| fits(k, alg))
            .collect();
        let jwk = match (kid, fit.as_slice()) {
            (Some(_), [first, ..]) => *first,
            (None, [only]) => *only,
            (None, [_, _, ..]) => {
                return Err(Failure::InvalidToken("it names no key (`kid`) and the provider has several".into()))
            }
            (_, []) => return Ok(None),
        };
        DecodingKey::from_jwk(jwk)
            .map(Some)
            .map_err(|_| Failure::Unreachable("one of its signing keys is not usable".into()))
    }

    /// The provider's signing keys: cached, fetched again when `refresh` and
    /// the cache is older than [`JWKS_REFRESH_MIN`].
    async fn keys(&self, endpoints: &Endpoints, refresh: bool) -> Result<Arc<Vec<Jwk>>, Failure> {
        let max_age = if refresh { JWKS_REFRESH_MIN } else { CACHE_TTL };
        if let Some(keys) = fresh(&self.keys, max_age) {
            return Ok(keys);
        }
        let doc = self.fetch_json(self.http.get(&endpoints.jwks_uri), "its signing keys (JWKS)").await?;
        // Keys this client cannot use (encryption keys, unknown types) are
        // skipped, not a reason to refuse the others.
        let keys: Vec<Jwk> = doc["keys"]
            .as_array()
            .ok_or_else(|| Failure::Unreachable("its JWKS has no `keys`".into()))?
            .iter()
            .filter_map(|k| serde_json::from_value::<Jwk>(k.clone()).ok())
            .filter(|k| !matches!(k.common.public_key_use, Some(PublicKeyUse::Encryption)))
            .collect();
        let keys = Arc::new(keys);
        *lock(&self.keys) = Some((keys.clone(), Instant::now()));
        Ok(keys)
    }

    async fn fetch_json(&self, req: reqwest::RequestBuilder, what: &str) -> Result<Value, Failure> {
        let resp = req
            .header(header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| Failure::Unreachable(format!("{what} could not be fetched: {}", without_url(e))))?;
        if !resp.status().is_success() {
            return Err(Failure::Unreachable(format!("{what} answered {}", resp.status())));
        }
        read_json(resp).await.map_err(|e| Failure::Unreachable(format!("{what}: {e}")))
    }
}

/// Whether `jwk` may verify a signature made with `alg`: the key's type fits
/// the algorithm, and its own `alg`, when it names one, is `alg`.
fn fits(jwk: &Jwk, alg: Algorithm) -> bool {
    use Algorithm as A;
    let kind = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => matches!(alg, A::RS256 | A::RS384 | A::RS512 | A::PS256 | A::PS384 | A::PS512),
        AlgorithmParameters::EllipticCurve(_) => matches!(alg, A::ES256 | A::ES384),
        AlgorithmParameters::OctetKeyPair(_) => alg == A::EdDSA,
        // A shared secret is never a provider's signing key here.
        AlgorithmParameters::OctetKey(_) => false,
    };
    let named = match jwk.common.key_algorithm {
        None => true,
        Some(KeyAlgorithm::RS256) => alg == A::RS256,
        Some(KeyAlgorithm::RS384) => alg == A::RS384,
        Some(KeyAlgorithm::RS512) => alg == A::RS512,
        Some(KeyAlgorithm::PS256) => alg == A::PS256,
        Some(KeyAlgorithm::PS384) => alg == A::PS384,
        Some(KeyAlgorithm::PS512) => alg == A::PS512,
        Some(KeyAlgorithm::ES256) => alg == A::ES256,
        Some(KeyAlgorithm::ES384) => alg == A::ES384,
        Some(KeyAlgorithm::EdDSA) => alg == A::EdDSA,
        Some(_) => false,
    };
    kind && named
}

/// Why an ID token was refused, in words (never the token).
fn token_error(kind: &jsonwebtoken::errors::ErrorKind) -> String {
    use jsonwebtoken::errors::ErrorKind as K;
    match kind {
        K::InvalidSignature => "its signature does not verify".into(),
        K::InvalidAlgorithm => "its algorithm does not fit the provider's key".into(),
        K::ExpiredSignature => "it has expired".into(),
        K::ImmatureSignature => "it is not valid yet (`nbf`)".into(),
        K::InvalidIssuer => "another issuer made it".into(),
        K::InvalidAudience => "it was issued to another client (`aud`)".into(),
        K::MissingRequiredClaim(c) => format!("it has no `{c}`"),
        _ => "it is malformed".into(),
    }
}

fn fresh<T>(cache: &Cached<T>, max_age: Duration) -> Option<Arc<T>> {
    lock(cache).as_ref().filter(|(_, at)| at.elapsed() < max_age).map(|(v, _)| v.clone())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A reqwest error without its URL (which may carry a code or a query).
fn without_url(e: reqwest::Error) -> String {
    if e.is_timeout() {
        return "it did not answer in time".into();
    }
    if e.is_connect() {
        return "the connection failed".into();
    }
    e.without_url().to_string()
}

/// Text the provider sent, shortened and stripped of control characters.
pub(super) fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(100).collect()
}

async fn read_json(mut resp: reqwest::Response) -> Result<Value, String> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| format!("the answer broke off: {}", without_url(e)))? {
        if body.len() + chunk.len() > MAX_ANSWER {
            return Err("the answer is too large".into());
        }
        body.extend_from_slice(&chunk);
    }
    serde_json::from_slice(&body).map_err(|_| "the answer is not JSON".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_fit_their_algorithm() {
        let jwk = |v: Value| serde_json::from_value::<Jwk>(v).unwrap();
        let rsa = jwk(serde_json::json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"}));
        assert!(fits(&rsa, Algorithm::RS256) && fits(&rsa, Algorithm::PS256));
        assert!(!fits(&rsa, Algorithm::ES256) && !fits(&rsa, Algorithm::HS256));
        let named = jwk(serde_json::json!({"kty": "RSA", "alg": "RS512", "n": "AQAB", "e": "AQAB"}));
        assert!(!fits(&named, Algorithm::RS256) && fits(&named, Algorithm::RS512));
        let secret = jwk(serde_json::json!({"kty": "oct", "k": "c2VjcmV0"}));
        assert!(!fits(&secret, Algorithm::HS256));
    }
}
