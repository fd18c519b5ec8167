//! The edge over real sockets: redirects, metrics, fraud reasons, hardening, shutdown.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;

#[test]
fn demo_redirects_and_counts() {
    let s = Server::start(&std::fs::read_to_string(format!("{ROOT}/config/clickgate.toml")).unwrap());
    let r = s.get("/r/demo", "192.0.2.10", CHROME);
    assert!(r.starts_with("HTTP/1.1 302"), "{r}");
    let loc = header(&r, "location").unwrap();
    assert!(loc.starts_with("https://example.com/menu?utm_source=clickgate&utm_medium=referral&utm_campaign=demo&cgid="), "{loc}");
    assert_eq!(loc.split("cgid=").nth(1).unwrap().len(), 47);
    let cookie = header(&r, "set-cookie").unwrap();
    assert!(cookie.starts_with("cg_vid=") && cookie.contains("HttpOnly"), "{cookie}");
    assert!(s.get("/r/unknown", "192.0.2.10", CHROME).starts_with("HTTP/1.1 404"));
    assert_eq!(s.metric("clickgate_clicks_total{verdict=\"valid\"}"), 1.0);
    assert_eq!(s.metric("clickgate_edge_requests_total{outcome=\"unknown_code\"}"), 1.0);
}

#[test]
fn qr_links_sub_ids_and_returning_visitors() {
    let s = Server::start(&fixture_config(""));
    let first = s.get("/q/demo", "192.0.2.19", CHROME);
    let vid = header(&first, "set-cookie").unwrap().split(';').next().unwrap().to_string();
    let r = request(
        s.edge,
        &format!("GET /q/demo?sub1=spring&sub2=bad%0d%0a HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 192.0.2.20\r\nUser-Agent: Mozilla/5.0 a\r\nCookie: theme=dark; {vid}\r\nConnection: close\r\n\r\n"),
    );
    let loc = header(&r, "location").unwrap();
    assert!(loc.ends_with("&sub1=spring"), "unsafe sub-ids are dropped: {loc}");
    assert!(header(&r, "set-cookie").is_none(), "a returning visitor keeps their cookie");
    // A forged cookie value is replaced, not trusted.
    let forged = request(
        s.edge,
        "GET /r/demo HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 192.0.2.21\r\nCookie: cg_vid=<script>\r\nConnection: close\r\n\r\n",
    );
    assert!(header(&forged, "set-cookie").is_some(), "{forged}");
    let mut s = s;
    s.terminate();
    let events = core_log(&s);
    assert_eq!(events[0].channel, clickgate::model::Channel::Qr);
    assert_eq!(events[0].visitor_id, events[1].visitor_id, "the returning visitor is recognised");
    assert!(events[0].new_visitor && !events[1].new_visitor);
}

#[test]
fn fraud_reasons_move_metrics_over_http() {
    let s = Server::start(&fixture_config(""));
    let hits = [
        ("192.0.2.30", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "bot_ua"),
        ("192.0.2.31", "", "empty_ua"),
        ("192.0.2.32", "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", "link_preview"),
        ("1.0.0.1", CHROME, "datacenter_asn"),
        ("81.2.69.160", CHROME, "geo_blocked"),
        ("203.0.113.5", CHROME, "ip_denylisted"),
    ];
    for (ip, ua, _) in hits {
        let r = s.get("/r/demo", ip, ua);
        assert!(r.starts_with("HTTP/1.1 302"), "{ip} {ua}: {r}");
    }
    s.get("/r/demo", "192.0.2.40", CHROME);
    s.get("/r/demo", "192.0.2.40", CHROME);
    for i in 0..50 {
        s.get("/r/demo", "192.0.2.50", &format!("Mozilla/5.0 v{i}"));
    }
    for (_, _, reason) in hits {
        assert!(s.metric(&format!("clickgate_click_reasons_total{{reason=\"{reason}\"}}")) >= 1.0, "{reason}");
    }
    assert_eq!(s.metric("clickgate_click_reasons_total{reason=\"duplicate\"}"), 1.0);
    assert!(s.metric("clickgate_click_reasons_total{reason=\"velocity_ip\"}") >= 1.0);
    assert!(s.metric("clickgate_click_reasons_total{reason=\"velocity_link_ip\"}") >= 1.0);
    // Blocked clicks (geo, denylist) are redirected without a click id in this program.
    let blocked = s.get("/r/demo", "203.0.113.6", CHROME);
    assert!(!header(&blocked, "location").unwrap().contains("cgid="), "{blocked}");
    assert_eq!(s.metric("clickgate_clicks_total{verdict=\"blocked\"}"), 3.0);
}

