//! Endpoint checks against a real TLS receiver on loopback: DNS, the
//! certificate (verified with the endpoint's CA, its names and expiry), a
//! signed test event; the background check of a new endpoint; and the
//! certificate watch's `endpoint.certificate.expiring` warning.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::mgmt::{secret_of, text};
use crate::support::{verify_standard_webhook, Received, ServerOptions, Sink, TestServer};

/// A CA, and a certificate for 127.0.0.1 from it expiring in `days` days.
fn pki(days: i64) -> (String, rustls::pki_types::CertificateDer<'static>, Vec<u8>) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "hookd check CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, "receiver.test");
    // Expires `days` days from now, at midnight UTC.
    let until = hookd_core::timefmt::format_millis(hookd_core::timefmt::now_millis() + days * 86_400_000);
    let (y, m, d) = (until[0..4].parse().unwrap(), until[5..7].parse().unwrap(), until[8..10].parse().unwrap());
    params.not_after = rcgen::date_time_ymd(y, m, d);
    let cert = params.signed_by(&key, &ca_cert, &ca_key).unwrap();
    (ca_cert.pem(), cert.der().clone(), key.serialize_der())
}

/// An HTTPS receiver answering 200 to everything, keeping what it got.
async fn https_receiver(
    cert: rustls::pki_types::CertificateDer<'static>,
    key: Vec<u8>,
) -> (String, Arc<Mutex<Vec<Received>>>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], rustls::pki_types::PrivateKeyDer::Pkcs8(key.into()))
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}/hook", listener.local_addr().unwrap());
    let got: Arc<Mutex<Vec<Received>>> = Arc::default();
    let keep = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let (acceptor, keep) = (acceptor.clone(), keep.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let keep = keep.clone();
                    async move {
                        use http_body_util::BodyExt;
                        let (parts, body) = req.into_parts();
                        let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                        keep.lock().unwrap().push(Received {
                            method: parts.method.to_string(),
                            path: parts.uri.path().to_string(),
                            headers: parts.headers,
                            body,
                            at: Instant::now(),
                        });
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Full::new(
                            bytes::Bytes::from_static(b"ok"),
                        )))
                    }
                });
                let io = hyper_util::rt::TokioIo::new(tls);
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
            });
        }
    });
    (url, got)
}

#[tokio::test]
async fn an_endpoint_check_reads_dns_the_certificate_and_a_signed_test_event() {
    let opts = ServerOptions {
        extra_args: ["--cert-check-interval", "1s", "--cert-warn-days", "7"].map(String::from).to_vec(),
        ..Default::default()
    };
    let server = TestServer::spawn_with(opts).await;
    let ops = Sink::start().await;
    server.post("/api/v1/operational-webhook/endpoint", json!({"url": ops.url("/ops")})).await;
    let (ca_pem, cert, key) = pki(5);
    let (url, got) = https_receiver(cert, key).await;
    let app = server.create_app("Checked").await;
    let ep = text(&server.create_endpoint(&app, json!({"url": url})).await["id"]);
    let base = format!("/api/v1/app/{app}/endpoint/{ep}");

    // Made: checked in the background. Its CA is private, so TLS fails, but
    // the certificate is read all the same.
    let first = server
        .eventually(Duration::from_secs(10), || async {
            let (status, c) = server.get(&format!("{base}/check")).await;
            (status == 200).then_some(c)
        })
        .await
        .expect("a new endpoint is checked");
    assert_eq!(
        (&first["ok"], &first["dns"]["ok"], &first["tls"]["ok"]),
        (&json!(false), &json!(true), &json!(false)),
        "{first}"
    );
    assert!(text(&first["tls"]["error"]).contains("UnknownIssuer"), "{first}");
    assert!(first["testEvent"].is_null(), "no test event in the background: {first}");
    assert_eq!(got.lock().unwrap().len(), 0);

    // With its CA, everything passes; the test event is signed like a delivery.
    assert_eq!(server.put(&format!("{base}/ca"), json!({"cert": ca_pem})).await.0, 204);
    let (status, check) = server.post(&format!("{base}/check"), json!({})).await;
    assert_eq!(status, 200, "{check}");
    assert_eq!(check["ok"], true, "{check}");
    assert_eq!(check["dns"]["addresses"], json!(["127.0.0.1"]));
    let tls = &check["tls"];
    assert!((4..=5).contains(&tls["daysLeft"].as_i64().unwrap()), "{tls}");
    assert_eq!(tls["names"], json!(["127.0.0.1"]), "{tls}");
    assert!(
        text(&tls["subject"]).contains("receiver.test") && text(&tls["issuer"]).contains("hookd check CA"),
        "{tls}"
    );
    assert_eq!((&check["testEvent"]["ok"], &check["testEvent"]["statusCode"]), (&json!(true), &json!(200)), "{check}");
    let received = got.lock().unwrap().clone();
    assert_eq!(received.len(), 1);
    let secret = secret_of(&server, &app, &ep).await;
    assert!(verify_standard_webhook(&secret, &received[0]), "the test event is signed with the endpoint's secret");
    let event: Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!((&event["type"], &event["data"]["endpointId"]), (&json!("hookd.endpoint.check"), &json!(ep)));
    assert_eq!(server.get(&format!("{base}/check")).await.1, check, "the last check is kept");

    // The watch re-checks the certificate and warns: it expires within 7 days.
    let warned = server
        .eventually(Duration::from_secs(15), || async {
            ops.received().iter().map(|r| r.json()).find(|e| e["type"] == "endpoint.certificate.expiring")
        })
        .await
        .expect("an expiry warning");
    assert_eq!(warned["data"]["endpointId"], json!(ep), "{warned}");
    assert!((4..=5).contains(&warned["data"]["daysLeft"].as_i64().unwrap()), "{warned}");
    assert_eq!(warned["data"]["url"], json!(url));
    assert_eq!(got.lock().unwrap().len(), 1, "the watch sends no test events");

    // A name that does not resolve; a check without a test event.
    let (_, bad) =
        server.post(&format!("/api/v1/app/{app}/endpoint"), json!({"url": "https://no-such-host.invalid/x"})).await;
    let (status, check) = server
        .post(&format!("/api/v1/app/{app}/endpoint/{}/check", text(&bad["id"])), json!({"sendTestEvent": false}))
        .await;
    assert_eq!(status, 200, "{check}");
    assert_eq!((&check["ok"], &check["dns"]["ok"]), (&json!(false), &json!(false)), "{check}");
    assert!(check["tls"].is_null() && check["testEvent"].is_null(), "{check}");
    assert!(text(&check["problems"][0]).starts_with("DNS: cannot resolve no-such-host.invalid"), "{check}");
    let (status, refused) = server.post(&format!("{base}/check"), json!({"sendTest": true})).await;
    assert_eq!(status, 422, "{refused}");
}

