use super::*;

/// Runs `input` through `model` (half-life 1 h) and compares stdout and stderr.
fn check(model: Model, input: &str, expected_out: &str, expected_err: &str) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let rejected = run_with_errors(model, 1.0, input.as_bytes(), &mut out, &mut err).unwrap();
    let (out, err) = (String::from_utf8(out).unwrap(), String::from_utf8(err).unwrap());
    assert_eq!(out, expected_out, "stdout for {input}");
    assert_eq!(err, expected_err, "stderr for {input}");
    assert_eq!(rejected, expected_err.lines().count(), "rejected count for {input}");
}

fn ok(model: Model, input: &str, expected_out: &str) {
    check(model, &format!("{input}\n"), &format!("{expected_out}\n"), "");
}

fn bad(input: &str, why: &str) {
    check(Model::Linear, &format!("{input}\n"), "", &format!("line 1: {why}\n"));
}

// Every integer time is 1_800_000_000_000 ms (2027-01-15T08:00:00Z) plus a small offset, so
// the offsets read as the times: the conversion below is at +10 h.
const T: &str = r#""conversion_ts":1800036000000,"amount_minor":100"#;

#[test]
fn splits_and_sums_per_partner() {
    ok(
        Model::LastClick,
        &format!(r#"{{"id":"o1",{T},"touches":[{{"partner":"a","ts":1800000000001}},{{"partner":"b","ts":1800000000002}}]}}"#),
        r#"{"id":"o1","shares":[{"partner":"a","amount_minor":0},{"partner":"b","amount_minor":100}]}"#,
    );
    ok(
        Model::FirstClick,
        &format!(r#"{{"id":7,{T},"touches":[{{"partner":"a","ts":1800000000001}},{{"partner":"b","ts":1800000000002}}]}}"#),
        r#"{"id":7,"shares":[{"partner":"a","amount_minor":100},{"partner":"b","amount_minor":0}]}"#,
    );
    ok(
        Model::Linear,
        &format!(
            r#"{{"id":"x",{T},"touches":[{{"partner":"a","ts":1800000000001}},{{"partner":"b","ts":1800000000002}},{{"partner":"a","ts":1800000000003}}]}}"#
        ),
        r#"{"id":"x","shares":[{"partner":"a","amount_minor":67},{"partner":"b","amount_minor":33}]}"#,
    );
    ok(
        Model::PositionBased,
        &format!(
            r#"{{"id":"x",{T},"touches":[{{"partner":"a","ts":1800000000001}},{{"partner":"b","ts":1800000000002}},{{"partner":"c","ts":1800000000003}}]}}"#
        ),
        r#"{"id":"x","shares":[{"partner":"a","amount_minor":40},{"partner":"b","amount_minor":20},{"partner":"c","amount_minor":40}]}"#,
    );
    // Ages 1 h and 0 h with a 1 h half-life: one third and two thirds.
    ok(
        Model::TimeDecay,
        &format!(r#"{{"id":"x",{T},"touches":[{{"partner":"a","ts":1800032400000}},{{"partner":"b","ts":1800036000000}}]}}"#),
        r#"{"id":"x","shares":[{"partner":"a","amount_minor":33},{"partner":"b","amount_minor":67}]}"#,
    );
}

#[test]
fn partners_come_in_order_of_their_first_touch_in_time() {
    ok(
        Model::Linear,
        &format!(
            r#"{{"id":1,{T},"touches":[{{"partner":"late","ts":1800000000009}},{{"partner":"early","ts":1800000000001}},{{"partner":"late","ts":1800000000002}}]}}"#
        ),
        r#"{"id":1,"shares":[{"partner":"early","amount_minor":33},{"partner":"late","amount_minor":67}]}"#,
    );
}

#[test]
fn accepts_rfc3339_times_and_echoes_ids() {
    let input = r#"{"id":{"n":1},"conversion_ts":"1970-01-01T10:00:00Z","amount_minor":3,"touches":[{"partner":"a","ts":"1970-01-01T10:00:00+01:00"},{"partner":"b","ts":"1970-01-01T09:59:59.9999Z"}]}"#;
    bad(input, "id: must be a string or a number, got an object");
    let input = input.replace(r#"{"n":1}"#, "12345678901234567890");
    // The +01:00 touch is at 9:00 UTC, an hour before the 9:59:59.999 one.
    ok(
        Model::TimeDecay,
        &input,
        r#"{"id":12345678901234567890,"shares":[{"partner":"a","amount_minor":1},{"partner":"b","amount_minor":2}]}"#,
    );
    ok(Model::LastClick, r#"{"id":"e","conversion_ts":1800000000005,"amount_minor":9,"touches":[]}"#, r#"{"id":"e","shares":[]}"#);
}

const SECONDS: &str = "looks like Unix seconds: give Unix milliseconds or RFC 3339 text \
                       (an integer below 100000000000, 1973-03-03 in milliseconds, is refused)";

#[test]
fn names_the_field_of_a_bad_line() {
    bad("{", "invalid JSON: EOF while parsing an object at column 1");
    bad("garbage", "invalid JSON: expected value at column 1");
    bad(
        &format!(r#"{{"id":1,{T},"touches":[],"extra":1}}"#),
        "unknown field `extra`, expected one of `id`, `conversion_ts`, `amount_minor`, `touches`",
    );
    bad(r#"{"id":1,"conversion_ts":1800000000001,"touches":[]}"#, "missing field `amount_minor`");
    bad(r#"{"id":null,"conversion_ts":1800000000001,"amount_minor":1,"touches":[]}"#, "id: must be a string or a number, got null");
    bad(
        r#"{"id":1,"conversion_ts":-1,"amount_minor":1,"touches":[]}"#,
        "conversion_ts: expected Unix milliseconds (a non-negative integer) or an RFC 3339 string, got -1",
    );
    bad(
        r#"{"id":1,"conversion_ts":1.5,"amount_minor":1,"touches":[]}"#,
        "conversion_ts: expected Unix milliseconds (a non-negative integer) or an RFC 3339 string, got 1.5",
    );
    bad(r#"{"id":1,"conversion_ts":1763800000,"amount_minor":1,"touches":[]}"#, &format!("conversion_ts: 1763800000 {SECONDS}"));
    bad(
        r#"{"id":1,"conversion_ts":1800000000001,"amount_minor":1,"touches":[{"partner":"a","ts":1763800000}]}"#,
        &format!("touches[0].ts: 1763800000 {SECONDS}"),
    );
    bad(
        r#"{"id":1,"conversion_ts":"1969-12-31T23:59:59Z","amount_minor":1,"touches":[]}"#,
        r#"conversion_ts: "1969-12-31T23:59:59Z" is before 1970"#,
    );
    bad(
        r#"{"id":1,"conversion_ts":"yesterday","amount_minor":1,"touches":[]}"#,
        r#"conversion_ts: "yesterday" is not RFC 3339: the 'year' component could not be parsed"#,
    );
    bad(r#"{"id":1,"conversion_ts":1800000000001,"amount_minor":-5,"touches":[]}"#, "amount_minor: must not be negative, got -5");
    bad(
        r#"{"id":1,"conversion_ts":1800000000001,"amount_minor":1.5,"touches":[]}"#,
        "amount_minor: must be an integer number of minor units, got 1.5",
    );
    bad(
        r#"{"id":1,"conversion_ts":1800000000001,"amount_minor":"10","touches":[]}"#,
        "amount_minor: must be an integer number of minor units, got a string",
    );
    bad(
        r#"{"id":1,"conversion_ts":1800000000001,"amount_minor":9223372036854775808,"touches":[]}"#,
        "amount_minor: 9223372036854775808 is larger than 9223372036854775807",
    );
    bad(
        r#"{"id":1,"conversion_ts":1800000000001,"amount_minor":1,"touches":{}}"#,
        r#"touches: must be an array of {"partner", "ts"} objects, got an object"#,
    );
    bad(
        r#"{"id":1,"conversion_ts":1800000000001,"amount_minor":1,"touches":[{"partner":"","ts":1800000000001}]}"#,
        "touches[0].partner: must not be empty",
    );
    bad(
        r#"{"id":1,"conversion_ts":1800000000001,"amount_minor":1,"touches":[{"partner":"a","ts":1800000000001},{"partner":5,"ts":1800000000001}]}"#,
        "touches[1].partner: must be a string, got a number",
    );
    bad(
        r#"{"id":1,"conversion_ts":1800000000001,"amount_minor":1,"touches":[{"partner":"a","ts":true}]}"#,
        "touches[0].ts: expected Unix milliseconds (a non-negative integer) or an RFC 3339 string, got a boolean",
    );
    bad(
        r#"{"id":1,"conversion_ts":1800000000001,"amount_minor":1,"touches":[{"partner":"a","ts":1800000000001,"tz":0}]}"#,
        "touches[0]: unknown field `tz`, expected `partner` or `ts`",
    );
    bad(r#"{"id":1,"conversion_ts":1800000000001,"amount_minor":1,"touches":[{"partner":"a"}]}"#, "touches[0]: missing field `ts`");
    bad(
        r#"{"id":1,"conversion_ts":1800000000001,"amount_minor":1,"touches":[7]}"#,
        r#"touches[0]: must be an object with "partner" and "ts", got a number"#,
    );
}

#[test]
fn bad_lines_are_counted_and_the_rest_still_run() {
    let good = r#"{"id":1,"conversion_ts":1800000000001,"amount_minor":5,"touches":[{"partner":"a","ts":1800000000001}]}"#;
    let input = format!("{good}\n\n  \nnope\r\n{good}\r\n{{}}\n{good}");
    let line = r#"{"id":1,"shares":[{"partner":"a","amount_minor":5}]}"#;
    check(
        Model::LastClick,
        &input,
        &format!("{line}\n{line}\n{line}\n"),
        "line 4: invalid JSON: expected ident at column 2\nline 6: missing field `id`\n",
    );
}

#[test]
fn refuses_an_overlong_line_and_goes_on() {
    let good = r#"{"id":1,"conversion_ts":1800000000001,"amount_minor":5,"touches":[]}"#;
    let long = "x".repeat(LINE_BYTES_MAX + 10);
    let input = format!("{good}\n{long}\n{good}\n{long}");
    let line = r#"{"id":1,"shares":[]}"#;
    let why = format!("longer than {LINE_BYTES_MAX} bytes");
    check(Model::LastClick, &input, &format!("{line}\n{line}\n"), &format!("line 2: {why}\nline 4: {why}\n"));
}

#[test]
fn refuses_too_many_touches() {
    let touches = vec![r#"{"partner":"a","ts":1800000000001}"#; TOUCHES_MAX + 1].join(",");
    bad(
        &format!(r#"{{"id":1,{T},"touches":[{touches}]}}"#),
        &format!("touches: {} touches, more than the limit of {TOUCHES_MAX}", TOUCHES_MAX + 1),
    );
}

/// A writer whose reader has gone away.
struct ClosedPipe;

impl Write for ClosedPipe {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::ErrorKind::BrokenPipe.into())
    }
    fn flush(&mut self) -> io::Result<()> {
        Err(io::ErrorKind::BrokenPipe.into())
    }
}

#[test]
fn a_closed_output_ends_quietly() {
    let good = r#"{"id":1,"conversion_ts":1800000000001,"amount_minor":5,"touches":[]}"#;
    let input = format!("{good}\n").repeat(100_000);
    let mut err = Vec::new();
    let rejected = run_with_errors(Model::Linear, 1.0, input.as_bytes(), ClosedPipe, &mut err).unwrap();
    assert_eq!((rejected, err.len()), (0, 0));
}
