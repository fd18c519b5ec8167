//! The API end to end: the real binary, a real click through the edge, conversions over HTTP.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::*;

on_both!(
    a_click_then_a_conversion_is_attributed_once,
    bad_requests_name_the_field,
    visitor_touches_split_by_the_model_and_the_explanation_says_why,
    lifecycle_postback_and_import,
);

const KEY: &str = "test-admin-key-0123";
const POSTBACK_SECRET: &str = "test-postback-secret-0123";

/// The fixture config with a second partner, a coupon, an admin key and no click-injection
/// guard (the tests convert right after clicking).
fn config(model: &str) -> String {
    fixture_config(&format!("[api]\nadmin_key = \"{KEY}\"\npostback_secret = \"{POSTBACK_SECRET}\"\n")).replace(
        "country_deny = [\"GB\"]",
        &format!("country_deny = [\"GB\"]\n[demo.programs.attribution]\nmodel = \"{model}\"\nmin_click_to_conversion_ms = 0"),
    ) + BOB
}

fn auth() -> String {
    format!("Authorization: Bearer {KEY}")
}

fn now_rfc3339() -> String {
    stream::rfc3339(stream::now_ms())
}

/// Clicks a link as a browser; returns (cgid, visitor cookie value).
fn click(s: &Server, code: &str, ip: &str, visitor: Option<&str>) -> (String, String) {
    let cookie = visitor.map(|v| format!("Cookie: cg_vid={v}\r\n")).unwrap_or_default();
    let raw = format!(
        "GET /r/{code} HTTP/1.1\r\nHost: go.example\r\nX-Forwarded-For: {ip}\r\nUser-Agent: {CHROME}\r\n{cookie}Connection: close\r\n\r\n"
    );
    let out = request(s.edge, &raw);
    assert!(out.starts_with("HTTP/1.1 302"), "{out}");
    let location = out.lines().find_map(|l| l.strip_prefix("location: ")).expect("Location");
    let cgid = location.split("cgid=").nth(1).unwrap().split('&').next().unwrap().to_string();
    let vid = match visitor {
        Some(v) => v.to_string(),
        None => out.lines().find_map(|l| l.strip_prefix("set-cookie: cg_vid=")).unwrap().split(';').next().unwrap().to_string(),
    };
    (cgid, vid)
}

