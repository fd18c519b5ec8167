use super::*;

/// Parses `input` as a JSON value and compares the outcome, error text and all.
fn check(input: &str, expected: Result<u64, &str>) {
    let value: Value = serde_json::from_str(input).unwrap_or_else(|e| panic!("{input} is not JSON: {e}"));
    let got = unix_ms(&value).map_err(|e| e.to_string());
    assert_eq!(got.as_ref().copied().map_err(String::as_str), expected, "{input}");
}

const SECONDS: &str = "looks like Unix seconds: give Unix milliseconds or RFC 3339 text \
                       (an integer below 100000000000, 1973-03-03 in milliseconds, is refused)";
const NOT_A_TIME: &str = "expected Unix milliseconds (a non-negative integer) or an RFC 3339 string, got";

#[test]
fn rfc3339_with_an_offset() {
    check(r#""2026-11-22T10:00:00Z""#, Ok(1_795_341_600_000));
    check(r#""2026-11-22T10:00:00z""#, Ok(1_795_341_600_000));
    // RFC 3339 (section 5.6's note) lets a space stand for the T.
    check(r#""2026-11-22 10:00:00Z""#, Ok(1_795_341_600_000));
    check(r#""2026-11-22T11:00:00+01:00""#, Ok(1_795_341_600_000));
    check(r#""2026-11-22T04:30:00-05:30""#, Ok(1_795_341_600_000));
    check(r#""2026-11-22T10:00:00-00:00""#, Ok(1_795_341_600_000));
    check(r#""2026-11-22T10:00:00.5Z""#, Ok(1_795_341_600_500));
    check(r#""2026-11-22T10:00:00.123999Z""#, Ok(1_795_341_600_123));
    // RFC 3339 text is never ambiguous, so early times are fine as text.
    check(r#""1970-01-01T00:00:00Z""#, Ok(0));
    check(r#""1970-01-01T01:00:00.001+01:00""#, Ok(1));
}

#[test]
fn integers_are_unix_milliseconds() {
    check("1795341600000", Ok(1_795_341_600_000));
    check("1763800000123", Ok(1_763_800_000_123));
    check("100000000000", Ok(UNIX_MS_MIN));
    check("18446744073709551615", Ok(u64::MAX));
}

#[test]
fn integers_that_look_like_seconds_are_refused() {
    check("1763800000", Err(&format!("1763800000 {SECONDS}")));
    check("99999999999", Err(&format!("99999999999 {SECONDS}")));
    check("1", Err(&format!("1 {SECONDS}")));
    check("0", Err(&format!("0 {SECONDS}")));
}

#[test]
fn negative_fractional_and_other_values_are_refused() {
    check("-1", Err(&format!("{NOT_A_TIME} -1")));
    check("-1795341600000", Err(&format!("{NOT_A_TIME} -1795341600000")));
    check("1763800000.5", Err(&format!("{NOT_A_TIME} 1763800000.5")));
    check("1795341600000.0", Err(&format!("{NOT_A_TIME} 1795341600000.0")));
    check("1.7953416e12", Err(&format!("{NOT_A_TIME} 1795341600000.0")));
    check("true", Err(&format!("{NOT_A_TIME} a boolean")));
    check("null", Err(&format!("{NOT_A_TIME} null")));
    check("[1795341600000]", Err(&format!("{NOT_A_TIME} an array")));
    check(r#"{"ms":1795341600000}"#, Err(&format!("{NOT_A_TIME} an object")));
}

#[test]
fn text_that_is_not_rfc3339_is_refused() {
    check(r#""yesterday""#, Err(r#""yesterday" is not RFC 3339: the 'year' component could not be parsed"#));
    check(r#""""#, Err(r#""" is not RFC 3339: the 'year' component could not be parsed"#));
    check(r#""1795341600000""#, Err(r#""1795341600000" is not RFC 3339: a character literal was not valid"#));
    check(r#""2026-11-22""#, Err(r#""2026-11-22" is not RFC 3339: the 'separator' component could not be parsed"#));
    check(r#""2026-11-22T10:00:00""#, Err(r#""2026-11-22T10:00:00" is not RFC 3339: the 'offset hour' component could not be parsed"#));
}

#[test]
fn times_before_1970_are_refused() {
    check(r#""1969-12-31T23:59:59.999Z""#, Err(r#""1969-12-31T23:59:59.999Z" is before 1970"#));
    check(r#""1969-12-31T23:59:59.9999Z""#, Err(r#""1969-12-31T23:59:59.9999Z" is before 1970"#));
    check(r#""1970-01-01T00:59:59+01:00""#, Err(r#""1970-01-01T00:59:59+01:00" is before 1970"#));
    check(r#""0001-01-01T00:00:00Z""#, Err(r#""0001-01-01T00:00:00Z" is before 1970"#));
}
