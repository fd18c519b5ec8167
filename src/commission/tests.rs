use proptest::prelude::*;

use super::*;

/// 2026-11-22 12:00 UTC.
const NOW_MS: u64 = 1_795_348_800_000;

fn state(volume_minor: i64, conversions: u64, commission_minor: i64) -> PeriodState {
    PeriodState { volume_minor, conversions, commission_minor, bonuses_paid: 0 }
}

fn run(rules: &RuleSet, share_minor: i64, amount_minor: i64, before: PeriodState) -> CommissionCalc {
    rules.validate().unwrap();
    compute(rules, &CommissionInput { occurred_at_ms: NOW_MS, share_minor, amount_minor, before })
}

/// The base item's amount for a share of an amount, from an empty period.
fn check_base(rules: &RuleSet, share_minor: i64, amount_minor: i64, expected: i64) {
    let got = run(rules, share_minor, amount_minor, PeriodState::default()).base.amount_minor;
    assert_eq!(got, expected, "share {share_minor} of {amount_minor} under {rules:?}");
}

fn pct(percent_bps: u32) -> RuleSet {
    RuleSet { percent_bps, ..RuleSet::default() }
}

fn fixed(fixed_minor: i64) -> RuleSet {
    RuleSet { percent_bps: 0, fixed_minor, ..RuleSet::default() }
}

fn tiered() -> RuleSet {
    RuleSet {
        percent_bps: 9_999,
        tiers: vec![Tier { from_minor: 0, percent_bps: 500 }, Tier { from_minor: 1_000_000, percent_bps: 700 }],
        ..RuleSet::default()
    }
}

fn bonus(metric: Metric, threshold: i64, amount_minor: i64) -> Bonus {
    Bonus { metric, threshold, amount_minor }
}

#[test]
fn default_is_ten_percent_monthly_with_a_30_day_lock() {
    let rules = RuleSet::default();
    assert_eq!((rules.percent_bps, rules.period, rules.lock_days, rules.cap_minor), (1000, Period::Month, 30, None));
    assert_eq!(rules.validate(), Ok(()));
    assert_eq!(toml::from_str::<RuleSet>("").unwrap(), rules);
    check_base(&rules, 10_000, 10_000, 1_000);
}

#[test]
fn percent_rounds_down() {
    check_base(&pct(1000), 9_999, 9_999, 999);
    check_base(&pct(1), 9_999, 9_999, 0);
    check_base(&pct(1), 10_000, 10_000, 1);
    check_base(&pct(333), 100, 100, 3);
    check_base(&pct(10_000), 12_345, 12_345, 12_345);
    check_base(&pct(0), 12_345, 12_345, 0);
    // A share, not the conversion's amount, is what the percent applies to.
    check_base(&pct(1000), 2_500, 10_000, 250);
    check_base(&pct(10_000), i64::MAX, i64::MAX, i64::MAX);
    check_base(&pct(9_999), i64::MAX, i64::MAX, (i128::from(i64::MAX) * 9_999 / 10_000) as i64);
}

#[test]
fn fixed_is_paid_pro_rata_to_the_share() {
    check_base(&fixed(500), 10_000, 10_000, 500);
    check_base(&fixed(500), 5_000, 10_000, 250);
    check_base(&fixed(500), 0, 10_000, 0);
    // Floors: a three-way split pays 166 each and the two odd units are not paid.
    check_base(&fixed(500), 3_333, 10_000, 166);
    check_base(&fixed(500), 3_334, 10_000, 166);
    check_base(&fixed(1), 9_999, 10_000, 0);
    // Nothing to prorate against.
    check_base(&fixed(500), 0, 0, 0);
    check_base(&fixed(RULE_AMOUNT_MAX), i64::MAX / 3, i64::MAX, RULE_AMOUNT_MAX / 3);
}

#[test]
fn percent_and_fixed_add_up() {
    let rules = RuleSet { percent_bps: 1000, fixed_minor: 300, ..RuleSet::default() };
    let base = run(&rules, 5_000, 10_000, PeriodState::default()).base;
    assert_eq!((base.percent_minor, base.fixed_minor, base.amount_minor, base.uncapped_minor), (500, 150, 650, 650));
    assert_eq!((base.percent_bps, base.tier, base.capped), (1000, None, false));
}

