//! A program's payout schedule (`off`, `weekly:<weekday>`, `monthly:<day>`, in UTC) and when
//! a scheduled run is due. Pure: the time is passed in.

use std::fmt;
use std::str::FromStr;

const DAY_MS: i64 = 86_400_000;
/// The weekday names, Monday first (ISO 8601).
const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Why a schedule does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("payout_schedule {0:?} is not off, weekly:<mon..sun> or monthly:<1..=28>")]
pub struct ScheduleError(pub String);

/// When a program's scheduled payout runs start, in UTC, at 00:00 of the day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Schedule {
    /// Runs only on demand.
    #[default]
    Off,
    /// Every week on this weekday (0 = Monday).
    Weekly(u8),
    /// Every month on this day, 1..=28 so that every month has it.
    Monthly(u8),
}

impl Schedule {
    /// Parses the stored and configured spelling, strictly.
    pub fn parse(s: &str) -> Result<Schedule, ScheduleError> {
        let bad = || ScheduleError(s.to_string());
        if s == "off" {
            return Ok(Schedule::Off);
        }
        if let Some(day) = s.strip_prefix("weekly:") {
            let i = WEEKDAYS.iter().position(|d| *d == day).ok_or_else(bad)?;
            return Ok(Schedule::Weekly(i as u8));
        }
        if let Some(day) = s.strip_prefix("monthly:") {
            let n: u8 = day.parse().map_err(|_| bad())?;
            if (1..=28).contains(&n) && !day.starts_with('0') {
                return Ok(Schedule::Monthly(n));
            }
        }
        Err(bad())
    }

    /// The start (00:00 UTC) of the latest scheduled day at or before `now_ms`; `None` when off.
    pub fn last_slot_ms(self, now_ms: i64) -> Option<i64> {
        let days = now_ms.div_euclid(DAY_MS);
        match self {
            Schedule::Off => None,
            Schedule::Weekly(wd) => {
                // 1970-01-01 was a Thursday (weekday 3 counted from Monday).
                let today = (days + 3).rem_euclid(7);
                let back = (today - i64::from(wd)).rem_euclid(7);
                Some((days - back) * DAY_MS)
            }
            Schedule::Monthly(day) => {
                let (y, m, d) = civil_from_days(days);
                let (y, m) = if d >= u32::from(day) {
                    (y, m)
                } else if m == 1 {
                    (y - 1, 12)
                } else {
                    (y, m - 1)
                };
                Some(days_from_civil(y, m, u32::from(day)) * DAY_MS)
            }
        }
    }

    /// Whether a scheduled run is due at `now_ms`, given when the last scheduled run of the
    /// program started: due when a slot has begun since then.
    pub fn due(self, now_ms: i64, last_run_ms: Option<i64>) -> bool {
        match self.last_slot_ms(now_ms) {
            None => false,
            Some(slot) => last_run_ms.is_none_or(|last| last < slot),
        }
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Off => f.write_str("off"),
            Schedule::Weekly(d) => write!(f, "weekly:{}", WEEKDAYS[usize::from(*d) % 7]),
            Schedule::Monthly(d) => write!(f, "monthly:{d}"),
        }
    }
}

impl FromStr for Schedule {
    type Err = ScheduleError;

    fn from_str(s: &str) -> Result<Schedule, ScheduleError> {
        Schedule::parse(s)
    }
}

impl serde::Serialize for Schedule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Schedule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Schedule, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Schedule::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The inverse of `civil_from_days`.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from(if m > 2 { m - 3 } else { m + 9 });
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests;
