//! Several lifecycle steps in one transaction, as the conversion writer's group runs them.

use super::*;

/// Several accruals in one transaction (as the writer's group runs them) see each other's
/// period state: the tier, the bonus and the cap come out as they do one transaction each.
pub(super) fn accruals_in_one_transaction_see_each_other<H: Harness>(h: &mut H) {
    let rs = rules(RuleSet {
        tiers: vec![Tier { from_minor: 0, percent_bps: 1000 }, Tier { from_minor: 15_000, percent_bps: 2000 }],
        bonuses: vec![Bonus { metric: Metric::Conversions, threshold: 2, amount_minor: 300 }],
        cap_minor: Some(4_000),
        ..RuleSet::default()
    });
    let sale = |conv| Sale { conversion_id: conv, program: PROGRAM, currency: usd(), amount_minor: 10_000, occurred_at_ms: T0 };
    let together: Vec<(String, i64)> = h
        .run(|tx| {
            let mut all = Vec::new();
            for conv in ["cv_g1", "cv_g2", "cv_g3"] {
                all.extend(accrue(tx, &sale(conv), &shares(&[("alice", 10_000)]), &rs, T0)?);
            }
            Ok::<_, LifecycleError>(all)
        })
        .unwrap()
        .into_iter()
        .map(|c| (c.item, c.amount_minor))
        .collect();
    // Tiers go by the volume before the conversion: 10 % on the first two (0 and 10,000 before),
    // the bonus at the second conversion, and 20 % on the third (20,000 before), capped at what
    // is left of 4,000 (4,000 - 1,000 - 1,000 - 300).
    assert_eq!(
        together,
        [("base".to_string(), 1_000), ("base".to_string(), 1_000), ("bonus:0".to_string(), 300), ("base".to_string(), 1_700)],
        "{}",
        h.name()
    );
    let key = PeriodRef { program: PROGRAM.into(), partner: "alice".into(), currency: usd(), label: "2026-03".into() };
    let state = h.run(|tx| tx.period_state(&key)).unwrap();
    assert_eq!((state.volume_minor, state.conversions, state.commission_minor), (30_000, 3, 4_000), "{}", h.name());
    clean(h);
}
