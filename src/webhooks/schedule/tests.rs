use super::*;

const S: u64 = 1000;
const MIN: u64 = 60 * S;
const H: u64 = 60 * MIN;
/// 2026-11-03T12:00:00Z.
const NOW_MS: u64 = 1_793_707_200_000;

#[test]
fn the_schedule_is_the_documented_one_with_ten_percent_jitter() {
    // `random` 100 is the middle of the jitter span (0..=200), so the delay is the base.
    let check = |attempts: u32, random: u64, want: Option<u64>| assert_eq!(retry_delay_ms(attempts, random), want, "{attempts} {random}");
    check(1, 100, Some(5 * S));
    check(2, 100, Some(5 * MIN));
    check(3, 100, Some(30 * MIN));
    check(4, 100, Some(2 * H));
    check(5, 100, Some(5 * H));
    check(6, 100, Some(10 * H));
    check(7, 100, Some(14 * H));
    check(8, 100, Some(20 * H));
    check(9, 100, Some(24 * H));
    check(10, 100, None);
    check(0, 100, None);
    check(u32::MAX, 100, None);
    check(1, 0, Some(4_500));
    check(1, 200, Some(5_500));
    check(1, 201, Some(4_500));
    check(9, 0, Some(24 * H * 9 / 10));
    check(9, 200, Some(24 * H * 11 / 10));
    check(9, u64::MAX, Some(24 * H * (900 + u64::MAX % 201) / 1000));
}

#[test]
fn jitter_stays_within_ten_percent_for_any_random_value() {
    for attempts in 1..ATTEMPTS_MAX {
        let base = RETRY_DELAYS_MS[attempts as usize - 1];
        for random in (0..1000).chain([u64::MAX, u64::MAX - 1, 1 << 63]) {
            let d = retry_delay_ms(attempts, random).unwrap();
            assert!(d >= base * 9 / 10 && d <= base * 11 / 10, "{attempts} {random} {d}");
        }
    }
    let total: u64 = RETRY_DELAYS_MS.iter().sum();
    assert!(total > 3 * 24 * H && total < 4 * 24 * H, "about three days: {total}");
}

#[test]
fn answers_classify_into_outcomes() {
    let failed = |failure, retry_after_ms| Outcome::Failed { failure, retry_after_ms };
    let check = |status: u16, retry_after: Option<&str>, want: Outcome| {
        assert_eq!(classify(Response::Status { status, retry_after }, NOW_MS), want, "{status} {retry_after:?}");
    };
    check(200, None, Outcome::Delivered);
    check(204, None, Outcome::Delivered);
    check(299, Some("60"), Outcome::Delivered);
    check(410, None, Outcome::Gone);
    check(301, None, failed(Failure::Redirect, None));
    check(302, Some("60"), failed(Failure::Redirect, None));
    check(307, None, failed(Failure::Redirect, None));
    check(308, None, failed(Failure::Redirect, None));
    check(304, None, failed(Failure::Redirect, None));
    check(400, None, failed(Failure::ClientError, None));
    check(401, Some("60"), failed(Failure::ClientError, None));
    check(404, None, failed(Failure::ClientError, None));
    check(429, None, failed(Failure::RateLimited, None));
    check(429, Some("60"), failed(Failure::RateLimited, Some(60 * S)));
    check(429, Some("junk"), failed(Failure::RateLimited, None));
    check(500, None, failed(Failure::ServerError, None));
    check(500, Some("60"), failed(Failure::ServerError, None));
    check(502, None, failed(Failure::ServerError, None));
    check(503, Some("120"), failed(Failure::ServerError, Some(120 * S)));
    check(503, Some("86400"), failed(Failure::ServerError, Some(RETRY_AFTER_MS_MAX)));
    check(100, None, failed(Failure::Unexpected, None));
    check(199, None, failed(Failure::Unexpected, None));
    check(600, None, failed(Failure::Unexpected, None));
    check(0, None, failed(Failure::Unexpected, None));
    assert_eq!(classify(Response::TimedOut, NOW_MS), failed(Failure::Timeout, None));
    assert_eq!(classify(Response::ConnectFailed, NOW_MS), failed(Failure::Connect, None));
}

