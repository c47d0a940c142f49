//! Console single sign-on with OpenID Connect, end to end: the real `hookd`
//! signs people in through a small but real provider on loopback (discovery,
//! JWKS, an authorization endpoint that signs the configured user in at once,
//! and a token endpoint that checks the code, the client secret and the PKCE
//! verifier before it returns a signed ID token). A browser is played by hand:
//! cookies kept per path, every redirect followed explicitly.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::support::{ServerOptions, TestServer};

const CLIENT_ID: &str = "hookd-console";
const CLIENT_SECRET: &str = "s3cret: with/odd+characters";

/// How the provider signs the next ID token.
#[derive(Clone, Copy, PartialEq)]
enum Signer {
    Rsa,
    Ed25519,
    /// An RSA key that is not in the JWKS, under the JWKS key's id.
    Stranger,
    /// HMAC with the client secret (what an attacker who knows it could make).
    ClientSecret,
    /// `alg: none`, no signature.
    Unsigned,
}

/// Who signs in next, and how their ID token is made.
#[derive(Clone)]
struct NextUser {
    email: String,
    groups: Value,
    signer: Signer,
    /// Claims set over the usual ones (`Value::Null` removes one).
    overrides: Value,
}

impl NextUser {
    fn new(email: &str, groups: Value) -> NextUser {
        NextUser { email: email.into(), groups, signer: Signer::Rsa, overrides: json!({}) }
    }
}

struct Issued {
    user: NextUser,
    nonce: String,
    challenge: String,
    redirect_uri: String,
}

#[derive(Default)]
struct ProviderState {
    issuer: String,
    redirect_uri: String,
    next: Option<NextUser>,
    codes: HashMap<String, Issued>,
}

/// The OpenID provider on 127.0.0.1.
struct Provider {
    issuer: String,
    state: Arc<Mutex<ProviderState>>,
}

impl Provider {
    async fn start() -> Provider {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(ProviderState { issuer: issuer.clone(), ..Default::default() }));
        let app = axum::Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Provider { issuer, state }
    }

    /// The client's registered redirect URI.
    fn register(&self, hookd: &TestServer) {
        self.state.lock().unwrap().redirect_uri = hookd.url("/console/oidc/callback");
    }

    fn next(&self, user: NextUser) {
        self.state.lock().unwrap().next = Some(user);
    }
}

type Shared = State<Arc<Mutex<ProviderState>>>;

async fn discovery(State(s): Shared) -> Json<Value> {
    let issuer = s.lock().unwrap().issuer.clone();
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "EdDSA"],
        "code_challenge_methods_supported": ["S256"],
    }))
}

async fn jwks() -> Json<Value> {
    Json(json!({ "keys": [
        { "kty": "RSA", "kid": "k1", "use": "sig", "alg": "RS256", "n": RSA_N, "e": "AQAB" },
        { "kty": "OKP", "kid": "k2", "use": "sig", "alg": "EdDSA", "crv": "Ed25519", "x": ED25519_X },
        // An encryption key, as Keycloak publishes one: not for signatures, skipped.
        { "kty": "RSA", "kid": "enc", "use": "enc", "alg": "RSA-OAEP", "n": RSA_N, "e": "AQAB" },
    ]}))
}

/// Signs the configured user in at once: back to the client with a code, if
/// the request is a proper one (this client, its redirect URI, PKCE S256).
async fn authorize(State(s): Shared, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut s = s.lock().unwrap();
    let arg = |k: &str| q.get(k).cloned().unwrap_or_default();
    let proper = arg("response_type") == "code"
        && arg("client_id") == CLIENT_ID
        && arg("redirect_uri") == s.redirect_uri
        && arg("code_challenge_method") == "S256"
        && arg("code_challenge").len() == 43
        && arg("scope").split(' ').any(|x| x == "openid")
        && !arg("state").is_empty()
        && !arg("nonce").is_empty();
    if !proper {
        return (StatusCode::BAD_REQUEST, format!("not a proper authorization request: {q:?}")).into_response();
    }
    let user = s.next.clone().expect("the test says who signs in");
    let code = format!("code-{}", s.codes.len());
    let issued =
        Issued { user, nonce: arg("nonce"), challenge: arg("code_challenge"), redirect_uri: arg("redirect_uri") };
    s.codes.insert(code.clone(), issued);
    let back = format!("{}?code={code}&state={}", arg("redirect_uri"), arg("state"));
    (StatusCode::SEE_OTHER, [(header::LOCATION, back)]).into_response()
}

