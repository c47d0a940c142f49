//! The API's one error type and the bodies the Svix SDKs parse: 422 is
//! `HTTPValidationError` (`{"detail": [{loc, msg, type}]}`), every other error
//! is `HttpErrorOut` (`{"code", "detail"}`).

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hookd_store::StoreError;
use serde::Serialize;
use serde_json::json;

#[derive(Debug, Serialize, Clone)]
pub struct FieldError {
    pub loc: Vec<String>,
    pub msg: String,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug)]
pub enum ApiError {
    BadRequest(String),
    Unauthorized,
    /// The caller may see the object but not do this to it.
    Forbidden(String),
    NotFound,
    /// The path exists but not with this method.
    MethodNotAllowed,
    Conflict {
        detail: String,
        existing_id: Option<String>,
    },
    Validation(Vec<FieldError>),
    PayloadTooLarge(String),
    /// An ingest quota is used up: 429 with `Retry-After` (seconds).
    TooManyRequests {
        detail: String,
        retry_after_secs: u64,
    },
    /// The request body went past the size limit and was left unread.
    BodyTooLarge(String),
    Unavailable(String),
    Internal(String),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// A 422 naming one field: `loc` is like `["body", "url"]`.
    pub fn invalid(loc: &[&str], msg: impl Into<String>) -> Self {
        ApiError::Validation(vec![FieldError {
            loc: loc.iter().map(|s| s.to_string()).collect(),
            msg: msg.into(),
            kind: "value_error".into(),
        }])
    }

    pub fn body_field(field: &str, msg: impl Into<String>) -> Self {
        Self::invalid(&["body", field], msg)
    }

    pub fn query_field(field: &str, msg: impl Into<String>) -> Self {
        Self::invalid(&["query", field], msg)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound,
            StoreError::Conflict { what, existing_id } => {
                ApiError::Conflict { detail: format!("{what} already exists"), existing_id }
            }
            StoreError::IdempotencyReplay(_) => ApiError::Conflict {
                detail: "a request with this idempotency key was already processed".into(),
                existing_id: None,
            },
            StoreError::Invalid { field, msg } => ApiError::body_field(field, msg),
            StoreError::Unavailable(msg) => ApiError::Unavailable(msg),
            StoreError::Internal(msg) => ApiError::Internal(msg),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            ApiError::Validation(errors) => {
                return (StatusCode::UNPROCESSABLE_ENTITY, Json(json!({ "code": "validation", "detail": errors })))
                    .into_response()
            }
            ApiError::BadRequest(d) => (StatusCode::BAD_REQUEST, json!({"code": "bad_request", "detail": d})),
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                json!({"code": "authentication_failed", "detail": "missing or invalid bearer token: send `Authorization: Bearer <token>`"}),
            ),
            ApiError::Forbidden(d) => (StatusCode::FORBIDDEN, json!({"code": "forbidden", "detail": d})),
            ApiError::NotFound => (StatusCode::NOT_FOUND, json!({"code": "not_found", "detail": "Entity not found"})),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                json!({"code": "method_not_allowed", "detail": "this path does not take this method"}),
            ),
            ApiError::Conflict { detail, existing_id } => {
                let mut body = json!({"code": "conflict", "detail": detail});
                if let Some(id) = existing_id {
                    body["id"] = json!(id);
                }
                (StatusCode::CONFLICT, body)
            }
            ApiError::PayloadTooLarge(d) => {
                (StatusCode::PAYLOAD_TOO_LARGE, json!({"code": "payload_too_large", "detail": d}))
            }
            ApiError::TooManyRequests { detail, retry_after_secs } => {
                let body = json!({"code": "rate_limited", "detail": detail});
                let retry = retry_after_secs.to_string();
                return (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, retry)], Json(body)).into_response();
            }
            ApiError::BodyTooLarge(d) => {
                // The rest of the body is still unread on the socket, so the server closes
                // the connection after answering. Saying so keeps a pooling client (every
                // SDK) from sending its next request down a connection that is gone.
                let body = json!({"code": "payload_too_large", "detail": d});
                return (StatusCode::PAYLOAD_TOO_LARGE, [(header::CONNECTION, "close")], Json(body)).into_response();
            }
            ApiError::Unavailable(d) => {
                tracing::warn!(error = %d, "store unavailable");
                let body = json!({"code": "unavailable", "detail": "the database is unavailable; retry later with the same idempotency-key (the request may or may not have been stored)"});
                // Clients (and the SDKs' retries) wait this long before trying again.
                return (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, "1")], Json(body)).into_response();
            }
            ApiError::Internal(d) => {
                tracing::error!(error = %d, "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, json!({"code": "internal", "detail": "internal error"}))
            }
        };
        (status, Json(body)).into_response()
    }
}
