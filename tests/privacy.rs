//! Personal data at rest and the privacy erase, end to end: the real binary, clicks through
//! the edge, conversions and partners over the API; then the data dir's every file is searched
//! for what must not be there.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

on_both!(personal_data_is_sealed_at_rest, an_erase_leaves_no_trace_of_the_visitor_and_keeps_the_money);

const KEY: &str = "test-admin-key-0123";

fn config() -> String {
    fixture_config(&format!("[api]\nadmin_key = \"{KEY}\"\n"))
        .replace("country_deny = [\"GB\"]", "country_deny = [\"GB\"]\n[demo.programs.attribution]\nmin_click_to_conversion_ms = 0")
        + BOB
}

/// `config` with the click events keeping the full client address, so there is one to erase.
fn config_full_ip() -> String {
    config().replace("[api]\n", "[privacy]\nip = \"full\"\n[api]\n")
}

/// How the click log holds an address: its MessagePack encoding, as `ClickEvent` writes it.
fn encoded_ip(ip: &str) -> Vec<u8> {
    rmp_serde::to_vec_named(&ip.parse::<std::net::IpAddr>().unwrap()).unwrap()
}

fn auth() -> String {
    format!("Authorization: Bearer {KEY}")
}

fn api(s: &Server, method: &str, path: &str, body: &serde_json::Value) -> Answer {
    http(s.api, method, path, &[&auth(), "Content-Type: application/json"], &body.to_string())
}

fn conversion(s: &Server, idem: &str, body: serde_json::Value) -> serde_json::Value {
    let headers = [auth(), "Content-Type: application/json".to_string(), format!("Idempotency-Key: {idem}")];
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    let a = http(s.api, "POST", "/v1/conversions", &headers, &body.to_string());
    assert_eq!(a.status, 201, "{a:?}\n{}", s.log());
    a.json()
}

fn now_rfc3339() -> String {
    stream::rfc3339(stream::now_ms())
}

/// Every file under `dir`, recursively.
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// The files under `dir` holding any of `needles`, with the needle: a grep of the data dir.
fn grep(dir: &Path, needles: &[&[u8]]) -> Vec<String> {
    let mut all = Vec::new();
    files(dir, &mut all);
    assert!(!all.is_empty(), "no files under {}", dir.display());
    let mut found = Vec::new();
    for f in &all {
        let bytes = std::fs::read(f).unwrap();
        for n in needles {
            if bytes.windows(n.len()).any(|w| w == *n) {
                found.push(format!("{} holds {:?}", f.display(), String::from_utf8_lossy(n)));
            }
        }
    }
    found
}