#[test]
fn forbid_programs_refuse_blocked_clicks_with_403() {
    let s = Server::start(&fixture_config("").replace("country_deny = [\"GB\"]", "country_deny = [\"GB\"]\nblocked_action = \"forbid\""));
    assert!(s.get("/r/demo", "203.0.113.5", CHROME).starts_with("HTTP/1.1 403"));
    assert!(s.get("/r/demo", "192.0.2.1", CHROME).starts_with("HTTP/1.1 302"));
}

#[test]
fn too_many_headers_get_431() {
    let s = Server::start(&fixture_config(""));
    let mut raw = String::from("GET /r/demo HTTP/1.1\r\nHost: x\r\n");
    for i in 0..100 {
        raw.push_str(&format!("X-Pad-{i}: {i}\r\n"));
    }
    raw.push_str("\r\n");
    let r = request(s.edge, &raw);
    assert!(r.starts_with("HTTP/1.1 431"), "{r}");
    // 100 headers in all (Host + 99) are still served.
    let ok = raw
        .replace("X-Pad-99: 99\r\n", "")
        .replace("GET /r/demo HTTP/1.1\r\nHost: x\r\n", "GET /r/demo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n")
        .replace("X-Pad-98: 98\r\n", "");
    assert!(request(s.edge, &ok).starts_with("HTTP/1.1 302"));
}

