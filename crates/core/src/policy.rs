//! Where webhooks may go: the destination policy, applied to the URL's scheme
//! and to every address a connection would use (after DNS resolution).
//!
//! The server's policy (`--https-only`, `--allowed-networks`,
//! `--blocked-networks`, `--allow-private-networks`) holds for everyone; an
//! organisation's policy can only narrow it. A network the server's operator
//! allows explicitly admits addresses the default block list refuses (an
//! internal receiver network, say); an organisation's allow list cannot.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::net::is_forbidden;

/// Most networks in one list.
pub const MAX_NETWORKS: usize = 256;

/// An IP network: an address and a prefix length (`10.0.0.0/8`, `2001:db8::/32`;
/// a bare address is a single host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| format!("`{s}` is not an IP network like 10.0.0.0/8"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{s}`: the prefix length must be 0 to {max}"))?,
        };
        // An IPv4-mapped network (`::ffff:10.0.0.0/104`) is the IPv4 network.
        if let IpAddr::V6(v6) = addr {
            if let (Some(v4), true) = (v6.to_ipv4_mapped(), prefix >= 96) {
                return Ok(Network { addr: IpAddr::V4(v4), prefix: prefix - 96 });
            }
        }
        Ok(Network { addr, prefix })
    }

    /// Whether `ip` is in the network. An IPv6 address carrying an IPv4 one
    /// (mapped, compatible, NAT64) is in an IPv4 network when the IPv4 address is.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => match crate::net::embedded_v4(v6) {
                Some(v4) => IpAddr::V4(v4),
                None => return false,
            },
            _ => ip,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// An organisation's narrowing of the server's policy, as stored and as the
/// API shows it (`destinationPolicy` of an environment).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrgPolicy {
    /// Only `https` endpoints.
    #[serde(default)]
    pub https_only: bool,
    /// When not empty, only these networks may be reached.
    #[serde(default)]
    pub allowed_networks: Vec<String>,
    /// Never these networks.
    #[serde(default)]
    pub blocked_networks: Vec<String>,
}

impl OrgPolicy {
    /// Checks the lists; the error names the offending entry.
    pub fn validate(&self) -> Result<(), String> {
        for (name, list) in [("allowedNetworks", &self.allowed_networks), ("blockedNetworks", &self.blocked_networks)] {
            if list.len() > MAX_NETWORKS {
                return Err(format!("{name} holds at most {MAX_NETWORKS} networks"));
            }
            for n in list {
                Network::parse(n).map_err(|e| format!("{name}: {e}"))?;
            }
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        *self == OrgPolicy::default()
    }

    /// What a stored policy that cannot be read stands for: nothing may be
    /// reached (failing closed) until it is set again.
    pub fn unreadable() -> Self {
        OrgPolicy {
            https_only: true,
            allowed_networks: Vec::new(),
            blocked_networks: vec!["0.0.0.0/0".into(), "::/0".into()],
        }
    }
}

/// The policy one delivery is held to: the server's, narrowed by its
/// organisation's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DestinationPolicy {
    pub https_only: bool,
    /// Skip the default block list of private and reserved ranges.
    pub allow_private: bool,
    /// The server's allow list: when not empty, only these (and they pass the
    /// default block list).
    pub allowed: Vec<Network>,
    pub blocked: Vec<Network>,
    /// The organisation's allow list: when not empty, also only these.
    pub org_allowed: Vec<Network>,
}

impl DestinationPolicy {
    /// The server's policy narrowed by `org` (whose lists were validated when stored).
    pub fn narrowed(&self, org: &OrgPolicy) -> DestinationPolicy {
        let parse = |l: &[String]| l.iter().filter_map(|n| Network::parse(n).ok()).collect::<Vec<_>>();
        let mut out = self.clone();
        out.https_only |= org.https_only;
        out.blocked.extend(parse(&org.blocked_networks));
        out.org_allowed = parse(&org.allowed_networks);
        out
    }

    /// Whether nothing beyond the default block list (or nothing at all) applies.
    pub fn is_default(&self) -> bool {
        !self.https_only && self.allowed.is_empty() && self.blocked.is_empty() && self.org_allowed.is_empty()
    }

