//! The rows the store keeps. Times are Unix milliseconds.

use std::collections::BTreeMap;
use std::sync::Arc;

use hookd_core::{AttemptTrigger, DeliveryState, MessageStatus, Secret};

pub type Metadata = BTreeMap<String, String>;

#[derive(Debug, Clone)]
pub struct ApiToken {
    pub id: String,
    pub org_id: String,
    /// SHA-256 of the token, hex. The token itself is never stored.
    pub token_hash: String,
    /// `Some` for a token scoped to one application (app portal access).
    pub app_id: Option<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub name: Option<String>,
    pub role: TokenRole,
    /// For a portal token: the `AppPortalCapability` names it holds.
    pub capabilities: Option<Vec<String>>,
    /// For a portal token: the session it was made for (`expire-all` by session).
    pub session_id: Option<String>,
    /// The token's last characters, shown in its censored form.
    pub tail: Option<String>,
}

/// A token for hookd's MCP server (`mcp_…`): an application's (it sees that
/// application only) or the organisation's (a dashboard token). It reads, and
/// unless `read_only` also resends, recovers and sends examples; it always
/// expires. Only its hash is kept.
#[derive(Debug, Clone)]
pub struct McpToken {
    /// `key_…`, as Svix's MCP tokens.
    pub id: String,
    pub org_id: String,
    /// `Some` for an application's token, `None` for a dashboard token.
    pub app_id: Option<String>,
    /// SHA-256 of the token, hex.
    pub token_hash: String,
    /// The token's last characters, shown in its censored form.
    pub tail: String,
    pub read_only: bool,
    pub created_at: i64,
    pub expires_at: i64,
}

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRole {
    /// Everything: every organisation, the management API. Also admin of the
    /// default organisation.
    Server,
    /// Everything within its organisation.
    Admin,
    /// Reads within its organisation.
    ReadOnly,
    /// One application, within its capabilities (app portal access).
    Portal,
}

impl TokenRole {
    pub const fn as_str(self) -> &'static str {
        match self {
            TokenRole::Server => "server",
            TokenRole::Admin => "admin",
            TokenRole::ReadOnly => "read-only",
            TokenRole::Portal => "portal",
        }
    }

    pub fn parse(s: &str) -> Option<TokenRole> {
        Some(match s {
            "server" => TokenRole::Server,
            "admin" => TokenRole::Admin,
            "read-only" => TokenRole::ReadOnly,
            "portal" => TokenRole::Portal,
            _ => return None,
        })
    }
}

/// What delivering needs to know of an organisation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrgSettings {
    pub policy: hookd_core::policy::OrgPolicy,
    pub encrypt_payloads: bool,
}

