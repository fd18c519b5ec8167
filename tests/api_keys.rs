//! API keys and partner scope over real sockets: keys made through the API and the CLI, two
//! partners crossing every route that names a partner's object with the other's ids (each
//! refused `404`, as an id that does not exist), lists holding only the caller's rows, admin
//! routes refused `403`, revocation, and the rate limits' `429` with `Retry-After`. The routes
//! the partners tried are matched against the server's own OpenAPI document: a keyed operation
//! the crossing never tried fails the test.

mod common;

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const KEY: &str = "test-admin-key-0123";

fn config(extra: &str) -> String {
    let api = format!(
        "[api]\nadmin_key = \"{KEY}\"\n{extra}\n[commission]\napprove_interval_ms = 0\n[webhooks]\nallow_http = true\n\
         allow_private_cidrs = [\"127.0.0.2/32\"]\n"
    );
    format!("{}{BOB}", fixture_config(&api))
        .replace("country_deny = [\"GB\"]", "country_deny = [\"GB\"]\n[demo.programs.attribution]\nmin_click_to_conversion_ms = 0")
}

thread_local! {
    /// Whether `call_as` records what it sends: on while partner keys cross the routes.
    static RECORDING: Cell<bool> = const { Cell::new(false) };
    /// The (method, path without its query) of each call recorded.
    static TRIED: RefCell<Vec<(String, String)>> = const { RefCell::new(Vec::new()) };
}

fn call_as(s: &Server, key: &str, method: &str, path: &str, body: &str) -> Answer {
    if RECORDING.get() {
        let bare = path.split('?').next().unwrap_or(path);
        TRIED.with_borrow_mut(|t| t.push((method.to_string(), bare.to_string())));
    }
    let auth = format!("Authorization: Bearer {key}");
    http(s.api, method, path, &[auth.as_str(), "Content-Type: application/json"], body)
}

fn admin(s: &Server, method: &str, path: &str, body: &str) -> Answer {
    call_as(s, KEY, method, path, body)
}

