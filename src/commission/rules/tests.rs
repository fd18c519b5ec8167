use super::super::{Bonus, Metric, Period, ProgramRules, RuleSet, Tier};

fn tier(from_minor: i64, percent_bps: u32) -> Tier {
    Tier { from_minor, percent_bps }
}

fn bonus(metric: Metric, threshold: i64, amount_minor: i64) -> Bonus {
    Bonus { metric, threshold, amount_minor }
}

/// `rules` fails validation with exactly `expected`.
fn check_invalid(rules: RuleSet, expected: &str) {
    match rules.validate() {
        Ok(()) => panic!("{rules:?} passed, expected {expected:?}"),
        Err(e) => assert_eq!(e.to_string(), expected),
    }
}

fn with(f: impl FnOnce(&mut RuleSet)) -> RuleSet {
    let mut rules = RuleSet::default();
    f(&mut rules);
    rules
}

#[test]
fn validation_names_the_field_and_why() {
    check_invalid(with(|r| r.percent_bps = 10_001), "percent_bps: must be in 0..=10000 basis points, got 10001");
    check_invalid(with(|r| r.fixed_minor = -1), "fixed_minor: must be in 0..=1000000000000000, got -1");
    check_invalid(with(|r| r.fixed_minor = i64::MAX), &format!("fixed_minor: must be in 0..=1000000000000000, got {}", i64::MAX));
    check_invalid(with(|r| r.tiers = vec![tier(1, 500)]), "tiers[0].from_minor: must be 0, so every volume has a tier");
    check_invalid(
        with(|r| r.tiers = vec![tier(0, 500), tier(100, 600), tier(100, 700)]),
        "tiers[2].from_minor: must be greater than tiers[1].from_minor",
    );
    check_invalid(with(|r| r.tiers = vec![tier(0, 500), tier(-5, 600)]), "tiers[1].from_minor: must be in 0..=1000000000000000, got -5");
    check_invalid(
        with(|r| r.tiers = vec![tier(0, 500), tier(10, 20_000)]),
        "tiers[1].percent_bps: must be in 0..=10000 basis points, got 20000",
    );
    check_invalid(with(|r| r.tiers = (0..33).map(|i| tier(i, 1)).collect()), "tiers: at most 32 tiers, got 33");
    check_invalid(
        with(|r| r.bonuses = vec![bonus(Metric::Volume, 0, 1)]),
        "bonuses[0].threshold: must be at least 1: a bonus is paid when a threshold is reached",
    );
    check_invalid(
        with(|r| r.bonuses = vec![bonus(Metric::Volume, 10, -1)]),
        "bonuses[0].amount_minor: must be in 0..=1000000000000000, got -1",
    );
    check_invalid(
        with(|r| r.bonuses = vec![bonus(Metric::Volume, 10, 1), bonus(Metric::Conversions, 5, 1), bonus(Metric::Volume, 10, 1)]),
        "bonuses[2].threshold: must be greater than bonuses[0].threshold (the previous volume bonus)",
    );
    check_invalid(
        with(|r| r.bonuses = vec![bonus(Metric::Conversions, 5, 1), bonus(Metric::Volume, 10, 1), bonus(Metric::Conversions, 4, 1)]),
        "bonuses[2].threshold: must be greater than bonuses[0].threshold (the previous conversions bonus)",
    );
    check_invalid(with(|r| r.bonuses = (1..=33).map(|i| bonus(Metric::Volume, i, 1)).collect()), "bonuses: at most 32 bonuses, got 33");
    check_invalid(with(|r| r.cap_minor = Some(-1)), "cap_minor: must be in 0..=1000000000000000, got -1");
    check_invalid(with(|r| r.lock_days = 366), "lock_days: must be in 0..=365, got 366");
}

#[test]
fn valid_rules_pass() {
    let full = RuleSet {
        percent_bps: 10_000,
        fixed_minor: 1_000_000_000_000_000,
        tiers: (0..32).map(|i| tier(i * 10, 100)).collect(),
        bonuses: (1..=32).map(|i| bonus(if i % 2 == 0 { Metric::Volume } else { Metric::Conversions }, i, 5)).collect(),
        cap_minor: Some(0),
        period: Period::Day,
        lock_days: 0,
    };
    assert_eq!(full.validate(), Ok(()));
    // Thresholds rise per metric, so volume and conversion ladders may interleave freely.
    let interleaved =
        with(|r| r.bonuses = vec![bonus(Metric::Volume, 100, 1), bonus(Metric::Conversions, 2, 1), bonus(Metric::Volume, 200, 1)]);
    assert_eq!(interleaved.validate(), Ok(()));
}

