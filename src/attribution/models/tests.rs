use proptest::prelude::*;

use super::*;

const HOUR_MS: u64 = 3_600_000;
/// A conversion late enough that every touch below is before it.
const CONVERSION_MS: u64 = 10_000 * HOUR_MS;

fn check(model: Model, touch_ts_ms: &[u64], amount_minor: i64, expected: &[i64]) {
    let got = shares(model, 168.0, CONVERSION_MS, touch_ts_ms, amount_minor);
    assert_eq!(got, expected, "{} of {amount_minor} over touches at {touch_ts_ms:?}", model.as_str());
}

/// Time decay with touches given by their age in hours before the conversion.
fn check_decay(half_life_hours: f64, ages_hours: &[u64], amount_minor: i64, expected: &[i64]) {
    let ts: Vec<u64> = ages_hours.iter().map(|a| CONVERSION_MS - a * HOUR_MS).collect();
    let got = shares(Model::TimeDecay, half_life_hours, CONVERSION_MS, &ts, amount_minor);
    assert_eq!(got, expected, "time_decay (h={half_life_hours}) of {amount_minor} over ages {ages_hours:?} h");
}

#[test]
fn no_touches_or_no_amount() {
    for model in Model::ALL {
        check(model, &[], 100, &[]);
        check(model, &[], 0, &[]);
        check(model, &[1, 2, 3], 0, &[0, 0, 0]);
    }
}

#[test]
fn one_touch_takes_everything() {
    for model in Model::ALL {
        check(model, &[7], 1, &[1]);
        check(model, &[7], 12_345, &[12_345]);
        check(model, &[7], i64::MAX, &[i64::MAX]);
    }
}

#[test]
fn last_click() {
    check(Model::LastClick, &[1, 2], 100, &[0, 100]);
    check(Model::LastClick, &[2, 1], 100, &[100, 0]);
    check(Model::LastClick, &[5, 9, 1], 7, &[0, 7, 0]);
    // Equal timestamps keep input order, so the later input is the last touch.
    check(Model::LastClick, &[5, 5], 10, &[0, 10]);
    check(Model::LastClick, &[5, 5, 3], 10, &[0, 10, 0]);
    check(Model::LastClick, &[1, 2, 3, 4], 1_000_000_000_000_000, &[0, 0, 0, 1_000_000_000_000_000]);
}

#[test]
fn first_click() {
    check(Model::FirstClick, &[1, 2], 100, &[100, 0]);
    check(Model::FirstClick, &[2, 1], 100, &[0, 100]);
    check(Model::FirstClick, &[5, 9, 1], 7, &[0, 0, 7]);
    check(Model::FirstClick, &[5, 5], 10, &[10, 0]);
    check(Model::FirstClick, &[3, 5, 3], 10, &[10, 0, 0]);
}

#[test]
fn linear() {
    check(Model::Linear, &[1, 2], 100, &[50, 50]);
    check(Model::Linear, &[1, 2, 3, 4], 100, &[25, 25, 25, 25]);
    // The odd units go to the latest touches.
    check(Model::Linear, &[1, 2], 101, &[50, 51]);
    check(Model::Linear, &[1, 2, 3], 100, &[33, 33, 34]);
    check(Model::Linear, &[1, 2, 3], 101, &[33, 34, 34]);
    check(Model::Linear, &[3, 2, 1], 100, &[34, 33, 33]);
    check(Model::Linear, &[2, 9, 5], 1, &[0, 1, 0]);
    check(Model::Linear, &[1, 2, 3, 4, 5], 3, &[0, 0, 1, 1, 1]);
    // Equal timestamps: the later input counts as the later touch.
    check(Model::Linear, &[4, 4, 4], 2, &[0, 1, 1]);
    check(Model::Linear, &[4, 4, 1], 1, &[0, 1, 0]);
    check(Model::Linear, &[1, 2, 3], 1_000_000_000_000_000, &[333_333_333_333_333, 333_333_333_333_333, 333_333_333_333_334]);
    check(Model::Linear, &[1, 2], i64::MAX, &[i64::MAX / 2, i64::MAX / 2 + 1]);
}

