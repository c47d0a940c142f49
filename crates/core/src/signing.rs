//! Standard Webhooks signing (the scheme behind Svix's `webhook-signature`).
//!
//! The signed content is "{msg_id}.{timestamp}.{body}". A symmetric secret
//! (`whsec_` + base64 of the key) signs it as `v1,` + base64(HMAC-SHA256); an
//! asymmetric one (`whsk_` + base64 of an Ed25519 seed) as `v1a,` + base64 of the
//! Ed25519 signature, which receivers check with the public key (`whpk_` +
//! base64). Receivers accept a request when any space-separated signature
//! matches, so during a secret rotation the request carries one per valid secret.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

const PREFIX: &str = "whsec_";
const SECRET_KEY_PREFIX: &str = "whsk_";
const PUBLIC_KEY_PREFIX: &str = "whpk_";
/// Bytes of key material in a generated secret (as Svix generates).
const GENERATED_KEY_BYTES: usize = 24;
/// Accepted key sizes, in bytes, for user-supplied secrets.
const MIN_KEY_BYTES: usize = 24;
const MAX_KEY_BYTES: usize = 75;
/// How far a timestamp may be from the verifier's clock (the spec's tolerance).
pub const TIMESTAMP_TOLERANCE_SECS: i64 = 5 * 60;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SigningError {
    #[error(
        "secret must be `whsec_` followed by base64 of 24 to 75 bytes, or `whsk_` followed by base64 of a \
         32-byte Ed25519 key"
    )]
    BadSecret,
    #[error("public key must be `whpk_` followed by base64 of a 32-byte Ed25519 public key")]
    BadPublicKey,
    #[error("no matching signature")]
    NoMatch,
    #[error("timestamp is missing, malformed or outside the 5 minute tolerance")]
    BadTimestamp,
}

/// Which kind of key signs: HMAC (`v1`) or Ed25519 (`v1a`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Hmac,
    Ed25519,
}

#[derive(Clone)]
enum Key {
    Hmac(Vec<u8>),
    Ed25519(Box<SigningKey>),
}

/// An endpoint signing secret. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct Secret {
    key: Key,
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        match (&self.key, &other.key) {
            (Key::Hmac(a), Key::Hmac(b)) => bool::from(a.ct_eq(b)),
            (Key::Ed25519(a), Key::Ed25519(b)) => bool::from(a.to_bytes().ct_eq(&b.to_bytes())),
            _ => false,
        }
    }
}

impl Eq for Secret {}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(****)")
    }
}

impl Secret {
    /// A fresh random symmetric secret.
    pub fn generate() -> Self {
        Secret::generate_of(KeyType::Hmac)
    }

    /// A fresh random secret of the given kind.
    pub fn generate_of(kind: KeyType) -> Self {
        match kind {
            KeyType::Hmac => {
                let key: [u8; GENERATED_KEY_BYTES] = rand::random();
                Secret { key: Key::Hmac(key.to_vec()) }
            }
            KeyType::Ed25519 => {
                let seed: [u8; 32] = rand::random();
                Secret { key: Key::Ed25519(Box::new(SigningKey::from_bytes(&seed))) }
            }
        }
    }

    /// Parses `whsec_<base64>` (the prefix is optional, as Svix allows) or
    /// `whsk_<base64>` (an Ed25519 seed, or seed and public key: 32 or 64 bytes).
    pub fn parse(s: &str) -> Result<Self, SigningError> {
        if let Some(b64) = s.strip_prefix(SECRET_KEY_PREFIX) {
            let bytes = B64.decode(b64).map_err(|_| SigningError::BadSecret)?;
            let seed: [u8; 32] = match bytes.len() {
                32 | 64 => bytes[..32].try_into().expect("32 bytes"),
                _ => return Err(SigningError::BadSecret),
            };
            let key = SigningKey::from_bytes(&seed);
            if bytes.len() == 64 && key.verifying_key().as_bytes()[..] != bytes[32..] {
                return Err(SigningError::BadSecret);
            }
            return Ok(Secret { key: Key::Ed25519(Box::new(key)) });
        }
        let b64 = s.strip_prefix(PREFIX).unwrap_or(s);
        let key = B64.decode(b64).map_err(|_| SigningError::BadSecret)?;
        if !(MIN_KEY_BYTES..=MAX_KEY_BYTES).contains(&key.len()) {
            return Err(SigningError::BadSecret);
        }
        Ok(Secret { key: Key::Hmac(key) })
    }

    pub fn key_type(&self) -> KeyType {
        match self.key {
            Key::Hmac(_) => KeyType::Hmac,
            Key::Ed25519(_) => KeyType::Ed25519,
        }
    }

