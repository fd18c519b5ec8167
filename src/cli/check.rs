//! `clickgate check`: replays `{"ip","ua","code","ts"}` lines through the edge's pipeline with
//! `ts` as the clock, and prints each verdict with every reason. Ops use it to answer "why was
//! this click flagged?" and to try rule changes on a real log before deploying them.
//!
//! `ts` is RFC 3339 text with an offset or a non-negative integer of Unix milliseconds, read by
//! `cli::timestamp` exactly as `clickgate attribute` reads its times. An integer below
//! 100,000,000,000 (1973-03-03 in milliseconds) looks like Unix seconds and is refused, so a log
//! in seconds gets an error on every line instead of verdicts at the wrong time.

use std::io::{BufRead, Write};
use std::net::IpAddr;
use std::process::ExitCode;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::timestamp::unix_ms;
use super::{rejected_exit_code, Setup};
use crate::app;
use crate::edge::checks::{Pipeline, Reasons};
use crate::edge::links::LinkTable;
use crate::edge::{judge, Judgement};

/// One input line.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckInput {
    pub ip: IpAddr,
    #[serde(default)]
    pub ua: String,
    pub code: String,
    /// The click's time, the replay's clock: RFC 3339 text or Unix milliseconds, as
    /// `cli::timestamp` reads them (an integer that looks like Unix seconds is refused).
    pub ts: Value,
    /// `GET` (default) or `HEAD`.
    #[serde(default)]
    pub method: Option<String>,
}

/// One output line.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct CheckOutput {
    pub verdict: String,
    pub reasons: Reasons,
    #[serde(skip_serializing_if = "is_empty", default)]
    pub observed: Reasons,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub program: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub partner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub country: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub asn: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub retry_after_ms: Option<u64>,
}

fn is_empty(r: &Reasons) -> bool {
    r.is_empty()
}

/// Evaluates one line. `clock_ms` is the replay clock: it only moves forward, so a line whose
/// `ts` is earlier than one already seen is judged at the latest time seen (rate limits and
/// windows, like the edge's wall clock, never run backwards).
pub fn check_line(pipeline: &Pipeline, table: &LinkTable, line: &str, clock_ms: &mut u64) -> Result<CheckOutput, String> {
    let input: CheckInput = serde_json::from_str(line).map_err(|e| format!("bad input line: {e}"))?;
    *clock_ms = (*clock_ms).max(unix_ms(&input.ts).map_err(|e| format!("ts: {e}"))?);
    let now_ms = *clock_ms;
    let head = match input.method.as_deref() {
        None | Some("GET") => false,
        Some("HEAD") => true,
        Some(m) => return Err(format!("method {m:?} is not GET or HEAD")),
    };
    let out = |verdict: &str, reasons, observed| CheckOutput {
        verdict: verdict.into(),
        reasons,
        observed,
        program: None,
        partner: None,
        country: None,
        asn: None,
        retry_after_ms: None,
    };
    Ok(match judge(pipeline, table, input.ip, &input.ua, &input.code, head, now_ms) {
        Judgement::RateLimited { retry_after_ms, observed } => {
            let mut reasons = Reasons::default();
            reasons.insert(crate::model::Reason::RateLimited);
            CheckOutput { retry_after_ms: Some(retry_after_ms), ..out("rate_limited", reasons, observed) }
        }
        Judgement::UnknownCode { observed } => out("unknown_code", Reasons::default(), observed),
        Judgement::Inactive { link, observed } => CheckOutput {
            program: Some(link.program.to_string()),
            partner: Some(link.partner.to_string()),
            ..out("inactive_link", Reasons::default(), observed)
        },
        Judgement::Click { link, findings, verdict } => CheckOutput {
            program: Some(link.program.to_string()),
            partner: Some(link.partner.to_string()),
            country: findings.country.map(|c| String::from_utf8_lossy(&c).into_owned()),
            asn: (findings.asn != 0).then_some(findings.asn),
            ..out(verdict.as_str(), findings.reasons, findings.observed)
        },
    })
}

/// `clickgate check`: the config's pipeline over the store's links, stdin to stdout.
pub(super) fn command(setup: &Setup) -> anyhow::Result<ExitCode> {
    let store = setup.store()?;
    let table = app::load_links(&store)?;
    let pipeline = Pipeline::build(&setup.config.checks)?;
    let errors = run(&pipeline, &table, std::io::stdin().lock(), std::io::stdout().lock())?;
    Ok(rejected_exit_code(errors))
}

/// Runs the replay from `input` to `output`; returns how many lines were rejected.
pub fn run(pipeline: &Pipeline, table: &LinkTable, input: impl BufRead, mut output: impl Write) -> std::io::Result<usize> {
    let mut errors = 0;
    let mut clock_ms = 0;
    for (n, line) in input.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        match check_line(pipeline, table, &line, &mut clock_ms) {
            Ok(o) => serde_json::to_writer(&mut output, &o)?,
            Err(e) => {
                errors += 1;
                serde_json::to_writer(&mut output, &serde_json::json!({"line": n + 1, "error": e}))?;
            }
        }
        output.write_all(b"\n")?;
    }
    output.flush()?;
    Ok(errors)
}
