//! The audit log and coupon status end to end, on real sockets and the real binary: writes
//! through the API with a stored admin key and through the command line, read back through
//! `GET /v1/audit` and `clickgate audit list` with their filters and pages, nothing sensitive in
//! clear; and a paused coupon crediting no one until it is resumed.

mod common;

use common::*;
use serde_json::{json, Value};

const KEY: &str = "test-admin-key-0123";

on_both!(writes_through_the_api_and_the_cli_are_in_the_audit_log, a_paused_coupon_credits_no_one_until_resumed);

fn config() -> String {
    format!("{}{BOB}", fixture_config(&format!("[api]\nadmin_key = \"{KEY}\"\n")))
}

fn call(s: &Server, key: &str, method: &str, path: &str, body: &str) -> Answer {
    let auth = format!("Authorization: Bearer {key}");
    http(s.api, method, path, &[auth.as_str(), "Content-Type: application/json"], body)
}

/// Every entry `GET /v1/audit?{query}` answers, following `next_cursor`; with the number of
/// pages read.
fn audit(s: &Server, key: &str, query: &str) -> (Vec<Value>, usize) {
    let (mut rows, mut pages, mut cursor) = (Vec::new(), 0, None::<String>);
    loop {
        let url = match &cursor {
            Some(c) => format!("/v1/audit?{query}&cursor={c}"),
            None => format!("/v1/audit?{query}"),
        };
        let a = call(s, key, "GET", &url, "");
        assert_eq!(a.status, 200, "{url}: {a:?}");
        assert!(!a.body.contains("carol@example.com") && !a.body.contains("pay-carol"), "an e-mail in clear: {}", a.body);
        let v = a.json();
        rows.extend(v["entries"].as_array().unwrap().iter().cloned());
        pages += 1;
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return (rows, pages),
        }
    }
}

/// (actor, action, object) of each entry.
fn seen(rows: &[Value]) -> Vec<(String, String, String)> {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    rows.iter().map(|r| (s(&r["actor"]), s(&r["action"]), s(&r["object"]))).collect()
}