/// The code exchanged, once, by this client with its secret and the PKCE
/// verifier whose S256 is the challenge the authorization request carried.
async fn token(State(s): Shared, headers: HeaderMap, body: String) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    let refuse = |status: StatusCode, error: &str| (status, Json(json!({ "error": error }))).into_response();
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let basic = format!("Basic {}", STANDARD.encode(format!("{}:{}", enc(CLIENT_ID), enc(CLIENT_SECRET))));
    if headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) != Some(basic.as_str()) {
        return refuse(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    let mut s = s.lock().unwrap();
    let Some(issued) = form.get("code").and_then(|c| s.codes.remove(c)) else {
        return refuse(StatusCode::BAD_REQUEST, "invalid_grant");
    };
    let verifier = form.get("code_verifier").map(String::as_str).unwrap_or("");
    let pkce = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) == issued.challenge;
    if form.get("grant_type").map(String::as_str) != Some("authorization_code")
        || form.get("redirect_uri") != Some(&issued.redirect_uri)
        || !pkce
    {
        return refuse(StatusCode::BAD_REQUEST, "invalid_grant");
    }
    let id_token = id_token(&s.issuer, &issued);
    Json(json!({ "access_token": "opaque", "token_type": "Bearer", "expires_in": 300, "id_token": id_token }))
        .into_response()
}

fn id_token(issuer: &str, issued: &Issued) -> String {
    let user = &issued.user;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let mut claims = json!({
        "iss": issuer,
        "sub": format!("user-{}", user.email),
        "aud": CLIENT_ID,
        "exp": now + 300,
        "iat": now,
        "nonce": issued.nonce,
        "email": user.email,
        "email_verified": true,
        "groups": user.groups,
    });
    for (k, v) in user.overrides.as_object().unwrap() {
        match v {
            Value::Null => claims.as_object_mut().unwrap().remove(k),
            v => claims.as_object_mut().unwrap().insert(k.clone(), v.clone()),
        };
    }
    let der = |b64: &str| STANDARD.decode(b64).unwrap();
    let with_kid = |alg: Algorithm, kid: &str| Header { kid: Some(kid.into()), ..Header::new(alg) };
    let (header, key) = match user.signer {
        Signer::Rsa => (with_kid(Algorithm::RS256, "k1"), EncodingKey::from_rsa_der(&der(RSA_KEY))),
        Signer::Stranger => (with_kid(Algorithm::RS256, "k1"), EncodingKey::from_rsa_der(&der(STRANGER_KEY))),
        Signer::Ed25519 => (with_kid(Algorithm::EdDSA, "k2"), EncodingKey::from_ed_der(&der(ED25519_KEY))),
        Signer::ClientSecret => (with_kid(Algorithm::HS256, "k1"), EncodingKey::from_secret(CLIENT_SECRET.as_bytes())),
        Signer::Unsigned => {
            let part = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
            return format!("{}.{}.", part(&json!({"alg": "none", "kid": "k1"})), part(&claims));
        }
    };
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

/// A browser without JavaScript: cookies by name and path, no automatic redirects.
struct Browser {
    client: reqwest::Client,
    /// name → (value, path), for hookd's host only.
    jar: HashMap<String, (String, String)>,
    hookd: String,
}

struct Page {
    status: u16,
    location: String,
    /// The `Set-Cookie` headers, as sent.
    set_cookies: Vec<String>,
    refresh: String,
    html: String,
}

impl Page {
    fn csrf(&self) -> String {
        let at = self.html.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + 19;
        self.html[at..at + 32].to_string()
    }

    fn set_cookie(&self, name: &str) -> Option<&str> {
        self.set_cookies.iter().find(|c| c.starts_with(&format!("{name}="))).map(String::as_str)
    }
}

impl Browser {
    fn new(hookd: &TestServer) -> Browser {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Browser { client, jar: HashMap::new(), hookd: hookd.base.clone() }
    }

    fn cookie(&self, name: &str) -> Option<String> {
        self.jar.get(name).map(|(v, _)| v.clone())
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let req = req.build().unwrap();
        let (url, path) = (req.url().to_string(), req.url().path().to_string());
        let mut req = reqwest::RequestBuilder::from_parts(self.client.clone(), req);
        if url.starts_with(&self.hookd) {
            let cookies: Vec<String> = self
                .jar
                .iter()
                .filter(|(_, (_, p))| path.starts_with(p.as_str()))
                .map(|(k, (v, _))| format!("{k}={v}"))
                .collect();
            if !cookies.is_empty() {
                req = req.header("cookie", cookies.join("; "));
            }
        }
        let resp = req.send().await.unwrap();
        let set_cookies: Vec<String> =
            resp.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).collect();
        for set in &set_cookies {
            let mut attrs = set.split(';').map(str::trim);
            let (name, value) = attrs.next().unwrap().split_once('=').unwrap();
            let attrs: Vec<&str> = attrs.collect();
            let path = attrs.iter().find_map(|a| a.strip_prefix("Path=")).unwrap_or("/").to_string();
            if attrs.contains(&"Max-Age=0") {
                self.jar.remove(name);
            } else {
                self.jar.insert(name.to_string(), (value.to_string(), path));
            }
        }
        let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let (status, location, refresh) = (resp.status().as_u16(), header("location"), header("refresh"));
        let html = resp.text().await.unwrap();
        assert!(!html.contains(CLIENT_SECRET), "a page shows the client secret");
        Page { status, location, set_cookies, refresh, html }
    }

    async fn get(&mut self, url: &str) -> Page {
        let url = if url.starts_with('/') { format!("{}{url}", self.hookd) } else { url.to_string() };
        let req = self.client.get(url);
        self.send(req).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let body: String = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        let req = self
            .client
            .post(format!("{}{path}", self.hookd))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        self.send(req).await
    }

    /// Starts a sign-in and lets the provider answer: the URL it sends the
    /// browser back to (not followed yet).
    async fn visit_provider(&mut self) -> String {
        let start = self.get("/console/oidc/login").await;
        assert_eq!(start.status, 303, "{}", start.html);
        let at_provider = self.get(&start.location).await;
        assert_eq!(at_provider.status, 303, "{}", at_provider.html);
        at_provider.location
    }

    /// A whole sign-in: the callback's page.
    async fn sign_in(&mut self) -> Page {
        let back = self.visit_provider().await;
        self.get(&back).await
    }
}