    /// The `whsec_…` (or `whsk_…`) form shown to users and stored.
    pub fn expose(&self) -> String {
        match &self.key {
            Key::Hmac(k) => format!("{PREFIX}{}", B64.encode(k)),
            Key::Ed25519(k) => format!("{SECRET_KEY_PREFIX}{}", B64.encode(k.to_bytes())),
        }
    }

    /// For an Ed25519 secret, the public key receivers verify with (`whpk_…`).
    pub fn public_key(&self) -> Option<String> {
        match &self.key {
            Key::Hmac(_) => None,
            Key::Ed25519(k) => Some(format!("{PUBLIC_KEY_PREFIX}{}", B64.encode(k.verifying_key().as_bytes()))),
        }
    }

    /// `v1,<base64 signature>` (or `v1a,…`) for one request.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        match &self.key {
            Key::Hmac(k) => {
                let mut out = String::with_capacity(3 + 44);
                out.push_str("v1,");
                B64.encode_string(mac(k, msg_id, timestamp, body), &mut out);
                out
            }
            Key::Ed25519(k) => {
                let signature = k.sign(&signed_content(msg_id, timestamp, body));
                format!("v1a,{}", B64.encode(signature.to_bytes()))
            }
        }
    }

    /// Receiver-side check of a `webhook-signature` header value: any `v1,`
    /// (or, for an Ed25519 secret, `v1a,`) entry must match in full (constant
    /// time; a truncated signature never matches) and the timestamp must be
    /// within the tolerance of `now_secs`.
    pub fn verify(
        &self,
        msg_id: &str,
        timestamp: &str,
        signatures: &str,
        body: &[u8],
        now_secs: i64,
    ) -> Result<(), SigningError> {
        let ts = checked_timestamp(timestamp, now_secs)?;
        let found = match &self.key {
            Key::Hmac(k) => {
                let expected = mac(k, msg_id, ts, body);
                signatures.split(' ').any(|entry| {
                    entry
                        .strip_prefix("v1,")
                        .and_then(|sig| B64.decode(sig).ok())
                        .is_some_and(|sig| sig.len() == expected.len() && bool::from(sig.ct_eq(&expected)))
                })
            }
            Key::Ed25519(k) => verify_v1a(&k.verifying_key(), msg_id, ts, signatures, body),
        };
        if found {
            Ok(())
        } else {
            Err(SigningError::NoMatch)
        }
    }
}

/// An Ed25519 public key (`whpk_…`): what a receiver holds to check `v1a`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    pub fn parse(s: &str) -> Result<Self, SigningError> {
        let b64 = s.strip_prefix(PUBLIC_KEY_PREFIX).ok_or(SigningError::BadPublicKey)?;
        let bytes: [u8; 32] = B64.decode(b64).ok().and_then(|b| b.try_into().ok()).ok_or(SigningError::BadPublicKey)?;
        Ok(PublicKey(VerifyingKey::from_bytes(&bytes).map_err(|_| SigningError::BadPublicKey)?))
    }

    /// Checks the `v1a,` entries of a `webhook-signature` header value.
    pub fn verify(
        &self,
        msg_id: &str,
        timestamp: &str,
        signatures: &str,
        body: &[u8],
        now_secs: i64,
    ) -> Result<(), SigningError> {
        let ts = checked_timestamp(timestamp, now_secs)?;
        if verify_v1a(&self.0, msg_id, ts, signatures, body) {
            Ok(())
        } else {
            Err(SigningError::NoMatch)
        }
    }
}

fn checked_timestamp(timestamp: &str, now_secs: i64) -> Result<i64, SigningError> {
    let ts: i64 = timestamp.trim().parse().map_err(|_| SigningError::BadTimestamp)?;
    if (now_secs - ts).abs() > TIMESTAMP_TOLERANCE_SECS {
        return Err(SigningError::BadTimestamp);
    }
    Ok(ts)
}

fn signed_content(msg_id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let ts = timestamp.to_string();
    let mut content = Vec::with_capacity(msg_id.len() + ts.len() + body.len() + 2);
    content.extend_from_slice(msg_id.as_bytes());
    content.push(b'.');
    content.extend_from_slice(ts.as_bytes());
    content.push(b'.');
    content.extend_from_slice(body);
    content
}

fn mac(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().into()
}

fn verify_v1a(key: &VerifyingKey, msg_id: &str, ts: i64, signatures: &str, body: &[u8]) -> bool {
    let content = signed_content(msg_id, ts, body);
    signatures.split(' ').any(|entry| {
        entry
            .strip_prefix("v1a,")
            .and_then(|sig| B64.decode(sig).ok())
            .and_then(|sig| ed25519_dalek::Signature::from_slice(&sig).ok())
            .is_some_and(|sig| key.verify(&content, &sig).is_ok())
    })
}

