//! HTTP glue for the hot path: `GET|HEAD /r/{code}` and `/q/{code}`.
//!
//! Everything that can be computed at start is; per request this parses the path and a few
//! headers (route), runs `judge`, builds one `Location` string (respond) and hands one event to
//! the queue (emit).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use super::checks::{Findings, Reason, Verdict};
use super::links::EdgeLink;
use super::{judge, EdgeState, Judgement};
use crate::config::IpPrivacy;
use crate::events::{truncate_ip, ClickEvent, SUB_IDS_MAX};
use crate::metrics::Outcome;
use crate::model::{BlockedAction, Channel};
use crate::model::{ClickId, VisitorId, VISITOR_ID_CHARS};

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

/// Handles one edge request in four steps: route (method, path, body limit), judge (the check
/// pipeline), respond (status, headers, cookie, metrics) and, for a click, emit (its event to
/// the queue).
pub fn handle<B>(state: &Arc<EdgeState>, peer: IpAddr, req: Request<B>) -> Response<Body> {
    let start = Instant::now();
    let visit = match route_request(state, peer, &req) {
        Ok(visit) => visit,
        Err(refusal) => return refuse(state, refusal),
    };
    let table = state.links.load();
    let judgement = judge(&state.pipeline, &table, visit.ip, visit.ua, visit.code, visit.head, visit.now_ms);
    let (response, click) = respond(state, &visit, judgement);
    if let Some(click) = click {
        emit(state, &visit, click);
    }
    state.metrics.redirect_latency.observe(start.elapsed().as_secs_f64());
    response
}

/// A request routed to a link code, with everything the later steps read from it.
struct Visit<'r> {
    qr: bool,
    code: &'r str,
    head: bool,
    headers: &'r HeaderMap,
    query: Option<&'r str>,
    /// The client: the peer, or the address a trusted proxy forwarded.
    ip: IpAddr,
    ua: &'r str,
    now_ms: u64,
}

/// Why the route step refused a request.
#[derive(Debug, Clone, Copy)]
enum Refusal {
    /// Not GET or HEAD.
    Method,
    /// Not `/r/{code}` or `/q/{code}` with a well-formed code.
    Path,
    BodyTooLarge,
}

/// Route: a method other than GET or HEAD, a path that is not a link code, or a body over the
/// limit is refused; anything else becomes a `Visit`.
fn route_request<'r, B>(state: &EdgeState, peer: IpAddr, req: &'r Request<B>) -> Result<Visit<'r>, Refusal> {
    let head = match *req.method() {
        Method::GET => false,
        Method::HEAD => true,
        _ => return Err(Refusal::Method),
    };
    let (qr, code) = route(req.uri().path()).ok_or(Refusal::Path)?;
    let headers = req.headers();
    if body_too_large(headers, state.edge.body_bytes_max) {
        return Err(Refusal::BodyTooLarge);
    }
    Ok(Visit {
        qr,
        code,
        head,
        headers,
        query: req.uri().query(),
        ip: state.pipeline.trusted_proxies.client_ip(peer, headers),
        ua: headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or(""),
        now_ms: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
    })
}

/// The answer to a request the route step refused, counted.
fn refuse(state: &EdgeState, refusal: Refusal) -> Response<Body> {
    let m = &state.metrics;
    match refusal {
        Refusal::Method => {
            m.outcome(Outcome::MethodNotAllowed);
            let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
            r.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            r
        }
        Refusal::Path => {
            m.outcome(Outcome::NotFound);
            plain(StatusCode::NOT_FOUND, "not found\n")
        }
        Refusal::BodyTooLarge => {
            // Answered before any of the body is read; the connection closes instead of draining it.
            m.outcome(Outcome::BodyTooLarge);
            let mut r = plain(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n");
            r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            r
        }
    }
}

/// A click as `respond` hands it to `emit`: what its response and its event share.
struct Click<'t> {
    link: EdgeLink<'t>,
    findings: Findings,
    verdict: Verdict,
    click_id: ClickId,
    subs: Option<Box<[Option<Box<str>>; SUB_IDS_MAX]>>,
    visitor: VisitorId,
    new_visitor: bool,
}

/// Respond: the answer to a judgement, counted; for a click, also the click for `emit`.
fn respond<'t>(state: &EdgeState, visit: &Visit<'_>, judgement: Judgement<'t>) -> (Response<Body>, Option<Click<'t>>) {
    let m = &state.metrics;
    match judgement {
        Judgement::RateLimited { retry_after_ms, observed } => {
            observed.iter().for_each(|r| m.observed(r));
            m.click(Verdict::RateLimited);
            m.reason(Reason::RateLimited);
            let mut r = plain(StatusCode::TOO_MANY_REQUESTS, "too many requests\n");
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_ms.div_ceil(1000).max(1)));
            (r, None)
        }
        Judgement::UnknownCode { observed } => {
            observed.iter().for_each(|r| m.observed(r));
            m.outcome(Outcome::UnknownCode);
            (plain(StatusCode::NOT_FOUND, "unknown link\n"), None)
        }
        Judgement::Inactive { link, observed } => {
            observed.iter().for_each(|r| m.observed(r));
            m.outcome(Outcome::Fallback);
            (redirect(link.fallback.to_string()), None)
        }
        Judgement::Click { link, findings, verdict } => {
            let click = Click::new(state, visit, link, findings, verdict);
            (respond_click(state, &click), Some(click))
        }
    }
}