#[test]
fn program_validation_prefixes_the_path() {
    let mut program = ProgramRules::default();
    assert_eq!(program.validate(), Ok(()));
    program.partners.insert("alice".into(), with(|r| r.tiers = vec![tier(0, 1), tier(0, 2)]));
    assert_eq!(program.validate().unwrap_err().to_string(), "partners.alice.tiers[1].from_minor: must be greater than tiers[0].from_minor");
    program.partners.clear();
    program.partners.insert("al ice".into(), RuleSet::default());
    assert_eq!(program.validate().unwrap_err().to_string(), "partners: \"al ice\" must be 1..=64 of [A-Za-z0-9_-]");
    program.partners.clear();
    program.rules.lock_days = 1000;
    assert_eq!(program.validate().unwrap_err().path, "rules.lock_days");
}

#[test]
fn the_version_ignores_source_formatting_and_order() {
    let a: RuleSet = toml::from_str(
        "percent_bps = 1000\ncap_minor = 50000\ntiers = [{ from_minor = 0, percent_bps = 500 }, { from_minor = 1000000, percent_bps = 700 }]\n",
    )
    .unwrap();
    let b: RuleSet = toml::from_str(
        "# the same, reordered\ntiers = [\n  { percent_bps = 500, from_minor = 0 },\n  { percent_bps = 700, from_minor = 1_000_000 },\n]\ncap_minor=50_000\nperiod = \"month\"\nlock_days = 30\n",
    )
    .unwrap();
    let c: RuleSet = serde_json::from_str(
        r#"{"lock_days":30,"tiers":[{"percent_bps":500,"from_minor":0},{"from_minor":1000000,"percent_bps":700}],"cap_minor":50000}"#,
    )
    .unwrap();
    assert_eq!(a, b);
    assert_eq!(a.version_hash(), b.version_hash());
    assert_eq!(a.version_hash(), c.version_hash());
    // Round trips keep it.
    let again: RuleSet = toml::from_str(&toml::to_string(&a).unwrap()).unwrap();
    assert_eq!(again.version_hash(), a.version_hash());
    let again: RuleSet = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
    assert_eq!(again.version_hash(), a.version_hash());
}

#[test]
fn the_version_is_pinned() {
    // A stored commission names its rules by this; changing the encoding orphans every one.
    let rules = RuleSet::default();
    assert_eq!(
        rules.canonical(),
        "clickgate.commission.rules.v1\npercent_bps=1000\nfixed_minor=0\ntiers=\nbonuses=\ncap_minor=none\nperiod=month\nlock_days=30\n"
    );
    assert_eq!(rules.version_hash(), "b6ece01fdc08cb88");
    assert_eq!(rules.version_hash().len(), 16);
    // The hash itself, not the copy remembered by the first call, says the same.
    assert_eq!(rules.hash_version(), "b6ece01fdc08cb88");
}

#[test]
fn the_version_changes_with_any_field() {
    let base = RuleSet {
        tiers: vec![tier(0, 500), tier(1_000, 700)],
        bonuses: vec![bonus(Metric::Volume, 100, 10), bonus(Metric::Conversions, 3, 20)],
        cap_minor: Some(5_000),
        ..RuleSet::default()
    };
    let changes: Vec<RuleSet> = vec![
        RuleSet { percent_bps: 1001, ..base.clone() },
        RuleSet { fixed_minor: 1, ..base.clone() },
        RuleSet { tiers: vec![tier(0, 500), tier(1_001, 700)], ..base.clone() },
        RuleSet { tiers: vec![tier(0, 500), tier(1_000, 701)], ..base.clone() },
        RuleSet { tiers: vec![tier(0, 500)], ..base.clone() },
        RuleSet { bonuses: vec![bonus(Metric::Conversions, 100, 10), bonus(Metric::Conversions, 3, 20)], ..base.clone() },
        RuleSet { bonuses: vec![bonus(Metric::Volume, 101, 10), bonus(Metric::Conversions, 3, 20)], ..base.clone() },
        RuleSet { bonuses: vec![bonus(Metric::Volume, 100, 11), bonus(Metric::Conversions, 3, 20)], ..base.clone() },
        RuleSet { bonuses: vec![bonus(Metric::Conversions, 3, 20), bonus(Metric::Volume, 100, 10)], ..base.clone() },
        RuleSet { cap_minor: None, ..base.clone() },
        RuleSet { cap_minor: Some(5_001), ..base.clone() },
        RuleSet { period: Period::Week, ..base.clone() },
        RuleSet { lock_days: 31, ..base.clone() },
    ];
    let mut seen = std::collections::HashSet::from([base.version_hash()]);
    for (i, changed) in changes.iter().enumerate() {
        assert_eq!(changed.version_hash(), changed.hash_version(), "change {i}: the remembered version is the hash");
        assert!(seen.insert(changed.version_hash()), "change {i} kept a version: {changed:?}");
    }
}