#[test]
fn slowloris_is_closed_by_the_header_timeout() {
    let s = Server::start(&fixture_config(""));
    let mut c = TcpStream::connect(s.edge).unwrap();
    c.write_all(b"GET /r/demo HTTP/1.1\r\nHost: x\r\nX-Slow: ").unwrap();
    // The server must close the connection on its own; the read timeout only stops a hung test.
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buf = Vec::new();
    let res = c.read_to_end(&mut buf);
    assert!(res.is_ok(), "connection was not closed by the server: {res:?}");
    let text = String::from_utf8_lossy(&buf);
    assert!(text.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
}

#[test]
fn a_large_body_is_refused_without_being_read() {
    let s = Server::start(&fixture_config(""));
    let mut c = TcpStream::connect(s.edge).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    // Only the headers are sent: a 413 that arrives now was decided without buffering the body.
    c.write_all(b"GET /r/demo HTTP/1.1\r\nHost: x\r\nContent-Length: 10485760\r\n\r\n").unwrap();
    let mut buf = [0u8; 512];
    let n = c.read(&mut buf).unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    // Sending the 10 MB anyway fails or is discarded: the server closed the connection.
    let chunk = vec![b'x'; 1 << 20];
    let mut sent = 0;
    for _ in 0..10 {
        match c.write(&chunk) {
            Ok(n) => sent += n,
            Err(_) => break,
        }
    }
    let mut rest = Vec::new();
    let _ = c.read_to_end(&mut rest);
    assert!(!String::from_utf8_lossy(&rest).contains("HTTP/1.1"), "no second response after {sent} bytes");
    // Chunked bodies are refused the same way.
    let r = request(s.edge, "GET /r/demo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    assert_eq!(s.metric("clickgate_edge_requests_total{outcome=\"body_too_large\"}"), 2.0);
}

/// The edge judges each request at the wall clock, so the bucket may gain a cell between any
/// two requests of this test. It asserts only what holds however slowly they go; the exact
/// burst, refill and wait are asserted at chosen instants in `edge::checks::tests` and, through
/// the binary with `ts` as the clock, in `cli::check_replays_rate_limits_with_ts_as_the_clock`.
#[test]
fn bursts_over_the_rate_limit_get_429_with_retry_after() {
    let s = Server::start(&fixture_config("[checks.rate_limit]\nip_per_s = 1\nip_burst = 5\n"));
    let status = |r: &str| r[9..12].to_string();
    // A new address starts with a full bucket: the whole burst passes, whenever it comes.
    for _ in 0..5 {
        assert_eq!(status(&s.get("/r/demo", "192.0.2.60", CHROME)), "302");
    }
    // Past it, requests outrun a refill of one a second: wait for three 429s. Each says when
    // to retry: with one cell a second the wait is at most a second, in whole seconds 1.
    let (mut passed, mut refused) = (5, 0);
    for _ in 0..1_000 {
        let r = s.get("/r/demo", "192.0.2.60", CHROME);
        match status(&r).as_str() {
            "302" => passed += 1,
            "429" => {
                refused += 1;
                assert_eq!(header(&r, "retry-after"), Some("1"), "{r}");
                if refused == 3 {
                    break;
                }
            }
            other => panic!("{other}: {r}"),
        }
    }
    assert_eq!(refused, 3, "1,000 requests never outran one refill a second ({passed} passed)");
    assert!(s.get("/r/demo", "192.0.2.61", CHROME).starts_with("HTTP/1.1 302"), "another IP");
    assert_eq!(s.metric("clickgate_clicks_total{verdict=\"rate_limited\"}"), 3.0);
    let clicks = ["valid", "flagged", "blocked"].map(|v| s.metric(&format!("clickgate_clicks_total{{verdict=\"{v}\"}}")));
    assert_eq!(clicks.iter().sum::<f64>(), f64::from(passed + 1), "every 302 is a click: {clicks:?}");
}

#[test]
fn other_methods_and_paths() {
    let s = Server::start(&fixture_config(""));
    let r = request(s.edge, "POST /r/demo HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 405") && header(&r, "allow") == Some("GET, HEAD"), "{r}");
    assert!(s.get("/r/../../etc/passwd", "192.0.2.1", CHROME).starts_with("HTTP/1.1 404"));
    let head = request(
        s.edge,
        "HEAD /r/demo HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 192.0.2.70\r\nUser-Agent: Mozilla/5.0 h\r\nConnection: close\r\n\r\n",
    );
    assert!(head.starts_with("HTTP/1.1 302"), "{head}");
    assert_eq!(s.metric("clickgate_click_reasons_total{reason=\"head_request\"}"), 1.0);
    assert_eq!(s.metric("clickgate_clicks_total{verdict=\"valid\"}"), 0.0);
}

/// Link changes reach a running edge within the reload interval, each applied as an update
/// of the table (the changes since its version), never by reading every link again.
#[test]
fn link_changes_reach_the_edge_without_restart_as_updates() {
    let s = Server::start(
        &fixture_config("[edge]\nlink_reload_interval_ms = 100\n").replacen("[edge]\nheader_read_timeout_ms = 500\n", "", 1).replacen(
            "[edge]\n",
            "[edge]\nheader_read_timeout_ms = 500\n",
            1,
        ),
    );
    // A location ending in `?` is a prefix (a click id follows); any other is the whole of it.
    let wait_for = |path: &str, location: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let r = s.get(path, "192.0.2.80", CHROME);
            let found = header(&r, "location").unwrap_or("");
            if found == location || (location.ends_with('?') && found.starts_with(location)) {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "{path} never redirected to {location}: {r}");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let (code, _, err) = run_cli(&s.config, &s.data_dir(), &["link", "pause", "demo"], "");
    assert_eq!(code, 0, "{err}");
    wait_for("/r/demo", "https://example.com/");
    assert!(s.metric("clickgate_edge_requests_total{outcome=\"fallback\"}") >= 1.0);

    let add = ["link", "add", "--code", "fresh", "--program", "demo", "--partner", "alice", "--destination", "https://example.com/fresh"];
    let (code, _, err) = run_cli(&s.config, &s.data_dir(), &add, "");
    assert_eq!(code, 0, "{err}");
    let csv =
        "code,program,partner,destination\nbulk-1,demo,alice,https://example.com/bulk/1\nbulk-2,demo,alice,https://example.com/bulk/2\n";
    let (code, _, err) = run_cli(&s.config, &s.data_dir(), &["link", "import", "-"], csv);
    assert_eq!(code, 0, "{err}");
    wait_for("/r/fresh", "https://example.com/fresh?");
    wait_for("/r/bulk-2", "https://example.com/bulk/2?");
    let (code, _, err) = run_cli(&s.config, &s.data_dir(), &["link", "resume", "demo"], "");
    assert_eq!(code, 0, "{err}");
    wait_for("/r/demo", "https://example.com/menu?");
    assert!(s.metric("clickgate_link_table_updates_total") >= 2.0);
    assert_eq!(s.metric("clickgate_link_table_reloads_total"), 0.0, "no change read every link again");
}

