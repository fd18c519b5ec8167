//! The webhook routes end to end on both stores: the real binary, registrations checked and
//! refused by field, secrets shown once, rotation and removal, and events delivered to a
//! receiver on 127.0.0.2, listed with their attempts page by page, and replayed.

mod common;
#[path = "webhooks/receiver.rs"]
mod receiver;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

on_both!(registrations_are_checked_and_endpoints_listed_rotated_and_removed, events_are_delivered_listed_by_page_and_replayed);

const KEY: &str = "webhooks-api-admin-key";

fn config() -> String {
    let extra = format!(
        "[api]\nadmin_key = \"{KEY}\"\n[webhooks]\nallow_http = true\nallow_private_cidrs = [\"127.0.0.2/32\"]\npoll_interval_ms = 50\n"
    );
    format!("{}{BOB}", fixture_config(&extra))
}

fn call(s: &Server, method: &str, path: &str, body: &str) -> Answer {
    let auth = format!("Authorization: Bearer {KEY}");
    http(s.api, method, path, &[&auth, "Content-Type: application/json"], body)
}

fn refused(s: &Server, body: Value, field: &str) {
    let a = call(s, "POST", "/v1/webhook-endpoints", &body.to_string());
    assert_eq!((a.status, a.json()["error"]["field"].as_str()), (422, Some(field)), "{body}: {a:?}");
}

