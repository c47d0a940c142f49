//! Create, read, update and delete endpoints.

use std::collections::BTreeMap;

use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use hookd_core::batching::Batching;
use hookd_core::filter::Filter;
use hookd_core::id::{looks_like_id, new_id, IdPrefix};
use hookd_core::ordering::Ordering;
use hookd_core::schedule;
use hookd_core::signing::KeyType;
use hookd_core::validate::{self, EndpointUrl};
use hookd_core::Secret;
use hookd_store::{
    AuthChange, DeliveryControl, Endpoint, EndpointChange, EndpointSettings, Metadata, StoreError, TemplatePin,
};
use serde::Deserialize;

use super::{change_endpoint, endpoint_event, load_endpoint, validate_headers};
use crate::auth::AppAuth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{parse_json, QueryParams, RawBody};
use crate::idempotency::{self, Begin};
use crate::pagination::{self, list_response, DefaultOrder, ListResponse};
use crate::v1::{now, validate_metadata, validate_uid};
use crate::wire::{patch_field, DurationWire, EndpointOut, TemplatePinWire, VersionWire};
use crate::AppState;

const MAX_EVENT_TYPES: usize = 256;

/// `EndpointIn` (create) and `EndpointUpsertIn` (PUT, which has no secret or headers).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointIn {
    pub url: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub version: Option<i32>,
    #[serde(default)]
    pub uid: Option<String>,
    #[serde(default)]
    pub disabled: Option<bool>,
    #[serde(default, alias = "filterTypes")]
    pub event_types: Option<Vec<String>>,
    #[serde(default)]
    pub channels: Option<Vec<String>>,
    #[serde(default, alias = "rateLimit")]
    pub throttle_rate: Option<u32>,
    #[serde(default)]
    pub metadata: Option<Metadata>,
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub headers: Option<BTreeMap<String, String>>,
    /// Extension: the endpoint's own retry schedule.
    #[serde(default)]
    pub retry_schedule: Option<Vec<DurationWire>>,
    /// Extension: the endpoint's own concurrency cap.
    #[serde(default)]
    pub max_concurrency: Option<u32>,
    /// Extension: a P-256 public JWK to encrypt payloads to (JWE).
    #[serde(default)]
    pub encryption_key: Option<serde_json::Value>,
    /// Extension: the endpoint's own attempt timeout.
    #[serde(default)]
    pub timeout: Option<DurationWire>,
    /// Extension: `gzip` to compress request bodies.
    #[serde(default)]
    pub compression: Option<String>,
    /// Extension: ordered delivery.
    #[serde(default)]
    pub ordering: Option<serde_json::Value>,
    /// Extension: batched delivery.
    #[serde(default)]
    pub batch: Option<serde_json::Value>,
    /// Extension: a broker endpoint's credentials.
    #[serde(default)]
    pub transport: Option<TransportIn>,
    /// Extension: which messages it gets beyond event types and channels.
    #[serde(default)]
    pub filter: Option<String>,
    /// Extension: the template its bodies are rendered with.
    #[serde(default)]
    pub template: Option<TemplatePinWire>,
    /// Extension: a connector (or preset) to use, with its variables and
    /// credentials (create only; `PUT …/connector` changes it).
    #[serde(default)]
    pub connector: Option<crate::v1::connector::ConnectorUse>,
    /// Extension: the kind of secret generated when `secret` is left out:
    /// `hmac` (`whsec_`, `v1` signatures; the default) or `ed25519` (`whsk_`,
    /// `v1a` signatures).
    #[serde(default)]
    pub key_type: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointPatch {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub version: Option<i32>,
    #[serde(default, deserialize_with = "patch_field")]
    pub uid: Option<Option<String>>,
    #[serde(default)]
    pub disabled: Option<bool>,
    #[serde(default, alias = "filterTypes", deserialize_with = "patch_field")]
    pub event_types: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "patch_field")]
    pub channels: Option<Option<Vec<String>>>,
    #[serde(default, alias = "rateLimit", deserialize_with = "patch_field")]
    pub throttle_rate: Option<Option<u32>>,
    #[serde(default)]
    pub metadata: Option<Metadata>,
    #[serde(default, deserialize_with = "patch_field")]
    pub retry_schedule: Option<Option<Vec<DurationWire>>>,
    #[serde(default, deserialize_with = "patch_field")]
    pub max_concurrency: Option<Option<u32>>,
    #[serde(default, deserialize_with = "patch_field")]
    pub encryption_key: Option<Option<serde_json::Value>>,
    #[serde(default, deserialize_with = "patch_field")]
    pub timeout: Option<Option<DurationWire>>,
    #[serde(default, deserialize_with = "patch_field")]
    pub compression: Option<Option<String>>,
    #[serde(default, deserialize_with = "patch_field")]
    pub ordering: Option<Option<serde_json::Value>>,
    #[serde(default, deserialize_with = "patch_field")]
    pub batch: Option<Option<serde_json::Value>>,
    #[serde(default, deserialize_with = "patch_field")]
    pub transport: Option<Option<TransportIn>>,
    #[serde(default, deserialize_with = "patch_field")]
    pub filter: Option<Option<String>>,
    #[serde(default, deserialize_with = "patch_field")]
    pub template: Option<Option<TemplatePinWire>>,
}

