//! hookd's MCP server: tools an AI assistant calls to look into webhook
//! deliveries (applications, endpoints, messages, attempts, why a delivery
//! failed) and, unless read-only, to resend, recover and send test events.
//!
//! The protocol ([`rpc`]: JSON-RPC 2.0, MCP 2025-06-18 and 2025-03-26) and
//! the tools ([`tools`], [`calls`], [`explain`]) are written once and act
//! through a [`Backend`]: hookd's own HTTP API, called with the client's
//! token. Two backends exist: the API router in-process, for `POST /mcp` on
//! the server ([`http`]), and an HTTP client to a server, for `hookd mcp` on
//! stdio. Either way authentication, scoping (an application's token sees
//! that application only, 404 elsewhere) and permissions are exactly the
//! API's, and every change a tool makes is in the audit trail.
//!
//! The layer is small and hand-written rather than built on the `rmcp`
//! crate: hookd needs only `initialize`, `ping`, `tools/list` and
//! `tools/call` answered one request at a time, with its own bounds on every
//! input and its own authentication in front; a stateless JSON answer per
//! request serves both transports.

pub mod calls;
pub mod explain;
pub mod http;
pub mod rpc;
pub mod tools;

use std::future::Future;

use axum::http::Method;
use serde_json::Value;

/// An answer of the API: its status and JSON body (`Null` when empty).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The API's readable error (`detail`: a text, or the messages of a 422).
    pub fn detail(&self) -> String {
        let text = match &self.body["detail"] {
            Value::String(s) => s.clone(),
            Value::Array(errors) => errors
                .iter()
                .map(|e| {
                    let at: Vec<String> = e["loc"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|l| l.as_str().map_or_else(|| l.to_string(), String::from))
                        .collect();
                    format!("{}: {}", at.join("."), e["msg"].as_str().unwrap_or(""))
                })
                .collect::<Vec<_>>()
                .join("; "),
            _ => String::new(),
        };
        match (self.status, text.is_empty()) {
            (0, _) => text,
            (status, true) => format!("hookd answered HTTP {status}"),
            (status, false) => format!("hookd answered HTTP {status}: {text}"),
        }
    }
}

/// hookd's HTTP API, called with one token.
pub trait Backend: Send + Sync {
    /// `method` `path_and_query` with a JSON body. A failure to reach the API
    /// is an answer with status 0 and a `detail`.
    fn call(&self, method: Method, path_and_query: &str, body: Option<Value>) -> impl Future<Output = Answer> + Send;
}

/// What the caller's token may see and do, as the API tells (`whoami`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// Set when the token sees this one application only.
    pub app_id: Option<String>,
    /// Mutating tools are left out.
    pub read_only: bool,
}

impl Scope {
    /// Asks the API who the token is. `Err` is the API's refusal (a 401 for
    /// an unknown, expired or revoked token), to pass on.
    pub async fn discover<B: Backend>(api: &B) -> Result<Scope, Answer> {
        let who = api.call(Method::GET, "/api/v1/auth/whoami", None).await;
        if !who.ok() {
            return Err(who);
        }
        let role = who.body["role"].as_str().unwrap_or("");
        // Capabilities are listed for a token that does not hold them all.
        let attempts = match who.body["capabilities"].as_array() {
            Some(caps) => caps.iter().any(|c| c == "CreateAttempts"),
            None => true,
        };
        Ok(Scope { app_id: who.body["appId"].as_str().map(String::from), read_only: role == "read-only" || !attempts })
    }
}

/// One client's MCP server: the API it acts through and what it may do there.
pub struct Server<B> {
    pub api: B,
    pub scope: Scope,
}

impl<B: Backend> Server<B> {
    pub fn new(api: B, scope: Scope) -> Self {
        Server { api, scope }
    }
}