fn registrations_are_checked_and_endpoints_listed_rotated_and_removed(store: Store) {
    let s = Server::start_on(&config(), store);
    let ok = json!({ "url": "http://127.0.0.2:9/hook", "event_types": ["commission.created"] });
    let unauthenticated = http(s.api, "POST", "/v1/webhook-endpoints", &[], &ok.to_string());
    assert_eq!(unauthenticated.status, 401);

    refused(&s, json!({ "url": "http://127.0.0.1:9/hook", "event_types": ["commission.created"] }), "url");
    refused(&s, json!({ "url": "http://2130706433/hook", "event_types": ["commission.created"] }), "url");
    refused(&s, json!({ "url": "http://localhost:9/hook", "event_types": ["commission.created"] }), "url");
    refused(&s, json!({ "url": "ftp://127.0.0.2/hook", "event_types": ["commission.created"] }), "url");
    refused(&s, json!({ "url": "http://127.0.0.2:9/hook", "event_types": [] }), "event_types");
    refused(&s, json!({ "url": "http://127.0.0.2:9/hook", "event_types": ["commission.paid"] }), "event_types");
    refused(&s, json!({ "url": "http://127.0.0.2:9/hook", "event_types": ["fraud.alert"], "partner": "no spaces" }), "partner");
    let unknown = call(&s, "POST", "/v1/webhook-endpoints", r#"{"url":"http://127.0.0.2:9/","event_types":["fraud.alert"],"x":1}"#);
    assert_eq!(unknown.status, 400, "{unknown:?}");

    let created = call(
        &s,
        "POST",
        "/v1/webhook-endpoints",
        &json!({ "url": "http://127.0.0.2:9/hook", "event_types": ["fraud.alert", "commission.created", "fraud.alert"], "partner": "bob" })
            .to_string(),
    );
    assert_eq!(created.status, 201, "{created:?}");
    let e = created.json();
    let (id, secret) = (e["id"].as_str().unwrap().to_string(), e["secret"].as_str().unwrap().to_string());
    assert!(id.starts_with("we_") && id.len() == 27, "{id}");
    assert!(secret.starts_with("whsec_") && secret.len() == 6 + 44, "32 random bytes in base64: {secret}");
    assert_eq!(e["event_types"], json!(["commission.created", "fraud.alert"]), "sorted, without duplicates");
    assert_eq!((e["partner"].as_str(), e["status"].as_str()), (Some("bob"), Some("enabled")));

    let listed = call(&s, "GET", "/v1/webhook-endpoints", "");
    assert!(!listed.body.contains("whsec_"), "a listing shows no secret: {}", listed.body);
    assert_eq!(listed.json()["endpoints"].as_array().unwrap().len(), 1);
    let one = call(&s, "GET", &format!("/v1/webhook-endpoints/{id}"), "");
    assert_eq!((one.status, one.json()["id"].as_str()), (200, Some(id.as_str())));
    assert!(!one.body.contains("whsec_"));
    assert_eq!(call(&s, "GET", "/v1/webhook-endpoints/we_000000000000000000000000", "").status, 404);
    assert_eq!(call(&s, "GET", "/v1/webhook-endpoints/nope", "").status, 404);

    let before = stream::now_ms();
    let rotated = call(&s, "POST", &format!("/v1/webhook-endpoints/{id}/rotate-secret"), "");
    assert_eq!(rotated.status, 200, "{rotated:?}");
    let r = rotated.json();
    assert!(r["secret"].as_str().unwrap().starts_with("whsec_") && r["secret"] != secret.as_str());
    let until = r["previous_secret_until_ms"].as_u64().unwrap();
    assert!((before + 86_400_000..=stream::now_ms() + 86_400_000).contains(&until), "{until}");

    assert_eq!(call(&s, "GET", "/v1/webhook-events?status=sent", "").status, 422);
    assert_eq!(call(&s, "GET", "/v1/webhook-events?endpoint=x", "").status, 422);
    assert_eq!(call(&s, "GET", "/v1/webhook-events?cursor=%21", "").status, 422);
    assert_eq!(call(&s, "GET", "/v1/webhook-events?since=1", "").status, 400);
    assert_eq!(call(&s, "POST", "/v1/webhook-events/msg_nope/replay", "").status, 404);
    assert_eq!(call(&s, "POST", &format!("/v1/webhook-events/msg_{}/replay", "0".repeat(32)), "").status, 404);

    assert_eq!(call(&s, "DELETE", &format!("/v1/webhook-endpoints/{id}"), "").json(), json!({ "id": id, "deleted": true }));
    assert_eq!(call(&s, "GET", &format!("/v1/webhook-endpoints/{id}"), "").status, 404);
    assert_eq!(call(&s, "DELETE", &format!("/v1/webhook-endpoints/{id}"), "").status, 404);

    // The CLI sees the same store.
    let (code, out, err) = s.cli(&["webhooks", "add", "--url", "http://127.0.0.2:9/cli", "--event-type", "commission.approved"]);
    assert_eq!(code, 0, "{err}");
    let added: Value = serde_json::from_str(out.trim()).unwrap();
    assert!(added["secret"].as_str().unwrap().starts_with("whsec_"));
    let (code, out, _) = s.cli(&["webhooks", "list"]);
    assert_eq!((code, out.lines().count()), (0, 1));
    assert!(!out.contains("whsec_"));
    let (code, _, err) = s.cli(&["webhooks", "add", "--url", "http://10.0.0.1/", "--event-type", "commission.approved"]);
    assert!(code != 0 && err.contains("refused"), "{err}");
    let (code, _, err) = s.cli(&["webhooks", "replay", "--endpoint", added["id"].as_str().unwrap(), "--since", "1700000000"]);
    assert!(code != 0 && err.contains("Unix seconds"), "{err}");
}

fn convert(s: &Server, order: &str) {
    let body = json!({
        "order_id": order, "program": "demo", "amount_minor": 10_000, "currency": "USD",
        "occurred_at": stream::rfc3339(stream::now_ms() - 60_000), "coupon_code": "BOB10",
    });
    let (auth, key) = (format!("Authorization: Bearer {KEY}"), format!("Idempotency-Key: {order}"));
    let a = http(s.api, "POST", "/v1/conversions", &[&auth, &key, "Content-Type: application/json"], &body.to_string());
    assert_eq!(a.status, 201, "{a:?}");
}

fn wait(s: &Server, what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "{what}: never happened\n{}", s.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn events_are_delivered_listed_by_page_and_replayed(store: Store) {
    let s = Server::start_on(&config(), store);
    let (port, ids) = receiver::start("127.0.0.2");
    let reg = json!({ "url": format!("http://127.0.0.2:{port}/hook"), "event_types": ["conversion.attributed", "commission.created"], "partner": "bob" });
    let created = call(&s, "POST", "/v1/webhook-endpoints", &reg.to_string());
    assert_eq!(created.status, 201, "{created:?}");
    let endpoint = created.json()["id"].as_str().unwrap().to_string();
    for order in ["o-1", "o-2", "o-3"] {
        convert(&s, order);
    }
    let delivered = format!("/v1/webhook-events?endpoint={endpoint}&status=delivered");
    wait(&s, "six deliveries recorded", || call(&s, "GET", &delivered, "").json()["events"].as_array().unwrap().len() == 6);
    assert_eq!(ids.lock().unwrap().len(), 6);

    let first = call(&s, "GET", &format!("{delivered}&limit=4"), "").json();
    let page: Vec<Value> = first["events"].as_array().unwrap().clone();
    let cursor = first["next_cursor"].as_str().expect("a second page").to_string();
    let second = call(&s, "GET", &format!("{delivered}&limit=4&cursor={cursor}"), "").json();
    assert!(second.get("next_cursor").is_none(), "{second}");
    let all: Vec<Value> = page.into_iter().chain(second["events"].as_array().unwrap().iter().cloned()).collect();
    let seqs: Vec<i64> = all.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] > w[1]), "newest first, no repeats: {seqs:?}");
    let mut got: Vec<String> = ids.lock().unwrap().clone();
    let mut listed: Vec<String> = all.iter().map(|e| e["event_id"].as_str().unwrap().to_string()).collect();
    got.sort();
    listed.sort();
    assert_eq!(got, listed, "every delivered id is listed once");
    let e = &all[0];
    assert_eq!((e["attempts"].as_u64(), e["attempt_log"][0]["http_status"].as_u64()), (Some(1), Some(200)));
    assert_eq!(e["attempt_log"][0]["response_excerpt"], "ok");

    let id = e["event_id"].as_str().unwrap().to_string();
    let replay = call(&s, "POST", &format!("/v1/webhook-events/{id}/replay"), "");
    assert_eq!((replay.status, replay.json()["deliveries"].as_u64()), (202, Some(1)), "{replay:?}");
    wait(&s, "the replay", || ids.lock().unwrap().len() == 7);
    assert_eq!(ids.lock().unwrap()[6], id, "a replay carries the event's id");
}
