//! The SSRF guard: outbound connections reach only what the destination policy
//! allows (by default: public addresses only).
//!
//! Names are checked after DNS resolution, inside the HTTP client's resolver, so
//! the check applies to the address actually connected to, on every new
//! connection (a name that later re-resolves to 127.0.0.1 is refused then).
//! Literal IP hosts never reach the resolver and are checked by [`check_literal`];
//! through an egress proxy, [`check_resolved`] vets the destination before the
//! proxy is asked to connect.

use std::net::SocketAddr;
use std::sync::Arc;

use hookd_core::policy::DestinationPolicy;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// A resolver that refuses a name when any of its addresses is forbidden.
#[derive(Debug, Clone)]
pub struct GuardedResolver(pub Arc<DestinationPolicy>);

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// `host`'s addresses, all allowed by `policy`: a name that resolves to any
/// forbidden address is refused outright (not narrowed to its allowed ones): it
/// is pointed at the inside on purpose, or soon will be.
pub(crate) async fn resolve_vetted(
    policy: &DestinationPolicy,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, Refused> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| Refused(format!("cannot resolve {host}: {e}")))?
        .collect();
    if addrs.is_empty() {
        return Err(Refused(format!("{host} resolves to no address")));
    }
    let refusals: Vec<String> = addrs.iter().filter_map(|a| policy.check_ip(a.ip()).err()).collect();
    if let Some(first) = refusals.first() {
        return Err(Refused(format!("{host}: {first}")));
    }
    Ok(addrs)
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.0.clone();
        Box::pin(async move {
            match resolve_vetted(&policy, name.as_str(), 0).await {
                Ok(addrs) => {
                    let addrs: Addrs = Box::new(addrs.into_iter());
                    Ok(addrs)
                }
                Err(refused) => {
                    let err: Box<dyn std::error::Error + Send + Sync> = Box::new(refused);
                    Err(err)
                }
            }
        })
    }
}

/// Refuses a URL whose scheme, or literal IP host, the policy forbids.
pub fn check_literal(policy: &DestinationPolicy, url: &reqwest::Url) -> Result<(), Refused> {
    policy.check_scheme(url.scheme()).map_err(Refused)?;
    match hookd_core::net::literal_ip(url) {
        Some(ip) => policy.check_ip(ip).map_err(Refused),
        None => Ok(()),
    }
}

/// Vets a URL's host name by resolving it here, for connections an egress
/// proxy makes: the proxy is asked to connect only to a name whose every
/// address the policy allows.
pub async fn check_resolved(policy: &DestinationPolicy, url: &reqwest::Url) -> Result<(), Refused> {
    match url.host() {
        Some(url::Host::Domain(name)) => {
            resolve_vetted(policy, name, url.port_or_known_default().unwrap_or(443)).await.map(|_| ())
        }
        _ => Ok(()),
    }
}
