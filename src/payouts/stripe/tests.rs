use super::*;
use crate::model::Currency;

fn check(status: u16, body: &str, expected: Answer) {
    assert_eq!(classify(status, body.as_bytes()), expected, "{status} {body}");
}

fn stripe_error(code: &str, message: &str) -> String {
    serde_json::json!({"error": {"type": "invalid_request_error", "code": code, "message": message}}).to_string()
}

#[test]
fn answers_are_classified() {
    check(200, r#"{"id":"tr_1PQ9abcXYZ","object":"transfer"}"#, Answer::Paid("tr_1PQ9abcXYZ".into()));
    check(200, r#"{"id":"po_1"}"#, Answer::Unknown(r#"Stripe answered 200 without a transfer id: "{\"id\":\"po_1\"}""#.into()));
    check(200, r#"{"id":"tr_"}"#, Answer::Unknown(r#"Stripe answered 200 without a transfer id: "{\"id\":\"tr_\"}""#.into()));
    check(200, "", Answer::Unknown("Stripe answered 200 without a transfer id: an empty body".into()));
    check(400, &stripe_error("balance_insufficient", "No funds."), Answer::Insufficient("No funds.".into()));
    check(
        400,
        &stripe_error("resource_missing", "No such destination: 'acct_1'"),
        Answer::Refused { status: 400, code: Some("resource_missing".into()), message: "No such destination: 'acct_1'".into() },
    );
    // balance_insufficient means the balance only on a 400.
    check(
        402,
        &stripe_error("balance_insufficient", "x"),
        Answer::Refused { status: 402, code: Some("balance_insufficient".into()), message: "x".into() },
    );
    check(
        401,
        r#"{"error":{"message":"Invalid API Key provided: sk_test_****1234"}}"#,
        Answer::Refused { status: 401, code: None, message: "Invalid API Key provided: sk_test_****1234".into() },
    );
    check(404, "<html>nope</html>", Answer::Refused { status: 404, code: None, message: "\"<html>nope</html>\"".into() });
    for status in [409, 429, 500, 502, 503, 599] {
        assert!(matches!(classify(status, b"{}"), Answer::Retry(_)), "{status}");
    }
    check(500, &stripe_error("api_error", "Oops."), Answer::Retry("Stripe answered 500: Oops.".into()));
    check(302, "", Answer::Unknown("Stripe answered an unexpected 302: an empty body".into()));
    assert!(matches!(classify(600, b""), Answer::Unknown(_)));
}

#[test]
fn backoff_doubles_up_to_its_cap_with_jitter_in_the_upper_half() {
    assert_eq!(backoff_ms(0, 500, 8_000, 0.0), 250);
    assert_eq!(backoff_ms(0, 500, 8_000, 1.0), 500);
    assert_eq!(backoff_ms(1, 500, 8_000, 1.0), 1_000);
    assert_eq!(backoff_ms(3, 500, 8_000, 0.5), 3_000);
    assert_eq!(backoff_ms(4, 500, 8_000, 1.0), 8_000);
    assert_eq!(backoff_ms(40, 500, 8_000, 1.0), 8_000);
    assert_eq!(backoff_ms(u32::MAX, u64::MAX, 8_000, 0.0), 4_000);
    assert_eq!(backoff_ms(2, 500, 8_000, 7.0), 2_000, "jitter is clamped");
    assert_eq!(backoff_ms(0, 0, 8_000, 1.0), 0);
}

#[test]
fn the_form_is_encoded_as_stripe_reads_it() {
    let account = StripeAccount::parse("acct_1Bob").unwrap();
    let req =
        PayoutRequest::new("po_r&1", "run=1", "bob+x", Currency::parse("EUR").unwrap(), 250, Destination::Stripe(account.clone())).unwrap();
    assert_eq!(
        form_body(&req, &account),
        "amount=250&currency=eur&destination=acct_1Bob&transfer_group=run%3D1&metadata%5Bpayout_id%5D=po_r%261&metadata%5Bpartner%5D=bob%2Bx"
    );
}

#[test]
fn secret_keys_are_checked_and_never_shown() {
    for good in ["sk_test_abc", "sk_live_51H", "rk_live_x"] {
        assert!(SecretKey::new(good).is_ok(), "{good}");
    }
    for bad in ["", "sk_", "pk_test_abc", "sk_test abc", "sk_test_\n", "whsec_x"] {
        assert!(SecretKey::new(bad).is_err(), "{bad:?}");
    }
    let key = SecretKey::new("sk_test_supersecret").unwrap();
    assert_eq!(format!("{key:?}"), "SecretKey(redacted)");
    assert!(!StripeError::SecretKey.to_string().contains("supersecret"));
}

#[test]
fn api_bases_are_checked() {
    let build = |base: &str| {
        StripeClient::new(StripeConfig { api_base: base.into(), ..StripeConfig::default() }, SecretKey::new("sk_test_x").unwrap())
    };
    for good in [DEFAULT_API_BASE, "http://127.0.0.1:12111", "https://stripe-proxy.internal:8443/stripe/", "http://[::1]:8080"] {
        assert!(build(good).is_ok(), "{good}");
    }
    for bad in [
        "",
        "api.stripe.com",
        "ftp://api.stripe.com",
        "https://user:pw@api.stripe.com",
        "https://api.stripe.com/?x=1",
        "https://api.stripe.com/#f",
    ] {
        assert!(matches!(build(bad), Err(StripeError::ApiBase { .. })), "{bad:?}");
    }
}

#[test]
fn the_version_is_a_dated_stripe_version() {
    let b = STRIPE_VERSION.as_bytes();
    assert!(b.len() == 10 && b[4] == b'-' && b[7] == b'-', "{STRIPE_VERSION}");
}
