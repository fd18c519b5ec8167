//! `config/grafana/clickgate.json` against a running server: every metric a panel queries is a
//! family `clickgate serve` exposes on `/metrics` (a histogram's `_bucket`, `_sum` and `_count`
//! count as its family), every `by (label)` is a label of its family, and the dashboard covers
//! the areas an operator pages on.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Family name → (type, labels seen on its samples).
fn families(exposition: &str) -> BTreeMap<String, (String, BTreeSet<String>)> {
    let mut out: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
    for line in exposition.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                out.entry(name.to_string()).or_default().0 = kind.to_string();
            }
        }
    }
    for line in exposition.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = &line[..name_end];
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| out.get(*f).is_some_and(|(k, _)| k == "histogram")))
            .unwrap_or(name);
        let labels: BTreeSet<String> = line[name_end..]
            .strip_prefix('{')
            .and_then(|l| l.split_once('}'))
            .map(|(l, _)| l.split(',').filter_map(|kv| kv.split_once('=').map(|(k, _)| k.to_string())).collect())
            .unwrap_or_default();
        if let Some((_, seen)) = out.get_mut(family) {
            seen.extend(labels);
        }
    }
    out
}

/// The family a queried series name belongs to, if the exposition has it.
fn family_of<'a>(name: &'a str, families: &BTreeMap<String, (String, BTreeSet<String>)>) -> Option<&'a str> {
    if families.contains_key(name) {
        return Some(name);
    }
    ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|s| name.strip_suffix(s).filter(|f| families.get(*f).is_some_and(|(k, _)| k == "histogram")))
}

#[test]
fn every_panel_queries_metrics_the_server_exposes() {
    let text = std::fs::read_to_string(format!("{ROOT}/config/grafana/clickgate.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let s = Server::start(&fixture_config(""));
    let exposition = request(s.admin, "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let families = families(&exposition);
    assert!(families.len() > 40, "too few families scraped: {exposition}");

    let metric = regex::Regex::new(r"\bclickgate_[a-z0-9_]+").unwrap();
    let by = regex::Regex::new(r"\bby \(([a-z_, ]+)\)").unwrap();
    let mut ids = BTreeSet::new();
    let (mut panels, mut queries) = (0, 0);
    let mut queried = BTreeSet::new();
    let mut problems = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        let id = panel["id"].as_u64().expect("every panel has an id");
        assert!(ids.insert(id), "panel id {id} twice");
        let grid = &panel["gridPos"];
        assert!(grid["x"].as_u64().unwrap() + grid["w"].as_u64().unwrap() <= 24, "panel {id} is wider than the grid");
        if panel["type"] == "row" {
            continue;
        }
        panels += 1;
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "panel {id} names its data source through the variable");
        let targets = panel["targets"].as_array().filter(|t| !t.is_empty()).unwrap_or_else(|| panic!("panel {id} queries nothing"));
        for target in targets {
            let expr = target["expr"].as_str().expect("a PromQL expression");
            queries += 1;
            let names: BTreeSet<&str> = metric.find_iter(expr).map(|m| m.as_str()).collect();
            if names.is_empty() {
                problems.push(format!("panel {id}: no clickgate metric in {expr}"));
            }
            for name in &names {
                match family_of(name, &families) {
                    None => problems.push(format!("panel {id}: {name} is not on /metrics ({expr})")),
                    Some(family) => {
                        queried.insert(family.to_string());
                        let labels = &families[family].1;
                        for group in by.captures_iter(expr) {
                            for label in group[1].split(',').map(str::trim).filter(|l| *l != "le") {
                                if !labels.contains(label) {
                                    problems.push(format!("panel {id}: {family} has no label {label} ({expr})"));
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // What an operator pages on: verdicts and reasons, redirect latency, the queue, spool and
    // drops, conversions, commissions, ledger commits, webhooks and payouts.
    for needed in [
        "clickgate_clicks_total",
        "clickgate_click_reasons_total",
        "clickgate_redirect_latency_seconds",
        "clickgate_click_queue_depth",
        "clickgate_cluster_spool_bytes",
        "clickgate_click_events_dropped_total",
        "clickgate_conversions_attributed_total",
        "clickgate_outbox_events_total",
        "clickgate_conversion_commit_seconds",
        "clickgate_webhook_deliveries_total",
        "clickgate_payouts_total",
    ] {
        assert!(queried.contains(needed), "no panel shows {needed}");
    }
    println!("grafana panels={panels} queries={queries} families_queried={} of {}", queried.len(), families.len());
}

#[test]
fn outbox_events_are_counted_by_type_as_fan_out_reads_them() {
    // A conversion on a click of the demo link makes `conversion.attributed` and
    // `commission.created` events; the delivery worker counts each once it has fanned it out.
    const KEY: &str = "test-admin-key-0123";
    let config = fixture_config(&format!("[api]\nadmin_key = \"{KEY}\"\n")).replace(
        "country_deny = [\"GB\"]",
        "country_deny = [\"GB\"]\n[demo.programs.attribution]\nmin_click_to_conversion_ms = 0\n\
         [demo.programs.commission.rules]\ntiers = [{ from_minor = 0, percent_bps = 1000 }]",
    );
    let s = Server::start(&config);
    let auth = format!("Authorization: Bearer {KEY}");
    let r = s.get("/r/demo", "198.51.100.44", CHROME);
    let cgid = header(&r, "location").unwrap().split("cgid=").nth(1).unwrap().split('&').next().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    while http(s.api, "GET", &format!("/v1/clicks/{cgid}"), &[&auth], "").status != 200 {
        assert!(Instant::now() < deadline, "the click was never ingested: {}", s.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let body = serde_json::json!({
        "order_id": "order-1", "program": "demo", "amount_minor": 5000, "currency": "USD",
        "occurred_at": stream::rfc3339(stream::now_ms()), "click_id": cgid,
    });
    let answer = http(s.api, "POST", "/v1/conversions", &[&auth, "Content-Type: application/json"], &body.to_string());
    assert_eq!(answer.status, 201, "{answer:?}");
    let created = "clickgate_outbox_events_total{type=\"commission.created\"}";
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.metric(created) < 1.0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(s.metric(created), 1.0, "{}", s.log());
    assert_eq!(s.metric("clickgate_outbox_events_total{type=\"conversion.attributed\"}"), 1.0);
    assert_eq!(s.metric("clickgate_outbox_events_total{type=\"commission.reversed\"}"), 0.0);
}
