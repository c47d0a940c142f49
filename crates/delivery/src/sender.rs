//! Builds and sends one webhook request.
//!
//! Headers follow Standard Webhooks (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature`) with the same three as `svix-*` for receivers written
//! against Svix, then the endpoint's custom headers. Redirects are not followed:
//! a 3xx is a failed attempt, so a receiver cannot bounce hookd elsewhere.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use hookd_core::headers::is_sensitive;
use hookd_core::signing::signature_header;
use hookd_core::text::storable;
use hookd_store::{AttemptClass, AttemptHeaders, DeliveryJob};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, USER_AGENT};

use crate::ssrf::{check_literal, check_resolved, GuardedResolver};
use crate::transport::{BrokerAuth, Brokers, Publication};
use hookd_core::broker::BrokerTarget;
use hookd_core::policy::{DestinationPolicy, OrgPolicy};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// Most response body bytes kept per attempt.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Most response headers kept per attempt, most bytes of a name and of a
/// value, and most bytes in all.
const MAX_RESPONSE_HEADERS: usize = 64;
const MAX_HEADER_NAME_BYTES: usize = 128;
const MAX_HEADER_VALUE_BYTES: usize = 1024;
const MAX_RESPONSE_HEADER_BYTES: usize = 8 * 1024;
/// Characters of each signature kept with an attempt: enough to compare with
/// one's own, too few to replay the request.
const SIGNATURE_PREFIX_CHARS: usize = 8;
const USER_AGENT_VALUE: &str = concat!("hookd/", env!("CARGO_PKG_VERSION"));

#[derive(Debug, Clone)]
pub struct SenderConfig {
    pub timeout: Duration,
    /// The server's destination policy; an organisation's narrows it.
    pub policy: DestinationPolicy,
    /// An HTTP proxy every delivery goes through (`CONNECT` for https), for a
    /// static egress address.
    pub egress_proxy: Option<String>,
}

/// What came back from one attempt.
#[derive(Debug, Clone, Default)]
pub struct SendResult {
    /// `None` when no response arrived (connect error, timeout, refused).
    pub status: Option<u16>,
    /// Response body (truncated; NUL and invalid UTF-8 replaced, so any body
    /// can be stored), or the error when there was no response.
    pub body: String,
    pub duration: Duration,
    /// No response within the timeout (connecting, waiting or reading the body).
    pub timed_out: bool,
    /// The response's `Retry-After` (seconds or an HTTP date), from now.
    pub retry_after: Option<Duration>,
    /// What the response's `webhook-delivery` header asks for.
    pub signal: Option<ReceiverSignal>,
    /// The request's and the response's headers as stored with the attempt
    /// (`sent` is `None` when no request was made).
    pub headers: AttemptHeaders,
    /// Why no response came, when the connection or its TLS handshake failed.
    pub failure: Option<AttemptClass>,
    /// Bytes of the request body sent (0 when no request was made).
    pub sent_bytes: u64,
}

/// A receiver's request in the `webhook-delivery` response header (Standard
/// Webhooks operations guide).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiverSignal {
    /// `abort-message`: no more attempts of this message to this endpoint.
    AbortMessage,
    /// `disable`: disable the endpoint.
    Disable,
}

impl SendResult {
    /// How the attempt ended, as the statistics count it.
    pub fn class(&self) -> AttemptClass {
        match self.status {
            Some(status) => AttemptClass::of_status(status),
            None if self.timed_out => AttemptClass::Timeout,
            None => self.failure.unwrap_or(AttemptClass::Other),
        }
    }

