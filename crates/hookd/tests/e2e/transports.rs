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
    /// How long each answer takes.
    delay: Arc<Mutex<Duration>>,
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
    let delay = *s.delay.lock().unwrap();
    tokio::time::sleep(delay).await;
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
async fn concurrent_deliveries_share_one_token_request() {
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let (tokens, token_url) = TokenServer::start().await;
    *tokens.delay.lock().unwrap() = Duration::from_millis(500);
    let (app, ep) = endpoint(&server, &sink, json!({})).await;
    let config = json!({"grantType": "clientCredentials", "authMethod": "clientSecretPost", "clientId": "c",
                        "clientSecret": "s", "tokenUrl": token_url});
    assert_eq!(server.put(&format!("/api/v1/app/{app}/endpoint/{ep}/oauth"), config).await.0, 204);
    // Twenty messages at once: all in flight while the one token request is
    // answered (the endpoint takes 64 at a time).
    let mut sends = tokio::task::JoinSet::new();
    for n in 0..20 {
        let req = server.client.post(server.url(&format!("/api/v1/app/{app}/msg"))).bearer_auth(&server.token);
        sends.spawn(req.json(&json!({"eventType": "a.b", "payload": {"n": n}})).send());
    }
    while let Some(sent) = sends.join_next().await {
        assert_eq!(sent.unwrap().unwrap().status(), 202);
    }
    let got = sink.wait_for(20, Duration::from_secs(15)).await;
    assert!(got.iter().all(|r| r.header("authorization") == "Bearer tok-1"), "{got:?}");
    assert_eq!(tokens.requests().len(), 1, "one request for all of them");
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

/// A real TLS receiver on loopback that requires a client certificate issued
/// by its CA, and counts the requests that got through.
struct MtlsReceiver {
    url: String,
    served: Arc<Mutex<usize>>,
}

/// Certificates made for one test: a CA, the receiver's certificate (for
/// 127.0.0.1), and client identities (PEM key and certificate).
struct Pki {
    ca_pem: String,
    ca_der: rustls::pki_types::CertificateDer<'static>,
    server: (rustls::pki_types::CertificateDer<'static>, Vec<u8>),
    client_identity: String,
    stranger_identity: String,
}

fn pki() -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "hookd test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server_cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&server_key, &ca_cert, &ca_key)
        .unwrap();
    let identity = |issuer: &rcgen::Certificate, issuer_key: &KeyPair| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, "hookd sender");
        let cert = params.signed_by(&key, issuer, issuer_key).unwrap();
        format!("{}{}", key.serialize_pem(), cert.pem())
    };
    let client_identity = identity(&ca_cert, &ca_key);
    let other_key = KeyPair::generate().unwrap();
    let mut other = CertificateParams::new(Vec::<String>::new()).unwrap();
    other.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let other_ca = other.self_signed(&other_key).unwrap();
    Pki {
        ca_pem: ca_cert.pem(),
        ca_der: ca_cert.der().clone(),
        server: (server_cert.der().clone(), server_key.serialize_der()),
        client_identity,
        stranger_identity: identity(&other_ca, &other_key),
    }
}

impl MtlsReceiver {
    async fn start(pki: &Pki) -> MtlsReceiver {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pki.ca_der.clone()).unwrap();
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .unwrap();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(pki.server.1.clone().into());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![pki.server.0.clone()], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}/hook", listener.local_addr().unwrap());
        let served: Arc<Mutex<usize>> = Arc::default();
        let count = served.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { return };
                let (acceptor, count) = (acceptor.clone(), count.clone());
                tokio::spawn(async move {
                    // A handshake without the right client certificate fails here.
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let service = hyper::service::service_fn(move |_req: hyper::Request<hyper::body::Incoming>| {
                        *count.lock().unwrap() += 1;
                        async {
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Full::new(
                                bytes::Bytes::from_static(b"mtls ok"),
                            )))
                        }
                    });
                    let io = hyper_util::rt::TokioIo::new(tls);
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
                });
            }
        });
        MtlsReceiver { url, served }
    }
}

