//! Standard Webhooks signing (the scheme behind Svix's `webhook-signature`).
//!
//! A signature is `v1,` + base64(HMAC-SHA256(key, "{msg_id}.{timestamp}.{body}")),
//! where the key is the base64-decoded part of a `whsec_…` secret. Receivers accept
//! a request when any space-separated `v1,` signature matches, so during a secret
//! rotation the request carries one signature per valid secret.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

const PREFIX: &str = "whsec_";
/// Bytes of key material in a generated secret (as Svix generates).
const GENERATED_KEY_BYTES: usize = 24;
/// Accepted key sizes, in bytes, for user-supplied secrets.
const MIN_KEY_BYTES: usize = 24;
const MAX_KEY_BYTES: usize = 75;
/// How far a timestamp may be from the verifier's clock (the spec's tolerance).
pub const TIMESTAMP_TOLERANCE_SECS: i64 = 5 * 60;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SigningError {
    #[error("secret must be `whsec_` followed by base64 of 24 to 75 bytes")]
    BadSecret,
    #[error("no matching signature")]
    NoMatch,
    #[error("timestamp is missing, malformed or outside the 5 minute tolerance")]
    BadTimestamp,
}

/// An endpoint signing secret. Its `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    key: Vec<u8>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(****)")
    }
}

impl Secret {
    /// A fresh random secret.
    pub fn generate() -> Self {
        let key: [u8; GENERATED_KEY_BYTES] = rand::random();
        Secret { key: key.to_vec() }
    }

    /// Parses `whsec_<base64>` (the prefix is optional, as Svix allows).
    pub fn parse(s: &str) -> Result<Self, SigningError> {
        let b64 = s.strip_prefix(PREFIX).unwrap_or(s);
        let key = B64.decode(b64).map_err(|_| SigningError::BadSecret)?;
        if !(MIN_KEY_BYTES..=MAX_KEY_BYTES).contains(&key.len()) {
            return Err(SigningError::BadSecret);
        }
        Ok(Secret { key })
    }

    /// The `whsec_…` form shown to users and stored.
    pub fn expose(&self) -> String {
        format!("{PREFIX}{}", B64.encode(&self.key))
    }

    /// `v1,<base64 signature>` for one request.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut out = String::with_capacity(3 + 44);
        out.push_str("v1,");
        B64.encode_string(self.mac(msg_id, timestamp, body), &mut out);
        out
    }

    fn mac(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> [u8; 32] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().into()
    }

    /// Receiver-side check of a `webhook-signature` header value: any `v1,` entry
    /// must match in full (constant time; a truncated signature never matches) and
    /// the timestamp must be within the tolerance of `now_secs`.
    pub fn verify(
        &self,
        msg_id: &str,
        timestamp: &str,
        signatures: &str,
        body: &[u8],
        now_secs: i64,
    ) -> Result<(), SigningError> {
        let ts: i64 = timestamp.trim().parse().map_err(|_| SigningError::BadTimestamp)?;
        if (now_secs - ts).abs() > TIMESTAMP_TOLERANCE_SECS {
            return Err(SigningError::BadTimestamp);
        }
        let expected = self.mac(msg_id, ts, body);
        let found = signatures.split(' ').any(|entry| {
            entry
                .strip_prefix("v1,")
                .and_then(|sig| B64.decode(sig).ok())
                .is_some_and(|sig| sig.len() == expected.len() && bool::from(sig.ct_eq(&expected)))
        });
        if found {
            Ok(())
        } else {
            Err(SigningError::NoMatch)
        }
    }
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
    fn rejects_bad_secrets() {
        for bad in ["", "whsec_", "whsec_!!!!", "whsec_c2hvcnQ="] {
            assert_eq!(Secret::parse(bad), Err(SigningError::BadSecret), "{bad}");
        }
    }
}