    pub fn is_success(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    /// The receiver says it is overloaded or its upstream is: 429, 502, 503,
    /// 504, or no answer in time. These hold the whole endpoint back, and
    /// (with timeouts, 429 and 503) halve its concurrency.
    pub fn is_throttling(&self) -> bool {
        self.timed_out || matches!(self.status, Some(429 | 502 | 503 | 504))
    }
}

/// `Retry-After` as delta-seconds or an HTTP date; `None` when absent or unreadable.
pub fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

fn parse_signal(value: &str) -> Option<ReceiverSignal> {
    match value.trim().to_ascii_lowercase().as_str() {
        "abort-message" => Some(ReceiverSignal::AbortMessage),
        "disable" => Some(ReceiverSignal::Disable),
        _ => None,
    }
}

/// A client and the policy its resolver holds it to.
type PolicyClient = (reqwest::Client, Arc<DestinationPolicy>);

/// Clients for organisations with a policy of their own, by policy.
const MAX_NARROWED_CLIENTS: usize = 256;

#[derive(Clone)]
pub struct HttpSender {
    config: Arc<SenderConfig>,
    /// The client under the server's policy.
    client: reqwest::Client,
    policy: Arc<DestinationPolicy>,
    narrowed: Arc<Mutex<HashMap<OrgPolicy, PolicyClient>>>,
    /// OAuth2 access tokens, per endpoint.
    oauth: Arc<crate::oauth::TokenCache>,
    /// Clients of endpoints with TLS settings of their own, by endpoint (with
    /// a fingerprint of the settings and policy they were built with).
    tls_clients: Arc<Mutex<HashMap<String, (u64, reqwest::Client)>>>,
    /// Connections to broker endpoints.
    brokers: Arc<Brokers>,
    /// `hookd listen` tunnels connected to this node (`relay://` endpoints).
    relay: Arc<crate::relay::RelayHub>,
}

impl HttpSender {
    /// The server's destination policy.
    pub fn policy(&self) -> &DestinationPolicy {
        &self.policy
    }

    /// Whether deliveries go through an egress proxy.
    pub fn has_egress_proxy(&self) -> bool {
        self.config.egress_proxy.is_some()
    }

    pub fn new(config: &SenderConfig) -> Result<Self, reqwest::Error> {
        let policy = Arc::new(config.policy.clone());
        Ok(HttpSender {
            client: client(config, &policy)?,
            config: Arc::new(config.clone()),
            policy,
            narrowed: Arc::default(),
            oauth: Arc::default(),
            tls_clients: Arc::default(),
            brokers: Arc::default(),
            relay: Arc::default(),
        })
    }

    /// The `hookd listen` tunnels connected to this node.
    pub fn relay(&self) -> &Arc<crate::relay::RelayHub> {
        &self.relay
    }

    /// The client and policy for a delivery of an organisation with `org` policy.
    fn client_for(&self, org: Option<&OrgPolicy>) -> Result<PolicyClient, String> {
        let Some(org) = org.filter(|o| !o.is_empty()) else {
            return Ok((self.client.clone(), self.policy.clone()));
        };
        let mut narrowed = self.narrowed.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((c, p)) = narrowed.get(org) {
            return Ok((c.clone(), p.clone()));
        }
        let policy = Arc::new(self.policy.narrowed(org));
        let c = client(&self.config, &policy).map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        if narrowed.len() >= MAX_NARROWED_CLIENTS {
            narrowed.clear();
        }
        narrowed.insert(org.clone(), (c.clone(), policy.clone()));
        Ok((c, policy))
    }

    /// The client of an endpoint with TLS settings of its own (`None`: it has
    /// none), built once per endpoint, settings and policy.
    fn tls_client(
        &self,
        job: &DeliveryJob,
        policy: &Arc<DestinationPolicy>,
    ) -> Result<Option<reqwest::Client>, String> {
        let auth = &job.endpoint.auth;
        if auth.mtls_identity.is_none() && auth.server_ca.is_none() {
            return Ok(None);
        }
        let print = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (&auth.mtls_identity, &auth.server_ca, Arc::as_ptr(policy)).hash(&mut h);
            h.finish()
        };
        if let Some((p, c)) = self.tls_clients.lock().unwrap_or_else(|e| e.into_inner()).get(&job.endpoint.id) {
            if *p == print {
                return Ok(Some(c.clone()));
            }
        }
        // Built without the cache locked (loading keys takes a while).
        let mut builder =
            client_builder(&self.config, policy).map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        if let Some(pem) = &auth.mtls_identity {
            let identity = reqwest::Identity::from_pem(pem.as_bytes())
                .map_err(|_| "the endpoint's mTLS identity is not a usable PEM key and certificate".to_string())?;
            builder = builder.identity(identity);
        }
        if let Some(pem) = &auth.server_ca {
            let ca = reqwest::Certificate::from_pem(pem.as_bytes())
                .map_err(|_| "the endpoint's CA is not a usable PEM certificate".to_string())?;
            builder = builder.tls_built_in_root_certs(false).add_root_certificate(ca);
        }
        let c = builder.build().map_err(|e| format!("cannot build the endpoint's TLS client: {e}"))?;
        let mut clients = self.tls_clients.lock().unwrap_or_else(|e| e.into_inner());
        if clients.len() >= MAX_NARROWED_CLIENTS {
            clients.clear();
        }
        clients.insert(job.endpoint.id.clone(), (print, c.clone()));
        Ok(Some(c))
    }