#[tokio::test]
async fn mutual_tls_presents_the_endpoints_identity_to_a_receiver_that_requires_one() {
    let server = TestServer::spawn().await;
    let pki = pki();
    let receiver = MtlsReceiver::start(&pki).await;
    let app = server.create_app("Acme").await;
    let ep = text(&server.create_endpoint(&app, json!({"url": receiver.url, "retrySchedule": []})).await["id"]);
    let base = format!("/api/v1/app/{app}/endpoint/{ep}");
    let attempt_of = |payload: Value| {
        let (server, app) = (&server, app.clone());
        async move {
            let msg = text(&server.send_message(&app, "a.b", payload).await["id"]);
            wait_for_attempts(server, &app, &msg, 1).await.remove(0)
        }
    };

    // The receiver's certificate is from a private CA: refused until it is trusted.
    let refused = attempt_of(json!({"n": 1})).await;
    assert_eq!(refused["responseStatusCode"], 0, "{refused}");
    assert_eq!(server.get(&format!("{base}/ca")).await.1, json!({"cert": null}));
    assert_eq!(server.put(&format!("{base}/ca"), json!({"cert": pki.ca_pem})).await.0, 204);
    assert_eq!(server.get(&format!("{base}/ca")).await.1["cert"], pki.ca_pem.as_str());

    // Trusted, but without a client certificate the receiver refuses the handshake.
    let no_identity = attempt_of(json!({"n": 2})).await;
    assert_eq!(no_identity["responseStatusCode"], 0, "{no_identity}");
    assert_eq!(*receiver.served.lock().unwrap(), 0);

    // With the identity its CA issued: delivered.
    assert_eq!(server.get(&format!("{base}/mtls")).await.0, 404);
    let (status, body) = server.put(&format!("{base}/mtls"), json!({"identity": pki.client_identity})).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(server.get(&format!("{base}/mtls")).await, (200, json!({})), "the private key never comes back");
    let delivered = attempt_of(json!({"n": 3})).await;
    assert_eq!(
        (delivered["responseStatusCode"].clone(), delivered["response"].clone()),
        (json!(200), json!("mtls ok"))
    );
    assert_eq!(*receiver.served.lock().unwrap(), 1);

    // Another CA's identity is refused by the receiver.
    assert_eq!(server.put(&format!("{base}/mtls"), json!({"identity": pki.stranger_identity})).await.0, 204);
    let stranger = attempt_of(json!({"n": 4})).await;
    assert_eq!(stranger["responseStatusCode"], 0, "{stranger}");
    assert_eq!(*receiver.served.lock().unwrap(), 1);

    for (path, bad) in [
        ("mtls", json!({"identity": "not a pem"})),
        ("ca", json!({"cert": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"})),
    ] {
        let (status, err) = server.put(&format!("{base}/{path}"), bad).await;
        assert_eq!(status, 422, "{path}: {err}");
    }
    assert_eq!(server.delete(&format!("{base}/mtls")).await.0, 204);
    assert_eq!(server.get(&format!("{base}/mtls")).await.0, 404);
}

#[tokio::test]
async fn a_jwt_signed_for_each_request_binds_the_message_and_its_body() {
    use sha2::Digest;
    let server = TestServer::spawn().await;
    let sink = Sink::start().await;
    let (app, ep) = endpoint(&server, &sink, json!({})).await;
    let auth = format!("/api/v1/app/{app}/endpoint/{ep}/auth");
    let rs256 = json!({"type": "jwt", "algorithm": "RS256", "key": crate::oidc::RSA_KEY, "keyId": "k1",
                       "issuer": "hookd", "audience": "https://receiver.example", "lifetimeSecs": 120,
                       "claims": {"tenant": "acme"}});
    let (status, body) = server.put(&auth, rs256).await;
    assert_eq!(status, 204, "{body}");
    let (_, shown) = server.get(&auth).await;
    assert_eq!((shown["type"].clone(), shown["algorithm"].clone()), (json!("jwt"), json!("RS256")));
    assert!(shown.get("key").is_none(), "the key never comes back: {shown}");

    let msg = text(&server.send_message(&app, "a.b", json!({"n": 1})).await["id"]);
    let got = sink.wait_for(1, Duration::from_secs(10)).await.remove(0);
    let jwt = got.header("authorization").strip_prefix("Bearer ").expect("a bearer JWT").to_string();
    let key = jsonwebtoken::DecodingKey::from_rsa_components(crate::oidc::RSA_N, "AQAB").unwrap();
    let mut check = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    check.set_audience(&["https://receiver.example"]);
    check.set_issuer(&["hookd"]);
    let token = jsonwebtoken::decode::<Value>(&jwt, &key, &check).expect("a valid JWT");
    let c = &token.claims;
    assert_eq!((c["webhook_id"].as_str(), c["tenant"].as_str()), (Some(msg.as_str()), Some("acme")));
    let digest = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(&got.body));
    assert_eq!(c["body_sha256"], digest, "bound to the body received");
    assert_eq!(c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(), 120);
    assert!(verify_standard_webhook(&secret_of(&server, &app, &ep).await, &got), "the signature stays");

    // EdDSA too; each request its own token.
    let eddsa = json!({"type": "jwt", "algorithm": "EdDSA", "key": crate::oidc::ED25519_KEY});
    assert_eq!(server.put(&auth, eddsa).await.0, 204);
    server.send_message(&app, "a.b", json!({"n": 2})).await;
    server.send_message(&app, "a.b", json!({"n": 3})).await;
    let got = sink.wait_for(3, Duration::from_secs(10)).await;
    let key = jsonwebtoken::DecodingKey::from_ed_components(crate::oidc::ED25519_X).unwrap();
    let mut check = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    check.set_required_spec_claims(&["exp"]);
    let jtis: Vec<String> = got[1..]
        .iter()
        .map(|r| {
            let jwt = r.header("authorization").strip_prefix("Bearer ").unwrap();
            jsonwebtoken::decode::<Value>(jwt, &key, &check).expect("EdDSA").claims["jti"].as_str().unwrap().to_string()
        })
        .collect();
    assert_ne!(jtis[0], jtis[1]);

    for (bad, field) in [
        (json!({"type": "jwt", "algorithm": "none", "key": "k"}), "algorithm"),
        (json!({"type": "jwt", "algorithm": "RS256", "key": "bm90IGEga2V5"}), "key"),
        (json!({"type": "jwt", "algorithm": "HS256", "key": "too short"}), "at least 32 bytes"),
        (json!({"type": "jwt", "algorithm": "HS256", "key": HS256_KEY, "claims": {"exp": 1}}), "claims"),
        (json!({"type": "jwt", "algorithm": "HS256", "key": HS256_KEY, "lifetimeSecs": 0}), "lifetimeSecs"),
    ] {
        let (status, err) = server.put(&auth, bad.clone()).await;
        assert_eq!(status, 422, "{bad}: {err}");
        assert!(err.to_string().contains(field), "{bad}: {err}");
    }
}

const HS256_KEY: &str = "a shared secret of thirty-two bytes or more";

/// Whether the broker at `addr` answers; a test needing one that does not is
/// skipped on a developer's machine (saying so) and fails under CI.
fn broker_up(name: &str, addr: &str) -> bool {
    let up = std::net::TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2)).is_ok();
    if !up {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "CI must run {name} at {addr}");
        eprintln!("skipped: no {name} at {addr}");
    }
    up
}

