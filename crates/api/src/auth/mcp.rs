//! MCP tokens ([`crate::v1::mcp_token`]) as callers of the API: what the MCP
//! server's tools need and nothing more. They read (signing secrets and poller
//! tokens excepted) and, unless read-only, resend, recover and send the event
//! types' examples. An application's token is a portal token of its
//! application with those capabilities (404 elsewhere); a dashboard token acts
//! in its organisation and is refused (403) anything else.

use axum::http::Method;
use hookd_store::{McpToken, TokenRole};

use super::{portal_denial, Auth, Capabilities, Capability, POLLER_TOKEN_ROUTE};
use crate::error::ApiError;

/// The routes of the changes an MCP token may make (resend, recover, send an
/// example), as the router names them.
const ATTEMPT_ROUTES: [&str; 3] = [
    "/api/v1/app/{app_id}/msg/{msg_id}/endpoint/{endpoint_id}/resend",
    "/api/v1/app/{app_id}/endpoint/{endpoint_id}/recover",
    "/api/v1/app/{app_id}/endpoint/{endpoint_id}/send-example",
];

fn capabilities(read_only: bool) -> Capabilities {
    if read_only {
        Capabilities::of(&[Capability::ViewBase])
    } else {
        Capabilities::of(&[Capability::ViewBase, Capability::CreateAttempts])
    }
}

/// Why a dashboard MCP token may not call `method` on `route`, if it may not.
fn dashboard_denial(method: &Method, route: &str, read_only: bool) -> Option<String> {
    // The relay's WebSocket is a GET, but it receives deliveries: not a read.
    if route.starts_with("/relay") {
        return Some("an MCP token cannot open a relay".into());
    }
    if *method == Method::GET || *method == Method::HEAD {
        if route.ends_with("/secret") || route.starts_with(POLLER_TOKEN_ROUTE) {
            return Some("an MCP token cannot read signing secrets or poller tokens".into());
        }
        return None;
    }
    if *method == Method::POST && ATTEMPT_ROUTES.contains(&route) {
        if read_only {
            return Some("this MCP token is read-only".into());
        }
        return None;
    }
    Some("an MCP token reads, resends, recovers and sends examples; nothing else".into())
}

/// The caller an unexpired MCP token stands for on `method` `route`.
pub(super) fn caller(t: McpToken, method: &Method, route: &str) -> Result<Auth, ApiError> {
    let capabilities = capabilities(t.read_only);
    let (role, denied) = match &t.app_id {
        // Refused once the application is known to be its own, as a portal token.
        Some(_) => (TokenRole::Portal, portal_denial(method, route, capabilities)),
        None => {
            if let Some(why) = dashboard_denial(method, route, t.read_only) {
                return Err(ApiError::Forbidden(why));
            }
            (if t.read_only { TokenRole::ReadOnly } else { TokenRole::Admin }, None)
        }
    };
    Ok(Auth {
        org_id: t.org_id,
        app_id: t.app_id,
        token_id: t.id,
        role,
        capabilities,
        session_id: None,
        denied,
        poller_sink: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(app_id: Option<&str>, read_only: bool) -> McpToken {
        McpToken {
            id: "key_1".into(),
            org_id: "org_1".into(),
            app_id: app_id.map(String::from),
            token_hash: String::new(),
            tail: String::new(),
            read_only,
            created_at: 0,
            expires_at: i64::MAX,
        }
    }

    #[test]
    fn dashboard_tokens_read_and_make_attempts_only() {
        let resend = ATTEMPT_ROUTES[0];
        let cases = [
            (Method::GET, "/api/v1/app/{app_id}/endpoint", false, true),
            (Method::GET, "/api/v1/app/{app_id}/endpoint/{endpoint_id}/secret", false, false),
            (Method::GET, "/api/v1/auth/app/{app_id}/poller/{sink_id}/token", false, false),
            (Method::POST, resend, false, true),
            (Method::POST, resend, true, false),
            (Method::POST, "/api/v1/app", false, false),
            (Method::DELETE, "/api/v1/app/{app_id}", false, false),
            (Method::POST, "/api/v1/auth/dashboard/mcp-token", false, false),
            (Method::POST, "/api/v1/app/{app_id}/endpoint/{endpoint_id}/secret/rotate", false, false),
        ];
        for (method, route, read_only, allowed) in cases {
            let got = caller(token(None, read_only), &method, route);
            assert_eq!(got.is_ok(), allowed, "{method} {route} read-only={read_only}");
        }
        let auth = caller(token(None, true), &Method::GET, "/api/v1/app").unwrap();
        assert_eq!(auth.role, TokenRole::ReadOnly);
        assert!(!auth.capabilities.contains(Capability::CreateAttempts));
    }

    #[test]
    fn application_tokens_are_portal_tokens_with_two_capabilities() {
        let app = |method: Method, route: &str, read_only| {
            caller(token(Some("app_1"), read_only), &method, route).unwrap().denied.is_none()
        };
        assert!(app(Method::GET, "/api/v1/app/{app_id}/msg", false));
        assert!(app(Method::POST, ATTEMPT_ROUTES[1], false));
        assert!(!app(Method::POST, ATTEMPT_ROUTES[1], true));
        assert!(!app(Method::GET, "/api/v1/app/{app_id}/endpoint/{endpoint_id}/secret", false));
        assert!(!app(Method::POST, "/api/v1/app/{app_id}/endpoint", false));
        assert!(!app(Method::PATCH, "/api/v1/app/{app_id}/endpoint/{endpoint_id}", false));
    }
}