    /// A GET of `url` (a polled source's status URL) under the same policy as
    /// deliveries: the answer's status and at most `max_bytes` of its body
    /// (more is an error), or why there is none.
    pub async fn fetch(
        &self,
        url: &str,
        headers: HeaderMap,
        max_bytes: usize,
        org: Option<&OrgPolicy>,
    ) -> Result<(u16, Vec<u8>), String> {
        let url = reqwest::Url::parse(url).map_err(|e| format!("invalid URL: {e}"))?;
        let (client, policy) = self.client_for(org)?;
        check_literal(&policy, &url).map_err(|r| r.0)?;
        if self.config.egress_proxy.is_some() && policy.checks_addresses() {
            check_resolved(&policy, &url).await.map_err(|r| r.0)?;
        }
        let mut resp = client.get(url).headers(headers).send().await.map_err(|e| describe(&e))?;
        let status = resp.status().as_u16();
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| describe(&e))? {
            if body.len() + chunk.len() > max_bytes {
                return Err(format!("the answer is larger than {max_bytes} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((status, body))
    }

    /// Signs and sends `job` with `body` under the server's destination policy
    /// narrowed by the organisation's (`org`); never fails, the result says what
    /// happened.
    pub async fn send(
        &self,
        job: &DeliveryJob,
        out: &Outgoing,
        now_millis: i64,
        org: Option<&OrgPolicy>,
    ) -> SendResult {
        let started = Instant::now();
        let failed = |msg: String| SendResult {
            status: None,
            body: storable(msg.as_bytes()),
            duration: started.elapsed(),
            ..Default::default()
        };
        let url = match reqwest::Url::parse(out.url.as_deref().unwrap_or(&job.endpoint.url)) {
            Ok(u) => u,
            Err(e) => return failed(format!("invalid endpoint URL: {e}")),
        };
        // A transformation that sends elsewhere than the endpoint's own origin
        // sends the signed webhook only: the endpoint's credentials, client
        // identity and custom headers are for the endpoint's receiver.
        let foreign;
        let same_origin = |own: &str| reqwest::Url::parse(own).is_ok_and(|own| own.origin() == url.origin());
        let job = match &out.url {
            None => job,
            Some(_) if same_origin(&job.endpoint.url) => job,
            Some(_) => {
                let mut endpoint = (*job.endpoint).clone();
                endpoint.auth = Default::default();
                endpoint.headers.clear();
                foreign = DeliveryJob { endpoint: Arc::new(endpoint), ..job.clone() };
                &foreign
            }
        };
        let (client, policy) = match self.client_for(org) {
            Ok(c) => c,
            Err(e) => return failed(e),
        };
        // An endpoint with its own TLS settings (a client identity, a CA) has a
        // client of its own, under the same policy.
        let plain_client = client.clone();
        let client = match self.tls_client(job, &policy) {
            Ok(Some(c)) => c,
            Ok(None) => client,
            Err(e) => return failed(e),
        };
        let token_endpoint = crate::oauth::TokenEndpoint {
            client: &plain_client,
            policy: &policy,
            proxied: self.config.egress_proxy.is_some(),
        };
        // A `hookd listen` tunnel has no network address to vet.
        let relay = match hookd_core::relay::channel(&url) {
            Some(Ok(channel)) => Some(channel),
            Some(Err(e)) => return failed(e),
            None => None,
        };
        if relay.is_none() {
            if let Err(refused) = check_literal(&policy, &url) {
                return failed(refused.0);
            }
        }
        if relay.is_none() && self.config.egress_proxy.is_some() && policy.checks_addresses() {
            if let Err(refused) = check_resolved(&policy, &url).await {
                return failed(refused.0);
            }
        }
        // An endpoint with an encryption key gets the payload as a JWE, signed
        // as sent.
        let (body, content_type) = match &job.endpoint.control.encryption_key {
            None => (out.body.clone(), out.content_type.as_str()),
            Some(jwk) => match hookd_core::jwe::EncryptionKey::from_jwk(jwk) {
                Ok(key) => (Arc::from(key.encrypt(&out.body).into_bytes()), "application/jose"),
                Err(e) => return failed(format!("the endpoint's encryption key is unusable: {e}")),
            },
        };
        let timestamp = now_millis / 1000;
        let mut headers = match build_headers(job, &body, content_type, &out.headers, timestamp, now_millis) {
            Ok(h) => h,
            Err(e) => return failed(e),
        };
        let timeout = job.endpoint.control.timeout_ms.map(Duration::from_millis).unwrap_or(self.config.timeout);
        if let Some(channel) = relay {
            return self.relay_send(job, out, &channel, headers, body, timeout, started).await;
        }
        // A broker endpoint: published, not POSTed.
        match BrokerTarget::parse(&url) {
            Ok(Some(target)) => {
                let publication = Publication {
                    headers: ["content-type", "webhook-id", "webhook-timestamp", "webhook-signature"]
                        .into_iter()
                        .filter_map(|n| Some((n, headers.get(n)?.to_str().ok()?.to_string())))
                        .collect(),
                    body: &body,
                };
                let auth = &job.endpoint.auth;
                let broker_auth = BrokerAuth {
                    user: auth.basic.as_ref().map(|b| b.username.clone()),
                    password: auth.basic.as_ref().map(|b| b.password.clone()),
                    token: auth.bearer.clone(),
                };
                let sent = sent_headers_json(&headers, body.len(), &custom_names(job, out));
                let published = self.brokers.publish(&target, &broker_auth, &policy, &publication, timeout).await;
                let headers = AttemptHeaders { sent: Some(sent), received: None };
                return match published {
                    // The broker's acknowledgement, recorded as 202 Accepted.
                    Ok(ack) => SendResult {
                        status: Some(202),
                        body: storable(ack.as_bytes()),
                        duration: started.elapsed(),
                        headers,
                        sent_bytes: body.len() as u64,
                        ..Default::default()
                    },
                    Err(e) => SendResult {
                        timed_out: e == "timed out",
                        headers,
                        failure: Some(AttemptClass::Connection),
                        ..failed(e)
                    },
                };
            }
            Ok(None) => {}
            Err(e) => return failed(e),
        }
        // Signed as it is, sent compressed when the endpoint asks (the receiver
        // verifies after decompressing).
        let body_signed = body.clone();
        let wire = if job.endpoint.control.gzip {
            headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            match gzip(&body) {
                Ok(z) => Arc::from(z),
                Err(e) => return failed(format!("compressing the body failed: {e}")),
            }
        } else {
            body
        };
        // The receiver's own credentials: an OAuth2 access token, basic or bearer.
        let auth = &job.endpoint.auth;
        let mut oauth_token = None;
        if let Some(oauth) = &auth.oauth {
            match self.oauth.token(&token_endpoint, &job.endpoint.id, oauth, timeout, None).await {
                Ok(token) => {
                    set_authorization(&mut headers, &format!("Bearer {token}"));
                    oauth_token = Some(token);
                }
                Err(e) => return failed(e),
            }
        } else if let Some(jwt) = &auth.jwt {
            let now = (now_millis / 1000).max(0) as u64;
            match crate::jwt::token(jwt, &job.msg_id, &body_signed, now, rand::random()) {
                Ok(token) => set_authorization(&mut headers, &format!("Bearer {token}")),
                Err(e) => return failed(e),
            }
        } else if let Some(b) = &auth.basic {
            let pair = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", b.username, b.password));
            set_authorization(&mut headers, &format!("Basic {pair}"));
        } else if let Some(token) = &auth.bearer {
            set_authorization(&mut headers, &format!("Bearer {token}"));
        }
        // With tracing on (`--otlp-endpoint`), the receiver joins the attempt's trace.
        if let Some(tp) = TRACEPARENT.get().and_then(|current| current()) {
            if let Ok(v) = HeaderValue::from_str(&tp) {
                headers.insert("traceparent", v);
            }
        }
        let sent = Some(sent_headers_json(&headers, wire.len(), &custom_names(job, out)));
        let post = |headers: HeaderMap| {
            let body = bytes::Bytes::from_owner(wire.clone());
            client.request(out.method.clone(), url.clone()).headers(headers).timeout(timeout).body(body).send()
        };
        let mut response = post(headers.clone()).await;
        let mut note = None;
        // A 401 with an OAuth token: the token may have been revoked early. A
        // fresh one, and the request once more, within this attempt.
        if let (Some(oauth), Ok(resp)) = (&auth.oauth, &response) {
            if resp.status() == reqwest::StatusCode::UNAUTHORIZED {
                match self.oauth.token(&token_endpoint, &job.endpoint.id, oauth, timeout, oauth_token.as_deref()).await
                {
                    Ok(token) => {
                        set_authorization(&mut headers, &format!("Bearer {token}"));
                        response = post(headers).await;
                        note = Some(" [hookd: got a new OAuth token after a 401 and sent the request again]".into());
                    }
                    Err(e) => note = Some(format!(" [hookd: after a 401, {e}]")),
                }
            }
        }
        match response {
            Ok(mut resp) => {
                let received = Some(response_headers_json(resp.headers()));
                let status = resp.status().as_u16();
                let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
                let retry_after =
                    header("retry-after").and_then(|v| parse_retry_after(&v, std::time::SystemTime::now()));
                let signal = header("webhook-delivery").and_then(|v| parse_signal(&v));
                // The body counts towards the timeout too: a receiver that trickles
                // it is cut off like one that never answers.
                let mut kept = Vec::new();
                let mut timed_out = false;
                while kept.len() < MAX_RESPONSE_BYTES {
                    match resp.chunk().await {
                        Ok(Some(chunk)) => {
                            let room = MAX_RESPONSE_BYTES - kept.len();
                            kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
                        }
                        Ok(None) => break,
                        Err(e) => {
                            timed_out = e.is_timeout();
                            break;
                        }
                    }
                }
                // The status counts (a 2xx was accepted: sending it again would
                // duplicate it); a body cut off by the timeout says so.
                let mut body = storable(&kept);
                if timed_out {
                    body.push_str(" [hookd: timed out reading the rest of the response body]");
                }
                if let Some(note) = note {
                    body.push_str(&note);
                }
                SendResult {
                    status: Some(status),
                    body,
                    duration: started.elapsed(),
                    timed_out,
                    retry_after,
                    signal,
                    headers: AttemptHeaders { sent, received },
                    failure: None,
                    sent_bytes: wire.len() as u64,
                }
            }
            Err(e) => SendResult {
                timed_out: e.is_timeout(),
                headers: AttemptHeaders { sent, received: None },
                failure: Some(network_failure(&e)),
                sent_bytes: wire.len() as u64,
                ..failed(describe(&e))
            },
        }
    }

    /// Sends a delivery down a `hookd listen` tunnel: the listener's local
    /// server's answer is the attempt's response.
    #[allow(clippy::too_many_arguments)]
    async fn relay_send(
        &self,
        job: &DeliveryJob,
        out: &Outgoing,
        channel: &str,
        headers: HeaderMap,
        body: Arc<[u8]>,
        timeout: Duration,
        started: Instant,
    ) -> SendResult {
        let sent = Some(sent_headers_json(&headers, body.len(), &custom_names(job, out)));
        let request = crate::relay::RelayRequest {
            method: out.method.to_string(),
            path: "/".into(),
            headers: headers
                .iter()
                .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
                .collect(),
            body: bytes::Bytes::from_owner(body.clone()),
            msg_id: Some(job.msg_id.clone()),
            event_type: Some(job.event_type.clone()),
        };
        let sent_bytes = body.len() as u64;
        match self.relay.forward(&job.org_id, channel, crate::relay::Mode::Endpoint, request, timeout).await {
            Ok(answer) => match answer.status {
                Some(status) => {
                    // Bounded and with credentials masked, as for an HTTP response.
                    let mut map = HeaderMap::new();
                    for (n, v) in &answer.headers {
                        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(n.as_bytes()), HeaderValue::from_str(v)) {
                            map.append(n, v);
                        }
                    }
                    let received = Some(response_headers_json(&map));
                    let header = |name: &str| {
                        answer.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
                    };
                    SendResult {
                        status: Some(status),
                        body: storable(&answer.body[..answer.body.len().min(MAX_RESPONSE_BYTES)]),
                        duration: started.elapsed(),
                        retry_after: header("retry-after")
                            .and_then(|v| parse_retry_after(v, std::time::SystemTime::now())),
                        signal: header("webhook-delivery").and_then(parse_signal),
                        headers: AttemptHeaders { sent, received },
                        sent_bytes,
                        ..Default::default()
                    }
                }
                None => SendResult {
                    body: storable(
                        format!("hookd listen: {}", answer.error.as_deref().unwrap_or("no answer")).as_bytes(),
                    ),
                    duration: started.elapsed(),
                    headers: AttemptHeaders { sent, received: None },
                    failure: Some(AttemptClass::Connection),
                    sent_bytes,
                    ..Default::default()
                },
            },
            Err(e) => SendResult {
                timed_out: e == crate::relay::RelayError::TimedOut,
                body: storable(e.to_string().as_bytes()),
                duration: started.elapsed(),
                headers: AttemptHeaders { sent, received: None },
                failure: Some(AttemptClass::Connection),
                ..Default::default()
            },
        }
    }
}

/// The W3C `traceparent` of the current span, when traces are exported.
static TRACEPARENT: std::sync::OnceLock<fn() -> Option<String>> = std::sync::OnceLock::new();

/// Makes every HTTP attempt carry `current()`'s `traceparent` (set once, by
/// the binary, when OpenTelemetry traces are on).
pub fn propagate_traceparent(current: fn() -> Option<String>) {
    let _ = TRACEPARENT.set(current);
}

/// Sets `Authorization` (a credential: never stored with the attempt).
fn set_authorization(headers: &mut HeaderMap, value: &str) {
    if let Ok(mut v) = HeaderValue::from_str(value) {
        v.set_sensitive(true);
        headers.insert(AUTHORIZATION, v);
    }
}

/// `body` gzip-compressed.
fn gzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    let mut z = flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 2 + 64), flate2::Compression::fast());
    z.write_all(body)?;
    z.finish()
}

