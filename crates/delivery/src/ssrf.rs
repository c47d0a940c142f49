//! The SSRF guard: outbound connections may only reach public addresses unless
//! private networks are explicitly allowed.
//!
//! Names are checked after DNS resolution, inside the HTTP client's resolver, so
//! the check applies to the address actually connected to, on every new
//! connection (a name that later re-resolves to 127.0.0.1 is refused then).
//! Literal IP hosts never reach the resolver and are checked by [`check_literal`].

use std::net::{IpAddr, SocketAddr};

use hookd_core::net::is_forbidden;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// A resolver that drops forbidden addresses and fails when none is left.
#[derive(Debug, Clone)]
pub struct GuardedResolver;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            // A name that resolves to any forbidden address is refused outright
            // (not narrowed to its public ones): it is pointed at the inside on
            // purpose, or soon will be. Only vetted addresses are dialled.
            let forbidden: Vec<String> =
                addrs.iter().filter(|a| is_forbidden(a.ip())).map(|a| a.ip().to_string()).collect();
            if addrs.is_empty() {
                let err: Box<dyn std::error::Error + Send + Sync> =
                    Box::new(Refused(format!("{host} resolves to no address")));
                return Err(err);
            }
            if !forbidden.is_empty() {
                let err: Box<dyn std::error::Error + Send + Sync> = Box::new(Refused(format!(
                    "refused: {host} resolves to private or reserved addresses ({})",
                    forbidden.join(", ")
                )));
                return Err(err);
            }
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// Refuses a URL whose host is a literal forbidden IP address.
pub fn check_literal(url: &reqwest::Url) -> Result<(), Refused> {
    let ip: Option<IpAddr> = match url.host() {
        Some(url::Host::Ipv4(v4)) => Some(v4.into()),
        Some(url::Host::Ipv6(v6)) => Some(v6.into()),
        _ => None,
    };
    match ip {
        Some(ip) if is_forbidden(ip) => Err(Refused(format!("refused: {ip} is a private or reserved address"))),
        _ => Ok(()),
    }
}
