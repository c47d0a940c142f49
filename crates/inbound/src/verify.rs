//! Checking a request against its source's scheme. Every comparison of a
//! signature or key is in constant time, and a signature matches only in full.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use hookd_core::signing::{PublicKey, Secret};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::hmac::{self, Algorithm, HmacScheme};
use crate::{Incoming, Rejection};

/// What a source's requests must show.
#[derive(Debug, Clone)]
pub enum Scheme {
    /// Accepted as they come (`generic-webhook`, GitHub without a secret…).
    Unverified,
    /// Nothing is received: the source emits on a schedule.
    /// `cron` and `poll`: nothing is received.
    Scheduled,
    /// Standard Webhooks (`webhook-*` or `svix-*` headers; `v1` and `v1a`).
    StandardWebhooks(Vec<SvixKey>),
    /// `t=…,v1=…` over `{t}.{body}`, keyed with the whole secret (Stripe, Tailscale).
    Stripe {
        secret: String,
        header: &'static str,
        tolerance: Option<i64>,
    },
    Hmac(HmacScheme),
    /// HMAC-SHA1 over the URL and the sorted form parameters.
    Twilio {
        auth_token: String,
    },
    Basic {
        username: String,
        password: String,
    },
    ApiKey {
        header: Option<String>,
        query: Option<String>,
        keys: Vec<String>,
    },
    /// Ed25519 over `{timestamp}|{body}`.
    Telnyx {
        public_key: VerifyingKey,
    },
    /// A header that must carry a shared value (Vapi's secret, Adobe Sign's client id).
    HeaderEquals {
        header: &'static str,
        value: String,
    },
}

/// A Standard Webhooks key: a `whsec_` secret, or a `whpk_` public key for `v1a`.
#[derive(Debug, Clone)]
pub enum SvixKey {
    Secret(Secret),
    Public(PublicKey),
}

impl SvixKey {
    pub fn parse(s: &str) -> Result<SvixKey, String> {
        if s.starts_with("whpk_") {
            return PublicKey::parse(s).map(SvixKey::Public).map_err(|e| e.to_string());
        }
        Secret::parse(s).map(SvixKey::Secret).map_err(|e| e.to_string())
    }
}

const TOLERANCE_SECS: i64 = 300;

impl Scheme {
    pub fn verify(&self, req: &Incoming) -> Result<(), Rejection> {
        match self {
            Scheme::Unverified => Ok(()),
            Scheme::Scheduled => Err(Rejection::new("this source receives nothing: it runs on its schedule")),
            Scheme::StandardWebhooks(keys) => standard_webhooks(keys, req),
            Scheme::Stripe { secret, header, tolerance } => stripe(secret, header, *tolerance, req),
            Scheme::Hmac(h) => h.verify(req),
            Scheme::Twilio { auth_token } => twilio(auth_token, req),
            Scheme::Basic { username, password } => basic(username, password, req),
            Scheme::ApiKey { header, query, keys } => {
                let given = match (header, query) {
                    (Some(h), _) => req.header(h).map(str::to_string),
                    (None, Some(q)) => req.query_param(q),
                    _ => None,
                };
                let given = given.ok_or_else(|| Rejection::new("no API key in the request"))?;
                keys.iter()
                    .any(|k| eq(k.as_bytes(), given.as_bytes()))
                    .then_some(())
                    .ok_or_else(|| Rejection::new("wrong API key"))
            }
            Scheme::Telnyx { public_key } => telnyx(public_key, req),
            Scheme::HeaderEquals { header, value } => {
                let given = req.header(header).ok_or_else(|| Rejection::new(format!("{header} is missing")))?;
                eq(value.as_bytes(), given.as_bytes())
                    .then_some(())
                    .ok_or_else(|| Rejection::new(format!("wrong {header}")))
            }
        }
    }
}

fn eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

