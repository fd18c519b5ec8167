//! The one time format of `clickgate check` (`ts`) and `clickgate attribute` (`conversion_ts`
//! and each touch's `ts`), so that a log fed to one means the same to the other.
//!
//! A time is either
//!
//! - RFC 3339 text with an offset, such as `"2026-11-22T10:00:00Z"` or
//!   `"2026-11-22T11:00:00+01:00"` (a space for the `T` is accepted, as RFC 3339 allows); a
//!   fraction of a second is truncated to whole milliseconds, and a time before 1970 is
//!   refused; or
//! - a non-negative JSON integer of Unix **milliseconds**, such as `1795341600000`, of at least
//!   `UNIX_MS_MIN`.
//!
//! An integer below `UNIX_MS_MIN` (100,000,000,000: 1973-03-03T09:46:40Z in milliseconds) is
//! refused with an error that says it looks like Unix seconds. Read as milliseconds it would be
//! a moment before March 1973 that no click log or journey holds; read as seconds it is a time
//! between 1970 and the year 5138, which covers every Unix time in seconds anyone will feed in.
//! Refusing it means a log in seconds is never judged or split at a silently wrong time.
//! Negative and fractional numbers, text that is not RFC 3339 (digits in a string included) and
//! every other JSON value are refused too.

use serde_json::Value;

use super::json_kind;

/// The smallest integer read as Unix milliseconds; a smaller one looks like Unix seconds.
pub const UNIX_MS_MIN: u64 = 100_000_000_000;

/// The rule as `--help` prints it (clap does not wrap it, so the lines are broken here).
pub(super) const HELP: &str = "\
Times (`ts` in check; `conversion_ts` and each touch's `ts` in attribute) follow one rule: RFC
3339 text with an offset (\"2026-11-22T10:00:00Z\", \"2026-11-22T11:00:00+01:00\"; a fraction of a
second is truncated to whole milliseconds) or a non-negative integer of Unix milliseconds
(1795341600000). An integer below 100000000000 (1973-03-03 in milliseconds) looks like Unix
seconds and is refused, never read as milliseconds. Times before 1970, negative or fractional
numbers and any other value are refused too.";

/// Why a value is not a time.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum TimestampError {
    /// An integer below `UNIX_MS_MIN`.
    #[error("{0} looks like Unix seconds: give Unix milliseconds or RFC 3339 text (an integer below 100000000000, 1973-03-03 in milliseconds, is refused)")]
    LooksLikeSeconds(u64),
    /// A negative or fractional number, or a JSON value that is neither a number nor a string.
    #[error("expected Unix milliseconds (a non-negative integer) or an RFC 3339 string, got {0}")]
    NotATime(String),
    /// A string that does not parse as RFC 3339.
    #[error("{text:?} is not RFC 3339: {why}")]
    NotRfc3339 { text: String, why: String },
    /// RFC 3339 text before 1970-01-01T00:00:00Z.
    #[error("{0:?} is before 1970")]
    Before1970(String),
}

/// Unix milliseconds from a JSON time, by the rule in the module docs.
pub fn unix_ms(v: &Value) -> Result<u64, TimestampError> {
    match v {
        Value::Number(n) => match n.as_u64() {
            Some(ms) if ms >= UNIX_MS_MIN => Ok(ms),
            Some(small) => Err(TimestampError::LooksLikeSeconds(small)),
            None => Err(TimestampError::NotATime(n.to_string())),
        },
        Value::String(s) => {
            let at = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .map_err(|e| TimestampError::NotRfc3339 { text: s.clone(), why: e.to_string() })?;
            // Checked on the nanoseconds: dividing first would round 1969-12-31T23:59:59.9995Z up to 0.
            let nanos = at.unix_timestamp_nanos();
            if nanos < 0 {
                return Err(TimestampError::Before1970(s.clone()));
            }
            u64::try_from(nanos / 1_000_000).map_err(|_| TimestampError::Before1970(s.clone()))
        }
        other => Err(TimestampError::NotATime(json_kind(other).to_string())),
    }
}

#[cfg(test)]
mod tests;
