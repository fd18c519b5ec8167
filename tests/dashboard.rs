//! The partner dashboard of a real `clickgate serve`, with real data: clicks through the edge
//! (valid, and flagged from a datacenter network), conversions through the API, an approval, a
//! payout run and a refund that claws a paid commission back (a negative payable balance).
//!
//! Over HTTP: the security headers, the cookie's flags, a cross-site sign-in refused, an admin's
//! overview, partner scope (another partner's page is `404`), a revoked key's session refused,
//! sign-out, and the sign-in rate limit's `429`. In a browser (tests/dashboard/dashboard.mjs:
//! npm playwright-core driving Debian's chromium, installed by tests/dashboard/fetch.sh): sign-in
//! with partner A's key, the balance and the chart's figures read off the page and checked here
//! against the JSON API's answers, a chosen period, the QR image, partner B's page refused,
//! sign-out, and no request leaving the server. Its screenshot goes to
//! `<target>/dashboard/partner.png`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const KEY: &str = "dashboard-admin-key-0123";

fn config() -> String {
    let api = format!("[api]\nadmin_key = \"{KEY}\"\nauth_failures_per_min = 3\n[commission]\napprove_interval_ms = 0\n");
    format!("{}{BOB}", fixture_config(&api)).replace(
        "country_deny = [\"GB\"]",
        "country_deny = [\"GB\"]\n[demo.programs.attribution]\nmin_click_to_conversion_ms = 0\n\
         [demo.programs.commission.rules]\npercent_bps = 1000\nlock_days = 7",
    )
}

fn admin(s: &Server, method: &str, path: &str, body: &str) -> Answer {
    http(s.api, method, path, &[&format!("Authorization: Bearer {KEY}"), "Content-Type: application/json"], body)
}

fn get(s: &Server, key: &str, path: &str) -> Value {
    let a = http(s.api, "GET", path, &[&format!("Authorization: Bearer {key}")], "");
    assert_eq!(a.status, 200, "{path}: {a:?}");
    a.json()
}

fn new_key(s: &Server, scope: &str) -> (String, String) {
    let a = admin(s, "POST", "/v1/api-keys", &json!({ "name": scope, "scope": scope }).to_string());
    assert_eq!(a.status, 201, "{a:?}");
    let v = a.json();
    (v["id"].as_str().unwrap().to_string(), v["secret"].as_str().unwrap().to_string())
}

/// A click on `/r/{link}` from `ip`; its click id.
fn click(s: &Server, link: &str, ip: &str) -> String {
    let out = s.get(&format!("/r/{link}"), ip, CHROME);
    assert!(out.starts_with("HTTP/1.1 302"), "{out}");
    header(&out, "location").unwrap().split("cgid=").nth(1).unwrap().split('&').next().unwrap().to_string()
}

fn conversion(s: &Server, order: &str, amount: i64, click: &str) -> String {
    let body = json!({
        "order_id": order, "program": "demo", "amount_minor": amount, "currency": "USD",
        "occurred_at": stream::rfc3339(stream::now_ms()), "click_id": click,
    });
    let a = admin(s, "POST", "/v1/conversions", &body.to_string());
    assert_eq!(a.status, 201, "{a:?}");
    a.json()["id"].as_str().unwrap().to_string()
}

