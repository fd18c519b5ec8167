//! One conversion's commission for one partner, and the part a refund voids.

use serde::{Deserialize, Serialize};

use super::{Metric, PeriodKey, RuleSet, BONUSES_MAX, BPS_ONE};

/// A partner's running totals in one period, as they stood before a conversion (input) or
/// stand after it (output). The writer stores one per (program, partner, period label).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeriodState {
    /// The sum of the partner's attributed shares in the period.
    pub volume_minor: i64,
    /// Conversions that credited the partner in the period.
    pub conversions: u64,
    /// Commission earned in the period, bonuses included; what the cap is checked against.
    pub commission_minor: i64,
    /// Bit `i` is set once bonus `i` has been paid in the period.
    pub bonuses_paid: u32,
}

/// What `compute` needs about one conversion and one partner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommissionInput {
    /// When the conversion happened; picks the period.
    pub occurred_at_ms: u64,
    /// The partner's attributed share of the conversion, `0..=amount_minor`.
    pub share_minor: i64,
    /// The conversion's whole amount, which the fixed amount is prorated against.
    pub amount_minor: i64,
    /// The partner's state in the conversion's period before it. The caller looks it up by
    /// `period_of(rules.period, occurred_at_ms).label`; a new period starts from `default()`.
    pub before: PeriodState,
}

/// The per-conversion item: percent (or tier) of the share plus the prorated fixed amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseItem {
    /// What is paid, after the cap.
    pub amount_minor: i64,
    /// `percent_minor + fixed_minor`, before the cap.
    pub uncapped_minor: i64,
    /// The rate used: the tier's, or the rule set's `percent_bps`.
    pub percent_bps: u32,
    /// The tier used, when the rules have tiers.
    pub tier: Option<usize>,
    /// `floor(share * percent_bps / 10000)`.
    pub percent_minor: i64,
    /// `floor(fixed * share / amount)`: the fixed amount's part for this share.
    pub fixed_minor: i64,
    /// Whether the cap cut this item.
    pub capped: bool,
}

/// A bonus that fired with this conversion: its own commission, once per period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BonusItem {
    /// Index into the rule set's `bonuses`; with the period label, the bonus's ledger cause.
    pub index: usize,
    pub metric: Metric,
    pub threshold: i64,
    /// What is paid, after the cap.
    pub amount_minor: i64,
    /// The bonus's amount before the cap.
    pub uncapped_minor: i64,
    /// Whether the cap cut this item.
    pub capped: bool,
}

/// Everything one conversion earns one partner, and the period state it leaves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommissionCalc {
    pub period: PeriodKey,
    /// `RuleSet::version_hash` of the rules that produced this.
    pub version: String,
    pub base: BaseItem,
    /// Bonuses that fired, by ascending index.
    pub bonuses: Vec<BonusItem>,
    /// The base plus every bonus, as paid.
    pub total_minor: i64,
    /// What the cap cut from the items, in all.
    pub capped_minor: i64,
    pub after: PeriodState,
}

