//! Source types and their configuration: every type of Svix's `IngestSourceIn`
//! whose provider publishes its signing scheme, and hookd's own
//! (`standard-webhooks`, `twilio`, `basic`, `api-key`, `hmac`). A source's
//! `config` is parsed once into a [`Scheme`], the check its requests must pass.

use serde_json::{Map, Value};

use crate::hmac::{Algorithm, Encoding, HmacConfig, HmacScheme};
use crate::schedule::{check_cron, PollConfig};
use crate::verify::{Scheme, SvixKey};

/// Svix's types that use a `SvixConfig` (Standard Webhooks signatures).
pub const SVIX_CONFIG_TYPES: [&str; 17] = [
    "svix",
    "beehiiv",
    "brex",
    "clerk",
    "guesty",
    "incident-io",
    "lithic",
    "nash",
    "pleo",
    "psi-fi",
    "replicate",
    "resend",
    "safebase",
    "sardine",
    "stych",
    "open-ai",
    "render",
];

/// Types whose provider signs in a way hookd does not check (not published,
/// or not yet implemented): refused at creation rather than accepted unverified.
pub const UNVERIFIED_TYPES: [&str; 5] = ["checkbook", "openclaw", "orum-io", "port-io", "vgs"];

/// Every other type hookd verifies.
pub const OTHER_TYPES: [&str; 26] = [
    "generic-webhook",
    "cron",
    "poll",
    "standard-webhooks",
    "stripe",
    "github",
    "shopify",
    "slack",
    "zoom",
    "meta",
    "hubspot",
    "docusign",
    "easypost",
    "segment",
    "veriff",
    "airwallex",
    "rutter",
    "nango",
    "panda-doc",
    "tailscale",
    "telnyx",
    "vapi",
    "adobe-sign",
    "twilio",
    "basic",
    "api-key",
];

/// hookd's own types: not in Svix's list, so the API shows them to Svix's
/// SDKs (which accept only Svix's types) as `generic-webhook`, with the real
/// type and configuration in the extension fields `hookdType`/`hookdConfig`.
pub const HOOKD_ONLY_TYPES: [&str; 6] = ["standard-webhooks", "twilio", "basic", "api-key", "hmac", "poll"];