/// An organisation (Svix: an environment). Every other object belongs to one.
#[derive(Debug, Clone)]
pub struct Organization {
    pub id: String,
    pub name: String,
    /// `development` or `production`.
    pub env_type: String,
    /// Where its webhooks may go, narrowing the server's policy.
    pub policy: hookd_core::policy::OrgPolicy,
    /// Its payloads and response bodies are sealed at rest.
    pub encrypt_payloads: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One page request. `iterator` is the id (or name) of the last row seen, and
/// `backwards` pages towards earlier rows from it. List queries return up to
/// `limit + 1` rows in the order they walk (reversed when `backwards`); the extra
/// row tells the caller there is more.
#[derive(Debug, Clone)]
pub struct Page {
    pub limit: usize,
    pub iterator: Option<String>,
    pub backwards: bool,
    pub descending: bool,
}

#[derive(Debug, Clone)]
pub struct Application {
    pub org_id: String,
    pub id: String,
    pub uid: Option<String>,
    pub name: String,
    pub rate_limit: Option<u32>,
    pub metadata: Metadata,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub struct EventType {
    pub org_id: String,
    pub name: String,
    pub description: String,
    pub archived: bool,
    pub deprecated: bool,
    /// JSON text.
    pub schemas: Option<String>,
    pub feature_flags: Option<Vec<String>>,
    pub group_name: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// This event type's retry schedule (delays in ms), overriding the server's;
    /// an endpoint's own schedule overrides it in turn.
    pub retry_schedule_ms: Option<Vec<u64>>,
    /// Messages of this type must match its latest schema (a hookd extension).
    pub validate_payloads: bool,
}

/// A secret that was rotated out and still signs until `expires_at`.
#[derive(Debug, Clone)]
pub struct RetiredSecret {
    pub secret: Secret,
    pub expires_at: i64,
}

#[derive(Clone)]
pub struct Endpoint {
    pub org_id: String,
    pub app_id: String,
    pub id: String,
    pub uid: Option<String>,
    pub url: String,
    pub description: String,
    pub version: i32,
    pub disabled: bool,
    pub event_types: Option<Vec<String>>,
    pub channels: Option<Vec<String>>,
    pub rate_limit: Option<u32>,
    pub metadata: Metadata,
    pub headers: BTreeMap<String, String>,
    pub secret: Secret,
    pub retired_secrets: Vec<RetiredSecret>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Counts the changes to the row: a node holding deliveries for the endpoint
    /// reloads it when this moves.
    pub revision: i64,
    /// The endpoint's own delivery settings (extension fields).
    pub control: DeliveryControl,
    /// Its credentials towards the receiver (sealed at rest).
    pub auth: EndpointAuth,
    /// What the node delivering to it last reported; `None` before anything was.
    pub health: Option<EndpointHealth>,
}

/// An endpoint's own delivery settings, beyond Svix's fields; `None` takes the
/// event type's or the server's.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryControl {
    /// Delays between attempts, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_schedule_ms: Option<Vec<u64>>,
    /// Requests in flight to the endpoint at most (below the server's cap).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    /// A P-256 public JWK: payloads go to the endpoint encrypted to it (JWE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_key: Option<serde_json::Value>,
    /// How long an attempt may take (instead of the server's `--timeout`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Request bodies go gzip-compressed (`content-encoding: gzip`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gzip: bool,
    /// Messages reach the endpoint in creation order, per ordering key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordering: Option<hookd_core::ordering::Ordering>,
    /// Several messages per request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<hookd_core::batching::Batching>,
    /// Which messages the endpoint gets, beyond event types and channels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<hookd_core::filter::Filter>,
    /// The template each body is rendered with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<TemplatePin>,
    /// JavaScript run before each send (Svix's endpoint transformation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transformation: Option<Transformation>,
    /// The connector the transformation came from: a connector's id, or
    /// `preset:<name>` for one of hookd's presets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector: Option<String>,
}

/// The template an endpoint renders its bodies with: one version, or the
/// latest (`version: None`) whichever it is at send time.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplatePin {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
}

/// An endpoint's transformation: a JavaScript `handler(webhook)` run before
/// each send when enabled, with the endpoint's variables.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transformation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default)]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, String>,
    pub updated_at: i64,
}