    /// Whether addresses need checking at all (else any resolved address goes).
    pub fn checks_addresses(&self) -> bool {
        !self.allow_private || !self.allowed.is_empty() || !self.blocked.is_empty() || !self.org_allowed.is_empty()
    }

    pub fn check_scheme(&self, scheme: &str) -> Result<(), String> {
        if self.https_only && scheme != "https" {
            return Err("refused: only https endpoints may be reached (https-only policy)".into());
        }
        Ok(())
    }

    /// Why `ip` may not be reached, if it may not.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), String> {
        if let Some(n) = self.blocked.iter().find(|n| n.contains(ip)) {
            return Err(format!("refused: {ip} is in the blocked network {n}"));
        }
        if !self.org_allowed.is_empty() && !self.org_allowed.iter().any(|n| n.contains(ip)) {
            return Err(format!("refused: {ip} is outside the organisation's allowed networks"));
        }
        if !self.allowed.is_empty() {
            return match self.allowed.iter().any(|n| n.contains(ip)) {
                true => Ok(()),
                false => Err(format!("refused: {ip} is outside the allowed networks")),
            };
        }
        if !self.allow_private && is_forbidden(ip) {
            return Err(format!("refused: {ip} is a private or reserved address"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_parse_and_contain() {
        let n = Network::parse("10.0.0.0/8").unwrap();
        assert!(n.contains(ip("10.255.1.2")) && !n.contains(ip("11.0.0.1")));
        assert!(n.contains(ip("::ffff:10.1.1.1")), "mapped IPv6 is judged as IPv4");
        assert!(n.contains(ip("64:ff9b::a01:101")), "so is NAT64");
        let mapped = Network::parse("::ffff:169.254.169.254").unwrap();
        assert!(mapped.contains(ip("169.254.169.254")) && mapped.contains(ip("::ffff:169.254.169.254")));
        assert_eq!(Network::parse("::ffff:0:0/96").unwrap().to_string(), "0.0.0.0/0");
        assert!(Network::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Network::parse("2001:db8::/32").unwrap().contains(ip("2001:db8:1::1")));
        assert!(!Network::parse("2001:db8::/32").unwrap().contains(ip("10.0.0.1")));
        assert!(Network::parse("127.0.0.2").unwrap().contains(ip("127.0.0.2")));
        assert!(!Network::parse("127.0.0.2").unwrap().contains(ip("127.0.0.1")));
        for bad in ["10.0.0.0/33", "nope", "10.0.0.0/x", "::/129", ""] {
            assert!(Network::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_server_policy_narrowed_by_an_organisation() {
        let server = DestinationPolicy {
            allowed: vec![Network::parse("10.1.0.0/16").unwrap(), Network::parse("8.8.0.0/16").unwrap()],
            ..Default::default()
        };
        assert_eq!(server.check_ip(ip("10.1.2.3")), Ok(()), "an operator's allow list passes the default block list");
        assert!(server.check_ip(ip("10.2.0.1")).is_err());
        assert!(server.check_ip(ip("1.1.1.1")).is_err());
        let org = OrgPolicy {
            https_only: true,
            allowed_networks: vec!["8.8.8.0/24".into()],
            blocked_networks: vec!["8.8.8.8".into()],
        };
        let p = server.narrowed(&org);
        assert!(p.check_scheme("http").is_err() && p.check_scheme("https").is_ok());
        assert!(p.check_ip(ip("8.8.8.8")).unwrap_err().contains("blocked"));
        assert_eq!(p.check_ip(ip("8.8.8.9")), Ok(()));
        assert!(p.check_ip(ip("8.8.9.1")).unwrap_err().contains("organisation"));
        assert!(p.check_ip(ip("10.1.2.3")).is_err(), "an organisation cannot widen the server's policy");

        let open = DestinationPolicy::default();
        assert!(open.check_ip(ip("127.0.0.1")).is_err());
        let org_allows_private = OrgPolicy { allowed_networks: vec!["127.0.0.0/8".into()], ..Default::default() };
        assert!(open.narrowed(&org_allows_private).check_ip(ip("127.0.0.1")).is_err());
        assert!(OrgPolicy { blocked_networks: vec!["x".into()], ..Default::default() }.validate().is_err());
    }
}
