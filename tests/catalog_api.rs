//! The catalog over the API, on real sockets: programs, partners, links and coupons created,
//! read, listed a page at a time with filters, changed, paused, resumed and expired; each
//! refusal naming its field; a link's changes reaching the edge within its reload interval;
//! the CLI and the API seeing one catalog; and a partner key creating its own links only where
//! its program lets it.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const KEY: &str = "test-admin-key-0123";

/// The fixture's catalog with bob, a quick link reload, and the checks that count a client's
/// clicks off: the test follows one link many times from one address.
fn config() -> String {
    let extra = format!(
        "[checks.rate_limit]\nmode = \"off\"\n[checks.velocity]\nmode = \"off\"\n[checks.dedup]\nmode = \"off\"\n\
         [api]\nadmin_key = \"{KEY}\"\n"
    );
    let text = format!("{}{BOB}", fixture_config(&extra));
    text.replacen("header_read_timeout_ms = 500", "header_read_timeout_ms = 500\nlink_reload_interval_ms = 100", 1)
}

fn call_as(s: &Server, key: &str, method: &str, path: &str, body: &str) -> Answer {
    let auth = format!("Authorization: Bearer {key}");
    http(s.api, method, path, &[auth.as_str(), "Content-Type: application/json"], body)
}

fn admin(s: &Server, method: &str, path: &str, body: Value) -> Answer {
    let body = if body.is_null() { String::new() } else { body.to_string() };
    call_as(s, KEY, method, path, &body)
}

/// The field a refusal names, with its status.
fn refusal(a: &Answer) -> (u16, String) {
    (a.status, a.json()["error"]["field"].as_str().unwrap_or_default().to_string())
}

/// Where the edge sends a click on `code` now.
fn location(s: &Server, code: &str) -> String {
    let out = s.get(&format!("/r/{code}"), "198.51.100.30", CHROME);
    header(&out, "location").unwrap_or_default().to_string()
}

/// Waits until the edge sends a click on `code` somewhere `ok` accepts.
fn edge_sends(s: &Server, code: &str, ok: impl Fn(&str) -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let loc = location(s, code);
        if ok(&loc) {
            return;
        }
        assert!(Instant::now() < deadline, "{code}: the edge still sends {loc:?}, not {what}\n{}", s.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every page of a list, following `next_cursor`; answers the rows and how many pages.
fn all_pages(s: &Server, path: &str, name: &str) -> (Vec<Value>, usize) {
    let (mut rows, mut pages, mut cursor) = (Vec::new(), 0, None::<String>);
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = match &cursor {
            Some(c) => format!("{path}{sep}cursor={c}"),
            None => path.to_string(),
        };
        let a = admin(s, "GET", &url, Value::Null);
        assert_eq!(a.status, 200, "{url}: {a:?}");
        let v = a.json();
        rows.extend(v[name].as_array().unwrap().iter().cloned());
        pages += 1;
        match v["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return (rows, pages),
        }
    }
}

/// A PNG answer's bytes, read off the socket as they came.
fn png_of(s: &Server, path: &str) -> Vec<u8> {
    let (head, body) = get_bytes(s.api, path, &[&format!("Authorization: Bearer {KEY}")]);
    assert!(head.starts_with("HTTP/1.1 200") && head.to_ascii_lowercase().contains("content-type: image/png"), "{head}");
    body
}

/// A PNG's width and height, after checking its signature and that its chunks hold together:
/// each chunk's CRC, IHDR first and IEND last.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let be = |b: &[u8]| u32::from_be_bytes(b.try_into().unwrap());
    let (mut at, mut kinds) = (8, Vec::new());
    while at < png.len() {
        let len = be(&png[at..at + 4]) as usize;
        assert_eq!(crc32(&png[at + 4..at + 8 + len]), be(&png[at + 8 + len..at + 12 + len]), "chunk at {at}");
        kinds.push(String::from_utf8_lossy(&png[at + 4..at + 8]).to_string());
        at += 12 + len;
    }
    assert_eq!((kinds.first().map(String::as_str), kinds.last().map(String::as_str)), (Some("IHDR"), Some("IEND")), "{kinds:?}");
    (be(&png[16..20]), be(&png[20..24]))
}

/// CRC-32 (IEEE), bit by bit: the test does not trust the code under test for it.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn shop() -> Value {
    json!({
        "id": "shop", "name": "Shop", "currency": "EUR", "allowed_domains": ["shop.example.com"],
        "fallback_url": "https://shop.example.com/", "payout_threshold_minor": 2000,
    })
}

