//! Response bodies in the Svix wire shape (camelCase, RFC 3339 timestamps),
//! built from store rows.

use std::collections::BTreeMap;

use hookd_core::timefmt::format_millis;
use hookd_store::{
    Application, Attempt, BreakerState, Delivery, Endpoint, EndpointHealth, EventType, Message, Metadata,
};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

/// `absent` → `None`, `null` → `Some(None)`, value → `Some(Some(v))`: PATCH semantics.
pub fn patch_field<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationOut {
    pub id: String,
    pub uid: Option<String>,
    pub name: String,
    pub rate_limit: Option<u32>,
    pub throttle_rate: Option<u32>,
    pub metadata: Metadata,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Application> for ApplicationOut {
    fn from(a: Application) -> Self {
        ApplicationOut {
            id: a.id,
            uid: a.uid,
            name: a.name,
            rate_limit: a.rate_limit,
            throttle_rate: a.rate_limit,
            metadata: a.metadata,
            created_at: format_millis(a.created_at),
            updated_at: format_millis(a.updated_at),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventTypeOut {
    pub name: String,
    pub description: String,
    pub archived: bool,
    pub deprecated: bool,
    pub schemas: Option<Box<RawValue>>,
    pub feature_flags: Option<Vec<String>>,
    pub feature_flag: Option<String>,
    pub group_name: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// Messages must match the latest schema (a hookd extension).
    pub validate_payloads: bool,
}

impl From<EventType> for EventTypeOut {
    fn from(e: EventType) -> Self {
        EventTypeOut {
            name: e.name,
            description: e.description,
            archived: e.archived,
            deprecated: e.deprecated,
            schemas: e.schemas.and_then(|s| RawValue::from_string(s).ok()),
            feature_flag: e.feature_flags.as_ref().and_then(|f| f.first().cloned()),
            feature_flags: e.feature_flags,
            group_name: e.group_name,
            created_at: format_millis(e.created_at),
            updated_at: format_millis(e.updated_at),
            validate_payloads: e.validate_payloads,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointOut {
    pub id: String,
    pub uid: Option<String>,
    pub url: String,
    pub description: String,
    pub version: i32,
    pub disabled: bool,
    pub event_types: Option<Vec<String>>,
    pub filter_types: Option<Vec<String>>,
    pub channels: Option<Vec<String>>,
    pub rate_limit: Option<u32>,
    pub throttle_rate: Option<u32>,
    pub metadata: Metadata,
    pub created_at: String,
    pub updated_at: String,
    /// Extension: the endpoint's own retry schedule, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_schedule: Option<Vec<DurationWire>>,
    /// Extension: the endpoint's own concurrency cap, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    /// Extension: the public JWK payloads are encrypted to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption_key: Option<serde_json::Value>,
    /// Extension: the endpoint's own attempt timeout, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<DurationWire>,
    /// Extension: `gzip` when request bodies are compressed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression: Option<&'static str>,
    /// Extension: ordered delivery, when it is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ordering: Option<hookd_core::ordering::Ordering>,
    /// Extension: batched delivery, when it is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<hookd_core::batching::Batching>,
    /// Extension: which messages it gets beyond event types and channels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// Extension: the template its bodies are rendered with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<TemplatePinWire>,
    /// Extension: the connector its transformation came from (an id, or
    /// `preset:<name>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connector: Option<String>,
    /// Extension: a broker endpoint's credentials, masked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport: Option<serde_json::Value>,
    /// Extension: its circuit breaker and throttling, as the node delivering to
    /// it last reported (absent until something was).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<EndpointHealthOut>,
    /// Extension: `healthy`, `degraded`, `failing` or `disabled`, from that
    /// report, with the reason (empty when healthy).
    pub health_state: hookd_store::HealthState,
    pub health_reason: String,
    /// Extension: for an endpoint signing with Ed25519 (`v1a`), the public key
    /// (`whpk_…`) its receiver verifies with.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
}

/// Svix's `Duration`: `{"secs": 5, "nanos": 0}`. Input may also be a number of seconds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum DurationWire {
    Parts {
        secs: u64,
        #[serde(default)]
        nanos: u32,
    },
    Seconds(u64),
}

impl DurationWire {
    pub fn from_millis(ms: u64) -> Self {
        DurationWire::Parts { secs: ms / 1000, nanos: (ms % 1000) as u32 * 1_000_000 }
    }

    pub fn millis(self) -> u64 {
        match self {
            DurationWire::Parts { secs, nanos } => {
                secs.saturating_mul(1000).saturating_add(u64::from(nanos) / 1_000_000)
            }
            DurationWire::Seconds(s) => s.saturating_mul(1000),
        }
    }
}

/// `EndpointHealth` in the wire shape.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointHealthOut {
    /// `closed`, `open` or `halfOpen`.
    pub breaker: BreakerState,
    pub failures: u32,
    pub requests: u32,
    pub opened_at: Option<String>,
    pub next_probe_at: Option<String>,
    pub throttled_since: Option<String>,
    pub throttled_until: Option<String>,
    pub failing_since: Option<String>,
    pub updated_at: String,
}

impl From<&EndpointHealth> for EndpointHealthOut {
    fn from(h: &EndpointHealth) -> Self {
        EndpointHealthOut {
            breaker: h.breaker,
            failures: h.failures,
            requests: h.requests,
            opened_at: h.opened_at.map(format_millis),
            next_probe_at: h.next_probe_at.map(format_millis),
            throttled_since: h.throttled_since.map(format_millis),
            throttled_until: h.throttled_until.map(format_millis),
            failing_since: h.failing_since.map(format_millis),
            updated_at: format_millis(h.updated_at),
        }
    }
}

/// A broker endpoint's `transport`: the user name as it is, secrets masked.
fn transport_out(e: &Endpoint) -> Option<serde_json::Value> {
    let scheme = e.url.split_once("://").map(|(s, _)| s)?;
    if !hookd_core::broker::BROKER_SCHEMES.contains(&scheme) {
        return None;
    }
    const MASK: &str = "********";
    match (&e.auth.basic, &e.auth.bearer) {
        (Some(b), _) => Some(serde_json::json!({"username": b.username, "password": MASK})),
        (None, Some(_)) => Some(serde_json::json!({"token": MASK})),
        _ => None,
    }
}

impl From<&Endpoint> for EndpointOut {
    fn from(e: &Endpoint) -> Self {
        let (health_state, health_reason) =
            hookd_store::health_state(e.disabled, e.health.as_ref(), hookd_core::timefmt::now_millis());
        EndpointOut {
            id: e.id.clone(),
            uid: e.uid.clone(),
            url: e.url.clone(),
            description: e.description.clone(),
            version: e.version,
            disabled: e.disabled,
            event_types: e.event_types.clone(),
            filter_types: e.event_types.clone(),
            channels: e.channels.clone(),
            rate_limit: e.rate_limit,
            throttle_rate: e.rate_limit,
            metadata: e.metadata.clone(),
            created_at: format_millis(e.created_at),
            updated_at: format_millis(e.updated_at),
            retry_schedule: e
                .control
                .retry_schedule_ms
                .as_ref()
                .map(|ms| ms.iter().map(|d| DurationWire::from_millis(*d)).collect()),
            max_concurrency: e.control.max_concurrency,
            encryption_key: e.control.encryption_key.clone(),
            timeout: e.control.timeout_ms.map(DurationWire::from_millis),
            compression: e.control.gzip.then_some("gzip"),
            ordering: e.control.ordering.clone(),
            batch: e.control.batch,
            filter: e.control.filter.as_ref().map(|f| f.source().to_string()),
            template: e.control.template.as_ref().map(TemplatePinWire::from),
            connector: e.control.connector.clone(),
            transport: transport_out(e),
            health: e.health.as_ref().map(EndpointHealthOut::from),
            health_state,
            health_reason,
            public_key: e.secret.public_key(),
        }
    }
}

#[derive(Serialize)]
pub struct EndpointHeadersOut {
    pub headers: BTreeMap<String, String>,
    pub sensitive: Vec<String>,
}

/// An attempt's request headers (credentials listed in `sensitive`, their
/// values not kept) and its response's headers, in the order received.
#[derive(Serialize, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MessageAttemptHeadersOut {
    pub sent_headers: BTreeMap<String, String>,
    pub response_headers: Option<Vec<[String; 2]>>,
    pub sensitive: Vec<String>,
}

impl MessageAttemptHeadersOut {
    /// The stored headers of attempt `attempt_id`: values stored as `null`
    /// (credentials, never kept) are listed in `sensitive`; the `svix-*`
    /// headers, sent alongside the `webhook-*` ones, shown again; the
    /// response's headers opened when they were sealed.
    pub fn from_stored(h: hookd_store::AttemptHeaders, attempt_id: &str) -> Self {
        let mut sent: BTreeMap<String, Option<String>> =
            h.sent.and_then(|s| serde_json::from_str(&s).ok()).unwrap_or_default();
        for part in ["id", "timestamp", "signature"] {
            if let Some(v) = sent.get(&format!("webhook-{part}")).cloned() {
                sent.entry(format!("svix-{part}")).or_insert(v);
            }
        }
        let received: Option<Vec<(String, Option<String>)>> = h.received.and_then(|r| {
            let text = hookd_store::crypt::open_text(&r, &format!("{attempt_id}:response-headers"));
            serde_json::from_str(&text).ok()
        });
        let mut sensitive: Vec<String> = sent.iter().filter(|(_, v)| v.is_none()).map(|(k, _)| k.clone()).collect();
        for (name, value) in received.iter().flatten() {
            if value.is_none() && !sensitive.contains(name) {
                sensitive.push(name.clone());
            }
        }
        MessageAttemptHeadersOut {
            sent_headers: sent.into_iter().filter_map(|(k, v)| Some((k, v?))).collect(),
            response_headers: received.map(|pairs| pairs.into_iter().filter_map(|(k, v)| Some([k, v?])).collect()),
            sensitive,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageOut {
    pub id: String,
    pub event_id: Option<String>,
    pub event_type: String,
    pub payload: Box<RawValue>,
    pub channels: Option<Vec<String>>,
    pub tags: Option<Vec<String>>,
    pub timestamp: String,
    /// When a message scheduled ahead is delivered.
    pub deliver_at: Option<String>,
    /// A raw payload (sent instead of `payload`) and its content type, as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transformations_params: Option<serde_json::Value>,
}

fn empty_object() -> Box<RawValue> {
    RawValue::from_string("{}".into()).expect("valid JSON")
}

impl MessageOut {
    /// The message; its payload only when `with_content` (else `{}`, which the
    /// SDKs require to be present).
    pub fn new(m: Message, with_content: bool) -> Self {
        let opened = match (&m.payload, with_content) {
            (Some(p), true) if hookd_store::crypt::is_sealed(p) => {
                hookd_store::crypt::open_body(p, &format!("{}:payload", m.id)).ok().map(std::sync::Arc::<[u8]>::from)
            }
            (p, _) => p.clone(),
        };
        let mut transformations_params = None;
        let payload = match (&opened, with_content) {
            (Some(p), true) if p.starts_with(hookd_core::payload::RAW_MARK) => {
                let raw = hookd_core::payload::Payload::read(p);
                transformations_params = Some(serde_json::json!({
                    "rawPayload": String::from_utf8_lossy(raw.body()),
                    "headers": {"content-type": raw.content_type()},
                }));
                empty_object()
            }
            (Some(p), true) => std::str::from_utf8(p)
                .ok()
                .and_then(|s| RawValue::from_string(s.to_string()).ok())
                .unwrap_or_else(empty_object),
            _ => empty_object(),
        };
        MessageOut {
            id: m.id,
            event_id: m.event_id,
            event_type: m.event_type,
            payload,
            channels: m.channels,
            tags: m.tags,
            timestamp: format_millis(m.created_at),
            deliver_at: m.deliver_at.map(format_millis),
            transformations_params,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageAttemptOut {
    pub id: String,
    pub url: String,
    pub response: String,
    pub response_status_code: i32,
    pub response_duration_ms: i64,
    pub status: i64,
    pub status_text: &'static str,
    pub trigger_type: i64,
    pub msg_id: String,
    pub endpoint_id: String,
    pub timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msg: Option<MessageOut>,
}

impl From<Attempt> for MessageAttemptOut {
    fn from(a: Attempt) -> Self {
        let response_context = format!("{}:response", a.id);
        MessageAttemptOut {
            id: a.id,
            url: a.url,
            response: hookd_store::crypt::open_text(&a.response, &response_context),
            response_status_code: a.response_status_code,
            response_duration_ms: a.response_duration_ms,
            status: a.status as i64,
            status_text: a.status.text(),
            trigger_type: a.trigger as i64,
            msg_id: a.msg_id,
            endpoint_id: a.endpoint_id,
            timestamp: format_millis(a.created_at),
            msg: None,
        }
    }
}

/// A message as attempted to one endpoint (`GET …/endpoint/{ep}/msg`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointMessageOut {
    #[serde(flatten)]
    pub message: MessageOut,
    pub status: i64,
    pub status_text: &'static str,
    pub next_attempt: Option<String>,
}

impl EndpointMessageOut {
    pub fn new(d: Delivery, m: Message, with_content: bool) -> Self {
        let status = d.status();
        EndpointMessageOut {
            message: MessageOut::new(m, with_content),
            status: status as i64,
            status_text: status.text(),
            next_attempt: d.next_attempt_at().map(format_millis),
        }
    }
}

/// An endpoint as a destination of one message (`GET …/msg/{msg}/endpoint`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageEndpointOut {
    #[serde(flatten)]
    pub endpoint: EndpointOut,
    pub status: i64,
    pub status_text: &'static str,
    pub next_attempt: Option<String>,
}

impl MessageEndpointOut {
    pub fn new(d: Delivery, e: &Endpoint) -> Self {
        let status = d.status();
        MessageEndpointOut {
            endpoint: EndpointOut::from(e),
            status: status as i64,
            status_text: status.text(),
            next_attempt: d.next_attempt_at().map(format_millis),
        }
    }
}

/// An endpoint's template on the wire: `{"id": "tmpl_…", "version": 3}` or
/// `{"id": …, "version": "latest"}` (a missing version is the latest too).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TemplatePinWire {
    pub id: String,
    #[serde(default)]
    pub version: Option<VersionWire>,
}

/// A template version number, or `"latest"`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum VersionWire {
    Number(u32),
    Latest(LatestWord),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LatestWord {
    Latest,
}

impl VersionWire {
    /// The version pinned; `None` for the latest.
    pub fn number(&self) -> Option<u32> {
        match self {
            VersionWire::Number(n) => Some(*n),
            VersionWire::Latest(_) => None,
        }
    }
}

impl From<&hookd_store::TemplatePin> for TemplatePinWire {
    fn from(p: &hookd_store::TemplatePin) -> Self {
        TemplatePinWire {
            id: p.id.clone(),
            version: Some(match p.version {
                Some(n) => VersionWire::Number(n),
                None => VersionWire::Latest(LatestWord::Latest),
            }),
        }
    }
}