#[tokio::test]
async fn an_endpoints_health_state_follows_its_breaker_with_a_history() {
    let opts = ServerOptions {
        retry_schedule: String::new(),
        extra_args: ["--breaker-min-requests", "3", "--breaker-open", "1s"].map(String::from).to_vec(),
        ..Default::default()
    };
    let server = TestServer::spawn_with(opts).await;
    let sink = Sink::start().await;
    sink.script(&[500; 4]);
    let app = server.create_app("Flaky").await;
    let ep = server.create_endpoint(&app, json!({"url": sink.url("/in")})).await;
    assert_eq!((&ep["healthState"], &ep["healthReason"]), (&json!("healthy"), &json!("")), "{ep}");
    let base = format!("/api/v1/app/{app}/endpoint/{}", text(&ep["id"]));
    for n in 0..4 {
        server.send_message(&app, "a.b", json!({"n": n})).await;
    }
    let failing = server
        .eventually(Duration::from_secs(10), || async {
            let (_, e) = server.get(&base).await;
            (e["healthState"] == "failing").then_some(e)
        })
        .await
        .expect("the breaker opens and the endpoint is failing");
    assert!(text(&failing["healthReason"]).starts_with("circuit breaker open"), "{failing}");

    // The breaker's probe succeeds: healthy again.
    server.send_message(&app, "a.b", json!({"n": 9})).await;
    server
        .eventually(Duration::from_secs(15), || async {
            let (_, e) = server.get(&base).await;
            (e["healthState"] == "healthy").then_some(())
        })
        .await
        .expect("healthy again after a successful probe");
    let (_, history) = server.get(&format!("{base}/health-history")).await;
    let states: Vec<&str> = history["data"].as_array().unwrap().iter().map(|e| e["state"].as_str().unwrap()).collect();
    assert_eq!(states.first(), Some(&"healthy"), "{history}");
    assert_eq!(states.last(), Some(&"failing"), "{history}");
    assert_eq!(history["state"], "healthy");
    let (status, _) = server.get(&format!("{base}/health-history?limit=0")).await;
    assert_eq!(status, 422);

    // Disabled is a state too (not a delivery report, so not in the history).
    server.patch(&base, json!({"disabled": true})).await;
    let (_, e) = server.get(&base).await;
    assert_eq!(e["healthState"], "disabled");
}