/// A client held to `policy`: its resolver vets every address it connects to.
fn client(config: &SenderConfig, policy: &Arc<DestinationPolicy>) -> Result<reqwest::Client, reqwest::Error> {
    client_builder(config, policy)?.build()
}

fn client_builder(
    config: &SenderConfig,
    policy: &Arc<DestinationPolicy>,
) -> Result<reqwest::ClientBuilder, reqwest::Error> {
    let mut builder = reqwest::Client::builder()
        .timeout(config.timeout)
        .connect_timeout(config.timeout.min(Duration::from_secs(10)))
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(256)
        .pool_idle_timeout(Duration::from_secs(60))
        .tcp_nodelay(true);
    builder = match &config.egress_proxy {
        // Only the configured proxy, never one from the environment: the guard
        // must know where connections go.
        Some(proxy) => builder.proxy(reqwest::Proxy::all(proxy)?),
        None => builder.no_proxy(),
    };
    // Through a proxy the client resolves only the proxy's name (the
    // operator's, and maybe private); destinations are vetted in `send`.
    if policy.checks_addresses() && config.egress_proxy.is_none() {
        builder = builder.dns_resolver(Arc::new(GuardedResolver(policy.clone())));
    }
    Ok(builder)
}

fn build_headers(
    job: &DeliveryJob,
    body: &[u8],
    content_type: &str,
    extra: &BTreeMap<String, String>,
    timestamp: i64,
    now_millis: i64,
) -> Result<HeaderMap, String> {
    let secrets = job.endpoint.signing_secrets(now_millis);
    let signature = signature_header(&secrets, &job.msg_id, timestamp, body);
    let mut h = HeaderMap::with_capacity(8 + job.endpoint.headers.len());
    let value = |s: &str| HeaderValue::from_str(s).map_err(|_| format!("header value `{s}` is not valid"));
    h.insert(CONTENT_TYPE, value(content_type)?);
    h.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
    let id = value(&job.msg_id)?;
    let ts = value(&timestamp.to_string())?;
    let sig = value(&signature)?;
    for (name, v) in [("webhook-id", &id), ("webhook-timestamp", &ts), ("webhook-signature", &sig)] {
        h.insert(HeaderName::from_static(name), v.clone());
    }
    h.insert(HeaderName::from_static("svix-id"), id);
    h.insert(HeaderName::from_static("svix-timestamp"), ts);
    h.insert(HeaderName::from_static("svix-signature"), sig);
    for (name, v) in job.endpoint.headers.iter().chain(extra) {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("header name `{name}` is not valid"))?;
        h.insert(name, value(v)?);
    }
    Ok(h)
}

