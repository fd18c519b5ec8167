//! Which addresses a webhook may reach: everything globally routable, and nothing on the
//! machine, its networks or its cloud's metadata service. IPv6 forms that carry an IPv4 address
//! (mapped, translated, compatible, NAT64, 6to4) are judged by the address they carry, since a
//! dual-stack socket or a gateway delivers them there.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is refused: a closed set, for the error and the metrics' labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    /// `0.0.0.0` and `::`: Linux connects them to the machine itself.
    Unspecified,
    /// `0.0.0.0/8`, "this network".
    ThisNetwork,
    /// `127.0.0.0/8` and `::1`.
    Loopback,
    /// RFC 1918: `10/8`, `172.16/12`, `192.168/16`.
    Private,
    /// `100.64.0.0/10`, carrier-grade NAT's shared space.
    SharedAddressSpace,
    /// `169.254/16` and `fe80::/10`.
    LinkLocal,
    /// A cloud's instance metadata service (`169.254.169.254`, `100.100.100.200`,
    /// `fd00:ec2::254`), refused even when an allowlist covers it.
    CloudMetadata,
    /// `224/4` and `ff00::/8`.
    Multicast,
    /// `255.255.255.255`.
    Broadcast,
    /// `192.0.2/24`, `198.51.100/24`, `203.0.113/24`, `2001:db8::/32`, `3fff::/20`.
    Documentation,
    /// `198.18/15` and `2001:2::/48`.
    Benchmarking,
    /// `fc00::/7`, unique local addresses.
    UniqueLocal,
    /// `fec0::/10`, the deprecated site-local block.
    SiteLocal,
    /// Teredo, `2001::/32`: the client address it embeds is obfuscated and its relay is anyone's.
    Tunnel,
    /// Everything else not globally routable: `240/4`, `192.0.0/24`, `192.88.99/24`, IPv6
    /// outside `2000::/3`, the rest of `2001::/23`, `64:ff9b:1::/48`, `5f00::/16`.
    Reserved,
}

impl Refusal {
    /// The label spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Unspecified => "unspecified",
            Refusal::ThisNetwork => "this_network",
            Refusal::Loopback => "loopback",
            Refusal::Private => "private",
            Refusal::SharedAddressSpace => "shared_address_space",
            Refusal::LinkLocal => "link_local",
            Refusal::CloudMetadata => "cloud_metadata",
            Refusal::Multicast => "multicast",
            Refusal::Broadcast => "broadcast",
            Refusal::Documentation => "documentation",
            Refusal::Benchmarking => "benchmarking",
            Refusal::UniqueLocal => "unique_local",
            Refusal::SiteLocal => "site_local",
            Refusal::Tunnel => "tunnel",
            Refusal::Reserved => "reserved",
        }
    }
}

/// Why `ip` is refused, or `None` when a webhook may reach it.
pub fn refusal(ip: IpAddr) -> Option<Refusal> {
    match ip {
        IpAddr::V4(v4) => refusal_v4(v4),
        IpAddr::V6(v6) => refusal_v6(v6),
    }
}

fn refusal_v4(ip: Ipv4Addr) -> Option<Refusal> {
    let r = match ip.octets() {
        [0, 0, 0, 0] => Refusal::Unspecified,
        [255, 255, 255, 255] => Refusal::Broadcast,
        [169, 254, 169, 254] | [100, 100, 100, 200] => Refusal::CloudMetadata,
        [0, ..] => Refusal::ThisNetwork,
        [10, ..] | [172, 16..=31, ..] | [192, 168, ..] => Refusal::Private,
        [100, 64..=127, ..] => Refusal::SharedAddressSpace,
        [127, ..] => Refusal::Loopback,
        [169, 254, ..] => Refusal::LinkLocal,
        [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _] => Refusal::Documentation,
        [198, 18..=19, ..] => Refusal::Benchmarking,
        [192, 0, 0, _] | [192, 88, 99, _] => Refusal::Reserved,
        [224..=239, ..] => Refusal::Multicast,
        [240..=255, ..] => Refusal::Reserved,
        _ => return None,
    };
    Some(r)
}

fn refusal_v6(ip: Ipv6Addr) -> Option<Refusal> {
    if ip.is_unspecified() {
        return Some(Refusal::Unspecified);
    }
    if ip.is_loopback() {
        return Some(Refusal::Loopback);
    }
    if let Some(v4) = embedded_v4(ip) {
        return refusal_v4(v4);
    }
    let s = ip.segments();
    let r = match s {
        [0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254] => Refusal::CloudMetadata,
        [0xfc00..=0xfdff, ..] => Refusal::UniqueLocal,
        [0xfe80..=0xfebf, ..] => Refusal::LinkLocal,
        [0xfec0..=0xfeff, ..] => Refusal::SiteLocal,
        [0xff00..=0xffff, ..] => Refusal::Multicast,
        [0x2001, 0x0db8, ..] => Refusal::Documentation,
        [0x3fff, 0..=0x0fff, ..] => Refusal::Documentation,
        [0x2001, 0, ..] => Refusal::Tunnel,
        [0x2001, 2, 0, ..] => Refusal::Benchmarking,
        [0x2001, 0..=0x01ff, ..] | [0x5f00, ..] => Refusal::Reserved,
        // Only 2000::/3 is global unicast; the rest (64:ff9b:1::/48, 100::/64, …) is not.
        [first, ..] if first & 0xe000 != 0x2000 => Refusal::Reserved,
        _ => return None,
    };
    Some(r)
}

/// The IPv4 address an IPv6 address carries: IPv4-mapped `::ffff:a.b.c.d`, IPv4-translated
/// `::ffff:0:a.b.c.d`, IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::a.b.c.d` and 6to4
/// `2002:aabb:ccdd::/48`.
pub fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        [0, 0, 0, 0, 0, 0xffff, hi, lo] | [0, 0, 0, 0, 0xffff, 0, hi, lo] | [0, 0, 0, 0, 0, 0, hi, lo] => Some(v4(hi, lo)),
        [0x0064, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(v4(hi, lo)),
        [0x2002, hi, lo, ..] => Some(v4(hi, lo)),
        _ => None,
    }
}

/// The IPv4 address a socket actually reaches for `ip`: itself, or the address an
/// IPv4-mapped IPv6 address carries.
pub fn reached(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}
