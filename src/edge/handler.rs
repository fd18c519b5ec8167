//! HTTP glue for the hot path: `GET|HEAD /r/{code}` and `/q/{code}`.
//!
//! Everything that can be computed at start is; per request this parses the path and a few
//! headers, runs `judge`, builds one `Location` string and hands one event to the queue.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use super::checks::{Reason, Verdict};
use super::{judge, EdgeState, Judgement};
use crate::config::IpPrivacy;
use crate::events::{truncate_ip, ClickEvent, SUB_IDS_MAX};
use crate::metrics::Outcome;
use crate::model::{BlockedAction, Channel};
use crate::model::{VisitorId, VISITOR_ID_CHARS};

type Body = Full<Bytes>;

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

fn redirect(location: String) -> Response<Body> {
    match HeaderValue::try_from(location) {
        Ok(loc) => {
            let mut r = Response::new(Full::new(Bytes::new()));
            *r.status_mut() = StatusCode::FOUND;
            let h = r.headers_mut();
            h.insert(header::LOCATION, loc);
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        // Unreachable for validated destinations; answered rather than panicking.
        Err(_) => plain(StatusCode::INTERNAL_SERVER_ERROR, "bad redirect target\n"),
    }
}

/// Splits `/r/code` or `/q/code` into (is_qr, code).
fn route(path: &str) -> Option<(bool, &str)> {
    let (qr, code) = if let Some(c) = path.strip_prefix("/r/") { (false, c) } else { (true, path.strip_prefix("/q/")?) };
    let ok = !code.is_empty() && code.len() <= 64 && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then_some((qr, code))
}

/// `sub1`..`sub5` from the query, each limited to unreserved characters and `max` bytes;
/// anything else is dropped, never passed into `Location`.
fn sub_ids(query: Option<&str>, max: usize) -> Option<Box<[Option<Box<str>>; SUB_IDS_MAX]>> {
    let query = query?;
    let mut out: Option<Box<[Option<Box<str>>; SUB_IDS_MAX]>> = None;
    for pair in query.split('&') {
        let Some((k, v)) = pair.split_once('=') else { continue };
        let idx = match k.as_bytes() {
            [b's', b'u', b'b', d @ b'1'..=b'5'] => (d - b'1') as usize,
            _ => continue,
        };
        if v.is_empty() || v.len() > max || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b)) {
            continue;
        }
        out.get_or_insert_with(Default::default)[idx] = Some(v.into());
    }
    out
}

fn visitor_from_cookie(headers: &HeaderMap, name: &str) -> Option<VisitorId> {
    for value in headers.get_all(header::COOKIE) {
        let Ok(s) = value.to_str() else { continue };
        for pair in s.split(';') {
            if let Some((k, v)) = pair.trim().split_once('=') {
                if k == name {
                    return VisitorId::decode(v);
                }
            }
        }
    }
    None
}

fn body_too_large(headers: &HeaderMap, max: u64) -> bool {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return true;
    }
    headers
        .get(header::CONTENT_LENGTH)
        .map(|v| v.to_str().ok().and_then(|s| s.parse::<u64>().ok()).is_none_or(|n| n > max))
        .unwrap_or(false)
}

/// Handles one edge request.
pub fn handle<B>(state: &Arc<EdgeState>, peer: IpAddr, req: Request<B>) -> Response<Body> {
    let start = Instant::now();
    let m = &state.metrics;
    let head = match *req.method() {
        Method::GET => false,
        Method::HEAD => true,
        _ => {
            m.outcome(Outcome::MethodNotAllowed);
            let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
            r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return r;
        }
    };
    let Some((qr, code)) = route(req.uri().path()) else {
        m.outcome(Outcome::NotFound);
        return plain(StatusCode::NOT_FOUND, "not found\n");
    };
    let headers = req.headers();
    if body_too_large(headers, state.edge.body_bytes_max) {
        // Answered before any of the body is read; the connection closes instead of draining it.
        m.outcome(Outcome::BodyTooLarge);
        let mut r = plain(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n");
        r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        return r;
    }
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let ip = state.pipeline.trusted_proxies.client_ip(peer, headers);
    let ua = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let table = state.links.load();
    let judgement = judge(&state.pipeline, &table, ip, ua, code, head, now_ms);
    let response = match judgement {
        Judgement::RateLimited { retry_after_ms, observed } => {
            observed.iter().for_each(|r| m.observed(r));
            m.click(Verdict::RateLimited);
            m.reason(Reason::RateLimited);
            let mut r = plain(StatusCode::TOO_MANY_REQUESTS, "too many requests\n");
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_ms.div_ceil(1000).max(1)));
            r
        }
        Judgement::UnknownCode { observed } => {
            observed.iter().for_each(|r| m.observed(r));
            m.outcome(Outcome::UnknownCode);
            plain(StatusCode::NOT_FOUND, "unknown link\n")
        }
        Judgement::Inactive { link, observed } => {
            observed.iter().for_each(|r| m.observed(r));
            m.outcome(Outcome::Fallback);
            redirect(link.fallback.to_string())
        }
        Judgement::Click { link, findings, verdict } => {
            m.click(verdict);
            findings.reasons.iter().for_each(|r| m.reason(r));
            findings.observed.iter().for_each(|r| m.observed(r));
            let subs = sub_ids(req.uri().query(), state.edge.sub_id_bytes_max);
            let click_id = state.signer.mint(now_ms, link.link_id, link.partner_id);
            let existing = visitor_from_cookie(headers, &state.edge.visitor_cookie_name);
            let visitor = existing.unwrap_or_else(VisitorId::random);
            let forbid = verdict == Verdict::Blocked && link.rules.blocked_action == BlockedAction::Forbid;
            let mut response = if forbid {
                plain(StatusCode::FORBIDDEN, "forbidden\n")
            } else {
                let mut loc = String::with_capacity(link.location_prefix.len() + 64 + link.fragment.len());
                if verdict == Verdict::Blocked {
                    loc.push_str(&link.location_plain);
                } else {
                    loc.push_str(&link.location_prefix);
                    loc.push_str(click_id.encode(&mut [0; crate::model::CLICK_ID_CHARS]));
                }
                if let Some(subs) = &subs {
                    for (i, v) in subs.iter().enumerate() {
                        if let Some(v) = v {
                            loc.push_str(if loc.contains('?') { "&sub" } else { "?sub" });
                            loc.push(char::from(b'1' + i as u8));
                            loc.push('=');
                            loc.push_str(v);
                        }
                    }
                }
                loc.push_str(&link.fragment);
                redirect(loc)
            };
            if existing.is_none() {
                set_visitor_cookie(state, response.headers_mut(), &visitor);
            }
            let (ip_field, ip_hash) = match state.privacy {
                IpPrivacy::Truncate => (Some(truncate_ip(ip)), None),
                IpPrivacy::Full => (Some(ip), None),
                IpPrivacy::Hash => (None, Some(keyed_ip_hash(&state.ip_hasher, ip))),
            };
            state.sink.send(ClickEvent {
                click_id,
                ts_ms: now_ms,
                program: link.program.clone(),
                partner: link.partner.clone(),
                link: link.code.clone(),
                channel: if qr { Channel::Qr } else { link.channel },
                sub_ids: subs,
                verdict,
                reasons: findings.reasons,
                observed: findings.observed,
                visitor_id: visitor,
                new_visitor: existing.is_none(),
                country: findings.country,
                asn: findings.asn,
                ua_hash: xxhash_rust::xxh3::xxh3_64(ua.as_bytes()),
                ip: ip_field,
                ip_hash,
            });
            response
        }
    };
    m.redirect_latency.observe(start.elapsed().as_secs_f64());
    response
}