/// A name no other test run uses, for streams and subjects on the shared brokers.
fn unique(prefix: &str) -> String {
    format!("{prefix}{:016x}", rand::random::<u64>())
}

#[tokio::test]
async fn a_redis_stream_endpoint_gets_each_message_as_an_entry() {
    use redis::AsyncCommands;
    if !broker_up("Redis", "127.0.0.1:6379") {
        return;
    }
    let server = TestServer::spawn().await;
    let app = server.create_app("Acme").await;
    let stream = unique("hookd-test-");
    let url = format!("redis://127.0.0.1:6379/0?stream={stream}&maxlen=100");
    let ep = text(&server.create_endpoint(&app, json!({"url": url})).await["id"]);
    let msg = text(&server.send_message(&app, "invoice.paid", json!({"amount": 42})).await["id"]);
    let attempt = wait_for_attempts(&server, &app, &msg, 1).await.remove(0);
    assert_eq!(attempt["responseStatusCode"], 202, "{attempt}");
    assert!(text(&attempt["response"]).contains(&format!("redis stream {stream}: entry ")), "{attempt}");

    let client = redis::Client::open("redis://127.0.0.1:6379/0").unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let entries: redis::streams::StreamRangeReply = conn.xrange_all(&stream).await.unwrap();
    let _: () = conn.del(&stream).await.unwrap();
    assert_eq!(entries.ids.len(), 1);
    let field = |k: &str| -> String { entries.ids[0].get(k).unwrap_or_default() };
    assert_eq!(field("webhook-id"), msg);
    // The entry verifies like an HTTP delivery does.
    let mut headers = axum::http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        headers.insert(name, field(name).parse().unwrap());
    }
    let body = bytes::Bytes::from(field("body"));
    let received = crate::support::Received {
        method: String::new(),
        path: String::new(),
        headers,
        body,
        at: std::time::Instant::now(),
    };
    assert_eq!(received.json(), json!({"amount": 42}));
    assert!(verify_standard_webhook(&secret_of(&server, &app, &ep).await, &received));

    // Nothing listening: the attempt fails and says why.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let app2 = server.create_app("Down").await;
    server.create_endpoint(&app2, json!({"url": format!("redis://{closed}/0?stream={stream}")})).await;
    let msg = text(&server.send_message(&app2, "a.b", json!({})).await["id"]);
    let failed = wait_for_attempts(&server, &app2, &msg, 1).await.remove(0);
    assert_eq!(failed["responseStatusCode"], 0, "{failed}");
    assert!(text(&failed["response"]).contains("redis"), "{failed}");
}