#[test]
fn position_based() {
    check(Model::PositionBased, &[1, 2], 100, &[50, 50]);
    check(Model::PositionBased, &[1, 2], 101, &[50, 51]);
    check(Model::PositionBased, &[1, 2, 3], 100, &[40, 20, 40]);
    check(Model::PositionBased, &[1, 2, 3, 4], 100, &[40, 10, 10, 40]);
    // 40, 6.67, 6.67, 6.67, 40: the two leftover units go to the latest middle touches.
    check(Model::PositionBased, &[1, 2, 3, 4, 5], 100, &[40, 6, 7, 7, 40]);
    // 0.4, 0.2, 0.4 of 1: the latest of the two largest remainders wins.
    check(Model::PositionBased, &[1, 2, 3], 1, &[0, 0, 1]);
    // 0.8, 0.4, 0.8 of 2: the ends have the larger remainders.
    check(Model::PositionBased, &[1, 2, 3], 2, &[1, 0, 1]);
    // Any input order: the ends are the earliest and the latest.
    check(Model::PositionBased, &[3, 1, 2], 100, &[40, 40, 20]);
    check(Model::PositionBased, &[9, 9, 9], 100, &[40, 20, 40]);
    check(Model::PositionBased, &[1, 2, 3], 1_000_000_000_000_000, &[400_000_000_000_000, 200_000_000_000_000, 400_000_000_000_000]);
    // x.6, x.8, x.6: the middle's larger remainder first, then the later end.
    check(Model::PositionBased, &[1, 2, 3], 999_999_999_999_999, &[399_999_999_999_999, 200_000_000_000_000, 400_000_000_000_000]);
    // Ends 10/25, middles 1/25 each: three leftover units, two to the ends (remainder 20/25),
    // one to the latest middle touch (remainder 7/25).
    let (end, middle) = (3_689_348_814_741_910_323, 368_934_881_474_191_032);
    check(Model::PositionBased, &[1, 2, 3, 4, 5, 6, 7], i64::MAX, &[end, middle, middle, middle, middle, middle + 1, end]);
}

#[test]
fn time_decay() {
    // Weights 1 and 0.5: two thirds and one third.
    check_decay(1.0, &[0, 1], 100, &[67, 33]);
    check_decay(1.0, &[1, 0], 100, &[33, 67]);
    check_decay(1.0, &[0, 1], 3, &[2, 1]);
    // 4/7, 2/7, 1/7 of 100: 57.14, 28.57, 14.29.
    check_decay(1.0, &[0, 1, 2], 100, &[57, 29, 14]);
    check_decay(168.0, &[0, 168, 336], 700, &[400, 200, 100]);
    check_decay(24.0, &[48, 24, 0], 7, &[1, 2, 4]);
    // Equal ages are equal weights, and the later input gets the odd unit.
    check_decay(168.0, &[5, 5], 3, &[1, 2]);
    // Only relative ages matter: shifting every touch by the same time changes nothing.
    check_decay(1.0, &[100, 101, 102], 100, &[57, 29, 14]);
    // A tiny half-life leaves old touches nothing, without underflowing to a zero total.
    check_decay(0.1, &[720, 1440], 100, &[100, 0]);
    check_decay(0.1, &[1440, 720, 720], 101, &[0, 50, 51]);
    check_decay(1.0, &[0, 1], 1_000_000_000_000_000, &[666_666_666_666_667, 333_333_333_333_333]);
    check_decay(1.0, &[0, 1], i64::MAX, &[6_148_914_691_236_517_205, 3_074_457_345_618_258_602]);
}

#[test]
fn time_decay_clamps_touches_after_the_conversion() {
    // Both touches are at or after the conversion: both are age 0 and weigh the same.
    let got = shares(Model::TimeDecay, 1.0, 10 * HOUR_MS, &[10 * HOUR_MS, 12 * HOUR_MS], 100);
    assert_eq!(got, [50, 50]);
    let got = shares(Model::TimeDecay, 1.0, 10 * HOUR_MS, &[9 * HOUR_MS, 12 * HOUR_MS], 3);
    assert_eq!(got, [1, 2]);
}

#[test]
fn time_decay_with_a_degenerate_half_life_still_sums() {
    for h in [0.0, f64::NAN, -1.0, f64::INFINITY] {
        let got = shares(Model::TimeDecay, h, CONVERSION_MS, &[CONVERSION_MS - HOUR_MS, CONVERSION_MS, CONVERSION_MS], 101);
        assert_eq!(got.iter().sum::<i64>(), 101, "half-life {h}: {got:?}");
        assert!(got.iter().all(|&s| s >= 0), "half-life {h}: {got:?}");
    }
    // An infinite half-life is linear.
    check_decay(f64::INFINITY, &[0, 10, 20], 100, &[34, 33, 33]);
}