/// Config fields never shown again once stored.
const SECRET_FIELDS: [&str; 10] =
    ["secret", "secrets", "password", "authToken", "key", "keys", "verifyToken", "token", "bearerToken", "headers"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceType(pub String);

impl SourceType {
    pub fn parse(t: &str) -> Result<SourceType, String> {
        if UNVERIFIED_TYPES.contains(&t) {
            return Err(format!(
                "type {t:?}: hookd does not verify this provider's signatures; use \"hmac\" with its parameters, \
                 or \"generic-webhook\" to accept unverified requests"
            ));
        }
        if SVIX_CONFIG_TYPES.contains(&t) || OTHER_TYPES.contains(&t) || t == "hmac" {
            Ok(SourceType(t.to_string()))
        } else {
            Err(format!("type {t:?} is not a source type hookd knows"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_svix_config(&self) -> bool {
        SVIX_CONFIG_TYPES.contains(&self.0.as_str()) || self.0 == "standard-webhooks"
    }
}

/// A source's type and configuration, checked.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub kind: SourceType,
    pub scheme: Scheme,
    /// `cron` sources: what they emit and when.
    pub cron: Option<CronConfig>,
    /// `poll` sources: what they fetch and how often.
    pub poll: Option<PollConfig>,
    /// `meta` sources: the token Meta's subscription handshake must show.
    pub verify_token: Option<String>,
    /// `adobe-sign`: the client id echoed on every answer.
    pub client_id: Option<String>,
    /// `zoom` and `slack`: the secret their handshakes are answered with.
    pub handshake_secret: Option<String>,
}

#[derive(Debug, Clone)]
pub struct CronConfig {
    pub schedule: String,
    pub payload: String,
    pub content_type: Option<String>,
}

fn text(config: &Map<String, Value>, field: &str) -> Result<Option<String>, String> {
    match config.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() <= 4096 => Ok(Some(s.clone())),
        Some(Value::String(_)) => Err(format!("config.{field}: at most 4096 characters")),
        Some(_) => Err(format!("config.{field}: must be a string")),
    }
}

fn required(config: &Map<String, Value>, field: &str) -> Result<String, String> {
    match text(config, field)? {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(format!("config.{field} is required for this type")),
    }
}

impl SourceConfig {
    /// Checks `config` for `kind` and builds its scheme.
    pub fn parse(kind: &str, config: &Value) -> Result<SourceConfig, String> {
        let kind = SourceType::parse(kind)?;
        let empty = Map::new();
        let c = match config {
            Value::Object(m) => m,
            Value::Null => &empty,
            _ => return Err("config must be an object".into()),
        };
        let mut out = SourceConfig {
            kind: kind.clone(),
            scheme: Scheme::Unverified,
            cron: None,
            poll: None,
            verify_token: None,
            client_id: None,
            handshake_secret: None,
        };
        let body = |alg, enc, header: &str, prefix: &str, secret: &str| {
            Scheme::Hmac(HmacScheme::body(alg, enc, header, prefix, secret))
        };
        out.scheme = match kind.as_str() {
            k if kind.is_svix_config() => {
                let secret = required(c, "secret")?;
                let key = SvixKey::parse(&secret).map_err(|e| format!("config.secret: {e} (for {k})"))?;
                Scheme::StandardWebhooks(vec![key])
            }
            "generic-webhook" => Scheme::Unverified,
            "cron" => {
                let schedule = required(c, "schedule")?;
                check_cron(&schedule).map_err(|e| format!("config.schedule: {e}"))?;
                let payload = required(c, "payload")?;
                let content_type = text(c, "contentType")?;
                let json = content_type.as_deref().is_none_or(|t| t.contains("json"));
                if json && serde_json::from_str::<serde::de::IgnoredAny>(&payload).is_err() {
                    return Err("config.payload: not JSON (set config.contentType for another format)".into());
                }
                out.cron = Some(CronConfig { schedule, payload, content_type });
                Scheme::Scheduled
            }
            "poll" => {
                out.poll = Some(PollConfig::parse(c)?);
                Scheme::Scheduled
            }
            "stripe" => {
                Scheme::Stripe { secret: required(c, "secret")?, header: "stripe-signature", tolerance: Some(300) }
            }
            "tailscale" => {
                let tolerance = match c.get("timestampGraceSeconds") {
                    None | Some(Value::Null) => None,
                    Some(v) => Some(
                        v.as_i64().filter(|t| *t >= 0).ok_or("config.timestampGraceSeconds: a number of seconds")?,
                    ),
                };
                Scheme::Stripe { secret: required(c, "secret")?, header: "tailscale-webhook-signature", tolerance }
            }
            "github" => match text(c, "secret")? {
                Some(s) => body(Algorithm::Sha256, Encoding::Hex, "x-hub-signature-256", "sha256=", &s),
                None => Scheme::Unverified,
            },
            "meta" => {
                out.verify_token = Some(required(c, "verifyToken")?);
                body(Algorithm::Sha256, Encoding::Hex, "x-hub-signature-256", "sha256=", &required(c, "secret")?)
            }
            "shopify" => {
                body(Algorithm::Sha256, Encoding::Base64, "x-shopify-hmac-sha256", "", &required(c, "secret")?)
            }
            "slack" => {
                let s = required(c, "secret")?;
                out.handshake_secret = Some(s.clone());
                Scheme::Hmac(
                    HmacScheme::body(Algorithm::Sha256, Encoding::Hex, "x-slack-signature", "v0=", &s).timestamped(
                        "x-slack-request-timestamp",
                        Some(300),
                        "v0:{timestamp}:{body}",
                    ),
                )
            }
            "zoom" => {
                let s = required(c, "secret")?;
                out.handshake_secret = Some(s.clone());
                Scheme::Hmac(
                    HmacScheme::body(Algorithm::Sha256, Encoding::Hex, "x-zm-signature", "v0=", &s).timestamped(
                        "x-zm-request-timestamp",
                        Some(300),
                        "v0:{timestamp}:{body}",
                    ),
                )
            }
            "hubspot" => match text(c, "secret")? {
                Some(s) => {
                    let mut h = HmacScheme::body(Algorithm::Sha256, Encoding::Base64, "x-hubspot-signature-v3", "", &s)
                        .timestamped("x-hubspot-request-timestamp", Some(300), "{method}{url}{body}{timestamp}");
                    h.timestamp_millis = true;
                    Scheme::Hmac(h)
                }
                None => Scheme::Unverified,
            },
            "docusign" => match text(c, "secret")? {
                Some(s) => body(Algorithm::Sha256, Encoding::Base64, "x-docusign-signature-1", "", &s),
                None => Scheme::Unverified,
            },
            "easypost" => match text(c, "secret")? {
                Some(s) => body(Algorithm::Sha256, Encoding::Hex, "x-hmac-signature", "hmac-sha256-hex=", &s),
                None => Scheme::Unverified,
            },
            "segment" => match text(c, "secret")? {
                Some(s) => body(Algorithm::Sha1, Encoding::Hex, "x-signature", "", &s),
                None => Scheme::Unverified,
            },
            "veriff" => body(Algorithm::Sha256, Encoding::Hex, "x-hmac-signature", "", &required(c, "secret")?),
            "airwallex" => Scheme::Hmac(
                HmacScheme::body(Algorithm::Sha256, Encoding::Hex, "x-signature", "", &required(c, "secret")?)
                    .timestamped("x-timestamp", None, "{timestamp}{body}"),
            ),
            "rutter" => {
                body(Algorithm::Sha256, Encoding::Base64, "x-rutter-signature", "sha256=", &required(c, "secret")?)
            }
            "nango" => body(Algorithm::Sha256, Encoding::Hex, "x-nango-hmac-sha256", "", &required(c, "secret")?),
            "panda-doc" => {
                let mut h = HmacScheme::body(Algorithm::Sha256, Encoding::Hex, "", "", &required(c, "secret")?);
                (h.header, h.query) = (None, Some("signature".into()));
                Scheme::Hmac(h)
            }
            "telnyx" => Scheme::Telnyx { public_key: crate::verify::parse_ed25519(&required(c, "publicKey")?)? },
            "vapi" => Scheme::HeaderEquals { header: "x-vapi-secret", value: required(c, "secret")? },
            "adobe-sign" => {
                let id = required(c, "clientId")?;
                out.client_id = Some(id.clone());
                Scheme::HeaderEquals { header: "x-adobesign-clientid", value: id }
            }
            "twilio" => Scheme::Twilio { auth_token: required(c, "authToken")? },
            "basic" => Scheme::Basic { username: required(c, "username")?, password: required(c, "password")? },
            "api-key" => {
                let header = text(c, "header")?.map(|h| h.to_ascii_lowercase());
                let query = text(c, "query")?;
                if header.is_some() == query.is_some() {
                    return Err("config: give exactly one of header and query (where the key travels)".into());
                }
                if let Some(h) = &header {
                    crate::hmac::check_header_name("config.header", h)?;
                }
                let mut keys: Vec<String> = match c.get("keys") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(v) => serde_json::from_value(v.clone()).map_err(|_| "config.keys: a list of strings")?,
                };
                keys.extend(text(c, "key")?);
                if keys.is_empty() || keys.len() > 8 || keys.iter().any(|k| k.is_empty()) {
                    return Err("config: give key, or keys (1 to 8, for rotation)".into());
                }
                Scheme::ApiKey { header, query, keys }
            }
            "hmac" => {
                let parsed: HmacConfig =
                    serde_json::from_value(Value::Object(c.clone())).map_err(|e| format!("config: {e}"))?;
                Scheme::Hmac(HmacScheme::from_config(parsed).map_err(|e| format!("config.{e}"))?)
            }
            other => return Err(format!("type {other:?} is not a source type hookd knows")),
        };
        Ok(out)
    }
}

/// The configuration as the API shows it: without its secrets (and a URL
/// without its credentials or query values, which may hold a key).
pub fn redacted(config: &Value) -> Value {
    match config {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !SECRET_FIELDS.contains(&k.as_str()))
                .map(|(k, v)| match (k.as_str(), v) {
                    ("url", Value::String(u)) => (k.clone(), Value::String(redacted_url(u))),
                    _ => (k.clone(), v.clone()),
                })
                .collect(),
        ),
        _ => Value::Object(Map::new()),
    }
}

