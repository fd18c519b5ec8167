//! Webhooks end to end: the real `clickgate serve` delivers to a receiver that verifies every
//! request with PyPI `standardwebhooks` 1.1.0 (installed by tests/webhooks/fetch.sh into a venv
//! under the target dir), listening on 127.0.0.2, which the config admits through
//! `webhooks.allow_private_cidrs` and `webhooks.allow_http`.
//!
//! A click, a conversion and an approval produce `conversion.attributed`, `commission.created`
//! and `commission.approved`; a receiver answering 500 twice then 200 gets the same `webhook-id`
//! three times; a 410 disables its endpoint, and enabling it and replaying sends it what it
//! missed; after a rotation both secrets verify; a CLI replay
//! sends an event again under its id; a payout run and its confirmation send `payout.sent` and
//! `payout.paid`. Retries are shortened with `webhooks.retry_delays_ms`.
//!
//! It needs python3 with its venv module and pip, and the package registry on the first run, so
//! it is ignored unless asked for (`cargo test -- --include-ignored`); when it runs without
//! them, it fails with a message saying what is missing.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const KEY: &str = "webhooks-e2e-admin-key";

/// Fails the test: the receiver cannot run here, and why.
fn unavailable(why: &str) -> ! {
    panic!(
        "this test needs PyPI standardwebhooks 1.1.0, installed by tests/webhooks/fetch.sh into a venv under the \
         target dir: {why}\nInstall python3 with its venv module and pip (on Debian: apt-get install python3-venv \
         python3-pip) and let the first run reach the package registry, or run cargo test without \
         --include-ignored: it lists this test as ignored"
    )
}

/// The venv's python, installing the pinned package first.
fn venv_python() -> PathBuf {
    pinned_venv_python("tests/webhooks/fetch.sh", "CLICKGATE_WEBHOOKS_VENV", "webhooks-venv", unavailable)
}

/// The Python receiver on 127.0.0.2, killed when dropped.
struct PyReceiver {
    child: Child,
    port: u16,
    state: tempfile::TempDir,
}

impl PyReceiver {
    fn start() -> PyReceiver {
        let state = tempfile::tempdir().unwrap();
        let mut child = Command::new(venv_python())
            .arg(Path::new(ROOT).join("tests/webhooks/receiver.py"))
            .arg("127.0.0.2")
            .arg(state.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| unavailable(&format!("cannot start the receiver: {e}")));
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line.trim().parse().unwrap_or_else(|_| panic!("the receiver printed {line:?}, not its port"));
        PyReceiver { child, port, state }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.2:{}{path}", self.port)
    }

    fn write(&self, name: &str, v: &Value) {
        let tmp = self.state.path().join(format!("{name}.tmp"));
        std::fs::write(&tmp, v.to_string()).unwrap();
        std::fs::rename(tmp, self.state.path().join(name)).unwrap();
    }

    fn log(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.state.path().join("log.jsonl")).unwrap_or_default();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    fn at(&self, path: &str) -> Vec<Value> {
        self.log().into_iter().filter(|l| l["path"] == path).collect()
    }

