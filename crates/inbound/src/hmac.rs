//! The configurable HMAC scheme: the `hmac` source type, and the provider
//! presets built on it (GitHub, Shopify, Slack, Zoom, Meta…). A scheme names
//! the algorithm, where the signature travels (a header or a query parameter)
//! and how it is written (hex or base64, after a prefix such as `sha256=`),
//! the signed content as a template (`{timestamp}.{body}`), and optionally a
//! timestamp header with a tolerance. Several secrets may be valid at once,
//! for rotation; a signature matches only in full, compared in constant time.

use ::hmac::{Hmac, Mac};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::{Incoming, Rejection};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Sha1,
    Sha256,
    Sha512,
    Md5,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Hex,
    Base64,
}

/// One piece of the signed content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Literal(String),
    Body,
    Timestamp,
    Method,
    Url,
}

#[derive(Debug, Clone)]
pub struct HmacScheme {
    pub algorithm: Algorithm,
    pub encoding: Encoding,
    /// Header (lower case) that carries the signature…
    pub header: Option<String>,
    /// …or query parameter.
    pub query: Option<String>,
    pub prefix: String,
    pub content: Vec<Part>,
    /// Header (lower case) that carries the timestamp, when the scheme has one.
    pub timestamp_header: Option<String>,
    /// Largest distance of the timestamp from now; `None`: not checked.
    pub tolerance_secs: Option<i64>,
    pub timestamp_millis: bool,
    pub secrets: Vec<Vec<u8>>,
}

/// The `config` of an `hmac` source, as the API takes it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HmacConfig {
    #[serde(default)]
    pub algorithm: Option<String>,
    #[serde(default)]
    pub encoding: Option<String>,
    #[serde(default)]
    pub header: Option<String>,
    #[serde(default)]
    pub query: Option<String>,
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub signed_content: Option<String>,
    #[serde(default)]
    pub timestamp_header: Option<String>,
    #[serde(default)]
    pub tolerance_seconds: Option<i64>,
    /// `s` (the default) or `ms`.
    #[serde(default)]
    pub timestamp_unit: Option<String>,
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub secrets: Option<Vec<String>>,
    /// How the secrets are written: `utf8` (used as given, the default),
    /// `base64` or `hex`.
    #[serde(default)]
    pub secret_encoding: Option<String>,
}

const MAX_SECRETS: usize = 8;
const MAX_TEMPLATE: usize = 256;

impl HmacScheme {
    /// A preset: a header carrying `prefix` + the MAC of the body.
    pub fn body(algorithm: Algorithm, encoding: Encoding, header: &str, prefix: &str, secret: &str) -> Self {
        HmacScheme {
            algorithm,
            encoding,
            header: Some(header.to_string()),
            query: None,
            prefix: prefix.to_string(),
            content: vec![Part::Body],
            timestamp_header: None,
            tolerance_secs: None,
            timestamp_millis: false,
            secrets: vec![secret.as_bytes().to_vec()],
        }
    }

    /// With a timestamp header, checked against a tolerance, and a template.
    pub fn timestamped(mut self, timestamp_header: &str, tolerance: Option<i64>, template: &str) -> Self {
        self.timestamp_header = Some(timestamp_header.to_string());
        self.tolerance_secs = tolerance;
        self.content = parse_template(template).expect("preset templates are valid");
        self
    }

    pub fn from_config(c: HmacConfig) -> Result<Self, String> {
        let algorithm = match c.algorithm.as_deref().unwrap_or("sha256") {
            "sha1" => Algorithm::Sha1,
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            "md5" => Algorithm::Md5,
            other => return Err(format!("algorithm: {other:?} is not one of sha1, sha256, sha512, md5")),
        };
        let encoding = match c.encoding.as_deref().unwrap_or("hex") {
            "hex" => Encoding::Hex,
            "base64" => Encoding::Base64,
            other => return Err(format!("encoding: {other:?} is not hex or base64")),
        };
        let header = c.header.map(|h| h.to_ascii_lowercase());
        if header.is_some() == c.query.is_some() {
            return Err("give exactly one of header (the signature's header) and query (its query parameter)".into());
        }
        if let Some(h) = &header {
            check_header_name("header", h)?;
        }
        let template = c.signed_content.as_deref().unwrap_or("{body}");
        if template.len() > MAX_TEMPLATE {
            return Err(format!("signedContent: at most {MAX_TEMPLATE} characters"));
        }
        let content = parse_template(template).map_err(|e| format!("signedContent: {e}"))?;
        let timestamp_header = c.timestamp_header.map(|h| h.to_ascii_lowercase());
        if let Some(h) = &timestamp_header {
            check_header_name("timestampHeader", h)?;
        }
        if content.contains(&Part::Timestamp) && timestamp_header.is_none() {
            return Err("signedContent uses {timestamp}: give timestampHeader".into());
        }
        if c.tolerance_seconds.is_some_and(|t| !(1..=86_400).contains(&t)) {
            return Err("toleranceSeconds: between 1 and 86400".into());
        }
        let timestamp_millis = match c.timestamp_unit.as_deref().unwrap_or("s") {
            "s" => false,
            "ms" => true,
            other => return Err(format!("timestampUnit: {other:?} is not s or ms")),
        };
        let mut given: Vec<String> = c.secrets.unwrap_or_default();
        given.extend(c.secret);
        if given.is_empty() || given.len() > MAX_SECRETS {
            return Err(format!("give secret, or secrets (1 to {MAX_SECRETS}, for rotation)"));
        }
        let encoding_of_secrets = c.secret_encoding.as_deref().unwrap_or("utf8");
        let secrets = given.iter().map(|s| decode_secret(s, encoding_of_secrets)).collect::<Result<Vec<_>, _>>()?;
        Ok(HmacScheme {
            algorithm,
            encoding,
            header,
            query: c.query,
            prefix: c.prefix.unwrap_or_default(),
            content,
            timestamp_header,
            tolerance_secs: c.tolerance_seconds,
            timestamp_millis,
            secrets,
        })
    }