/// A URL without user info, its query values replaced by `***`.
pub fn redacted_url(u: &str) -> String {
    let Ok(mut url) = url::Url::parse(u) else { return String::new() };
    let _ = url.set_username("");
    let _ = url.set_password(None);
    if url.query().is_some() {
        let names: Vec<String> = url.query_pairs().map(|(k, _)| k.into_owned()).collect();
        url.query_pairs_mut().clear().extend_pairs(names.iter().map(|k| (k.as_str(), "***")));
    }
    url.to_string()
}

/// A configuration written back without its secrets (as an SDK that read it
/// sends it, the secrets having never been shown) keeps the stored ones: a
/// secret is removed only by sending it as `null`. For a write of the same
/// type; explicit `null`s are then dropped.
pub fn keep_secrets(new: &mut Value, stored: &Value) {
    let (Value::Object(new), Value::Object(stored)) = (new, stored) else { return };
    for field in SECRET_FIELDS {
        if let (false, Some(v)) = (new.contains_key(field), stored.get(field)) {
            new.insert(field.to_string(), v.clone());
        }
    }
    new.retain(|_, v| !v.is_null());
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_svix_type_is_known_or_refused_by_name() {
        // Svix's IngestSourceIn lists 43 types; OTHER_TYPES holds five of ours
        // (standard-webhooks, twilio, basic, api-key, poll; hmac is apart).
        let svix = SVIX_CONFIG_TYPES.len() + OTHER_TYPES.len() - 5 + UNVERIFIED_TYPES.len();
        assert_eq!(svix, 43);
        assert!(SourceType::parse("vgs").unwrap_err().contains("hmac"));
        assert!(SourceType::parse("nope").unwrap_err().contains("not a source type"));
    }

    #[test]
    fn required_secrets_are_required_and_never_shown() {
        assert!(SourceConfig::parse("stripe", &json!({})).unwrap_err().contains("config.secret"));
        assert!(SourceConfig::parse("svix", &json!({"secret": "nope"})).unwrap_err().contains("config.secret"));
        let c = json!({"header": "X-Key", "keys": ["a", "b"], "secret": "x"});
        assert!(SourceConfig::parse("api-key", &c).is_ok());
        assert_eq!(redacted(&c), json!({"header": "X-Key"}));
        let poll = json!({"url": "https://u:p@api.example.com/v1/sms?api_key=k&page=2", "bearerToken": "t"});
        assert_eq!(redacted(&poll), json!({"url": "https://api.example.com/v1/sms?api_key=***&page=***"}));
    }

    #[test]
    fn a_config_written_back_without_its_secrets_keeps_them() {
        let stored = json!({"secret": "s", "header": "x"});
        let mut again = json!({"header": "y"});
        keep_secrets(&mut again, &stored);
        assert_eq!(again, json!({"header": "y", "secret": "s"}));
        let mut removed = json!({"secret": null});
        keep_secrets(&mut removed, &stored);
        assert_eq!(removed, json!({}));
    }
}