/// The headers kept by name only with the attempt: the endpoint's custom ones
/// and those its transformation added.
fn custom_names<'a>(job: &'a DeliveryJob, out: &'a Outgoing) -> std::borrow::Cow<'a, BTreeMap<String, String>> {
    if out.headers.is_empty() {
        return std::borrow::Cow::Borrowed(&job.endpoint.headers);
    }
    let mut all = job.endpoint.headers.clone();
    all.extend(out.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
    std::borrow::Cow::Owned(all)
}

/// The request that goes out for a delivery: its body, as templates and
/// transformations shaped it, and how it is sent.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub body: Arc<[u8]>,
    pub content_type: String,
    /// POST, or PUT when a transformation asks.
    pub method: reqwest::Method,
    /// Another URL than the endpoint's, when a transformation asks.
    pub url: Option<String>,
    /// Headers a transformation added.
    pub headers: BTreeMap<String, String>,
}

impl Outgoing {
    /// The body as it is, posted as JSON to the endpoint's URL.
    pub fn json(body: Arc<[u8]>) -> Self {
        Outgoing::of(body, "application/json")
    }

    pub fn of(body: Arc<[u8]>, content_type: &str) -> Self {
        Outgoing {
            body,
            content_type: content_type.to_string(),
            method: reqwest::Method::POST,
            url: None,
            headers: BTreeMap::new(),
        }
    }
}

