//! Changes to an endpoint, each applied inside the store's transaction to the
//! row as it is then, and each writing only its own columns. A PATCH racing a
//! secret rotation therefore cannot write the old secret back, nor a rotation
//! undo the PATCH.

use std::collections::BTreeMap;

use hookd_core::validate::MAX_HEADERS;
use hookd_core::Secret;

use crate::model::{Endpoint, Metadata, RetiredSecret};
use crate::StoreError;

/// Most rotated-out secrets kept signing at once.
pub const MAX_RETIRED_SECRETS: usize = 10;

// One change at a time passes through here (never held in bulk): its size
// does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum EndpointChange {
    /// Settings (PUT gives them all, PATCH some).
    Settings(EndpointSettings),
    /// Replaces the custom headers (`replace`), or sets `set` and removes `remove`.
    Headers { set: BTreeMap<String, String>, remove: Vec<String>, replace: bool },
    /// A new signing secret; the current one keeps signing for `grace_ms`.
    RotateSecret { secret: Secret, grace_ms: i64 },
    /// The credentials towards the receiver (OAuth2, basic, bearer).
    Auth(AuthChange),
}

/// A change to one kind of an endpoint's credentials. Its `Debug` names the
/// kind and whether it is set or cleared, nothing more.
#[derive(Clone)]
pub enum AuthChange {
    Oauth(Option<Box<crate::model::OauthConfig>>),
    /// HTTP basic, bearer or a JWT: setting one clears the others.
    Basic(Option<crate::model::BasicAuth>),
    Bearer(Option<String>),
    /// A JWT per request (setting it clears basic and bearer).
    Jwt(Option<Box<crate::model::JwtAuth>>),
    /// The mutual-TLS client identity (PEM).
    Mtls(Option<String>),
    /// The receiver's CA (PEM); `None`: the standard roots.
    ServerCa(Option<String>),
}

impl std::fmt::Debug for AuthChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (kind, set) = match self {
            AuthChange::Oauth(o) => ("Oauth", o.is_some()),
            AuthChange::Basic(o) => ("Basic", o.is_some()),
            AuthChange::Bearer(o) => ("Bearer", o.is_some()),
            AuthChange::Jwt(o) => ("Jwt", o.is_some()),
            AuthChange::Mtls(o) => ("Mtls", o.is_some()),
            AuthChange::ServerCa(o) => ("ServerCa", o.is_some()),
        };
        write!(f, "{kind}({})", if set { "set" } else { "cleared" })
    }
}

/// The endpoint's settings; `None` leaves one as it is. For nullable settings,
/// `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct EndpointSettings {
    pub url: Option<String>,
    pub description: Option<String>,
    pub version: Option<i32>,
    pub uid: Option<Option<String>>,
    pub disabled: Option<bool>,
    pub event_types: Option<Option<Vec<String>>>,
    pub channels: Option<Option<Vec<String>>>,
    pub rate_limit: Option<Option<u32>>,
    pub metadata: Option<Metadata>,
    /// The endpoint's own retry schedule (ms delays) and concurrency cap.
    pub retry_schedule_ms: Option<Option<Vec<u64>>>,
    pub max_concurrency: Option<Option<u32>>,
    /// The JWK payloads are encrypted to.
    pub encryption_key: Option<Option<serde_json::Value>>,
    /// The endpoint's own attempt timeout, and gzip request bodies.
    pub timeout_ms: Option<Option<u64>>,
    pub gzip: Option<bool>,
    /// Ordered delivery (`None` inside: unordered).
    pub ordering: Option<Option<hookd_core::ordering::Ordering>>,
    /// Batched delivery (`None` inside: one message per request).
    pub batch: Option<Option<hookd_core::batching::Batching>>,
    /// Which messages it gets beyond event types and channels.
    pub filter: Option<Option<hookd_core::filter::Filter>>,
    /// The template bodies are rendered with.
    pub template: Option<Option<crate::model::TemplatePin>>,
    /// The transformation run before each send (replaced whole).
    pub transformation: Option<Option<crate::model::Transformation>>,
    /// The connector the transformation came from.
    pub connector: Option<Option<String>>,
}

/// Which group of columns a change writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Columns {
    Settings,
    Headers,
    Secrets,
    Auth,
}

impl EndpointChange {
    pub fn columns(&self) -> Columns {
        match self {
            EndpointChange::Settings(_) => Columns::Settings,
            EndpointChange::Headers { .. } => Columns::Headers,
            EndpointChange::RotateSecret { .. } => Columns::Secrets,
            EndpointChange::Auth(_) => Columns::Auth,
        }
    }