impl<'t> Click<'t> {
    /// Mints the click id and reads the sub-ids and the visitor cookie.
    fn new(state: &EdgeState, visit: &Visit<'_>, link: EdgeLink<'t>, findings: Findings, verdict: Verdict) -> Click<'t> {
        let existing = visitor_from_cookie(visit.headers, &state.edge.visitor_cookie_name);
        Click {
            link,
            findings,
            verdict,
            click_id: state.signer.mint(visit.now_ms, link.link_id, link.partner_id),
            subs: sub_ids(visit.query, state.edge.sub_id_bytes_max),
            visitor: existing.unwrap_or_else(VisitorId::random),
            new_visitor: existing.is_none(),
        }
    }
}

/// A click's answer, counted: `403` for a blocked click of a program that forbids them, else
/// the redirect; the visitor cookie when the request had none.
fn respond_click(state: &EdgeState, click: &Click<'_>) -> Response<Body> {
    let m = &state.metrics;
    m.click(click.verdict);
    click.findings.reasons.iter().for_each(|r| m.reason(r));
    click.findings.observed.iter().for_each(|r| m.observed(r));
    let mut response = if click.verdict == Verdict::Blocked && click.link.rules.blocked_action == BlockedAction::Forbid {
        plain(StatusCode::FORBIDDEN, "forbidden\n")
    } else {
        redirect(location(click))
    };
    if click.new_visitor {
        set_visitor_cookie(state, response.headers_mut(), &click.visitor);
    }
    response
}

/// The link's destination with the signed click id (none for a blocked click), the sub-ids
/// and the fragment, in one allocation.
fn location(click: &Click<'_>) -> String {
    let link = click.link;
    let mut loc = String::with_capacity(link.location_len() + 64 + link.fragment.len());
    if click.verdict == Verdict::Blocked {
        link.push_location_plain(&mut loc);
    } else {
        link.push_location_prefix(&mut loc);
        loc.push_str(click.click_id.encode(&mut [0; crate::model::CLICK_ID_CHARS]));
    }
    if let Some(subs) = &click.subs {
        for (i, v) in subs.iter().enumerate() {
            if let Some(v) = v {
                loc.push_str(if loc.contains('?') { "&sub" } else { "?sub" });
                loc.push(char::from(b'1' + i as u8));
                loc.push('=');
                loc.push_str(v);
            }
        }
    }
    loc.push_str(link.fragment);
    loc
}

/// Emit: the click's event, handed to the queue without waiting.
fn emit(state: &EdgeState, visit: &Visit<'_>, click: Click<'_>) {
    let link = click.link;
    let (ip, ip_hash) = match state.privacy {
        IpPrivacy::Truncate => (Some(truncate_ip(visit.ip)), None),
        IpPrivacy::Full => (Some(visit.ip), None),
        IpPrivacy::Hash => (None, Some(keyed_ip_hash(&state.ip_hasher, visit.ip))),
    };
    let client_tag = (state.privacy != IpPrivacy::Full).then(|| client_tag(&state.client_tag_key, visit.ip));
    state.sink.send(ClickEvent {
        click_id: click.click_id,
        ts_ms: visit.now_ms,
        program: link.program.clone(),
        partner: link.partner.clone(),
        link: link.code.clone(),
        channel: if visit.qr { Channel::Qr } else { link.channel },
        sub_ids: click.subs,
        verdict: click.verdict,
        reasons: click.findings.reasons,
        observed: click.findings.observed,
        visitor_id: click.visitor,
        new_visitor: click.new_visitor,
        country: click.findings.country,
        asn: click.findings.asn,
        ua_hash: xxhash_rust::xxh3::xxh3_64(visit.ua.as_bytes()),
        ua: (!visit.ua.is_empty()).then(|| kept_ua(visit.ua).into()),
        client_tag,
        ip,
        ip_hash,
    });
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

/// The client tag of an event: SipHash-1-3 of the address's `client_key` under `key`. Without
/// the key a tag names nobody; with it, an IPv4 address can be found by trying all of them, as
/// with `privacy.ip = "hash"`.
pub fn client_tag(key: &[u8; 16], ip: IpAddr) -> u64 {
    use std::hash::Hasher;
    let mut h = siphasher::sip::SipHasher13::new_with_key(key);
    h.write(&super::checks::ip_rules::client_key(ip).to_le_bytes());
    h.finish()
}

/// The user agent an event keeps: at most `UA_BYTES_MAX` bytes, cut at a character boundary.
pub fn kept_ua(ua: &str) -> &str {
    let mut end = ua.len().min(crate::events::UA_BYTES_MAX);
    while !ua.is_char_boundary(end) {
        end -= 1;
    }
    &ua[..end]
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
