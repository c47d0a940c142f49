//! Single sign-on for the console with OpenID Connect: the authorization-code
//! flow with PKCE (S256), `state` and `nonce` (OpenID Connect Core 1.0 §3.1,
//! RFC 7636).
//!
//! `GET /console/oidc/login` sends the browser to the provider with a fresh
//! state, nonce and PKCE verifier, which it keeps meanwhile in a short-lived
//! cookie sealed with the server's encryption key (so no node keeps sign-ins in
//! memory, and any node can finish one). `GET /console/oidc/callback` checks
//! the state, exchanges the code at the token endpoint (`client_secret_basic`),
//! verifies the ID token against the provider's JWKS, maps the user's groups to
//! an organisation and role (`--oidc-map`, first match in flag order), and
//! starts an ordinary console session: a short-lived API token of that
//! organisation, made by the server ([`SsoServer`]), in the usual cookie.
//! Signing out ends that token.
//!
//! This module keeps no users (the provider does), and grants one
//! organisation and one role per sign-in. `flow` is the browser's side,
//! `provider` the calls to the provider and the ID token's verification.

mod flow;
mod provider;

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

pub use flow::Sso;
pub(crate) use flow::{callback, login};

/// What the API token of a single sign-on session is named; sign-out ends
/// only tokens so named.
pub const TOKEN_NAME_PREFIX: &str = "console sso: ";

/// The role a mapping grants: an organisation's admin, or read-only. Server
/// admin (every organisation) is for hookd's operators and their tokens, not
/// for people signing in; portal tokens belong to one application's portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    ReadOnly,
}

impl Role {
    /// As the API names token roles (`admin`, `read-only`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::ReadOnly => "read-only",
        }
    }
}

/// One `--oidc-map GROUP=ORG_ID:ROLE`: members of `group` sign in to `org` as `role`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub group: String,
    /// An organisation id (`org_…`), or `default` for the server's default organisation.
    pub org: String,
    pub role: Role,
}

impl Mapping {
    /// Reads `GROUP=ORG_ID:ROLE`. The group is everything before the last `=`
    /// (so a group may contain `=`, as an LDAP DN does); ROLE is `admin` or
    /// `read-only`.
    pub fn parse(s: &str) -> Result<Mapping, String> {
        let usage = || format!("`{s}` is not GROUP=ORG_ID:ROLE (e.g. hookd-admins=org_2a…:admin)");
        let (group, target) = s.trim().rsplit_once('=').ok_or_else(usage)?;
        let (org, role) = target.split_once(':').ok_or_else(usage)?;
        let (group, org, role) = (group.trim(), org.trim(), role.trim());
        if group.is_empty() || org.is_empty() {
            return Err(usage());
        }
        if !org.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            return Err(format!("`{org}` is not an organisation id (org_…) or `default`"));
        }
        let role = match role {
            "admin" => Role::Admin,
            "read-only" => Role::ReadOnly,
            "server" => {
                return Err("role `server` is not granted by single sign-on: server admin tokens are for \
                            operators; map to `admin` of an organisation"
                    .into())
            }
            other => return Err(format!("role `{other}` is not `admin` or `read-only`")),
        };
        Ok(Mapping { group: group.to_string(), org: org.to_string(), role })
    }
}

/// How single sign-on is set up (`--oidc-*`).
#[derive(Clone)]
pub struct Settings {
    /// The issuer, exactly as the provider names itself (its discovery
    /// document is under `{issuer}/.well-known/openid-configuration`).
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    /// Asked for at the authorization endpoint; holds `openid`.
    pub scopes: String,
    /// The ID token claim that lists the user's groups (a dotted path reaches
    /// into nested objects, e.g. `realm_access.roles`).
    pub groups_claim: String,
    /// In the order given: the first that matches one of the user's groups wins.
    pub mappings: Vec<Mapping>,
    /// How long a console session started by single sign-on lasts.
    pub session_ttl: Duration,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("scopes", &self.scopes)
            .field("groups_claim", &self.groups_claim)
            .field("mappings", &self.mappings)
            .field("session_ttl", &self.session_ttl)
            .finish()
    }
}