    /// Applies the change to `ep` as read inside the transaction; `now` stamps it.
    pub fn apply(&self, ep: &mut Endpoint, now: i64) -> Result<(), StoreError> {
        match self {
            EndpointChange::Settings(s) => {
                let s = s.clone();
                if let Some(v) = s.url {
                    ep.url = v;
                }
                if let Some(v) = s.description {
                    ep.description = v;
                }
                if let Some(v) = s.version {
                    ep.version = v;
                }
                if let Some(v) = s.uid {
                    ep.uid = v;
                }
                if let Some(v) = s.disabled {
                    ep.disabled = v;
                }
                if let Some(v) = s.event_types {
                    ep.event_types = v.filter(|t| !t.is_empty());
                }
                if let Some(v) = s.channels {
                    ep.channels = v.filter(|c| !c.is_empty());
                }
                if let Some(v) = s.rate_limit {
                    ep.rate_limit = v;
                }
                if let Some(v) = s.metadata {
                    ep.metadata = v;
                }
                if let Some(v) = s.retry_schedule_ms {
                    ep.control.retry_schedule_ms = v;
                }
                if let Some(v) = s.max_concurrency {
                    ep.control.max_concurrency = v;
                }
                if let Some(v) = s.encryption_key {
                    ep.control.encryption_key = v;
                }
                if let Some(v) = s.timeout_ms {
                    ep.control.timeout_ms = v;
                }
                if let Some(v) = s.ordering.clone() {
                    ep.control.ordering = v;
                }
                if let Some(v) = s.batch {
                    ep.control.batch = v;
                }
                if let Some(v) = s.gzip {
                    ep.control.gzip = v;
                }
                if let Some(v) = s.filter {
                    ep.control.filter = v;
                }
                if let Some(v) = s.template {
                    ep.control.template = v;
                }
                if let Some(v) = s.transformation {
                    ep.control.transformation = v;
                }
                if let Some(v) = s.connector {
                    ep.control.connector = v;
                }
                let shaped =
                    ep.control.template.is_some() || ep.control.transformation.as_ref().is_some_and(|t| t.enabled);
                if ep.control.batch.is_some() && shaped {
                    return Err(StoreError::Invalid {
                        field: "batch",
                        msg: "a batched endpoint sends payloads as they are: no template or transformation".into(),
                    });
                }
            }
            EndpointChange::Headers { set, remove, replace } => {
                if *replace {
                    ep.headers.clear();
                }
                ep.headers.extend(set.iter().map(|(k, v)| (k.clone(), v.clone())));
                for name in remove {
                    ep.headers.remove(name);
                }
                if ep.headers.len() > MAX_HEADERS {
                    return Err(StoreError::Invalid {
                        field: "headers",
                        msg: format!("at most {MAX_HEADERS} headers"),
                    });
                }
            }
            EndpointChange::RotateSecret { secret, grace_ms } => {
                let old = std::mem::replace(&mut ep.secret, secret.clone());
                ep.retired_secrets.retain(|r| r.expires_at > now);
                if *grace_ms > 0 {
                    ep.retired_secrets.insert(0, RetiredSecret { secret: old, expires_at: now + grace_ms });
                    ep.retired_secrets.truncate(MAX_RETIRED_SECRETS);
                }
            }
            EndpointChange::Auth(change) => match change.clone() {
                AuthChange::Oauth(o) => ep.auth.oauth = o.map(|o| *o),
                AuthChange::Basic(b) => {
                    (ep.auth.bearer, ep.auth.jwt) = (None, None);
                    ep.auth.basic = b;
                }
                AuthChange::Bearer(t) => {
                    (ep.auth.basic, ep.auth.jwt) = (None, None);
                    ep.auth.bearer = t;
                }
                AuthChange::Jwt(j) => {
                    (ep.auth.basic, ep.auth.bearer) = (None, None);
                    ep.auth.jwt = j.map(|j| *j);
                }
                AuthChange::Mtls(identity) => ep.auth.mtls_identity = identity,
                AuthChange::ServerCa(ca) => ep.auth.server_ca = ca,
            },
        }
        ep.updated_at = now;
        ep.revision += 1;
        Ok(())
    }
}

/// What an endpoint change did, besides the row: deliveries paused (disabled)
/// or resumed (enabled), in the same transaction.
#[derive(Debug, Clone)]
pub struct EndpointUpdated {
    pub endpoint: Endpoint,
    /// Whether it was disabled before this change.
    pub was_disabled: bool,
    pub paused: u64,
    pub resumed: u64,
}
