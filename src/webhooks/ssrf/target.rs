//! A webhook URL, checked strictly: its own reading of the authority, then the `url` crate's,
//! and the two must agree, so no parser differential (userinfo, backslashes, odd IPv4 forms,
//! percent-encoded hosts) lets one component see a different host than the one that connects.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{Policy, SsrfError};

/// Longest webhook URL accepted, in bytes.
pub const URL_BYTES_MAX: usize = 2048;

/// A URL's host: an address (checked at once) or a name (checked after each resolution).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Ip(IpAddr),
    /// Lower-case ASCII, as DNS compares it.
    Name(String),
}

/// A webhook URL that passed `check_url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    url: url::Url,
    host: Host,
    port: u16,
}

impl WebhookUrl {
    /// The URL, normalized by the `url` crate.
    pub fn as_str(&self) -> &str {
        self.url.as_str()
    }
    /// The host to resolve, or the address to connect to.
    pub fn host(&self) -> &Host {
        &self.host
    }
    /// The port, explicit or the scheme's default.
    pub fn port(&self) -> u16 {
        self.port
    }
    /// Whether the URL is `https`.
    pub fn is_https(&self) -> bool {
        self.url.scheme() == "https"
    }
    /// The request target: the path and the query.
    pub fn path_and_query(&self) -> &str {
        &self.url[url::Position::BeforePath..url::Position::AfterQuery]
    }
    /// The `Host` header's value: the host as written in the URL, with its port if it has one.
    pub fn authority(&self) -> &str {
        &self.url[url::Position::BeforeHost..url::Position::AfterPort]
    }
}

/// Checks a webhook URL at registration and before each attempt: `https` (or `http` when the
/// policy allows it), no userinfo, no fragment, a host that is a DNS name, a dotted-quad IPv4
/// address or a bracketed IPv6 address without a zone, and an address literal the policy
/// admits. Names are checked later, by `resolve_and_check`, on every resolution.
pub fn check_url(input: &str, policy: &Policy) -> Result<WebhookUrl, SsrfError> {
    if input.len() > URL_BYTES_MAX {
        return Err(SsrfError::TooLong);
    }
    if let Some(b) = input.bytes().find(|b| !b.is_ascii_graphic()) {
        return Err(if b.is_ascii() { SsrfError::ControlOrSpace } else { SsrfError::NonAscii });
    }
    if input.contains('\\') {
        return Err(SsrfError::Backslash);
    }
    let (scheme, rest) = input.split_once("://").ok_or_else(|| SsrfError::Scheme(String::new()))?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => 443,
        "http" if policy.allow_http => 80,
        "http" => return Err(SsrfError::HttpNotAllowed),
        _ => return Err(SsrfError::Scheme(scheme)),
    };
    if rest.contains('#') {
        return Err(SsrfError::Fragment);
    }
    let authority = &rest[..rest.find(['/', '?']).unwrap_or(rest.len())];
    if authority.contains('@') {
        return Err(SsrfError::Userinfo);
    }
    let (host, port) = split_authority(authority)?;
    let port = match port {
        None => default_port,
        Some(p) => parse_port(p)?,
    };
    if let Host::Ip(ip) = host {
        policy.check_ip(ip)?;
    }

    let url = url::Url::parse(input).map_err(|e| SsrfError::BadUrl(e.to_string()))?;
    let same_host = match (&host, url.host()) {
        (Host::Ip(IpAddr::V4(a)), Some(url::Host::Ipv4(b))) => *a == b,
        (Host::Ip(IpAddr::V6(a)), Some(url::Host::Ipv6(b))) => *a == b,
        (Host::Name(a), Some(url::Host::Domain(b))) => a == b,
        _ => false,
    };
    let agree = same_host
        && url.scheme() == scheme
        && url.username().is_empty()
        && url.password().is_none()
        && url.port_or_known_default() == Some(port);
    if !agree {
        return Err(SsrfError::Ambiguous);
    }
    Ok(WebhookUrl { url, host, port })
}