#[test]
fn a_tier_is_chosen_by_the_volume_before_the_conversion() {
    let rules = tiered();
    let check = |volume: i64, share: i64, bps: u32, tier: usize, amount: i64| {
        let base = run(&rules, share, share, state(volume, 0, 0)).base;
        assert_eq!((base.percent_bps, base.tier, base.amount_minor), (bps, Some(tier), amount), "volume {volume}, share {share}");
    };
    // Tiers replace percent_bps: its 9_999 is never used.
    check(0, 10_000, 500, 0, 500);
    check(999_999, 10_000, 500, 0, 500);
    // The sale that crosses the threshold earns the old rate, whole.
    check(990_000, 100_000, 500, 0, 5_000);
    check(1_000_000, 10_000, 700, 1, 700);
    check(5_000_000, 10_000, 700, 1, 700);
}

#[test]
fn a_bonus_fires_once_per_period_when_its_threshold_is_reached() {
    let rules = RuleSet { bonuses: vec![bonus(Metric::Volume, 100_000, 5_000)], ..RuleSet::default() };
    // Below the threshold after the conversion: nothing.
    let calc = run(&rules, 4_999, 4_999, state(95_000, 9, 9_500));
    assert!(calc.bonuses.is_empty());
    assert_eq!(calc.after, PeriodState { volume_minor: 99_999, conversions: 10, commission_minor: 9_999, bonuses_paid: 0 });
    // Exactly at the threshold: fires, as its own item.
    let calc = run(&rules, 5_000, 5_000, state(95_000, 9, 9_500));
    let item =
        BonusItem { index: 0, metric: Metric::Volume, threshold: 100_000, amount_minor: 5_000, uncapped_minor: 5_000, capped: false };
    assert_eq!(calc.bonuses, vec![item]);
    assert_eq!((calc.base.amount_minor, calc.total_minor), (500, 5_500));
    assert_eq!(calc.after, PeriodState { volume_minor: 100_000, conversions: 10, commission_minor: 15_000, bonuses_paid: 1 });
    // The next conversion in the same period does not fire it again.
    let again = run(&rules, 5_000, 5_000, calc.after);
    assert!(again.bonuses.is_empty());
    assert_eq!(again.total_minor, 500);
    // A new period starts from an empty state, and fires it again.
    assert_eq!(run(&rules, 100_000, 100_000, PeriodState::default()).bonuses.len(), 1);
}

#[test]
fn bonuses_by_conversions_and_several_at_once() {
    let rules = RuleSet {
        percent_bps: 0,
        bonuses: vec![
            bonus(Metric::Conversions, 3, 100),
            bonus(Metric::Volume, 1_000, 200),
            bonus(Metric::Conversions, 10, 400),
            bonus(Metric::Volume, 2_000, 800),
        ],
        ..RuleSet::default()
    };
    assert!(run(&rules, 10, 10, state(0, 1, 0)).bonuses.is_empty());
    let calc = run(&rules, 10, 10, state(0, 2, 0));
    assert_eq!(calc.bonuses.iter().map(|b| b.index).collect::<Vec<_>>(), vec![0]);
    // A big sale reaches both volume thresholds at once; bonus 0 was paid already.
    let calc = run(&rules, 5_000, 5_000, PeriodState { bonuses_paid: 0b1, ..state(0, 3, 100) });
    assert_eq!(calc.bonuses.iter().map(|b| (b.index, b.amount_minor)).collect::<Vec<_>>(), vec![(1, 200), (3, 800)]);
    assert_eq!((calc.total_minor, calc.after.commission_minor, calc.after.bonuses_paid), (1_000, 1_100, 0b1011));
}