fn personal_data_is_sealed_at_rest(store: Store) {
    let mut s = Server::start_on(&config(), store);
    let partner = serde_json::json!({
        "id": "carol", "name": "Carol", "email": "carol.secret@example.org",
        "payout_method": "paypal", "paypal_email": "carol.paypal@example.org",
    });
    let a = api(&s, "POST", "/v1/partners", &partner);
    assert_eq!(a.status, 201, "{a:?}");
    let stripe = serde_json::json!({
        "id": "dave", "name": "Dave", "email": "dave.secret@example.org", "payout_method": "stripe", "stripe_account": "acct_1DaveSecret",
    });
    assert_eq!(api(&s, "POST", "/v1/partners", &stripe).status, 201);
    let mut ids = Vec::new();
    for (n, customer) in ["customer-ref-alpha-7731", "customer-ref-beta-8842"].iter().enumerate() {
        let v = conversion(
            &s,
            &format!("seal-{n}"),
            serde_json::json!({"order_id": format!("o-{n}"), "program": "demo", "amount_minor": 1000, "currency": "USD",
                "occurred_at": now_rfc3339(), "coupon_code": "BOB10", "customer_ref": customer}),
        );
        assert_eq!(v["customer_ref"], *customer, "the answer carries it in clear: {v}");
        ids.push(v["id"].as_str().unwrap().to_string());
    }
    // An admin reads them back in clear.
    let got = http(s.api, "GET", "/v1/partners/carol", &[&auth()], "").json();
    assert_eq!((got["email"].as_str(), got["paypal_email"].as_str()), (Some("carol.secret@example.org"), Some("carol.paypal@example.org")));
    let got = http(s.api, "GET", "/v1/partners/dave", &[&auth()], "").json();
    assert_eq!(got["stripe_account"], "acct_1DaveSecret");
    let got = http(s.api, "GET", &format!("/v1/conversions/{}", ids[0]), &[&auth()], "").json();
    assert_eq!(got["customer_ref"], "customer-ref-alpha-7731");
    let bob = http(s.api, "GET", "/v1/partners/bob", &[&auth()], "").json();
    assert_eq!(bob["email"], "bob@example.com", "the demo's partner is sealed and read back too");

    assert_eq!(s.terminate().code(), Some(0), "{}", s.log());
    let needles: [&[u8]; 7] = [
        b"carol.secret@example.org",
        b"carol.paypal@example.org",
        b"dave.secret@example.org",
        b"acct_1DaveSecret",
        b"bob@example.com",
        b"customer-ref-alpha-7731",
        b"customer-ref-beta-8842",
    ];
    let found = grep(&s.data_dir(), &needles);
    assert!(found.is_empty(), "personal data in clear in the data dir: {found:?}");
    if let Store::Pg(schema) = &s.store {
        // The database's rows hold none of them in clear either.
        let mut c = postgres::Client::connect(&schema.url, postgres::NoTls).unwrap();
        let rows = c
            .query("SELECT email || coalesce(stripe_account, '') || coalesce(paypal_email, '') FROM partners", &[])
            .unwrap()
            .iter()
            .map(|r| r.get::<_, String>(0))
            .chain(
                c.query("SELECT coalesce(customer_ref, '') || body FROM conversions, idempotency_keys", &[])
                    .unwrap()
                    .iter()
                    .map(|r| r.get(0)),
            )
            .collect::<Vec<String>>()
            .join("\n");
        for n in needles {
            assert!(!rows.contains(std::str::from_utf8(n).unwrap()), "{:?} in clear in PostgreSQL", String::from_utf8_lossy(n));
        }
    }
    // Restarted, the store still opens with the key it recorded.
    s.restart();
    let got = http(s.api, "GET", "/v1/partners/carol", &[&auth()], "").json();
    assert_eq!(got["email"], "carol.secret@example.org");
}

#[test]
fn rotation_reseals_under_the_new_key_and_the_old_one_is_refused() {
    let mut s = Server::start(&config());
    let partner = serde_json::json!({"id": "erin", "name": "Erin", "email": "erin.secret@example.org"});
    assert_eq!(api(&s, "POST", "/v1/partners", &partner).status, 201);
    let v = conversion(
        &s,
        "rot-1",
        serde_json::json!({"order_id": "rot-1", "program": "demo", "amount_minor": 500, "currency": "USD",
            "occurred_at": now_rfc3339(), "coupon_code": "BOB10", "customer_ref": "rotating-customer-5521"}),
    );
    let id = v["id"].as_str().unwrap().to_string();
    assert_eq!(s.terminate().code(), Some(0));
    // No CLICKGATE_DATA_KEY: the first start generated the key into the data dir, owner-only.
    let key_file = s.data_dir().join("data.key");
    let old = std::fs::read_to_string(&key_file).unwrap().trim().to_string();
    assert_eq!(old.len(), 64, "{old}");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);

    let new = "42".repeat(32);
    let rotate = |env: &[(&str, String)]| run_cli_env(&s.config, &s.data_dir(), &["data-key", "rotate"], "", env);
    let (code, out, err) = rotate(&[("CLICKGATE_DATA_KEY_NEW", new.clone())]);
    assert_eq!(code, 0, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    // erin, alice and bob's e-mails (alice's is empty), one customer reference, one answer.
    assert!(report["total"].as_u64().unwrap() >= 4, "{report}");
    assert_eq!(report["resealed"]["conversions.customer_ref"], 1, "{report}");
    assert_eq!(report["key_file_updated"], true);
    assert_eq!(std::fs::read_to_string(&key_file).unwrap().trim(), new);
    // Again: nothing left to do.
    let (code, out, err) = rotate(&[("CLICKGATE_DATA_KEY", new.clone()), ("CLICKGATE_DATA_KEY_NEW", new.clone())]);
    assert_ne!(code, 0, "the same key twice is refused: {out}");
    assert!(err.contains("the key in use"), "{err}");
    let (code, out, err) = rotate(&[("CLICKGATE_DATA_KEY", old.clone()), ("CLICKGATE_DATA_KEY_NEW", new.clone())]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(serde_json::from_str::<serde_json::Value>(out.lines().next().unwrap()).unwrap()["total"], 0, "{out}");

    // The old key is refused, naming both ids.
    let (code, out, err) = run_cli_env(&s.config, &s.data_dir(), &["partner", "list"], "", &[("CLICKGATE_DATA_KEY", old.clone())]);
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("is not the key this store is sealed under"), "{err}");

    // Restarted under the new key (the file now holds it), every value still reads.
    s.restart();
    let got = http(s.api, "GET", "/v1/partners/erin", &[&auth()], "").json();
    assert_eq!(got["email"], "erin.secret@example.org");
    let got = http(s.api, "GET", &format!("/v1/conversions/{id}"), &[&auth()], "").json();
    assert_eq!(got["customer_ref"], "rotating-customer-5521");
    let replay = conversion(
        &s,
        "rot-1",
        serde_json::json!({"order_id": "rot-1", "program": "demo", "amount_minor": 500, "currency": "USD",
            "occurred_at": v["occurred_at"], "coupon_code": "BOB10", "customer_ref": "rotating-customer-5521"}),
    );
    assert_eq!(replay["id"], id.as_str(), "the stored answer opens under the new key");
}