    /// Waits until `done` holds over the log (failing after 30 s with the log and the server's).
    fn wait(&self, s: &Server, what: &str, done: impl Fn(&[Value]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done(&self.log()) {
            assert!(Instant::now() < deadline, "{what}: never happened\nreceiver log: {:#?}\nserver log:\n{}", self.log(), s.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for PyReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config() -> String {
    let extra = format!(
        "[api]\nadmin_key = \"{KEY}\"\n[commission]\napprove_interval_ms = 0\n[webhooks]\nallow_http = true\n\
         allow_private_cidrs = [\"127.0.0.2/32\"]\npoll_interval_ms = 50\nretry_delays_ms = [200, 200, 200]\n"
    );
    format!("{}{BOB}", fixture_config(&extra))
        .replace("country_deny = [\"GB\"]", "country_deny = [\"GB\"]\n[demo.programs.attribution]\nmin_click_to_conversion_ms = 0")
}

fn call(s: &Server, method: &str, path: &str, body: &str) -> Answer {
    let auth = format!("Authorization: Bearer {KEY}");
    http(s.api, method, path, &[auth.as_str(), "Content-Type: application/json"], body)
}

fn register(s: &Server, url: &str, types: &[&str]) -> Value {
    let a = call(s, "POST", "/v1/webhook-endpoints", &json!({ "url": url, "event_types": types }).to_string());
    assert_eq!(a.status, 201, "{a:?}");
    a.json()
}

/// Clicks bob's link as a browser from `ip` (each click its own, or the second is a duplicate)
/// and waits until the click is ingested; returns its id.
fn click_bob(s: &Server, ip: &str) -> String {
    let out = s.get("/r/bob", ip, CHROME);
    assert!(out.starts_with("HTTP/1.1 302"), "{out}");
    let cgid = header(&out, "location").unwrap().split("cgid=").nth(1).unwrap().split('&').next().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(20);
    while call(s, "GET", &format!("/v1/clicks/{cgid}"), "").status != 200 {
        assert!(Instant::now() < deadline, "click never ingested\n{}", s.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    cgid
}

fn convert(s: &Server, order: &str, click_id: &str) {
    let at = stream::rfc3339(stream::now_ms());
    let body = json!({
        "order_id": order, "program": "demo", "amount_minor": 10_000, "currency": "USD", "occurred_at": at, "click_id": click_id,
    });
    let (auth, key) = (format!("Authorization: Bearer {KEY}"), format!("Idempotency-Key: {order}"));
    let a = http(s.api, "POST", "/v1/conversions", &[&auth, &key, "Content-Type: application/json"], &body.to_string());
    assert_eq!(a.status, 201, "{a:?}");
}

fn all_verified(lines: &[Value]) -> bool {
    lines.iter().all(|l| l["verified"].as_array().is_some_and(|v| !v.is_empty() && v.iter().all(|b| b == true)))
}

#[test]
#[ignore = "needs python3 and PyPI standardwebhooks 1.1.0 (tests/webhooks/fetch.sh installs it); run with --include-ignored"]
fn serve_delivers_signed_events_that_the_reference_library_verifies() {
    let rx = PyReceiver::start();
    let s = Server::start(&config());
    let main = register(&s, &rx.url("/main"), &["conversion.attributed", "commission.created", "commission.approved"]);
    let flaky = register(&s, &rx.url("/flaky"), &["commission.created"]);
    let gone = register(&s, &rx.url("/gone"), &["conversion.attributed"]);
    assert!(main["secret"].as_str().unwrap().starts_with("whsec_"));
    assert!(call(&s, "GET", "/v1/webhook-endpoints", "").body.find("whsec_").is_none(), "a listing shows no secret");
    let secrets = |main_secrets: Vec<&Value>| json!({ "/main": main_secrets, "/flaky": [flaky["secret"]], "/gone": [gone["secret"]] });
    rx.write("secrets.json", &secrets(vec![&main["secret"]]));
    rx.write("script.json", &json!({ "/flaky": [500, 500], "/gone": [410] }));

    // Commissions without a lock, so the approval approves at once.
    let rules = call(&s, "PUT", "/v1/programs/demo/commission", r#"{"rules":{"percent_bps":1000,"lock_days":0}}"#);
    assert_eq!(rules.status, 200, "{rules:?}");

    // A click, a conversion and an approval.
    let cgid = click_bob(&s, "198.51.100.7");
    convert(&s, "order-1", &cgid);
    let approved = call(&s, "POST", "/v1/commissions/approve", "");
    assert_eq!((approved.status, approved.json()["approved"].as_u64()), (200, Some(1)), "{approved:?}");

    rx.wait(&s, "three events at /main", |log| log.iter().filter(|l| l["path"] == "/main").count() >= 3);
    let main_log = rx.at("/main");
    // Attempts run side by side, so events arrive in any order.
    let mut kinds: Vec<&str> = main_log.iter().map(|l| l["type"].as_str().unwrap()).collect();
    kinds.sort();
    assert_eq!(kinds, ["commission.approved", "commission.created", "conversion.attributed"], "{main_log:#?}");
    assert!(main_log.iter().all(|l| l["content_type"] == "application/json"));

    // 500, 500, 200: the same webhook-id three times.
    rx.wait(&s, "the flaky endpoint's third attempt", |log| log.iter().filter(|l| l["path"] == "/flaky").count() >= 3);
    let flaky_log = rx.at("/flaky");
    let statuses: Vec<u64> = flaky_log.iter().map(|l| l["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses, [500, 500, 200]);
    assert!(flaky_log.iter().all(|l| l["webhook_id"] == flaky_log[0]["webhook_id"]), "{flaky_log:#?}");
    // The third attempt is recorded once its answer is back.
    let path = format!("/v1/webhook-events?endpoint={}&status=delivered", flaky["id"].as_str().unwrap());
    let deadline = Instant::now() + Duration::from_secs(10);
    let events = loop {
        let events = call(&s, "GET", &path, "").json();
        if events["events"].as_array().is_some_and(|e| !e.is_empty()) {
            break events;
        }
        assert!(Instant::now() < deadline, "the delivery was not recorded: {events}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let listed = &events["events"][0];
    assert_eq!(listed["event_id"], flaky_log[0]["webhook_id"]);
    let attempts: Vec<u64> = listed["attempt_log"].as_array().unwrap().iter().map(|a| a["http_status"].as_u64().unwrap()).collect();
    assert_eq!(attempts, [500, 500, 200], "{listed:#}");

    // A 410 disables its endpoint.
    rx.wait(&s, "the 410", |log| log.iter().any(|l| l["path"] == "/gone"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let e = call(&s, "GET", &format!("/v1/webhook-endpoints/{}", gone["id"].as_str().unwrap()), "").json();
        if e["status"] == "disabled" {
            assert_eq!(e["disabled_reason"], "gone");
            break;
        }
        assert!(Instant::now() < deadline, "the endpoint was not disabled: {e}");
        std::thread::sleep(Duration::from_millis(50));
    }

    // A rotation: the next events are signed with both secrets, and each verifies.
    let rotated = call(&s, "POST", &format!("/v1/webhook-endpoints/{}/rotate-secret", main["id"].as_str().unwrap()), "");
    assert_eq!(rotated.status, 200, "{rotated:?}");
    let fresh = rotated.json()["secret"].clone();
    assert_ne!(fresh, main["secret"]);
    rx.write("secrets.json", &secrets(vec![&main["secret"], &fresh]));
    let cgid = click_bob(&s, "198.51.100.8");
    convert(&s, "order-2", &cgid);
    rx.wait(&s, "two more events at /main", |log| log.iter().filter(|l| l["path"] == "/main").count() >= 5);
    let after: Vec<Value> = rx.at("/main").into_iter().skip(3).collect();
    assert!(after.iter().all(|l| l["signatures"] == 2 && l["verified"] == json!([true, true])), "{after:#?}");
    assert!(all_verified(&rx.log()), "a request did not verify: {:#?}", rx.log());
    assert_eq!(rx.at("/gone").len(), 1, "nothing more went to the disabled endpoint");

    // A replay from the CLI sends /main's events again under their ids.
    let since = (stream::now_ms() - 600_000).to_string();
    let (code, out, err) = s.cli(&["webhooks", "replay", "--endpoint", main["id"].as_str().unwrap(), "--since", &since]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(serde_json::from_str::<Value>(out.trim()).unwrap()["deliveries"], 5, "{out}");
    rx.wait(&s, "the replay", |log| log.iter().filter(|l| l["path"] == "/main").count() >= 10);
    let ids =
        |lines: &[Value]| lines.iter().map(|l| l["webhook_id"].as_str().unwrap().to_string()).collect::<std::collections::BTreeSet<_>>();
    let main_log = rx.at("/main");
    assert_eq!(ids(&main_log[..5]), ids(&main_log[5..]), "a replay keeps each event's id");
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.metric("clickgate_webhook_deliveries_total{outcome=\"delivered\"}") < 11.0 {
        assert!(Instant::now() < deadline, "the deliveries were not counted:\n{}", s.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(s.metric("clickgate_webhook_deliveries_total{outcome=\"gone\"}"), 1.0);
    assert_eq!(s.metric("clickgate_webhook_endpoints_disabled"), 1.0);

    // Enabled again, the gone endpoint is told since when it missed events, and a replay
    // from then sends it order-2's conversion, which fan-out passed it by.
    let enabled = call(&s, "POST", &format!("/v1/webhook-endpoints/{}/enable", gone["id"].as_str().unwrap()), "");
    assert_eq!(enabled.status, 200, "{enabled:?}");
    let enabled = enabled.json();
    assert_eq!((enabled["status"].as_str(), enabled["disabled_reason"].as_str()), (Some("enabled"), None), "{enabled}");
    let since = enabled["disabled_since_ms"].as_u64().expect("disabled_since_ms").to_string();
    let (code, out, err) = s.cli(&["webhooks", "replay", "--endpoint", gone["id"].as_str().unwrap(), "--since", &since]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(serde_json::from_str::<Value>(out.trim()).unwrap()["deliveries"], 1, "{out}");
    rx.wait(&s, "the replay to the enabled endpoint", |log| log.iter().filter(|l| l["path"] == "/gone").count() >= 2);
    let gone_log = rx.at("/gone");
    assert_eq!((gone_log[1]["status"].as_u64(), gone_log[1]["type"].as_str()), (Some(200), Some("conversion.attributed")), "{gone_log:#?}");
    assert_ne!(gone_log[0]["webhook_id"], gone_log[1]["webhook_id"], "the replayed event is order-2's, not the one the 410 answered");
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.metric("clickgate_webhook_endpoints_disabled") != 0.0 {
        assert!(Instant::now() < deadline, "the endpoint still counts as disabled:\n{}", s.log());
        std::thread::sleep(Duration::from_millis(50));
    }

    // A payout: a run sends bob's approved commissions as a manual payout (payout.sent), and
    // confirming the run pays it (payout.paid).
    let payouts = register(&s, &rx.url("/payouts"), &["payout.sent", "payout.paid"]);
    let mut all = secrets(vec![&main["secret"], &fresh]);
    all["/payouts"] = json!([payouts["secret"]]);
    rx.write("secrets.json", &all);
    let (code, _, err) = s.cli(&["program", "set-payout", "--id", "demo", "--payout-threshold-minor", "100", "--payout-schedule", "off"]);
    assert_eq!(code, 0, "{err}");
    let approved = call(&s, "POST", "/v1/commissions/approve", "");
    assert_eq!(approved.status, 200, "{approved:?}");
    let run = call(&s, "POST", "/v1/payout-runs", "{}");
    assert_eq!((run.status, run.json()["sent"]["count"].as_u64()), (201, Some(1)), "{run:?}");
    let run_id = run.json()["run_id"].as_str().unwrap().to_string();
    let done = call(&s, "POST", &format!("/v1/payout-runs/{run_id}/confirm"), "{}");
    assert_eq!((done.status, done.json()["paid"]["count"].as_u64()), (200, Some(1)), "{done:?}");
    rx.wait(&s, "payout.sent and payout.paid", |log| log.iter().filter(|l| l["path"] == "/payouts").count() >= 2);
    let payout_log = rx.at("/payouts");
    let mut kinds: Vec<&str> = payout_log.iter().map(|l| l["type"].as_str().unwrap()).collect();
    kinds.sort();
    assert_eq!(kinds, ["payout.paid", "payout.sent"], "{payout_log:#?}");
    assert!(all_verified(&payout_log), "{payout_log:#?}");
}
