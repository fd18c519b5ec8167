//! Commissions, payouts settled by hand, rules and the ledger through the API, end to end: the
//! real binary, conversions over HTTP, approval through `clickgate commissions approve`, and
//! every answer checked against the others (balances against ledger entries, reports against
//! the list).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clickgate::commission::RuleSet;
use clickgate::payouts::PayoutStore;
use clickgate::storage::offline::StoreAt;
use clickgate::storage::payouts::PayoutDb;
use common::*;

on_both!(
    commissions_go_pending_approved_paid_and_clawed_back_and_every_view_agrees,
    rules_are_validated_versioned_and_used_by_the_next_conversion,
    bad_parameters_are_named,
);
use serde_json::{json, Value};

const KEY: &str = "test-admin-key-0123";

/// The fixture config with an admin key, no approval timer, partner bob with a link and a
/// coupon, and the program's rules: 10% with a 7-day lock.
fn config() -> String {
    fixture_config(&format!("[api]\nadmin_key = \"{KEY}\"\n[commission]\napprove_interval_ms = 0\n"))
        .replace("country_deny = [\"GB\"]", "country_deny = [\"GB\"]\n[demo.programs.commission.rules]\npercent_bps = 1000\nlock_days = 7")
        + BOB
}

/// The version of the config's rules: 10%, a 7-day lock, defaults otherwise.
fn config_version() -> String {
    RuleSet { percent_bps: 1000, lock_days: 7, ..RuleSet::default() }.version_hash()
}

fn auth() -> String {
    format!("Authorization: Bearer {KEY}")
}

fn get(s: &Server, path: &str) -> Answer {
    http(s.api, "GET", path, &[&auth()], "")
}

fn send(s: &Server, method: &str, path: &str, key: Option<&str>, body: &str) -> Answer {
    let mut headers = vec![auth()];
    headers.extend(key.map(|k| format!("Idempotency-Key: {k}")));
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    http(s.api, method, path, &headers, body)
}

/// A minute ago, RFC 3339: inside the conversion window and never in the future.
fn a_minute_ago() -> (String, i64) {
    let ms = stream::now_ms() - 60_000;
    (stream::rfc3339(ms), ms as i64)
}

/// A conversion through bob's coupon; returns the answer's JSON.
fn convert(s: &Server, order: &str, amount_minor: i64) -> Value {
    let body = json!({
        "order_id": order, "program": "demo", "amount_minor": amount_minor, "currency": "USD",
        "occurred_at": a_minute_ago().0, "coupon_code": "BOB10",
    });
    let a = send(s, "POST", "/v1/conversions", Some(order), &body.to_string());
    assert_eq!(a.status, 201, "{a:?}");
    a.json()
}

fn balance(s: &Server) -> Value {
    let a = get(s, "/v1/partners/bob/balance");
    assert_eq!(a.status, 200, "{a:?}");
    let v = a.json();
    assert_eq!(v["partner"], "bob");
    let b = v["balances"].as_array().unwrap();
    assert_eq!(b.len(), 1, "one currency: {v}");
    assert_eq!(b[0]["currency"], "USD");
    b[0].clone()
}

