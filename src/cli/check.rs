//! `clickgate check`: replays `{"ip","ua","code","ts"}` lines through the edge's pipeline with
//! `ts` as the clock, and prints each verdict with every reason. Ops use it to answer "why was
//! this click flagged?" and to try rule changes on a real log before deploying them.

use std::io::{BufRead, Write};
use std::net::IpAddr;
use std::process::ExitCode;

use serde::{Deserialize, Serialize};

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
    pub ts: Timestamp,
    /// `GET` (default) or `HEAD`.
    #[serde(default)]
    pub method: Option<String>,
}

/// A timestamp as Unix seconds (integer or fractional) or RFC 3339 text.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Timestamp {
    Seconds(f64),
    Text(String),
}

impl Timestamp {
    /// Unix milliseconds.
    pub fn to_ms(&self) -> Result<u64, String> {
        match self {
            Timestamp::Seconds(s) if s.is_finite() && *s >= 0.0 => Ok((s * 1000.0) as u64),
            Timestamp::Seconds(s) => Err(format!("ts {s} is not a non-negative number of seconds")),
            Timestamp::Text(t) => time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .map_err(|e| format!("ts {t:?} is not RFC 3339: {e}"))
                .and_then(|d| u64::try_from(d.unix_timestamp_nanos() / 1_000_000).map_err(|_| format!("ts {t:?} is before 1970"))),
        }
    }
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
    *clock_ms = (*clock_ms).max(input.ts.to_ms()?);
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
