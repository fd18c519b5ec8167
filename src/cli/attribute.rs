//! `clickgate attribute`: splits conversions between their touches with one of the five models,
//! outside any program or database. Finance uses it to preview a model change on exported
//! journeys, and `tests/reference/compare.py` uses it to hold the models to the reference.
//!
//! Input, one journey per line (blank lines are skipped):
//!
//! ```text
//! {"id": "o-1", "conversion_ts": 1763805600000, "amount_minor": 1000,
//!  "touches": [{"partner": "p1", "ts": "2025-11-20T10:00:00Z"}, {"partner": "p2", "ts": 1763800000000}]}
//! ```
//!
//! - `id` is a string or a number, echoed back as it came (through `serde_json::Value`, so an
//!   integer is exact up to 64 bits).
//! - `conversion_ts` and each touch's `ts` are times as `cli::timestamp` reads them, the same
//!   as `clickgate check`'s `ts`: RFC 3339 text with an offset, or a non-negative integer of
//!   Unix milliseconds. An integer below 100,000,000,000 (1973-03-03 in milliseconds) looks like
//!   Unix seconds and is refused.
//! - `amount_minor` is a non-negative integer number of minor units (at most `i64::MAX`).
//! - `touches` holds at most `TOUCHES_MAX` touches, in any order; `partner` is a non-empty string.
//!   A journey without touches credits nobody and prints `"shares":[]`.
//! - Any other field is refused, at the top level and in a touch.
//!
//! Output, one line per good journey: `{"id":...,"shares":[{"partner":...,"amount_minor":...}]}`.
//! A partner with several touches gets their sum. Partners are listed in the order of their
//! first touch in time (touches ordered by `(ts, input position)`, as the models order them),
//! so the list reads as the journey did. The amounts sum to `amount_minor` exactly.
//!
//! A bad line prints `line N: <why, naming the field>` on stderr, prints nothing on stdout, is
//! counted, and processing goes on. A closed stdout (`| head`) ends the run quietly.

use std::collections::HashMap;
use std::io::{self, BufRead, Write};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::timestamp::unix_ms;
use super::{json_kind, parse_model, rejected_exit_code};
use crate::attribution::{models, Model};

/// The longest input line read, in bytes; a longer line is refused and skipped.
pub const LINE_BYTES_MAX: usize = 1 << 20;
/// The most touches one journey may have.
pub const TOUCHES_MAX: usize = 10_000;

/// `attribute`'s arguments.
#[derive(Args)]
pub(super) struct AttributeArgs {
    /// last_click, first_click, linear, time_decay or position_based.
    #[arg(long)]
    model: String,
    /// Half-life for time_decay, in hours.
    #[arg(long, default_value_t = 168.0)]
    half_life_hours: f64,
}

/// `clickgate attribute`: checks the arguments, then runs stdin to stdout.
pub(super) fn command(args: &AttributeArgs) -> anyhow::Result<ExitCode> {
    let model = parse_model(&args.model)?;
    let half_life_hours = args.half_life_hours;
    anyhow::ensure!(
        half_life_hours.is_finite() && (0.1..=8760.0).contains(&half_life_hours),
        "--half-life-hours must be in 0.1..=8760, got {half_life_hours}"
    );
    let errors = run(model, half_life_hours, io::stdin().lock(), io::stdout().lock())?;
    Ok(rejected_exit_code(errors))
}

/// Reads journeys from `input`, writes one line of shares per journey to `out`; returns how
/// many lines were rejected (each reported on stderr with its line number).
pub fn run(model: Model, half_life_hours: f64, input: impl BufRead, out: impl Write) -> anyhow::Result<usize> {
    run_with_errors(model, half_life_hours, input, out, io::stderr().lock())
}

/// `run` with the rejection reports going to `errors` instead of stderr.
pub fn run_with_errors(
    model: Model,
    half_life_hours: f64,
    mut input: impl BufRead,
    out: impl Write,
    mut errors: impl Write,
) -> anyhow::Result<usize> {
    let mut out = io::BufWriter::new(out);
    let mut line = Vec::new();
    let mut encoded = Vec::new();
    let mut rejected = 0;
    for line_no in 1.. {
        let why = match read_line(&mut input, &mut line).context("reading the journeys")? {
            Line::End => break,
            Line::TooLong => format!("longer than {LINE_BYTES_MAX} bytes"),
            Line::Fits if line.trim_ascii().is_empty() => continue,
            Line::Fits => match attribute_line(model, half_life_hours, &line, &mut encoded) {
                Ok(()) => match out.write_all(&encoded) {
                    Ok(()) => continue,
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(rejected),
                    Err(e) => return Err(e).context("writing the shares"),
                },
                Err(why) => why,
            },
        };
        rejected += 1;
        // A report that cannot be written is still counted, and the exit code says so.
        let _ = writeln!(errors, "line {line_no}: {why}");
    }
    match out.flush() {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e).context("writing the shares"),
        _ => Ok(rejected),
    }
}

enum Line {
    Fits,
    TooLong,
    End,
}