/// A connector: a named transformation (and what an endpoint using it needs),
/// made by the organisation or from one of hookd's presets.
#[derive(Debug, Clone, PartialEq)]
pub struct Connector {
    pub org_id: String,
    pub id: String,
    pub uid: Option<String>,
    pub spec: ConnectorSpec,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A connector's fields, stored as one JSON document (Svix's `ConnectorIn`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectorSpec {
    pub name: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo: Option<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub instructions: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_event_types: Option<Vec<String>>,
    pub transformation: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_flags: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_type: Option<String>,
    pub transformation_updated_at: i64,
    /// The hookd preset it was made from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
}

/// A payload template: a named series of immutable, numbered versions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub org_id: String,
    pub id: String,
    pub uid: Option<String>,
    pub name: String,
    pub description: String,
    pub latest_version: u32,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One version of a template: its source and output format, never changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateVersion {
    pub org_id: String,
    pub template_id: String,
    pub version: u32,
    /// `json`, `xml`, `form` or `text`.
    pub format: String,
    pub source: String,
    pub created_at: i64,
}

impl DeliveryControl {
    pub fn is_default(&self) -> bool {
        *self == DeliveryControl::default()
    }
}

/// How hookd authenticates to an endpoint's receiver, beside the signature:
/// an OAuth2 client (Svix's `EndpointOauthConfigIn`), HTTP basic, or a bearer
/// token (at most one applies: OAuth2, else basic, else bearer); and on the
/// TLS level, a client identity and the CA the receiver's certificate is
/// checked against.
#[derive(Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointAuth {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<OauthConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic: Option<BasicAuth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer: Option<String>,
    /// A JWT signed for each request, sent as a bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<JwtAuth>,
    /// The client identity for mutual TLS: a PEM private key and certificate
    /// (chain), Svix's `EndpointMtlsConfigIn.identity`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtls_identity: Option<String>,
    /// The CA (PEM) the receiver's certificate must chain to, instead of the
    /// standard roots (Svix's `EndpointServerCaIn.cert`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_ca: Option<String>,
}

impl EndpointAuth {
    pub fn is_empty(&self) -> bool {
        *self == EndpointAuth::default()
    }
}

#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BasicAuth {
    pub username: String,
    pub password: String,
}

/// Signs a JWT per request (an extension): the key, and the claims it carries
/// besides the ones hookd sets (`iat`, `exp`, `jti`, `webhook_id`,
/// `body_sha256`, and `iss`/`aud` when given).
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JwtAuth {
    /// `HS256`, `RS256` or `EdDSA`.
    pub algorithm: String,
    /// The HS256 secret, or the base64 of the private key's DER (RS256:
    /// PKCS#1; EdDSA: PKCS#8).
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    pub lifetime_secs: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub claims: BTreeMap<String, serde_json::Value>,
}

/// Svix's `Oauth2GrantTypeInOut`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OauthGrant {
    ClientCredentials,
    RefreshToken,
}

/// Svix's `Oauth2AuthMethodInOut`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OauthAuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    ClientSecretJwt,
}

/// Svix's `ClientSecretJwtParamsIn`: the RS256 key (base64 of its PKCS#1 DER)
/// the client assertion is signed with.
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OauthJwtParams {
    pub secret_base64: String,
    pub signing_algorithm: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_expiry_secs: Option<u64>,
}

/// An endpoint's OAuth2 client: how hookd gets the access token it sends.
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OauthConfig {
    pub grant_type: OauthGrant,
    pub auth_method: OauthAuthMethod,
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    pub token_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_params: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_headers: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_params: Option<OauthJwtParams>,
}

/// What `Debug` shows of a credential: whether it is set, never what it is.
fn set<T>(o: &Option<T>) -> Option<&'static str> {
    o.as_ref().map(|_| "…")
}

impl std::fmt::Debug for EndpointAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointAuth")
            .field("oauth", &self.oauth)
            .field("basic", &self.basic)
            .field("bearer", &set(&self.bearer))
            .field("jwt", &self.jwt)
            .field("mtls_identity", &set(&self.mtls_identity))
            .field("server_ca", &self.server_ca.as_ref().map(|c| c.len()))
            .finish()
    }
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth").field("username", &self.username).field("password", &"…").finish()
    }
}

impl std::fmt::Debug for JwtAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuth")
            .field("algorithm", &self.algorithm)
            .field("key", &"…")
            .field("key_id", &self.key_id)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("lifetime_secs", &self.lifetime_secs)
            .field("claims", &self.claims.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl std::fmt::Debug for OauthJwtParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OauthJwtParams")
            .field("secret_base64", &"…")
            .field("signing_algorithm", &self.signing_algorithm)
            .field("secret_id", &self.secret_id)
            .field("token_expiry_secs", &self.token_expiry_secs)
            .finish()
    }
}

