//! The API's OpenAPI document against the live API: PyPI `openapi-spec-validator` validates
//! `/openapi.json` as OpenAPI 3.1, every documented operation reaches a handler (and every
//! other method on a documented path is the router's "no route"), and PyPI `schemathesis`
//! sends generated requests with an admin key and with a partner key, checking that none is
//! answered 5xx and that every answer keeps to the document (status, content type, headers,
//! schema). Both tools are installed by tests/openapi/fetch.sh into a venv under the target dir.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::*;
use serde_json::{json, Value};

const KEY: &str = "openapi-admin-key-0123";

/// Generated cases per operation in the fuzzing phase: bounded so both runs together take about
/// a minute on two cores.
const MAX_EXAMPLES: &str = "40";

/// Fails the test: the tools cannot run here, and why.
fn unavailable(why: &str) -> ! {
    panic!(
        "this test needs PyPI openapi-spec-validator and schemathesis, installed by tests/openapi/fetch.sh into a venv \
         under the target dir: {why}\nInstall python3 with its venv module and pip and let the first run reach the \
         package registry, or run cargo test without --include-ignored: it lists this test as ignored"
    )
}

fn venv_python() -> PathBuf {
    pinned_venv_python("tests/openapi/fetch.sh", "CLICKGATE_OPENAPI_VENV", "openapi-venv", unavailable)
}

/// Limits high enough that generated requests are judged on what they ask, not on how many
/// there are; a postback secret, so postbacks are served.
fn config() -> String {
    let api = format!(
        "[api]\nadmin_key = \"{KEY}\"\nkey_requests_per_s = 100000\nkey_burst = 100000\nauth_failures_per_min = 10000\n\
         postback_secret = \"openapi-postback-secret-0123456789\"\n"
    );
    format!("{}{BOB}", fixture_config(&api))
}

fn admin(s: &Server, method: &str, path: &str, body: &str) -> Answer {
    http(s.api, method, path, &[&format!("Authorization: Bearer {KEY}"), "Content-Type: application/json"], body)
}

/// The router's own answer to a route it does not have: no route, or no such action on an
/// object (`/v1/links/{code}/{action}` takes `pause`, `resume` and `expire` only).
fn no_route(a: &Answer) -> bool {
    let body: Option<Value> = serde_json::from_str(&a.body).ok();
    let message = body.as_ref().and_then(|v| v["error"]["message"].as_str().map(str::to_string)).unwrap_or_default();
    a.status == 404 && (message.starts_with("no route for") || message.starts_with("no action"))
}

/// Whether `path` is an instance of the document's `template`.
fn matches_template(template: &str, path: &str) -> bool {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len() && t.iter().zip(&p).all(|(t, p)| t.starts_with('{') || t == p)
}

/// Every documented operation is answered by a handler, and every other method on a
/// documented path is not: the document and the router agree both ways on the live server.
fn routes_agree(s: &Server, doc: &Value) -> usize {
    let mut tried = 0;
    for path in doc["paths"].as_object().unwrap().keys() {
        let concrete: String =
            path.split('/').map(|seg| if seg.starts_with('{') { "zz-not-there" } else { seg }).collect::<Vec<_>>().join("/");
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            // A concrete path may also match another template (`/v1/commissions/approve` is
            // `/v1/commissions/{id}` too).
            let documented = doc["paths"]
                .as_object()
                .unwrap()
                .iter()
                .any(|(template, item)| item.get(method.to_ascii_lowercase()).is_some() && matches_template(template, &concrete));
            let body = if matches!(method, "POST" | "PUT" | "PATCH") { "{}" } else { "" };
            let a = admin(s, method, &concrete, body);
            assert!(a.status < 500, "{method} {concrete}: {a:?}");
            assert_eq!(!no_route(&a), documented, "{method} {concrete} (documented: {documented}): {a:?}");
            tried += 1;
        }
    }
    tried
}

/// Runs schemathesis against the live API with `key`; its output on failure.
fn schemathesis(python: &Path, s: &Server, key: &str, dir: &Path, name: &str) {
    let bin = python.parent().unwrap().join("schemathesis");
    let started = Instant::now();
    let out = Command::new(bin)
        .current_dir(dir)
        .args(["run", &format!("http://{}/openapi.json", s.api)])
        .args(["--header", &format!("Authorization: Bearer {key}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance",
        ])
        .args(["--phases", "examples,coverage,fuzzing", "--max-examples", MAX_EXAMPLES, "--seed", "18", "--workers", "2"])
        .args(["--request-timeout", "10", "--no-color", "--report", "junit"])
        .args(["--report-junit-path", &dir.join(format!("{name}.xml")).to_string_lossy()])
        .env("SCHEMATHESIS_HOOKS", "")
        .output()
        .unwrap_or_else(|e| unavailable(&format!("cannot run schemathesis: {e}")));
    let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("schemathesis as {name}: {:.1} s, exit {:?}", started.elapsed().as_secs_f64(), out.status.code());
    assert!(out.status.success(), "schemathesis as {name} found answers that break the document:\n{text}");
    eprintln!(
        "{}",
        text.lines()
            .filter(|l| l.contains("passed") || l.contains("Test cases") || l.contains("API Operations"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
#[ignore = "needs PyPI openapi-spec-validator and schemathesis (tests/openapi/fetch.sh installs them); run with --include-ignored"]
fn the_document_is_valid_and_the_live_api_keeps_to_it() {
    let python = venv_python();
    let s = Server::start(&config());
    let dir = tempfile::tempdir().unwrap();

    let a = http(s.api, "GET", "/openapi.json", &[], "");
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.header("content-type"), Some("application/json"));
    let doc = a.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, &a.body).unwrap();
    let out = Command::new(&python).args(["-m", "openapi_spec_validator", "--schema", "3.1"]).arg(&file).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("OK"), "openapi-spec-validator: {text}");

    // Found by schemathesis: a coupon of an unknown program is `404`, which the document
    // did not list.
    let coupon = admin(&s, "POST", "/v1/coupons", &json!({ "code": "X1", "program": "nope", "partner": "bob" }).to_string());
    assert_eq!(coupon.status, 404, "{coupon:?}");
    assert!(doc["paths"]["/v1/coupons"]["post"]["responses"].get("404").is_some(), "POST /v1/coupons documents no 404");

    let tried = routes_agree(&s, &doc);
    eprintln!("{tried} method and path pairs agree with the document");

    schemathesis(&python, &s, KEY, dir.path(), "admin");

    let made = admin(&s, "POST", "/v1/api-keys", &json!({ "name": "openapi partner", "scope": "partner:bob" }).to_string());
    assert_eq!(made.status, 201, "{made:?}");
    let partner_key = made.json()["secret"].as_str().unwrap().to_string();
    schemathesis(&python, &s, &partner_key, dir.path(), "partner");
    // The partner key is still live: its run was judged on its own scope, not on a revoked key.
    let me = http(s.api, "GET", "/v1/partners/bob", &[&format!("Authorization: Bearer {partner_key}")], "");
    assert_eq!(me.status, 200, "{me:?}");
}
