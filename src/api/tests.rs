use super::*;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().build().unwrap()
}

#[test]
fn a_failed_blocking_read_is_a_500_with_the_usual_body() {
    let err = rt().block_on(read_blocking("report", || -> u32 { panic!("the reader broke") })).unwrap_err();
    assert_eq!((err.status, err.code), (StatusCode::INTERNAL_SERVER_ERROR, "internal"));
    let r = error_response(&err);
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.headers()[CONTENT_TYPE], "application/json");
    assert!(matches!(outcome(r.status(), false), ApiOutcome::Error));
    let body = rt().block_on(r.into_body().collect()).unwrap().to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["code"], "internal");
    assert_eq!(v["error"]["message"], "the report read failed; retry later");
    assert!(v["error"].get("field").is_none());
    assert!(!String::from_utf8_lossy(&body).contains("panicked"), "the panic stays in the log: {v}");
}

#[test]
fn a_blocking_read_that_finishes_returns_its_value() {
    assert_eq!(rt().block_on(read_blocking("conversion", || 7)).unwrap(), 7);
}

#[test]
fn the_conversion_request_hash_is_pinned() {
    // SHA-256 of the canonical JSON of the conversion in core::conversions' tests; a stored
    // Idempotency-Key only replays if its request hashes to the same bytes.
    let fingerprint = hex32("90ac0d55388fb56652e3c2b46e9db61b5d92ad2efac7f8d906169a10de13380f").unwrap();
    assert_eq!(
        request_hash("POST /v1/conversions", &fingerprint),
        hex32("730374c3d7aa342ec026863c085414dcb780d29283e14c09a8249de9040894a5").unwrap()
    );
}