fn new_key(s: &Server, name: &str, scope: &str) -> (String, String) {
    let a = admin(s, "POST", "/v1/api-keys", &json!({ "name": name, "scope": scope }).to_string());
    assert_eq!(a.status, 201, "{a:?}");
    let v = a.json();
    let secret = v["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("cgk_") && secret.len() == 36, "{secret}");
    assert_eq!(v["prefix"].as_str().unwrap(), &secret[..10]);
    (v["id"].as_str().unwrap().to_string(), secret)
}

/// A partner's objects, made through the edge and the admin API.
struct Owned {
    partner: &'static str,
    key: String,
    click: String,
    conversion: String,
    commission: String,
    endpoint: String,
    event: String,
    link: &'static str,
    coupon: &'static str,
}

fn make_objects(s: &Server, partner: &'static str, link: &'static str, coupon: &'static str, ip: &str, key: String) -> Owned {
    let out = s.get(&format!("/r/{link}"), ip, CHROME);
    assert!(out.starts_with("HTTP/1.1 302"), "{out}");
    let click = header(&out, "location").unwrap().split("cgid=").nth(1).unwrap().split('&').next().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    while admin(s, "GET", &format!("/v1/clicks/{click}"), "").status != 200 {
        assert!(Instant::now() < deadline, "click never ingested\n{}", s.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let body = json!({
        "order_id": format!("order-{partner}"), "program": "demo", "amount_minor": 10_000, "currency": "USD",
        "occurred_at": common::stream::rfc3339(common::stream::now_ms()), "click_id": click, "customer_ref": format!("cust-{partner}"),
    });
    let a = admin(s, "POST", "/v1/conversions", &body.to_string());
    assert_eq!(a.status, 201, "{a:?}");
    let conv = a.json();
    let commission = conv["commissions"][0]["id"].as_str().unwrap_or_else(|| panic!("no commission: {conv}")).to_string();
    let registered = call_as(
        s,
        &key,
        "POST",
        "/v1/webhook-endpoints",
        &json!({ "url": format!("http://127.0.0.2:9/{partner}"), "event_types": ["conversion.attributed"] }).to_string(),
    );
    assert_eq!(registered.status, 201, "a partner registers its own endpoint: {registered:?}");
    assert_eq!(registered.json()["partner"], partner, "registered for the key's partner");
    Owned {
        partner,
        key,
        click,
        conversion: conv["id"].as_str().unwrap().to_string(),
        commission,
        endpoint: registered.json()["id"].as_str().unwrap().to_string(),
        event: String::new(),
        link,
        coupon,
    }
}

/// The operation of `keyed` a call of `method` on `path` reaches: its template's literal
/// segments equal the path's and each `{...}` takes one segment; the most literal one wins
/// (`/v1/conversions/import` over `/v1/conversions/{id}`).
fn operation_of(keyed: &BTreeSet<(String, String)>, method: &str, path: &str) -> Option<(String, String)> {
    let segments: Vec<&str> = path.split('/').collect();
    keyed
        .iter()
        .filter(|(m, template)| {
            let t: Vec<&str> = template.split('/').collect();
            m == method && t.len() == segments.len() && t.iter().zip(&segments).all(|(t, s)| t.starts_with('{') || t == s)
        })
        .max_by_key(|(_, template)| template.split('/').filter(|t| !t.starts_with('{')).count())
        .cloned()
}

#[test]
fn partner_keys_reach_only_their_partners_objects() {
    let s = Server::start(&config(""));
    // Keys: bad scopes are refused; the listing never shows a secret.
    let refused = admin(&s, "POST", "/v1/api-keys", &json!({ "name": "x", "scope": "partner:nobody" }).to_string());
    assert_eq!((refused.status, refused.json()["error"]["field"].as_str()), (422, Some("scope")), "{refused:?}");
    assert_eq!(admin(&s, "POST", "/v1/api-keys", &json!({ "name": "x", "scope": "root" }).to_string()).status, 422);
    assert_eq!(admin(&s, "POST", "/v1/api-keys", &json!({ "name": "", "scope": "admin" }).to_string()).status, 422);
    let (_, alice_key) = new_key(&s, "alice's reporting", "partner:alice");
    let (bob_id, bob_key) = new_key(&s, "bob's dashboard", "partner:bob");
    let (_, second_admin) = new_key(&s, "ops", "admin");
    let listed = admin(&s, "GET", "/v1/api-keys", "");
    assert_eq!(listed.json()["keys"].as_array().unwrap().len(), 3);
    assert!(!listed.body.contains(&bob_key) && !listed.body.contains("secret"), "{}", listed.body);
    assert_eq!(call_as(&s, &second_admin, "GET", "/v1/api-keys", "").status, 200, "a stored admin key is an admin");

    let coupon = admin(&s, "POST", "/v1/coupons", &json!({ "code": "ALICE5", "program": "demo", "partner": "alice" }).to_string());
    assert_eq!(coupon.status, 201, "{coupon:?}");
    let mut alice = make_objects(&s, "alice", "demo", "ALICE5", "198.51.100.20", alice_key);
    let mut bob = make_objects(&s, "bob", "bob", "BOB10", "198.51.100.21", bob_key);
    // Each partner's events, as its webhook listing shows them.
    for p in [&mut alice, &mut bob] {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let events = call_as(&s, &p.key, "GET", "/v1/webhook-events", "").json();
            let list = events["events"].as_array().unwrap().clone();
            assert!(list.iter().all(|e| e["endpoint_id"] == p.endpoint.as_str()), "{} sees another's deliveries: {events}", p.partner);
            if let Some(e) = list.first() {
                p.event = e["event_id"].as_str().unwrap().to_string();
                break;
            }
            assert!(Instant::now() < deadline, "no delivery for {}\n{}", p.partner, s.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    // Every route that names a partner's object, with the caller's own ids and the other's.
    let routes = |o: &Owned| -> Vec<(&'static str, String)> {
        vec![
            ("GET", format!("/v1/conversions/{}", o.conversion)),
            ("GET", format!("/v1/clicks/{}", o.click)),
            ("GET", format!("/v1/commissions/{}", o.commission)),
            ("GET", format!("/v1/partners/{}/balance", o.partner)),
            ("GET", format!("/v1/reports/partners/{}", o.partner)),
            ("GET", format!("/v1/reports/links/{}", o.link)),
            ("GET", format!("/v1/reports/channels/web?partner={}", o.partner)),
            ("GET", format!("/v1/commissions?partner={}", o.partner)),
            ("GET", format!("/v1/payouts?partner={}", o.partner)),
            ("GET", format!("/v1/webhook-endpoints/{}", o.endpoint)),
            ("POST", format!("/v1/webhook-endpoints/{}/rotate-secret", o.endpoint)),
            ("POST", format!("/v1/webhook-endpoints/{}/enable", o.endpoint)),
            ("POST", format!("/v1/webhook-events/{}/replay", o.event)),
            ("GET", format!("/v1/partners/{}", o.partner)),
            ("GET", format!("/v1/partners?partner={}", o.partner)),
            ("GET", format!("/v1/links/{}", o.link)),
            ("GET", format!("/v1/links/{}/qr.svg", o.link)),
            ("GET", format!("/v1/links/{}/qr.png?size=64", o.link)),
            ("GET", format!("/v1/links?partner={}", o.partner)),
            ("GET", format!("/v1/links?partner={}&program=demo&status=active&limit=1", o.partner)),
            ("GET", format!("/v1/coupons/demo/{}", o.coupon)),
            ("GET", format!("/v1/coupons?partner={}", o.partner)),
        ]
    };
    let mut tried = 0;
    RECORDING.set(true);
    for (me, other) in [(&alice, &bob), (&bob, &alice)] {
        for (method, path) in routes(me) {
            let a = call_as(&s, &me.key, method, &path, "");
            assert!(a.status == 200 || a.status == 202, "{} on its own {method} {path}: {a:?}", me.partner);
            assert!(!a.body.contains(other.partner) || path.contains("reports"), "{} sees {}: {}", me.partner, other.partner, a.body);
            tried += 1;
        }
        for (method, path) in routes(other) {
            let a = call_as(&s, &me.key, method, &path, "");
            assert_eq!(a.status, 404, "{} on {}'s {method} {path}: {a:?}", me.partner, other.partner);
            let unknown = path.replace(other.partner, "nobody");
            if unknown != path {
                assert_eq!(call_as(&s, &me.key, method, &unknown, "").status, 404, "the same answer as an unknown id");
            }
            tried += 1;
        }
        // Writes naming the other: a registration for it, a removal of its endpoint.
        let reg = json!({ "url": "http://127.0.0.2:9/x", "event_types": ["conversion.attributed"], "partner": other.partner });
        assert_eq!(call_as(&s, &me.key, "POST", "/v1/webhook-endpoints", &reg.to_string()).status, 404);
        assert_eq!(call_as(&s, &me.key, "DELETE", &format!("/v1/webhook-endpoints/{}", other.endpoint), "").status, 404);
        tried += 2;
        // Link writes: the other's link is not found; its own is refused while the program
        // does not let partners change links; a link for the other is not found.
        for (method, path, body) in [
            ("PATCH", format!("/v1/links/{}", other.link), r#"{"utm_source":"x"}"#),
            ("POST", format!("/v1/links/{}/pause", other.link), ""),
            ("POST", format!("/v1/links/{}/resume", other.link), ""),
            ("POST", format!("/v1/links/{}/expire", other.link), ""),
        ] {
            assert_eq!(call_as(&s, &me.key, method, &path, body).status, 404, "{} on {}'s {method} {path}", me.partner, other.partner);
            let own = path.replace(other.link, me.link);
            assert_eq!(call_as(&s, &me.key, method, &own, body).status, 403, "{} on its own {method} {own}", me.partner);
            tried += 2;
        }
        let theirs = json!({ "code": "x1", "program": "demo", "partner": other.partner, "destination": "https://example.com/" });
        assert_eq!(call_as(&s, &me.key, "POST", "/v1/links", &theirs.to_string()).status, 404);
        tried += 1;
        // Lists hold only the caller's rows.
        let commissions = call_as(&s, &me.key, "GET", "/v1/commissions", "").json();
        let rows = commissions["commissions"].as_array().unwrap();
        assert!(!rows.is_empty() && rows.iter().all(|c| c["partner"] == me.partner), "{commissions}");
        for (path, name) in [("/v1/links", "links"), ("/v1/coupons", "coupons"), ("/v1/partners", "partners")] {
            let list = call_as(&s, &me.key, "GET", path, "").json();
            let rows = list[name].as_array().unwrap();
            let whose = |r: &Value| if name == "partners" { r["id"].clone() } else { r["partner"].clone() };
            assert!(!rows.is_empty() && rows.iter().all(|r| whose(r) == me.partner), "{} lists {path}: {list}", me.partner);
            tried += 1;
        }
        let endpoints = call_as(&s, &me.key, "GET", "/v1/webhook-endpoints", "").json();
        assert_eq!(endpoints["endpoints"].as_array().unwrap().len(), 1, "{endpoints}");
        let events = call_as(&s, &me.key, "GET", "/v1/webhook-events", "").json();
        let rows = events["events"].as_array().unwrap();
        assert!(!rows.is_empty() && rows.iter().all(|e| e["endpoint_id"] == me.endpoint.as_str()), "{events}");
        tried += 1;
        assert!(call_as(&s, &me.key, "GET", "/v1/payouts", "").status == 200);
        // A conversion it is credited on, without the customer's reference.
        let conv = call_as(&s, &me.key, "GET", &format!("/v1/conversions/{}", me.conversion), "").json();
        assert!(conv.get("customer_ref").is_none(), "{conv}");
        assert_eq!(
            admin(&s, "GET", &format!("/v1/conversions/{}", me.conversion), "").json()["customer_ref"],
            format!("cust-{}", me.partner)
        );
        tried += 4;
        // Admin routes.
        for (method, path) in [
            ("POST", "/v1/conversions"),
            ("GET", "/v1/ledger/entries"),
            ("GET", "/v1/api-keys"),
            ("POST", "/v1/api-keys"),
            ("GET", "/v1/payout-runs"),
            ("POST", "/v1/commissions/approve"),
            ("GET", "/v1/programs/demo/commission"),
            ("GET", "/v1/reports/programs/demo"),
            ("GET", "/v1/programs"),
            ("POST", "/v1/programs"),
            ("GET", "/v1/programs/demo"),
            ("PATCH", "/v1/programs/demo"),
            ("POST", "/v1/programs/demo/pause"),
            ("POST", "/v1/partners"),
            ("PATCH", "/v1/partners/alice"),
            ("POST", "/v1/partners/bob/expire"),
            ("POST", "/v1/partners/alice/pause"),
            ("POST", "/v1/partners/alice/resume"),
            ("POST", "/v1/programs/demo/resume"),
            ("POST", "/v1/programs/demo/expire"),
            ("PUT", "/v1/programs/demo/commission"),
            ("GET", "/v1/commission-rules/v1"),
            ("POST", "/v1/coupons"),
            ("POST", "/v1/conversions/import"),
            ("POST", "/v1/payout-runs"),
            ("GET", "/v1/payout-runs/run-1"),
            ("POST", "/v1/payout-runs/run-1/confirm"),
            ("GET", "/v1/audit"),
            ("GET", "/v1/audit?object=partner:alice"),
            ("POST", "/v1/privacy/erase"),
        ] {
            let a = call_as(&s, &me.key, method, path, "{}");
            assert_eq!(a.status, 403, "{} on {method} {path}: {a:?}", me.partner);
            tried += 1;
        }
        // Admin routes naming a partner's objects, its own and the other's: refused alike.
        for o in [me, other] {
            for (method, path) in [
                ("POST", format!("/v1/conversions/{}/confirm", o.conversion)),
                ("POST", format!("/v1/conversions/{}/cancel", o.conversion)),
                ("POST", format!("/v1/conversions/{}/refund", o.conversion)),
                ("POST", format!("/v1/partners/{}/payouts", o.partner)),
                ("GET", format!("/v1/api-keys/{bob_id}")),
                ("DELETE", format!("/v1/api-keys/{bob_id}")),
                ("POST", format!("/v1/coupons/demo/{}/pause", o.coupon)),
                ("POST", format!("/v1/coupons/demo/{}/resume", o.coupon)),
                ("POST", format!("/v1/coupons/demo/{}/expire", o.coupon)),
                ("GET", format!("/v1/audit?key={bob_id}")),
            ] {
                let a = call_as(&s, &me.key, method, &path, "{}");
                assert_eq!(a.status, 403, "{} on {method} {path}: {a:?}", me.partner);
                tried += 1;
            }
        }
    }
    RECORDING.set(false);
    // Every keyed operation of the server's own OpenAPI document was tried by a partner key.
    let doc = call_as(&s, KEY, "GET", "/openapi.json", "").json();
    let mut keyed = BTreeSet::new();
    for (template, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let public =
                op["security"].as_array().is_some_and(|s| s.is_empty() || s.iter().all(|r| r.as_object().is_some_and(|o| o.is_empty())));
            if !public {
                keyed.insert((method.to_ascii_uppercase(), template.clone()));
            }
        }
    }
    assert!(keyed.len() >= 50, "the document lists {} keyed operations: {doc}", keyed.len());
    let covered: BTreeSet<(String, String)> = TRIED.with_borrow(|t| t.iter().filter_map(|(m, p)| operation_of(&keyed, m, p)).collect());
    let untried: Vec<_> = keyed.difference(&covered).collect();
    assert!(untried.is_empty(), "keyed operations no partner key tried: {untried:?}");
    println!(
        "api_keys: {tried} route × id combinations tried across two partners, covering {} of the document's {} keyed operations",
        covered.len(),
        keyed.len()
    );

    // The key's last use is recorded; a revoked key gets 401 at once, through the API.
    let bob_listed = admin(&s, "GET", &format!("/v1/api-keys/{bob_id}"), "").json();
    assert!(bob_listed["last_used_at"].is_string(), "{bob_listed}");
    let revoked = admin(&s, "DELETE", &format!("/v1/api-keys/{bob_id}"), "");
    assert_eq!(revoked.status, 200);
    assert!(revoked.json()["revoked_at"].is_string());
    assert_eq!(call_as(&s, &bob.key, "GET", "/v1/commissions", "").status, 401);

    // Through the CLI: a key made there works; revoked there, it stops within a second.
    let (code, out, err) = s.cli(&["api-key", "create", "--name", "cli", "--scope", "partner:alice"]);
    assert_eq!(code, 0, "{err}");
    let made: Value = serde_json::from_str(out.trim()).unwrap();
    let cli_key = made["secret"].as_str().unwrap();
    assert_eq!(call_as(&s, cli_key, "GET", "/v1/partners/alice/balance", "").status, 200);
    let (code, out, _) = s.cli(&["api-key", "list"]);
    assert_eq!((code, out.lines().count()), (0, 4), "{out}");
    assert!(!out.contains(cli_key));
    let (code, _, err) = s.cli(&["api-key", "revoke", made["id"].as_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while call_as(&s, cli_key, "GET", "/v1/partners/alice/balance", "").status != 401 {
        assert!(Instant::now() < deadline, "a key revoked by the CLI still works");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, _, err) = s.cli(&["api-key", "create", "--name", "x", "--scope", "partner:nobody"]);
    assert!(code != 0 && err.contains("no partner"), "{err}");
}

#[test]
fn keys_and_failed_authentications_are_rate_limited() {
    let s = Server::start(&config("key_requests_per_s = 2\nkey_burst = 3\nauth_failures_per_min = 4\n"));
    let (_, key) = new_key(&s, "limited", "partner:alice");
    let statuses: Vec<u16> = (0..6).map(|_| call_as(&s, &key, "GET", "/v1/partners/alice/balance", "").status).collect();
    assert_eq!(&statuses[..3], &[200, 200, 200], "{statuses:?}");
    assert!(statuses[3..].contains(&429), "past the burst: {statuses:?}");
    let limited = call_as(&s, &key, "GET", "/v1/partners/alice/balance", "");
    assert_eq!(limited.status, 429);
    assert!(limited.header("retry-after").and_then(|v| v.parse::<u64>().ok()).is_some_and(|s| s >= 1), "{limited:?}");
    assert_eq!(admin(&s, "GET", "/v1/api-keys", "").status, 200, "the bootstrap key is not limited by another key's use");

    // Guessing: four failures a minute, then 429 even for the right key.
    let wrong = format!("cgk_{}", "A".repeat(32));
    let failures: Vec<u16> = (0..4).map(|_| call_as(&s, &wrong, "GET", "/v1/commissions", "").status).collect();
    assert_eq!(failures, [401, 401, 401, 401]);
    let blocked = call_as(&s, &wrong, "GET", "/v1/commissions", "");
    assert_eq!(blocked.status, 429, "{blocked:?}");
    assert!(blocked.header("retry-after").is_some());
    assert_eq!(admin(&s, "GET", "/v1/api-keys", "").status, 429, "an address past its failures waits, whatever key it sends");
    assert!(s.metric("clickgate_api_requests_total{outcome=\"rate_limited\"}") >= 3.0);
}