/// Splits `host[:port]` or `[v6][:port]`.
fn split_authority(authority: &str) -> Result<(Host, Option<&str>), SsrfError> {
    if let Some(bracketed) = authority.strip_prefix('[') {
        let (literal, after) = bracketed.split_once(']').ok_or_else(|| SsrfError::BadHost(authority.to_owned()))?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or(SsrfError::BadPort)?),
        };
        return Ok((Host::Ip(IpAddr::V6(parse_v6(literal)?)), port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Ok((parse_host(host)?, Some(port))),
        None => Ok((parse_host(authority)?, None)),
    }
}

fn parse_v6(literal: &str) -> Result<Ipv6Addr, SsrfError> {
    if literal.contains('%') {
        return Err(SsrfError::ZoneId);
    }
    literal.parse().map_err(|_| SsrfError::BadHost(format!("[{literal}]")))
}

fn parse_port(p: &str) -> Result<u16, SsrfError> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SsrfError::BadPort);
    }
    match p.parse::<u16>() {
        Ok(0) | Err(_) => Err(SsrfError::BadPort),
        Ok(port) => Ok(port),
    }
}

/// Reads a host as written in a URL, without brackets: a canonical dotted quad is an address;
/// anything a resolver or a browser would read as IPv4 in another form (`2130706433`,
/// `0x7f000001`, `0177.0.0.1`, `127.1`, `127.0.0.1.`) is refused as non-canonical, naming the
/// address it denotes; the rest must be a DNS name.
pub fn parse_host(host: &str) -> Result<Host, SsrfError> {
    if host.is_empty() {
        return Err(SsrfError::NoHost);
    }
    // Only a DNS name's characters: a `%` would be percent-decoded by a WHATWG parser into
    // another host.
    if !host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')) {
        return Err(SsrfError::BadHost(host.to_owned()));
    }
    if let Some(ip) = dotted_quad(host) {
        return Ok(Host::Ip(IpAddr::V4(ip)));
    }
    if ends_in_a_number(host) {
        return Err(SsrfError::NonCanonicalIpv4 { host: host.to_owned(), denotes: inet_aton(host) });
    }
    let name = host.to_ascii_lowercase();
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(SsrfError::BadHost(host.to_owned()));
    }
    Ok(Host::Name(name))
}

/// Four decimal octets without leading zeros: the only IPv4 spelling accepted.
fn dotted_quad(s: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = s.split('.');
    for o in &mut octets {
        let p = parts.next()?;
        let canonical = !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) && (p == "0" || !p.starts_with('0'));
        *o = if canonical { p.parse().ok()? } else { return None };
    }
    parts.next().is_none().then_some(Ipv4Addr::from(octets))
}

/// The WHATWG URL standard's test for a host its IPv4 parser claims: the last label (after at
/// most one trailing dot) is decimal digits or `0x` and hex digits.
fn ends_in_a_number(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    let last = host.rsplit('.').next().unwrap_or(host);
    if let Some(hex) = last.strip_prefix("0x").or_else(|| last.strip_prefix("0X")) {
        return hex.bytes().all(|b| b.is_ascii_hexdigit());
    }
    !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit())
}

/// The address an odd IPv4 form denotes, as `inet_aton` and the WHATWG parser read it: one to
/// four parts, each decimal, octal (a leading `0`) or hex (`0x`), the last filling the bytes
/// left. `None` when it denotes none.
pub fn inet_aton(host: &str) -> Option<Ipv4Addr> {
    let host = host.strip_suffix('.').unwrap_or(host);
    let parts: Vec<&str> = host.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut values = Vec::with_capacity(parts.len());
    for p in &parts {
        let (digits, radix) = match p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
            Some(hex) => (hex, 16),
            None if p.len() > 1 && p.starts_with('0') => (&p[1..], 8),
            None => (*p, 10),
        };
        // `from_str_radix` takes a leading `+`, which no IPv4 form has.
        if !digits.chars().all(|c| c.is_digit(radix)) {
            return None;
        }
        let value = if digits.is_empty() && radix == 16 { 0 } else { u64::from_str_radix(digits, radix).ok()? };
        values.push(value);
    }
    let (last, head) = values.split_last()?;
    if head.iter().any(|&v| v > 255) || *last >= 1u64 << (8 * (5 - values.len())) {
        return None;
    }
    let mut n: u64 = *last;
    for (i, &v) in head.iter().enumerate() {
        n |= v << (8 * (3 - i));
    }
    u32::try_from(n).ok().map(Ipv4Addr::from)
}