#[tokio::test]
async fn a_nats_jetstream_endpoint_is_acknowledged_by_its_stream() {
    if !broker_up("NATS", "127.0.0.1:4222") {
        return;
    }
    let server = TestServer::spawn().await;
    let nats = async_nats::connect("127.0.0.1:4222").await.unwrap();
    let js = async_nats::jetstream::new(nats);
    let name = unique("HOOKD_TEST_");
    let subject = format!("hookd.test.{}", name.to_lowercase());
    let mut stream = js
        .create_stream(async_nats::jetstream::stream::Config {
            name: name.clone(),
            subjects: vec![subject.clone()],
            ..Default::default()
        })
        .await
        .unwrap();
    let app = server.create_app("Acme").await;
    let ep =
        text(&server.create_endpoint(&app, json!({"url": format!("nats://127.0.0.1:4222/{subject}")})).await["id"]);
    let msg = text(&server.send_message(&app, "invoice.paid", json!({"amount": 7})).await["id"]);
    let attempt = wait_for_attempts(&server, &app, &msg, 1).await.remove(0);
    assert_eq!(attempt["responseStatusCode"], 202, "{attempt}");
    assert!(text(&attempt["response"]).contains(&format!("nats stream {name}: sequence 1")), "{attempt}");

    let stored = stream.get_raw_message(1).await.unwrap();
    let header = |k: &str| stored.headers.get(k).map(|v| v.as_str().to_string()).unwrap_or_default();
    assert_eq!((header("webhook-id"), header("Nats-Msg-Id")), (msg.clone(), msg.clone()));
    let mut headers = axum::http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        headers.insert(name, header(name).parse().unwrap());
    }
    let received = crate::support::Received {
        method: String::new(),
        path: String::new(),
        headers,
        body: stored.payload.clone(),
        at: std::time::Instant::now(),
    };
    assert_eq!(received.json(), json!({"amount": 7}));
    assert!(verify_standard_webhook(&secret_of(&server, &app, &ep).await, &received));
    assert_eq!(stream.info().await.unwrap().state.messages, 1);

    // A subject no stream captures: no acknowledgement, the attempt fails.
    let app2 = server.create_app("Nowhere").await;
    let nowhere = format!("nats://127.0.0.1:4222/hookd.nowhere.{}", name.to_lowercase());
    server.create_endpoint(&app2, json!({"url": nowhere, "timeout": 2})).await;
    let msg = text(&server.send_message(&app2, "a.b", json!({})).await["id"]);
    let failed = wait_for_attempts(&server, &app2, &msg, 1).await.remove(0);
    assert_eq!(failed["responseStatusCode"], 0, "{failed}");
    assert!(text(&failed["response"]).contains("nats"), "{failed}");
    js.delete_stream(&name).await.unwrap();
}

