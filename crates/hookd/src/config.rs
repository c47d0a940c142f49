//! Configuration for `hookd serve`: every option is a flag, an environment
//! variable `HOOKD_<FLAG>` and a key of the TOML file given by `--config`, with
//! precedence flag > env > file > default.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use hookd_core::policy::Network;
use hookd_core::schedule::{parse_duration, RetrySchedule, DEFAULT_SCHEDULE};
use hookd_delivery::control::{BreakerConfig, ControlConfig};
use serde::Deserialize;

/// Options of `hookd serve` (and of the commands that open the store).
#[derive(Debug, Args, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ServeOptions {
    /// TOML file with any of these options (keys are the flag names, e.g. `data-dir`).
    #[arg(long, env = "HOOKD_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Address to listen on [default: 127.0.0.1:8071]. Port 0 picks a free port.
    #[arg(long, env = "HOOKD_LISTEN")]
    pub listen: Option<String>,

    /// Directory of the embedded SQLite store [default: ./hookd-data].
    #[arg(long, env = "HOOKD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// Database URL: `postgres://user@host/db` for PostgreSQL (many nodes), or
    /// `sqlite:///path/to/hookd.db` (default: the data dir's hookd.db).
    #[arg(long, env = "HOOKD_DATABASE_URL")]
    pub database_url: Option<String>,

    /// A bootstrap admin token accepted as a bearer token (never stored).
    #[arg(long, env = "HOOKD_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Allow delivery to loopback and private addresses (off by default: SSRF guard).
    #[arg(long, env = "HOOKD_ALLOW_PRIVATE_NETWORKS", num_args = 0..=1, default_missing_value = "true")]
    pub allow_private_networks: Option<bool>,

    /// Deliver to https endpoints only; http URLs are refused (422 on write,
    /// and at delivery).
    #[arg(long, env = "HOOKD_HTTPS_ONLY", num_args = 0..=1, default_missing_value = "true")]
    pub https_only: Option<bool>,

    /// When set, deliver only to these networks (comma-separated CIDRs); they
    /// pass the default block list, so an internal receiver network can be let in.
    #[arg(long, env = "HOOKD_ALLOWED_NETWORKS", value_delimiter = ',')]
    pub allowed_networks: Option<Vec<String>>,

    /// Never deliver to these networks (comma-separated CIDRs), besides the
    /// default block list.
    #[arg(long, env = "HOOKD_BLOCKED_NETWORKS", value_delimiter = ',')]
    pub blocked_networks: Option<Vec<String>>,

    /// Send every delivery through this HTTP proxy (`CONNECT` for https), e.g.
    /// for a static egress address. The destination policy is applied before
    /// the proxy is asked to connect.
    #[arg(long, env = "HOOKD_EGRESS_PROXY")]
    pub egress_proxy: Option<String>,

    /// Delays between attempts after the first (immediate) one [default: 5s,5m,30m,2h,5h,10h,10h].
    #[arg(long, env = "HOOKD_RETRY_SCHEDULE")]
    pub retry_schedule: Option<String>,

    /// Largest message payload accepted, in bytes [default: 1048576].
    #[arg(long, env = "HOOKD_MAX_PAYLOAD_BYTES")]
    pub max_payload_bytes: Option<usize>,

    /// Timeout of one delivery request [default: 15s].
    #[arg(long, env = "HOOKD_REQUEST_TIMEOUT")]
    pub request_timeout: Option<String>,

    /// How long a node's claim on a delivery lasts; a crashed node's deliveries
    /// are retried this long after it took them [default: 30s].
    #[arg(long, env = "HOOKD_LEASE_DURATION")]
    pub lease_duration: Option<String>,

    /// How often the store is checked for due retries and expired leases [default: 1s].
    #[arg(long, env = "HOOKD_POLL_INTERVAL")]
    pub poll_interval: Option<String>,

    /// Requests in flight to one endpoint at most [default: 64].
    #[arg(long, env = "HOOKD_ENDPOINT_CONCURRENCY")]
    pub endpoint_concurrency: Option<usize>,

    /// Requests in flight across all endpoints at most [default: 1024].
    #[arg(long, env = "HOOKD_MAX_IN_FLIGHT")]
    pub max_in_flight: Option<usize>,

    /// Deliveries held in memory at most before new ones wait in the store [default: 20000].
    #[arg(long, env = "HOOKD_MAX_IN_MEMORY")]
    pub max_in_memory: Option<usize>,

    /// Payload bytes of the deliveries held in memory at most [default: 268435456].
    #[arg(long, env = "HOOKD_MAX_IN_MEMORY_BYTES")]
    pub max_in_memory_bytes: Option<usize>,

    /// How long shutdown waits for requests in flight [default: 10s].
    #[arg(long, env = "HOOKD_SHUTDOWN_TIMEOUT")]
    pub shutdown_timeout: Option<String>,

    /// Base URL of this server as users reach it, for app portal links [default: http://LISTEN].
    #[arg(long, env = "HOOKD_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Proxies (comma-separated CIDRs) whose `X-Forwarded-For` is believed when
    /// an inbound source checks a request's address against its `allowedIps`.
    #[arg(long, env = "HOOKD_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Option<Vec<String>>,

    /// Who may embed the application portal in an iframe: CSP `frame-ancestors`
    /// sources, space-separated (e.g. `https://app.example.com`) [default: 'none'].
    #[arg(long, env = "HOOKD_PORTAL_FRAME_ANCESTORS")]
    pub portal_frame_ancestors: Option<String>,

    /// Single sign-on for the console: the OpenID Connect provider's issuer URL
    /// (https; http on loopback only). Sign-on is on when this and
    /// --oidc-client-id are set.
    #[arg(long, env = "HOOKD_OIDC_ISSUER")]
    pub oidc_issuer: Option<String>,

    /// The client id registered at the provider for this server.
    #[arg(long, env = "HOOKD_OIDC_CLIENT_ID")]
    pub oidc_client_id: Option<String>,

    /// The client's secret (sent with HTTP Basic to the token endpoint).
    #[arg(long, env = "HOOKD_OIDC_CLIENT_SECRET", hide_env_values = true)]
    pub oidc_client_secret: Option<String>,

    /// Scopes asked for, space-separated; must hold `openid` [default: openid email profile].
    #[arg(long, env = "HOOKD_OIDC_SCOPES")]
    pub oidc_scopes: Option<String>,

    /// The ID token claim listing the user's groups (a dotted path reaches
    /// into objects, e.g. `realm_access.roles`) [default: groups].
    #[arg(long, env = "HOOKD_OIDC_GROUPS_CLAIM")]
    pub oidc_groups_claim: Option<String>,

    /// `GROUP=ORG_ID:ROLE`: members of GROUP sign in to organisation ORG_ID
    /// (`org_…`, or `default`) as ROLE (`admin` or `read-only`). Repeatable;
    /// the first mapping (in this order) that matches one of the user's groups
    /// wins. In the environment, separate mappings with `;`.
    #[arg(long = "oidc-map", env = "HOOKD_OIDC_MAP", value_delimiter = ';')]
    pub oidc_map: Option<Vec<String>>,

    /// How long a console session started by single sign-on lasts; its API
    /// token expires then, or at sign-out [default: 8h].
    #[arg(long, env = "HOOKD_OIDC_SESSION_TTL")]
    pub oidc_session_ttl: Option<String>,

    /// What this node does: `all` (API and delivery), `api` (accept and store only)
    /// or `worker` (deliver only; serves health and metrics) [default: all].
    #[arg(long, env = "HOOKD_ROLE")]
    pub role: Option<String>,

    /// How long a message's payload (and its attempts' response bodies) is kept,
    /// unless the message sets its own `payloadRetentionPeriod`/`Hours` [default: 90d].
    #[arg(long, env = "HOOKD_PAYLOAD_RETENTION")]
    pub payload_retention: Option<String>,

    /// How long a message, its deliveries and its attempts are kept before they
    /// are deleted; at least the payload retention [default: 180d].
    #[arg(long, env = "HOOKD_MESSAGE_RETENTION")]
    pub message_retention: Option<String>,

    /// How long audit entries are kept; older ones are removed from the oldest
    /// end, and the chain still verifies from there [default: 365d].
    #[arg(long, env = "HOOKD_AUDIT_RETENTION")]
    pub audit_retention: Option<String>,

    /// How often the retention sweep runs [default: 1m].
    #[arg(long, env = "HOOKD_PRUNE_INTERVAL")]
    pub prune_interval: Option<String>,

    /// Longest `Retry-After` honoured from a 429 or 503; longer ones are cut
    /// to this [default: 1h].
    #[arg(long, env = "HOOKD_RETRY_AFTER_MAX")]
    pub retry_after_max: Option<String>,

    /// An endpoint's circuit breaker opens when at least this share of the
    /// requests in its window failed [default: 0.5].
    #[arg(long, env = "HOOKD_BREAKER_FAILURE_RATIO")]
    pub breaker_failure_ratio: Option<f64>,

    /// …and the window holds at least this many requests [default: 20].
    #[arg(long, env = "HOOKD_BREAKER_MIN_REQUESTS")]
    pub breaker_min_requests: Option<u32>,

    /// The breaker's window [default: 60s].
    #[arg(long, env = "HOOKD_BREAKER_WINDOW")]
    pub breaker_window: Option<String>,

    /// How long an open breaker waits before its first probe; doubles after a
    /// failed probe, up to 10 minutes [default: 30s].
    #[arg(long, env = "HOOKD_BREAKER_OPEN")]
    pub breaker_open: Option<String>,

    /// An endpoint failing this long with no success is disabled [default: 5d].
    #[arg(long, env = "HOOKD_DISABLE_AFTER")]
    pub disable_after: Option<String>,

    /// Messages per second one application may send, unless it sets its own
    /// `throttleRate`; beyond it the API answers 429 [default: no limit].
    #[arg(long, env = "HOOKD_APP_INGEST_RATE")]
    pub app_ingest_rate: Option<u32>,

    /// Requests per second one API token may make; beyond it the API answers
    /// 429 [default: no limit].
    #[arg(long, env = "HOOKD_TOKEN_RATE_LIMIT")]
    pub token_rate_limit: Option<u32>,

    /// Messages per second one organisation may send [default: no limit].
    #[arg(long, env = "HOOKD_ORG_INGEST_RATE")]
    pub org_ingest_rate: Option<u32>,

    /// Key that seals endpoint secrets and headers at rest (`hk_…`, from
    /// `hookd encryption generate-key`); every node of a cluster needs the same
    /// [default: the embedded store makes one in encryption.key beside its
    /// database; with PostgreSQL, none: plain text].
    #[arg(long, env = "HOOKD_ENCRYPTION_KEY", hide_env_values = true)]
    pub encryption_key: Option<String>,

    /// Older keys still readable while `hookd encryption rotate-key` re-seals
    /// what they sealed (comma-separated).
    #[arg(long, env = "HOOKD_PREVIOUS_ENCRYPTION_KEYS", hide_env_values = true, value_delimiter = ',')]
    pub previous_encryption_keys: Option<Vec<String>>,

    /// Count attempts in the statistics rollups (`--stats false` turns them
    /// off) [default: true].
    #[arg(long, env = "HOOKD_STATS", num_args = 0..=1, default_missing_value = "true")]
    pub stats: Option<bool>,

    /// Daily statistics are kept this long; minute rows become hour rows
    /// after 6 hours and hour rows become day rows after 14 days [default: 400d].
    #[arg(long, env = "HOOKD_STATS_RETENTION")]
    pub stats_retention: Option<String>,

    /// How often each endpoint's TLS certificate is checked again (after its
    /// first check, when it was made or its URL changed) [default: 24h].
    #[arg(long, env = "HOOKD_CERT_CHECK_INTERVAL")]
    pub cert_check_interval: Option<String>,

    /// Warn (operational webhook `endpoint.certificate.expiring`) when an
    /// endpoint's certificate expires within this many days [default: 14].
    #[arg(long, env = "HOOKD_CERT_WARN_DAYS")]
    pub cert_warn_days: Option<u32>,

    /// How often delivering nodes look for failure and ingest spikes [default: 60s].
    #[arg(long, env = "HOOKD_SPIKE_INTERVAL")]
    pub spike_interval: Option<String>,

    /// How often delivering nodes judge the SLAs [default: 30s].
    #[arg(long, env = "HOOKD_SLA_INTERVAL")]
    pub sla_interval: Option<String>,

    /// Export OpenTelemetry traces (a span per message accepted and per
    /// delivery attempt) over OTLP/HTTP (JSON) to this collector, e.g.
    /// `http://127.0.0.1:4318`; receivers get the attempt's `traceparent`
    /// [default: off].
    #[arg(long, env = "HOOKD_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,

    /// Log format: `text` for people, `json` for log pipelines (one JSON
    /// object per line; a delivery's lines carry its ids) [default: text].
    #[arg(long, env = "HOOKD_LOG_FORMAT")]
    pub log_format: Option<String>,

    /// Log filter, e.g. `info` or `hookd=debug` [default: info].
    #[arg(long, env = "HOOKD_LOG")]
    pub log: Option<String>,

    /// Shifts this node's clock (e.g. `600s`, `-5s`): for tests that show that
    /// leases and due times follow the database's clock. Never set in production.
    #[arg(long, env = "HOOKD_CLOCK_OFFSET", hide = true, allow_hyphen_values = true)]
    pub clock_offset: Option<String>,
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: String,
    pub database: Database,
    pub admin_token: Option<String>,
    /// The server's destination policy.
    pub destination: hookd_core::policy::DestinationPolicy,
    pub egress_proxy: Option<String>,
    pub retry_schedule: RetrySchedule,
    pub max_payload_bytes: usize,
    pub request_timeout: Duration,
    pub lease_duration: Duration,
    pub poll_interval: Duration,
    pub endpoint_concurrency: usize,
    pub control: ControlConfig,
    pub app_ingest_rate: Option<u32>,
    pub org_ingest_rate: Option<u32>,
    pub token_rate_limit: Option<u32>,
    pub encryption_key: Option<String>,
    pub previous_encryption_keys: Vec<String>,
    pub audit_retention: Duration,
    /// Attempts are counted in the statistics rollups.
    pub stats: bool,
    pub stats_retention: Duration,
    pub sla_interval: Duration,
    pub cert_check_interval: Duration,
    pub cert_warn_days: u32,
    pub spike_interval: Duration,
    pub max_in_flight: usize,
    pub max_in_memory: usize,
    pub max_in_memory_bytes: usize,
    pub shutdown_timeout: Duration,
    pub public_url: Option<String>,
    pub trusted_proxies: Vec<Network>,
    pub portal_frame_ancestors: String,
    /// Single sign-on for the console, when set up.
    pub oidc: Option<hookd_console::oidc::Settings>,
    pub role: Role,
    pub log: String,
    pub log_format: LogFormat,
    pub otlp_endpoint: Option<String>,
    pub payload_retention: Duration,
    pub message_retention: Duration,
    pub prune_interval: Duration,
    pub clock_offset_ms: Option<i64>,
}

