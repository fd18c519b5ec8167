use super::*;

/// 2026-12-06 (a Sunday) 12:00 UTC.
const SUN_NOON: i64 = 1_796_558_400_000;

fn day(y: i64, m: u32, d: u32) -> i64 {
    days_from_civil(y, m, d) * DAY_MS
}

#[test]
fn spellings_parse_strictly_and_print_back() {
    for s in ["off", "weekly:mon", "weekly:sun", "monthly:1", "monthly:28"] {
        assert_eq!(Schedule::parse(s).unwrap().to_string(), s);
    }
    for s in ["", "weekly", "weekly:monday", "Weekly:mon", "monthly:0", "monthly:29", "monthly:01", "monthly:x", "daily"] {
        assert_eq!(Schedule::parse(s), Err(ScheduleError(s.to_string())), "{s:?}");
    }
}

#[test]
fn the_calendar_round_trips() {
    assert_eq!(day(1970, 1, 1), 0);
    assert_eq!(SUN_NOON - day(2026, 12, 6), 12 * 3_600_000);
    for d in [-1000, 0, 59, 60, 365, 10_957, 20_793] {
        let (y, m, dd) = civil_from_days(d);
        assert_eq!(days_from_civil(y, m, dd), d);
    }
}

#[test]
fn weekly_slots_fall_on_the_weekday_at_midnight() {
    assert_eq!(Schedule::Weekly(6).last_slot_ms(SUN_NOON), Some(day(2026, 12, 6)));
    assert_eq!(Schedule::Weekly(0).last_slot_ms(SUN_NOON), Some(day(2026, 11, 30)));
    assert_eq!(Schedule::Weekly(5).last_slot_ms(SUN_NOON), Some(day(2026, 12, 5)));
    assert_eq!(Schedule::Off.last_slot_ms(SUN_NOON), None);
}

#[test]
fn monthly_slots_fall_in_this_month_or_the_last() {
    assert_eq!(Schedule::Monthly(6).last_slot_ms(SUN_NOON), Some(day(2026, 12, 6)));
    assert_eq!(Schedule::Monthly(1).last_slot_ms(SUN_NOON), Some(day(2026, 12, 1)));
    assert_eq!(Schedule::Monthly(7).last_slot_ms(SUN_NOON), Some(day(2026, 11, 7)));
    assert_eq!(Schedule::Monthly(15).last_slot_ms(day(2027, 1, 3)), Some(day(2026, 12, 15)));
}

#[test]
fn a_run_is_due_once_per_slot() {
    let s = Schedule::Weekly(6);
    assert!(s.due(SUN_NOON, None));
    assert!(s.due(SUN_NOON, Some(day(2026, 12, 5))));
    assert!(!s.due(SUN_NOON, Some(day(2026, 12, 6) + 1)));
    assert!(!Schedule::Off.due(SUN_NOON, None));
}