#[tokio::test]
async fn broker_urls_are_checked_and_held_to_the_destination_policy() {
    let server =
        TestServer::spawn_with(crate::support::ServerOptions { allow_private: false, ..Default::default() }).await;
    let app = server.create_app("Acme").await;
    for (url, why) in [
        ("redis://cache.example.com/0", "stream"),
        ("nats://nats.example.com/orders.*", "subject"),
        ("nats://127.0.0.1:4222/orders", "private"),
        ("redis://user:pw@cache.example.com/0?stream=s", "credentials"),
        ("kafka://broker.example.com/t", "scheme"),
        ("mqtt://broker.example.com/a/+/b", "topic"),
    ] {
        let (status, err) = server.post(&format!("/api/v1/app/{app}/endpoint"), json!({"url": url})).await;
        assert_eq!(status, 422, "{url}: {err}");
        assert!(err.to_string().contains(why), "{url}: {err}");
    }
}

/// A broker name is vetted when a delivery connects, and a kept connection
/// serves only deliveries whose policy allows its address.
#[tokio::test]
async fn broker_names_are_vetted_at_delivery_and_kept_connections_are_not_shared_past_a_policy() {
    if !broker_up("Redis", "127.0.0.1:6379") {
        return;
    }
    // Names are not resolved when an endpoint is made; the delivery refuses.
    let strict =
        TestServer::spawn_with(crate::support::ServerOptions { allow_private: false, ..Default::default() }).await;
    let app = strict.create_app("Acme").await;
    strict.create_endpoint(&app, json!({"url": "redis://localhost:6379/0?stream=never"})).await;
    let msg = text(&strict.send_message(&app, "a.b", json!({})).await["id"]);
    let refused = wait_for_attempts(&strict, &app, &msg, 1).await.remove(0);
    assert_eq!(refused["responseStatusCode"], 0, "{refused}");
    assert!(text(&refused["response"]).contains("refused"), "{refused}");

    // One organisation connects to Redis on loopback; another, whose policy
    // blocks loopback, is refused rather than handed that connection.
    let server = TestServer::spawn().await;
    let stream = unique("hookd-test-");
    let url = format!("redis://localhost:6379/0?stream={stream}");
    let app = server.create_app("Allowed").await;
    server.create_endpoint(&app, json!({"url": url})).await;
    let msg = text(&server.send_message(&app, "a.b", json!({})).await["id"]);
    assert_eq!(wait_for_attempts(&server, &app, &msg, 1).await[0]["responseStatusCode"], 202);
    let policy = json!({"blockedNetworks": ["127.0.0.0/8", "::1/128"]});
    let (_, b) = crate::tenancy::organisation_with(&server, "B", json!({"destinationPolicy": policy})).await;
    let req = server.client.post(server.url("/api/v1/app")).bearer_auth(&b).json(&json!({"name": "B"}));
    let (_, b_app) = crate::mgmt::read(req.send().await.unwrap()).await;
    let attempt = crate::egress::attempt_as(&server, &b, &text(&b_app["id"]), &url).await;
    assert_eq!(attempt["responseStatusCode"], 0, "{attempt}");
    assert!(text(&attempt["response"]).contains("blocked network"), "{attempt}");
    let mut redis =
        redis::Client::open("redis://127.0.0.1:6379/0").unwrap().get_multiplexed_async_connection().await.unwrap();
    let len: usize = redis::cmd("XLEN").arg(&stream).query_async(&mut redis).await.unwrap();
    assert_eq!(len, 1, "only the allowed organisation's message reached the stream");
    let _: () = redis::cmd("DEL").arg(&stream).query_async(&mut redis).await.unwrap();
}