/// Waits until the core has ingested a click.
fn wait_ingested(s: &Server, cgid: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let a = http(s.api, "GET", &format!("/v1/clicks/{cgid}"), &[&auth()], "");
        if a.status == 200 {
            return a.json();
        }
        assert!(Instant::now() < deadline, "click never ingested: {a:?}\n{}", s.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn post_conversion(s: &Server, key: Option<&str>, body: &serde_json::Value) -> Answer {
    let idem = key.map(|k| format!("Idempotency-Key: {k}"));
    let mut headers = vec![auth(), "Content-Type: application/json".to_string()];
    headers.extend(idem);
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    http(s.api, "POST", "/v1/conversions", &headers, &body.to_string())
}

fn a_click_then_a_conversion_is_attributed_once(store: Store) {
    let s = Server::start_on(&config("last_click"), store);
    let (cgid, _) = click(&s, "demo", "198.51.100.7", None);
    let click = wait_ingested(&s, &cgid);
    assert_eq!((click["partner"].as_str(), click["verdict"].as_str()), (Some("alice"), Some("valid")));

    let body = serde_json::json!({
        "order_id": "order-1", "program": "demo", "amount_minor": 2599, "currency": "USD",
        "occurred_at": now_rfc3339(), "click_id": cgid,
    });
    let first = post_conversion(&s, Some("k-1"), &body);
    assert_eq!(first.status, 201, "{first:?}");
    let v = first.json();
    assert_eq!(v["attribution"]["method"], "click_id");
    assert_eq!(v["attribution"]["shares"], serde_json::json!([{"partner": "alice", "amount_minor": 2599}]));
    assert_eq!(v["attribution"]["touches"][0]["why"], "counted");
    assert!(first.header("location").unwrap().starts_with("/v1/conversions/cv_"));

    let replay = post_conversion(&s, Some("k-1"), &body);
    assert_eq!((replay.status, replay.header("idempotent-replayed")), (201, Some("true")));
    assert_eq!(replay.body, first.body, "a replay returns the first answer byte for byte");

    let mut changed = body.clone();
    changed["amount_minor"] = 9999.into();
    let conflict = post_conversion(&s, Some("k-1"), &changed);
    assert_eq!(conflict.status, 409, "{conflict:?}");
    // Another key with the same order id but other fields is also refused: one order, one conversion.
    assert_eq!(post_conversion(&s, Some("k-2"), &changed).status, 409);
    // The same order under a new key replays: attributed once, whatever is retried.
    let again = post_conversion(&s, Some("k-3"), &body);
    assert_eq!((again.status, again.header("idempotent-replayed")), (201, Some("true")));

    let id = v["id"].as_str().unwrap();
    let got = http(s.api, "GET", &format!("/v1/conversions/{id}"), &[&auth()], "");
    assert_eq!((got.status, got.json()["order_id"].as_str()), (200, Some("order-1")));
    assert!(s.metric("clickgate_conversions_attributed_total{method=\"click_id\"}") == 1.0);
}

fn bad_requests_name_the_field(store: Store) {
    let s = Server::start_on(&config("last_click"), store);
    let ok = serde_json::json!({
        "order_id": "o", "program": "demo", "amount_minor": 100, "currency": "USD",
        "occurred_at": now_rfc3339(), "coupon_code": "BOB10",
    });
    let with = |k: &str, v: serde_json::Value| {
        let mut b = ok.clone();
        b[k] = v;
        b
    };
    let check = |body: &str, status: u16, needle: &str| {
        let a = http(s.api, "POST", "/v1/conversions", &[&auth()], body);
        assert_eq!(a.status, status, "{body} -> {a:?}");
        assert!(a.json()["error"]["message"].as_str().unwrap().contains(needle), "{body} -> {}", a.body);
    };
    check("{not json", 400, "invalid JSON");
    check(&with("surprise", 1.into()).to_string(), 400, "surprise");
    check(&with("amount_minor", "ten".into()).to_string(), 400, "amount_minor");
    check(&with("amount_minor", (-5).into()).to_string(), 422, "amount_minor: must not be negative");
    check(&with("currency", "XYZ".into()).to_string(), 422, "currency");
    check(&with("currency", "EUR".into()).to_string(), 422, "currency: program \"demo\" is in USD");
    check(&with("occurred_at", "2999-01-01T00:00:00Z".into()).to_string(), 422, "occurred_at: is in the future");
    check(&with("occurred_at", "2001-01-01T00:00:00Z".into()).to_string(), 422, "occurred_at: is older than");
    check(&with("occurred_at", "yesterday".into()).to_string(), 422, "occurred_at");
    check(&with("program", "nope".into()).to_string(), 422, "program: unknown program");
    check(&with("click_id", "short".into()).to_string(), 422, "click_id");
    check(&with("coupon_code", serde_json::Value::Null).to_string(), 422, "at least one of");

    let unauth = http(s.api, "POST", "/v1/conversions", &[], &ok.to_string());
    assert_eq!((unauth.status, unauth.header("www-authenticate")), (401, Some("Bearer")));
    let wrong = http(s.api, "POST", "/v1/conversions", &["Authorization: Bearer not-the-key-at-all"], &ok.to_string());
    assert_eq!(wrong.status, 401);
    // A declared length over the limit is refused before the body is read. Only the head is
    // sent: the server answers and closes at once, and a client still writing a 2 MiB body
    // could get a reset instead of the answer.
    let too_large =
        request(s.api, &format!("POST /v1/conversions HTTP/1.1\r\nHost: api.test\r\n{}\r\nContent-Length: {}\r\n\r\nxx", auth(), 2 << 20));
    assert!(too_large.starts_with("HTTP/1.1 413"), "{too_large}");
    assert_eq!(http(s.api, "GET", "/v1/conversions/cv_nope", &[&auth()], "").status, 404);
}

fn visitor_touches_split_by_the_model_and_the_explanation_says_why(store: Store) {
    // Bob's link is shared on social media, the demo link on the web.
    let config = config("linear")
        .replace("destination = \"https://example.com/bob\"", "destination = \"https://example.com/bob\"\nchannel = \"social\"");
    let s = Server::start_on(&config, store);
    let (a, vid) = click(&s, "demo", "198.51.100.8", None);
    let (b, _) = click(&s, "bob", "198.51.100.8", Some(&vid));
    wait_ingested(&s, &a);
    wait_ingested(&s, &b);
    let body = serde_json::json!({
        "order_id": "o-v", "program": "demo", "amount_minor": 1001, "currency": "USD",
        "occurred_at": now_rfc3339(), "visitor_id": vid,
    });
    let v = post_conversion(&s, None, &body).json();
    assert_eq!(v["attribution"]["method"], "visitor");
    let share_of = |v: &serde_json::Value, partner: &str| {
        v["attribution"]["shares"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["partner"] == partner)
            .map_or(0, |s| s["amount_minor"].as_i64().unwrap())
    };
    let mut link_revenue = [share_of(&v, "alice"), share_of(&v, "bob")];
    let shares = v["attribution"]["shares"].as_array().unwrap();
    let total: i64 = shares.iter().map(|s| s["amount_minor"].as_i64().unwrap()).sum();
    assert_eq!(total, 1001, "shares sum exactly: {shares:?}");
    assert_eq!(shares.len(), 2);
    assert!((shares[0]["amount_minor"].as_i64().unwrap() - shares[1]["amount_minor"].as_i64().unwrap()).abs() <= 1);

    // A forged click id is rejected and said so; the visitor's touches still decide.
    let mut forged = a.clone().into_bytes();
    forged[30] = if forged[30] == b'A' { b'B' } else { b'A' };
    let body = serde_json::json!({
        "order_id": "o-f", "program": "demo", "amount_minor": 500, "currency": "USD",
        "occurred_at": now_rfc3339(), "click_id": String::from_utf8(forged).unwrap(), "visitor_id": vid,
    });
    let v = post_conversion(&s, None, &body).json();
    assert_eq!(v["attribution"]["method"], "visitor");
    assert!(v["attribution"]["notes"][0].as_str().unwrap().contains("signature does not match"), "{v}");
    let forged_id = v["id"].as_str().unwrap().to_string();
    link_revenue[0] += share_of(&v, "alice");
    link_revenue[1] += share_of(&v, "bob");

    // Self-referral: bob buying through his own coupon earns nothing.
    let body = serde_json::json!({
        "order_id": "o-s", "program": "demo", "amount_minor": 500, "currency": "USD",
        "occurred_at": now_rfc3339(), "coupon_code": "bob10", "customer_ref": "BOB@example.com",
    });
    let v = post_conversion(&s, None, &body).json();
    assert_eq!(v["attribution"]["method"], "none");
    assert_eq!(v["attribution"]["touches"][0]["why"], "self_referral");
    let body = serde_json::json!({
        "order_id": "o-c", "program": "demo", "amount_minor": 500, "currency": "USD",
        "occurred_at": now_rfc3339(), "coupon_code": "bob10",
    });
    let v = post_conversion(&s, None, &body).json();
    assert_eq!((v["attribution"]["method"].as_str(), v["attribution"]["shares"][0]["partner"].as_str()), (Some("coupon"), Some("bob")));

    // Reports see the clicks and the credited conversions.
    let r = http(s.api, "GET", "/v1/reports/partners/bob", &[&auth()], "").json();
    assert_eq!(r["totals"]["clicks"]["total"], 1);
    // The visitor conversion, the one with the forged id (decided by the visitor), the coupon.
    assert_eq!(r["totals"]["conversions"], 3, "{r}");
    let r = http(s.api, "GET", "/v1/reports/programs/demo", &[&auth()], "").json();
    assert_eq!(r["totals"]["clicks"]["by_verdict"]["valid"], 2);
    assert_eq!(r["totals"]["conversions"], 4, "{r}");
    assert_eq!(r["totals"]["revenue"][0]["revenue_minor"], 1001 + 500 * 3);

    // By link and by channel: each link's click and the two conversions its touches share;
    // the coupon's sale has no link. The shares add up to the two visitor conversions.
    assert_eq!(link_revenue[0] + link_revenue[1], 1001 + 500);
    let report = |path: &str| {
        let a = http(s.api, "GET", path, &[&auth()], "");
        assert_eq!(a.status, 200, "{path}: {a:?}");
        a.json()
    };
    for (i, (link, channel)) in [("demo", "web"), ("bob", "social")].into_iter().enumerate() {
        for r in [report(&format!("/v1/reports/links/{link}")), report(&format!("/v1/reports/channels/{channel}?program=demo"))] {
            assert_eq!((r["totals"]["clicks"]["total"].as_u64(), r["totals"]["conversions"].as_u64()), (Some(1), Some(2)), "{link}: {r}");
            assert_eq!(r["totals"]["revenue"][0]["revenue_minor"], link_revenue[i], "{link}: {r}");
            assert!(r["totals"].get("commissions").is_none() && r["days"][0].get("commissions").is_none(), "{r}");
        }
    }
    let bob_on_the_web = report("/v1/reports/channels/web?partner=bob");
    assert_eq!(
        (bob_on_the_web["totals"]["clicks"]["total"].as_u64(), bob_on_the_web["totals"]["conversions"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(report("/v1/reports/channels/qr")["days"].as_array().unwrap().len(), 0);
    let csv = http(s.api, "GET", "/v1/reports/links/bob?format=csv", &[&auth()], "");
    assert!(csv.body.contains("total,clicks,,,1") && csv.body.contains("total,conversions,,,2"), "{}", csv.body);
    assert_eq!(http(s.api, "GET", "/v1/reports/links/nope", &[&auth()], "").status, 404);
    assert_eq!(http(s.api, "GET", "/v1/reports/channels/fax", &[&auth()], "").status, 404);
    assert_eq!(http(s.api, "GET", "/v1/reports/channels/web?program=demo&partner=bob", &[&auth()], "").status, 422);
    assert_eq!(http(s.api, "GET", "/v1/reports/channels/web?program=nope", &[&auth()], "").status, 404);

    // A cancel takes the conversion back from both links' days and counts it cancelled.
    let cancel = http(s.api, "POST", &format!("/v1/conversions/{forged_id}/cancel"), &[&auth()], "");
    assert_eq!(cancel.status, 200, "{cancel:?}");
    for link in ["demo", "bob"] {
        let r = report(&format!("/v1/reports/links/{link}"));
        assert_eq!((r["totals"]["conversions"].as_u64(), r["days"][0]["cancelled"].as_u64()), (Some(1), Some(1)), "{link}: {r}");
    }
}

fn lifecycle_postback_and_import(store: Store) {
    let s = Server::start_on(&config("last_click"), store);
    let body = serde_json::json!({
        "order_id": "o-1", "program": "demo", "amount_minor": 1000, "currency": "USD",
        "occurred_at": now_rfc3339(), "coupon_code": "BOB10",
    });
    let id = post_conversion(&s, None, &body).json()["id"].as_str().unwrap().to_string();
    let post = |path: &str, extra: &[&str], body: &str| {
        let mut h = vec![auth()];
        h.extend(extra.iter().map(|s| s.to_string()));
        let h: Vec<&str> = h.iter().map(String::as_str).collect();
        http(s.api, "POST", &format!("/v1/conversions/{id}/{path}"), &h, body)
    };
    assert_eq!(post("confirm", &[], "").json()["status"], "confirmed");
    assert_eq!(post("refund", &[], "{\"amount_minor\":100}").status, 400, "refunds need an Idempotency-Key");
    let r = post("refund", &["Idempotency-Key: rf-1"], "{\"amount_minor\":100}");
    assert_eq!((r.status, r.json()["refunded_minor"].as_i64()), (200, Some(100)));
    let again = post("refund", &["Idempotency-Key: rf-1"], "{\"amount_minor\":100}");
    assert_eq!((again.json()["refunded_minor"].as_i64(), again.header("idempotent-replayed")), (Some(100), Some("true")));
    assert_eq!(post("refund", &["Idempotency-Key: rf-2"], "{\"amount_minor\":901}").status, 422);
    assert_eq!(post("cancel", &[], "").status, 409);

    // A signed postback records a conversion; a tampered one is refused.
    let ts = (SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()).to_string();
    let mut params: Vec<(String, String)> = [
        ("program", "demo"),
        ("order_id", "pos-1"),
        ("amount_minor", "750"),
        ("currency", "USD"),
        ("occurred_at", &now_rfc3339()),
        ("coupon_code", "BOB10"),
        ("ts", &ts),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let sig = clickgate::api::postback::sign(POSTBACK_SECRET.as_bytes(), &params);
    params.push(("sig".into(), sig));
    let query = |p: &[(String, String)]| form_urlencoded::Serializer::new(String::new()).extend_pairs(p).finish();
    let ok = http(s.api, "GET", &format!("/v1/postback?{}", query(&params)), &[], "");
    assert_eq!((ok.status, ok.json()["origin"].as_str()), (201, Some("postback")), "{ok:?}");
    params[2].1 = "7500".into();
    assert_eq!(http(s.api, "GET", &format!("/v1/postback?{}", query(&params)), &[], "").status, 401);

    // CSV import: exact decimal amounts, bad rows reported by line, re-import replays.
    let today = &now_rfc3339()[..10];
    let csv = format!(
        "Order_ID,Amount,SKU,Coupon_Code,Occurred_At\nm-1,12.50,X1,BOB10,{today}\nm-2,3.999,X2,BOB10,{today}\nm-3,7,X3,BOB10,{today}\n"
    );
    let csv_path = s.dir.path().join("orders.csv");
    std::fs::write(&csv_path, &csv).unwrap();
    let out = std::process::Command::new(BIN)
        .args(["--config", s.config.to_str().unwrap(), "import", "--program", "demo", "--api", &s.api.to_string()])
        .arg(&csv_path)
        .env("CLICKGATE_ADMIN_KEY", KEY)
        .output()
        .unwrap();
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{out:?}"));
    assert_eq!((summary["rows"].as_u64(), summary["created"].as_u64()), (Some(3), Some(2)), "{summary}");
    assert_eq!(summary["rejected"][0]["line"], 3);
    assert!(summary["rejected"][0]["error"].as_str().unwrap().contains("decimal places"));
    assert_eq!(summary["ignored_columns"], serde_json::json!(["sku"]));
    let again = http(s.api, "POST", "/v1/conversions/import?program=demo", &[&auth(), "Content-Type: text/csv"], &csv).json();
    assert_eq!((again["created"].as_u64(), again["replayed"].as_u64()), (Some(0), Some(2)));
    let m1 = clickgate::conversions::conversion_id("demo", "m-1");
    assert_eq!(http(s.api, "GET", &format!("/v1/conversions/{m1}"), &[&auth()], "").json()["amount_minor"], 1250);
}