/// The request's headers as stored with the attempt: a JSON object of hookd's
/// own headers with their values (`content-length` included, which the client
/// sets from the body; each signature cut to its first characters, so what is
/// kept cannot be replayed) and the endpoint's custom headers by name only, with
/// a `null` value: they carry credentials, which are sealed at rest with the
/// endpoint and never copied out. The `svix-*` three repeat the `webhook-*`
/// ones and are left out (the API shows them again).
fn sent_headers_json(headers: &HeaderMap, body_len: usize, custom: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(384);
    out.push('{');
    let mut entry = |name: &str, value: Option<&str>| {
        if out.len() > 1 {
            out.push(',');
        }
        push_json_str(&mut out, name);
        out.push(':');
        match value {
            Some(v) => push_json_str(&mut out, v),
            None => out.push_str("null"),
        }
    };
    for (name, value) in headers {
        let name = name.as_str();
        if custom.keys().any(|k| k.eq_ignore_ascii_case(name)) || is_sensitive(name) {
            entry(name, None);
        } else if name.starts_with("svix-") {
            continue;
        } else if name == "webhook-signature" {
            entry(name, Some(&signature_prefixes(&String::from_utf8_lossy(value.as_bytes()))));
        } else {
            entry(name, Some(&String::from_utf8_lossy(value.as_bytes())));
        }
    }
    entry("content-length", Some(&body_len.to_string()));
    out.push('}');
    out
}

