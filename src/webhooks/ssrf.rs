//! The SSRF guard: a webhook reaches only addresses on the public internet, unless an operator
//! deliberately admits a private network (`allow_private_cidrs`) for a self-hosted receiver.
//!
//! Three steps, each pure except the resolution: `check_url` at registration and before each
//! attempt; `resolve_and_check`, which resolves the name once per attempt and refuses the
//! attempt if any address is refused; and the caller connects to one of the addresses it
//! returns, never resolving again, so a DNS answer that changes between check and connect
//! (rebinding) cannot move the connection. Redirects are never followed (see `schedule`).

mod addr;
mod target;

pub use addr::{embedded_v4, refusal, Refusal};
pub use target::{check_url, inet_aton, parse_host, Host, WebhookUrl, URL_BYTES_MAX};

use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// Why a webhook URL, host or address was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SsrfError {
    #[error("webhook URL is longer than {URL_BYTES_MAX} bytes")]
    TooLong,
    #[error("webhook URL contains a space or a control character")]
    ControlOrSpace,
    #[error("webhook URL contains non-ASCII characters; percent-encode the path and punycode the host")]
    NonAscii,
    #[error("webhook URL contains a backslash, which URL parsers disagree about")]
    Backslash,
    #[error("webhook URL scheme {0:?} is not allowed; use https")]
    Scheme(String),
    #[error("webhook URL is http, and webhooks.allow_http is false; use https")]
    HttpNotAllowed,
    #[error("webhook URL has userinfo ('user@host'), which can disguise the real host")]
    Userinfo,
    #[error("webhook URL has a fragment, which is never sent")]
    Fragment,
    #[error("webhook URL has no host")]
    NoHost,
    #[error("webhook host {0:?} is not a DNS name or an IP address")]
    BadHost(String),
    #[error("webhook host {host:?} is an IPv4 address in a non-canonical form{}; write it as a dotted quad", denotes.map(|ip| format!(" (it denotes {ip})")).unwrap_or_default())]
    NonCanonicalIpv4 { host: String, denotes: Option<Ipv4Addr> },
    #[error("webhook host is an IPv6 address with a zone id, which names a local interface")]
    ZoneId,
    #[error("webhook URL port is not a number in 1..=65535")]
    BadPort,
    #[error("webhook URL is not valid: {0}")]
    BadUrl(String),
    #[error("webhook URL reads differently to different parsers")]
    Ambiguous,
    #[error("address {addr} is refused: {}", reason.as_str())]
    Refused { addr: IpAddr, reason: Refusal },
    #[error("{host:?} resolves to {addr}, which is refused: {}", reason.as_str())]
    NameRefused { host: String, addr: IpAddr, reason: Refusal },
    #[error("{host:?} did not resolve: {error}")]
    Resolve { host: String, error: String },
    #[error("{0:?} resolves to no address")]
    NoAddresses(String),
    #[error("webhooks.allow_private_cidrs entry {0:?} is not a CIDR such as 10.0.0.0/8")]
    BadCidr(String),
}

impl SsrfError {
    /// A closed set of label values: the address's `Refusal` when an address was refused, the
    /// kind of fault otherwise.
    pub fn reason(&self) -> &'static str {
        match self {
            SsrfError::Refused { reason, .. } | SsrfError::NameRefused { reason, .. } => reason.as_str(),
            SsrfError::TooLong => "too_long",
            SsrfError::ControlOrSpace => "control_or_space",
            SsrfError::NonAscii => "non_ascii",
            SsrfError::Backslash => "backslash",
            SsrfError::Scheme(_) => "scheme",
            SsrfError::HttpNotAllowed => "http_not_allowed",
            SsrfError::Userinfo => "userinfo",
            SsrfError::Fragment => "fragment",
            SsrfError::NoHost => "no_host",
            SsrfError::BadHost(_) => "bad_host",
            SsrfError::NonCanonicalIpv4 { .. } => "non_canonical_ipv4",
            SsrfError::ZoneId => "zone_id",
            SsrfError::BadPort => "bad_port",
            SsrfError::BadUrl(_) => "bad_url",
            SsrfError::Ambiguous => "ambiguous",
            SsrfError::Resolve { .. } => "resolve",
            SsrfError::NoAddresses(_) => "no_addresses",
            SsrfError::BadCidr(_) => "bad_cidr",
        }
    }
}