impl std::fmt::Debug for OauthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys = |m: &Option<BTreeMap<String, String>>| m.as_ref().map(|m| m.keys().cloned().collect::<Vec<_>>());
        f.debug_struct("OauthConfig")
            .field("grant_type", &self.grant_type)
            .field("auth_method", &self.auth_method)
            .field("client_id", &self.client_id)
            .field("client_secret", &set(&self.client_secret))
            .field("token_url", &set(&Some(&self.token_url)))
            .field("scopes", &self.scopes)
            .field("extra_params", &keys(&self.extra_params))
            .field("extra_headers", &keys(&self.extra_headers))
            .field("refresh_token", &set(&self.refresh_token))
            .field("jwt_params", &self.jwt_params)
            .finish()
    }
}

/// The circuit breaker's state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum BreakerState {
    #[default]
    Closed,
    Open,
    HalfOpen,
}

/// An endpoint's health as the node delivering to it last reported it: written
/// when its breaker or throttling changes, read by the API on any node and by
/// the next node to take the endpoint over.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointHealth {
    pub breaker: BreakerState,
    /// Failed and all requests in the breaker's window when this was written.
    pub failures: u32,
    pub requests: u32,
    /// When the breaker last opened, and when it lets a probe through (Unix ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opened_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_probe_at: Option<i64>,
    /// How long the breaker stays open next time it opens (it doubles on a failed probe).
    #[serde(default)]
    pub open_for_ms: i64,
    /// Since when, and until when, the receiver asked to be held back (429, 502,
    /// 503, 504, `Retry-After`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttled_since: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttled_until: Option<i64>,
    /// Since when every attempt failed (the endpoint is disabled once this is
    /// `--disable-after` old).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<i64>,
    pub updated_at: i64,
}

/// Header values may be credentials (`Authorization`…): `Debug` shows their
/// names only, as `Secret` shows no key.
impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("id", &self.id)
            .field("app_id", &self.app_id)
            .field("url", &self.url)
            .field("disabled", &self.disabled)
            .field("header_names", &self.headers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// Whether a message with this event type and these channels goes to this
    /// endpoint: it must be enabled and [`Endpoint::matches`] the message.
    pub fn accepts(&self, event_type: &str, channels: Option<&[String]>) -> bool {
        !self.disabled && self.matches(event_type, channels)
    }

    /// Whether the endpoint subscribes to such a message, enabled or not: it must
    /// list the event type (or list none), and share a channel with the message
    /// when the endpoint names channels.
    pub fn matches(&self, event_type: &str, channels: Option<&[String]>) -> bool {
        if let Some(types) = &self.event_types {
            if !types.is_empty() && !types.iter().any(|t| t == event_type) {
                return false;
            }
        }
        if let Some(wanted) = &self.channels {
            if !wanted.is_empty() {
                let Some(have) = channels else { return false };
                if !have.iter().any(|c| wanted.contains(c)) {
                    return false;
                }
            }
        }
        true
    }

    /// Secrets that sign a request sent at `now`: the current one, then retired
    /// ones still in their grace period.
    pub fn signing_secrets(&self, now: i64) -> Vec<Secret> {
        let mut out = vec![self.secret.clone()];
        out.extend(self.retired_secrets.iter().filter(|r| r.expires_at > now).map(|r| r.secret.clone()));
        out
    }
}

#[derive(Debug, Clone)]
pub struct Message {
    pub org_id: String,
    pub app_id: String,
    pub id: String,
    pub event_id: Option<String>,
    pub event_type: String,
    pub channels: Option<Vec<String>>,
    pub tags: Option<Vec<String>>,
    /// The JSON payload as received; `None` once expunged.
    pub payload: Option<Arc<[u8]>>,
    pub created_at: i64,
    /// When the payload (and the response bodies of its attempts) is expunged by
    /// the retention sweep.
    pub expires_at: i64,
    /// When its deliveries are due, for a message scheduled ahead (`deliverAt`).
    pub deliver_at: Option<i64>,
}

