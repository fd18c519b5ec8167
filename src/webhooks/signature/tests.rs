use super::*;

// The known-answer vector is the one the Standard Webhooks test suite pins in every reference
// library (libraries/python/tests/test_webhooks.py `test_sign_function`, and the JavaScript,
// Go and PHP suites' "sign function works"), and that standardwebhooks 1.1.0 reproduces.
const KEY: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const TIMESTAMP_S: u64 = 1_614_265_330;
const PAYLOAD: &[u8] = br#"{"test": 2432232314}"#;
const EXPECTED: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
const NOW_MS: u64 = TIMESTAMP_S * 1000;

fn key() -> Secret {
    Secret::parse(KEY).unwrap()
}

fn headers_with(signature: &str) -> Headers {
    Headers { id: MSG_ID.into(), timestamp: TIMESTAMP_S.to_string(), signature: signature.into() }
}

#[test]
fn the_standard_webhooks_vector_signs_to_the_published_signature() {
    assert_eq!(sign(&[&key()], MSG_ID, TIMESTAMP_S, PAYLOAD).unwrap(), EXPECTED);
    let h = headers(&[&key()], MSG_ID, NOW_MS + 999, PAYLOAD).unwrap();
    assert_eq!(h, headers_with(EXPECTED), "milliseconds floor to the second");
}

#[test]
fn verify_follows_the_standard_webhooks_suite() {
    let check = |signature: &str, want: Result<(), SignatureError>| {
        assert_eq!(verify(&[&key()], &headers_with(signature), PAYLOAD, NOW_MS), want, "{signature}");
    };
    check(EXPECTED, Ok(()));
    // test_invalid_signature_raises_error: the published signature with its last byte changed.
    check("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=", Err(SignatureError::NoMatch));
    // "invalid signature throws error" and "partial signature throws error".
    check("v1,dawfeoifkpqwoekfpqoekf", Err(SignatureError::NoMatch));
    check(&EXPECTED[..8], Err(SignatureError::NoMatch));
    check("v1,", Err(SignatureError::NoMatch));
    check("", Err(SignatureError::NoMatch));
    // test_multi_sig_payload_is_valid: unknown versions and other signatures are skipped.
    let multi = format!(
        "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= {EXPECTED} v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="
    );
    check(&multi, Ok(()));
    // The right bytes under another version are not a v1 signature.
    check(&EXPECTED.replace("v1,", "v1a,"), Err(SignatureError::NoMatch));
    check(&EXPECTED.replace("v1,", "v2,"), Err(SignatureError::NoMatch));
}

#[test]
fn verify_checks_the_timestamp_within_five_minutes() {
    let check = |now_ms: u64, want: Result<(), SignatureError>| {
        assert_eq!(verify(&[&key()], &headers_with(EXPECTED), PAYLOAD, now_ms), want, "now {now_ms}");
    };
    check(NOW_MS, Ok(()));
    check(NOW_MS + 300_000, Ok(()));
    check(NOW_MS + 300_999, Ok(()));
    check(NOW_MS + 301_000, Err(SignatureError::TooOld));
    check(NOW_MS - 300_000, Ok(()));
    check(NOW_MS - 301_000, Err(SignatureError::TooNew));
    check(0, Err(SignatureError::TooNew));
    check(u64::MAX, Err(SignatureError::TooOld));
}

#[test]
fn verify_refuses_malformed_headers() {
    let check = |id: &str, timestamp: &str, want: SignatureError| {
        let h = Headers { id: id.into(), timestamp: timestamp.into(), signature: EXPECTED.into() };
        assert_eq!(verify(&[&key()], &h, PAYLOAD, NOW_MS), Err(want), "{id:?} {timestamp:?}");
    };
    check(MSG_ID, "hello", SignatureError::Timestamp);
    check(MSG_ID, "", SignatureError::Timestamp);
    check(MSG_ID, "1614265330.0", SignatureError::Timestamp);
    check(MSG_ID, "-1614265330", SignatureError::Timestamp);
    check(MSG_ID, " 1614265330", SignatureError::Timestamp);
    check(MSG_ID, "99999999999999999999999", SignatureError::Timestamp);
    check("", "1614265330", SignatureError::MsgId);
    check("msg.1", "1614265330", SignatureError::MsgId);
    check("msg 1", "1614265330", SignatureError::MsgId);
    check("msg\n1", "1614265330", SignatureError::MsgId);
    check(&"m".repeat(MSG_ID_BYTES_MAX + 1), "1614265330", SignatureError::MsgId);
}

