//! `clickgate attribute` end to end: the real binary, journeys on stdin, shares on stdout.

use std::io::{Read, Write};
use std::process::{Command, Stdio};

/// Runs `clickgate attribute` with `args` on `input`; returns the exit code, stdout and stderr.
fn attribute(args: &[&str], input: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_clickgate"))
        .arg("attribute")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn clickgate");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_owned();
    // Written from a thread so a large input cannot deadlock against a full stdout pipe.
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("wait for clickgate");
    writer.join().unwrap().expect("write stdin");
    (out.status.code().unwrap_or(-1), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

const JOURNEY: &str = r#"{"id":"o-1","conversion_ts":"2026-11-22T12:00:00Z","amount_minor":1001,"touches":[
    {"partner":"p2","ts":"2026-11-21T12:00:00Z"},
    {"partner":"p1","ts":"2026-11-15T12:00:00Z"},
    {"partner":"p2","ts":1795348800000}]}"#;

fn one_line(json: &str) -> String {
    json.lines().map(str::trim).collect::<String>() + "\n"
}

#[test]
fn every_model_splits_a_journey_exactly() {
    // Touches, in time: p1 a week before, p2 a day before, p2 at the conversion
    // (1795348800000 ms is 2026-11-22T12:00:00Z).
    let cases = [
        ("last_click", r#"[{"partner":"p1","amount_minor":0},{"partner":"p2","amount_minor":1001}]"#),
        ("first_click", r#"[{"partner":"p1","amount_minor":1001},{"partner":"p2","amount_minor":0}]"#),
        // 333.67 each: the later touches get the two odd units.
        ("linear", r#"[{"partner":"p1","amount_minor":333},{"partner":"p2","amount_minor":668}]"#),
        // 400.4, 200.2, 400.4.
        ("position_based", r#"[{"partner":"p1","amount_minor":400},{"partner":"p2","amount_minor":601}]"#),
        // Weights 0.5, 0.5^(1/7) = 0.906, 1 (half-life 168 h): p1 1001 * 0.5 / 2.406.
        ("time_decay", r#"[{"partner":"p1","amount_minor":208},{"partner":"p2","amount_minor":793}]"#),
    ];
    for (model, shares) in cases {
        let (code, out, err) = attribute(&["--model", model], &one_line(JOURNEY));
        assert_eq!((code, err.as_str()), (0, ""), "{model}");
        assert_eq!(out, format!("{{\"id\":\"o-1\",\"shares\":{shares}}}\n"), "{model}");
    }
}

#[test]
fn the_half_life_changes_time_decay() {
    // A 24 h half-life: weights 2^-7, 0.5 and 1, so quotas 5.19, 331.94 and 663.88 of 1001;
    // the two leftover units go to the larger remainders, both p2's.
    let (code, out, err) = attribute(&["--model", "time_decay", "--half-life-hours", "24"], &one_line(JOURNEY));
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(out, "{\"id\":\"o-1\",\"shares\":[{\"partner\":\"p1\",\"amount_minor\":5},{\"partner\":\"p2\",\"amount_minor\":996}]}\n");
}

#[test]
fn bad_lines_are_reported_by_number_and_the_rest_still_run() {
    let good = one_line(JOURNEY);
    let input = format!(
        "{good}\n{}\n{}\n{}\n{good}",
        r#"{"id":2,"conversion_ts":1795348800000,"amount_minor":-3,"touches":[]}"#,
        r#"{"id":3,"conversion_ts":1795348800000,"amount_minor":3,"touches":[{"partner":"","ts":1795348800000}]}"#,
        r#"{"id":4,"conversion_ts":1795348800000,"amount_minor":3,"touches":[],"currency":"EUR"}"#,
    );
    let (code, out, err) = attribute(&["--model", "last_click"], &input);
    assert_eq!(code, 1, "a rejected line makes the exit code 1");
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.lines().all(|l| l.starts_with(r#"{"id":"o-1","#)), "{out}");
    let err: Vec<&str> = err.lines().collect();
    assert_eq!(
        err,
        [
            "line 3: amount_minor: must not be negative, got -3",
            "line 4: touches[0].partner: must not be empty",
            "line 5: unknown field `currency`, expected one of `id`, `conversion_ts`, `amount_minor`, `touches`",
        ]
    );
}

#[test]
fn a_time_in_unix_seconds_is_refused_not_misread() {
    // The journey with its conversion time in seconds: as milliseconds it would be 1970-01-21,
    // before every touch, and last_click would still answer; it is refused instead.
    let input = one_line(JOURNEY).replace(r#""conversion_ts":"2026-11-22T12:00:00Z""#, r#""conversion_ts":1795348800"#);
    assert!(input.contains("1795348800,"), "{input}");
    let (code, out, err) = attribute(&["--model", "last_click"], &input);
    assert_eq!((code, out.as_str()), (1, ""));
    assert_eq!(
        err,
        "line 1: conversion_ts: 1795348800 looks like Unix seconds: give Unix milliseconds or RFC 3339 text \
         (an integer below 100000000000, 1973-03-03 in milliseconds, is refused)\n"
    );
}

#[test]
fn refuses_an_unknown_model_or_half_life() {
    let (code, out, err) = attribute(&["--model", "markov"], "");
    assert_eq!((code, out.as_str()), (2, ""));
    assert!(err.contains(r#"--model "markov" is not one of last_click, first_click, linear, time_decay, position_based"#), "{err}");
    let (code, _, err) = attribute(&["--model", "time_decay", "--half-life-hours", "0"], "");
    assert_eq!(code, 2);
    assert!(err.contains("--half-life-hours must be in 0.1..=8760"), "{err}");
}

#[test]
fn a_closed_stdout_ends_quietly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_clickgate"))
        .args(["attribute", "--model", "linear"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn clickgate");
    // Read one line, then hang up, as `| head -1` does.
    let mut stdout = child.stdout.take().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let line = one_line(JOURNEY);
        for _ in 0..200_000 {
            // The child stops reading once its stdout is gone; a broken pipe here is expected.
            if stdin.write_all(line.as_bytes()).is_err() {
                return;
            }
        }
    });
    let mut first = [0u8; 10];
    stdout.read_exact(&mut first).unwrap();
    assert_eq!(&first, br#"{"id":"o-1"#);
    drop(stdout);
    writer.join().unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!((out.status.code(), err.as_str()), (Some(0), ""));
}