    pub fn verify(&self, req: &Incoming) -> Result<(), Rejection> {
        let given = match (&self.header, &self.query) {
            (Some(h), _) => req.header(h).map(str::to_string),
            (None, Some(q)) => req.query_param(q),
            (None, None) => None,
        };
        let where_ = self.header.as_deref().or(self.query.as_deref()).unwrap_or("signature");
        let given = given.ok_or_else(|| Rejection::new(format!("no signature: {where_} is missing")))?;
        let timestamp = match &self.timestamp_header {
            Some(h) => {
                let ts = req.header(h).ok_or_else(|| Rejection::new(format!("no timestamp: {h} is missing")))?;
                check_timestamp(ts, self.tolerance_secs, self.timestamp_millis, req.now_secs)?;
                ts.trim()
            }
            None => "",
        };
        let content = self.content_of(req, timestamp);
        let candidates: Vec<Vec<u8>> = given
            .split([',', ' '])
            .filter_map(|piece| piece.trim().strip_prefix(self.prefix.as_str()))
            .filter_map(|sig| match self.encoding {
                Encoding::Hex => decode_hex(sig),
                Encoding::Base64 => B64.decode(sig).ok(),
            })
            .collect();
        for secret in &self.secrets {
            let expected = mac(self.algorithm, secret, &content);
            if candidates.iter().any(|c| c.len() == expected.len() && bool::from(c.ct_eq(&expected))) {
                return Ok(());
            }
        }
        Err(Rejection::new(format!("signature mismatch in {where_}")))
    }

    fn content_of(&self, req: &Incoming, timestamp: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(req.body.len() + 64);
        for part in &self.content {
            match part {
                Part::Literal(s) => out.extend_from_slice(s.as_bytes()),
                Part::Body => out.extend_from_slice(req.body),
                Part::Timestamp => out.extend_from_slice(timestamp.as_bytes()),
                Part::Method => out.extend_from_slice(req.method.as_bytes()),
                Part::Url => out.extend_from_slice(req.url.as_bytes()),
            }
        }
        out
    }
}

/// Parses `{timestamp}.{body}`: `{body}`, `{timestamp}`, `{method}` and `{url}`
/// are replaced, everything else is literal.
pub fn parse_template(t: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut rest = t;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            parts.push(Part::Literal(rest[..open].to_string()));
        }
        let close = rest[open..].find('}').ok_or_else(|| format!("unclosed {{ at {}", t.len() - rest.len() + open))?;
        parts.push(match &rest[open + 1..open + close] {
            "body" => Part::Body,
            "timestamp" => Part::Timestamp,
            "method" => Part::Method,
            "url" => Part::Url,
            other => {
                return Err(format!(
                    "unknown placeholder {{{other}}}: use {{body}}, {{timestamp}}, {{method}}, {{url}}"
                ))
            }
        });
        rest = &rest[open + close + 1..];
    }
    if !rest.is_empty() {
        parts.push(Part::Literal(rest.to_string()));
    }
    if !parts.contains(&Part::Body) {
        return Err("the signed content must include {body}".into());
    }
    Ok(parts)
}

/// Checks a timestamp header against the tolerance (when there is one).
pub fn check_timestamp(ts: &str, tolerance: Option<i64>, millis: bool, now_secs: i64) -> Result<(), Rejection> {
    let value: i64 = ts.trim().parse().map_err(|_| Rejection::new(format!("timestamp {ts:?} is not a number")))?;
    let secs = if millis { value / 1000 } else { value };
    if let Some(tolerance) = tolerance {
        if (now_secs - secs).abs() > tolerance {
            return Err(Rejection::new(format!("timestamp outside the {tolerance}s tolerance (replay protection)")));
        }
    }
    Ok(())
}