#[test]
fn sigterm_drains_and_flushes_the_click_log() {
    let mut s = Server::start(&fixture_config(""));
    for i in 0..20 {
        assert!(s.get("/r/demo", &format!("192.0.2.{}", 100 + i), CHROME).starts_with("HTTP/1.1 302"));
    }
    // An idle keep-alive connection must not hold shutdown beyond the drain period.
    let _idle = TcpStream::connect(s.edge).unwrap();
    let status = s.terminate();
    assert!(status.success(), "exit {status:?}; log:\n{}", s.log());
    let events = core_log(&s);
    assert_eq!(events.len(), 20);
    assert!(events.iter().all(|e| e.verdict == clickgate::model::Verdict::Valid && &*e.link == "demo"));
    assert_eq!(events[0].ip.unwrap().to_string(), "192.0.2.0", "IPs are truncated by default");
}

#[test]
fn a_full_queue_spills_to_the_spool_and_loses_nothing() {
    // A 16-event queue whose consumer lingers a second per batch: clicks that come faster than
    // it drains spill. How many spill depends on how fast this machine sends them, so the test
    // sends until 30 have spilled (the bound only stops a hung test) and then checks that every
    // click sent, spilled or queued, reached the click log once.
    let mut s = Server::start(&fixture_config("[events]\nclick_queue_len_max = 16\nclick_log_linger_ms = 1000"));
    let mut sent = 0;
    while s.metric("clickgate_click_events_spilled_total") < 30.0 {
        assert!(sent < 2_000, "{sent} clicks and fewer than 30 spilled; log:\n{}", s.log());
        for _ in 0..20 {
            let ip = format!("198.18.{}.{}", sent / 200, sent % 200 + 1);
            assert!(s.get("/r/demo", &ip, CHROME).starts_with("HTTP/1.1 302"));
            sent += 1;
        }
    }
    let spilled = spills_settled(&s);
    assert!(spilled >= 30.0, "spilled {spilled}; log:\n{}", s.log());
    assert_eq!(s.metric("clickgate_click_events_dropped_total"), 0.0);
    let status = s.terminate();
    assert!(status.success(), "exit {status:?}; log:\n{}", s.log());
    let events = core_log(&s);
    let ids: std::collections::HashSet<_> = events.iter().map(|e| e.click_id).collect();
    assert_eq!((events.len(), ids.len()), (sent, sent), "every click reached the click log once");
}

/// The spilled count once every spill is in the spool. The spill thread writes off the request
/// path, so the two counters agree only once it has caught up; a spill that never reached the
/// spool keeps them apart and fails here.
fn spills_settled(s: &Server) -> f64 {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let spilled = s.metric("clickgate_click_events_spilled_total");
        let spooled = s.metric("clickgate_cluster_spooled_total");
        if spooled == spilled && s.metric("clickgate_click_events_spilled_total") == spilled {
            return spilled;
        }
        assert!(std::time::Instant::now() < deadline, "spilled {spilled} but spooled {spooled}: a spill never went to the spool");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every event in the core's click log, after the server stopped.
fn core_log(s: &Server) -> Vec<clickgate::events::ClickEvent> {
    let mut events = Vec::new();
    clickgate::click_log::SegmentLog::open(&s.data_dir().join("clicks"), u64::MAX, |ev| events.push(ev)).unwrap();
    events
}
