//! Which addresses count as private for `--require-private-endpoints`: RFC 1918, RFC 6598
//! (carrier-grade NAT, used by some VPC set-ups), IPv6 unique local (`fc00::/7`), link-local and
//! loopback. Everything else is public, including the unspecified address.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The class of one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressKind {
    /// `10/8`, `172.16/12`, `192.168/16` (RFC 1918).
    Rfc1918,
    /// `100.64/10` (RFC 6598 shared address space).
    Rfc6598,
    /// `fc00::/7` (IPv6 unique local).
    UniqueLocal,
    /// `169.254/16`, `fe80::/10`.
    LinkLocal,
    /// `127/8`, `::1`.
    Loopback,
    /// Anything else.
    Public,
}

impl AddressKind {
    pub fn is_private(self) -> bool {
        self != AddressKind::Public
    }

    /// How `doctor` and errors name the class.
    pub fn label(self) -> &'static str {
        match self {
            AddressKind::Rfc1918 => "private, RFC 1918",
            AddressKind::Rfc6598 => "private, RFC 6598",
            AddressKind::UniqueLocal => "private, unique local",
            AddressKind::LinkLocal => "private, link-local",
            AddressKind::Loopback => "private, loopback",
            AddressKind::Public => "public",
        }
    }
}

impl fmt::Display for AddressKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Classifies an address; an IPv4-mapped IPv6 address is classified as its IPv4 address.
pub fn classify(ip: IpAddr) -> AddressKind {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => classify_v4(v4),
            None => classify_v6(v6),
        },
    }
}

fn classify_v4(ip: Ipv4Addr) -> AddressKind {
    let [a, b, ..] = ip.octets();
    if ip.is_loopback() {
        AddressKind::Loopback
    } else if ip.is_private() {
        AddressKind::Rfc1918
    } else if a == 100 && (64..128).contains(&b) {
        AddressKind::Rfc6598
    } else if ip.is_link_local() {
        AddressKind::LinkLocal
    } else {
        AddressKind::Public
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddressKind {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        AddressKind::Loopback
    } else if first & 0xfe00 == 0xfc00 {
        AddressKind::UniqueLocal
    } else if first & 0xffc0 == 0xfe80 {
        AddressKind::LinkLocal
    } else {
        AddressKind::Public
    }
}

/// The addresses of `addrs` that are public (only the tests ask).
#[cfg(test)]
fn public_of(addrs: &[IpAddr]) -> Vec<IpAddr> {
    addrs.iter().copied().filter(|ip| !classify(*ip).is_private()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(s: &str) -> AddressKind {
        classify(s.parse().expect("an address"))
    }

    #[test]
    fn private_ranges_and_their_edges() {
        for (addr, expected) in [
            ("10.0.0.1", AddressKind::Rfc1918),
            ("10.255.255.255", AddressKind::Rfc1918),
            ("172.16.0.1", AddressKind::Rfc1918),
            ("172.31.255.254", AddressKind::Rfc1918),
            ("192.168.1.1", AddressKind::Rfc1918),
            ("100.64.0.1", AddressKind::Rfc6598),
            ("100.127.255.254", AddressKind::Rfc6598),
            ("169.254.170.23", AddressKind::LinkLocal),
            ("127.0.0.1", AddressKind::Loopback),
            ("127.9.9.9", AddressKind::Loopback),
            ("::1", AddressKind::Loopback),
            ("fd00:ec2::23", AddressKind::UniqueLocal),
            ("fc00::1", AddressKind::UniqueLocal),
            ("fe80::1", AddressKind::LinkLocal),
            ("::ffff:10.1.2.3", AddressKind::Rfc1918),
        ] {
            assert_eq!(kind(addr), expected, "{addr}");
            assert!(expected.is_private());
        }
    }

    #[test]
    fn everything_else_is_public() {
        for addr in [
            "203.0.113.10",
            "52.94.133.131",
            "172.15.255.255",
            "172.32.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "11.0.0.1",
            "0.0.0.0",
            "::",
            "2600:1f18::1",
            "fe00::1",
            "::ffff:203.0.113.10",
            "64:ff9b::cb00:710a",
        ] {
            assert_eq!(kind(addr), AddressKind::Public, "{addr}");
        }
        let addrs: Vec<IpAddr> = ["10.0.0.1", "203.0.113.10"].iter().map(|a| a.parse().unwrap()).collect();
        assert_eq!(public_of(&addrs), vec![addrs[1]]);
    }
}