#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    pub event_types: Vec<String>,
    pub channel: Option<String>,
    pub tag: Option<String>,
    pub before: Option<i64>,
    pub after: Option<i64>,
    pub with_content: bool,
}

/// One message's delivery to one endpoint.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: i64,
    pub msg_id: String,
    pub endpoint_id: String,
    pub state: DeliveryState,
    pub attempts: u32,
    /// When a scheduled delivery becomes due; `None` in every other state.
    pub due_at: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Delivery {
    /// How the API shows it.
    pub fn status(&self) -> MessageStatus {
        self.state.message_status(self.attempts)
    }

    /// When the next attempt is due, as the API shows it.
    pub fn next_attempt_at(&self) -> Option<i64> {
        match self.state {
            DeliveryState::Scheduled => self.due_at,
            _ => None,
        }
    }
}

/// A node's claim on deliveries it holds in memory. The expiry is computed by
/// the database's clock (`now + duration`), never the node's, so a node whose
/// clock is off neither steals leases early nor keeps them too long.
#[derive(Debug, Clone)]
pub struct Lease {
    pub owner: String,
    pub duration_ms: i64,
}

/// What the dispatcher needs to send one delivery.
#[derive(Debug, Clone)]
pub struct DeliveryJob {
    pub delivery_id: i64,
    /// The fencing token of this lease: an outcome is recorded only while the
    /// delivery is still leased under it.
    pub lease_token: i64,
    pub org_id: String,
    pub app_id: String,
    pub msg_id: String,
    pub event_type: String,
    /// Accept time of the message, for end-to-end latency.
    pub msg_created_at: i64,
    /// `None` when the payload was expunged.
    pub payload: Option<Arc<[u8]>>,
    pub endpoint: Arc<Endpoint>,
    /// Attempts made before this one.
    pub attempts: u32,
    pub trigger: AttemptTrigger,
}

/// Where a delivery goes after its lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextState {
    Succeeded,
    /// The schedule is exhausted.
    Failed,
    /// Content expunged: nothing to send.
    Canceled,
    /// Scheduled again, due this many milliseconds after the outcome is recorded
    /// (by the database's clock); 0 gives it back due now.
    Retry {
        after_ms: i64,
    },
    /// Its endpoint is disabled: paused, if the endpoint still is when this is
    /// recorded (else due now, so an enable in between is not lost).
    Paused,
}

impl NextState {
    /// The state this leads to (before the database's checks above).
    pub fn state(self) -> DeliveryState {
        match self {
            NextState::Succeeded => DeliveryState::Succeeded,
            NextState::Failed => DeliveryState::Failed,
            NextState::Canceled => DeliveryState::Canceled,
            NextState::Retry { .. } => DeliveryState::Scheduled,
            NextState::Paused => DeliveryState::Paused,
        }
    }

    /// Milliseconds until due, for the states that have a due time.
    pub fn due_after_ms(self) -> Option<i64> {
        match self {
            NextState::Retry { after_ms } => Some(after_ms.max(0)),
            NextState::Paused => Some(0),
            _ => None,
        }
    }
}

/// The end of one lease: the attempt made (if any) and where the delivery goes.
/// A delivery asked to be resent while it was leased is due again at once,
/// whatever this says (the database knows; see `resend`).
#[derive(Debug, Clone)]
pub struct Outcome {
    pub delivery_id: i64,
    pub lease_token: i64,
    /// `None` when no request was made (released, paused, canceled).
    pub attempt: Option<Attempt>,
    pub next: NextState,
    /// Attempts made in all, this one included.
    pub attempts: u32,
}

