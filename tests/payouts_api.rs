//! The payout-run API of a real `clickgate serve`, on SQLite and PostgreSQL: a dry run plans
//! and stores nothing, a run sends bob's manual payout, the runs and payouts list it, the
//! confirmation posts it, the metrics count it, and bad parameters are named.

mod common;

use common::*;
use serde_json::{json, Value};

on_both!(a_run_through_the_api_sends_lists_and_confirms_a_manual_payout, bad_payout_parameters_are_named);

const KEY: &str = "test-admin-key-0123";

fn config() -> String {
    fixture_config(&format!("[api]\nadmin_key = \"{KEY}\"\n[commission]\napprove_interval_ms = 0\n"))
        .replace("country_deny = [\"GB\"]", "country_deny = [\"GB\"]\n[demo.programs.commission.rules]\npercent_bps = 1000\nlock_days = 7")
        + BOB
}

fn send(s: &Server, method: &str, path: &str, key: Option<&str>, body: &str) -> Answer {
    let mut headers = vec![format!("Authorization: Bearer {KEY}")];
    headers.extend(key.map(|k| format!("Idempotency-Key: {k}")));
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    http(s.api, method, path, &headers, body)
}

fn get(s: &Server, path: &str) -> Value {
    let a = send(s, "GET", path, None, "");
    assert_eq!(a.status, 200, "{path}: {a:?}");
    a.json()
}

fn a_run_through_the_api_sends_lists_and_confirms_a_manual_payout(store: Store) {
    let s = Server::start_on(&config(), store);
    let occurred = stream::rfc3339(stream::now_ms() - 60_000);
    for (order, amount) in [("o-1", 40_000), ("o-2", 25_000)] {
        let body = json!({"order_id": order, "program": "demo", "amount_minor": amount, "currency": "USD", "occurred_at": occurred, "coupon_code": "BOB10"});
        assert_eq!(send(&s, "POST", "/v1/conversions", Some(order), &body.to_string()).status, 201);
    }
    let (code, out, err) = s.cli(&["commissions", "approve", "--now", "2099-01-01T00:00:00Z"]);
    assert_eq!((code, out.trim()), (0, r#"{"amount_minor":6500,"approved":2}"#), "{err}");

    let dry = send(&s, "POST", "/v1/payout-runs", None, r#"{"dry_run":true}"#);
    assert_eq!(dry.status, 200, "{dry:?}");
    let plan = &dry.json()["plan"]["payouts"];
    assert_eq!(
        (plan[0]["partner"].as_str(), plan[0]["amount_minor"].as_i64(), plan[0]["method"].as_str()),
        (Some("bob"), Some(6500), Some("manual"))
    );
    assert_eq!(get(&s, "/v1/payout-runs")["runs"], json!([]), "a dry run stores nothing");

    let run = send(&s, "POST", "/v1/payout-runs", None, "{}");
    assert_eq!(run.status, 201, "{run:?}");
    let run = run.json();
    let id = run["run_id"].as_str().unwrap().to_string();
    assert_eq!((run["sent"]["count"].as_u64(), run["sent"]["amount_minor"].as_i64()), (Some(1), Some(6500)));
    let runs = get(&s, "/v1/payout-runs");
    assert_eq!((runs["runs"][0]["id"].as_str(), runs["runs"][0]["finished"].as_bool()), (Some(id.as_str()), Some(true)));
    let detail = get(&s, &format!("/v1/payout-runs/{id}"));
    assert_eq!(detail["run"]["trigger"], "api");
    assert_eq!(detail["totals"], serde_json::json!({ "sent": { "count": 1, "amount_minor": 6500 } }), "{detail}");
    assert!(detail["next_cursor"].is_null(), "{detail}");
    let payout = &detail["payouts"][0];
    assert_eq!(
        (payout["partner"].as_str(), payout["status"].as_str(), payout["amount_minor"].as_i64()),
        (Some("bob"), Some("sent"), Some(6500))
    );
    let sent = get(&s, &format!("/v1/payouts?partner=bob&status=sent&run={id}"));
    assert_eq!(sent["payouts"].as_array().unwrap().len(), 1);
    let b = &get(&s, "/v1/partners/bob/balance")["balances"][0];
    assert_eq!((b["approved_minor"].as_i64(), b["in_transit_minor"].as_i64(), b["paid_minor"].as_i64()), (Some(6500), Some(6500), Some(0)));

    let done = send(&s, "POST", &format!("/v1/payout-runs/{id}/confirm"), None, "{}");
    assert_eq!(done.status, 200, "{done:?}");
    assert_eq!(done.json()["paid"], json!({"count": 1, "amount_minor": 6500}));
    assert_eq!(get(&s, "/v1/payouts?status=paid")["payouts"][0]["id"], payout["id"]);
    assert!(get(&s, "/v1/payouts?status=sent")["payouts"].as_array().unwrap().is_empty());
    let b = &get(&s, "/v1/partners/bob/balance")["balances"][0];
    assert_eq!((b["approved_minor"].as_i64(), b["in_transit_minor"].as_i64(), b["paid_minor"].as_i64()), (Some(0), Some(0), Some(6500)));
    let commissions = get(&s, "/v1/commissions?partner=bob&status=paid");
    assert_eq!(commissions["commissions"].as_array().unwrap().len(), 2);
    assert_eq!(s.metric("clickgate_payouts_total{state=\"sent\"}"), 1.0);
    assert_eq!(s.metric("clickgate_payouts_total{state=\"paid\"}"), 1.0);
    assert_eq!(s.metric("clickgate_payout_amount_minor_total{state=\"paid\"}"), 6500.0);
    let (code, out, err) = s.cli(&["ledger", "verify"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = s.cli(&["payouts", "list", "--partner", "bob"]);
    assert_eq!(code, 0);
    let listed: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(listed["status"], "paid");
}

fn bad_payout_parameters_are_named(store: Store) {
    let s = Server::start_on(&config(), store);
    let check = |method: &str, path: &str, body: &str, status: u16, field: Option<&str>| {
        let a = send(&s, method, path, None, body);
        assert_eq!(a.status, status, "{method} {path}: {a:?}");
        assert_eq!(a.json()["error"]["field"].as_str(), field, "{method} {path}: {a:?}");
    };
    check("GET", "/v1/payouts?status=nope", "", 422, Some("status"));
    check("GET", "/v1/payouts?run=nope", "", 422, Some("run"));
    check("GET", "/v1/payouts?colour=red", "", 400, None);
    check("GET", "/v1/payout-runs/pr_00", "", 404, None);
    check("GET", "/v1/payout-runs/nope", "", 404, None);
    check("POST", "/v1/payout-runs", r#"{"currency":"XYZ"}"#, 422, Some("currency"));
    check("POST", "/v1/payout-runs", r#"{"program":"a b"}"#, 422, Some("program"));
    check("POST", "/v1/payout-runs", r#"{"colour":"red"}"#, 400, Some("colour"));
    check("POST", "/v1/payout-runs/pr_00/confirm", "{}", 404, None);
    let nothing = send(&s, "POST", "/v1/payout-runs", None, "").json();
    assert_eq!(nothing["plan"]["payouts"], json!([]));
    let failed = r#"{"failed":[{"payout_id":"po_1"}]}"#;
    let run = nothing["run_id"].as_str().unwrap();
    check("POST", &format!("/v1/payout-runs/{run}/confirm"), failed, 422, Some("failed"));
}