/// Reads one line without its `\n` (or `\r\n`) into `buf`, reading at most `LINE_BYTES_MAX`
/// bytes of it into memory; the rest of a longer line is skipped.
fn read_line(input: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<Line> {
    buf.clear();
    if io::Read::take(&mut *input, LINE_BYTES_MAX as u64 + 1).read_until(b'\n', buf)? == 0 {
        return Ok(Line::End);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        return Ok(Line::Fits);
    }
    if buf.len() <= LINE_BYTES_MAX {
        return Ok(Line::Fits); // the last line, without a newline
    }
    loop {
        let available = input.fill_buf()?;
        if available.is_empty() {
            break;
        }
        if let Some(end) = available.iter().position(|&b| b == b'\n') {
            input.consume(end + 1);
            break;
        }
        let len = available.len();
        input.consume(len);
    }
    Ok(Line::TooLong)
}

/// The fields of a journey line; values are checked one by one after, so that each message can
/// name its field (serde's type errors do not).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJourney {
    id: Value,
    conversion_ts: Value,
    amount_minor: Value,
    touches: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTouch {
    partner: Value,
    ts: Value,
}

#[derive(Serialize)]
struct Output<'a> {
    id: &'a Value,
    shares: Vec<Share<'a>>,
}

#[derive(Serialize)]
struct Share<'a> {
    partner: &'a str,
    amount_minor: i64,
}

/// Attributes one line and encodes its output line, newline included, into `encoded`.
fn attribute_line(model: Model, half_life_hours: f64, line: &[u8], encoded: &mut Vec<u8>) -> Result<(), String> {
    let raw: RawJourney = serde_json::from_slice(line).map_err(|e| describe(&e))?;
    if !(raw.id.is_string() || raw.id.is_number()) {
        return Err(format!("id: must be a string or a number, got {}", json_kind(&raw.id)));
    }
    let conversion_ts_ms = unix_ms(&raw.conversion_ts).map_err(|why| format!("conversion_ts: {why}"))?;
    let amount_minor = amount_minor(&raw.amount_minor).map_err(|why| format!("amount_minor: {why}"))?;
    let Value::Array(raw_touches) = &raw.touches else {
        return Err(format!("touches: must be an array of {{\"partner\", \"ts\"}} objects, got {}", json_kind(&raw.touches)));
    };
    if raw_touches.len() > TOUCHES_MAX {
        return Err(format!("touches: {} touches, more than the limit of {TOUCHES_MAX}", raw_touches.len()));
    }
    let mut partners = Vec::with_capacity(raw_touches.len());
    let mut touch_ts_ms = Vec::with_capacity(raw_touches.len());
    for (i, raw_touch) in raw_touches.iter().enumerate() {
        if !raw_touch.is_object() {
            return Err(format!("touches[{i}]: must be an object with \"partner\" and \"ts\", got {}", json_kind(raw_touch)));
        }
        let touch = RawTouch::deserialize(raw_touch).map_err(|e| format!("touches[{i}]: {e}"))?;
        // The partner is moved out: `touch` is a copy that lives only in this loop.
        match touch.partner {
            Value::String(p) if !p.is_empty() => partners.push(p),
            Value::String(_) => return Err(format!("touches[{i}].partner: must not be empty")),
            other => return Err(format!("touches[{i}].partner: must be a string, got {}", json_kind(&other))),
        }
        touch_ts_ms.push(unix_ms(&touch.ts).map_err(|why| format!("touches[{i}].ts: {why}"))?);
    }

    let split = models::shares(model, half_life_hours, conversion_ts_ms, &touch_ts_ms, amount_minor);
    let mut order: Vec<usize> = (0..partners.len()).collect();
    order.sort_unstable_by_key(|&i| (touch_ts_ms[i], i));
    let mut shares: Vec<Share> = Vec::new();
    let mut slot: HashMap<&str, usize> = HashMap::with_capacity(partners.len());
    for i in order {
        let at = *slot.entry(partners[i].as_str()).or_insert_with(|| {
            shares.push(Share { partner: &partners[i], amount_minor: 0 });
            shares.len() - 1
        });
        shares[at].amount_minor += split[i];
    }
    debug_assert!(partners.is_empty() || shares.iter().map(|s| i128::from(s.amount_minor)).sum::<i128>() == i128::from(amount_minor));

    encoded.clear();
    serde_json::to_writer(&mut *encoded, &Output { id: &raw.id, shares }).map_err(|e| format!("encoding the output: {e}"))?;
    encoded.push(b'\n');
    Ok(())
}

/// A serde_json error as a reason: syntax errors say the line is not JSON, and the position is
/// a column, since every input line is one document.
fn describe(e: &serde_json::Error) -> String {
    let full = e.to_string();
    let message = full.rsplit_once(" at line ").map_or(full.as_str(), |(m, _)| m);
    match e.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
            format!("invalid JSON: {message} at column {}", e.column())
        }
        _ => message.to_string(),
    }
}

fn amount_minor(v: &Value) -> Result<i64, String> {
    match v {
        Value::Number(n) => match n.as_i64() {
            Some(a) if a >= 0 => Ok(a),
            Some(a) => Err(format!("must not be negative, got {a}")),
            None if n.is_u64() => Err(format!("{n} is larger than {}", i64::MAX)),
            None => Err(format!("must be an integer number of minor units, got {n}")),
        },
        other => Err(format!("must be an integer number of minor units, got {}", json_kind(other))),
    }
}

#[cfg(test)]
mod tests;