fn writes_through_the_api_and_the_cli_are_in_the_audit_log(store: Store) {
    let s = Server::start_on(&config(), store);
    // Keys made with the configured key are the bootstrap admin's writes.
    let ops = call(&s, KEY, "POST", "/v1/api-keys", r#"{"name":"ops","scope":"admin"}"#).json();
    let (ops_id, ops_key) = (ops["id"].as_str().unwrap().to_string(), ops["secret"].as_str().unwrap().to_string());
    let bob = call(&s, KEY, "POST", "/v1/api-keys", r#"{"name":"bob","scope":"partner:bob"}"#).json();
    let (bob_id, bob_key) = (bob["id"].as_str().unwrap().to_string(), bob["secret"].as_str().unwrap().to_string());

    // Through the API with the stored admin key.
    let carol = json!({"id": "carol", "name": "Carol", "email": "carol@example.com", "payout_method": "paypal", "paypal_email": "pay-carol@example.com"});
    assert_eq!(call(&s, &ops_key, "POST", "/v1/partners", &carol.to_string()).status, 201);
    let edited = call(&s, &ops_key, "PATCH", "/v1/partners/carol", r#"{"name":"Carol C"}"#);
    assert_eq!(
        (edited.status, edited.json()["email"].as_str()),
        (200, Some("carol@example.com")),
        "the API still shows the admin the e-mail"
    );
    let paused = call(&s, &ops_key, "POST", "/v1/coupons/demo/bob10/pause", "");
    assert_eq!((paused.status, paused.json()["status"].as_str(), paused.json()["code"].as_str()), (200, Some("paused"), Some("BOB10")));
    // A refused write leaves no entry.
    assert_eq!(call(&s, &ops_key, "POST", "/v1/partners", &carol.to_string()).status, 409);

    // Through the command line.
    let (code, out, err) = s.cli(&["partner", "pause", "carol"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = s.cli(&["coupon", "resume", "--program", "demo", "bob10"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("\"status\":\"active\""), "{out}");

    // Everything, two a page, in the order of the writes.
    let (all, pages) = audit(&s, &ops_key, "limit=2");
    let want = [
        ("admin", "api_key.create", format!("api_key:{ops_id}")),
        ("admin", "api_key.create", format!("api_key:{bob_id}")),
        (ops_id.as_str(), "partner.create", "partner:carol".to_string()),
        (ops_id.as_str(), "partner.update", "partner:carol".to_string()),
        (ops_id.as_str(), "coupon.pause", "coupon:demo:BOB10".to_string()),
        ("cli", "partner.pause", "partner:carol".to_string()),
        ("cli", "coupon.resume", "coupon:demo:BOB10".to_string()),
    ];
    let want: Vec<(String, String, String)> = want.iter().map(|(a, b, c)| (a.to_string(), b.to_string(), c.clone())).collect();
    assert_eq!(seen(&all), want);
    assert_eq!(pages, 4, "seven entries, two a page");
    assert!(all.windows(2).all(|w| w[0]["seq"].as_i64() < w[1]["seq"].as_i64()));

    // Before and after, redacted.
    let update = &all[3];
    assert_eq!((update["before"]["name"].as_str(), update["after"]["name"].as_str()), (Some("Carol"), Some("Carol C")));
    assert_eq!((update["after"]["email"].as_str(), update["after"]["paypal_email"].as_str()), (Some("[redacted]"), Some("[redacted]")));
    assert!(all[2]["before"].is_null() && all[2]["after"]["status"] == "active");
    assert_eq!((all[5]["before"]["status"].as_str(), all[5]["after"]["status"].as_str()), (Some("active"), Some("paused")));
    assert!(!all[0]["after"].to_string().contains(&ops_key), "a key's secret never reaches the log");
    assert!(all[0]["at"].as_str().unwrap().ends_with('Z'));

    // Filters.
    let objects = |q: &str| seen(&audit(&s, &ops_key, q).0).into_iter().map(|(_, action, _)| action).collect::<Vec<_>>();
    assert_eq!(objects("object=partner:carol"), ["partner.create", "partner.update", "partner.pause"]);
    assert_eq!(objects("object=coupon"), ["coupon.pause", "coupon.resume"]);
    assert_eq!(objects("key=cli"), ["partner.pause", "coupon.resume"]);
    assert_eq!(objects(&format!("key={ops_id}&object=partner")), ["partner.create", "partner.update"]);
    assert_eq!(objects("since=2999-01-01T00:00:00Z"), Vec::<String>::new());
    assert_eq!(objects("since=2000-01-01T00:00:00Z").len(), 7);
    let bad = call(&s, &ops_key, "GET", "/v1/audit?object=invoice", "");
    assert_eq!((bad.status, bad.json()["error"]["field"].as_str()), (422, Some("object")));

    // Admin only: a partner key is refused as on every admin route.
    assert_eq!(call(&s, &bob_key, "GET", "/v1/audit", "").status, 403);

    // The command line reads the same log.
    let (code, out, err) = s.cli(&["audit", "list", "--object", "partner:carol", "--key", &ops_id]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(seen(&lines).into_iter().map(|(_, a, _)| a).collect::<Vec<_>>(), ["partner.create", "partner.update"]);
    assert!(!out.contains("carol@example.com"), "{out}");
}

fn a_paused_coupon_credits_no_one_until_resumed(store: Store) {
    let s = Server::start_on(&config(), store);
    let sale = |order: &str| {
        let body = json!({
            "order_id": order, "program": "demo", "amount_minor": 1000, "currency": "USD",
            "occurred_at": stream::rfc3339(stream::now_ms()), "coupon_code": "bob10",
        });
        let a = call(&s, KEY, "POST", "/v1/conversions", &body.to_string());
        assert_eq!(a.status, 201, "{a:?}");
        a.json()["attribution"].clone()
    };
    assert_eq!(call(&s, KEY, "POST", "/v1/coupons/demo/BOB10/pause", "").status, 200);
    let listed = call(&s, KEY, "GET", "/v1/coupons?status=paused", "").json();
    assert_eq!(listed["coupons"], json!([{"code": "BOB10", "program": "demo", "partner": "bob", "status": "paused"}]));
    let a = sale("o-paused");
    assert_eq!((a["method"].as_str(), a["shares"].as_array().map(Vec::len)), (Some("none"), Some(0)), "{a}");
    assert!(a["notes"].to_string().contains("paused"), "{a}");
    assert_eq!(call(&s, KEY, "POST", "/v1/coupons/demo/BOB10/expire", "").json()["status"], "expired");
    assert_eq!(sale("o-expired")["method"], "none");
    let (code, out, err) = s.cli(&["coupon", "resume", "--program", "demo", "BOB10"]);
    assert_eq!(code, 0, "{out}{err}");
    // The CLI wrote the store; the core sees it on its next reload of the catalog.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut n = 0;
    loop {
        n += 1;
        let a = sale(&format!("o-resumed-{n}"));
        if a["method"] == "coupon" {
            assert_eq!(a["shares"], json!([{"partner": "bob", "amount_minor": 1000}]));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the resumed coupon still credits no one: {a}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(call(&s, KEY, "POST", "/v1/coupons/demo/NOPE/pause", "").status, 404);
}
