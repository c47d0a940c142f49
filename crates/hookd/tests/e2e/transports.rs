//! How hookd reaches receivers that ask for more than a signature: OAuth2
//! access tokens from a real token server on loopback, HTTP basic and bearer
//! credentials, gzip request bodies and a per-endpoint timeout.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};

use crate::mgmt::{secret_of, text, wait_for_attempts};
use crate::support::{verify_standard_webhook, Reply, Sink, TestServer};

/// One token request as the token server saw it.
#[derive(Debug, Clone)]
struct TokenRequest {
    authorization: String,
    form: HashMap<String, String>,
}

/// A real OAuth2 token server: each request gets `tok-N` (N counting from 1),
/// valid for `expires_in` seconds, and is recorded.
#[derive(Clone, Default)]
struct TokenServer {
    requests: Arc<Mutex<Vec<TokenRequest>>>,
    expires_in: Arc<Mutex<u64>>,
}

async fn issue(State(s): State<TokenServer>, headers: HeaderMap, body: String) -> axum::response::Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let n = {
        let mut requests = s.requests.lock().unwrap();
        requests.push(TokenRequest { authorization, form });
        requests.len()
    };
    let expires_in = *s.expires_in.lock().unwrap();
    Json(json!({"access_token": format!("tok-{n}"), "token_type": "Bearer", "expires_in": expires_in})).into_response()
}

impl TokenServer {
    async fn start() -> (TokenServer, String) {
        let server = TokenServer { expires_in: Arc::new(Mutex::new(3600)), ..Default::default() };
        let app = axum::Router::new().route("/token", axum::routing::post(issue)).with_state(server.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/token", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (server, url)
    }

    fn requests(&self) -> Vec<TokenRequest> {
        self.requests.lock().unwrap().clone()
    }
}

async fn endpoint(server: &TestServer, sink: &Sink, extra: Value) -> (String, String) {
    let app = server.create_app("Acme").await;
    let mut body = json!({"url": sink.url("/hook")});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let ep = text(&server.create_endpoint(&app, body).await["id"]);
    (app, ep)
}

#[tokio::test]
async fn an_oauth_token_is_fetched_cached_and_renewed_after_a_401() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let (tokens, token_url) = TokenServer::start().await;
    let (app, ep) = endpoint(&server, &sink, json!({})).await;
    let oauth = format!("/api/v1/app/{app}/endpoint/{ep}/oauth");
    assert_eq!(server.get(&oauth).await.0, 404, "none yet");
    let config = json!({
        "grantType": "clientCredentials", "authMethod": "clientSecretBasic",
        "clientId": "hookd-client", "clientSecret": "s3cret-client", "tokenUrl": token_url,
        "scopes": ["webhooks.write", "audit"], "extraParams": {"audience": "https://api.example.com"}
    });
    let (status, body) = server.put(&oauth, config).await;
    assert_eq!(status, 204, "{body}");
    let (_, shown) = server.get(&oauth).await;
    assert_eq!(shown["clientId"], "hookd-client");
    assert!(!shown.to_string().contains("s3cret"), "the secret never comes back: {shown}");

    // The first delivery gets a token; the second reuses it.
    server.send_message(&app, "a.b", json!({"n": 1})).await;
    server.send_message(&app, "a.b", json!({"n": 2})).await;
    let got = sink.wait_for(2, Duration::from_secs(10)).await;
    assert!(got.iter().all(|r| r.header("authorization") == "Bearer tok-1"), "{got:?}");
    let asked = tokens.requests();
    assert_eq!(asked.len(), 1, "cached: {asked:?}");
    let basic = format!("Basic {}", STANDARD.encode("hookd-client:s3cret-client"));
    assert_eq!(asked[0].authorization, basic);
    assert_eq!(asked[0].form["grant_type"], "client_credentials");
    assert_eq!(
        (asked[0].form["scope"].as_str(), asked[0].form["audience"].as_str()),
        ("webhooks.write audit", "https://api.example.com")
    );

    // A 401: a fresh token and the request again, in the same attempt.
    sink.reply(&[Reply::new(401, &[])]);
    let msg = text(&server.send_message(&app, "a.b", json!({"n": 3})).await["id"]);
    let got = sink.wait_for(4, Duration::from_secs(10)).await;
    assert_eq!((got[2].header("authorization"), got[3].header("authorization")), ("Bearer tok-1", "Bearer tok-2"));
    let attempt = wait_for_attempts(&server, &app, &msg, 1).await.remove(0);
    assert_eq!(attempt["responseStatusCode"], 200, "{attempt}");
    assert!(text(&attempt["response"]).contains("new OAuth token after a 401"), "{attempt}");
    let headers = format!("/api/v1/app/{app}/msg/{msg}/attempt/{}/headers", text(&attempt["id"]));
    let (_, headers) = server.get(&headers).await;
    assert!(headers["sensitive"].as_array().unwrap().contains(&json!("authorization")), "{headers}");
    assert!(!headers.to_string().contains("tok-"), "the token is not kept: {headers}");