/// Everything after the visitor cookie's value; `Secure` when the listener speaks TLS.
pub fn cookie_suffix(e: &crate::config::Edge, tls: bool) -> Box<str> {
    let mut c = format!("; Path=/; Max-Age={}", e.visitor_cookie_max_age_s);
    if !e.visitor_cookie_domain.is_empty() {
        c.push_str("; Domain=");
        c.push_str(&e.visitor_cookie_domain);
    }
    c.push_str("; HttpOnly; SameSite=Lax");
    if tls {
        c.push_str("; Secure");
    }
    c.into()
}

fn set_visitor_cookie(state: &EdgeState, headers: &mut HeaderMap, visitor: &VisitorId) {
    let name = &state.edge.visitor_cookie_name;
    let mut c = String::with_capacity(name.len() + 1 + VISITOR_ID_CHARS + state.cookie_suffix.len());
    c.push_str(name);
    c.push('=');
    c.push_str(visitor.encode(&mut [0; VISITOR_ID_CHARS]));
    c.push_str(&state.cookie_suffix);
    if let Ok(v) = HeaderValue::try_from(c) {
        headers.insert(header::SET_COOKIE, v);
    }
}

/// A keyed hash of an address: stable per key, useless without it. `keyed` is the HMAC state
/// after the key, built once at start.
pub fn keyed_ip_hash(keyed: &hmac::Hmac<sha2::Sha256>, ip: IpAddr) -> u64 {
    use hmac::Mac;
    let mut mac = keyed.clone();
    mac.update(&super::checks::ip_rules::ip_key(ip).to_be_bytes());
    u64::from_be_bytes(mac.finalize().into_bytes()[..8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_ip_hashes_are_stable_per_key_and_differ_across_keys() {
        use hmac::Mac;
        let a: hmac::Hmac<sha2::Sha256> = Mac::new_from_slice(b"first-key-0123456").unwrap();
        let b: hmac::Hmac<sha2::Sha256> = Mac::new_from_slice(b"other-key-0123456").unwrap();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(keyed_ip_hash(&a, ip), keyed_ip_hash(&a, ip));
        assert_ne!(keyed_ip_hash(&a, ip), keyed_ip_hash(&b, ip));
        assert_ne!(keyed_ip_hash(&a, ip), keyed_ip_hash(&a, "192.0.2.8".parse().unwrap()));
    }

    #[test]
    fn routes_codes() {
        assert_eq!(route("/r/demo"), Some((false, "demo")));
        assert_eq!(route("/q/demo"), Some((true, "demo")));
        assert_eq!(route("/r/"), None);
        assert_eq!(route("/r/a/b"), None);
        assert_eq!(route("/r/%0d%0a"), None);
        assert_eq!(route("/x/demo"), None);
    }

    #[test]
    fn keeps_only_safe_sub_ids() {
        let s = sub_ids(Some("sub1=abc&sub3=x%0d%0aSet-Cookie&sub5=ok.1&sub6=no&x=1"), 64).unwrap();
        assert_eq!(s[0].as_deref(), Some("abc"));
        assert_eq!(s[2], None);
        assert_eq!(s[4].as_deref(), Some("ok.1"));
        assert!(sub_ids(Some("utm_source=x"), 64).is_none());
        assert!(sub_ids(Some(&format!("sub1={}", "a".repeat(65))), 64).is_none());
    }
}
