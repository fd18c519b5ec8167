//! `clickgate rescore` end to end: clicks through the real edge, conversions over HTTP, one
//! commission approved, then the click log judged again with a CIDR rule the clicks' /24 falls
//! under. The report names the two credits that rest only on those clicks; `--apply` voids the
//! pending commission and reverses the approved one through the ledger, with the rules' digest
//! and the reason in the causes; a rerun changes nothing; `ledger verify` is clean.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

on_both!(a_rescore_takes_back_the_commissions_of_clicks_the_new_rules_find_invalid);

const KEY: &str = "test-admin-key-0123";

/// Alice's commissions wait 7 days for approval, bob's none.
fn config(deny: &str) -> String {
    fixture_config(&format!("[api]\nadmin_key = \"{KEY}\"\n[commission]\napprove_interval_ms = 0\n"))
        .replace("deny = [\"203.0.113.0/24\"]", deny)
        .replace("country_deny = [\"GB\"]", "country_deny = [\"GB\"]\n[demo.programs.attribution]\nmin_click_to_conversion_ms = 0\n[demo.programs.commission.rules]\npercent_bps = 1000\nlock_days = 7")
        + BOB
        + "[demo.programs.commission.partners.bob]\npercent_bps = 1000\nlock_days = 0\n"
}

fn auth() -> String {
    format!("Authorization: Bearer {KEY}")
}