/// A broker endpoint's credentials (`transport`): a user and password, or a
/// token. Kept sealed with the endpoint's other credentials (as its basic or
/// bearer auth) and shown masked.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransportIn {
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub token: Option<String>,
}

impl std::fmt::Debug for TransportIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransportIn").field("username", &self.username).finish_non_exhaustive()
    }
}

/// The credentials change `transport` makes (`None`: it clears them), for an
/// endpoint at `url` (a broker's).
fn transport_change(url: &str, transport: Option<TransportIn>) -> ApiResult<AuthChange> {
    let broker = url::Url::parse(url).is_ok_and(|u| hookd_core::broker::BROKER_SCHEMES.contains(&u.scheme()));
    if !broker {
        return Err(ApiError::body_field("transport", "only for broker URLs (redis, nats, amqp, mqtt)"));
    }
    let bounded = |field: &str, v: &str| {
        if v.is_empty() || v.len() > 1024 || v.chars().any(char::is_control) {
            return Err(ApiError::body_field(
                "transport",
                format!("`{field}`: 1 to 1024 characters, no control characters"),
            ));
        }
        Ok(())
    };
    Ok(match transport {
        None => AuthChange::Basic(None),
        Some(TransportIn { username: Some(u), password: Some(p), token: None }) => {
            bounded("username", &u)?;
            bounded("password", &p)?;
            AuthChange::Basic(Some(hookd_store::BasicAuth { username: u, password: p }))
        }
        Some(TransportIn { username: None, password: None, token: Some(t) }) => {
            bounded("token", &t)?;
            AuthChange::Bearer(Some(t))
        }
        Some(_) => {
            return Err(ApiError::body_field("transport", "either `username` and `password`, or `token`"));
        }
    })
}

/// `batch` from the wire: `{"maxMessages": N, "maxWaitMs": T}`, or none.
fn batching(field: Option<serde_json::Value>) -> ApiResult<Option<Batching>> {
    let Some(value) = field else { return Ok(None) };
    let b: Batching = serde_json::from_value(value).map_err(|e| ApiError::body_field("batch", e.to_string()))?;
    b.validate().map_err(|e| ApiError::body_field("batch", e))?;
    Ok(Some(b))
}

/// `ordering` from the wire: `{"key": "channel" | "/json/pointer", "onFailure":
/// "block" | "skip"}`, or none.
fn ordering(field: Option<serde_json::Value>) -> ApiResult<Option<Ordering>> {
    let Some(value) = field else { return Ok(None) };
    let o: Ordering = serde_json::from_value(value).map_err(|e| ApiError::body_field("ordering", e.to_string()))?;
    o.validate().map_err(|e| ApiError::body_field("ordering", e))?;
    Ok(Some(o))
}