/// Clicks a link as a browser from `ip`; returns (cgid, visitor cookie value).
fn click(s: &Server, ip: &str, visitor: Option<&str>) -> (String, String) {
    let cookie = visitor.map(|v| format!("Cookie: cg_vid={v}\r\n")).unwrap_or_default();
    let raw = format!(
        "GET /r/demo HTTP/1.1\r\nHost: go.example\r\nX-Forwarded-For: {ip}\r\nUser-Agent: {CHROME}\r\n{cookie}Connection: close\r\n\r\n"
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

fn wait_ingested(s: &Server, cgid: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while http(s.api, "GET", &format!("/v1/clicks/{cgid}"), &[&auth()], "").status != 200 {
        assert!(Instant::now() < deadline, "click never ingested\n{}", s.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A conversion's money: amounts, status and commissions as the API shows them.
fn money(v: &serde_json::Value) -> serde_json::Value {
    serde_json::json!([v["amount_minor"], v["currency"], v["status"], v["refunded_minor"], v["commissions"], v["attribution"]["shares"]])
}

fn an_erase_leaves_no_trace_of_the_visitor_and_keeps_the_money(store: Store) {
    let s = Server::start_on(&config_full_ip(), store);
    let ip = "198.51.100.77";
    let (first, vid) = click(&s, ip, None);
    let (second, _) = click(&s, ip, Some(&vid));
    // Another visitor, who stays.
    let (other, other_vid) = click(&s, "192.0.2.45", None);
    for c in [&first, &second, &other] {
        wait_ingested(&s, c);
    }
    let body = serde_json::json!({"order_id": "erase-1", "program": "demo", "amount_minor": 4200, "currency": "USD",
        "occurred_at": now_rfc3339(), "click_id": second, "visitor_id": vid, "customer_ref": "erase-customer-3319"});
    let v = conversion(&s, "erase-k1", body);
    let id = v["id"].as_str().unwrap().to_string();
    assert_eq!(v["attribution"]["method"], "click_id", "{v}");
    let before = money(&http(s.api, "GET", &format!("/v1/conversions/{id}"), &[&auth()], "").json());
    let by_ref = conversion(
        &s,
        "erase-k2",
        serde_json::json!({"order_id": "erase-2", "program": "demo", "amount_minor": 1500, "currency": "USD",
            "occurred_at": now_rfc3339(), "coupon_code": "BOB10", "customer_ref": "erase-only-by-ref-6620"}),
    );

    // The CLI refuses while the server owns the click log.
    // `--visitor-id=` form: an id may start with `-`.
    let (code, _, err) = s.cli(&["privacy", "erase", &format!("--visitor-id={vid}")]);
    assert_ne!(code, 0);
    assert!(err.contains("open in another process"), "{err}");

    let erased = api(&s, "POST", "/v1/privacy/erase", &serde_json::json!({"visitor_id": vid}));
    assert_eq!(erased.status, 200, "{erased:?}\n{}", s.log());
    let r = erased.json();
    assert_eq!((r["clicks"].as_u64(), r["conversions"].as_u64(), r["target"].as_str()), (Some(2), Some(1), Some("visitor_id")), "{r}");
    assert!(r["stored_answers"].as_u64().unwrap() >= 1, "the conversion's stored answer carried the visitor: {r}");
    assert_eq!(api(&s, "POST", "/v1/privacy/erase", &serde_json::json!({"visitor_id": vid})).json()["clicks"], 0, "nothing left");
    let r = api(&s, "POST", "/v1/privacy/erase", &serde_json::json!({"customer_ref": "erase-only-by-ref-6620"})).json();
    assert_eq!((r["conversions"].as_u64(), r["clicks"].as_u64()), (Some(1), Some(0)), "{r}");
    let bad = api(&s, "POST", "/v1/privacy/erase", &serde_json::json!({"visitor_id": vid, "customer_ref": "x"}));
    assert_eq!(bad.status, 422, "{bad:?}");
    // Each erase is audited with its kind and counts, never the erased value.
    let audit = http(s.api, "GET", "/v1/audit?object=privacy", &[&auth()], "");
    assert_eq!(audit.status, 200, "{audit:?}");
    let entries = audit.json()["entries"].as_array().cloned().unwrap_or_default();
    let kinds: Vec<_> = entries.iter().map(|e| (e["action"].as_str().unwrap_or(""), e["object_id"].as_str().unwrap_or(""))).collect();
    assert_eq!(kinds, [("privacy.erase", "visitor_id"), ("privacy.erase", "visitor_id"), ("privacy.erase", "customer_ref")], "{entries:?}");
    assert_eq!(entries[0]["after"]["clicks"], 2, "{entries:?}");
    let text = serde_json::to_string(&entries).unwrap();
    assert!(!text.contains(vid.as_str()) && !text.contains("erase-only-by-ref-6620"), "{text}");

    // The money is as it was; the person is gone from the conversion and the clicks.
    let after = http(s.api, "GET", &format!("/v1/conversions/{id}"), &[&auth()], "").json();
    assert_eq!(money(&after), before);
    assert!(after["visitor_id"].is_null() && after["customer_ref"].is_null(), "{after}");
    let other_conv = http(s.api, "GET", &format!("/v1/conversions/{}", by_ref["id"].as_str().unwrap()), &[&auth()], "").json();
    assert!(other_conv["customer_ref"].is_null(), "{other_conv}");
    let click = http(s.api, "GET", &format!("/v1/clicks/{first}"), &[&auth()], "").json();
    assert_eq!(click["partner"], "alice", "the click stays, anonymised: {click}");
    assert_ne!(click["visitor_id"], vid.as_str(), "{click}");
    let kept = http(s.api, "GET", &format!("/v1/clicks/{other}"), &[&auth()], "").json();
    assert_eq!(kept["visitor_id"], other_vid.as_str(), "another visitor is untouched: {kept}");

    let mut s = s;
    assert_eq!(s.terminate().code(), Some(0), "{}", s.log());
    let raw_vid = clickgate::model::VisitorId::decode(&vid).unwrap().0;
    let found =
        grep(&s.data_dir(), &[vid.as_bytes(), &raw_vid, ip.as_bytes(), &encoded_ip(ip), b"erase-customer-3319", b"erase-only-by-ref-6620"]);
    assert!(found.is_empty(), "the erased visitor is still in the data dir: {found:?}");
    // The other visitor is still there, id and address: the grep finds what it looks for.
    let other_ip = encoded_ip("192.0.2.45");
    let found = grep(&s.data_dir(), &[other_vid.as_bytes(), &other_ip]);
    assert_eq!(found.len(), 2, "the grep finds a visitor that was not erased, id and address: {found:?}");

    let (code, out, err) = s.cli(&["ledger", "verify"]);
    assert_eq!(code, 0, "{out}{err}");
    // The command line erases on the stopped data dir through the same code path.
    let (code, out, err) = s.cli(&["privacy", "erase", &format!("--visitor-id={other_vid}")]);
    assert_eq!(code, 0, "{out}{err}");
    let r: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(r["clicks"], 1, "{r}");
    let found = grep(&s.data_dir(), &[other_vid.as_bytes(), &other_ip]);
    assert!(found.is_empty(), "{found:?}");
    let (code, out, err) = s.cli(&["ledger", "verify"]);
    assert_eq!(code, 0, "{out}{err}");
}