#[derive(Debug, Clone)]
pub struct Attempt {
    pub id: String,
    pub org_id: String,
    pub app_id: String,
    pub msg_id: String,
    pub endpoint_id: String,
    pub url: String,
    /// `Success` or `Fail`.
    pub status: MessageStatus,
    /// 0 when no response was received.
    pub response_status_code: i32,
    pub response: String,
    pub response_duration_ms: i64,
    pub trigger: AttemptTrigger,
    pub created_at: i64,
    /// The request's and the response's headers, written with the attempt.
    /// Reads of attempts leave this `None`: `get_attempt_headers` reads it.
    pub headers: Option<AttemptHeaders>,
    /// What the statistics count of this attempt, when it is recorded; `None`
    /// leaves it out of them (statistics off) and on reads.
    pub facts: Option<crate::AttemptFacts>,
}

/// The headers of one attempt, as JSON text (stored as written).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttemptHeaders {
    /// The request's headers, a JSON object of names to values; a credential's
    /// value is `null` (never stored; see `hookd_core::headers::is_sensitive`).
    pub sent: Option<String>,
    /// The response's headers, a JSON array of `[name, value]` pairs; `None`
    /// when no response came back.
    pub received: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct AttemptFilter {
    pub msg_id: Option<String>,
    pub endpoint_id: Option<String>,
    pub status: Option<MessageStatus>,
    /// 0 for attempts without a response, else 100, 200… for that class of codes.
    pub status_code_class: Option<i64>,
    pub before: Option<i64>,
    pub after: Option<i64>,
    /// Filters on the attempted message: its event type, a channel, a tag.
    pub message: MessageFilter,
}

/// Which deliveries a list of an endpoint's messages shows, by the status the
/// API shows (`None`: all).
pub type StatusFilter = Option<MessageStatus>;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointStats {
    pub success: u64,
    pub pending: u64,
    pub sending: u64,
    pub fail: u64,
    pub canceled: u64,
}

/// An idempotency key, scoped as decision 3 of the design says.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    pub method: String,
    pub path: String,
    pub key: String,
}

/// What is kept of a first response: its status and the id of what it created,
/// enough to rebuild it. Never a payload, token or secret.
#[derive(Debug, Clone)]
pub struct IdempotencyOutcome {
    pub request_hash: String,
    pub status: u16,
    pub resource_id: Option<String>,
}

/// Stored in the same transaction as what the request creates.
#[derive(Debug, Clone)]
pub struct IdempotencyRecord {
    pub org_id: String,
    pub key: IdempotencyKey,
    pub request_hash: String,
    pub status: u16,
    pub resource_id: Option<String>,
    pub expires_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_show_in_debug_output() {
        let oauth = OauthConfig {
            grant_type: OauthGrant::RefreshToken,
            auth_method: OauthAuthMethod::ClientSecretJwt,
            client_id: "client-1".into(),
            client_secret: Some("S-client".into()),
            token_url: "https://auth.example/token?key=S-query".into(),
            scopes: None,
            extra_params: Some([("audience".to_string(), "S-param".to_string())].into()),
            extra_headers: Some([("x-key".to_string(), "S-header".to_string())].into()),
            refresh_token: Some("S-refresh".into()),
            jwt_params: Some(OauthJwtParams {
                secret_base64: "S-rsa".into(),
                signing_algorithm: "RS256".into(),
                secret_id: None,
                token_expiry_secs: None,
            }),
        };
        let auth = EndpointAuth {
            oauth: Some(oauth),
            basic: Some(BasicAuth { username: "user-1".into(), password: "S-password".into() }),
            bearer: Some("S-bearer".into()),
            jwt: Some(JwtAuth {
                algorithm: "HS256".into(),
                key: "S-hmac".into(),
                key_id: None,
                issuer: None,
                audience: None,
                lifetime_secs: 60,
                claims: Default::default(),
            }),
            mtls_identity: Some("S-identity".into()),
            server_ca: Some("CA".into()),
        };
        let shown = format!("{auth:?}");
        assert!(shown.contains("client-1") && shown.contains("user-1") && shown.contains("x-key"), "{shown}");
        assert!(!shown.contains("S-"), "{shown}");
        let change = crate::change::AuthChange::Bearer(Some("S-bearer".into()));
        assert_eq!(format!("{change:?}"), "Bearer(set)");
    }
}
