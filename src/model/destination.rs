//! Destination URL rules: the only way a URL reaches `Location` is through this check, so an
//! open redirect needs a hole here.
//!
//! The grammar is deliberately narrower than WHATWG URLs: `http`/`https`, a lowercase ASCII host
//! (IDNs in punycode), an optional port, and a path/query/fragment of printable ASCII without
//! backslashes. Anything a browser might read differently from us is refused rather than fixed.

use std::fmt;

/// Why a destination was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DestinationError {
    #[error("destination is empty")]
    Empty,
    #[error("destination is longer than {max} bytes")]
    TooLong { max: usize },
    #[error("destination contains a control character, space or CR/LF at byte {at}")]
    ControlChar { at: usize },
    #[error("destination contains a backslash, which browsers read as '/'")]
    Backslash,
    #[error("destination contains non-ASCII bytes; percent-encode the path and punycode the host")]
    NonAscii,
    #[error("destination is scheme-relative ('//host'); give https:// or http://")]
    SchemeRelative,
    #[error("destination scheme {0:?} is not allowed; only https and http are")]
    Scheme(String),
    #[error("destination has userinfo ('user@host'), which can disguise the real host")]
    Userinfo,
    #[error("destination host {0:?} is not a valid DNS name")]
    BadHost(String),
    #[error("destination port is not a number in 1..=65535")]
    BadPort,
    #[error("destination host {host:?} is not in the program's allowlist ({allowed})")]
    NotAllowed { host: String, allowed: String },
}

/// Longest destination accepted, in bytes.
pub const DESTINATION_BYTES_MAX: usize = 2048;

/// A destination that passed every rule, split at its fragment so query parameters can be added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination<'a> {
    pub host: &'a str,
    /// Everything before `#`.
    pub base: &'a str,
    /// `#...` or empty.
    pub fragment: &'a str,
}

impl fmt::Display for Destination<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.base, self.fragment)
    }
}

/// Parses `url` and checks its host against `allowed` domains. A domain allows itself and its
/// subdomains (`example.com` allows `shop.example.com`, not `badexample.com`).
pub fn check<'a>(url: &'a str, allowed: &[String]) -> Result<Destination<'a>, DestinationError> {
    let dest = parse(url)?;
    if !host_allowed(dest.host, allowed) {
        return Err(DestinationError::NotAllowed { host: dest.host.to_string(), allowed: allowed.join(", ") });
    }
    Ok(dest)
}

/// True when `host` equals an allowed domain or is a subdomain of one.
pub fn host_allowed(host: &str, allowed: &[String]) -> bool {
    allowed
        .iter()
        .any(|d| host == d || (host.len() > d.len() && host.ends_with(d.as_str()) && host.as_bytes()[host.len() - d.len() - 1] == b'.'))
}

/// Parses a destination without the allowlist.
pub fn parse(url: &str) -> Result<Destination<'_>, DestinationError> {
    if url.is_empty() {
        return Err(DestinationError::Empty);
    }
    if url.len() > DESTINATION_BYTES_MAX {
        return Err(DestinationError::TooLong { max: DESTINATION_BYTES_MAX });
    }
    for (at, b) in url.bytes().enumerate() {
        if b >= 0x80 {
            return Err(DestinationError::NonAscii);
        }
        if b <= b' ' || b == 0x7f {
            return Err(DestinationError::ControlChar { at });
        }
        if b == b'\\' {
            return Err(DestinationError::Backslash);
        }
    }
    if url.starts_with("//") {
        return Err(DestinationError::SchemeRelative);
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        let scheme = url.split(':').next().unwrap_or(url);
        return Err(DestinationError::Scheme(scheme.to_ascii_lowercase()));
    };
    if scheme != "https" && scheme != "http" {
        return Err(DestinationError::Scheme(scheme.to_ascii_lowercase()));
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    if authority.contains('@') {
        return Err(DestinationError::Userinfo);
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    };
    if let Some(p) = port {
        if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) || !(1..=65535).contains(&p.parse::<u32>().unwrap_or(0)) {
            return Err(DestinationError::BadPort);
        }
    }
    if !valid_host(host) {
        return Err(DestinationError::BadHost(host.to_string()));
    }
    let (base, fragment) = match url.find('#') {
        Some(i) => (&url[..i], &url[i..]),
        None => (url, ""),
    };
    Ok(Destination { host, base, fragment })
}

/// A lowercase DNS name of at least two labels, each 1–63 of `[a-z0-9-]` not starting or ending with '-'.
pub fn valid_host(host: &str) -> bool {
    if host.len() > 253 || !host.contains('.') {
        return false;
    }
    host.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_ok(url: &str) {
        let allowed = vec!["example.com".to_string()];
        assert!(check(url, &allowed).is_ok(), "{url} should pass: {:?}", check(url, &allowed));
    }

    fn check_err(url: &str, want: &str) {
        let allowed = vec!["example.com".to_string()];
        let err = check(url, &allowed).expect_err(url).to_string();
        assert!(err.contains(want), "{url}: error {err:?} should mention {want:?}");
    }

    #[test]
    fn accepts_plain_destinations() {
        check_ok("https://example.com");
        check_ok("https://example.com/menu?table=4");
        check_ok("http://shop.example.com:8443/a/b#top");
    }

    #[test]
    fn refuses_tricks() {
        check_err("https://example.com\r\nSet-Cookie: x=1", "CR/LF");
        check_err("https://example.com/%0d%0a\n", "CR/LF");
        check_err("https://example.com@evil.com/", "userinfo");
        check_err("https://user:pw@example.com/", "userinfo");
        check_err("javascript:alert(1)", "\"javascript\"");
        check_err("JavaScript://example.com/%0aalert(1)", "\"javascript\"");
        check_err("//evil.com/path", "scheme-relative");
        check_err("https://evil.com/?example.com", "not in the program's allowlist");
        check_err("https://badexample.com/", "not in the program's allowlist");
        check_err("https://example.com.evil.com/", "not in the program's allowlist");
        check_err("https://example.com\\@evil.com", "backslash");
        check_err("https://exämple.com/", "non-ASCII");
        check_err("https://EXAMPLE.com/", "not a valid DNS name");
        check_err("https://example.com:0/", "port");
        check_err("https://example.com:99999/", "port");
        check_err("data:text/html,hi", "\"data\"");
        check_err("ftp://example.com/", "\"ftp\"");
        check_err("", "empty");
    }

    #[test]
    fn splits_fragment() {
        let d = parse("https://example.com/a?b=1#frag").unwrap();
        assert_eq!((d.host, d.base, d.fragment), ("example.com", "https://example.com/a?b=1", "#frag"));
    }
}
