//! Stage 1: the client IP. The socket peer, unless the peer is a trusted proxy; only then are
//! `X-Forwarded-For` and `Forwarded` read, right to left, skipping further trusted hops.

use std::net::IpAddr;

use hyper::header::{HeaderMap, HeaderName};

use super::ip_rules::CidrSet;
use crate::config::parse_cidr;

/// The trusted-proxy CIDRs.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    nets: CidrSet,
}

static FORWARDED: HeaderName = HeaderName::from_static("forwarded");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

impl TrustedProxies {
    /// Builds from validated CIDR strings (config validation has already rejected bad ones).
    pub fn new(list: &[String]) -> TrustedProxies {
        TrustedProxies { nets: CidrSet::new(list.iter().filter_map(|s| parse_cidr(s).ok())) }
    }

    /// Whether `ip` is a trusted proxy.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.nets.contains(ip)
    }

    /// The client address of a request that arrived from `peer`. Every `X-Forwarded-For` line
    /// is read, last line first, because a proxy may append its own line rather than extend
    /// the first. `Forwarded` is read only when no `X-Forwarded-For` is present at all, so a
    /// client cannot switch headers by making one unreadable. An unreadable hop ends the walk at
    /// the last trusted one.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let xff = headers.get_all(&X_FORWARDED_FOR);
        if xff.iter().next().is_some() {
            let hops = xff.iter().rev().flat_map(|line| match line.to_str() {
                Ok(v) => either_hops(Some(v.rsplit(',').map(str::trim)), None),
                Err(_) => either_hops(None, Some("")),
            });
            return self.rightmost_untrusted(hops).unwrap_or(peer);
        }
        let fwd = headers.get_all(&FORWARDED);
        if fwd.iter().next().is_some() {
            let hops = fwd.iter().rev().flat_map(|line| match line.to_str() {
                Ok(v) => either_hops(
                    Some(v.rsplit(',').map(|elem| {
                        elem.split(';')
                            .find_map(|pair| {
                                let (k, val) = pair.trim().split_once('=')?;
                                k.trim().eq_ignore_ascii_case("for").then_some(val)
                            })
                            .map_or("", strip_forwarded)
                    })),
                    None,
                ),
                Err(_) => either_hops(None, Some("")),
            });
            return self.rightmost_untrusted(hops).unwrap_or(peer);
        }
        peer
    }

    fn rightmost_untrusted<'a>(&self, hops: impl Iterator<Item = &'a str>) -> Option<IpAddr> {
        let mut last = None;
        for hop in hops {
            // A hop we cannot parse ends the chain: anything left of it is client-controlled.
            let Some(ip) = parse_hop(hop) else { return last };
            last = Some(ip);
            if !self.trusts(ip) {
                return Some(ip);
            }
        }
        last
    }
}

/// The hops of one header line, or a single unparsable hop for an unreadable line.
fn either_hops<'a, I: Iterator<Item = &'a str>>(hops: Option<I>, bad: Option<&'a str>) -> impl Iterator<Item = &'a str> {
    hops.into_iter().flatten().chain(bad)
}

/// `"[2001:db8::1]:443"` → `2001:db8::1`, `"192.0.2.1:80"` → `192.0.2.1`.
fn strip_forwarded(v: &str) -> &str {
    let v = v.trim().trim_matches('"');
    if let Some(rest) = v.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match v.split_once(':') {
        Some((host, port)) if !port.contains(':') => host,
        _ => v,
    }
}

fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse().ok().or_else(|| strip_forwarded(hop).parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(peer: &str, headers: &[(&str, &str)], want: &str) {
        let tp = TrustedProxies::new(&["127.0.0.0/8".into(), "10.0.0.0/8".into()]);
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        assert_eq!(tp.client_ip(peer.parse().unwrap(), &map), want.parse::<IpAddr>().unwrap(), "{peer} {headers:?}");
    }

    #[test]
    fn unreadable_xff_does_not_fall_through_to_forwarded() {
        let tp = TrustedProxies::new(&["127.0.0.0/8".into()]);
        let mut map = HeaderMap::new();
        map.append(X_FORWARDED_FOR.clone(), hyper::header::HeaderValue::from_bytes(b"\xff").unwrap());
        map.append(FORWARDED.clone(), "for=6.6.6.6".parse().unwrap());
        assert_eq!(tp.client_ip("127.0.0.1".parse().unwrap(), &map), "127.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn resolves_client_ip() {
        check("203.0.113.9", &[("x-forwarded-for", "1.2.3.4")], "203.0.113.9");
        check("127.0.0.1", &[], "127.0.0.1");
        check("127.0.0.1", &[("x-forwarded-for", "1.2.3.4")], "1.2.3.4");
        check("127.0.0.1", &[("x-forwarded-for", "6.6.6.6, 1.2.3.4, 10.0.0.2")], "1.2.3.4");
        check("127.0.0.1", &[("x-forwarded-for", "garbage, 10.0.0.2")], "10.0.0.2");
        check("127.0.0.1", &[("x-forwarded-for", "2001:db8::7")], "2001:db8::7");
        check("127.0.0.1", &[("forwarded", "for=192.0.2.60;proto=http;by=203.0.113.43")], "192.0.2.60");
        check("127.0.0.1", &[("forwarded", "for=\"[2001:db8:cafe::17]:4711\"")], "2001:db8:cafe::17");
        check("127.0.0.1", &[("forwarded", "for=192.0.2.1:8080, for=10.0.0.5")], "192.0.2.1");
        // A proxy that appends its own line: the last line is the one it wrote.
        check("127.0.0.1", &[("x-forwarded-for", "6.6.6.6"), ("x-forwarded-for", "1.2.3.4")], "1.2.3.4");
        // Present XFF always wins over Forwarded, even when XFF cannot be read.
        check("127.0.0.1", &[("x-forwarded-for", "1.2.3.4"), ("forwarded", "for=6.6.6.6")], "1.2.3.4");
    }
}