fn standard_webhooks(keys: &[SvixKey], req: &Incoming) -> Result<(), Rejection> {
    let pick = |name: &str| req.header(&format!("webhook-{name}")).or_else(|| req.header(&format!("svix-{name}")));
    let (Some(id), Some(ts), Some(sig)) = (pick("id"), pick("timestamp"), pick("signature")) else {
        return Err(Rejection::new("webhook-id, webhook-timestamp and webhook-signature are required"));
    };
    let mut last = Rejection::new("signature mismatch");
    for key in keys {
        let checked = match key {
            SvixKey::Secret(s) => s.verify(id, ts, sig, req.body, req.now_secs),
            SvixKey::Public(p) => p.verify(id, ts, sig, req.body, req.now_secs),
        };
        match checked {
            Ok(()) => return Ok(()),
            Err(e) => last = Rejection::new(format!("webhook-signature: {e}")),
        }
    }
    Err(last)
}

fn stripe(secret: &str, header: &str, tolerance: Option<i64>, req: &Incoming) -> Result<(), Rejection> {
    let value = req.header(header).ok_or_else(|| Rejection::new(format!("{header} is missing")))?;
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for item in value.split(',') {
        match item.trim().split_once('=') {
            Some(("t", t)) => timestamp = Some(t),
            Some(("v1", s)) => signatures.extend(hmac::decode_hex(s)),
            _ => {}
        }
    }
    let t = timestamp.ok_or_else(|| Rejection::new(format!("{header} has no t=")))?;
    hmac::check_timestamp(t, tolerance, false, req.now_secs)?;
    let mut content = Vec::with_capacity(t.len() + 1 + req.body.len());
    content.extend_from_slice(t.as_bytes());
    content.push(b'.');
    content.extend_from_slice(req.body);
    let expected = hmac::mac(Algorithm::Sha256, secret.as_bytes(), &content);
    if signatures.iter().any(|s| eq(s, &expected)) {
        Ok(())
    } else {
        Err(Rejection::new(format!("signature mismatch in {header}")))
    }
}

fn twilio(token: &str, req: &Incoming) -> Result<(), Rejection> {
    let given = req.header("x-twilio-signature").ok_or_else(|| Rejection::new("x-twilio-signature is missing"))?;
    let given = B64.decode(given.trim()).map_err(|_| Rejection::new("x-twilio-signature is not base64"))?;
    let mut content = req.url.as_bytes().to_vec();
    if let Some(body_hash) = req.query_param("bodySHA256") {
        // JSON bodies: the URL (with the body's hash) is signed.
        let actual = hmac::hex(&Sha256::digest(req.body));
        if !eq(actual.as_bytes(), body_hash.to_ascii_lowercase().as_bytes()) {
            return Err(Rejection::new("bodySHA256 does not match the body"));
        }
    } else {
        let form = req.header("content-type").is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
        if form {
            let mut params: Vec<(String, String)> = url::form_urlencoded::parse(req.body).into_owned().collect();
            // Sorted by name, then value; a field repeated with the same value
            // counts once (as Twilio's own libraries sign).
            params.sort();
            params.dedup();
            for (k, v) in params {
                content.extend_from_slice(k.as_bytes());
                content.extend_from_slice(v.as_bytes());
            }
        }
    }
    let expected = hmac::mac(Algorithm::Sha1, token.as_bytes(), &content);
    if eq(&given, &expected) {
        Ok(())
    } else {
        Err(Rejection::new("signature mismatch in x-twilio-signature (is --public-url the URL Twilio calls?)"))
    }
}

fn basic(username: &str, password: &str, req: &Incoming) -> Result<(), Rejection> {
    let given = req
        .header("authorization")
        .and_then(|a| a.strip_prefix("Basic ").or_else(|| a.strip_prefix("basic ")))
        .and_then(|b| B64.decode(b.trim()).ok())
        .ok_or_else(|| Rejection::new("basic credentials are required"))?;
    let expected = format!("{username}:{password}");
    if eq(expected.as_bytes(), &given) {
        Ok(())
    } else {
        Err(Rejection::new("wrong credentials"))
    }
}