/// Clicks `code` from `ip` as a browser; returns the click id.
fn click(s: &Server, code: &str, ip: &str) -> String {
    let out = s.get(&format!("/r/{code}"), ip, CHROME);
    assert!(out.starts_with("HTTP/1.1 302"), "{out}");
    let location = out.lines().find_map(|l| l.strip_prefix("location: ")).expect("Location");
    let cgid = location.split("cgid=").nth(1).unwrap().split('&').next().unwrap().trim().to_string();
    let until = Instant::now() + Duration::from_secs(10);
    while http(s.api, "GET", &format!("/v1/clicks/{cgid}"), &[&auth()], "").status != 200 {
        assert!(Instant::now() < until, "click {cgid} never ingested: {}", s.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    cgid
}

/// A conversion credited by click `cgid`; returns its commissions' ids.
fn convert(s: &Server, order: &str, cgid: &str) -> Vec<String> {
    let body = json!({
        "order_id": order, "program": "demo", "amount_minor": 10_000, "currency": "USD",
        "occurred_at": stream::rfc3339(stream::now_ms()), "click_id": cgid,
    });
    let a = http(s.api, "POST", "/v1/conversions", &[&auth()], &body.to_string());
    assert_eq!(a.status, 201, "{a:?}");
    let v = a.json();
    assert!(v["commissions"].as_array().is_some_and(|c| !c.is_empty()), "{v}");
    v["commissions"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_string()).collect()
}

fn status(s: &Server, commission: &str) -> String {
    let a = http(s.api, "GET", &format!("/v1/commissions/{commission}"), &[&auth()], "");
    assert_eq!(a.status, 200, "{a:?}");
    a.json()["status"].as_str().unwrap().to_string()
}

fn rescore(s: &Server, rules: &std::path::Path, extra: &[&str]) -> (i32, Value, String) {
    let mut args = vec!["rescore", "--rules", rules.to_str().unwrap(), "--json", "--reason", "ring of 198.51.100.0/24"];
    args.extend_from_slice(extra);
    let (code, out, err) = s.cli(&args);
    (code, serde_json::from_str(out.trim()).unwrap_or(Value::Null), err)
}

fn a_rescore_takes_back_the_commissions_of_clicks_the_new_rules_find_invalid(store: Store) {
    let s = Server::start_on(&config(""), store);
    let ring_alice = click(&s, "demo", "198.51.100.7");
    let ring_bob = click(&s, "bob", "198.51.100.8");
    let honest = click(&s, "demo", "192.0.2.10");
    let alice_ring = convert(&s, "o-ring-alice", &ring_alice);
    let bob_ring = convert(&s, "o-ring-bob", &ring_bob);
    let alice_honest = convert(&s, "o-honest", &honest);
    assert_eq!((alice_ring.len(), bob_ring.len(), alice_honest.len()), (1, 1, 1));
    let (code, out, err) = s.cli(&["commissions", "approve"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(status(&s, &bob_ring[0]), "approved");
    assert_eq!(status(&s, &alice_ring[0]), "pending");

    let rules = s.dir.path().join("new-rules.toml");
    std::fs::write(&rules, config("deny = [\"203.0.113.0/24\", \"198.51.100.0/24\"]")).unwrap();

    // The report alone changes nothing.
    let (code, report, err) = rescore(&s, &rules, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(report["tally"]["clicks"], 3, "{report}");
    assert_eq!(report["tally"]["changed"], 2, "{report}");
    assert_eq!(report["tally"]["verdicts"]["valid->blocked"], 2, "{report}");
    assert_eq!(report["tally"]["verdicts"]["valid->valid"], 1, "{report}");
    assert_eq!(report["tally"]["reasons_added"]["ip_denylisted"], 2, "{report}");
    let credit = report["credit"].as_array().unwrap();
    assert_eq!(credit.len(), 2, "{report}");
    assert!(credit.iter().all(|c| c["direction"] == "loses"), "{report}");
    let mut ids: Vec<(&str, &str, i64)> = report["commissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_str().unwrap(), c["status"].as_str().unwrap(), c["amount_minor"].as_i64().unwrap()))
        .collect();
    ids.sort();
    let mut want = vec![(alice_ring[0].as_str(), "pending", 1_000), (bob_ring[0].as_str(), "approved", 1_000)];
    want.sort();
    assert_eq!(ids, want, "{report}");
    assert!(report.get("applied").is_none(), "{report}");
    assert_eq!(status(&s, &alice_ring[0]), "pending");

    // `--apply` without a terminal and without --yes refuses, changing nothing.
    let (code, _, err) = rescore(&s, &rules, &["--apply"]);
    assert_ne!(code, 0);
    assert!(err.contains("--yes"), "{err}");
    assert_eq!(status(&s, &bob_ring[0]), "approved");

    let (code, report, err) = rescore(&s, &rules, &["--apply", "--yes"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(report["applied"]["commissions"], 2, "{report}");
    assert_eq!(report["applied"]["amount_minor"]["USD"], 2_000, "{report}");
    assert_eq!(status(&s, &alice_ring[0]), "voided");
    assert_eq!(status(&s, &bob_ring[0]), "reversed");
    assert_eq!(status(&s, &alice_honest[0]), "pending", "a commission of a click still valid stays");

    // A rerun finds nothing left to take back.
    let (code, report, err) = rescore(&s, &rules, &["--apply", "--yes"]);
    assert_eq!(code, 0, "{err}");
    assert!(report["commissions"].as_array().unwrap().is_empty(), "{report}");
    assert!(report.get("applied").is_none(), "{report}");

    // The balance: bob's approved 10.00 went back from payable; alice's pending 10.00 is voided.
    let a = http(s.api, "GET", "/v1/partners/bob/balance", &[&auth()], "");
    assert_eq!(a.status, 200, "{a:?}");
    let b = &a.json()["balances"][0];
    assert_eq!((b["approved_minor"].as_i64(), b["pending_minor"].as_i64()), (Some(0), Some(0)), "{b}");
    let a = http(s.api, "GET", "/v1/partners/alice/balance", &[&auth()], "");
    assert_eq!(a.json()["balances"][0]["pending_minor"], 1_000, "{a:?}");

    let (code, out, err) = s.cli(&["ledger", "verify"]);
    assert_eq!(code, 0, "{out}{err}");
    let causes = ledger_causes(&s);
    let digest = report["rules_digest"].as_str().unwrap();
    let audit = format!("rescore:{digest}:ring of 198.51.100.0/24");
    assert_eq!(causes.iter().filter(|c| c.ends_with(&audit)).count(), 2, "{causes:?}");
    assert!(causes.iter().any(|c| c.starts_with(&format!("commission:{}:void:", alice_ring[0])) && c.ends_with(&audit)));
    assert!(causes.iter().any(|c| c.starts_with(&format!("commission:{}:reverse-to:", bob_ring[0])) && c.ends_with(&audit)));
}

/// Every ledger transfer's cause, read through the store the server uses.
fn ledger_causes(s: &Server) -> Vec<String> {
    match &s.store {
        Store::Sqlite => {
            let db = rusqlite::Connection::open(s.data_dir().join("clickgate.db")).unwrap();
            let mut stmt = db.prepare("SELECT cause FROM ledger_transfers ORDER BY seq").unwrap();
            let rows = stmt.query_map([], |r| r.get::<_, String>(0)).unwrap().map(Result::unwrap).collect();
            rows
        }
        Store::Pg(schema) => {
            let mut client = schema.client();
            client.query("SELECT cause FROM ledger_transfers ORDER BY seq", &[]).unwrap().iter().map(|r| r.get(0)).collect()
        }
    }
}
