//! The management API, called in-process with the signed-in token.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// The API router (the console never calls itself).
#[derive(Clone)]
pub struct Api(pub Router);

/// An answer of the API: its status and JSON body (`Null` when empty).
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
}

impl Answer {
    pub fn ok(&self) -> bool {
        self.status.is_success()
    }

    /// The API's readable error: `detail` (a text, or the first of a 422's list).
    pub fn detail(&self) -> String {
        match &self.body["detail"] {
            Value::String(s) => s.clone(),
            Value::Array(errors) => errors
                .iter()
                .map(|e| {
                    let at: Vec<String> =
                        e["loc"].as_array().into_iter().flatten().skip(1).map(|l| l.to_string()).collect();
                    format!("{}: {}", at.join("."), e["msg"].as_str().unwrap_or(""))
                })
                .collect::<Vec<_>>()
                .join("; "),
            _ => format!("the request failed ({})", self.status),
        }
    }
}

/// Answers are read up to this size.
const MAX_ANSWER: usize = 16 * 1024 * 1024;

impl Api {
    pub async fn call(
        &self,
        token: &str,
        peer: Option<SocketAddr>,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Answer {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.map(|b| b.to_string()).unwrap_or_default()))
            .expect("a request built from checked parts");
        if let Some(peer) = peer {
            // The audit trail records the browser's address.
            req.extensions_mut().insert(ConnectInfo(peer));
        }
        let resp = match self.0.clone().oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let status = resp.status();
        let bytes = match http_body_util::Limited::new(resp.into_body(), MAX_ANSWER).collect().await {
            Ok(c) => c.to_bytes(),
            Err(_) => return Answer { status: StatusCode::BAD_GATEWAY, body: Value::Null },
        };
        Answer { status, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) }
    }

    pub async fn get(&self, s: &crate::session::Session, path: &str) -> Answer {
        self.call(&s.token, s.peer, Method::GET, path, None).await
    }

    pub async fn send(&self, s: &crate::session::Session, method: Method, path: &str, body: &Value) -> Answer {
        self.call(&s.token, s.peer, method, path, Some(body)).await
    }
}

/// A value as one path segment (or query value): every byte but `A-Z a-z 0-9
/// - _ ~` percent-encoded, so `/`, `.`, `+`, `?` and `#` stay inside it.
pub fn seg(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::seg;

    #[test]
    fn a_segment_stays_one_segment() {
        assert_eq!(seg("app_1x-Y~z"), "app_1x-Y~z");
        assert_eq!(seg("../a b+c/?#"), "%2E%2E%2Fa%20b%2Bc%2F%3F%23");
        assert_eq!(seg("é"), "%C3%A9");
    }
}
