//! Secrets at rest: endpoint signing secrets and custom headers (which carry
//! delivery credentials) are sealed with XChaCha20-Poly1305 under the
//! process's [`Keyring`] before they reach the database, and opened when read.
//!
//! A sealed value reads `enc1:<key id>:<base64(nonce ‖ ciphertext)>`; the key id
//! (the first 8 bytes of the key's SHA-256, hex) names the key that sealed it,
//! so several keys can be readable at once while a rotation re-seals the rows
//! (`hookd encryption rotate-key`). A value without the prefix was stored in
//! plain text (by an earlier version, or with no key) and reads as it is.
//!
//! The keyring is process-wide, installed once at start ([`install`]): every
//! store in the process, and every node of a cluster, must be given the same
//! keys.

use std::sync::{Arc, RwLock};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use std::sync::atomic::{AtomicBool, Ordering};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

use crate::codec::DecodeError;

const PREFIX: &str = "enc1:";
/// How a key is written (`HOOKD_ENCRYPTION_KEY`): this prefix and 32 bytes in base64.
pub const KEY_PREFIX: &str = "hk_";
const NONCE_BYTES: usize = 24;

/// One 256-bit key and its id.
#[derive(Clone)]
pub struct Key {
    id: String,
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({})", self.id)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("an encryption key is `hk_` and 32 bytes in base64 (hookd encryption generate-key prints one)")]
pub struct BadKey;

impl Key {
    /// A fresh random key, in its written form.
    pub fn generate() -> String {
        let bytes: [u8; 32] = rand_bytes();
        format!("{KEY_PREFIX}{}", B64.encode(bytes))
    }

    /// Reads `hk_<base64 of 32 bytes>`.
    pub fn parse(s: &str) -> Result<Key, BadKey> {
        let b64 = s.trim().strip_prefix(KEY_PREFIX).ok_or(BadKey)?;
        let bytes = B64.decode(b64).map_err(|_| BadKey)?;
        if bytes.len() != 32 {
            return Err(BadKey);
        }
        let digest = Sha256::digest(&bytes);
        let id = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        Ok(Key { id, cipher: XChaCha20Poly1305::new_from_slice(&bytes).map_err(|_| BadKey)? })
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

fn rand_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    for chunk in out.chunks_mut(32) {
        let r: [u8; 32] = rand::random();
        chunk.copy_from_slice(&r[..chunk.len()]);
    }
    out
}

/// The key new values are sealed with, and older keys still readable.
#[derive(Debug)]
pub struct Keyring {
    current: Key,
    previous: Vec<Key>,
    /// Set once every stored value is sealed: from then on a value in plain
    /// text is refused (it was put there behind hookd's back).
    strict: AtomicBool,
}

impl Keyring {
    pub fn new(current: Key, previous: Vec<Key>) -> Keyring {
        Keyring { current, previous, strict: AtomicBool::new(false) }
    }

    /// Refuses plain-text values from now on.
    pub fn set_strict(&self) {
        self.strict.store(true, Ordering::Relaxed);
    }

    pub fn current_id(&self) -> &str {
        self.current.id()
    }

    /// Seals `plain`, bound to `context` (the row and column it is stored in),
    /// so the sealed value opens there only: copied to another row, it fails.
    pub fn seal(&self, plain: &str, context: &str) -> String {
        let nonce: [u8; NONCE_BYTES] = rand_bytes();
        let sealed = self
            .current
            .cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: plain.as_bytes(), aad: context.as_bytes() })
            .expect("encrypting into memory cannot fail");
        let mut out = Vec::with_capacity(NONCE_BYTES + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        format!("{PREFIX}{}:{}", self.current.id, B64.encode(out))
    }

    pub fn open(&self, stored: &str, context: &str) -> Result<String, DecodeError> {
        let Some(rest) = stored.strip_prefix(PREFIX) else {
            if self.strict.load(Ordering::Relaxed) {
                return Err("a value stored in plain text where everything is sealed".into());
            }
            return Ok(stored.to_string());
        };
        let (id, b64) = rest.split_once(':').ok_or("a sealed value without its key id")?;
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == id)
            .ok_or_else(|| format!("this value was sealed with key {id}, which this node was not given"))?;
        let bytes = B64.decode(b64)?;
        if bytes.len() < NONCE_BYTES {
            return Err("a sealed value too short to hold its nonce".into());
        }
        let (nonce, sealed) = bytes.split_at(NONCE_BYTES);
        let plain = key
            .cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: sealed, aad: context.as_bytes() })
            .map_err(|_| format!("a value sealed with key {id} does not open here (altered, moved, or another key)"))?;
        Ok(String::from_utf8(plain)?)
    }

    /// Whether `stored` is sealed with the current key (else a rotation re-seals it).
    pub fn is_current(&self, stored: &str) -> bool {
        stored.strip_prefix(PREFIX).and_then(|r| r.split_once(':')).is_some_and(|(id, _)| id == self.current.id)
    }
}

