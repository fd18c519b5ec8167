//! UTC calendar periods: which month, ISO week or day a timestamp falls in.
//!
//! Integer civil-calendar arithmetic (Howard Hinnant's `days_from_civil` and
//! `civil_from_days`): exact for every `u64` millisecond timestamp, no time zone database, no
//! error path. The tests check it against the `time` crate.

use serde::{Deserialize, Serialize};

use super::Period;

const DAY_MS: u64 = 86_400_000;

/// One period: `start_ms <= ts < end_ms`, and its label (`2026-11`, `2026-W47`, `2026-11-22`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PeriodKey {
    pub start_ms: u64,
    /// Exclusive: the next period's `start_ms`.
    pub end_ms: u64,
    /// Stable and sortable within one kind of period; the ledger keys bonuses by it.
    pub label: String,
}

/// The period of kind `period` that `ts_ms` (Unix milliseconds, UTC) falls in.
pub fn period_of(period: Period, ts_ms: u64) -> PeriodKey {
    period.key(ts_ms)
}

impl Period {
    /// The period of this kind that `ts_ms` falls in. The ISO week of 1970-01-01..04 starts
    /// before the epoch; its `start_ms` is clamped to 0.
    pub fn key(self, ts_ms: u64) -> PeriodKey {
        // At most u64::MAX / DAY_MS, about 2.1e11 days: far inside i64.
        let day = (ts_ms / DAY_MS) as i64;
        let (year, month, dom) = civil_from_days(day);
        let (start, end, label) = match self {
            Period::Day => (day, day + 1, format!("{year:04}-{month:02}-{dom:02}")),
            Period::Month => {
                let (next_year, next_month) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
                (days_from_civil(year, month, 1), days_from_civil(next_year, next_month, 1), format!("{year:04}-{month:02}"))
            }
            Period::Week => {
                // Monday = 0; 1970-01-01 was a Thursday.
                let monday = day - (day + 3).rem_euclid(7);
                // The ISO year is the year of the week's Thursday, and the week number counts
                // Thursdays from that year's first.
                let thursday = monday + 3;
                let (iso_year, _, _) = civil_from_days(thursday);
                let week = (thursday - days_from_civil(iso_year, 1, 1)) / 7 + 1;
                (monday, monday + 7, format!("{iso_year:04}-W{week:02}"))
            }
        };
        debug_assert!(start <= day && day < end);
        PeriodKey { start_ms: day_to_ms(start), end_ms: day_to_ms(end), label }
    }
}

/// Milliseconds at the start of `day`, clamped into `u64`.
fn day_to_ms(day: i64) -> u64 {
    u64::try_from(day).map_or(0, |d| d.saturating_mul(DAY_MS))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (`month` 1..=12, `day` 1..=31).
pub(super) fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The proleptic Gregorian date `(year, month, day)` of a day since 1970-01-01.
pub(super) fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests;
