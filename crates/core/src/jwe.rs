//! Payload encryption to an endpoint's public key: JWE compact serialisation
//! (RFC 7516) with `alg` `ECDH-ES` (direct key agreement on P-256, RFC 7518
//! §4.6, Concat KDF) and `enc` `A256GCM`. Any JOSE library decrypts it with the
//! receiver's private key.
//!
//! Every encryption uses a fresh ephemeral key and IV, so the same payload
//! never encrypts to the same bytes.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use p256::ecdh::EphemeralSecret;
use p256::elliptic_curve::sec1::{EncodedPoint, FromEncodedPoint, ToEncodedPoint};
use p256::{NistP256, PublicKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const ENC: &str = "A256GCM";

/// A receiver's P-256 public key, given as a JWK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptionKey {
    key: PublicKey,
}

impl EncryptionKey {
    /// Reads a public JWK: `{"kty": "EC", "crv": "P-256", "x": …, "y": …}`
    /// (`kid`, `use`, `alg` and the like are ignored; a private `d` is refused).
    pub fn from_jwk(jwk: &Value) -> Result<Self, String> {
        let field = |name: &str| jwk.get(name).and_then(Value::as_str);
        if field("kty") != Some("EC") || field("crv") != Some("P-256") {
            return Err("the key must be a JWK with \"kty\": \"EC\" and \"crv\": \"P-256\"".into());
        }
        if jwk.get("d").is_some() {
            return Err("this is a private key: give the public key only (without \"d\")".into());
        }
        let coordinate = |name: &str| -> Result<[u8; 32], String> {
            let bytes = field(name)
                .and_then(|v| B64URL.decode(v).ok())
                .ok_or_else(|| format!("\"{name}\" must be base64url"))?;
            bytes.try_into().map_err(|_| format!("\"{name}\" must be 32 bytes"))
        };
        let (x, y) = (coordinate("x")?, coordinate("y")?);
        let point = EncodedPoint::<NistP256>::from_affine_coordinates(&x.into(), &y.into(), false);
        let key = Option::<PublicKey>::from(PublicKey::from_encoded_point(&point))
            .ok_or("the point is not on the P-256 curve")?;
        Ok(EncryptionKey { key })
    }

    /// The key as a public JWK.
    pub fn to_jwk(&self) -> Value {
        let (x, y) = coordinates(&self.key);
        json!({"kty": "EC", "crv": "P-256", "x": x, "y": y})
    }

    /// `plaintext` as a JWE compact string.
    pub fn encrypt(&self, plaintext: &[u8]) -> String {
        let ephemeral = EphemeralSecret::random(&mut rand::rngs::OsRng);
        let (x, y) = coordinates(&ephemeral.public_key());
        let header = json!({
            "alg": "ECDH-ES",
            "enc": ENC,
            "epk": {"kty": "EC", "crv": "P-256", "x": x, "y": y},
        });
        let protected = B64URL.encode(header.to_string());
        let shared = ephemeral.diffie_hellman(&self.key);
        let cek = concat_kdf(shared.raw_secret_bytes().as_slice());
        let iv: [u8; 12] = rand::random();
        let cipher = Aes256Gcm::new_from_slice(&cek).expect("a 256-bit key");
        let sealed = cipher
            .encrypt(Nonce::from_slice(&iv), Payload { msg: plaintext, aad: protected.as_bytes() })
            .expect("AES-GCM encrypts any length hookd sends");
        let (ciphertext, tag) = sealed.split_at(sealed.len() - 16);
        format!("{protected}..{}.{}.{}", B64URL.encode(iv), B64URL.encode(ciphertext), B64URL.encode(tag))
    }
}

fn coordinates(key: &PublicKey) -> (String, String) {
    let point = key.to_encoded_point(false);
    let x = point.x().expect("an uncompressed point has x");
    let y = point.y().expect("an uncompressed point has y");
    (B64URL.encode(x), B64URL.encode(y))
}

/// RFC 7518 §4.6.2: the content key from the shared secret, for direct key
/// agreement with `enc` A256GCM, no PartyUInfo or PartyVInfo: one SHA-256 round.
fn concat_kdf(z: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(1u32.to_be_bytes());
    h.update(z);
    h.update((ENC.len() as u32).to_be_bytes());
    h.update(ENC.as_bytes());
    h.update(0u32.to_be_bytes()); // PartyUInfo
    h.update(0u32.to_be_bytes()); // PartyVInfo
    h.update(256u32.to_be_bytes()); // SuppPubInfo: key length in bits
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::SecretKey;

    /// Decrypts as a receiver would, with the private key.
    fn decrypt(secret: &SecretKey, jwe: &str) -> Vec<u8> {
        let parts: Vec<&str> = jwe.split('.').collect();
        assert_eq!(parts.len(), 5);
        assert_eq!(parts[1], "", "direct key agreement carries no encrypted key");
        let header: Value = serde_json::from_slice(&B64URL.decode(parts[0]).unwrap()).unwrap();
        assert_eq!((header["alg"].as_str(), header["enc"].as_str()), (Some("ECDH-ES"), Some("A256GCM")));
        let epk = EncryptionKey::from_jwk(&header["epk"]).unwrap();
        let shared = p256::ecdh::diffie_hellman(secret.to_nonzero_scalar(), epk.key.as_affine());
        let cek = concat_kdf(shared.raw_secret_bytes().as_slice());
        let mut sealed = B64URL.decode(parts[3]).unwrap();
        sealed.extend(B64URL.decode(parts[4]).unwrap());
        let iv = B64URL.decode(parts[2]).unwrap();
        Aes256Gcm::new_from_slice(&cek)
            .unwrap()
            .decrypt(Nonce::from_slice(&iv), Payload { msg: &sealed, aad: parts[0].as_bytes() })
            .expect("decrypts")
    }

    #[test]
    fn encrypts_to_the_receivers_key_only() {
        let secret = SecretKey::random(&mut rand::rngs::OsRng);
        let (x, y) = coordinates(&secret.public_key());
        let key = EncryptionKey::from_jwk(&json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": "k1"})).unwrap();
        assert_eq!(EncryptionKey::from_jwk(&key.to_jwk()).unwrap(), key);
        let body = br#"{"secret": "payload"}"#;
        let a = key.encrypt(body);
        let b = key.encrypt(body);
        assert_ne!(a, b, "a fresh ephemeral key and IV every time");
        assert_eq!(decrypt(&secret, &a), body);
        assert_eq!(decrypt(&secret, &b), body);
        assert!(!a.contains("payload"));
    }

    #[test]
    fn refuses_what_is_not_a_p256_public_jwk() {
        let secret = SecretKey::random(&mut rand::rngs::OsRng);
        let (x, y) = coordinates(&secret.public_key());
        for bad in [
            json!({"kty": "RSA", "n": "x", "e": "AQAB"}),
            json!({"kty": "EC", "crv": "P-384", "x": x, "y": y}),
            json!({"kty": "EC", "crv": "P-256", "x": x, "y": x}),
            json!({"kty": "EC", "crv": "P-256", "x": "!!", "y": y}),
            json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "d": "c2VjcmV0"}),
            json!("a string"),
        ] {
            assert!(EncryptionKey::from_jwk(&bad).is_err(), "{bad}");
        }
    }
}