#[test]
fn retry_after_reads_seconds_and_http_dates_capped_at_an_hour() {
    let check = |value: &str, want: Option<u64>| assert_eq!(retry_after_ms(value, NOW_MS), want, "{value:?}");
    check("0", Some(0));
    check("1", Some(S));
    check(" 30 ", Some(30 * S));
    check("3600", Some(H));
    check("3601", Some(H));
    check("99999999999999999999999999", Some(H));
    check("Tue, 03 Nov 2026 12:10:00 GMT", Some(10 * MIN));
    check("Tue, 03 Nov 2026 11:00:00 GMT", Some(0));
    check("Wed, 04 Nov 2026 12:00:00 GMT", Some(H));
    check("Tue, 03 Nov 2026 12:10:00 UTC", None);
    check("Tuesday, 03-Nov-26 12:10:00 GMT", None);
    check("", None);
    check("-5", None);
    check("1.5", None);
    check("soon", None);
}

#[test]
fn the_next_attempt_honours_retry_after_as_a_floor() {
    let check = |attempts: u32, retry_after: Option<u64>, want: Option<u64>| {
        assert_eq!(next_attempt_ms(attempts, retry_after, NOW_MS, 100), want.map(|d| NOW_MS + d), "{attempts} {retry_after:?}");
    };
    check(1, None, Some(5 * S));
    check(1, Some(0), Some(5 * S));
    check(1, Some(10 * MIN), Some(10 * MIN));
    check(1, Some(5 * H), Some(H));
    check(5, Some(10 * MIN), Some(5 * H));
    check(9, None, Some(24 * H));
    check(10, None, None);
    check(10, Some(MIN), None);
    assert_eq!(next_attempt_ms(1, None, u64::MAX, 100), Some(u64::MAX));
}

#[test]
fn walking_the_schedule_spends_every_attempt_in_about_three_days() {
    let (mut now, mut attempts, mut random) = (NOW_MS, 1, 7u64);
    while let Some(at) = next_attempt_ms(attempts, None, now, random) {
        assert!(at > now);
        now = at;
        attempts += 1;
        random = random.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    }
    assert_eq!(attempts, ATTEMPTS_MAX);
    let elapsed = now - NOW_MS;
    assert!(elapsed > 2 * 24 * H && elapsed < 4 * 24 * H, "{elapsed}");
    assert!(!disabled_by_failures(Some(NOW_MS), now), "one event's retries alone do not disable its endpoint");
}

#[test]
fn an_endpoint_is_disabled_after_five_days_of_failures() {
    let check = |since: Option<u64>, now: u64, want: bool| assert_eq!(disabled_by_failures(since, now), want, "{since:?} {now}");
    check(None, NOW_MS, false);
    check(Some(NOW_MS), NOW_MS, false);
    check(Some(NOW_MS), NOW_MS + 5 * 24 * H - 1, false);
    check(Some(NOW_MS), NOW_MS + 5 * 24 * H, true);
    check(Some(NOW_MS), NOW_MS + 30 * 24 * H, true);
    check(Some(NOW_MS + H), NOW_MS, false);
    check(Some(0), u64::MAX, true);
}

#[test]
fn failure_labels_are_distinct() {
    let all = [
        Failure::Redirect,
        Failure::Unexpected,
        Failure::ClientError,
        Failure::RateLimited,
        Failure::ServerError,
        Failure::Timeout,
        Failure::Connect,
    ];
    let labels: std::collections::BTreeSet<_> = all.iter().map(|f| f.as_str()).collect();
    assert_eq!(labels.len(), all.len());
}