#[tokio::test]
async fn a_rabbitmq_endpoint_publishes_persistently_with_confirms() {
    use lapin::options::{BasicGetOptions, QueueDeclareOptions, QueueDeleteOptions};
    use lapin::types::{AMQPValue, FieldTable};
    if !broker_up("RabbitMQ", "127.0.0.1:5672") {
        return;
    }
    let server = TestServer::spawn().await;
    let rabbit =
        lapin::Connection::connect("amqp://guest:guest@127.0.0.1:5672/%2f", lapin::ConnectionProperties::default())
            .await
            .unwrap();
    let channel = rabbit.create_channel().await.unwrap();
    let queue = unique("hookd-test-");
    let options = QueueDeclareOptions { auto_delete: true, ..Default::default() };
    channel.queue_declare(queue.as_str().into(), options, FieldTable::default()).await.unwrap();

    let app = server.create_app("Acme").await;
    let url = format!("amqp://127.0.0.1:5672/?routingKey={queue}");
    // Credentials in `transport`, shown masked.
    let created = server
        .create_endpoint(&app, json!({"url": url, "transport": {"username": "guest", "password": "guest"}}))
        .await;
    assert_eq!(created["transport"], json!({"username": "guest", "password": "********"}), "{created}");
    let ep = text(&created["id"]);
    let (_, shown) = server.get(&format!("/api/v1/app/{app}/endpoint/{ep}")).await;
    assert_eq!(shown["transport"]["password"], "********");
    let (status, err) = server
        .post(
            &format!("/api/v1/app/{app}/endpoint"),
            json!({"url": "https://example.com/h", "transport": {"token": "t"}}),
        )
        .await;
    assert_eq!(status, 422, "{err}");
    assert!(err.to_string().contains("only for broker URLs"), "{err}");
    let msg = text(&server.send_message(&app, "invoice.paid", json!({"amount": 9})).await["id"]);
    let attempt = wait_for_attempts(&server, &app, &msg, 1).await.remove(0);
    assert_eq!(attempt["responseStatusCode"], 202, "{attempt}");
    assert!(text(&attempt["response"]).contains("confirmed"), "{attempt}");

    let got =
        channel.basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true }).await.unwrap().expect("a message");
    let props = &got.delivery.properties;
    assert_eq!(props.message_id().as_ref().map(|m| m.to_string()), Some(msg.clone()));
    assert_eq!(*props.delivery_mode(), Some(2), "persistent");
    let table = props.headers().clone().unwrap_or_default();
    let header = |k: &str| match table.inner().get(k) {
        Some(AMQPValue::LongString(s)) => s.to_string(),
        other => panic!("{k}: {other:?}"),
    };
    let mut headers = axum::http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        headers.insert(name, header(name).parse().unwrap());
    }
    let body = bytes::Bytes::from(got.delivery.data.clone());
    let received = crate::support::Received {
        method: String::new(),
        path: String::new(),
        headers,
        body,
        at: std::time::Instant::now(),
    };
    assert_eq!(received.json(), json!({"amount": 9}));
    assert!(verify_standard_webhook(&secret_of(&server, &app, &ep).await, &received));

    // No queue bound to the key: returned, not confirmed; the attempt fails.
    let app2 = server.create_app("Nowhere").await;
    let nowhere = format!("amqp://127.0.0.1:5672/?routingKey={}", unique("hookd-nowhere-"));
    server.create_endpoint(&app2, json!({"url": nowhere})).await;
    let msg = text(&server.send_message(&app2, "a.b", json!({})).await["id"]);
    let failed = wait_for_attempts(&server, &app2, &msg, 1).await.remove(0);
    assert_eq!(failed["responseStatusCode"], 0, "{failed}");
    assert!(text(&failed["response"]).contains("unroutable"), "{failed}");

    // Wrong credentials: the attempt fails, saying so without them.
    let app3 = server.create_app("Refused").await;
    let body = json!({"url": url, "transport": {"username": "guest", "password": "not-the-password"}});
    server.create_endpoint(&app3, body).await;
    let msg = text(&server.send_message(&app3, "a.b", json!({})).await["id"]);
    let refused = wait_for_attempts(&server, &app3, &msg, 1).await.remove(0);
    assert_eq!(refused["responseStatusCode"], 0, "{refused}");
    let why = text(&refused["response"]);
    assert!(why.contains("amqp: cannot connect") && !why.contains("not-the-password"), "{why}");
    channel.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await.unwrap();
}