/// How log lines are written (to stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// What a node does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    All,
    Api,
    Worker,
}

impl Role {
    pub fn serves_api(self) -> bool {
        self != Role::Worker
    }

    pub fn delivers(self) -> bool {
        self != Role::Api
    }
}

#[derive(Debug, Clone)]
pub enum Database {
    Sqlite(PathBuf),
    Postgres(String),
}

macro_rules! merge {
    ($flags:ident, $file:ident, $($field:ident),*) => {
        $( if $flags.$field.is_none() { $flags.$field = $file.$field.take(); } )*
    };
}

fn duration(name: &str, v: Option<String>, default: &str) -> anyhow::Result<Duration> {
    let s = v.unwrap_or_else(|| default.to_string());
    parse_duration(&s).with_context(|| format!("--{name}: `{s}` is not a duration like 500ms, 15s, 5m"))
}

fn positive_duration(name: &str, v: Option<String>, default: &str) -> anyhow::Result<Duration> {
    let d = duration(name, v, default)?;
    if d.is_zero() {
        bail!("--{name} must be longer than zero");
    }
    Ok(d)
}

/// `600s`, `-5s`: a duration that may be negative, in milliseconds.
fn signed_millis(s: &str) -> anyhow::Result<i64> {
    let (sign, rest) = match s.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, s),
    };
    let d =
        parse_duration(rest).with_context(|| format!("--clock-offset: `{s}` is not a duration like 600s or -5s"))?;
    Ok(sign * d.as_millis() as i64)
}