#[test]
fn a_signature_covers_id_timestamp_and_payload() {
    let good = headers(&[&key()], MSG_ID, NOW_MS, PAYLOAD).unwrap();
    assert_eq!(verify(&[&key()], &good, br#"{"test": 2432232315}"#, NOW_MS), Err(SignatureError::NoMatch));
    let other_id = Headers { id: "msg_other".into(), ..good.clone() };
    assert_eq!(verify(&[&key()], &other_id, PAYLOAD, NOW_MS), Err(SignatureError::NoMatch));
    let other_ts = Headers { timestamp: (TIMESTAMP_S + 1).to_string(), ..good.clone() };
    assert_eq!(verify(&[&key()], &other_ts, PAYLOAD, NOW_MS), Err(SignatureError::NoMatch));
    let other_key = Secret::generate().unwrap();
    assert_eq!(verify(&[&other_key], &good, PAYLOAD, NOW_MS), Err(SignatureError::NoMatch));
}

#[test]
fn during_a_rotation_both_secrets_sign_and_either_verifies() {
    let (old, new) = (key(), Secret::generate().unwrap());
    let rotated_ms = NOW_MS - 3_600_000;
    let signing = signing_secrets(&new, Some((&old, rotated_ms)), NOW_MS);
    assert_eq!(signing.len(), 2);
    let h = headers(&signing, MSG_ID, NOW_MS, PAYLOAD).unwrap();
    assert_eq!(h.signature.split(' ').count(), 2);
    assert!(h.signature.ends_with(EXPECTED), "the old secret's signature is the published one: {}", h.signature);
    assert_eq!(verify(&[&old], &h, PAYLOAD, NOW_MS), Ok(()));
    assert_eq!(verify(&[&new], &h, PAYLOAD, NOW_MS), Ok(()));

    let check = |now_ms: u64, want: usize| assert_eq!(signing_secrets(&new, Some((&old, rotated_ms)), now_ms).len(), want, "{now_ms}");
    check(rotated_ms, 2);
    check(rotated_ms + ROTATION_OVERLAP_MS - 1, 2);
    check(rotated_ms + ROTATION_OVERLAP_MS, 1);
    assert_eq!(signing_secrets(&new, None, NOW_MS), vec![&new]);
}

#[test]
fn secrets_generate_parse_and_never_print() {
    let s = Secret::generate().unwrap();
    let whsec = s.to_whsec();
    assert!(whsec.starts_with("whsec_") && whsec.len() == 6 + 44, "{whsec}");
    assert_eq!(Secret::parse(&whsec).unwrap(), s);
    assert_ne!(Secret::generate().unwrap(), s, "two secrets from the OS differ");
    let debug = format!("{s:?}");
    assert!(!debug.contains(&whsec[6..]) && !debug.contains(&whsec[6..12]), "{debug}");
    assert!(!format!("{:?}", key()).contains("MfKQ9r8G"));
    assert_eq!(key().to_whsec(), KEY, "the published secret round-trips");

    let check = |input: &str, want: SignatureError| assert_eq!(Secret::parse(input), Err(want), "{input}");
    check("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", SignatureError::SecretPrefix);
    check("whsk_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", SignatureError::SecretPrefix);
    check("whsec_MfKQ9r8G!YqrTwjUPD8ILPZIo2LaLaSw", SignatureError::SecretEncoding);
    check("whsec_", SignatureError::SecretLength { len: 0 });
    check("whsec_AAAA", SignatureError::SecretLength { len: 3 });
    check(&format!("whsec_{}", STANDARD.encode([7u8; 65])), SignatureError::SecretLength { len: 65 });
    // Unpadded base64, as the reference libraries accept it.
    let unpadded = whsec.trim_end_matches('=');
    assert_eq!(Secret::parse(unpadded).unwrap(), s);
}

#[test]
fn signing_needs_a_secret_and_a_clean_id() {
    assert_eq!(sign(&[], MSG_ID, TIMESTAMP_S, PAYLOAD), Err(SignatureError::NoSecret));
    assert_eq!(sign(&[&key()], "msg_a.b", TIMESTAMP_S, PAYLOAD), Err(SignatureError::MsgId));
}