/// Every commission matching `query`, following `next_cursor` with pages of `limit`; returns
/// the commissions and the page sizes.
fn list_all(s: &Server, query: &str, limit: usize) -> (Vec<Value>, Vec<usize>) {
    let (mut all, mut sizes, mut cursor) = (Vec::new(), Vec::new(), None::<String>);
    loop {
        let mut path = format!("/v1/commissions?{query}&limit={limit}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let a = get(s, &path);
        assert_eq!(a.status, 200, "{a:?}");
        let v = a.json();
        let page = v["commissions"].as_array().unwrap();
        sizes.push(page.len());
        all.extend(page.iter().cloned());
        match v.get("next_cursor") {
            Some(c) => cursor = Some(c.as_str().unwrap().to_string()),
            None => return (all, sizes),
        }
        assert!(sizes.len() < 100, "pagination does not end");
    }
}

/// Every ledger entry, in pages of `limit`.
fn entries(s: &Server, filter: &str, limit: usize) -> Vec<Value> {
    let (mut all, mut after) = (Vec::new(), 0u64);
    loop {
        let a = get(s, &format!("/v1/ledger/entries?after_seq={after}&limit={limit}{filter}"));
        assert_eq!(a.status, 200, "{a:?}");
        let v = a.json();
        all.extend(v["entries"].as_array().unwrap().iter().cloned());
        match v.get("next_after_seq") {
            Some(n) => after = n.as_u64().unwrap(),
            None => return all,
        }
    }
}

fn wait_ingested(s: &Server, cgid: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while get(s, &format!("/v1/clicks/{cgid}")).status != 200 {
        assert!(Instant::now() < deadline, "click never ingested\n{}", s.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Clicks bob's link as a browser from a clean address: one valid click.
fn click_bob(s: &Server) {
    let out = s.get("/r/bob", "198.51.100.7", CHROME);
    assert!(out.starts_with("HTTP/1.1 302"), "{out}");
    let location = header(&out, "location").expect("Location");
    let cgid = location.split("cgid=").nth(1).unwrap().split('&').next().unwrap();
    wait_ingested(s, cgid);
}

fn commissions_go_pending_approved_paid_and_clawed_back_and_every_view_agrees(store: Store) {
    let s = Server::start_on(&config(), store);
    click_bob(&s);

    // Seven coupon sales: seven pending commissions of 10%, under the config's rule version.
    let amounts: Vec<i64> = (0..7).map(|i| 10_000 + 1_000 * i).collect();
    let mut ids = Vec::new();
    for (i, amount) in amounts.iter().enumerate() {
        let v = convert(&s, &format!("o-{i}"), *amount);
        let c = &v["commissions"][0];
        assert_eq!(v["commissions"].as_array().unwrap().len(), 1, "{v}");
        assert_eq!(
            (c["partner"].as_str(), c["status"].as_str(), c["amount_minor"].as_i64()),
            (Some("bob"), Some("pending"), Some(amount / 10))
        );
        assert_eq!(c["rule_version"].as_str(), Some(config_version().as_str()));
        ids.push(c["id"].as_str().unwrap().to_string());
    }
    let total: i64 = amounts.iter().map(|a| a / 10).sum();
    assert_eq!(total, 9_100);

    let pending = get(&s, "/v1/commissions?partner=bob&status=pending").json();
    assert!(pending.get("next_cursor").is_none(), "{pending}");
    let listed: Vec<&str> = pending["commissions"].as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(listed, ids, "in creation order");
    assert_eq!(pending["commissions"][0]["conversion_id"], clickgate::conversions::conversion_id("demo", "o-0"));

    // Pages of three: 3 + 3 + 1, each commission once, in creation order (creation time, then
    // the order stored: two commissions of the same millisecond keep the order they were made in).
    let (paged, sizes) = list_all(&s, "partner=bob", 3);
    assert_eq!(sizes, [3, 3, 1]);
    assert_eq!(paged, pending["commissions"].as_array().unwrap().clone());
    let created: Vec<&str> = paged.iter().map(|c| c["created_at"].as_str().unwrap()).collect();
    assert!(created.windows(2).all(|w| w[0] <= w[1]), "{created:?}");

    let b = balance(&s);
    assert_eq!((b["pending_minor"].as_i64(), b["approved_minor"].as_i64(), b["paid_minor"].as_i64()), (Some(total), Some(0), Some(0)));
    assert_eq!(b["commissions"]["pending"], json!({"count": 7, "amount_minor": total, "remaining_minor": total}));

    // The lock ends long before 2099: the CLI approves all seven beside the running server.
    let (code, out, err) = s.cli(&["commissions", "approve", "--now", "2099-01-01T00:00:00Z"]);
    assert_eq!((code, out.trim()), (0, r#"{"amount_minor":9100,"approved":7}"#), "{err}");
    let b = balance(&s);
    assert_eq!((b["pending_minor"].as_i64(), b["approved_minor"].as_i64(), b["paid_minor"].as_i64()), (Some(0), Some(total), Some(0)));
    assert_eq!(b["commissions"]["approved"]["count"], 7);
    assert_eq!(b["commissions"]["pending"]["count"], 0);

    // bob is paid by hand: a settlement run's one manual payout of all that is payable (below
    // the program's threshold or not), sent and marked paid with the bank's reference.
    let settle = r#"{"currency":"USD","reference":"bank-ref-1"}"#;
    let paid = send(&s, "POST", "/v1/partners/bob/payouts", None, settle);
    assert_eq!(paid.status, 201, "{paid:?}");
    let v = paid.json();
    let payout_id = v["payout"]["payout_id"].as_str().unwrap().to_string();
    assert!(payout_id.starts_with("po_"), "{v}");
    assert_eq!(
        json!({"partner": v["partner"], "currency": v["currency"], "paid": v["paid"], "amount_minor": v["amount_minor"]}),
        json!({"partner": "bob", "currency": "USD", "paid": 7, "amount_minor": total})
    );
    assert_eq!(
        v["payout"],
        json!({"payout_id": payout_id, "partner": "bob", "currency": "USD", "amount_minor": total, "commissions": 7, "reference": "bank-ref-1"})
    );
    assert_eq!((v["report"]["paid"].clone(), v["report"]["sent"]["count"].as_u64()), (json!({"count": 1, "amount_minor": total}), Some(0)));
    let run_id = v["report"]["run_id"].as_str().unwrap().to_string();
    // A retry (a key or none: it never pays twice) finds nothing left to pay and says so.
    let again = send(&s, "POST", "/v1/partners/bob/payouts", Some("pay-1"), settle);
    let a = again.json();
    assert_eq!((again.status, a["paid"].as_u64(), a["amount_minor"].as_i64(), a["payout"].is_null()), (200, Some(0), Some(0), true), "{a}");
    assert!(a["report"]["plan"]["skipped"][0]["why"].as_str().unwrap().contains("no approved commission"), "{a}");
    assert_ne!(a["report"]["run_id"].as_str(), Some(run_id.as_str()));
    let b = balance(&s);
    assert_eq!((b["pending_minor"].as_i64(), b["approved_minor"].as_i64(), b["paid_minor"].as_i64()), (Some(0), Some(0), Some(total)));
    let (by_payout, _) = list_all(&s, &format!("payout_id={payout_id}&status=paid"), 1000);
    assert_eq!(by_payout.len(), 7);
    let payouts = get(&s, "/v1/payouts?partner=bob").json();
    let [p] = &payouts["payouts"].as_array().unwrap()[..] else { panic!("one payout: {payouts}") };
    assert_eq!(
        (
            p["id"].as_str(),
            p["run_id"].as_str(),
            p["status"].as_str(),
            p["method"].as_str(),
            p["reference"].as_str(),
            p["amount_minor"].as_i64()
        ),
        (Some(payout_id.as_str()), Some(run_id.as_str()), Some("paid"), Some("manual"), Some("bank-ref-1"), Some(total))
    );

    // A full refund after the payout claws the first commission back: bob owes it.
    let first = clickgate::conversions::conversion_id("demo", "o-0");
    let refund = send(&s, "POST", &format!("/v1/conversions/{first}/refund"), Some("rf-1"), "{}");
    assert_eq!(refund.status, 200, "{refund:?}");
    let c = &refund.json()["commissions"][0];
    assert_eq!(
        (c["status"].as_str(), c["remaining_minor"].as_i64(), c["reversed_minor"].as_i64()),
        (Some("reversed"), Some(0), Some(1_000))
    );
    let b = balance(&s);
    assert_eq!((b["pending_minor"].as_i64(), b["approved_minor"].as_i64(), b["paid_minor"].as_i64()), (Some(0), Some(-1_000), Some(total)));
    assert_eq!(b["commissions"]["paid"], json!({"count": 6, "amount_minor": total - 1_000, "remaining_minor": total - 1_000}));
    assert_eq!(b["commissions"]["reversed"], json!({"count": 1, "amount_minor": 1_000, "remaining_minor": 0}));
    let one = get(&s, &format!("/v1/commissions/{}", ids[0])).json();
    let kinds: Vec<&str> = one["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["created", "approved", "paid", "clawed_back"]);

    // The ledger: per commission reserve, post and move to payable (3 × 7), the payout's
    // pending transfer and its post, and the clawback.
    let all = entries(&s, "", 10);
    assert_eq!(all.len(), 24);
    let mut prev = "0".repeat(64);
    let mut by_id: BTreeMap<String, Value> = BTreeMap::new();
    // Account → (pending credits less debits, posted credits less debits).
    let mut accounts: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for (i, e) in all.iter().enumerate() {
        assert_eq!(e["seq"].as_u64(), Some(i as u64 + 1), "seqs run 1..n: {e}");
        assert_eq!(e["prev_hash"].as_str(), Some(prev.as_str()), "the chain links: {e}");
        prev = e["hash"].as_str().unwrap().to_string();
        let (debit, credit, amount) = (e["debit"].as_str().unwrap(), e["credit"].as_str().unwrap(), e["amount_minor"].as_i64().unwrap());
        assert!(amount > 0 && debit != credit && debit.ends_with(":USD") && credit.ends_with(":USD"), "{e}");
        assert_eq!(e["currency"], "USD");
        let (pending_delta, posted_delta, resolved) = match e["kind"].as_str().unwrap() {
            "pending" => (amount, 0, 0),
            "single" => (0, amount, 0),
            "post" => (0, amount, by_id[e["pending_id"].as_str().unwrap()]["amount_minor"].as_i64().unwrap()),
            "void" => (0, 0, by_id[e["pending_id"].as_str().unwrap()]["amount_minor"].as_i64().unwrap()),
            k => panic!("unknown kind {k}"),
        };
        let d = accounts.entry(debit.to_string()).or_default();
        *d = (d.0 - pending_delta + resolved, d.1 - posted_delta);
        let c = accounts.entry(credit.to_string()).or_default();
        *c = (c.0 + pending_delta - resolved, c.1 + posted_delta);
        by_id.insert(e["id"].as_str().unwrap().to_string(), e.clone());
    }
    assert_eq!(accounts["partner_pending:bob:USD"], (0, 0));
    assert_eq!(accounts["partner_payable:bob:USD"].1, b["approved_minor"].as_i64().unwrap());
    assert_eq!(accounts["partner_paid:bob:USD"].1, b["paid_minor"].as_i64().unwrap());
    assert_eq!(accounts["program_expense:demo:USD"], (0, -(total - 1_000)), "spent: what was approved less the clawback");
    assert_eq!(accounts.values().map(|a| a.1).sum::<i64>(), 0, "debits equal credits");
    let paid_entries = entries(&s, "&account=partner_paid:bob:USD", 1000);
    let paid_steps: Vec<(&str, &str, i64)> = paid_entries
        .iter()
        .map(|e| (e["kind"].as_str().unwrap(), e["cause"].as_str().unwrap(), e["amount_minor"].as_i64().unwrap()))
        .collect();
    let (send_cause, paid_cause) = (format!("payout:{payout_id}:send"), format!("payout:{payout_id}:paid"));
    assert_eq!(paid_steps, [("pending", send_cause.as_str(), total), ("post", paid_cause.as_str(), total)]);
    assert!(paid_entries.iter().all(|e| e["credit"] == "partner_paid:bob:USD"));
    let of_first = entries(&s, &format!("&commission_id={}", ids[0]), 1000);
    let steps: Vec<(&str, &str)> = of_first.iter().map(|e| (e["kind"].as_str().unwrap(), e["cause"].as_str().unwrap())).collect();
    let cause = |s: &str| format!("commission:{}:{s}", ids[0]);
    assert_eq!(
        steps.iter().map(|(k, c)| (k.to_string(), c.to_string())).collect::<Vec<_>>(),
        [("pending", "reserve:0"), ("post", "approve"), ("single", "payable"), ("single", "clawback-to:10000")]
            .map(|(k, c)| (k.to_string(), cause(c)))
    );
    assert_eq!(entries(&s, &format!("&cause_prefix=commission:{}:pay", ids[0]), 1000).len(), 1, "payable; the payout paid it");

    // Reports: commissions by status match the list; EPC is what still stands per valid click.
    let (everything, _) = list_all(&s, "partner=bob", 1000);
    let mut from_list: BTreeMap<String, (u64, i64, i64)> = BTreeMap::new();
    for c in &everything {
        let e = from_list.entry(c["status"].as_str().unwrap().to_string()).or_default();
        *e = (e.0 + 1, e.1 + c["amount_minor"].as_i64().unwrap(), e.2 + c["remaining_minor"].as_i64().unwrap());
    }
    assert_eq!(from_list.len(), 2, "{from_list:?}");
    for path in ["/v1/reports/partners/bob", "/v1/reports/programs/demo"] {
        let r = get(&s, path).json();
        let rows = r["totals"]["commissions"].as_array().unwrap();
        let from_report: BTreeMap<String, (u64, i64, i64)> = rows
            .iter()
            .map(|c| {
                assert_eq!(c["currency"], "USD");
                let t = (c["count"].as_u64().unwrap(), c["amount_minor"].as_i64().unwrap(), c["remaining_minor"].as_i64().unwrap());
                (c["status"].as_str().unwrap().to_string(), t)
            })
            .collect();
        assert_eq!(from_report, from_list, "{path}: {r}");
        assert_eq!(
            r["totals"]["epc"],
            json!([{"currency": "USD", "earnings_minor": 8_100, "valid_clicks": 1, "epc_minor": 8_100.0}]),
            "{path}"
        );
        let day_rows: usize = r["days"].as_array().unwrap().iter().map(|d| d["commissions"].as_array().unwrap().len()).sum();
        assert!(day_rows >= 2, "{r}");

        // The same report as CSV, asked for by query or by Accept: a figure a row, totals last.
        let csv = get(&s, &format!("{path}?format=csv"));
        assert_eq!(csv.status, 200, "{csv:?}");
        assert!(csv.header("content-type").is_some_and(|t| t.starts_with("text/csv")), "{csv:?}");
        let by_accept = http(s.api, "GET", path, &[&auth(), "Accept: text/csv, application/json;q=0.5"], "");
        assert_eq!(by_accept.body, csv.body, "{path}");
        assert_eq!(http(s.api, "GET", path, &[&auth(), "Accept: application/json, text/csv"], "").json(), r);
        let mut lines = csv.body.lines();
        assert_eq!(lines.next(), Some("date,measure,key,currency,value"));
        let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
        assert!(rows.iter().all(|f| f.len() == 5), "{}", csv.body);
        let total = |measure: &str, key: &str| -> String {
            let found: Vec<&Vec<&str>> = rows.iter().filter(|f| f[0] == "total" && f[1] == measure && f[2] == key).collect();
            assert_eq!(found.len(), 1, "{measure} {key}: {}", csv.body);
            found[0][4].to_string()
        };
        for (status, (count, amount, remaining)) in &from_list {
            assert_eq!(total("commissions_count", status), count.to_string());
            assert_eq!(total("commissions_amount_minor", status), amount.to_string());
            assert_eq!(total("commissions_remaining_minor", status), remaining.to_string());
        }
        assert_eq!(total("epc_minor", ""), "8100.0");
        assert_eq!(total("clicks", ""), r["totals"]["clicks"]["total"].to_string());
        // Every day row comes before the totals, and names a day of the JSON report.
        let days: Vec<&str> = r["days"].as_array().unwrap().iter().map(|d| d["date"].as_str().unwrap()).collect();
        let first_total = rows.iter().position(|f| f[0] == "total").unwrap();
        assert!(rows[..first_total].iter().all(|f| days.contains(&f[0])), "{}", csv.body);
        assert_eq!(get(&s, &format!("{path}?format=xml")).status, 422);
    }
}

fn rules_are_validated_versioned_and_used_by_the_next_conversion(store: Store) {
    let mut s = Server::start_on(&config(), store);
    let before = convert(&s, "r-1", 10_000);
    assert_eq!(before["commissions"][0]["rule_version"].as_str(), Some(config_version().as_str()));
    let current = get(&s, "/v1/programs/demo/commission").json();
    assert_eq!(
        (current["rules"]["percent_bps"].as_u64(), current["rules"]["version"].as_str()),
        (Some(1000), Some(config_version().as_str()))
    );

    let bad = r#"{"rules":{"tiers":[{"from_minor":0,"percent_bps":500},{"from_minor":0,"percent_bps":700}]}}"#;
    let a = send(&s, "PUT", "/v1/programs/demo/commission", None, bad);
    assert_eq!((a.status, a.json()["error"]["field"].as_str()), (422, Some("rules.tiers[1].from_minor")), "{a:?}");
    assert_eq!(send(&s, "PUT", "/v1/programs/demo/commission", None, r#"{"rules":{"percent":5}}"#).status, 400);
    assert_eq!(send(&s, "PUT", "/v1/programs/nope/commission", None, "{}").status, 404);

    // Bob gets his own set, with no lock; everyone else 20%.
    let put = r#"{"rules":{"percent_bps":2000,"lock_days":7},"partners":{"bob":{"percent_bps":2500,"lock_days":0}}}"#;
    let a = send(&s, "PUT", "/v1/programs/demo/commission", None, put);
    assert_eq!(a.status, 200, "{a:?}");
    let program_version = RuleSet { percent_bps: 2000, lock_days: 7, ..RuleSet::default() }.version_hash();
    let bob_version = RuleSet { percent_bps: 2500, lock_days: 0, ..RuleSet::default() }.version_hash();
    let v = a.json();
    assert_eq!(v["rules"]["version"].as_str(), Some(program_version.as_str()));
    assert_eq!(v["partners"]["bob"]["version"].as_str(), Some(bob_version.as_str()));
    assert_eq!(v["partners"]["bob"]["percent_bps"], 2500);
    assert_eq!(get(&s, "/v1/programs/demo/commission").json(), v);

    // The next conversion is computed under bob's new set, at once.
    let after = convert(&s, "r-2", 10_000);
    let c = &after["commissions"][0];
    assert_eq!((c["amount_minor"].as_i64(), c["rule_version"].as_str()), (Some(2_500), Some(bob_version.as_str())));
    let rules = get(&s, &format!("/v1/commission-rules/{bob_version}"));
    assert_eq!(rules.status, 200, "{rules:?}");
    assert_eq!((rules.json()["rules"]["percent_bps"].as_u64(), rules.json()["rules"]["lock_days"].as_u64()), (Some(2500), Some(0)));
    // The old version stays readable: the commission made by it still names it.
    assert_eq!(get(&s, &format!("/v1/commission-rules/{}", config_version())).json()["rules"]["percent_bps"], 1000);
    assert_eq!(get(&s, &format!("/v1/commission-rules/{program_version}")).status, 404, "no commission was made under it yet");
    assert_eq!(get(&s, "/v1/commission-rules/not-a-version").status, 422);

    // No lock: the API's approval approves bob's new commission now, and only it.
    let approved = send(&s, "POST", "/v1/commissions/approve", None, "");
    assert_eq!(approved.json(), json!({"approved": 1, "amount_minor": 2_500}), "{approved:?}");
    let one = get(&s, &format!("/v1/commissions/{}", c["id"].as_str().unwrap())).json();
    assert_eq!(one["status"], "approved");
    let kinds: Vec<&str> = one["events"].as_array().unwrap().iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["created", "approved"]);
    assert_eq!(balance(&s)["approved_minor"], 2_500);

    // The rules were stored, not only swapped in.
    s.restart();
    assert_eq!(get(&s, "/v1/programs/demo/commission").json(), v);
}

fn bad_parameters_are_named(store: Store) {
    let s = Server::start_on(&config(), store);
    let check = |path: &str, status: u16, field: Option<&str>, needle: &str| {
        let a = get(&s, path);
        assert_eq!(a.status, status, "{path} -> {a:?}");
        let e = &a.json()["error"];
        assert_eq!(e["field"].as_str(), field, "{path} -> {a:?}");
        assert!(e["message"].as_str().unwrap().contains(needle), "{path} -> {a:?}");
    };
    check("/v1/commissions?surprise=1", 400, None, "surprise: unknown parameter");
    check("/v1/commissions?partner=bob&partner=bob", 400, None, "partner: given more than once");
    check("/v1/commissions?status=done", 422, Some("status"), "one of pending");
    check("/v1/commissions?limit=0", 422, Some("limit"), "1..=1000");
    check("/v1/commissions?limit=1001", 422, Some("limit"), "1..=1000");
    check("/v1/commissions?cursor=bm9wZQ", 422, Some("cursor"), "next_cursor");
    check("/v1/commissions?period=2026-13-1", 422, Some("period"), "period label");
    check("/v1/commissions?conversion_id=cv_x", 422, Some("conversion_id"), "conversion id");
    check("/v1/ledger/entries?account=nope:bob:USD", 422, Some("account"), "partner_payable:alice:USD");
    check("/v1/ledger/entries?after_seq=-1", 422, Some("after_seq"), "integer");
    check("/v1/ledger/entries?limit=5000", 422, Some("limit"), "1..=1000");
    check("/v1/partners/nobody/balance", 404, None, "partner \"nobody\" not found");
    check("/v1/commissions/cm_000000000000000000000000", 404, None, "not found");
    assert_eq!(get(&s, "/v1/commissions?partner=bob&status=pending&period=2026-11").json(), json!({"commissions": []}));
    assert_eq!(get(&s, "/v1/partners/bob/balance").json(), json!({"partner": "bob", "balances": []}));
    assert_eq!(get(&s, "/v1/ledger/entries").json(), json!({"entries": []}));

    let pay = |partner: &str, body: &str| send(&s, "POST", &format!("/v1/partners/{partner}/payouts"), None, body);
    assert_eq!(pay("nobody", r#"{"currency":"USD","reference":"r"}"#).status, 404);
    assert_eq!(pay("bob", r#"{"currency":"XYZ","reference":"r"}"#).json()["error"]["field"], "currency");
    for bad in ["", "r 1", "r,1", &"r".repeat(65)] {
        let a = pay("bob", &json!({"currency": "USD", "reference": bad}).to_string());
        assert_eq!((a.status, a.json()["error"]["field"].as_str()), (422, Some("reference")), "{bad:?}: {a:?}");
    }
    assert_eq!(pay("bob", r#"{"currency":"USD"}"#).status, 400);
    assert_eq!(pay("bob", r#"{"currency":"USD","reference":"r","payout_id":"p"}"#).status, 400, "the old body is refused");
    let nothing = pay("bob", r#"{"currency":"USD","reference":"r"}"#);
    assert_eq!((nothing.status, nothing.json()["paid"].as_u64()), (200, Some(0)));
    // Another run holds the lock (taken here as a second process would): the settlement is
    // refused, and goes through once the lock is released.
    let at = match &s.store {
        Store::Sqlite => StoreAt::File(s.data_dir()),
        Store::Pg(schema) => StoreAt::Pg(schema.url.clone()),
    };
    let now = stream::now_ms() as i64;
    let hold = |take: bool| {
        let mut db = PayoutDb::open(&at).unwrap();
        db.write(|tx| if take { tx.take_lock("another", "pr_0000000000000001", now, now + 3_600_000) } else { tx.release_lock("another") })
            .unwrap()
    };
    hold(true);
    let locked = pay("bob", r#"{"currency":"USD","reference":"r"}"#);
    assert_eq!(locked.status, 409, "{locked:?}");
    assert!(locked.json()["error"]["message"].as_str().unwrap().contains("holds the lock"), "{locked:?}");
    hold(false);
    assert_eq!(pay("bob", r#"{"currency":"USD","reference":"r"}"#).status, 200);
    assert_eq!(send(&s, "POST", "/v1/commissions/approve", None, r#"{"now":1}"#).status, 400);
    assert_eq!(send(&s, "POST", "/v1/commissions/approve", None, "").json(), json!({"approved": 0, "amount_minor": 0}));
}