/// The exact real-valued share of each touch, computed independently of `shares`: sorted
/// positions for the position weights, the plain 0.5^(age/h) formula for decay.
fn real_shares(model: Model, half_life_hours: f64, touch_ts_ms: &[u64], amount_minor: i64) -> Vec<f64> {
    let n = touch_ts_ms.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|&i| (touch_ts_ms[i], i));
    let mut weights = vec![0f64; n];
    for (pos, &i) in order.iter().enumerate() {
        weights[i] = match model {
            Model::LastClick => f64::from(u8::from(pos == n - 1)),
            Model::FirstClick => f64::from(u8::from(pos == 0)),
            Model::Linear => 1.0,
            Model::PositionBased if n <= 2 => 1.0,
            Model::PositionBased if pos == 0 || pos == n - 1 => 0.4,
            Model::PositionBased => 0.2 / (n - 2) as f64,
            Model::TimeDecay => {
                let age_hours = CONVERSION_MS.saturating_sub(touch_ts_ms[i]) as f64 / HOUR_MS as f64;
                0.5f64.powf(age_hours / half_life_hours)
            }
        };
    }
    let total: f64 = weights.iter().sum();
    weights.iter().map(|w| amount_minor as f64 * w / total).collect()
}

fn journey() -> impl Strategy<Value = (Vec<u64>, i64)> {
    // Ages from the conversion itself to a little over the 30-day window; a few repeat.
    let age_ms = prop_oneof![0u64..=40 * 24 * HOUR_MS, Just(HOUR_MS), Just(0)];
    (prop::collection::vec(age_ms.prop_map(|a| CONVERSION_MS - a), 1..=8), 0i64..=1_000_000_000_000)
}

proptest! {
    #[test]
    fn every_model_splits_exactly((ts, amount) in journey(), half_life_hours in 0.1f64..=8760.0) {
        for model in Model::ALL {
            let got = shares(model, half_life_hours, CONVERSION_MS, &ts, amount);
            prop_assert_eq!(got.len(), ts.len());
            prop_assert_eq!(got.iter().sum::<i64>(), amount, "{}: {:?}", model.as_str(), got);
            prop_assert!(got.iter().all(|&s| s >= 0), "{}: {:?}", model.as_str(), got);
            // Largest remainder never moves a share by a whole unit from its real value.
            for (s, r) in got.iter().zip(real_shares(model, half_life_hours, &ts, amount)) {
                prop_assert!((*s as f64 - r).abs() < 1.0 + r * 1e-9, "{}: {:?} against {}", model.as_str(), got, r);
            }
        }
    }

    #[test]
    fn first_and_last_click_credit_one_touch((ts, amount) in journey()) {
        for (model, want) in [
            (Model::LastClick, (0..ts.len()).max_by_key(|&i| (ts[i], i))),
            (Model::FirstClick, (0..ts.len()).min_by_key(|&i| (ts[i], i))),
        ] {
            let got = shares(model, 168.0, CONVERSION_MS, &ts, amount);
            let want = want.unwrap();
            prop_assert_eq!(got[want], amount);
            prop_assert!(got.iter().enumerate().all(|(i, &s)| i == want || s == 0), "{:?}", got);
        }
    }

    #[test]
    fn linear_shares_differ_by_at_most_one((ts, amount) in journey()) {
        let got = shares(Model::Linear, 168.0, CONVERSION_MS, &ts, amount);
        let (min, max) = (got.iter().min().unwrap(), got.iter().max().unwrap());
        prop_assert!(max - min <= 1, "{:?}", got);
    }

    #[test]
    fn input_order_does_not_matter_for_distinct_times((ts, amount) in journey(), seed in any::<u64>()) {
        let mut ts = ts;
        ts.sort_unstable();
        ts.dedup();
        // A deterministic shuffle from the seed.
        let mut perm: Vec<usize> = (0..ts.len()).collect();
        let mut s = seed | 1;
        for i in (1..perm.len()).rev() {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            perm.swap(i, (s % (i as u64 + 1)) as usize);
        }
        let shuffled: Vec<u64> = perm.iter().map(|&i| ts[i]).collect();
        for model in Model::ALL {
            let sorted = shares(model, 24.0, CONVERSION_MS, &ts, amount);
            let got = shares(model, 24.0, CONVERSION_MS, &shuffled, amount);
            let want: Vec<i64> = perm.iter().map(|&i| sorted[i]).collect();
            prop_assert_eq!(got, want, "{}", model.as_str());
        }
    }

    #[test]
    fn time_decay_never_credits_an_older_touch_more((ts, amount) in journey(), half_life_hours in 0.1f64..=8760.0) {
        let got = shares(Model::TimeDecay, half_life_hours, CONVERSION_MS, &ts, amount);
        for i in 0..ts.len() {
            for j in 0..ts.len() {
                if ts[i] < ts[j] {
                    prop_assert!(got[i] <= got[j] + 1, "{:?} over {:?}", got, ts);
                }
            }
        }
    }
}