#[test]
fn the_cap_cuts_the_item_that_reaches_it_and_zeroes_later_ones() {
    let rules = RuleSet { cap_minor: Some(1_500), ..RuleSet::default() };
    let calc = run(&rules, 10_000, 10_000, state(0, 0, 0));
    assert_eq!((calc.base.amount_minor, calc.base.capped, calc.capped_minor), (1_000, false, 0));
    let calc = run(&rules, 10_000, 10_000, calc.after);
    assert_eq!((calc.base.amount_minor, calc.base.uncapped_minor, calc.base.capped, calc.capped_minor), (500, 1_000, true, 500));
    assert_eq!(calc.after.commission_minor, 1_500);
    let calc = run(&rules, 10_000, 10_000, calc.after);
    assert_eq!((calc.base.amount_minor, calc.base.capped, calc.total_minor, calc.after.commission_minor), (0, true, 0, 1_500));
    // Volume still counts once capped.
    assert_eq!(calc.after.volume_minor, 30_000);
    // Earned past the cap (the cap was lowered mid-period): nothing more, never negative.
    let calc = run(&rules, 10_000, 10_000, state(0, 0, 9_000));
    assert_eq!((calc.total_minor, calc.after.commission_minor), (0, 9_000));
    // A period total below zero (voids netted against it) keeps its sign and leaves more room.
    let calc = run(&rules, 20_000, 20_000, state(0, 0, -400));
    assert_eq!((calc.base.amount_minor, calc.base.capped, calc.after.commission_minor), (1_900, true, 1_500));
    // A cap of 0 pays nothing.
    let zero = RuleSet { cap_minor: Some(0), ..RuleSet::default() };
    assert_eq!(run(&zero, 10_000, 10_000, PeriodState::default()).total_minor, 0);
}

#[test]
fn the_cap_counts_bonuses_and_a_capped_bonus_is_still_paid_once() {
    let rules = RuleSet { cap_minor: Some(1_200), bonuses: vec![bonus(Metric::Volume, 10_000, 500)], ..RuleSet::default() };
    let calc = run(&rules, 10_000, 10_000, PeriodState::default());
    assert_eq!((calc.base.amount_minor, calc.base.capped), (1_000, false));
    assert_eq!((calc.bonuses[0].amount_minor, calc.bonuses[0].uncapped_minor, calc.bonuses[0].capped), (200, 500, true));
    assert_eq!((calc.total_minor, calc.capped_minor, calc.after.commission_minor), (1_200, 300, 1_200));
    // The base takes what is left first; the bonus gets 0, is marked capped, and is spent.
    let calc = run(&rules, 10_000, 10_000, state(0, 0, 700));
    assert_eq!((calc.base.amount_minor, calc.bonuses[0].amount_minor, calc.bonuses[0].capped), (500, 0, true));
    assert_eq!(calc.after.bonuses_paid, 1);
}

#[test]
fn split_conversions_with_a_fixed_amount_pay_each_partner_its_part() {
    let rules = RuleSet { percent_bps: 1000, fixed_minor: 1_001, ..RuleSet::default() };
    let halves: Vec<i64> = [5_000, 5_000].iter().map(|&s| run(&rules, s, 10_000, PeriodState::default()).base.fixed_minor).collect();
    assert_eq!(halves, vec![500, 500]);
    let parts = crate::attribution::models::shares(crate::attribution::Model::Linear, 168.0, 10, &[1, 2, 3], 10_000);
    let paid: Vec<i64> = parts.iter().map(|&s| run(&rules, s, 10_000, PeriodState::default()).base.amount_minor).collect();
    assert_eq!(paid, vec![333 + 333, 333 + 333, 333 + 333]);
}

#[test]
fn the_calc_carries_the_period_and_the_rule_version() {
    let rules = RuleSet { period: Period::Week, ..RuleSet::default() };
    let calc = run(&rules, 1, 1, PeriodState::default());
    assert_eq!(calc.period.label, "2026-W47");
    assert_eq!(calc.version, rules.version_hash());
}

/// The doc example, verbatim.
const DOC_TOML: &str = r#"
[rules]
period = "month"           # "month" (UTC calendar month), "week" (ISO, Monday UTC), "day"
lock_days = 30             # refund window before approval
fixed_minor = 0            # per conversion, pro rata to the partner's share
cap_minor = 5_000_000      # per period; absent means no cap
tiers = [                  # replace percent_bps when present
  { from_minor = 0, percent_bps = 500 },
  { from_minor = 1_000_000, percent_bps = 700 },
]
bonuses = [
  { metric = "volume", threshold = 2_000_000, amount_minor = 10_000 },
  { metric = "conversions", threshold = 100, amount_minor = 5_000 },
]

[partners.alice]           # replaces the program's rules for alice, whole
percent_bps = 1500
"#;

