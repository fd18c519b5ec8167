//! CIDR deny and allow lists as sorted, merged ranges: one binary search per lookup, however
//! long the lists are.

use std::net::IpAddr;

use ipnet::IpNet;

use super::{Check, Click, Findings, Reason};
use crate::config::{self, parse_cidr, Action};

/// Maps an address into one u128 space; IPv4 becomes `::ffff:a.b.c.d`.
pub fn ip_key(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => u128::from(v4.to_ipv6_mapped()),
            None => u128::from(v6),
        },
    }
}

/// The key of the client an address stands for: an IPv4 address whole, an IPv6 address by its
/// /64. A /64 is one subscriber's network (a home or a phone gets a /64 or more), so every
/// interface id inside it is the same client: rotating them evades nothing keyed by this.
pub fn client_key(ip: IpAddr) -> u128 {
    let k = ip_key(ip);
    if k >> 32 == 0xffff {
        k
    } else {
        k & !u128::from(u64::MAX)
    }
}

/// Who a click comes from, as the per-client and per-subnet rules count it: the client
/// (`client_key`) and its subnet (`subnet_key`). The edge takes both from the address; a
/// replay of the click log (`clickgate rescore`), whose addresses are truncated, takes the
/// client from the event's client tag instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    pub key: u128,
    pub subnet: u64,
}

impl Client {
    /// The client and subnet of an address.
    pub fn of(ip: IpAddr) -> Client {
        let key = client_key(ip);
        Client { key, subnet: super::rate_limit::subnet_of(key) }
    }

    /// A client known by its tag (a keyed hash of its `client_key`) and an address it was
    /// truncated to. An IPv4 address keeps its /24, which is its subnet; an IPv6 client is its
    /// /64, so the tag is its subnet too. A tag's key sits in a range no address maps to
    /// (`ip_key` gives IPv4 the `::ffff:0:0/96` prefix and IPv6 its own bits; tags set the
    /// top bit and the next, which only `c000::/2` shares, an unassigned range).
    pub fn tagged(tag: u64, truncated: Option<IpAddr>) -> Client {
        let key = (0b11u128 << 126) | u128::from(tag);
        let subnet = match truncated {
            Some(ip) if client_key(ip) >> 32 == 0xffff => super::rate_limit::subnet_key(ip),
            _ => tag | (1 << 63),
        };
        Client { key, subnet }
    }
}

/// A set of CIDR ranges.
#[derive(Debug, Clone, Default)]
pub struct CidrSet {
    /// Sorted, non-overlapping, inclusive ranges.
    ranges: Box<[(u128, u128)]>,
}

impl CidrSet {
    /// Builds the set from parsed networks.
    pub fn new(nets: impl IntoIterator<Item = IpNet>) -> CidrSet {
        let mut ranges: Vec<(u128, u128)> = nets
            .into_iter()
            .map(|n| {
                let (lo, hi) = (ip_key(n.network()), ip_key(n.broadcast()));
                (lo, hi)
            })
            .collect();
        ranges.sort_unstable();
        let mut merged: Vec<(u128, u128)> = Vec::with_capacity(ranges.len());
        for (lo, hi) in ranges {
            match merged.last_mut() {
                Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        CidrSet { ranges: merged.into_boxed_slice() }
    }

    /// Parses and builds; the error names the bad entry.
    pub fn parse(list: &[String]) -> Result<CidrSet, String> {
        let nets = list.iter().map(|s| parse_cidr(s)).collect::<Result<Vec<_>, _>>()?;
        Ok(CidrSet::new(nets))
    }

    /// Whether `ip` falls in any range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let k = ip_key(ip);
        let i = self.ranges.partition_point(|&(lo, _)| lo <= k);
        i > 0 && self.ranges[i - 1].1 >= k
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}

/// The deny/allow stage.
pub struct IpRules {
    pub deny: CidrSet,
    pub allow: CidrSet,
    action: Action,
}

impl IpRules {
    /// Builds both lists.
    pub fn build(cfg: &config::IpRules) -> Result<IpRules, String> {
        Ok(IpRules { deny: CidrSet::parse(&cfg.deny)?, allow: CidrSet::parse(&cfg.allow)?, action: cfg.deny_action })
    }
}

impl Check for IpRules {
    fn run(&self, click: &Click<'_>, findings: &mut Findings) {
        if !self.deny.is_empty() && self.deny.contains(click.ip) && !self.allow.contains(click.ip) {
            findings.hit(Reason::IpDenylisted, self.action);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(list: &[&str]) -> CidrSet {
        CidrSet::parse(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn contains_matches_ranges() {
        let s = set(&["10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "10.1.0.0/16"]);
        for (ip, want) in [
            ("10.0.0.0", true),
            ("10.255.255.255", true),
            ("11.0.0.0", false),
            ("9.255.255.255", false),
            ("192.0.2.7", true),
            ("192.0.2.8", false),
            ("2001:db8:ffff::1", true),
            ("2001:db9::1", false),
            ("::ffff:10.2.3.4", true),
        ] {
            assert_eq!(s.contains(ip.parse().unwrap()), want, "{ip}");
        }
    }

    #[test]
    fn rejects_bad_entries() {
        assert!(parse_cidr("10.0.0.1/8").unwrap_err().contains("did you mean 10.0.0.0/8"));
        assert!(parse_cidr("banana").unwrap_err().contains("not a CIDR"));
        assert!(parse_cidr("10.0.0.0/33").is_err());
    }
}