/// Runs `hookd` with these arguments on `dir` (the CLI on the database).
fn hookd_cli(dir: &tempfile::TempDir, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookd"))
        .args(args)
        .arg("--data-dir")
        .arg(dir.path())
        .env_remove("HOOKD_ADMIN_TOKEN")
        .output()
        .expect("run hookd");
    assert!(out.status.success(), "hookd {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Two organisations and a `hookd` whose console signs in through `idp`:
/// `ops` → Acme admin, `auditors` → Acme read-only, `globex-ops` → Globex admin.
async fn hookd_with_sso(idp: &Provider) -> (TestServer, String, String) {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let acme = hookd_cli(&dir, &["org", "create", "Acme"]);
    let globex = hookd_cli(&dir, &["org", "create", "Globex"]);
    let args = [
        "--oidc-issuer".to_string(),
        idp.issuer.clone(),
        "--oidc-client-id".into(),
        CLIENT_ID.into(),
        "--oidc-client-secret".into(),
        CLIENT_SECRET.into(),
        "--oidc-map".into(),
        format!("ops={acme}:admin"),
        "--oidc-map".into(),
        format!("auditors={acme}:read-only"),
        "--oidc-map".into(),
        format!("globex-ops={globex}:admin"),
    ];
    let hookd = TestServer::spawn_in(dir, ServerOptions { extra_args: args.to_vec(), ..Default::default() }).await;
    idp.register(&hookd);
    (hookd, acme, globex)
}

/// What the API says of a token: its organisation and role (`None`: refused).
async fn whoami(hookd: &TestServer, token: &str) -> Option<(String, String)> {
    let resp = hookd.client.get(hookd.url("/api/v1/auth/whoami")).bearer_auth(token).send().await.unwrap();
    if resp.status() != 200 {
        return None;
    }
    let me: Value = resp.json().await.unwrap();
    Some((me["envId"].as_str()?.to_string(), me["role"].as_str()?.to_string()))
}

/// The organisation's audit trail as (actor, action), newest first.
async fn audit_actions(hookd: &TestServer, token: &str) -> Vec<(String, String)> {
    let resp = hookd.client.get(hookd.url("/api/v1/audit?limit=50")).bearer_auth(token).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let audit: Value = resp.json().await.unwrap();
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    audit["data"].as_array().unwrap().iter().map(|e| (text(&e["actor"]), text(&e["action"]))).collect()
}

#[tokio::test]
async fn a_mapped_user_signs_in_to_the_organisation_and_role_of_their_first_mapped_group() {
    let idp = Provider::start().await;
    let (hookd, acme, globex) = hookd_with_sso(&idp).await;

    // The sign-in page offers single sign-on beside the token form.
    let mut alice = Browser::new(&hookd);
    let login = alice.get("/console/login").await;
    assert!(login.html.contains("href=\"/console/oidc/login\"") && login.html.contains("Sign in with single sign-on"));
    assert!(login.html.contains("name=\"token\""), "token sign-in stays");

    // Alice (ops) becomes Acme's admin. The sign-in state lives in a sealed,
    // short-lived cookie for /console/oidc that the provider's redirect carries.
    idp.next(NextUser::new("alice@example.com", json!(["staff", "ops"])));
    let start = alice.get("/console/oidc/login").await;
    assert_eq!(start.status, 303);
    assert!(start.location.starts_with(&format!("{}/authorize?", idp.issuer)), "{}", start.location);
    let state_cookie = start.set_cookie("hookd_oidc").expect("the sign-in state cookie");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/console/oidc", "Max-Age=600"] {
        assert!(state_cookie.contains(attr), "{attr}: {state_cookie}");
    }
    assert!(state_cookie.starts_with("hookd_oidc=enc1:"), "sealed: {state_cookie}");
    let back = alice.get(&start.location).await;
    let done = alice.get(&back.location).await;
    assert_eq!(done.status, 200, "{}", done.html);
    assert_eq!(done.refresh, "0; url=/console/apps");
    assert!(done.html.contains("href=\"/console/apps\""));
    let session = done.set_cookie("hookd_console").expect("a console session");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(session.contains(attr), "{attr}: {session}");
    }
    assert!(alice.cookie("hookd_oidc").is_none(), "the sign-in state is spent");
    let alice_token = alice.cookie("hookd_console").unwrap();
    assert_eq!(whoami(&hookd, &alice_token).await, Some((acme.clone(), "admin".to_string())));
    // Her session's token is named for her and lasts 8 hours (the default).
    let (_, tokens) = hookd.get(&format!("/api/v1/management/authentication/{acme}/api-token")).await;
    let minted = tokens["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "console sso: alice@example.com")
        .unwrap_or_else(|| panic!("the session's token: {tokens}"))
        .clone();
    let expires = hookd_core::timefmt::parse_rfc3339_millis(minted["expiresAt"].as_str().unwrap()).unwrap();
    let hours = (expires - hookd_core::timefmt::now_millis()) as f64 / 3_600_000.0;
    assert!((7.9..=8.0).contains(&hours), "{minted}");

    // As Acme's admin she makes an application in the console.
    let apps = alice.get("/console/apps").await;
    assert_eq!(apps.status, 200, "{}", apps.html);
    let made = alice.post("/console/apps", &[("csrf", &apps.csrf()), ("name", "Acme billing")]).await;
    assert_eq!(made.status, 303, "{}", made.html);
    assert!(alice.get("/console/apps").await.html.contains("Acme billing"));

    // Bob's provider sends one group as a string, and signs with Ed25519:
    // Globex's admin, who does not see Acme's application.
    let mut bob = Browser::new(&hookd);
    idp.next(NextUser { signer: Signer::Ed25519, ..NextUser::new("bob@example.com", json!("globex-ops")) });
    assert_eq!(bob.sign_in().await.status, 200);
    assert_eq!(whoami(&hookd, &bob.cookie("hookd_console").unwrap()).await, Some((globex, "admin".to_string())));
    let bobs = bob.get("/console/apps").await;
    assert_eq!(bobs.status, 200);
    assert!(!bobs.html.contains("Acme billing"), "another organisation's application");

    // Carol is in globex-ops and auditors: the first mapping in flag order
    // that matches (auditors) decides, so she reads Acme and cannot change it.
    let mut carol = Browser::new(&hookd);
    idp.next(NextUser::new("carol@example.com", json!(["globex-ops", "auditors"])));
    assert_eq!(carol.sign_in().await.status, 200);
    let carol_token = carol.cookie("hookd_console").unwrap();
    assert_eq!(whoami(&hookd, &carol_token).await, Some((acme.clone(), "read-only".to_string())));
    let hers = carol.get("/console/apps").await;
    assert!(hers.html.contains("Acme billing"));
    let refused = carol.post("/console/apps", &[("csrf", &hers.csrf()), ("name", "Not allowed")]).await;
    assert_eq!(refused.status, 403, "{}", refused.html);

    // The sign-ins are in Acme's audit trail, by who signed in.
    let entries = audit_actions(&hookd, &alice_token).await;
    for (actor, action) in [
        ("sso:alice@example.com", "console.sso-sign-in (admin)"),
        ("sso:carol@example.com", "console.sso-sign-in (read-only)"),
    ] {
        assert!(entries.contains(&(actor.to_string(), action.to_string())), "{actor}: {entries:?}");
    }

    // Signing out ends the session's token at once.
    let page = alice.get("/console/apps").await;
    let out = alice.post("/console/logout", &[("csrf", &page.csrf())]).await;
    assert_eq!((out.status, out.location.as_str()), (303, "/console/login"));
    assert!(alice.cookie("hookd_console").is_none());
    assert_eq!(whoami(&hookd, &alice_token).await, None, "the signed-out token is expired");
    alice.jar.insert("hookd_console".into(), (alice_token.clone(), "/console".into()));
    assert_eq!(alice.get("/console/apps").await.location, "/console/login?expired=1", "a kept cookie opens nothing");
    // Carol's session goes on, and reads the sign-out in the audit trail.
    assert!(whoami(&hookd, &carol_token).await.is_some());
    assert!(audit_actions(&hookd, &carol_token).await.iter().any(|(_, action)| action == "console.sso-sign-out"));

    // A pasted API token outlives its console session's sign-out.
    let (status, made) = hookd
        .post(
            &format!("/api/v1/management/authentication/{acme}/api-token"),
            json!({"name": "ci", "scopes": ["read-only"]}),
        )
        .await;
    assert_eq!(status, 200, "{made}");
    let pasted = made["token"].as_str().unwrap().to_string();
    let mut dan = Browser::new(&hookd);
    assert_eq!(dan.post("/console/login", &[("token", &pasted)]).await.status, 303);
    let page = dan.get("/console/apps").await;
    assert_eq!(dan.post("/console/logout", &[("csrf", &page.csrf())]).await.status, 303);
    assert!(whoami(&hookd, &pasted).await.is_some(), "a pasted token is not ended by signing out");
}

#[tokio::test]
async fn an_account_whose_groups_are_not_mapped_is_refused() {
    let idp = Provider::start().await;
    let (hookd, _, _) = hookd_with_sso(&idp).await;
    for (email, groups) in [("mallory@example.com", json!(["interns", "staff"])), ("nobody@example.com", Value::Null)] {
        let mut b = Browser::new(&hookd);
        let overrides = if groups.is_null() { json!({ "groups": null }) } else { json!({}) };
        idp.next(NextUser { overrides, ..NextUser::new(email, groups) });
        let page = b.sign_in().await;
        assert_eq!(page.status, 403, "{}", page.html);
        assert!(
            page.html.contains(&format!("Your account ({email}) is not mapped to any organisation")),
            "{}",
            page.html
        );
        assert!(b.cookie("hookd_console").is_none(), "no session");
        assert!(b.cookie("hookd_oidc").is_none(), "the sign-in state is spent");
        assert_eq!(b.get("/console/apps").await.location, "/console/login");
    }
}

#[tokio::test]
async fn a_sign_in_whose_state_is_altered_missing_or_spent_is_refused() {
    let idp = Provider::start().await;
    let (hookd, _, _) = hookd_with_sso(&idp).await;
    idp.next(NextUser::new("alice@example.com", json!(["ops"])));

    // The state in the URL altered.
    let mut b = Browser::new(&hookd);
    let back = b.visit_provider().await;
    let altered = back.replace("state=", "state=x");
    let page = b.get(&altered).await;
    assert_eq!(page.status, 400, "{}", page.html);
    assert!(page.html.contains("Start the sign-in again"), "{}", page.html);
    assert!(b.cookie("hookd_console").is_none());

    // Another browser (no state cookie) following the provider's redirect.
    let mut b = Browser::new(&hookd);
    let back = b.visit_provider().await;
    let mut other = Browser::new(&hookd);
    assert_eq!(other.get(&back).await.status, 400);

    // The sealed cookie altered: it no longer opens.
    let sealed = b.cookie("hookd_oidc").unwrap();
    let flipped = if sealed.ends_with('A') { 'B' } else { 'A' };
    let forged = format!("{}{flipped}", &sealed[..sealed.len() - 1]);
    b.jar.insert("hookd_oidc".into(), (forged, "/console/oidc".into()));
    assert_eq!(b.get(&back).await.status, 400);
    // Nor does a plain-text state the browser made up.
    let state = back.split("state=").nth(1).unwrap().to_string();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let plain = json!({"state": state, "nonce": "n", "verifier": "v".repeat(43), "at": now}).to_string();
    b.jar.insert("hookd_oidc".into(), (plain, "/console/oidc".into()));
    assert_eq!(b.get(&back).await.status, 400);

    // A used code does not sign in twice: the provider refuses it (401).
    let mut b = Browser::new(&hookd);
    let back = b.visit_provider().await;
    let sealed = b.cookie("hookd_oidc").unwrap();
    assert_eq!(b.get(&back).await.status, 200);
    b.jar.insert("hookd_oidc".into(), (sealed, "/console/oidc".into()));
    let again = b.get(&back).await;
    assert_eq!(again.status, 401, "{}", again.html);
    assert!(again.html.contains("invalid_grant"), "{}", again.html);

    // The provider's own refusal comes back as an error with the state.
    let mut b = Browser::new(&hookd);
    let back = b.visit_provider().await;
    let state = back.split("state=").nth(1).unwrap();
    let page = b.get(&format!("/console/oidc/callback?error=access_denied&state={state}")).await;
    assert_eq!(page.status, 401, "{}", page.html);
    assert!(page.html.contains("access_denied"));
}

#[tokio::test]
async fn an_id_token_that_does_not_verify_is_refused() {
    let idp = Provider::start().await;
    let (hookd, _, _) = hookd_with_sso(&idp).await;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let user = || NextUser::new("alice@example.com", json!(["ops"]));
    let cases = [
        ("another sign-in's nonce", NextUser { overrides: json!({"nonce": "not-this-one"}), ..user() }, "nonce"),
        ("no nonce", NextUser { overrides: json!({"nonce": null}), ..user() }, "nonce"),
        ("another client", NextUser { overrides: json!({"aud": "someone-else"}), ..user() }, "aud"),
        (
            "several audiences, no azp",
            NextUser { overrides: json!({"aud": [CLIENT_ID, "someone-else"]}), ..user() },
            "azp",
        ),
        (
            "azp of another client",
            NextUser { overrides: json!({"aud": [CLIENT_ID, "x"], "azp": "x"}), ..user() },
            "azp",
        ),
        ("another issuer", NextUser { overrides: json!({"iss": "http://127.0.0.1:1"}), ..user() }, "issuer"),
        ("expired", NextUser { overrides: json!({"exp": now - 120, "iat": now - 400}), ..user() }, "expired"),
        ("issued an hour ago", NextUser { overrides: json!({"iat": now - 3600}), ..user() }, "too long ago"),
        ("not signed by the provider", NextUser { signer: Signer::Stranger, ..user() }, "signature"),
        ("HMAC with the client secret", NextUser { signer: Signer::ClientSecret, ..user() }, "not accepted"),
        ("unsigned", NextUser { signer: Signer::Unsigned, ..user() }, "not a signed JWT"),
    ];
    for (what, next, why) in cases {
        let mut b = Browser::new(&hookd);
        idp.next(next);
        let page = b.sign_in().await;
        assert_eq!(page.status, 401, "{what}: {}", page.html);
        assert!(page.html.contains(why), "{what}: {}", page.html);
        assert!(b.cookie("hookd_console").is_none(), "{what}: no session");
    }
    // And the same provider signs a proper token in.
    let mut b = Browser::new(&hookd);
    idp.next(user());
    assert_eq!(b.sign_in().await.status, 200);
}

#[tokio::test]
async fn an_unreachable_provider_answers_502_and_no_provider_404() {
    // A port nothing listens on.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let args = [
        "--oidc-issuer",
        &format!("http://{closed}"),
        "--oidc-client-id",
        CLIENT_ID,
        "--oidc-client-secret",
        CLIENT_SECRET,
        "--oidc-map",
        "ops=default:admin",
    ];
    let opts = ServerOptions { extra_args: args.iter().map(|a| a.to_string()).collect(), ..Default::default() };
    let hookd = TestServer::spawn_with(opts).await;
    let mut b = Browser::new(&hookd);
    let page = b.get("/console/oidc/login").await;
    assert_eq!(page.status, 502, "{}", page.html);
    assert!(page.html.contains("could not be fetched"), "{}", page.html);
    assert!(b.cookie("hookd_oidc").is_none());

    let plain = TestServer::spawn().await;
    let mut b = Browser::new(&plain);
    assert!(!b.get("/console/login").await.html.contains("/console/oidc/login"), "no single sign-on offered");
    assert_eq!(b.get("/console/oidc/login").await.status, 404);
    assert_eq!(b.get("/console/oidc/callback?code=x&state=y").await.status, 404);
}