fn telnyx(key: &VerifyingKey, req: &Incoming) -> Result<(), Rejection> {
    let sig =
        req.header("telnyx-signature-ed25519").ok_or_else(|| Rejection::new("telnyx-signature-ed25519 is missing"))?;
    let ts = req.header("telnyx-timestamp").ok_or_else(|| Rejection::new("telnyx-timestamp is missing"))?;
    hmac::check_timestamp(ts, Some(TOLERANCE_SECS), false, req.now_secs)?;
    let sig = B64
        .decode(sig.trim())
        .ok()
        .and_then(|s| Signature::from_slice(&s).ok())
        .ok_or_else(|| Rejection::new("telnyx-signature-ed25519 is not a signature"))?;
    let mut content = format!("{}|", ts.trim()).into_bytes();
    content.extend_from_slice(req.body);
    key.verify(&content, &sig).map_err(|_| Rejection::new("signature mismatch in telnyx-signature-ed25519"))
}

/// A base64 Ed25519 public key (32 bytes), as Telnyx shows it.
pub fn parse_ed25519(s: &str) -> Result<VerifyingKey, String> {
    B64.decode(s.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .and_then(|b| VerifyingKey::from_bytes(&b).ok())
        .ok_or_else(|| "config.publicKey: not a base64 Ed25519 public key".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SourceConfig;
    use serde_json::json;

    fn req<'a>(headers: &'a [(String, String)], body: &'a [u8], url: &'a str, query: &'a str) -> Incoming<'a> {
        Incoming { method: "POST", url, query, headers, body, now_secs: 1_700_000_000 }
    }

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn stripe_keys_the_mac_with_the_whole_secret() {
        let c = SourceConfig::parse("stripe", &json!({"secret": "whsec_test"})).unwrap();
        let body = br#"{"id":"evt_1","type":"charge.succeeded"}"#;
        let mut content = b"1700000000.".to_vec();
        content.extend_from_slice(body);
        let sig = hmac::hex(&hmac::mac(Algorithm::Sha256, b"whsec_test", &content));
        let headers = h(&[("stripe-signature", &format!("t=1700000000,v1=deadbeef,v1={sig}"))]);
        assert_eq!(c.scheme.verify(&req(&headers, body, "", "")), Ok(()));
        let stale = h(&[("stripe-signature", &format!("t=1699990000,v1={sig}"))]);
        assert!(c.scheme.verify(&req(&stale, body, "", "")).is_err());
    }

    #[test]
    fn twilio_signs_the_url_and_sorted_form_parameters() {
        // The example in Twilio's security documentation (signed by its Python library).
        let c = SourceConfig::parse("twilio", &json!({"authToken": "12345"})).unwrap();
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
        let body = b"CallSid=CA1234567890ABCDE&Caller=%2B12349013030&Digits=1234&From=%2B12349013030&To=%2B18005551212";
        let headers = h(&[
            ("content-type", "application/x-www-form-urlencoded"),
            ("x-twilio-signature", "0/KCTR6DLpKmkAf8muzZqo1nDgQ="),
        ]);
        assert_eq!(c.scheme.verify(&req(&headers, body, url, "foo=1&bar=2")), Ok(()));
        let tampered =
            b"CallSid=CA1234567890ABCDE&Caller=%2B12349013030&Digits=1235&From=%2B12349013030&To=%2B18005551212";
        assert!(c.scheme.verify(&req(&headers, tampered, url, "foo=1&bar=2")).is_err());
    }

    #[test]
    fn basic_and_api_keys_compare_in_full() {
        let c = SourceConfig::parse("basic", &json!({"username": "u", "password": "p"})).unwrap();
        let ok = h(&[("authorization", &format!("Basic {}", B64.encode("u:p")))]);
        assert_eq!(c.scheme.verify(&req(&ok, b"", "", "")), Ok(()));
        let bad = h(&[("authorization", &format!("Basic {}", B64.encode("u:")))]);
        assert!(c.scheme.verify(&req(&bad, b"", "", "")).is_err());
        let k = SourceConfig::parse("api-key", &json!({"query": "key", "keys": ["k1", "k2"]})).unwrap();
        assert_eq!(k.scheme.verify(&req(&[], b"", "", "key=k2")), Ok(()));
        assert!(k.scheme.verify(&req(&[], b"", "", "key=k")).is_err());
    }
}