/// Partner bob's data: 6 valid and 3 flagged clicks, three conversions, two of them approved
/// and paid, then one of those refunded whole (a clawback of 4000) and one left pending.
fn make_data(s: &Server) {
    let valid: Vec<String> = (1..=6).map(|i| click(s, "bob", &format!("192.0.2.{i}"))).collect();
    for i in 1..=3 {
        click(s, "bob", &format!("1.0.0.{i}"));
    }
    click(s, "demo", "192.0.2.50");
    let deadline = Instant::now() + Duration::from_secs(20);
    while get(s, KEY, "/v1/reports/partners/bob")["totals"]["clicks"]["total"] != 9 {
        assert!(Instant::now() < deadline, "the clicks were never ingested\n{}", s.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let first = conversion(s, "o-1", 40_000, &valid[0]);
    conversion(s, "o-2", 25_000, &valid[1]);
    let (code, out, err) = s.cli(&["commissions", "approve", "--now", "2099-01-01T00:00:00Z"]);
    assert_eq!((code, out.trim()), (0, r#"{"amount_minor":6500,"approved":2}"#), "{err}");
    let run = admin(s, "POST", "/v1/payout-runs", "{}");
    assert_eq!(run.status, 201, "{run:?}");
    let run_id = run.json()["run_id"].as_str().unwrap().to_string();
    assert_eq!(admin(s, "POST", &format!("/v1/payout-runs/{run_id}/confirm"), "{}").status, 200);
    conversion(s, "o-3", 10_000, &valid[2]);
    let auth = format!("Authorization: Bearer {KEY}");
    let refund = http(s.api, "POST", &format!("/v1/conversions/{first}/refund"), &[&auth, "Idempotency-Key: refund-o-1"], "{}");
    assert_eq!(refund.status, 200, "{refund:?}");
}

/// The session cookie's value in an answer's `Set-Cookie`.
fn session_of(a: &Answer) -> String {
    let c = a.header("set-cookie").unwrap_or_else(|| panic!("no cookie: {a:?}"));
    c.split(';').next().unwrap().trim().to_string()
}

/// Signs in with `key` as a browser does: the form first (its token and its cookie), then the
/// POST.
fn sign_in(s: &Server, key: &str) -> Answer {
    let form = http(s.api, "GET", "/dashboard/login", &[], "");
    let cookie = form.header("set-cookie").expect("the form's token cookie");
    assert!(cookie.starts_with("cg_login=") && cookie.contains("HttpOnly; SameSite=Strict"), "{cookie}");
    let cookie = format!("Cookie: {}", cookie.split(';').next().unwrap());
    let token = form.body.split("name=\"login_token\" value=\"").nth(1).unwrap().split('"').next().unwrap();
    let origin = format!("Origin: http://{}", s.api);
    let host = format!("Host: {}", s.api);
    let body = format!("key={}&login_token={token}", form_encode(key));
    http_host(s.api, "POST", "/dashboard/login", &[&host, &origin, &cookie, "Content-Type: application/x-www-form-urlencoded"], &body)
}

/// Every `Set-Cookie` of an answer.
fn set_cookies(a: &Answer) -> Vec<&str> {
    a.head.lines().filter_map(|l| l.split_once(':')).filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie")).map(|(_, v)| v.trim()).collect()
}

fn form_encode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() || b == b'_' { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

/// `http` with its own `Host` header among `headers`.
fn http_host(addr: std::net::SocketAddr, method: &str, path: &str, headers: &[&str], body: &str) -> Answer {
    let mut raw = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for h in headers {
        raw.push_str(&format!("{h}\r\n"));
    }
    raw.push_str("\r\n");
    raw.push_str(body);
    let out = request(addr, &raw);
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    Answer { status, head: head.to_string(), body: body.to_string() }
}

fn page(s: &Server, cookie: &str, path: &str) -> Answer {
    http(s.api, "GET", path, &[&format!("Cookie: {cookie}")], "")
}

/// The `data-value` of the cell whose `data-figure` is `figure`.
fn figure<'a>(html: &'a str, figure: &str) -> Option<&'a str> {
    let at = html.find(&format!("data-figure=\"{figure}\" data-value=\""))?;
    let rest = html[at..].split_once("data-value=\"")?.1;
    rest.split('"').next()
}

#[test]
fn the_dashboard_over_http() {
    let s = Server::start(&config());
    make_data(&s);
    let (_, bob_key) = new_key(&s, "partner:bob");
    let (bob_id, bob_second) = new_key(&s, "partner:bob");

    let login = http(s.api, "GET", "/dashboard/login", &[], "");
    assert_eq!(login.status, 200);
    for (h, want) in [
        ("content-security-policy", dashboard_csp()),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
    ] {
        assert_eq!(login.header(h), Some(want), "{h}: {login:?}");
    }
    assert!(login.header("content-type").unwrap().starts_with("text/html"));
    assert!(!login.body.contains("<script>") && !login.body.contains("style="), "nothing inline: {}", login.body);
    assert_eq!(http(s.api, "GET", "/dashboard", &[], "").header("location"), Some("/dashboard/login"), "unsigned");

    // A form posted from elsewhere is refused before its key is looked at.
    let host = format!("Host: {}", s.api);
    let forged = http_host(s.api, "POST", "/dashboard/login", &[&host, "Origin: https://evil.example"], &format!("key={bob_key}"));
    assert_eq!(forged.status, 403, "{forged:?}");
    assert!(forged.header("set-cookie").is_none());
    // So is one without the form's token cookie (a cross-site form cannot send it).
    let tokenless =
        http_host(s.api, "POST", "/dashboard/login", &[&host, "Origin: null"], &format!("key={bob_key}&login_token={}", "a".repeat(64)));
    assert_eq!(tokenless.status, 403, "{tokenless:?}");

    let signed = sign_in(&s, &bob_key);
    assert_eq!((signed.status, signed.header("location")), (303, Some("/dashboard")), "{signed:?}");
    let set = signed.header("set-cookie").unwrap();
    assert!(set.contains("; HttpOnly; SameSite=Strict; Path=/dashboard; Max-Age=28800"), "{set}");
    assert!(!set.contains("Secure"), "no TLS here: {set}");
    let bob = session_of(&signed);
    assert_eq!(page(&s, &bob, "/dashboard").header("location"), Some("/dashboard/partners/bob"));

    let mine = page(&s, &bob, "/dashboard/partners/bob");
    assert_eq!(mine.status, 200, "{mine:?}");
    let balance = &get(&s, &bob_key, "/v1/partners/bob/balance")["balances"][0];
    for k in ["pending_minor", "approved_minor", "in_transit_minor", "paid_minor"] {
        assert_eq!(figure(&mine.body, &format!("balance.USD.{k}")), Some(balance[k].to_string().as_str()), "{k}");
    }
    assert_eq!(balance["approved_minor"], -4000, "the clawback left bob owing: {balance}");
    assert!(mine.body.contains("class=\"negative\""));
    assert_eq!(page(&s, &bob, "/dashboard/partners/alice").status, 404, "another partner's page");
    assert_eq!(page(&s, &bob, "/dashboard/partners/nobody").status, 404, "as one that does not exist");
    assert_eq!(page(&s, &bob, "/dashboard/links/demo/qr.svg").status, 404, "another partner's QR code");
    let qr = page(&s, &bob, "/dashboard/links/bob/qr.svg");
    assert_eq!((qr.status, qr.header("content-type")), (200, Some("image/svg+xml")), "{qr:?}");
    assert_eq!(qr.header("content-security-policy"), Some(dashboard_csp()));

    // An admin's overview: every partner, and the program's totals as the API reports them.
    let admin_session = session_of(&sign_in(&s, KEY));
    let overview = page(&s, &admin_session, "/dashboard");
    assert_eq!(overview.status, 200, "{overview:?}");
    assert!(overview.body.contains("href=\"/dashboard/partners/alice\"") && overview.body.contains("href=\"/dashboard/partners/bob\""));
    let program = get(&s, KEY, "/v1/reports/programs/demo");
    assert_eq!(figure(&overview.body, "program.demo.clicks"), Some(program["totals"]["clicks"]["total"].to_string().as_str()));
    assert_eq!(figure(&overview.body, "program.demo.conversions"), Some(program["totals"]["conversions"].to_string().as_str()));
    assert_eq!(program["totals"]["conversions"], 3, "{program}");
    assert_eq!(page(&s, &admin_session, "/dashboard/partners/alice").status, 200, "an admin sees every partner");

    // A revoked key's session ends at its next request.
    let second = session_of(&sign_in(&s, &bob_second));
    assert_eq!(page(&s, &second, "/dashboard/partners/bob").status, 200);
    assert_eq!(admin(&s, "DELETE", &format!("/v1/api-keys/{bob_id}"), "").status, 200);
    let refused = page(&s, &second, "/dashboard/partners/bob");
    assert_eq!(refused.status, 401, "{refused:?}");
    assert!(set_cookies(&refused).iter().any(|c| c.starts_with("cg_session=;") && c.contains("Max-Age=0")), "{refused:?}");
    assert_eq!(page(&s, &second, "/dashboard/partners/bob").header("location"), Some("/dashboard/login"), "the session is gone");

    // Sign-out needs the session's form token; then the session is gone.
    let out = |cookie: &str, csrf: &str| {
        let (host, origin) = (format!("Host: {}", s.api), format!("Origin: http://{}", s.api));
        let cookie = format!("Cookie: {cookie}");
        http_host(s.api, "POST", "/dashboard/logout", &[&host, &origin, &cookie], &format!("csrf={csrf}"))
    };
    assert_eq!(out(&bob, &"0".repeat(64)).status, 403, "a wrong form token");
    assert_eq!(page(&s, &bob, "/dashboard/partners/bob").status, 200, "still signed in");
    let csrf = mine.body.split("name=\"csrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let gone = out(&bob, &csrf);
    assert_eq!((gone.status, gone.header("location")), (303, Some("/dashboard/login")), "{gone:?}");
    assert!(gone.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(page(&s, &bob, "/dashboard/partners/bob").header("location"), Some("/dashboard/login"), "signed out");

    // Failed sign-ins share the API's limiter per address (3 a minute here): then 429.
    let mut statuses = Vec::new();
    for i in 0..5 {
        let a = sign_in(&s, &format!("cgk_{i:0>32}"));
        statuses.push(a.status);
        if a.status == 429 {
            let wait: u64 = a.header("retry-after").unwrap().parse().unwrap();
            assert!((1..=60).contains(&wait), "{a:?}");
            assert!(a.header("set-cookie").is_none());
        }
    }
    assert_eq!(statuses, [401, 401, 429, 429, 429], "the third failure in a minute is refused");
    assert_eq!(sign_in(&s, &bob_key).status, 429, "the address waits, right key or not");
}

fn dashboard_csp() -> &'static str {
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'"
}

/// Fails the test: the browser cannot run here, and why.
fn unavailable(why: &str) -> ! {
    panic!(
        "this test needs Debian's chromium and npm playwright-core, installed by tests/dashboard/fetch.sh \
         (apt-get and npm ci): {why}\nRun it as root with the registries reachable, or run cargo test without \
         --include-ignored: it lists this test as ignored"
    )
}

/// The directory holding playwright-core's node_modules, installing it (and chromium) first.
fn node_dir() -> PathBuf {
    let fetch = Command::new("bash")
        .arg(Path::new(ROOT).join("tests/dashboard/fetch.sh"))
        .env("CLICKGATE_DASHBOARD_NODE", target_dir().join("dashboard-node"))
        .output()
        .unwrap_or_else(|e| unavailable(&format!("cannot run bash: {e}")));
    let err = String::from_utf8_lossy(&fetch.stderr);
    match fetch.status.code() {
        Some(0) => PathBuf::from(String::from_utf8_lossy(&fetch.stdout).trim()),
        Some(3) | Some(4) => unavailable(&format!("tests/dashboard/fetch.sh could not install it:\n{err}")),
        code => panic!("tests/dashboard/fetch.sh failed ({code:?}):\n{err}"),
    }
}

/// The cargo target dir this test binary was built in.
fn target_dir() -> PathBuf {
    Path::new(BIN).parent().and_then(Path::parent).map_or_else(|| Path::new(ROOT).join("target"), Path::to_path_buf)
}

#[test]
#[ignore = "needs Debian chromium and npm playwright-core (tests/dashboard/fetch.sh)"]
fn a_partner_signs_in_and_sees_the_apis_figures_in_a_browser() {
    let node = node_dir();
    let s = Server::start(&config());
    make_data(&s);
    let (_, bob_key) = new_key(&s, "partner:bob");
    let shots = target_dir().join("dashboard");
    std::fs::create_dir_all(&shots).unwrap();
    let screenshot = shots.join("partner.png");
    let today = stream::rfc3339(stream::now_ms())[..10].to_string();
    let mut cmd = Command::new("node");
    cmd.arg(Path::new(ROOT).join("tests/dashboard/dashboard.mjs"))
        .env("DASHBOARD_NODE_DIR", &node)
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        .env("DASHBOARD_BASE", format!("http://{}", s.api))
        .env("DASHBOARD_KEY", &bob_key)
        .env("DASHBOARD_PARTNER", "bob")
        .env("DASHBOARD_OTHER", "alice")
        .env("DASHBOARD_SCREENSHOT", &screenshot)
        .env("DASHBOARD_FROM", &today)
        .env("DASHBOARD_TO", &today);
    if let Ok(readme) = std::env::var("DASHBOARD_README_SHOT") {
        cmd.env("DASHBOARD_README_SHOT", readme);
    }
    let run = cmd.output().unwrap_or_else(|e| unavailable(&format!("cannot run node: {e}")));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "dashboard.mjs failed:\n{stderr}\n{}", s.log());
    let stdout = String::from_utf8_lossy(&run.stdout);
    let seen: Value = serde_json::from_str(stdout.lines().last().unwrap_or("")).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"));
    println!("dashboard screenshot: {}", screenshot.display());

    assert!(seen["unsigned_url"].as_str().unwrap().ends_with("/dashboard/login"), "{seen}");
    assert!(seen["signed_in_url"].as_str().unwrap().ends_with("/dashboard/partners/bob"), "{seen}");
    let cookie = &seen["cookie"][0];
    assert_eq!(
        (cookie["name"].as_str(), cookie["httpOnly"].as_bool(), cookie["sameSite"].as_str()),
        (Some("cg_session"), Some(true), Some("Strict"))
    );
    assert_eq!(seen["offsite"], json!([]), "the page asked for something off this server");
    assert_eq!(seen["console_errors"], json!([]), "the CSP refused something, or a script failed");
    assert_eq!(seen["stylesheet_applied"], "rgb(29, 43, 58)", "the stylesheet loads under the CSP");

    // The balance, as the API answers it to the same key.
    let balance = &get(&s, &bob_key, "/v1/partners/bob/balance")["balances"][0];
    let figures = &seen["figures"];
    for k in ["pending_minor", "approved_minor", "in_transit_minor", "paid_minor"] {
        assert_eq!(figures[format!("balance.USD.{k}")], balance[k].to_string(), "{k}: {figures}");
    }
    assert_eq!((balance["pending_minor"].as_i64(), balance["approved_minor"].as_i64()), (Some(1000), Some(-4000)), "{balance}");
    // The chart: one bar a day of the report's period, each day's valid and flagged clicks.
    let report = get(&s, &bob_key, "/v1/reports/partners/bob");
    let chart = seen["chart"].as_array().unwrap();
    assert_eq!(chart.len(), 30, "the default period is 30 days: {chart:?}");
    let (mut valid, mut flagged) = (0, 0);
    for day in report["days"].as_array().unwrap() {
        let bar = chart.iter().find(|b| b["date"] == day["date"]).unwrap_or_else(|| panic!("no bar for {day}"));
        let by = &day["clicks"]["by_verdict"];
        assert_eq!((&bar["valid"], &bar["flagged"]), (&by["valid"], &by["flagged"]), "{bar}");
        valid += bar["valid"].as_u64().unwrap();
        flagged += bar["flagged"].as_u64().unwrap();
    }
    assert_eq!(chart.iter().map(|b| b["valid"].as_u64().unwrap() + b["flagged"].as_u64().unwrap()).sum::<u64>(), valid + flagged);
    assert_eq!((valid, flagged), (6, 3), "six valid clicks and three from a datacenter: {report}");
    let t = &report["totals"];
    assert_eq!(figures["conversions"], t["conversions"].to_string());
    assert_eq!(figures["conversion_rate"], t["conversion_rate"].to_string());
    assert_eq!(figures["epc.USD"], t["epc"][0]["epc_minor"].to_string());
    for c in t["commissions"].as_array().unwrap() {
        let f = format!("commissions.{}.{}.remaining_minor", c["currency"].as_str().unwrap(), c["status"].as_str().unwrap());
        assert_eq!(figures[&f], c["remaining_minor"].to_string(), "{f}");
    }
    assert_eq!(seen["period_chart"].as_array().map(Vec::len), Some(1), "the chosen period is one day: {seen}");
    assert_eq!(seen["period_figures"]["clicks.total"], "9");

    // The link, its copy button and its QR code.
    assert_eq!(seen["copied"], seen["copy_source"]);
    assert!(seen["copy_source"].as_str().unwrap().ends_with("/r/bob"), "{seen}");
    assert_eq!(seen["qr"]["src"], "/dashboard/links/bob/qr.svg");
    assert_eq!(seen["qr"]["complete"], true);
    assert!(seen["qr"]["width"].as_u64().unwrap() > 0, "the QR image loaded: {seen}");
    assert_eq!((seen["qr_status"].as_u64(), seen["qr_type"].as_str()), (Some(200), Some("image/svg+xml")));
    // Partner alice's page is not bob's to see; then sign-out ends the session.
    assert_eq!(seen["other_status"], 404, "{seen}");
    assert!(seen["after_sign_out_url"].as_str().unwrap().ends_with("/dashboard/login"), "{seen}");

    let png = std::fs::read(&screenshot).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "a screenshot of the page: {} bytes", png.len());
}