/// Test keys made for these tests only (`openssl genrsa 2048`, PKCS#1; `openssl
/// genpkey -algorithm ed25519`, PKCS#8), base64 DER. The provider signs with
/// `RSA_KEY` (JWKS `k1`) and `ED25519_KEY` (JWKS `k2`); `STRANGER_KEY` is in no JWKS.
pub const RSA_KEY: &str = "\
MIIEogIBAAKCAQEAmWhPZIvReUhqJqDHRS1gxZxsIheDjrAcV3TTPcJV1Ci4fIgD\
E/D1AMJ0EhmkpKm7hMZv1wpAhQSd8g8hm4/TzU3FmKmvtFdOVKlDw4kWwY9WNNOi\
h9IOvtFDaG1Mi/XexIUQ/RoxRdoS5xuK9KprJrtWu6eoZwdWfyca4onhinthcgjm\
V4j2i53ddv+Qv3+XVm3N2uab7sh/luPfx/Uzbc2WreApkUvpEe09/cutr+gHp0JX\
IN7DUjkcMOj3kK3Ju3DXWm6qcA+N1bodMGUgvvafhV3OxHpZZQgCynUcx0ZaOsmP\
rUSWoXlGaQW4DUSZUkdX3oaUEJRNXis/T15iNwIDAQABAoIBACdeTAWXFhZEXa11\
FD5uA0gjOOLU2veavWM6QV23ihQssQ+QTg3nh9B+lo/wkb6KKmvMCvaKFH2ubiQo\
+uxzkBy/SSbA4SzsPNdgKto6y6K3uJ1M9IhbgVo51M0vQ3Yljlorde0mNB/jc3do\
q5PXSjFB4WO+BmsOSIXQEMezL7S8SC0QH79xHectyhPHwIccKbtDSKJDH0ZL4zCP\
q9DnhXuvtmnTVjMa04qzz2iFCgkVmpmlf4VIg/F+SQDX1+Sl++F/RfgQVSF44510\
QxJoKloggMGvQd2o3yjSceyKGpe6LML5udvzilj+pXLRLKoO0ARa7B7ylMlYzl/E\
DeYDngECgYEA0RCI9g2kDCWKBJvywMll8Wj+1FUwvuc9OSng8GooNf9Ri2qJ7BCs\
TKGo+Yj9JpNC9+UKWZzHw0BBYqEZgDQeie/0rZUXh65xzR83b6UkrqwkCRejUDEg\
lmQZ64uXnmPjQbLDIQ1JCVq9IEUk2W1BoiJ/WmceAOOoSdzfdLthpDcCgYEAu9kF\
TZ/3HXY5dIIJzSuZq2p4CmMIRWk3hRm2/2ajoqQJr0HRjEItdNrjAk6URGzjt6Vr\
H7LlF/uWvf8v73sYbleMpAnoa6GkvPC/yJb2AHEbEsi4rq0f1QPfsAuPsBalCOl2\
9VaxhLLUUE+4uUDNcEj3QLGFPaAEQgaNZIxmMgECgYBp4u8LeEMzJ7wss3OS8y5f\
w+b1UiR7PBFFJ5HXEl1FZAhADXjHiHZL5cD4icp1xDYx6d6BHqgKmzvCoYeR6FPj\
VxZc6FtfjBn1Yy8nq8PVeDhUJpW/ovI3WYHLTAtB3KOYfdrYnar1QvDxLDQKr4yD\
eud3uSx4FNYCewzuSY2dpwKBgFnwNFvQJS7T9fpUcIDtSSwLU+IVPFaPY+e0QivS\
ZrJuO7zPlJbE8KKsUlg+azq/r9+zsbCBpLJw4OGjFr5gf3gFLu8zVzaBNDDKS+is\
bqgTf1TlCZeIiF8i9ayCPI+gp++2aCBbG69fN8wj/1ujLTl/lfJBjHvO63r5TCVC\
G4QBAoGADvtsAYiwOux8bsegXmbdHQQbqdZ8TqI4GPSml52dkGhnGlJwHxDo3WW/\
wBlCW+sJkj/54hkvJWrGEkL5vecG2S2iG+Ne/LAuDMUbjSitkSui7yZcxTjtu5vF\
DSKE5F8gK5rNZDkzyqSPlIdFKL5J6vSERMQrqJlNcD7EPr/AlhU=";
pub const RSA_N: &str = "mWhPZIvReUhqJqDHRS1gxZxsIheDjrAcV3TTPcJV1Ci4fIgDE_D1AMJ0EhmkpKm7hMZv1wpAhQSd8g8hm4_TzU3FmKmvtFdOVKlDw4kWwY9WNNOih9IOvtFDaG1Mi_XexIUQ_RoxRdoS5xuK9KprJrtWu6eoZwdWfyca4onhinthcgjmV4j2i53ddv-Qv3-XVm3N2uab7sh_luPfx_Uzbc2WreApkUvpEe09_cutr-gHp0JXIN7DUjkcMOj3kK3Ju3DXWm6qcA-N1bodMGUgvvafhV3OxHpZZQgCynUcx0ZaOsmPrUSWoXlGaQW4DUSZUkdX3oaUEJRNXis_T15iNw";
const STRANGER_KEY: &str = "\
MIIEowIBAAKCAQEAztlOy0viJCP8OuXX/L8GBU4v1wXzU65sB1LaFoTH2pSc4LOu\
5/xuu2Dpdru9c0DIx9VCCfq5+JRQZz7Ydka7ciQeGt9eS4yVquQ3erBVGMCyoTuu\
OVLmZ8luKRYjWGlJv3o7+Xs++mDX5FWWbHIZppFxA9gMkiYgwxDUeQG2qMQcaVs4\
SNL34y/nvZMw6qAIjaihrTIbYSs+QzPkCLRkLvPUTWjk8BC1T5puYbR5LjssZqTS\
2+9I5KiLeeUt1OkZDDHEvKD7RdydtZIbVfPmzP4YefjMMbJUWS+Hp694T1onc/8o\
f4gP/w7lwdipasb6bFuSOCoI8cJYxoLkvtQr5QIDAQABAoIBAALf6dlUyjRj9tBj\
Uf6d9Vt9z/IZF1ZZltMMSlbbIV+N93j+rN5W5p2H3JXP7mvjAc7bgkB5MaWRxpJI\
SKHmwgsEbeStiX2BAO5sVEngtluw2pfZkd0EfpmIl9kwCNbzvQ1vcuPAY6TC+SO2\
jKwCJ7NmD4WkAcB7gmd2bBdkqQbSB4zE+Wj+I0R5AAA2uH5CbeRcZl3aG9PtwGuC\
otLpavusyEc0iHMkT3T1QokkJeR/bjm44Uxr9yl/x+96nQ2BjxtmvQqGBhOZimkK\
5tdeW6f8EwFTwIzaYr1bmh0SpdSIfV5/t7wNMkrJw7Pdwk2FCKw8rVzxq2SYLEqs\
oooY8zECgYEA9dkV0bXXaupL5JlMawukPTBf1vpHAnmi9SjRZau5/bCJmgkrS2H7\
KnxfNZDCp9ZudkABgjmLxwvGC0GFDI/wk3L3jz6/Ts2ZPEQccl5lyGqLHJEyqE3W\
zhla3+TQ1Xo9ssIoYi0YwYgDhNSJekCqli5ybLXSXmMo4Icv21aHEA0CgYEA12P0\
M+H73bd7gpCgOFkOrtQJ2Z2t8CWC8kTJSgEEBPwe5YbEfw1JpThddw1ZOgsM2WhS\
U7L9H5KIgFh2RJn464HPOAWr3p+KCOG11/Iu/CNIjZUmARC07Na8uPcK9QlzHrsS\
zQiOghzJldKvLEJHjoAUXMOM818twnojkPGIvTkCgYEAjwZ3QiSnKUUbV+ezZIdG\
Sm7NIvVBwHfhTP0tLRgFwUgmFV4GOPnMtD/c5/3KsPf4FYVRG2C9J9R6p+u7Kr7G\
uBFnYoefponH/x6k6ghu8HTDb6AtN2rpb8eibaThtYBDSq7X7Z3MzDKD0ZAQVvYu\
B+cHnKT+uPi5PD6JofIp6zUCgYAB0G22Iikk7O61YtJ2pwlgn5iVpKZaZ3Z64+lu\
HiQShq0b8c6l407DfX4MCqi9vGoXSrGm0tMe+PT9X8FfQoy+LxG3vxR7g4x+FqiZ\
cQjERufNiXwQdjuP4x8jz7Df73xwvdKit3e70NJB2Mxw6v3/TUTeoycExcB06uJx\
zhcAwQKBgDqpYHIpuoQAUM2HAfWwpxs0RLo9dT4RK7nJgEzDYG+CPFjirGH96vkK\
Pbvdj9OCKaGDbcUd481i9zqfO3P0TIUzSadMrxoxEh5583dx3Ts5nw3fgs/BWjAg\
Z5uy/Vpj3gYzY+3Vw93zhkPlCnsEruxVyQlfog0hsmhdQH+h9vln";
pub const ED25519_KEY: &str = "MC4CAQAwBQYDK2VwBCIEIINQD2A1rkeHU42NetoMQCjXOKB5zNpNQKZIAdYmlUSX";
pub const ED25519_X: &str = "yGqUFV9otARSkqBWULveJ46PJOTqSEfdL-UjXZCapfc";

#[tokio::test]
async fn an_email_the_provider_does_not_vouch_for_does_not_name_the_user() {
    let idp = Provider::start().await;
    let (hookd, acme, _) = hookd_with_sso(&idp).await;
    let mut dave = Browser::new(&hookd);
    let overrides = json!({"email_verified": false, "email": "ceo@example.com"});
    idp.next(NextUser { overrides, ..NextUser::new("dave@example.com", json!(["ops"])) });
    let start = dave.get("/console/oidc/login").await;
    let back = dave.get(&start.location).await;
    assert_eq!(dave.get(&back.location).await.status, 200);
    let (_, tokens) = hookd.get(&format!("/api/v1/management/authentication/{acme}/api-token")).await;
    let names: Vec<&str> = tokens["data"].as_array().unwrap().iter().filter_map(|t| t["name"].as_str()).collect();
    assert!(
        names.contains(&"console sso: user-dave@example.com (ceo@example.com, unverified)"),
        "named by the subject, the unverified email only noted: {names:?}"
    );
}