/// `v1,AbCdEfGh… v1a,…` from a signature header: each signature's first characters.
fn signature_prefixes(header: &str) -> String {
    let cut = |sig: &str| match sig.split_once(',') {
        Some((scheme, s)) if s.len() > SIGNATURE_PREFIX_CHARS => format!("{scheme},{}…", &s[..SIGNATURE_PREFIX_CHARS]),
        _ => sig.to_string(),
    };
    header.split(' ').map(cut).collect::<Vec<_>>().join(" ")
}

/// `s` as a JSON string, appended (`s` is header text: Latin-1 at most).
fn push_json_str(out: &mut String, s: &str) {
    use std::fmt::Write;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The response's headers as a JSON array of `[name, value]` pairs, in the
/// order received, bounded (count, name and value length, total); a credential
/// (`set-cookie`, `www-authenticate`, or a name that looks like one) keeps its
/// name with a `null` value.
fn response_headers_json(headers: &HeaderMap) -> String {
    let mut pairs: Vec<(&str, Option<String>)> = Vec::with_capacity(headers.len().min(MAX_RESPONSE_HEADERS));
    let mut total = 0;
    for (name, value) in headers {
        let name = name.as_str();
        if pairs.len() == MAX_RESPONSE_HEADERS || name.len() > MAX_HEADER_NAME_BYTES {
            continue;
        }
        let v = value.as_bytes();
        let credential = is_sensitive(name) || name == "set-cookie" || name == "www-authenticate";
        let kept = (!credential).then(|| storable(&v[..v.len().min(MAX_HEADER_VALUE_BYTES)]));
        total += name.len() + kept.as_ref().map_or(0, String::len);
        if total > MAX_RESPONSE_HEADER_BYTES {
            break;
        }
        pairs.push((name, kept));
    }
    serde_json::to_string(&pairs).unwrap_or_else(|_| "[]".into())
}

/// A readable reason for a failed request, including the SSRF guard's refusal.
/// A connection's failure: TLS when its handshake or certificate failed.
fn network_failure(e: &reqwest::Error) -> AttemptClass {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string().to_ascii_lowercase();
        if text.contains("certificate") || text.contains("tls") || text.contains("handshake") {
            return AttemptClass::Tls;
        }
        source = s.source();
    }
    AttemptClass::Connection
}