/// Computes one partner's commission on its share of one conversion under `rules` (see the
/// module docs for the semantics). Pure: the period state comes in and goes out.
///
/// Expects validated rules and `0 <= share_minor <= amount_minor` (debug-asserted). A release
/// build given anything else still answers with every amount non-negative and within the cap:
/// a negative share or amount counts as 0, and a share above the amount prorates the fixed
/// amount as a whole share.
pub fn compute(rules: &RuleSet, input: &CommissionInput) -> CommissionCalc {
    debug_assert!(rules.validate().is_ok(), "unvalidated rules: {:?}", rules.validate());
    debug_assert!(
        0 <= input.share_minor && input.share_minor <= input.amount_minor,
        "share {} outside 0..={}",
        input.share_minor,
        input.amount_minor
    );
    let before = input.before;
    let share = i128::from(input.share_minor.max(0));
    let amount = i128::from(input.amount_minor.max(0));

    // The tier is chosen by the volume before this conversion, so a sale never straddles two.
    let (percent_bps, tier) = rules.rate_at(before.volume_minor);
    let percent_part = share * i128::from(percent_bps.min(BPS_ONE)) / i128::from(BPS_ONE);
    let fixed_part = if amount > 0 { i128::from(rules.fixed_minor.max(0)) * share.min(amount) / amount } else { 0 };

    let mut cap = Cap::new(rules.cap_minor, before.commission_minor);
    let uncapped = to_i64(percent_part + fixed_part);
    let (paid, capped) = cap.take(uncapped);
    let base = BaseItem {
        amount_minor: paid,
        uncapped_minor: uncapped,
        percent_bps,
        tier,
        percent_minor: to_i64(percent_part),
        fixed_minor: to_i64(fixed_part),
        capped,
    };

    let mut after = PeriodState {
        volume_minor: saturate(i128::from(before.volume_minor) + share),
        conversions: before.conversions.saturating_add(1),
        commission_minor: before.commission_minor,
        bonuses_paid: before.bonuses_paid,
    };
    // Bonuses look at the state after this conversion: the conversion that reaches a
    // threshold is the one that fires it.
    let mut bonuses = Vec::new();
    for (index, bonus) in rules.bonuses.iter().enumerate().take(BONUSES_MAX) {
        let bit = 1u32 << index;
        if after.bonuses_paid & bit != 0 || bonus.metric.value(after.volume_minor, after.conversions) < i128::from(bonus.threshold) {
            continue;
        }
        let uncapped = bonus.amount_minor.max(0);
        let (paid, capped) = cap.take(uncapped);
        // Paid even when the cap leaves nothing for it: it fired, and must not fire again.
        after.bonuses_paid |= bit;
        bonuses.push(BonusItem {
            index,
            metric: bonus.metric,
            threshold: bonus.threshold,
            amount_minor: paid,
            uncapped_minor: uncapped,
            capped,
        });
    }

    let total: i128 = i128::from(base.amount_minor) + bonuses.iter().map(|b| i128::from(b.amount_minor)).sum::<i128>();
    let uncapped_total: i128 = i128::from(base.uncapped_minor) + bonuses.iter().map(|b| i128::from(b.uncapped_minor)).sum::<i128>();
    after.commission_minor = saturate(i128::from(before.commission_minor) + total);

    let calc = CommissionCalc {
        period: rules.period.key(input.occurred_at_ms),
        version: rules.version_hash(),
        base,
        bonuses,
        total_minor: to_i64(total),
        capped_minor: to_i64(uncapped_total - total),
        after,
    };
    debug_assert!(calc.total_minor >= 0 && calc.capped_minor >= 0);
    debug_assert!(rules.cap_minor.is_none_or(|c| calc.total_minor <= c.saturating_sub(before.commission_minor).max(0)));
    calc
}

/// What is left under the cap, handed out item by item.
struct Cap {
    left: Option<i128>,
}

impl Cap {
    fn new(cap_minor: Option<i64>, earned_minor: i64) -> Cap {
        // Earned can pass the cap if the cap was lowered mid-period; nothing is left then.
        Cap { left: cap_minor.map(|c| (i128::from(c) - i128::from(earned_minor)).max(0)) }
    }

    /// Pays as much of `amount` as the cap allows: (paid, whether it was cut).
    fn take(&mut self, amount: i64) -> (i64, bool) {
        let Some(left) = self.left.as_mut() else { return (amount, false) };
        let paid = i128::from(amount).min(*left);
        *left -= paid;
        (to_i64(paid), paid < i128::from(amount))
    }
}

/// A non-negative `i128` into `i64`, saturating.
fn to_i64(v: i128) -> i64 {
    i64::try_from(v.max(0)).unwrap_or(i64::MAX)
}

/// An `i128` sum into `i64`, saturating at both ends; keeps the sign, unlike `to_i64`.
fn saturate(v: i128) -> i64 {
    v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

/// The part of `commission_minor` voided once `refunded_minor` of the conversion's
/// `amount_minor` has been refunded in all: `floor(commission * refunded / amount)`, and
/// exactly `commission_minor` once the refund covers the amount.
///
/// Cumulative by design: pass the running total refunded, and void the difference from the
/// previous call (`prorate_step`). The voids then telescope to `prorate(total)`, so no number
/// of partial refunds can void more than the commission or leave a remainder after a full
/// refund; rounding down per step could do both.
///
/// A refund of 0 or less voids nothing; a non-positive commission has nothing to void. An
/// amount of 0 (nothing to prorate against) is voided whole by any positive refund.
pub fn prorate(commission_minor: i64, refunded_minor: i64, amount_minor: i64) -> i64 {
    if commission_minor <= 0 || refunded_minor <= 0 {
        return 0;
    }
    if refunded_minor >= amount_minor {
        return commission_minor;
    }
    let voided = i128::from(commission_minor) * i128::from(refunded_minor) / i128::from(amount_minor);
    debug_assert!((0..=i128::from(commission_minor)).contains(&voided));
    voided as i64
}

/// The void for one refund that brings the total refunded from `refunded_before_minor` to
/// `refunded_after_minor`: `prorate(after) - prorate(before)`, never negative.
pub fn prorate_step(commission_minor: i64, refunded_before_minor: i64, refunded_after_minor: i64, amount_minor: i64) -> i64 {
    let after = prorate(commission_minor, refunded_after_minor.max(refunded_before_minor), amount_minor);
    after - prorate(commission_minor, refunded_before_minor, amount_minor)
}