    // The token server down: the attempt fails and says why, without secrets.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let down = json!({"grantType": "clientCredentials", "authMethod": "clientSecretPost", "clientId": "c",
                      "clientSecret": "s3cret-post", "tokenUrl": format!("http://{closed}/token")});
    assert_eq!(server.put(&oauth, down).await.0, 204);
    let msg = text(&server.send_message(&app, "a.b", json!({"n": 4})).await["id"]);
    let attempt = wait_for_attempts(&server, &app, &msg, 1).await.remove(0);
    assert_eq!(attempt["responseStatusCode"], 0, "{attempt}");
    let why = text(&attempt["response"]);
    assert!(
        why.contains("OAuth token request") && why.contains("connection failed") && !why.contains("s3cret"),
        "{why}"
    );
    assert_eq!(sink.count(), 4, "nothing sent without a token");

    assert_eq!(server.delete(&oauth).await.0, 204);
    assert_eq!(server.get(&oauth).await.0, 404);
}

#[tokio::test]
async fn a_refresh_token_grant_posts_its_client_secret_and_refresh_token() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let (tokens, token_url) = TokenServer::start().await;
    let (app, ep) = endpoint(&server, &sink, json!({})).await;
    let oauth = format!("/api/v1/app/{app}/endpoint/{ep}/oauth");
    let refresh = json!({"grantType": "refreshToken", "authMethod": "clientSecretPost", "clientId": "c1",
                         "clientSecret": "cs", "tokenUrl": token_url, "refreshToken": "rt-1",
                         "extraHeaders": {"x-tenant": "acme"}});
    assert_eq!(server.put(&oauth, refresh).await.0, 204);
    server.send_message(&app, "a.b", json!({})).await;
    assert_eq!(sink.wait_for(1, Duration::from_secs(10)).await[0].header("authorization"), "Bearer tok-1");
    let asked = &tokens.requests()[0];
    let form = |k: &str| asked.form.get(k).cloned().unwrap_or_default();
    assert_eq!((form("grant_type"), form("refresh_token")), ("refresh_token".into(), "rt-1".into()));
    assert_eq!((form("client_id"), form("client_secret")), ("c1".into(), "cs".into()));
    assert_eq!(asked.authorization, "", "clientSecretPost: no Basic header");

    // Bad configurations are refused, naming the field.
    for (bad, field) in [
        (
            json!({"grantType": "refreshToken", "authMethod": "clientSecretPost", "clientId": "c", "clientSecret": "s", "tokenUrl": "http://127.0.0.1:1/t"}),
            "refreshToken",
        ),
        (
            json!({"grantType": "clientCredentials", "authMethod": "clientSecretBasic", "clientId": "c", "tokenUrl": "http://127.0.0.1:1/t"}),
            "clientSecret",
        ),
        (
            json!({"grantType": "clientCredentials", "authMethod": "clientSecretBasic", "clientId": "c", "clientSecret": "s", "tokenUrl": "ftp://x/t"}),
            "tokenUrl",
        ),
        (
            json!({"grantType": "clientCredentials", "authMethod": "clientSecretJwt", "clientId": "c", "tokenUrl": "http://127.0.0.1:1/t"}),
            "jwtParams",
        ),
        (
            json!({"grantType": "password", "authMethod": "clientSecretBasic", "clientId": "c", "tokenUrl": "http://127.0.0.1:1/t"}),
            "expected `clientCredentials` or `refreshToken`",
        ),
    ] {
        let (status, err) = server.put(&oauth, bad.clone()).await;
        assert_eq!(status, 422, "{bad}: {err}");
        assert!(err.to_string().contains(field), "{bad}: {err}");
    }
}