pub(crate) fn describe(e: &reqwest::Error) -> String {
    let mut msg = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "connection failed".to_string()
    } else {
        "request failed".to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(parse_retry_after("15", now), Some(Duration::from_secs(15)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        // 2015-10-21 07:28:00 is 1445412480; 07:29:00 is a minute later.
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:29:00 GMT", now), Some(Duration::from_secs(60)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    #[test]
    fn stored_request_headers_keep_no_credential_and_no_whole_signature() {
        let mut h = HeaderMap::new();
        h.insert("webhook-id", HeaderValue::from_static("msg_1"));
        h.insert("svix-id", HeaderValue::from_static("msg_1"));
        h.insert("webhook-signature", HeaderValue::from_static("v1,AbCdEfGhIjKlMnOp= v1a,QrStUvWxYz"));
        h.insert("x-quoted", HeaderValue::from_static("a\"b\\c"));
        h.insert("authorization", HeaderValue::from_static("Bearer sk_live_1"));
        h.insert("x-tenant", HeaderValue::from_static("t1"));
        let custom = BTreeMap::from([("X-Tenant".to_string(), "t1".to_string())]);
        let sent: serde_json::Value = serde_json::from_str(&sent_headers_json(&h, 12, &custom)).unwrap();
        let want = serde_json::json!({
            "webhook-id": "msg_1",
            "webhook-signature": "v1,AbCdEfGh… v1a,QrStUvWx…",
            "x-quoted": "a\"b\\c",
            "authorization": null,
            "x-tenant": null,
            "content-length": "12"
        });
        assert_eq!(sent, want);
    }

    #[test]
    fn stored_response_headers_are_bounded_and_keep_no_cookie() {
        let mut r = HeaderMap::new();
        r.insert("x-long", HeaderValue::from_str(&"a".repeat(5000)).unwrap());
        r.insert("set-cookie", HeaderValue::from_static("session=s3cr3t"));
        r.insert(HeaderName::from_bytes("x-".repeat(100).as_bytes()).unwrap(), HeaderValue::from_static("v"));
        for i in 0..100 {
            r.append(HeaderName::from_bytes(format!("x-h{i}").as_bytes()).unwrap(), HeaderValue::from_static("v"));
        }
        let received: Vec<(String, Option<String>)> = serde_json::from_str(&response_headers_json(&r)).unwrap();
        assert_eq!(received.len(), MAX_RESPONSE_HEADERS, "the over-long name is left out, the count bounded");
        let long = received.iter().find(|(n, _)| n == "x-long").expect("kept, cut");
        assert_eq!(long.1.as_deref().map(str::len), Some(MAX_HEADER_VALUE_BYTES));
        assert!(received.contains(&("set-cookie".into(), None)), "{received:?}");
        assert!(received.iter().all(|(n, _)| n.len() <= MAX_HEADER_NAME_BYTES));

        let mut big = HeaderMap::new();
        for i in 0..20 {
            let name = HeaderName::from_bytes(format!("x-big{i}").as_bytes()).unwrap();
            big.insert(name, HeaderValue::from_str(&"b".repeat(1000)).unwrap());
        }
        let kept = response_headers_json(&big);
        assert!(kept.len() <= MAX_RESPONSE_HEADER_BYTES + 20 * 8, "{}", kept.len());
    }

    #[test]
    fn webhook_delivery_signals() {
        assert_eq!(parse_signal("abort-message"), Some(ReceiverSignal::AbortMessage));
        assert_eq!(parse_signal(" Disable "), Some(ReceiverSignal::Disable));
        assert_eq!(parse_signal("retry"), None);
    }
}
