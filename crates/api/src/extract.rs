//! Request input: bodies parsed so that malformed JSON is a 400 and a
//! well-formed body with wrong fields a 422, and query strings read leniently
//! (lists may be repeated keys or comma-joined, as the SDKs send them).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The raw body, with an over-limit body answered as a readable 413.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Bytes::from_request(req, state).await {
            Ok(b) => Ok(RawBody(b)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::BodyTooLarge("request body is larger than the configured maximum".into()))
            }
            Err(e) => Err(ApiError::BadRequest(e.body_text())),
        }
    }
}

/// Parses a JSON body: 400 when it is not JSON, 422 when fields are wrong.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.is_empty() {
        return Err(ApiError::BadRequest("request body is empty; expected a JSON object".into()));
    }
    serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::invalid(&["body"], e.to_string()),
        _ => ApiError::BadRequest(format!("request body is not valid JSON: {e}")),
    })
}

/// A body that may be absent or `{}` (for POSTs whose every field is optional).
pub fn parse_json_or_default<T: DeserializeOwned + Default>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(T::default());
    }
    parse_json(body)
}

/// The query string as pairs.
#[derive(Debug, Default)]
pub struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    pub fn parse(query: Option<&str>) -> Self {
        QueryParams(url::form_urlencoded::parse(query.unwrap_or("").as_bytes()).into_owned().collect())
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// All values of a list parameter: repeated keys and comma-joined values.
    pub fn list(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key || k.strip_suffix("[]") == Some(key))
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    }

    pub fn bool(&self, key: &str, default: bool) -> Result<bool, ApiError> {
        match self.get(key) {
            None | Some("") => Ok(default),
            Some("true") | Some("True") | Some("1") => Ok(true),
            Some("false") | Some("False") | Some("0") => Ok(false),
            Some(_) => Err(ApiError::query_field(key, "expected true or false")),
        }
    }

    pub fn int(&self, key: &str) -> Result<Option<i64>, ApiError> {
        self.get(key)
            .filter(|v| !v.is_empty())
            .map(|v| v.parse::<i64>().map_err(|_| ApiError::query_field(key, "expected an integer")))
            .transpose()
    }

    /// An RFC 3339 timestamp as Unix milliseconds. A timestamp without an offset
    /// is taken as UTC (some SDK versions send naive datetimes).
    pub fn datetime(&self, key: &str) -> Result<Option<i64>, ApiError> {
        self.get(key)
            .filter(|v| !v.is_empty())
            .map(|v| {
                parse_datetime(v).ok_or_else(|| {
                    ApiError::query_field(key, "expected an RFC 3339 timestamp like 2026-01-31T12:00:00Z")
                })
            })
            .transpose()
    }
}

/// Parses RFC 3339, treating a missing offset as UTC.
pub fn parse_datetime(v: &str) -> Option<i64> {
    hookd_core::timefmt::parse_rfc3339_millis(v).or_else(|| hookd_core::timefmt::parse_rfc3339_millis(&format!("{v}Z")))
}
