//! Endpoint checks: what an operator wants to know about an endpoint before
//! customers' webhooks depend on it — its name resolves to addresses the
//! destination policy allows, its TLS certificate is valid for it (and when it
//! expires), and a signed test event gets a 2xx, and how fast.
//!
//! The DNS and TLS probes connect directly (with the SSRF guard's vetting); the
//! test event goes through the delivery sender itself, so it is signed and
//! authenticated exactly as a delivery would be.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hookd_core::id::{new_id, IdPrefix};
use hookd_core::policy::OrgPolicy;
use hookd_core::timefmt::{format_millis, now_millis};
use hookd_core::AttemptTrigger;
use hookd_store::{DeliveryJob, Endpoint};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde::{Deserialize, Serialize};

use crate::sender::{HttpSender, Outgoing};

/// What one check found. Stored with the endpoint and answered by the API.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointCheck {
    pub checked_at: String,
    pub url: String,
    /// Every check made passed.
    pub ok: bool,
    /// What failed, in words.
    pub problems: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsCheck>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsCheck>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_event: Option<TestEvent>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DnsCheck {
    pub ok: bool,
    pub addresses: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsCheck {
    /// The chain verified for the host name (with the endpoint's own CA when it
    /// has one, else the public roots).
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub subject: Option<String>,
    pub issuer: Option<String>,
    /// The certificate's DNS names and IP addresses.
    pub names: Vec<String>,
    pub not_before: Option<String>,
    pub not_after: Option<String>,
    /// Whole days until `notAfter` (negative once expired).
    pub days_left: Option<i64>,
    #[serde(skip)]
    pub not_after_ms: Option<i64>,
    pub handshake_ms: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestEvent {
    pub ok: bool,
    pub msg_id: String,
    pub status_code: Option<u16>,
    pub duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The event type of test events.
pub const TEST_EVENT_TYPE: &str = "hookd.endpoint.check";

/// Checks `ep`: DNS and TLS always (for http(s) URLs), a signed test event when
/// `send_test` is set.
pub async fn check_endpoint(
    sender: &HttpSender,
    ep: &Endpoint,
    org: Option<&OrgPolicy>,
    send_test: bool,
    timeout: Duration,
) -> EndpointCheck {
    let mut check =
        EndpointCheck { checked_at: format_millis(now_millis()), url: ep.url.clone(), ..Default::default() };
    let url = match reqwest::Url::parse(&ep.url) {
        Ok(u) => u,
        Err(e) => {
            check.problems.push(format!("the URL does not parse: {e}"));
            return check;
        }
    };
    let web = matches!(url.scheme(), "http" | "https");
    // Through an egress proxy, hookd does not connect to endpoints itself.
    if web && !sender.has_egress_proxy() {
        let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_string();
        let port = url.port_or_known_default().unwrap_or(443);
        // The organisation's policy narrows the server's, as for deliveries.
        let narrowed;
        let policy = match org {
            Some(o) => {
                narrowed = sender.policy().narrowed(o);
                &narrowed
            }
            None => sender.policy(),
        };
        let dns = match crate::ssrf::resolve_vetted(policy, &host, port).await {
            Ok(addrs) => {
                DnsCheck { ok: true, addresses: addrs.iter().map(|a| a.ip().to_string()).collect(), error: None }
            }
            Err(e) => DnsCheck { ok: false, addresses: vec![], error: Some(e.0) },
        };
        if let Some(e) = &dns.error {
            check.problems.push(format!("DNS: {e}"));
        }
        if url.scheme() == "https" && dns.ok {
            let tls = probe_tls(ep, &host, port, &dns.addresses[0], timeout).await;
            if let Some(e) = &tls.error {
                check.problems.push(format!("TLS: {e}"));
            }
            check.tls = Some(tls);
        }
        check.dns = Some(dns);
    }
    if send_test {
        let event = test_event(sender, ep, org).await;
        if !event.ok {
            let why = event.error.clone().unwrap_or_else(|| format!("status {:?}", event.status_code));
            check.problems.push(format!("the test event was not accepted: {why}"));
        }
        check.test_event = Some(event);
    }
    check.ok = check.problems.is_empty();
    check
}

async fn test_event(sender: &HttpSender, ep: &Endpoint, org: Option<&OrgPolicy>) -> TestEvent {
    let msg_id = new_id(IdPrefix::Message);
    let now = now_millis();
    let body = serde_json::json!({
        "type": TEST_EVENT_TYPE,
        "timestamp": format_millis(now),
        "data": {"endpointId": ep.id, "appId": ep.app_id, "test": true},
    })
    .to_string();
    let payload: Arc<[u8]> = Arc::from(body.into_bytes());
    let job = DeliveryJob {
        delivery_id: 0,
        lease_token: 0,
        org_id: ep.org_id.clone(),
        app_id: ep.app_id.clone(),
        msg_id: msg_id.clone(),
        event_type: TEST_EVENT_TYPE.into(),
        msg_created_at: now,
        payload: Some(payload.clone()),
        endpoint: Arc::new(ep.clone()),
        attempts: 0,
        trigger: AttemptTrigger::Manual,
    };
    let result = sender.send(&job, &Outgoing::json(payload), now, org).await;
    TestEvent {
        ok: result.is_success(),
        msg_id,
        status_code: result.status,
        duration_ms: result.duration.as_millis() as u64,
        error: result.status.is_none().then(|| result.body.clone()),
    }
}

/// Connects to `addr`, shakes hands for `host`, and reads the certificate.
async fn probe_tls(ep: &Endpoint, host: &str, port: u16, addr: &str, timeout: Duration) -> TlsCheck {
    let mut out = TlsCheck::default();
    let seen: Arc<Mutex<Option<CertificateDer<'static>>>> = Arc::default();
    let config = match client_config(ep, seen.clone()) {
        Ok(c) => c,
        Err(e) => {
            out.error = Some(e);
            return out;
        }
    };
    let Ok(name) = ServerName::try_from(host.to_string()) else {
        out.error = Some(format!("`{host}` is not a name TLS can check"));
        return out;
    };
    let started = Instant::now();
    let target = match addr.parse::<std::net::IpAddr>() {
        Ok(ip) => std::net::SocketAddr::new(ip, port),
        Err(_) => {
            out.error = Some(format!("bad address {addr}"));
            return out;
        }
    };
    let shake = async {
        let tcp =
            tokio::net::TcpStream::connect(target).await.map_err(|e| format!("cannot connect to {target}: {e}"))?;
        tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.map_err(|e| e.to_string())
    };
    match tokio::time::timeout(timeout, shake).await {
        Ok(Ok(_stream)) => out.ok = true,
        Ok(Err(e)) => out.error = Some(e),
        Err(_) => out.error = Some(format!("no TLS handshake within {timeout:?}")),
    }
    out.handshake_ms = Some(started.elapsed().as_millis() as u64);
    let cert = seen.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(der) = cert {
        describe(&der, &mut out);
    }
    out
}

fn client_config(
    ep: &Endpoint,
    seen: Arc<Mutex<Option<CertificateDer<'static>>>>,
) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    match &ep.auth.server_ca {
        Some(pem) => {
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let cert = cert.map_err(|_| "the endpoint's CA is not a usable PEM certificate".to_string())?;
                roots.add(cert).map_err(|e| format!("the endpoint's CA: {e}"))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("cannot build the certificate verifier: {e}"))?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Recording { inner, seen }))
        .with_no_client_auth();
    Ok(config)
}

/// The public-root (or endpoint-CA) verifier, remembering the certificate it
/// was shown so its dates can be reported even when verification fails.
#[derive(Debug)]
struct Recording {
    inner: Arc<WebPkiServerVerifier>,
    seen: Arc<Mutex<Option<CertificateDer<'static>>>>,
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(end_entity.clone().into_owned());
        self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Reads a certificate's names and dates into `out`.
fn describe(der: &[u8], out: &mut TlsCheck) {
    use x509_cert::der::Decode;
    let Ok(cert) = x509_cert::Certificate::from_der(der) else {
        out.error.get_or_insert_with(|| "the certificate does not parse".into());
        return;
    };
    let tbs = &cert.tbs_certificate;
    out.subject = Some(tbs.subject.to_string());
    out.issuer = Some(tbs.issuer.to_string());
    let ms = |t: &x509_cert::time::Time| t.to_unix_duration().as_millis() as i64;
    let (from, until) = (ms(&tbs.validity.not_before), ms(&tbs.validity.not_after));
    out.not_before = Some(format_millis(from));
    out.not_after = Some(format_millis(until));
    out.not_after_ms = Some(until);
    out.days_left = Some((until - now_millis()).div_euclid(86_400_000));
    for ext in tbs.extensions.iter().flatten() {
        if ext.extn_id != <x509_cert::ext::pkix::SubjectAltName as x509_cert::der::oid::AssociatedOid>::OID {
            continue;
        }
        let Ok(san) = x509_cert::ext::pkix::SubjectAltName::from_der(ext.extn_value.as_bytes()) else { continue };
        for name in san.0 {
            match name {
                x509_cert::ext::pkix::name::GeneralName::DnsName(n) => out.names.push(n.to_string()),
                x509_cert::ext::pkix::name::GeneralName::IpAddress(ip) => {
                    let b = ip.as_bytes();
                    let ip: Option<std::net::IpAddr> = match b.len() {
                        4 => Some(std::net::IpAddr::from(<[u8; 4]>::try_from(b).unwrap_or_default())),
                        16 => Some(std::net::IpAddr::from(<[u8; 16]>::try_from(b).unwrap_or_default())),
                        _ => None,
                    };
                    out.names.extend(ip.map(|i| i.to_string()));
                }
                _ => {}
            }
        }
    }
}