#[test]
fn program_rules_parse_and_overrides_replace_whole() {
    assert!(include_str!("mod.rs").contains(
        &DOC_TOML.trim().lines().map(|l| if l.is_empty() { "//!\n".to_string() } else { format!("//! {l}\n") }).collect::<String>()
    ));
    let program: ProgramRules = toml::from_str(DOC_TOML).unwrap();
    assert_eq!(program.validate(), Ok(()));
    assert_eq!(program.rules.tiers.len(), 2);
    assert_eq!(program.rules.cap_minor, Some(5_000_000));
    assert_eq!(program.for_partner("bob"), &program.rules);
    // alice's set is not merged with the program's: no tiers, no cap, no bonuses.
    assert_eq!(program.for_partner("alice"), &RuleSet { percent_bps: 1500, ..RuleSet::default() });
    let json = serde_json::to_string(&program).unwrap();
    assert_eq!(serde_json::from_str::<ProgramRules>(&json).unwrap(), program);
}

#[test]
fn unknown_fields_are_refused() {
    for text in ["percent = 10", "tiers = [{ from_minor = 0, percent_bps = 1, extra = 1 }]", "period = \"year\"", "[cap]"] {
        assert!(toml::from_str::<RuleSet>(text).is_err(), "{text}");
    }
    assert!(toml::from_str::<ProgramRules>("[partner.alice]").is_err());
    assert!(serde_json::from_str::<RuleSet>(r#"{"bonuses":[{"threshold":1,"amount_minor":1,"kind":"x"}]}"#).is_err());
}

#[test]
fn prorate_examples() {
    assert_eq!(prorate(1_000, 0, 10_000), 0);
    assert_eq!(prorate(1_000, 5_000, 10_000), 500);
    assert_eq!(prorate(1_000, 3_333, 10_000), 333);
    assert_eq!(prorate(1_000, 10_000, 10_000), 1_000);
    assert_eq!(prorate(1_000, 20_000, 10_000), 1_000);
    assert_eq!(prorate(999, 1, 3), 333);
    assert_eq!(prorate(0, 5_000, 10_000), 0);
    assert_eq!(prorate(1_000, 1, 0), 1_000);
    assert_eq!(prorate(i64::MAX, i64::MAX - 1, i64::MAX), i64::MAX - 1);
    // Three thirds: per-step rounding would void 333 * 3 = 999 and leave a unit behind.
    let steps = [prorate_step(1_000, 0, 1, 3), prorate_step(1_000, 1, 2, 3), prorate_step(1_000, 2, 3, 3)];
    assert_eq!(steps, [333, 333, 334]);
    // A total that goes backwards voids nothing.
    assert_eq!(prorate_step(1_000, 5, 2, 10), 0);
}

/// Valid rule sets with every rule kind in play.
fn rule_sets() -> impl Strategy<Value = RuleSet> {
    let tiers = prop::collection::vec((1i64..2_000_000, 0u32..=10_000), 0..5).prop_map(|steps| {
        let mut from = 0;
        let mut tiers = Vec::new();
        for (i, (gap, bps)) in steps.into_iter().enumerate() {
            if i > 0 {
                from += gap;
            }
            tiers.push(Tier { from_minor: from, percent_bps: bps });
        }
        tiers
    });
    let bonuses = prop::collection::vec((any::<bool>(), 1i64..1_000_000, 0i64..100_000), 0..6).prop_map(|raw| {
        let (mut volume, mut count) = (0, 0);
        raw.into_iter()
            .map(|(by_volume, gap, amount_minor)| {
                let (metric, last) = if by_volume { (Metric::Volume, &mut volume) } else { (Metric::Conversions, &mut count) };
                *last += if by_volume { gap } else { gap % 20 + 1 };
                Bonus { metric, threshold: *last, amount_minor }
            })
            .collect()
    });
    (0u32..=10_000, 0i64..100_000, tiers, bonuses, prop::option::of(0i64..2_000_000)).prop_map(
        |(percent_bps, fixed_minor, tiers, bonuses, cap_minor)| RuleSet {
            percent_bps,
            fixed_minor,
            tiers,
            bonuses,
            cap_minor,
            ..RuleSet::default()
        },
    )
}

/// A conversion: (share, amount) with 0 <= share <= amount.
fn conversions() -> impl Strategy<Value = (i64, i64)> {
    (0i64..10_000_000).prop_flat_map(|amount| (0..=amount, Just(amount)))
}

proptest! {
    #[test]
    fn a_stream_of_conversions_in_one_period_keeps_every_rule(
        rules in rule_sets(),
        stream in prop::collection::vec(conversions(), 1..40),
    ) {
        prop_assert_eq!(rules.validate(), Ok(()));
        let mut state = PeriodState::default();
        let mut fired = 0u32;
        for (share, amount) in stream {
            let calc = compute(&rules, &CommissionInput { occurred_at_ms: NOW_MS, share_minor: share, amount_minor: amount, before: state });
            let base = calc.base;
            prop_assert!(base.amount_minor >= 0 && base.amount_minor <= base.uncapped_minor);
            prop_assert_eq!(base.uncapped_minor, base.percent_minor + base.fixed_minor);
            prop_assert!(base.percent_minor <= share, "percent part {} above share {share}", base.percent_minor);
            prop_assert!(base.fixed_minor <= rules.fixed_minor);
            prop_assert_eq!(base.capped, base.amount_minor < base.uncapped_minor);
            for b in &calc.bonuses {
                prop_assert!(b.amount_minor >= 0 && b.amount_minor <= b.uncapped_minor);
                prop_assert!(fired & (1 << b.index) == 0, "bonus {} fired twice", b.index);
                fired |= 1 << b.index;
            }
            let sum = base.amount_minor + calc.bonuses.iter().map(|b| b.amount_minor).sum::<i64>();
            prop_assert_eq!(calc.total_minor, sum);
            prop_assert_eq!(calc.after.commission_minor, state.commission_minor + sum);
            prop_assert_eq!(calc.after.volume_minor, state.volume_minor + share);
            prop_assert_eq!(calc.after.conversions, state.conversions + 1);
            prop_assert_eq!(calc.after.bonuses_paid, fired);
            if let Some(cap) = rules.cap_minor {
                prop_assert!(calc.after.commission_minor <= cap);
            }
            state = calc.after;
        }
        // Every bonus whose threshold the period reached was paid, exactly once.
        for (i, b) in rules.bonuses.iter().enumerate() {
            let reached = i128::from(b.threshold) <= b.metric.value(state.volume_minor, state.conversions);
            prop_assert_eq!(reached, fired & (1 << i) != 0, "bonus {}", i);
        }
    }

    #[test]
    fn the_base_never_passes_the_share_without_a_fixed_amount(
        bps in 0u32..=10_000,
        (share, amount) in (0i64..=i64::MAX).prop_flat_map(|a| (0..=a, Just(a))),
        volume in 0i64..=i64::MAX,
    ) {
        let rules = pct(bps);
        let calc = compute(&rules, &CommissionInput { occurred_at_ms: NOW_MS, share_minor: share, amount_minor: amount, before: state(volume, 0, 0) });
        prop_assert!(calc.base.amount_minor >= 0 && calc.base.amount_minor <= share);
        prop_assert_eq!(i128::from(calc.base.amount_minor), i128::from(share) * i128::from(bps) / 10_000);
        prop_assert!(calc.after.volume_minor >= volume);
    }

    #[test]
    fn partial_refunds_never_void_more_than_the_commission(
        commission in 0i64..=i64::MAX,
        amount in 1i64..=i64::MAX,
        cuts in prop::collection::vec(0i64..=i64::MAX, 0..8),
    ) {
        // Refunds as cut points of the amount, so they sum to at most the amount.
        let mut points: Vec<i64> = cuts.into_iter().map(|c| c % amount).collect();
        points.sort_unstable();
        let mut voided: i128 = 0;
        let mut before = 0;
        for after in points.into_iter().chain([amount]) {
            let step = prorate_step(commission, before, after, amount);
            prop_assert!(step >= 0);
            voided += i128::from(step);
            prop_assert_eq!(voided, i128::from(prorate(commission, after, amount)));
            prop_assert!(voided <= i128::from(commission));
            before = after;
        }
        // The last refund completes the amount: all of it is voided, exactly.
        prop_assert_eq!(voided, i128::from(commission));
    }
}
