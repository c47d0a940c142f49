//! Builds and sends one webhook request.
//!
//! Headers follow Standard Webhooks (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature`) with the same three as `svix-*` for receivers written
//! against Svix, then the endpoint's custom headers. Redirects are not followed:
//! a 3xx is a failed attempt, so a receiver cannot bounce hookd elsewhere.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hookd_core::signing::signature_header;
use hookd_core::text::storable;
use hookd_store::DeliveryJob;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, USER_AGENT};

use crate::ssrf::{check_literal, GuardedResolver};

/// Most response body bytes kept per attempt.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;
const USER_AGENT_VALUE: &str = concat!("hookd/", env!("CARGO_PKG_VERSION"));

#[derive(Debug, Clone)]
pub struct SenderConfig {
    pub timeout: Duration,
    pub allow_private_networks: bool,
}

/// What came back from one attempt.
#[derive(Debug, Clone)]
pub struct SendResult {
    /// `None` when no response arrived (connect error, timeout, refused).
    pub status: Option<u16>,
    /// Response body (truncated; NUL and invalid UTF-8 replaced, so any body
    /// can be stored), or the error when there was no response.
    pub body: String,
    pub duration: Duration,
}

impl SendResult {
    pub fn is_success(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

#[derive(Clone)]
pub struct HttpSender {
    client: reqwest::Client,
    allow_private: bool,
}

impl HttpSender {
    pub fn new(config: &SenderConfig) -> Result<Self, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            // Never through a proxy from the environment: the SSRF guard must see
            // the address actually connected to.
            .no_proxy()
            .pool_max_idle_per_host(256)
            .pool_idle_timeout(Duration::from_secs(60))
            .tcp_nodelay(true);
        if !config.allow_private_networks {
            builder = builder.dns_resolver(Arc::new(GuardedResolver));
        }
        Ok(HttpSender { client: builder.build()?, allow_private: config.allow_private_networks })
    }

    /// Signs and sends `job` with `body`; never fails, the result says what happened.
    pub async fn send(&self, job: &DeliveryJob, body: &Arc<[u8]>, now_millis: i64) -> SendResult {
        let started = Instant::now();
        let failed =
            |msg: String| SendResult { status: None, body: storable(msg.as_bytes()), duration: started.elapsed() };
        let url = match reqwest::Url::parse(&job.endpoint.url) {
            Ok(u) => u,
            Err(e) => return failed(format!("invalid endpoint URL: {e}")),
        };
        if !self.allow_private {
            if let Err(refused) = check_literal(&url) {
                return failed(refused.0);
            }
        }
        let timestamp = now_millis / 1000;
        let headers = match build_headers(job, body, timestamp, now_millis) {
            Ok(h) => h,
            Err(e) => return failed(e),
        };
        let response = self.client.post(url).headers(headers).body(bytes::Bytes::from_owner(body.clone())).send().await;
        match response {
            Ok(mut resp) => {
                let status = resp.status().as_u16();
                let mut kept = Vec::new();
                while kept.len() < MAX_RESPONSE_BYTES {
                    match resp.chunk().await {
                        Ok(Some(chunk)) => {
                            let room = MAX_RESPONSE_BYTES - kept.len();
                            kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
                        }
                        _ => break,
                    }
                }
                SendResult { status: Some(status), body: storable(&kept), duration: started.elapsed() }
            }
            Err(e) => failed(describe(&e)),
        }
    }
}

fn build_headers(job: &DeliveryJob, body: &[u8], timestamp: i64, now_millis: i64) -> Result<HeaderMap, String> {
    let secrets = job.endpoint.signing_secrets(now_millis);
    let signature = signature_header(&secrets, &job.msg_id, timestamp, body);
    let mut h = HeaderMap::with_capacity(8 + job.endpoint.headers.len());
    let value = |s: &str| HeaderValue::from_str(s).map_err(|_| format!("header value `{s}` is not valid"));
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
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
    for (name, v) in &job.endpoint.headers {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("header name `{name}` is not valid"))?;
        h.insert(name, value(v)?);
    }
    Ok(h)
}

/// A readable reason for a failed request, including the SSRF guard's refusal.
fn describe(e: &reqwest::Error) -> String {
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