fn positive(name: &str, v: Option<usize>, default: usize) -> anyhow::Result<usize> {
    match v.unwrap_or(default) {
        0 => bail!("--{name} must be at least 1"),
        n => Ok(n),
    }
}

impl ServeOptions {
    /// Applies the TOML file under the flags and environment, then the defaults.
    pub fn resolve(mut self) -> anyhow::Result<Config> {
        if let Some(path) = &self.config {
            let text =
                std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
            let mut file: ServeOptions =
                toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))?;
            merge!(
                self,
                file,
                listen,
                data_dir,
                database_url,
                admin_token,
                allow_private_networks,
                https_only,
                allowed_networks,
                blocked_networks,
                egress_proxy,
                retry_schedule,
                max_payload_bytes,
                request_timeout,
                lease_duration,
                poll_interval,
                endpoint_concurrency,
                max_in_flight,
                max_in_memory,
                max_in_memory_bytes,
                shutdown_timeout,
                public_url,
                trusted_proxies,
                portal_frame_ancestors,
                oidc_issuer,
                oidc_client_id,
                oidc_client_secret,
                oidc_scopes,
                oidc_groups_claim,
                oidc_map,
                oidc_session_ttl,
                role,
                log,
                payload_retention,
                message_retention,
                prune_interval,
                audit_retention,
                stats,
                stats_retention,
                log_format,
                otlp_endpoint,
                sla_interval,
                cert_check_interval,
                cert_warn_days,
                spike_interval,
                retry_after_max,
                breaker_failure_ratio,
                breaker_min_requests,
                breaker_window,
                breaker_open,
                disable_after,
                app_ingest_rate,
                org_ingest_rate,
                token_rate_limit,
                encryption_key,
                previous_encryption_keys,
                clock_offset
            );
        }
        let oidc = self.oidc()?;
        let listen = self.listen.unwrap_or_else(|| "127.0.0.1:8071".into());
        if listen.parse::<SocketAddr>().is_err() {
            bail!("--listen: `{listen}` is not an address like 127.0.0.1:8071");
        }
        let data_dir = self.data_dir.unwrap_or_else(|| PathBuf::from("./hookd-data"));
        let database = match self.database_url.as_deref() {
            None | Some("") => Database::Sqlite(data_dir.join("hookd.db")),
            Some(url) => parse_database_url(url)?,
        };
        let schedule_text = self.retry_schedule.unwrap_or_else(|| DEFAULT_SCHEDULE.into());
        let retry_schedule =
            RetrySchedule::parse(&schedule_text).map_err(|e| anyhow::anyhow!("--retry-schedule: {e}"))?;
        let max_payload_bytes = positive("max-payload-bytes", self.max_payload_bytes, 1024 * 1024)?;
        let payload_retention = positive_duration("payload-retention", self.payload_retention, "90d")?;
        let message_retention = positive_duration("message-retention", self.message_retention, "180d")?;
        if message_retention < payload_retention {
            bail!("--message-retention must be at least --payload-retention (a message outlives its payload)");
        }
        let audit_retention = positive_duration("audit-retention", self.audit_retention, "365d")?;
        if audit_retention < Duration::from_secs(7 * 86_400) {
            bail!("--audit-retention is at least 7d (a shorter one would let a restart erase the trail)");
        }
        let ratio = self.breaker_failure_ratio.unwrap_or(0.5);
        if !(ratio > 0.0 && ratio <= 1.0) {
            bail!("--breaker-failure-ratio must be above 0 and at most 1");
        }
        let defaults = ControlConfig::default();
        let breaker_open = positive_duration("breaker-open", self.breaker_open, "30s")?;
        let control = ControlConfig {
            retry_after_max: positive_duration("retry-after-max", self.retry_after_max, "1h")?,
            breaker: BreakerConfig {
                failure_ratio: ratio,
                min_requests: self.breaker_min_requests.unwrap_or(20).max(1),
                window: positive_duration("breaker-window", self.breaker_window, "60s")?,
                open_for: breaker_open,
                max_open: defaults.breaker.max_open.max(breaker_open),
            },
            disable_after: positive_duration("disable-after", self.disable_after, "5d")?,
            ..defaults
        };
        let networks = |flag: &str, list: Option<Vec<String>>| -> anyhow::Result<Vec<Network>> {
            let list = list.unwrap_or_default();
            if list.len() > hookd_core::policy::MAX_NETWORKS {
                bail!("--{flag}: at most {} networks", hookd_core::policy::MAX_NETWORKS);
            }
            list.iter()
                .filter(|n| !n.trim().is_empty())
                .map(|n| Network::parse(n).map_err(|e| anyhow::anyhow!("--{flag}: {e}")))
                .collect()
        };
        let destination = hookd_core::policy::DestinationPolicy {
            https_only: self.https_only.unwrap_or(false),
            allow_private: self.allow_private_networks.unwrap_or(false),
            allowed: networks("allowed-networks", self.allowed_networks)?,
            blocked: networks("blocked-networks", self.blocked_networks)?,
            org_allowed: Vec::new(),
        };
        let egress_proxy = self.egress_proxy.filter(|p| !p.is_empty());
        if let Some(p) = &egress_proxy {
            let u = url::Url::parse(p).map_err(|e| anyhow::anyhow!("--egress-proxy: `{p}` is not a URL: {e}"))?;
            if u.scheme() != "http" && u.scheme() != "https" {
                bail!("--egress-proxy: the proxy URL is http:// or https://");
            }
        }
        if max_payload_bytes > 64 * 1024 * 1024 {
            bail!("--max-payload-bytes is at most 67108864 (64 MiB)");
        }
        Ok(Config {
            listen,
            database,
            admin_token: self.admin_token.filter(|t| !t.is_empty()),
            destination,
            egress_proxy,
            retry_schedule,
            max_payload_bytes,
            request_timeout: duration("request-timeout", self.request_timeout, "15s")?,
            lease_duration: duration("lease-duration", self.lease_duration, "30s")?,
            poll_interval: duration("poll-interval", self.poll_interval, "1s")?,
            endpoint_concurrency: positive("endpoint-concurrency", self.endpoint_concurrency, 64)?,
            max_in_flight: positive("max-in-flight", self.max_in_flight, 1024)?,
            max_in_memory: positive("max-in-memory", self.max_in_memory, 20_000)?,
            max_in_memory_bytes: positive("max-in-memory-bytes", self.max_in_memory_bytes, 256 * 1024 * 1024)?,
            shutdown_timeout: duration("shutdown-timeout", self.shutdown_timeout, "10s")?,
            public_url: self.public_url,
            trusted_proxies: networks("trusted-proxies", self.trusted_proxies)?,
            portal_frame_ancestors: frame_ancestors(self.portal_frame_ancestors)?,
            oidc,
            role: match self.role.as_deref() {
                None | Some("") | Some("all") => Role::All,
                Some("api") => Role::Api,
                Some("worker") => Role::Worker,
                Some(other) => bail!("--role: `{other}` is not one of all, api, worker"),
            },
            log: self.log.unwrap_or_else(|| "info".into()),
            otlp_endpoint: self.otlp_endpoint.filter(|u| !u.trim().is_empty()),
            log_format: match self.log_format.as_deref() {
                None | Some("") | Some("text") => LogFormat::Text,
                Some("json") => LogFormat::Json,
                Some(other) => bail!("--log-format: `{other}` is not one of text, json"),
            },
            payload_retention,
            message_retention,
            prune_interval: positive_duration("prune-interval", self.prune_interval, "1m")?,
            control,
            app_ingest_rate: self.app_ingest_rate.filter(|r| *r > 0),
            org_ingest_rate: self.org_ingest_rate.filter(|r| *r > 0),
            token_rate_limit: self.token_rate_limit.filter(|r| *r > 0),
            audit_retention,
            stats: self.stats.unwrap_or(true),
            stats_retention: positive_duration("stats-retention", self.stats_retention, "400d")?,
            sla_interval: positive_duration("sla-interval", self.sla_interval, "30s")?,
            cert_check_interval: positive_duration("cert-check-interval", self.cert_check_interval, "24h")?,
            cert_warn_days: self.cert_warn_days.unwrap_or(14),
            spike_interval: positive_duration("spike-interval", self.spike_interval, "60s")?,
            encryption_key: self.encryption_key.filter(|k| !k.trim().is_empty()),
            previous_encryption_keys: self
                .previous_encryption_keys
                .unwrap_or_default()
                .into_iter()
                .map(|k| k.trim().to_string())
                .filter(|k| !k.is_empty())
                .collect(),
            clock_offset_ms: self.clock_offset.as_deref().map(signed_millis).transpose()?,
        })
    }
}