/// Refuses an issuer that is not https (plain http is allowed on loopback
/// only, for a provider on the same machine), or that carries a query or fragment.
pub fn check_issuer(issuer: &str) -> Result<(), String> {
    let url = url::Url::parse(issuer).map_err(|e| format!("`{issuer}` is not a URL: {e}"))?;
    if !secure(&url) {
        return Err(format!("`{issuer}` is not an https URL (plain http is for a provider on loopback only)"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("`{issuer}` has a query or fragment; an issuer has neither"));
    }
    Ok(())
}

/// https, or plain http to a provider on loopback: where the client secret and
/// the tokens may travel.
pub fn secure(url: &url::Url) -> bool {
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        None => false,
    };
    url.scheme() == "https" || (url.scheme() == "http" && loopback)
}

/// A sign-in the provider vouched for and a mapping matched.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The organisation as mapped (`org_…`, or `default`).
    pub org: String,
    pub role: Role,
    /// Who signed in: the email claim when the provider says it is verified,
    /// else the subject (with an unverified email noted as such).
    pub who: String,
    /// How long the session's token lasts.
    pub ttl: Duration,
}

impl Grant {
    /// The name of the session's API token.
    pub fn token_name(&self) -> String {
        format!("{TOKEN_NAME_PREFIX}{}", self.who)
    }
}

/// Why the server did not start a session for a grant.
#[derive(Debug)]
pub enum SessionError {
    /// The mapped organisation does not exist.
    UnknownOrg,
    /// The store could not be reached.
    Unavailable,
}

/// What single sign-on needs of the server around it, which holds the
/// encryption key, the tokens and the audit trail.
#[async_trait::async_trait]
pub trait SsoServer: Send + Sync {
    /// Seals `plain` under the server's encryption key, bound to `context`.
    fn seal(&self, plain: &str, context: &str) -> String;
    /// Opens what [`SsoServer::seal`] made for `context`; `None` for anything
    /// else (altered, another context, not sealed at all).
    fn open(&self, sealed: &str, context: &str) -> Option<String>;
    /// Makes the session's API token (of `grant.org` with `grant.role`, named
    /// [`Grant::token_name`], expiring after `grant.ttl`), records the sign-in
    /// in the audit trail, and returns the token.
    async fn start_session(&self, grant: &Grant, address: Option<IpAddr>) -> Result<String, SessionError>;
    /// Ends `token` now if single sign-on made it (its name starts with
    /// [`TOKEN_NAME_PREFIX`]); other tokens are left alone.
    async fn end_session(&self, token: &str, address: Option<IpAddr>);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mappings_read_group_organisation_and_role() {
        let m = Mapping::parse("hookd-admins=org_2abc:admin").unwrap();
        assert_eq!((m.group.as_str(), m.org.as_str(), m.role), ("hookd-admins", "org_2abc", Role::Admin));
        let m = Mapping::parse("cn=ops,ou=groups,dc=example=default:read-only").unwrap();
        assert_eq!(
            (m.group.as_str(), m.org.as_str(), m.role),
            ("cn=ops,ou=groups,dc=example", "default", Role::ReadOnly)
        );
        for bad in
            ["ops", "ops=org_1", "=org_1:admin", "ops=:admin", "ops=org_1:server", "ops=org_1:owner", "ops=org 1:admin"]
        {
            assert!(Mapping::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn issuers_are_https_or_loopback() {
        assert!(check_issuer("https://id.example.com/realms/main").is_ok());
        assert!(check_issuer("http://127.0.0.1:5556/dex").is_ok());
        assert!(check_issuer("http://localhost:8080").is_ok());
        assert!(check_issuer("http://id.example.com").is_err());
        assert!(check_issuer("https://id.example.com/?x=1").is_err());
        assert!(check_issuer("id.example.com").is_err());
    }
}