/// `filter` from the wire: parsed and compiled, or 422 naming where it is wrong.
fn filter(field: Option<String>) -> ApiResult<Option<Filter>> {
    let Some(source) = field else { return Ok(None) };
    Filter::parse(&source).map(Some).map_err(|e| ApiError::body_field("filter", e.to_string()))
}

/// `template` from the wire, as given (a uid is resolved by [`resolve_template`]).
fn template_pin(field: Option<TemplatePinWire>) -> Option<TemplatePin> {
    field.map(|p| TemplatePin { id: p.id, version: p.version.as_ref().and_then(VersionWire::number) })
}

/// Makes the template an endpoint names point at an existing template (its
/// id, when a uid was given) and version; 422 when either is missing.
async fn resolve_template(state: &AppState, org_id: &str, pin: &mut Option<Option<TemplatePin>>) -> ApiResult<()> {
    let Some(Some(pin)) = pin else { return Ok(()) };
    let t = match state.resources.get_template(org_id, &pin.id).await {
        Ok(t) => t,
        Err(StoreError::NotFound) => {
            return Err(ApiError::body_field("template", format!("no template `{}`", pin.id)));
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(v) = pin.version {
        if v == 0 || v > t.latest_version {
            return Err(ApiError::body_field(
                "template",
                format!("template `{}` has versions 1 to {}", pin.id, t.latest_version),
            ));
        }
    }
    pin.id = t.id;
    Ok(())
}

/// Longest attempt timeout an endpoint may ask for.
const MAX_TIMEOUT_MS: u64 = 300_000;

/// `compression` from the wire: `gzip`, or none.
fn gzip(field: Option<&str>) -> ApiResult<bool> {
    match field {
        None | Some("none") => Ok(false),
        Some("gzip") => Ok(true),
        Some(other) => Err(ApiError::body_field("compression", format!("`{other}` is not `gzip` (or null)"))),
    }
}

/// Most requests in flight an endpoint may ask for.
const MAX_CONCURRENCY: u32 = 1000;

/// A retry schedule from the wire, in milliseconds; 422 past the bounds.
pub fn retry_schedule_ms(field: &'static str, schedule: Option<Vec<DurationWire>>) -> ApiResult<Option<Vec<u64>>> {
    let Some(schedule) = schedule else { return Ok(None) };
    let ms: Vec<u64> = schedule.into_iter().map(DurationWire::millis).collect();
    if ms.len() > schedule::MAX_STEPS {
        return Err(ApiError::body_field(field, format!("at most {} retries", schedule::MAX_STEPS)));
    }
    if ms.iter().any(|d| *d > schedule::MAX_DELAY_MS) {
        return Err(ApiError::body_field(field, "each delay is at most 7 days"));
    }
    Ok(Some(ms))
}

/// Refuses (422) a URL the destination policy forbids on its face: a scheme
/// other than https under an https-only policy, or a literal address outside
/// the allowed networks. Names are checked when delivering, after resolution.
pub async fn check_destination(state: &AppState, org_id: &str, url: Option<&str>) -> ApiResult<()> {
    let Some(url) = url else { return Ok(()) };
    let Ok(parsed) = url::Url::parse(url) else { return Ok(()) };
    let org_id = org_id.strip_suffix(".operational").unwrap_or(org_id);
    let org = match state.resources.get_org(org_id).await {
        Ok(org) => org.policy,
        Err(StoreError::NotFound) => Default::default(),
        Err(e) => return Err(e.into()),
    };
    let policy = state.config.destination.narrowed(&org);
    policy.check_scheme(parsed.scheme()).map_err(|e| ApiError::body_field("url", e))?;
    if let Some(ip) = hookd_core::net::literal_ip(&parsed) {
        policy.check_ip(ip).map_err(|e| ApiError::body_field("url", e))?;
    }
    Ok(())
}

/// Checks the settings given (those `None` are left as they are, and were
/// checked when they were set).
pub fn validate_settings(state: &AppState, s: &EndpointSettings) -> ApiResult<()> {
    if let Some(url) = &s.url {
        // Literal addresses are judged by the destination policy next (an
        // explicit allow list may admit a private network).
        let policy = &state.config.destination;
        EndpointUrl::parse(url, policy.allow_private || !policy.allowed.is_empty())
            .map_err(|e| ApiError::body_field("url", e))?;
    }
    if s.description.as_ref().is_some_and(|d| d.len() > validate::MAX_DESCRIPTION_LEN) {
        return Err(ApiError::body_field("description", "description is too long"));
    }
    if let Some(uid) = &s.uid {
        validate_uid("uid", uid.as_deref())?;
    }
    if let Some(Some(types)) = &s.event_types {
        if types.len() > MAX_EVENT_TYPES {
            return Err(ApiError::body_field("filterTypes", format!("at most {MAX_EVENT_TYPES} event types")));
        }
        for t in types {
            validate::event_type_name(t).map_err(|e| ApiError::body_field("filterTypes", e))?;
        }
    }
    if let Some(Some(channels)) = &s.channels {
        if channels.len() > validate::MAX_CHANNELS {
            return Err(ApiError::body_field("channels", format!("at most {} channels", validate::MAX_CHANNELS)));
        }
        for c in channels {
            validate::channel(c).map_err(|e| ApiError::body_field("channels", e))?;
        }
    }
    if let Some(m) = &s.metadata {
        validate_metadata(m)?;
    }
    if let Some(Some(c)) = s.max_concurrency {
        if c == 0 || c > MAX_CONCURRENCY {
            return Err(ApiError::body_field("maxConcurrency", format!("between 1 and {MAX_CONCURRENCY}")));
        }
    }
    if let Some(Some(jwk)) = &s.encryption_key {
        hookd_core::jwe::EncryptionKey::from_jwk(jwk).map_err(|e| ApiError::body_field("encryptionKey", e))?;
    }
    if let Some(Some(ms)) = s.timeout_ms {
        if ms == 0 || ms > MAX_TIMEOUT_MS {
            return Err(ApiError::body_field("timeout", format!("between 1 ms and {} s", MAX_TIMEOUT_MS / 1000)));
        }
    }
    if let Some(Some(ms)) = &s.retry_schedule_ms {
        hookd_core::RetrySchedule::from_millis(ms).map_err(|e| ApiError::body_field("retrySchedule", e.to_string()))?;
    }
    Ok(())
}

/// Checks every field of a new endpoint.
pub fn validate_endpoint(state: &AppState, ep: &Endpoint) -> ApiResult<()> {
    validate_settings(state, &settings_of(ep))?;
    if ep.control.batch.is_some() && ep.control.template.is_some() {
        return Err(ApiError::body_field(
            "template",
            "a batched endpoint sends payloads as they are: no template or transformation",
        ));
    }
    validate_headers(&ep.headers)
}

/// Every setting of `ep`, as a PUT would give them.
fn settings_of(ep: &Endpoint) -> EndpointSettings {
    EndpointSettings {
        url: Some(ep.url.clone()),
        description: Some(ep.description.clone()),
        version: Some(ep.version),
        uid: Some(ep.uid.clone()),
        disabled: Some(ep.disabled),
        event_types: Some(ep.event_types.clone()),
        channels: Some(ep.channels.clone()),
        rate_limit: Some(ep.rate_limit),
        metadata: Some(ep.metadata.clone()),
        retry_schedule_ms: Some(ep.control.retry_schedule_ms.clone()),
        max_concurrency: Some(ep.control.max_concurrency),
        encryption_key: Some(ep.control.encryption_key.clone()),
        timeout_ms: Some(ep.control.timeout_ms),
        gzip: Some(ep.control.gzip),
        ordering: Some(ep.control.ordering.clone()),
        batch: Some(ep.control.batch),
        filter: Some(ep.control.filter.clone()),
        template: Some(ep.control.template.clone()),
        transformation: None,
        connector: None,
    }
}

/// An empty filter list means no filter.
fn non_empty(v: Option<Vec<String>>) -> Option<Vec<String>> {
    v.filter(|v| !v.is_empty())
}

pub fn new_endpoint(input: EndpointIn, org_id: &str, app_id: &str) -> ApiResult<Endpoint> {
    let secret = match input.secret.as_deref() {
        Some(s) => Secret::parse(s).map_err(|e| ApiError::body_field("secret", e.to_string()))?,
        None => {
            Secret::generate_of(super::secret::key_type(input.key_type.as_deref(), "keyType")?.unwrap_or(KeyType::Hmac))
        }
    };
    let t = now();
    let transport = match input.transport {
        Some(tr) => Some(transport_change(&input.url, Some(tr))?),
        None => None,
    };
    let mut ep = Endpoint {
        org_id: org_id.to_string(),
        app_id: app_id.to_string(),
        id: new_id(IdPrefix::Endpoint),
        uid: input.uid,
        url: input.url,
        description: input.description.unwrap_or_default(),
        version: input.version.unwrap_or(1),
        disabled: input.disabled.unwrap_or(false),
        event_types: non_empty(input.event_types),
        channels: non_empty(input.channels),
        rate_limit: input.throttle_rate,
        metadata: input.metadata.unwrap_or_default(),
        headers: input.headers.unwrap_or_default(),
        secret,
        retired_secrets: Vec::new(),
        created_at: t,
        updated_at: t,
        revision: 0,
        control: DeliveryControl {
            retry_schedule_ms: retry_schedule_ms("retrySchedule", input.retry_schedule)?,
            max_concurrency: input.max_concurrency,
            encryption_key: input.encryption_key,
            timeout_ms: input.timeout.map(DurationWire::millis),
            gzip: gzip(input.compression.as_deref())?,
            ordering: ordering(input.ordering)?,
            batch: batching(input.batch)?,
            filter: filter(input.filter)?,
            template: template_pin(input.template),
            transformation: None,
            connector: None,
        },
        auth: Default::default(),
        health: None,
    };
    if let Some(change) = transport {
        EndpointChange::Auth(change).apply(&mut ep, t)?;
    }
    Ok(ep)
}

/// [`resolve_template`] for a new endpoint.
pub async fn resolve_new_template(state: &AppState, ep: &mut Endpoint) -> ApiResult<()> {
    let mut pin = Some(ep.control.template.take());
    resolve_template(state, &ep.org_id, &mut pin).await?;
    ep.control.template = pin.flatten();
    Ok(())
}

pub async fn list(
    State(state): State<AppState>,
    auth: AppAuth,
    uri: OriginalUri,
) -> ApiResult<Json<ListResponse<EndpointOut>>> {
    let page = pagination::page(&QueryParams::parse(uri.query()), DefaultOrder::Ascending)?;
    let rows = state.resources.list_endpoints(auth.org_id(), &auth.app.id, &page).await?;
    Ok(Json(list_response(&page, rows, |e| e.id.clone(), |e| EndpointOut::from(&e))))
}

pub async fn create(
    State(state): State<AppState>,
    auth: AppAuth,
    uri: OriginalUri,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Json<EndpointOut>)> {
    let mut input: EndpointIn = parse_json(&body)?;
    let using = input.connector.take();
    let mut ep = new_endpoint(input, auth.org_id(), &auth.app.id)?;
    validate_endpoint(&state, &ep)?;
    resolve_new_template(&state, &mut ep).await?;
    check_destination(&state, auth.org_id(), Some(&ep.url)).await?;
    // Checked in full before the endpoint is made; written once it is.
    let connector = match using {
        Some(using) => Some(crate::v1::connector::prepare(&state, auth.org_id(), &ep, using).await?),
        None => None,
    };
    let ticket = match idempotency::begin(&state, auth.org_id(), uri.path(), &headers, &body).await? {
        Begin::Replay(prev) => return replay(&state, &auth, prev).await,
        Begin::Fresh(t) => t,
    };
    let record = idempotency::record(&ticket, 201, Some(ep.id.clone()));
    match state.resources.create_endpoint(ep, record).await {
        Ok(mut ep) => {
            if let Some(applied) = connector {
                crate::v1::connector::apply(&state, &auth, &ep.id, applied).await?;
                ep = load_endpoint(&state, &auth, &ep.id).await?;
            }
            endpoint_event(&state, "endpoint.created", &ep);
            state.deliveries.check_later(ep.clone());
            Ok((StatusCode::CREATED, Json(EndpointOut::from(&ep))))
        }
        Err(StoreError::IdempotencyReplay(prev)) => {
            replay(&state, &auth, idempotency::replay_after_race(&ticket, prev)?).await
        }
        Err(e) => Err(e.into()),
    }
}

async fn replay(
    state: &AppState,
    auth: &AppAuth,
    prev: hookd_store::IdempotencyOutcome,
) -> ApiResult<(StatusCode, Json<EndpointOut>)> {
    let ep = load_endpoint(state, auth, &prev.resource_id.unwrap_or_default()).await?;
    Ok((StatusCode::from_u16(prev.status).unwrap_or(StatusCode::OK), Json(EndpointOut::from(&ep))))
}

pub async fn get(
    State(state): State<AppState>,
    auth: AppAuth,
    Path((_, endpoint_id)): Path<(String, String)>,
) -> ApiResult<Json<EndpointOut>> {
    Ok(Json(EndpointOut::from(&load_endpoint(&state, &auth, &endpoint_id).await?)))
}

/// PUT: replaces the endpoint's settings (not its secret or headers), or creates it.
pub async fn upsert(
    State(state): State<AppState>,
    auth: AppAuth,
    Path((_, endpoint_id)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> ApiResult<(StatusCode, Json<EndpointOut>)> {
    let mut input: EndpointIn = parse_json(&body)?;
    if input.connector.is_some() {
        return Err(ApiError::body_field("connector", "set on create, or with PUT …/endpoint/{id}/connector"));
    }
    match state.resources.get_endpoint(auth.org_id(), &auth.app.id, &endpoint_id).await {
        Ok(ep) => {
            let settings = EndpointSettings {
                url: Some(input.url),
                description: Some(input.description.unwrap_or_default()),
                version: input.version,
                uid: Some(input.uid),
                disabled: Some(input.disabled.unwrap_or(false)),
                event_types: Some(non_empty(input.event_types)),
                channels: Some(non_empty(input.channels)),
                rate_limit: Some(input.throttle_rate),
                metadata: Some(input.metadata.unwrap_or_default()),
                retry_schedule_ms: Some(retry_schedule_ms("retrySchedule", input.retry_schedule)?),
                max_concurrency: Some(input.max_concurrency),
                encryption_key: Some(input.encryption_key),
                timeout_ms: Some(input.timeout.map(DurationWire::millis)),
                gzip: Some(gzip(input.compression.as_deref())?),
                ordering: Some(ordering(input.ordering)?),
                batch: Some(batching(input.batch)?),
                filter: Some(filter(input.filter)?),
                template: Some(template_pin(input.template)),
                transformation: None,
                connector: None,
            };
            validate_settings(&state, &settings)?;
            let mut settings = settings;
            resolve_template(&state, auth.org_id(), &mut settings.template).await?;
            check_destination(&state, auth.org_id(), settings.url.as_deref()).await?;
            let transport = match input.transport {
                Some(t) => Some(transport_change(settings.url.as_deref().unwrap_or_default(), Some(t))?),
                None => None,
            };
            let mut updated = change_endpoint(&state, &auth, &ep.id, EndpointChange::Settings(settings), None).await?;
            if let Some(change) = transport {
                updated = change_endpoint(&state, &auth, &ep.id, EndpointChange::Auth(change), None).await?;
            }
            if updated.endpoint.url != ep.url {
                state.deliveries.check_later(updated.endpoint.clone());
            }
            Ok((StatusCode::OK, Json(EndpointOut::from(&updated.endpoint))))
        }
        Err(StoreError::NotFound) => {
            if input.uid.is_none() && !looks_like_id(IdPrefix::Endpoint, &endpoint_id) {
                input.uid = Some(endpoint_id);
            }
            let mut ep = new_endpoint(input, auth.org_id(), &auth.app.id)?;
            validate_endpoint(&state, &ep)?;
            resolve_new_template(&state, &mut ep).await?;
            check_destination(&state, auth.org_id(), Some(&ep.url)).await?;
            let ep = state.resources.create_endpoint(ep, None).await?;
            endpoint_event(&state, "endpoint.created", &ep);
            state.deliveries.check_later(ep.clone());
            Ok((StatusCode::CREATED, Json(EndpointOut::from(&ep))))
        }
        Err(e) => Err(e.into()),
    }
}

/// PATCH: changes only the settings given, on the endpoint as it is in the
/// store (so a concurrent rotation or headers change is kept).
pub async fn patch(
    State(state): State<AppState>,
    auth: AppAuth,
    Path((_, endpoint_id)): Path<(String, String)>,
    RawBody(body): RawBody,
) -> ApiResult<Json<EndpointOut>> {
    let p: EndpointPatch = parse_json(&body)?;
    let settings = EndpointSettings {
        url: p.url,
        description: p.description,
        version: p.version,
        uid: p.uid,
        disabled: p.disabled,
        event_types: p.event_types.map(non_empty),
        channels: p.channels.map(non_empty),
        rate_limit: p.throttle_rate,
        metadata: p.metadata,
        retry_schedule_ms: match p.retry_schedule {
            Some(s) => Some(retry_schedule_ms("retrySchedule", s)?),
            None => None,
        },
        max_concurrency: p.max_concurrency,
        encryption_key: p.encryption_key,
        timeout_ms: p.timeout.map(|t| t.map(DurationWire::millis)),
        gzip: match p.compression {
            Some(c) => Some(gzip(c.as_deref())?),
            None => None,
        },
        ordering: match p.ordering {
            Some(o) => Some(ordering(o)?),
            None => None,
        },
        batch: match p.batch {
            Some(b) => Some(batching(b)?),
            None => None,
        },
        filter: match p.filter {
            Some(f) => Some(filter(f)?),
            None => None,
        },
        template: p.template.map(template_pin),
        transformation: None,
        connector: None,
    };
    validate_settings(&state, &settings)?;
    let mut settings = settings;
    resolve_template(&state, auth.org_id(), &mut settings.template).await?;
    check_destination(&state, auth.org_id(), settings.url.as_deref()).await?;
    let ep = load_endpoint(&state, &auth, &endpoint_id).await?;
    let transport = match p.transport {
        Some(t) => Some(transport_change(settings.url.as_deref().unwrap_or(&ep.url), t)?),
        None => None,
    };
    let mut updated = change_endpoint(&state, &auth, &ep.id, EndpointChange::Settings(settings), None).await?;
    if let Some(change) = transport {
        updated = change_endpoint(&state, &auth, &ep.id, EndpointChange::Auth(change), None).await?;
    }
    if updated.endpoint.url != ep.url {
        state.deliveries.check_later(updated.endpoint.clone());
    }
    Ok(Json(EndpointOut::from(&updated.endpoint)))
}

pub async fn delete(
    State(state): State<AppState>,
    auth: AppAuth,
    Path((_, endpoint_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let ep = load_endpoint(&state, &auth, &endpoint_id).await?;
    state.resources.delete_endpoint(auth.org_id(), &auth.app.id, &ep.id).await?;
    state.deliveries.forget_check(&ep.id).await;
    endpoint_event(&state, "endpoint.deleted", &ep);
    Ok(StatusCode::NO_CONTENT)
}