impl ServeOptions {
    /// The `--oidc-*` flags, checked: `None` unless issuer and client id are set.
    fn oidc(&mut self) -> anyhow::Result<Option<hookd_console::oidc::Settings>> {
        use hookd_console::oidc::{check_issuer, Mapping, Settings};
        let given = |v: Option<String>| v.map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let (issuer, client_id) = (given(self.oidc_issuer.take()), given(self.oidc_client_id.take()));
        let (Some(issuer), Some(client_id)) = (issuer.clone(), client_id.clone()) else {
            let mapped = self.oidc_map.as_ref().is_some_and(|m| m.iter().any(|m| !m.trim().is_empty()));
            if issuer.is_some() || client_id.is_some() || self.oidc_client_secret.is_some() || mapped {
                bail!("single sign-on needs both --oidc-issuer and --oidc-client-id");
            }
            return Ok(None);
        };
        check_issuer(&issuer).map_err(|e| anyhow::anyhow!("--oidc-issuer: {e}"))?;
        let client_secret = self.oidc_client_secret.take().filter(|s| !s.is_empty()).context(
            "single sign-on needs --oidc-client-secret (or HOOKD_OIDC_CLIENT_SECRET): the token endpoint is \
             called with client_secret_basic",
        )?;
        let scopes = self.oidc_scopes.take().unwrap_or_else(|| "openid email profile".into());
        let scopes = scopes.split_whitespace().collect::<Vec<_>>().join(" ");
        if !scopes.split(' ').any(|s| s == "openid") {
            bail!("--oidc-scopes must hold `openid` (without it there is no ID token)");
        }
        let groups_claim = self.oidc_groups_claim.take().map(|c| c.trim().to_string()).unwrap_or_default();
        let mappings = self
            .oidc_map
            .take()
            .unwrap_or_default()
            .iter()
            .filter(|m| !m.trim().is_empty())
            .map(|m| Mapping::parse(m).map_err(|e| anyhow::anyhow!("--oidc-map: {e}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        if mappings.is_empty() {
            bail!("single sign-on needs at least one --oidc-map GROUP=ORG_ID:ROLE (else nobody could sign in)");
        }
        let session_ttl = positive_duration("oidc-session-ttl", self.oidc_session_ttl.take(), "8h")?;
        if !(Duration::from_secs(300)..=Duration::from_secs(7 * 86_400)).contains(&session_ttl) {
            bail!("--oidc-session-ttl is 5m to 7d");
        }
        Ok(Some(Settings {
            issuer,
            client_id,
            client_secret,
            scopes,
            groups_claim: if groups_claim.is_empty() { "groups".into() } else { groups_claim },
            mappings,
            session_ttl,
        }))
    }
}

fn parse_database_url(url: &str) -> anyhow::Result<Database> {
    if let Some(path) = url.strip_prefix("sqlite://") {
        if path.is_empty() {
            bail!("--database-url: `{url}` names no file; use sqlite:///path/to/hookd.db");
        }
        return Ok(Database::Sqlite(PathBuf::from(path)));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Database::Postgres(url.to_string()));
    }
    bail!("--database-url: `{url}` is neither a postgres:// nor a sqlite:// URL")
}

/// `--portal-frame-ancestors`: CSP source expressions only (`'self'`,
/// `'none'`, `https:`, `https://app.example.com`, `https://*.example.com`), so
/// the value cannot end the header or add a directive.
fn frame_ancestors(value: Option<String>) -> anyhow::Result<String> {
    let Some(v) = value.map(|v| v.trim().to_string()).filter(|v| !v.is_empty()) else {
        return Ok("'none'".into());
    };
    for source in v.split_whitespace() {
        let keyword = matches!(source, "'self'" | "'none'");
        let host = !source.is_empty()
            && source.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:/*_".contains(&b))
            && !source.starts_with('/');
        if !keyword && !host {
            anyhow::bail!("--portal-frame-ancestors: {source:?} is not a CSP source such as https://app.example.com");
        }
    }
    Ok(v.split_whitespace().collect::<Vec<_>>().join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_values_sit_under_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hookd.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9999\"\nretry-schedule = \"1s,2s\"\nmax-payload-bytes = 2048\nrole = \"worker\"\n",
        )
        .unwrap();
        let opts = ServeOptions { config: Some(path), listen: Some("127.0.0.1:1234".into()), ..Default::default() };
        let cfg = opts.resolve().unwrap();
        assert_eq!(cfg.listen, "127.0.0.1:1234");
        assert_eq!(cfg.retry_schedule.max_attempts(), 3);
        assert_eq!(cfg.max_payload_bytes, 2048);
        assert_eq!(cfg.role, Role::Worker);
    }

    #[test]
    fn rejects_bad_values() {
        let bad = [
            ServeOptions { listen: Some("nowhere".into()), ..Default::default() },
            ServeOptions { retry_schedule: Some("5q".into()), ..Default::default() },
            ServeOptions { request_timeout: Some("soon".into()), ..Default::default() },
            ServeOptions { database_url: Some("mysql://x".into()), ..Default::default() },
            ServeOptions { endpoint_concurrency: Some(0), ..Default::default() },
            ServeOptions { role: Some("everything".into()), ..Default::default() },
        ];
        for opts in bad {
            assert!(opts.resolve().is_err());
        }
    }

    #[test]
    fn single_sign_on_needs_issuer_client_and_mappings() {
        let sso = |f: fn(&mut ServeOptions)| {
            let mut opts = ServeOptions {
                oidc_issuer: Some("https://id.example.com/realms/main".into()),
                oidc_client_id: Some("hookd".into()),
                oidc_client_secret: Some("s3cret".into()),
                oidc_map: Some(vec!["ops=org_1:admin".into(), "auditors=default:read-only".into()]),
                ..Default::default()
            };
            f(&mut opts);
            opts.resolve()
        };
        let cfg = sso(|_| {}).unwrap();
        let s = cfg.oidc.expect("single sign-on is on");
        assert_eq!((s.scopes.as_str(), s.groups_claim.as_str()), ("openid email profile", "groups"));
        assert_eq!((s.mappings.len(), s.session_ttl), (2, Duration::from_secs(8 * 3600)));
        assert!(!format!("{s:?}").contains("s3cret"), "the secret is not printed");
        assert!(ServeOptions::default().resolve().unwrap().oidc.is_none());
        let refused: [fn(&mut ServeOptions); 7] = [
            |o| o.oidc_client_id = None,
            |o| o.oidc_client_secret = None,
            |o| o.oidc_map = None,
            |o| o.oidc_issuer = Some("http://id.example.com".into()),
            |o| o.oidc_scopes = Some("email profile".into()),
            |o| o.oidc_map = Some(vec!["ops=org_1:server".into()]),
            |o| o.oidc_session_ttl = Some("30s".into()),
        ];
        for f in refused {
            assert!(sso(f).is_err());
        }

        // In a file, the mappings are a list, kept in order.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hookd.toml");
        let toml = "oidc-issuer = \"http://127.0.0.1:5556/dex\"\noidc-client-id = \"hookd\"\n\
                    oidc-client-secret = \"x\"\noidc-map = [\"b=default:read-only\", \"a=org_1:admin\"]\n";
        std::fs::write(&path, toml).unwrap();
        let s = ServeOptions { config: Some(path), ..Default::default() }.resolve().unwrap().oidc.unwrap();
        let groups: Vec<&str> = s.mappings.iter().map(|m| m.group.as_str()).collect();
        assert_eq!(groups, ["b", "a"]);
    }

    #[test]
    fn portal_frame_ancestors_take_csp_sources_only() {
        assert_eq!(frame_ancestors(None).unwrap(), "'none'");
        assert_eq!(
            frame_ancestors(Some(" https://app.example.com  'self' ".into())).unwrap(),
            "https://app.example.com 'self'"
        );
        assert!(frame_ancestors(Some("https://a.example; script-src *".into())).is_err());
        assert!(frame_ancestors(Some("'unsafe-inline'".into())).is_err());
    }
}