/// The value of a `webhook-signature` header: one signature per secret, space separated.
pub fn signature_header(secrets: &[Secret], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut out = String::new();
    for (i, s) in secrets.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&s.sign(msg_id, timestamp, body));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // The Standard Webhooks specification's known-answer test.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn matches_the_spec_test_vector() {
        let secret = Secret::parse(SECRET).unwrap();
        assert_eq!(secret.sign(MSG_ID, TS, BODY), SIGNATURE);
        assert_eq!(secret.expose(), SECRET);
    }

    #[test]
    fn verifies_and_rejects() {
        let secret = Secret::parse(SECRET).unwrap();
        let ts = TS.to_string();
        assert_eq!(secret.verify(MSG_ID, &ts, SIGNATURE, BODY, TS), Ok(()));
        let several = format!("v1,bm90IGl0 {SIGNATURE}");
        assert_eq!(secret.verify(MSG_ID, &ts, &several, BODY, TS + 299), Ok(()));
        // Truncated signature.
        let truncated = &SIGNATURE[..SIGNATURE.len() - 4];
        assert_eq!(secret.verify(MSG_ID, &ts, truncated, BODY, TS), Err(SigningError::NoMatch));
        // Other body, other id.
        assert_eq!(secret.verify(MSG_ID, &ts, SIGNATURE, b"{}", TS), Err(SigningError::NoMatch));
        assert_eq!(secret.verify("msg_x", &ts, SIGNATURE, BODY, TS), Err(SigningError::NoMatch));
        // Outside the tolerance.
        assert_eq!(secret.verify(MSG_ID, &ts, SIGNATURE, BODY, TS + 301), Err(SigningError::BadTimestamp));
    }

    #[test]
    fn generated_secrets_round_trip() {
        for _ in 0..100 {
            let s = Secret::generate();
            let parsed = Secret::parse(&s.expose()).unwrap();
            assert_eq!(parsed, s);
            let sig = s.sign("msg_1", 5, b"x");
            assert_eq!(parsed.verify("msg_1", "5", &sig, b"x", 5), Ok(()));
        }
        assert!(format!("{:?}", Secret::generate()).contains("****"));
    }

    #[test]
    fn ed25519_secrets_sign_v1a_checked_with_the_public_key() {
        let s = Secret::generate_of(KeyType::Ed25519);
        assert!(s.expose().starts_with("whsk_"));
        let parsed = Secret::parse(&s.expose()).unwrap();
        assert_eq!(parsed, s);
        assert_eq!(parsed.key_type(), KeyType::Ed25519);
        let sig = s.sign(MSG_ID, TS, BODY);
        assert!(sig.starts_with("v1a,") && sig.len() == 4 + 88, "{sig}");
        let public = PublicKey::parse(&s.public_key().unwrap()).unwrap();
        let ts = TS.to_string();
        assert_eq!(public.verify(MSG_ID, &ts, &format!("v1,bm90 {sig}"), BODY, TS), Ok(()));
        assert_eq!(s.verify(MSG_ID, &ts, &sig, BODY, TS), Ok(()));
        assert_eq!(public.verify(MSG_ID, &ts, &sig, b"{}", TS), Err(SigningError::NoMatch));
        assert_eq!(public.verify(MSG_ID, &ts, &sig[..sig.len() - 4], BODY, TS), Err(SigningError::NoMatch));
        assert_eq!(public.verify(MSG_ID, &ts, &sig, BODY, TS + 301), Err(SigningError::BadTimestamp));
        // A v1 signature is no v1a signature, nor the other way round.
        let hmac = Secret::parse(SECRET).unwrap();
        assert_eq!(hmac.verify(MSG_ID, &ts, &sig.replacen("v1a,", "v1,", 1), BODY, TS), Err(SigningError::NoMatch));
        let other = PublicKey::parse(&Secret::generate_of(KeyType::Ed25519).public_key().unwrap()).unwrap();
        assert_eq!(other.verify(MSG_ID, &ts, &sig, BODY, TS), Err(SigningError::NoMatch));
        for bad in ["whpk_", "whpk_c2hvcnQ=", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"] {
            assert_eq!(PublicKey::parse(bad), Err(SigningError::BadPublicKey), "{bad}");
        }
        assert_eq!(Secret::parse("whsk_c2hvcnQ="), Err(SigningError::BadSecret));
    }

    #[test]
    fn rejects_bad_secrets() {
        for bad in ["", "whsec_", "whsec_!!!!", "whsec_c2hvcnQ="] {
            assert_eq!(Secret::parse(bad), Err(SigningError::BadSecret), "{bad}");
        }
    }
}
