//! How values that have no column type of their own are stored, shared by every
//! backend: JSON text for lists and maps, and the one place endpoint secrets and
//! headers are turned into and out of their stored form, sealed at rest
//! ([`crypt`]).

use std::collections::BTreeMap;

use hookd_core::Secret;
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::crypt;
use crate::model::RetiredSecret;

/// Why a stored value could not be read back; each backend wraps it in its own
/// decoding error.
pub type DecodeError = Box<dyn std::error::Error + Send + Sync>;

pub fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("plain data serialises")
}

pub fn json_opt<T: Serialize>(v: &Option<T>) -> Option<String> {
    v.as_ref().map(json)
}

pub fn parse<T: DeserializeOwned>(s: &str) -> Result<T, DecodeError> {
    Ok(serde_json::from_str(s)?)
}

pub fn parse_opt<T: DeserializeOwned>(s: Option<&str>) -> Result<Option<T>, DecodeError> {
    s.map(parse).transpose()
}

/// Endpoint `id`'s signing secret, sealed (bound to that endpoint and column).
pub fn secret_to_db(id: &str, secret: &Secret) -> String {
    crypt::seal(&secret.expose(), &format!("{id}:secret"))
}

pub fn secret_from_db(id: &str, s: &str) -> Result<Secret, DecodeError> {
    Ok(Secret::parse(&crypt::open(s, &format!("{id}:secret"))?)?)
}

/// Endpoint `id`'s custom headers (they carry delivery credentials), sealed.
pub fn headers_to_db(id: &str, headers: &BTreeMap<String, String>) -> String {
    crypt::seal(&json(headers), &format!("{id}:headers"))
}

pub fn headers_from_db(id: &str, s: &str) -> Result<BTreeMap<String, String>, DecodeError> {
    parse(&crypt::open(s, &format!("{id}:headers"))?)
}

/// Endpoint `id`'s credentials, sealed; `None` when it has none.
pub fn auth_to_db(id: &str, auth: &crate::model::EndpointAuth) -> Option<String> {
    (!auth.is_empty()).then(|| crypt::seal(&json(auth), &format!("{id}:auth")))
}

pub fn auth_from_db(id: &str, s: Option<&str>) -> Result<crate::model::EndpointAuth, DecodeError> {
    match s {
        None => Ok(Default::default()),
        Some(s) => parse(&crypt::open(s, &format!("{id}:auth"))?),
    }
}

#[derive(Serialize, Deserialize)]
struct StoredRetired {
    secret: String,
    expires_at: i64,
}

/// Endpoint `id`'s rotated-out secrets, each sealed.
pub fn retired_to_db(id: &str, retired: &[RetiredSecret]) -> String {
    let context = format!("{id}:retired");
    let v: Vec<StoredRetired> = retired
        .iter()
        .map(|r| StoredRetired { secret: crypt::seal(&r.secret.expose(), &context), expires_at: r.expires_at })
        .collect();
    json(&v)
}

pub fn retired_from_db(id: &str, s: &str) -> Result<Vec<RetiredSecret>, DecodeError> {
    let context = format!("{id}:retired");
    let v: Vec<StoredRetired> = parse(s)?;
    v.into_iter()
        .map(|r| {
            Ok(RetiredSecret { secret: Secret::parse(&crypt::open(&r.secret, &context)?)?, expires_at: r.expires_at })
        })
        .collect()
}