#[test]
fn every_catalog_object_is_created_read_listed_changed_and_retired_over_the_api() {
    let s = Server::start(&config());

    // Programs: refusals name the field; a taken id is a conflict.
    let made = admin(&s, "POST", "/v1/programs", shop());
    assert_eq!(made.status, 201, "{made:?}");
    let p = made.json();
    assert_eq!((p["id"].as_str(), p["status"].as_str(), p["partners_create_links"].as_bool()), (Some("shop"), Some("active"), Some(false)));
    assert!(p.get("row_id").is_none(), "{p}");
    assert_eq!(admin(&s, "POST", "/v1/programs", shop()).status, 409);
    let mut bad = shop();
    bad["id"] = json!("no spaces");
    assert_eq!(refusal(&admin(&s, "POST", "/v1/programs", bad)), (422, "id".into()));
    let mut bad = shop();
    bad["fallback_url"] = json!("https://evil.example.org/");
    assert_eq!(refusal(&admin(&s, "POST", "/v1/programs", bad)), (422, "fallback_url".into()));
    let mut bad = shop();
    bad["colour"] = json!("red");
    assert_eq!(admin(&s, "POST", "/v1/programs", bad).status, 400, "an unknown field cannot be read");
    assert_eq!(admin(&s, "POST", "/v1/programs", json!("{")).status, 400);
    assert_eq!(admin(&s, "GET", "/v1/programs/nope", Value::Null).status, 404);
    let changed = admin(&s, "PATCH", "/v1/programs/shop", json!({ "name": "The Shop", "payout_schedule": "weekly:mon" }));
    assert_eq!((changed.status, changed.json()["name"].as_str()), (200, Some("The Shop")), "{changed:?}");
    assert_eq!(admin(&s, "GET", "/v1/programs/shop", Value::Null).json()["payout_schedule"], "weekly:mon");
    assert_eq!(
        refusal(&admin(&s, "PATCH", "/v1/programs/shop", json!({ "payout_threshold_minor": 0 }))),
        (422, "payout_threshold_minor".into())
    );
    assert_eq!(refusal(&admin(&s, "PATCH", "/v1/programs/shop", json!({ "payout_schedule": "daily" }))), (422, "payout_schedule".into()));
    assert_eq!(refusal(&admin(&s, "PATCH", "/v1/programs/shop", json!({ "currency": "USD" }))).0, 400, "the currency stays");
    assert_eq!(admin(&s, "PATCH", "/v1/programs/nope", json!({ "name": "x" })).status, 404);

    // Partners.
    let carol = json!({ "id": "carol", "name": "Carol", "email": "carol@example.com" });
    assert_eq!(admin(&s, "POST", "/v1/partners", carol.clone()).status, 201);
    assert_eq!(admin(&s, "POST", "/v1/partners", carol).status, 409);
    assert_eq!(refusal(&admin(&s, "POST", "/v1/partners", json!({ "id": "dan", "name": "Dan", "email": "no-at" }))), (422, "email".into()));
    assert_eq!(refusal(&admin(&s, "POST", "/v1/partners", json!({ "id": "dan", "name": "" }))), (422, "name".into()));
    let renamed =
        admin(&s, "PATCH", "/v1/partners/carol", json!({ "name": "Carol C.", "payout_method": "paypal", "paypal_email": "c@pp.example" }));
    assert_eq!(renamed.status, 200, "{renamed:?}");
    assert_eq!((renamed.json()["name"].as_str(), renamed.json()["payout_method"].as_str()), (Some("Carol C."), Some("paypal")));
    assert_eq!(refusal(&admin(&s, "PATCH", "/v1/partners/carol", json!({ "payout_method": "stripe" }))), (422, "payout_method".into()));
    let cleared = admin(&s, "PATCH", "/v1/partners/carol", json!({ "payout_method": "manual", "paypal_email": null }));
    assert!(cleared.json().get("paypal_email").is_none(), "null clears it: {cleared:?}");
    let (partners, _) = all_pages(&s, "/v1/partners?limit=1", "partners");
    let ids: Vec<&str> = partners.iter().map(|p| p["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["alice", "bob", "carol"]);

    // Links: seven, listed two at a time in code order, with filters.
    for i in 0..7 {
        let l = json!({ "code": format!("c{i}"), "program": "shop", "partner": if i % 2 == 0 { "carol" } else { "bob" },
                        "destination": format!("https://shop.example.com/p/{i}"), "utm_source": "api" });
        let a = admin(&s, "POST", "/v1/links", l);
        assert_eq!(a.status, 201, "{a:?}");
    }
    let link = |code: &str, dest: &str| json!({ "code": code, "program": "shop", "partner": "carol", "destination": dest });
    assert_eq!(refusal(&admin(&s, "POST", "/v1/links", link("x", "https://evil.example.org/"))), (422, "destination".into()));
    assert_eq!(refusal(&admin(&s, "POST", "/v1/links", link("x y", "https://shop.example.com/"))), (422, "code".into()));
    let mut bad = link("x", "https://shop.example.com/");
    bad["utm_source"] = json!("a b");
    assert_eq!(refusal(&admin(&s, "POST", "/v1/links", bad)), (422, "utm_source".into()));
    let mut bad = link("x", "https://shop.example.com/");
    bad["channel"] = json!("telepathy");
    assert_eq!(refusal(&admin(&s, "POST", "/v1/links", bad)), (400, "channel".into()));
    assert_eq!(admin(&s, "POST", "/v1/links", link("c0", "https://shop.example.com/")).status, 409);
    assert_eq!(
        admin(&s, "POST", "/v1/links", json!({ "code": "x", "program": "nope", "partner": "carol", "destination": "https://x.example/" }))
            .status,
        404
    );
    let (links, pages) = all_pages(&s, "/v1/links?program=shop&limit=2", "links");
    let codes: Vec<&str> = links.iter().map(|l| l["code"].as_str().unwrap()).collect();
    assert_eq!((codes, pages), (vec!["c0", "c1", "c2", "c3", "c4", "c5", "c6"], 4));
    let (carols, _) = all_pages(&s, "/v1/links?partner=carol&limit=3", "links");
    assert_eq!(carols.len(), 4);
    assert!(carols.iter().all(|l| l["partner"] == "carol" && l.get("partner_row_id").is_none()), "{carols:?}");
    assert_eq!(refusal(&admin(&s, "GET", "/v1/links?limit=5000", Value::Null)), (422, "limit".into()));
    assert_eq!(refusal(&admin(&s, "GET", "/v1/links?cursor=nonsense!", Value::Null)), (422, "cursor".into()));
    assert_eq!(admin(&s, "GET", "/v1/links?colour=red", Value::Null).status, 400);

    // A link's changes reach the edge within its reload interval.
    edge_sends(&s, "c2", |l| l.starts_with("https://shop.example.com/p/2"), "its destination");
    let moved = admin(&s, "PATCH", "/v1/links/c2", json!({ "destination": "https://shop.example.com/moved", "utm_campaign": "spring" }));
    assert_eq!((moved.status, moved.json()["utm_source"].as_str()), (200, Some("api")), "unnamed fields stay: {moved:?}");
    edge_sends(&s, "c2", |l| l.starts_with("https://shop.example.com/moved") && l.contains("utm_campaign=spring"), "the new destination");
    assert_eq!(
        refusal(&admin(&s, "PATCH", "/v1/links/c2", json!({ "destination": "https://evil.example.org/" }))),
        (422, "destination".into())
    );
    assert_eq!(refusal(&admin(&s, "PATCH", "/v1/links/c2", json!({ "partner": "bob" }))).0, 400, "a link keeps its partner");
    assert_eq!(admin(&s, "PATCH", "/v1/links/nope", json!({ "utm_source": "x" })).status, 404);
    for (action, status) in [("pause", "paused"), ("resume", "active"), ("expire", "expired")] {
        let a = admin(&s, "POST", &format!("/v1/links/c2/{action}"), Value::Null);
        assert_eq!((a.status, a.json()["status"].as_str()), (200, Some(status)), "{action}: {a:?}");
        if status == "active" {
            edge_sends(&s, "c2", |l| l.starts_with("https://shop.example.com/moved"), "the destination again");
        } else {
            edge_sends(&s, "c2", |l| l.starts_with("https://shop.example.com/") && !l.contains("moved"), "the fallback");
        }
    }
    assert_eq!(admin(&s, "POST", "/v1/links/c2/delete", Value::Null).status, 404);
    let expired = all_pages(&s, "/v1/links?status=expired", "links").0;
    assert_eq!(expired.iter().map(|l| l["code"].as_str().unwrap()).collect::<Vec<_>>(), ["c2"]);
    let expiring = admin(&s, "PATCH", "/v1/links/c4", json!({ "expires_at": 4_102_444_800i64 }));
    assert_eq!(expiring.json()["expires_at"], 4_102_444_800i64);
    assert!(admin(&s, "PATCH", "/v1/links/c4", json!({ "expires_at": null })).json()["expires_at"].is_null());

    // The QR code: an SVG of modules scaling to any size, a PNG of the size asked.
    let svg = admin(&s, "GET", "/v1/links/c0/qr.svg", Value::Null);
    assert_eq!((svg.status, svg.header("content-type")), (200, Some("image/svg+xml")), "{svg:?}");
    assert!(svg.body.starts_with("<?xml") && svg.body.trim_end().ends_with("</svg>"), "{}", svg.body);
    assert!(svg.body.matches("h1v1h-1z").count() > 100, "the dark modules are drawn: {}", svg.body);
    for size in [64, 300, 2048] {
        let png = png_of(&s, &format!("/v1/links/c0/qr.png?size={size}"));
        assert_eq!(png_size(&png), (size, size));
    }
    assert_eq!(png_size(&png_of(&s, "/v1/links/c0/qr.png")), (256, 256), "the default size");
    for bad in ["63", "2049", "big", "-1"] {
        assert_eq!(refusal(&admin(&s, "GET", &format!("/v1/links/c0/qr.png?size={bad}"), Value::Null)), (422, "size".into()));
    }
    assert_eq!(admin(&s, "GET", "/v1/links/nope/qr.svg", Value::Null).status, 404);

    // A narrower allowlist is refused while a link points outside it.
    let narrow = json!({ "allowed_domains": ["other.example.org"], "fallback_url": "https://other.example.org/" });
    let refused = admin(&s, "PATCH", "/v1/programs/shop", narrow);
    assert_eq!(refusal(&refused), (422, "allowed_domains".into()));
    assert!(refused.json()["error"]["message"].as_str().unwrap().contains("c0"), "{refused:?}");

    // Programs and partners pause, resume and expire; a paused program's links go to its fallback.
    assert_eq!(admin(&s, "POST", "/v1/programs/shop/pause", Value::Null).json()["status"], "paused");
    edge_sends(&s, "c0", |l| l.starts_with("https://shop.example.com/") && !l.contains("/p/0"), "the fallback");
    assert_eq!(all_pages(&s, "/v1/programs?status=paused", "programs").0.len(), 1);
    assert_eq!(admin(&s, "POST", "/v1/programs/shop/resume", Value::Null).json()["status"], "active");
    edge_sends(&s, "c0", |l| l.starts_with("https://shop.example.com/p/0"), "its destination");
    assert_eq!(admin(&s, "POST", "/v1/partners/carol/pause", Value::Null).json()["status"], "paused");
    assert_eq!(admin(&s, "POST", "/v1/partners/carol/resume", Value::Null).json()["status"], "active");
    assert_eq!(admin(&s, "POST", "/v1/partners/nope/expire", Value::Null).status, 404);
    assert_eq!(all_pages(&s, "/v1/programs?limit=1", "programs").0.len(), 2);

    // Coupons: stored upper-case, read case-insensitively, listed by program and code.
    for (code, partner) in [("spring5", "carol"), ("summer5", "bob"), ("autumn5", "carol")] {
        let a = admin(&s, "POST", "/v1/coupons", json!({ "code": code, "program": "shop", "partner": partner }));
        assert_eq!((a.status, a.json()["code"].as_str().map(str::to_string)), (201, Some(code.to_uppercase())), "{a:?}");
    }
    assert_eq!(admin(&s, "POST", "/v1/coupons", json!({ "code": "Spring5", "program": "shop", "partner": "bob" })).status, 409);
    assert_eq!(
        refusal(&admin(&s, "POST", "/v1/coupons", json!({ "code": "a b", "program": "shop", "partner": "bob" }))),
        (422, "code".into())
    );
    assert_eq!(admin(&s, "GET", "/v1/coupons/shop/spring5", Value::Null).json()["partner"], "carol");
    assert_eq!(admin(&s, "GET", "/v1/coupons/demo/spring5", Value::Null).status, 404);
    let (coupons, pages) = all_pages(&s, "/v1/coupons?limit=1", "coupons");
    let keys: Vec<String> = coupons.iter().map(|c| format!("{}:{}", c["program"].as_str().unwrap(), c["code"].as_str().unwrap())).collect();
    assert_eq!((keys, pages), (vec!["demo:BOB10".into(), "shop:AUTUMN5".into(), "shop:SPRING5".into(), "shop:SUMMER5".into()], 4));
    assert_eq!(all_pages(&s, "/v1/coupons?program=shop&partner=carol", "coupons").0.len(), 2);

    // One catalog for the CLI and the API: each sees what the other wrote, validated alike.
    let (code, out, err) = s.cli(&["link", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("https://shop.example.com/moved"), "{out}");
    let (code, _, err) = s.cli(&["program", "set-payout", "--id", "shop", "--payout-threshold-minor", "0", "--payout-schedule", "off"]);
    assert!(code != 0 && err.contains("payout_threshold_minor"), "the CLI refuses as the API does: {err}");
    let (code, _, err) = s.cli(&["link", "set", "--code", "c4", "--utm-medium", "print", "--expires-at", "2099-01-01T00:00:00Z"]);
    assert_eq!(code, 0, "{err}");
    let c4 = admin(&s, "GET", "/v1/links/c4", Value::Null).json();
    assert_eq!(
        (c4["utm_medium"].as_str(), c4["utm_source"].as_str(), c4["expires_at"].as_i64()),
        (Some("print"), Some("api"), Some(4_070_908_800))
    );
    let (code, _, err) = s.cli(&["link", "set", "--code", "c4", "--destination", "https://evil.example.org/"]);
    assert!(code != 0 && err.contains("allowlist"), "the CLI refuses as the API does: {err}");
    let (code, _, err) = s.cli(&["partner", "set-payout", "--id", "carol", "--payout-method", "wise"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(admin(&s, "GET", "/v1/partners/carol", Value::Null).json()["payout_method"], "wise");
    assert!(s.metric("clickgate_api_requests_total{outcome=\"created\"}") >= 12.0, "a program, a partner, seven links, three coupons");
}

#[test]
fn a_partner_key_creates_and_changes_its_own_links_only_where_its_program_lets_it() {
    let s = Server::start(&config());
    let minted = admin(&s, "POST", "/v1/api-keys", json!({ "name": "bob", "scope": "partner:bob" }));
    let bob = minted.json()["secret"].as_str().unwrap().to_string();
    let as_bob = |method: &str, path: &str, body: Value| call_as(&s, &bob, method, path, &body.to_string());
    let mine = json!({ "code": "bob-new", "program": "demo", "partner": "bob", "destination": "https://example.com/new" });
    let refused = as_bob("POST", "/v1/links", mine.clone());
    assert_eq!(refused.status, 403, "the program does not let partners create links: {refused:?}");
    assert_eq!(as_bob("PATCH", "/v1/links/bob", json!({ "utm_source": "x" })).status, 403);
    assert_eq!(as_bob("POST", "/v1/links/bob/pause", Value::Null).status, 403);
    assert_eq!(as_bob("PATCH", "/v1/programs/demo", json!({ "partners_create_links": true })).status, 403, "an admin's");

    let allowed = admin(&s, "PATCH", "/v1/programs/demo", json!({ "partners_create_links": true }));
    assert_eq!((allowed.status, allowed.json()["partners_create_links"].as_bool()), (200, Some(true)));
    let made = as_bob("POST", "/v1/links", mine.clone());
    assert_eq!((made.status, made.json()["partner"].as_str()), (201, Some("bob")), "{made:?}");
    edge_sends(&s, "bob-new", |l| l.starts_with("https://example.com/new"), "bob's new link");
    let for_alice = json!({ "code": "not-mine", "program": "demo", "partner": "alice", "destination": "https://example.com/" });
    assert_eq!(as_bob("POST", "/v1/links", for_alice).status, 404, "another partner is not found");
    let outside = json!({ "code": "bob-evil", "program": "demo", "partner": "bob", "destination": "https://evil.example.org/" });
    assert_eq!(refusal(&as_bob("POST", "/v1/links", outside)), (422, "destination".into()));
    assert_eq!(as_bob("PATCH", "/v1/links/bob-new", json!({ "utm_source": "bobs" })).json()["utm_source"], "bobs");
    assert_eq!(as_bob("POST", "/v1/links/bob-new/expire", Value::Null).json()["status"], "expired");
    assert_eq!(as_bob("PATCH", "/v1/links/demo", json!({ "utm_source": "x" })).status, 404, "alice's link");
    assert_eq!(as_bob("POST", "/v1/links/demo/pause", Value::Null).status, 404);
    assert_eq!(admin(&s, "GET", "/v1/links/demo", Value::Null).json()["status"], "active", "alice's link is untouched");
    let listed = as_bob("GET", "/v1/links", Value::Null).json();
    let codes: Vec<&str> = listed["links"].as_array().unwrap().iter().map(|l| l["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["bob", "bob-new"], "{listed}");
    assert_eq!(as_bob("GET", "/v1/links?partner=alice", Value::Null).status, 404);
    for (method, path) in [("POST", "/v1/programs"), ("POST", "/v1/partners"), ("POST", "/v1/coupons"), ("GET", "/v1/programs")] {
        assert_eq!(as_bob(method, path, json!({})).status, 403, "{method} {path}");
    }
}