static KEYRING: RwLock<Option<Arc<Keyring>>> = RwLock::new(None);

/// Installs the process's keyring (`None`: values are stored in plain text).
pub fn install(keyring: Option<Keyring>) {
    *KEYRING.write().unwrap_or_else(|e| e.into_inner()) = keyring.map(Arc::new);
}

/// The process's keyring, if one was installed.
pub fn keyring() -> Option<Arc<Keyring>> {
    KEYRING.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// `plain` as it is stored in `context` (row and column): sealed under the
/// current key, or as it is without one.
pub fn seal(plain: &str, context: &str) -> String {
    match keyring() {
        Some(k) => k.seal(plain, context),
        None => plain.to_string(),
    }
}

/// A stored value read back from `context`.
pub fn open(stored: &str, context: &str) -> Result<String, DecodeError> {
    match keyring() {
        Some(k) => k.open(stored, context),
        None if stored.starts_with(PREFIX) => {
            Err("this value is encrypted, and no encryption key was given (--encryption-key)".into())
        }
        None => Ok(stored.to_string()),
    }
}

/// Seals a payload or response body (UTF-8 text) for `context`, for an
/// organisation that encrypts its payloads; `None` without a keyring.
pub fn seal_body(plain: &[u8], context: &str) -> Option<Vec<u8>> {
    let text = String::from_utf8_lossy(plain);
    keyring().map(|k| k.seal(&text, context).into_bytes())
}

/// Whether a stored payload or body is sealed. A JSON payload never starts
/// with the prefix; a response body could, and then fails to open and is
/// shown as stored.
pub fn is_sealed(stored: &[u8]) -> bool {
    stored.starts_with(PREFIX.as_bytes())
}

/// A stored payload as it was written: opened when sealed.
pub fn open_body(stored: &[u8], context: &str) -> Result<Vec<u8>, DecodeError> {
    let text = std::str::from_utf8(stored).map_err(|e| e.to_string())?;
    match keyring() {
        Some(k) => Ok(k.open(text, context)?.into_bytes()),
        None => Err("this payload is encrypted, and no encryption key was given (--encryption-key)".into()),
    }
}

/// A stored response body for showing: opened when sealed, else as stored.
pub fn open_text(stored: &str, context: &str) -> String {
    if !is_sealed(stored.as_bytes()) {
        return stored.to_string();
    }
    open_body(stored.as_bytes(), context)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|e| format!("[hookd: this body is encrypted and cannot be opened here: {e}]"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_under_their_key_only() {
        let (k1, k2) = (Key::parse(&Key::generate()).unwrap(), Key::parse(&Key::generate()).unwrap());
        let ring = Keyring::new(k1.clone(), vec![]);
        let sealed = ring.seal("whsec_c2VjcmV0", "ep_1:secret");
        assert!(sealed.starts_with(&format!("enc1:{}:", k1.id())), "{sealed}");
        assert!(!sealed.contains("c2VjcmV0"));
        assert_ne!(ring.seal("whsec_c2VjcmV0", "ep_1:secret"), sealed, "a fresh nonce each time");
        assert_eq!(ring.open(&sealed, "ep_1:secret").unwrap(), "whsec_c2VjcmV0");
        assert!(ring.is_current(&sealed));
        // Bound to its row and column: copied elsewhere it does not open.
        assert!(ring.open(&sealed, "ep_2:secret").is_err());
        assert!(ring.open(&sealed, "ep_1:headers").is_err());
        // Plain text from before encryption reads as it is, until all is sealed.
        assert_eq!(ring.open("whsec_plain", "ep_1:secret").unwrap(), "whsec_plain");
        assert!(!ring.is_current("whsec_plain"));
        ring.set_strict();
        assert!(ring.open("whsec_plain", "ep_1:secret").is_err());

        // After a rotation both keys read; only the new one is current.
        let rotated = Keyring::new(k2.clone(), vec![k1.clone()]);
        assert_eq!(rotated.open(&sealed, "ep_1:secret").unwrap(), "whsec_c2VjcmV0");
        assert!(!rotated.is_current(&sealed));
        // Without the old key it does not open, and says which key it needs.
        let err = Keyring::new(k2, vec![]).open(&sealed, "ep_1:secret").unwrap_err().to_string();
        assert!(err.contains(k1.id()), "{err}");

        // A flipped byte is caught.
        let mut bytes = B64.decode(sealed.rsplit(':').next().unwrap()).unwrap();
        bytes[30] ^= 1;
        let altered = format!("enc1:{}:{}", k1.id(), B64.encode(bytes));
        assert!(ring.open(&altered, "ep_1:secret").is_err());
    }

    #[test]
    fn keys_are_checked() {
        assert!(Key::parse("hk_short").is_err());
        assert!(Key::parse(&Key::generate().replace("hk_", "xx_")).is_err());
        let k = Key::generate();
        assert_eq!(Key::parse(&k).unwrap().id(), Key::parse(&format!(" {k}\n")).unwrap().id());
    }
}