pub fn mac(algorithm: Algorithm, key: &[u8], content: &[u8]) -> Vec<u8> {
    fn run<M: Mac + ::hmac::digest::KeyInit>(key: &[u8], content: &[u8]) -> Vec<u8> {
        let mut m = <M as Mac>::new_from_slice(key).expect("HMAC takes any key length");
        m.update(content);
        m.finalize().into_bytes().to_vec()
    }
    match algorithm {
        Algorithm::Sha1 => run::<Hmac<sha1::Sha1>>(key, content),
        Algorithm::Sha256 => run::<Hmac<sha2::Sha256>>(key, content),
        Algorithm::Sha512 => run::<Hmac<sha2::Sha512>>(key, content),
        Algorithm::Md5 => run::<Hmac<md5::Md5>>(key, content),
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok()).collect()
}

fn decode_secret(s: &str, encoding: &str) -> Result<Vec<u8>, String> {
    let bytes = match encoding {
        "utf8" => Some(s.as_bytes().to_vec()),
        "base64" => B64.decode(s).ok(),
        "hex" => decode_hex(s),
        other => return Err(format!("secretEncoding: {other:?} is not utf8, base64 or hex")),
    };
    match bytes {
        Some(b) if !b.is_empty() && b.len() <= 1024 => Ok(b),
        _ => Err(format!("a secret is not valid {encoding} of 1 to 1024 bytes")),
    }
}

pub fn check_header_name(field: &str, h: &str) -> Result<(), String> {
    let ok = !h.is_empty() && h.len() <= 128 && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!("{field}: {h:?} is not a header name"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incoming<'a>(headers: &'a [(String, String)], body: &'a [u8]) -> Incoming<'a> {
        Incoming { method: "POST", url: "https://h/x", query: "", headers, body, now_secs: 1_700_000_000 }
    }

    #[test]
    fn a_timestamped_template_signs_timestamp_and_body() {
        let c: HmacConfig = serde_json::from_value(serde_json::json!({
            "algorithm": "sha512", "encoding": "base64", "header": "X-Sig", "prefix": "v1=",
            "signedContent": "{timestamp}.{body}", "timestampHeader": "X-Ts", "toleranceSeconds": 300,
            "secrets": ["old", "new"]
        }))
        .unwrap();
        let s = HmacScheme::from_config(c).unwrap();
        let sig = B64.encode(mac(Algorithm::Sha512, b"new", b"1700000010.{\"a\":1}"));
        let headers = vec![("x-sig".to_string(), format!("v1={sig}")), ("x-ts".to_string(), "1700000010".to_string())];
        assert_eq!(s.verify(&incoming(&headers, b"{\"a\":1}")), Ok(()));
        // The body changed: no match.
        assert!(s.verify(&incoming(&headers, b"{\"a\":2}")).is_err());
        // Too old.
        let old = vec![headers[0].clone(), ("x-ts".to_string(), "1699990000".to_string())];
        assert!(s.verify(&incoming(&old, b"{\"a\":1}")).unwrap_err().0.contains("tolerance"));
        // Truncated.
        let cut = vec![("x-sig".to_string(), format!("v1={}", &sig[..20])), headers[1].clone()];
        assert!(s.verify(&incoming(&cut, b"{\"a\":1}")).is_err());
    }

    #[test]
    fn bad_configurations_say_what_is_wrong() {
        let bad = |v: serde_json::Value| HmacScheme::from_config(serde_json::from_value(v).unwrap()).unwrap_err();
        assert!(bad(serde_json::json!({"header": "x", "secret": "s", "algorithm": "sha3"})).contains("algorithm"));
        assert!(bad(serde_json::json!({"secret": "s"})).contains("exactly one"));
        assert!(bad(serde_json::json!({"header": "x", "secret": "s", "signedContent": "{ts}.{body}"})).contains("{ts}"));
        assert!(bad(serde_json::json!({"header": "x", "secret": "s", "signedContent": "{timestamp}.{body}"}))
            .contains("timestampHeader"));
        assert!(bad(serde_json::json!({"header": "x"})).contains("secret"));
    }

    #[test]
    fn md5_and_sha1_match_known_vectors() {
        // RFC 2202 test case 2.
        assert_eq!(
            hex(&mac(Algorithm::Md5, b"Jefe", b"what do ya want for nothing?")),
            "750c783e6ab0b503eaa86e310a5db738"
        );
        assert_eq!(
            hex(&mac(Algorithm::Sha1, b"Jefe", b"what do ya want for nothing?")),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
    }
}