/// Most addresses `resolve_and_check` returns; it checks every one it is given.
pub const RESOLVED_ADDRS_MAX: usize = 16;

/// What the guard admits beyond the public internet (`webhooks.allow_http`,
/// `webhooks.allow_private_cidrs`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Admit `http://` URLs.
    pub allow_http: bool,
    /// Networks admitted although their addresses are otherwise refused; a cloud metadata
    /// address stays refused.
    pub allow_private_cidrs: Vec<IpNet>,
}

impl Policy {
    /// A policy from the config's values, naming the first CIDR that does not parse.
    pub fn new(allow_http: bool, allow_private_cidrs: &[String]) -> Result<Self, SsrfError> {
        let nets = allow_private_cidrs
            .iter()
            .map(|c| c.parse::<IpNet>().map(|n| n.trunc()).map_err(|_| SsrfError::BadCidr(c.clone())))
            .collect::<Result<_, _>>()?;
        Ok(Policy { allow_http, allow_private_cidrs: nets })
    }

    /// Whether a webhook may connect to `ip`.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), SsrfError> {
        let Some(reason) = refusal(ip) else { return Ok(()) };
        // An IPv4-mapped address reaches the IPv4 address it carries, so the allowlist reads
        // that one too.
        let reached = addr::reached(ip);
        let listed = self.allow_private_cidrs.iter().any(|net| net.contains(&ip) || net.contains(&reached));
        if listed && reason != Refusal::CloudMetadata {
            Ok(())
        } else {
            Err(SsrfError::Refused { addr: ip, reason })
        }
    }
}

/// Resolves `host` once and checks every address it resolves to; one refused address refuses
/// them all, since the caller cannot know which one a retry or another process would pick.
/// Returns the checked addresses (at most `RESOLVED_ADDRS_MAX`), and the caller connects to one
/// of them. A host that is an address (`203.0.113.7`, `[2001:db8::1]`, `2001:db8::1`) is
/// checked without a lookup; the caller bounds the lookup's time.
pub async fn resolve_and_check(host: &str, port: u16, policy: &Policy) -> Result<Vec<SocketAddr>, SsrfError> {
    if port == 0 {
        return Err(SsrfError::BadPort);
    }
    let parsed = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(literal) if literal.contains('%') => return Err(SsrfError::ZoneId),
        Some(literal) => Host::Ip(IpAddr::V6(literal.parse().map_err(|_| SsrfError::BadHost(host.to_owned()))?)),
        // A bare IPv6 address, as `IpAddr`'s `Display` writes it.
        None => match host.parse::<std::net::Ipv6Addr>() {
            Ok(v6) => Host::Ip(IpAddr::V6(v6)),
            Err(_) => parse_host(host)?,
        },
    };
    let name = match parsed {
        Host::Ip(ip) => {
            policy.check_ip(ip)?;
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        Host::Name(name) => name,
    };
    let resolved: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), port))
        .await
        .map_err(|e| SsrfError::Resolve { host: name.clone(), error: e.to_string() })?
        .collect();
    check_resolved(name, resolved, policy)
}

/// Checks the addresses a name resolved to, as `resolve_and_check` does after its lookup: one
/// refused address refuses them all. A caller with a resolver of its own (the delivery worker's
/// tests) checks its answers here.
pub fn check_resolved(name: String, resolved: Vec<SocketAddr>, policy: &Policy) -> Result<Vec<SocketAddr>, SsrfError> {
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for a in resolved {
        if let Err(SsrfError::Refused { addr, reason }) = policy.check_ip(a.ip()) {
            return Err(SsrfError::NameRefused { host: name, addr, reason });
        }
        if !addrs.contains(&a) {
            addrs.push(a);
        }
    }
    if addrs.is_empty() {
        return Err(SsrfError::NoAddresses(name));
    }
    addrs.truncate(RESOLVED_ADDRS_MAX);
    Ok(addrs)
}

impl WebhookUrl {
    /// `resolve_and_check` for this URL's host and port.
    pub async fn resolve(&self, policy: &Policy) -> Result<Vec<SocketAddr>, SsrfError> {
        match self.host() {
            Host::Ip(ip) => {
                policy.check_ip(*ip)?;
                Ok(vec![SocketAddr::new(*ip, self.port())])
            }
            Host::Name(name) => resolve_and_check(name, self.port(), policy).await,
        }
    }
}

#[cfg(test)]
mod tests;