#[tokio::test]
async fn basic_and_bearer_credentials_are_typed_and_never_shown() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let (app, ep) = endpoint(&server, &sink, json!({})).await;
    let auth = format!("/api/v1/app/{app}/endpoint/{ep}/auth");
    assert_eq!(server.put(&auth, json!({"type": "basic", "username": "hookd", "password": "pa55"})).await.0, 204);
    assert_eq!(server.get(&auth).await.1, json!({"type": "basic", "username": "hookd"}));
    server.send_message(&app, "a.b", json!({})).await;
    let got = sink.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].header("authorization"), format!("Basic {}", STANDARD.encode("hookd:pa55")));

    assert_eq!(server.put(&auth, json!({"type": "bearer", "token": "bt-9"})).await.0, 204);
    assert_eq!(server.get(&auth).await.1, json!({"type": "bearer"}));
    server.send_message(&app, "a.b", json!({})).await;
    assert_eq!(sink.wait_for(2, Duration::from_secs(10)).await[1].header("authorization"), "Bearer bt-9");

    for bad in [
        json!({"type": "basic", "username": "a:b", "password": "p"}),
        json!({"type": "digest"}),
        json!({"type": "bearer", "token": ""}),
    ] {
        assert_eq!(server.put(&auth, bad.clone()).await.0, 422, "{bad}");
    }
    assert_eq!(server.delete(&auth).await.0, 204);
    assert_eq!(server.get(&auth).await.0, 404);
    server.send_message(&app, "a.b", json!({})).await;
    assert_eq!(sink.wait_for(3, Duration::from_secs(10)).await[2].header("authorization"), "");
}

#[tokio::test]
async fn gzip_bodies_are_signed_uncompressed_and_timeouts_are_per_endpoint() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let (app, ep) = endpoint(&server, &sink, json!({"compression": "gzip", "timeout": 1})).await;
    let (_, shown) = server.get(&format!("/api/v1/app/{app}/endpoint/{ep}")).await;
    assert_eq!(shown["compression"], "gzip");
    let payload = json!({"lines": vec!["the same line, again and again"; 100]});
    server.send_message(&app, "a.b", payload.clone()).await;
    let mut got = sink.wait_for(1, Duration::from_secs(10)).await.remove(0);
    assert_eq!(got.header("content-encoding"), "gzip");
    let mut plain = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&got.body[..]), &mut plain).unwrap();
    assert!(got.body.len() < plain.len() / 4, "compressed: {} of {}", got.body.len(), plain.len());
    got.body = plain.into();
    assert_eq!(got.json(), payload);
    let secret = secret_of(&server, &app, &ep).await;
    assert!(verify_standard_webhook(&secret, &got), "the signature covers the uncompressed body");

    // The endpoint's own timeout (1 s), not the server's.
    let (status, _) = server.patch(&format!("/api/v1/app/{app}/endpoint/{ep}"), json!({"compression": null})).await;
    assert_eq!(status, 200);
    sink.set_delay(Some(Duration::from_secs(3)));
    let msg = text(&server.send_message(&app, "a.b", json!({})).await["id"]);
    let attempt = wait_for_attempts(&server, &app, &msg, 1).await.remove(0);
    assert!(text(&attempt["response"]).contains("timed out"), "{attempt}");
    let took = attempt["responseDurationMs"].as_i64().unwrap();
    assert!((900..2500).contains(&took), "{took} ms");
    for bad in [json!({"timeout": 0}), json!({"timeout": 301}), json!({"compression": "br"})] {
        assert_eq!(server.patch(&format!("/api/v1/app/{app}/endpoint/{ep}"), bad.clone()).await.0, 422, "{bad}");
    }
}

#[tokio::test]
async fn a_client_assertion_is_signed_with_the_configured_rsa_key() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let (tokens, token_url) = TokenServer::start().await;
    let (app, ep) = endpoint(&server, &sink, json!({})).await;
    let jwt = json!({"grantType": "clientCredentials", "authMethod": "clientSecretJwt", "clientId": "c-jwt",
                     "tokenUrl": token_url,
                     "jwtParams": {"secretBase64": crate::oidc::RSA_KEY, "signingAlgorithm": "RS256", "secretId": "k1"}});
    let (status, body) = server.put(&format!("/api/v1/app/{app}/endpoint/{ep}/oauth"), jwt).await;
    assert_eq!(status, 204, "{body}");
    server.send_message(&app, "a.b", json!({})).await;
    assert_eq!(sink.wait_for(1, Duration::from_secs(10)).await[0].header("authorization"), "Bearer tok-1");
    let asked = &tokens.requests()[0];
    assert_eq!(asked.form["client_assertion_type"], "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
    let key = jsonwebtoken::DecodingKey::from_rsa_components(crate::oidc::RSA_N, "AQAB").unwrap();
    let mut check = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    check.set_audience(&[token_url.as_str()]);
    check.set_issuer(&["c-jwt"]);
    let claims =
        jsonwebtoken::decode::<Value>(&asked.form["client_assertion"], &key, &check).expect("a valid assertion");
    assert_eq!(claims.claims["sub"], "c-jwt");
    assert_eq!(claims.header.kid.as_deref(), Some("k1"));
}
