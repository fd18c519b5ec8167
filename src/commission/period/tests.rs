use proptest::prelude::*;

use super::*;
use crate::commission::Period;

/// 2026-11-22 12:00 UTC, a Sunday.
const NOW_MS: u64 = 1_795_348_800_000;

#[test]
fn periods() {
    let check = |period: Period, ts_ms: u64, label: &str, start: (i64, i64, i64), end: (i64, i64, i64)| {
        let key = period_of(period, ts_ms);
        let ms = |(y, m, d): (i64, i64, i64)| days_from_civil(y, m, d) as u64 * 86_400_000;
        assert_eq!(key, PeriodKey { start_ms: ms(start), end_ms: ms(end), label: label.into() }, "{period:?} of {ts_ms}");
    };
    check(Period::Month, NOW_MS, "2026-11", (2026, 11, 1), (2026, 12, 1));
    check(Period::Month, ms_of(2026, 12, 31) + 86_399_999, "2026-12", (2026, 12, 1), (2027, 1, 1));
    check(Period::Month, ms_of(2028, 2, 29), "2028-02", (2028, 2, 1), (2028, 3, 1));
    check(Period::Day, NOW_MS, "2026-11-22", (2026, 11, 22), (2026, 11, 23));
    check(Period::Day, 0, "1970-01-01", (1970, 1, 1), (1970, 1, 2));
    // 2026-11-22 is a Sunday: the week began on Monday the 16th.
    check(Period::Week, NOW_MS, "2026-W47", (2026, 11, 16), (2026, 11, 23));
    check(Period::Week, ms_of(2026, 11, 23), "2026-W48", (2026, 11, 23), (2026, 11, 30));
    // ISO years: 2024-12-30 is in 2025's first week, 2027-01-01 in 2026's 53rd.
    check(Period::Week, ms_of(2024, 12, 30), "2025-W01", (2024, 12, 30), (2025, 1, 6));
    check(Period::Week, ms_of(2027, 1, 1), "2026-W53", (2026, 12, 28), (2027, 1, 4));
    check(Period::Week, ms_of(2026, 1, 1), "2026-W01", (2025, 12, 29), (2026, 1, 5));
    // The epoch's week began on 1969-12-29; its start is clamped to 0.
    assert_eq!(period_of(Period::Week, 0), PeriodKey { start_ms: 0, end_ms: ms_of(1970, 1, 5), label: "1970-W01".into() });
    assert_eq!(period_of(Period::Month, u64::MAX).end_ms, u64::MAX);
}

fn ms_of(y: i64, m: i64, d: i64) -> u64 {
    days_from_civil(y, m, d) as u64 * 86_400_000
}

proptest! {
    #[test]
    fn periods_agree_with_the_time_crate(ts_ms in 0u64..253_402_300_800_000) {
        let t = time::OffsetDateTime::from_unix_timestamp((ts_ms / 1000) as i64).unwrap();
        let date = t.date();
        let (y, m, d) = civil_from_days((ts_ms / 86_400_000) as i64);
        prop_assert_eq!((y, m, d), (i64::from(date.year()), i64::from(u8::from(date.month())), i64::from(date.day())));
        prop_assert_eq!(period_of(Period::Month, ts_ms).label, format!("{:04}-{:02}", date.year(), u8::from(date.month())));
        let (iso_year, week, _) = date.to_iso_week_date();
        let key = period_of(Period::Week, ts_ms);
        prop_assert_eq!(&key.label, &format!("{iso_year:04}-W{week:02}"));
        let monday = time::Date::from_iso_week_date(iso_year, week, time::Weekday::Monday).unwrap();
        let monday_s = monday.midnight().assume_utc().unix_timestamp();
        // The epoch's week began before it; start_ms is clamped to 0 there.
        let expected = ((monday_s.max(0) * 1000) as u64, ((monday_s + 7 * 86_400) * 1000) as u64);
        prop_assert_eq!((key.start_ms, key.end_ms), expected);
        for kind in [Period::Month, Period::Week, Period::Day] {
            let key = period_of(kind, ts_ms);
            prop_assert!(key.start_ms <= ts_ms && ts_ms < key.end_ms);
            prop_assert_eq!(period_of(kind, key.start_ms).label, key.label.clone());
            prop_assert_eq!(period_of(kind, key.end_ms - 1).label, key.label);
        }
    }
}
