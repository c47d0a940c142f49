//! Which addresses outbound webhooks may reach.
//!
//! By default hookd refuses to deliver to any address that is not globally routable
//! (loopback, private, link-local, CGNAT, multicast, unspecified, documentation,
//! benchmarking and cloud-metadata ranges), so that an endpoint URL cannot be used
//! to probe the network hookd runs in. IPv4-mapped and IPv4-compatible IPv6
//! addresses are judged by the IPv4 address they carry.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// True when webhooks must not be sent to `ip` unless private networks are allowed.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_forbidden_v4(v4),
        IpAddr::V6(v6) => is_forbidden_v6(v6),
    }
}

fn is_forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local() // 169.254/16, includes the 169.254.169.254 metadata service
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // CGNAT 100.64/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments 192.0.0/24
        || (a == 198 && (b == 18 || b == 19)) // benchmarking 198.18/15
        || a >= 240 // reserved 240/4
        || (a == 192 && b == 88 && c == 99) // 6to4 relay anycast
}

fn is_forbidden_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = embedded_v4(ip) {
        return is_forbidden_v4(v4);
    }
    let seg = ip.segments();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (seg[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
        || (seg[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
        || (seg[0] & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
        || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation 2001:db8::/32
        || (seg[0] == 0x3fff && seg[1] < 0x1000) // documentation 3fff::/20
        || (seg[0] == 0x0100 && seg[1] == 0 && seg[2] == 0 && seg[3] == 0) // discard 100::/64
        || (seg[0] == 0xfd00 && seg[1..7] == [0; 6] && seg[7] == 0x0254) // AWS metadata fd00:ec2::254
        || (seg[0] == 0x2001 && seg[1] < 0x0200) // IETF protocol assignments 2001::/23
        || seg[0] == 0x2002 // 6to4: carries an arbitrary IPv4 address
        || (seg[0] == 0x0064 && seg[1] == 0xff9b && seg[2] == 0x0001) // local-use NAT64 64:ff9b:1::/48
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible
/// (`::a.b.c.d`) or well-known NAT64 (`64:ff9b::a.b.c.d`) IPv6 address.
pub(crate) fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let seg = ip.segments();
    // Well-known NAT64 (64:ff9b::/96): DNS64 networks give every IPv4-only host
    // such an address; it is judged by the IPv4 address it carries.
    if seg[..6] == [0x0064, 0xff9b, 0, 0, 0, 0] {
        let [.., a, b, c, d] = ip.octets();
        return Some(Ipv4Addr::new(a, b, c, d));
    }
    if seg[..5] == [0; 5] && (seg[5] == 0xffff || (seg[5] == 0 && !ip.is_loopback() && !ip.is_unspecified())) {
        let [.., a, b, c, d] = ip.octets();
        return Some(Ipv4Addr::new(a, b, c, d));
    }
    None
}

/// The URL's host when it is a literal IP address. Hosts of schemes the URL
/// standard does not know (`redis:`, `nats:`) are kept as text: they are read
/// here too, so `nats://127.0.0.1/…` is an address like `http://127.0.0.1/`.
pub fn literal_ip(url: &url::Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(v4) => Some(v4.into()),
        url::Host::Ipv6(v6) => Some(v6.into()),
        url::Host::Domain(d) => d.trim_start_matches('[').trim_end_matches(']').parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_addresses() {
        let forbidden = [
            "127.0.0.1",
            "127.9.9.9",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "198.18.0.1",
            "240.0.0.1",
            "192.0.0.8",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "fd00:ec2::254",
            "64:ff9b::a00:1",
            "64:ff9b::7f00:1",
            "64:ff9b:1::1",
            "2002:a00:1::",
            "3fff::1",
            "3fff:fff:ffff::1",
            "100::1",
            "192.88.99.1",
            "198.19.255.255",
        ];
        for s in forbidden {
            assert!(is_forbidden(s.parse().unwrap()), "{s} should be forbidden");
        }
        let allowed = [
            "8.8.8.8",
            "1.1.1.1",
            "100.128.0.1",
            "172.32.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "3ffe::1",
            "4000::1",
        ];
        for s in allowed {
            assert!(!is_forbidden(s.parse().unwrap()), "{s} should be allowed");
        }
    }
}
