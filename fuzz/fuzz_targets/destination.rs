//! URL and address classification: never panics, and no URL the API accepts
//! with private networks refused carries a forbidden literal address.
#![no_main]

use hookd_core::net::is_forbidden;
use hookd_core::policy::{DestinationPolicy, Network, OrgPolicy};
use hookd_core::validate::EndpointUrl;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(accepted) = EndpointUrl::parse(s, false) {
        let url = url::Url::parse(accepted.as_str()).expect("an accepted URL parses");
        let ip: Option<std::net::IpAddr> = match url.host() {
            Some(url::Host::Ipv4(v4)) => Some(v4.into()),
            Some(url::Host::Ipv6(v6)) => Some(v6.into()),
            _ => None,
        };
        if let Some(ip) = ip {
            assert!(!is_forbidden(ip), "{s} was accepted but {ip} is forbidden");
            assert!(DestinationPolicy::default().check_ip(ip).is_ok());
        }
    }
    // "network address" pairs: parsing and matching never panic, and a network
    // contains its own address.
    let mut words = s.split_whitespace();
    if let (Some(n), Some(a)) = (words.next(), words.next()) {
        if let Ok(net) = Network::parse(n) {
            if let Ok(ip) = a.parse() {
                let _ = net.contains(ip);
                let policy = DestinationPolicy::default()
                    .narrowed(&OrgPolicy { blocked_networks: vec![n.to_string()], ..Default::default() });
                if net.contains(ip) {
                    assert!(policy.check_ip(ip).is_err(), "{ip} in the blocked {net} was allowed");
                }
            }
        }
    }
});