#[tokio::test]
async fn an_mqtt_endpoint_publishes_at_qos_1_with_the_headers_as_user_properties() {
    use rumqttc::v5::mqttbytes::v5::Packet;
    use rumqttc::v5::mqttbytes::QoS;
    use rumqttc::v5::{AsyncClient, Event, MqttOptions};
    if !broker_up("Mosquitto", "127.0.0.1:1883") {
        return;
    }
    let server = TestServer::spawn().await;
    let topic = format!("hookd/test/{}", unique(""));
    // A subscriber on the broker, as a receiver would be.
    let (subscriber, mut events) = AsyncClient::new(MqttOptions::new(unique("sub-"), "127.0.0.1", 1883), 16);
    subscriber.subscribe(topic.clone(), QoS::AtLeastOnce).await.unwrap();
    let (tx, mut published) = tokio::sync::mpsc::unbounded_channel();
    let (suback_tx, suback) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut suback_tx = Some(suback_tx);
        while let Ok(event) = events.poll().await {
            match event {
                Event::Incoming(Packet::SubAck(_)) => {
                    if let Some(t) = suback_tx.take() {
                        let _ = t.send(());
                    }
                }
                Event::Incoming(Packet::Publish(p)) => {
                    let _ = tx.send(p);
                }
                _ => {}
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), suback).await.unwrap().unwrap();

    let app = server.create_app("Acme").await;
    let ep = text(&server.create_endpoint(&app, json!({"url": format!("mqtt://127.0.0.1:1883/{topic}")})).await["id"]);
    let msg = text(&server.send_message(&app, "invoice.paid", json!({"amount": 3})).await["id"]);
    let attempt = wait_for_attempts(&server, &app, &msg, 1).await.remove(0);
    assert_eq!(attempt["responseStatusCode"], 202, "{attempt}");
    assert!(text(&attempt["response"]).contains("PUBACK"), "{attempt}");

    let got = tokio::time::timeout(Duration::from_secs(10), published.recv()).await.unwrap().unwrap();
    assert_eq!(got.topic, topic.as_bytes());
    let props = got.properties.clone().expect("user properties");
    assert_eq!(props.content_type.as_deref(), Some("application/json"));
    let prop = |k: &str| props.user_properties.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap_or_default();
    let mut headers = axum::http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        headers.insert(name, prop(name).parse().unwrap());
    }
    assert_eq!(prop("webhook-id"), msg);
    let received = crate::support::Received {
        method: String::new(),
        path: String::new(),
        headers,
        body: got.payload.clone(),
        at: std::time::Instant::now(),
    };
    assert_eq!(received.json(), json!({"amount": 3}));
    assert!(verify_standard_webhook(&secret_of(&server, &app, &ep).await, &received));

    // A topic nobody subscribes to: the broker drops the message, so the
    // attempt fails (and is retried) rather than count as delivered.
    let app3 = server.create_app("Unheard").await;
    let unheard = format!("mqtt://127.0.0.1:1883/hookd/unheard/{}", unique(""));
    server.create_endpoint(&app3, json!({"url": unheard})).await;
    let msg = text(&server.send_message(&app3, "a.b", json!({})).await["id"]);
    let dropped = wait_for_attempts(&server, &app3, &msg, 1).await.remove(0);
    assert_eq!(dropped["responseStatusCode"], 0, "{dropped}");
    assert!(text(&dropped["response"]).contains("no subscriber"), "{dropped}");

    // Nothing listening there: the attempt fails.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let app2 = server.create_app("Down").await;
    server.create_endpoint(&app2, json!({"url": format!("mqtt://{closed}/t"), "timeout": 2})).await;
    let msg = text(&server.send_message(&app2, "a.b", json!({})).await["id"]);
    let failed = wait_for_attempts(&server, &app2, &msg, 1).await.remove(0);
    assert_eq!(failed["responseStatusCode"], 0, "{failed}");
    assert!(text(&failed["response"]).contains("mqtt"), "{failed}");
}
