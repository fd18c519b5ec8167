//! Commissions: what a partner earns on its attributed share of a conversion.
//!
//! Pure and exact, like `attribution`: no clock, no I/O. Time comes in as the conversion's
//! `occurred_at_ms`, the partner's period state before the conversion comes in as an argument
//! and the state after it goes out in the answer, so the writer can run `compute` inside its
//! transaction and store both. Amounts are integer minor units; every division is explicit.
//!
//! - `rules`: `RuleSet::validate` (the error names the field path and why) and
//!   `RuleSet::version_hash`, which a commission records so it is known which rules made it.
//! - `period`: `Period::key` / `period_of`, the UTC calendar period a timestamp falls in.
//! - `compute`: `compute` (one conversion's base item, bonus items, cap and new period state)
//!   and `prorate` (the part of a commission a refund voids).
//!
//! # Semantics
//!
//! - **Base.** `floor(share * bps / 10000) + floor(fixed * share / amount)`: the percent of the
//!   partner's share, plus the fixed amount paid pro rata to the partner's share of the
//!   conversion, so a 50/50 split pays half the fixed amount each. A conversion of amount 0
//!   has no share to prorate by and pays no fixed amount.
//! - **Tiers** replace `percent_bps` when present. The tier is the last one whose `from_minor`
//!   is at most the partner's period volume *before* this conversion, so one sale is never
//!   split across two rates; the sale that crosses a threshold earns the old rate and the next
//!   one the new. `tiers[0].from_minor` must be 0, so every volume has a tier.
//! - **Volume** is the sum of the partner's attributed shares (`share_minor`) in the period;
//!   **conversions** counts every conversion that credited the partner, a zero share included.
//! - **Bonuses** are looked at *after* this conversion: a bonus not yet paid in the period
//!   whose metric (`volume` or `conversions`) has reached its threshold fires, once, as its own
//!   item. Which bonuses were paid travels in `PeriodState::bonuses_paid` (bit `i` = bonus
//!   `i`), so the ledger can key a bonus by (period label, bonus index).
//! - **Cap.** The partner's total commission in a period, bonuses included, never passes
//!   `cap_minor`. Items are capped in order, base first then bonuses by index: the item that
//!   reaches the cap is cut to what remains and later ones pay 0, each marked `capped`.
//! - **Rounding** is floor everywhere (every quantity is non-negative), so the partner never
//!   gets a minor unit the rule did not earn. Intermediates are `i128`; nothing overflows.
//! - **Refunds.** `prorate(commission, refunded, amount)` is cumulative: the void for a refund
//!   is `prorate(total after) - prorate(total before)`, so partial refunds never sum past the
//!   commission and a full refund voids it exactly. Bonuses are not prorated here.
//!
//! # Config shape
//!
//! A program's rules, with whole-set overrides per partner, as they read in TOML:
//!
//! ```toml
//! [rules]
//! period = "month"           # "month" (UTC calendar month), "week" (ISO, Monday UTC), "day"
//! lock_days = 30             # refund window before approval
//! fixed_minor = 0            # per conversion, pro rata to the partner's share
//! cap_minor = 5_000_000      # per period; absent means no cap
//! tiers = [                  # replace percent_bps when present
//!   { from_minor = 0, percent_bps = 500 },
//!   { from_minor = 1_000_000, percent_bps = 700 },
//! ]
//! bonuses = [
//!   { metric = "volume", threshold = 2_000_000, amount_minor = 10_000 },
//!   { metric = "conversions", threshold = 100, amount_minor = 5_000 },
//! ]
//!
//! [partners.alice]           # replaces the program's rules for alice, whole
//! percent_bps = 1500
//! ```

mod compute;
mod period;
mod rules;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use compute::{compute, prorate, prorate_step, BaseItem, BonusItem, CommissionCalc, CommissionInput, PeriodState};
pub use period::{period_of, PeriodKey};

/// Basis points in one: 10000 bp = 100%.
pub const BPS_ONE: u32 = 10_000;
/// At most this many tiers, and this many bonuses (a bonus is one bit of `bonuses_paid`).
pub const TIERS_MAX: usize = 32;
/// See `TIERS_MAX`.
pub const BONUSES_MAX: usize = 32;
/// At most this many per-partner overrides in one program.
pub const OVERRIDES_MAX: usize = 10_000;
/// The largest amount or threshold a rule may name: 10^15 minor units, so sums of rule
/// amounts stay far inside `i64`.
pub const RULE_AMOUNT_MAX: i64 = 1_000_000_000_000_000;
/// The longest refund window, in days.
pub const LOCK_DAYS_MAX: u32 = 365;

/// One rule set: what a partner earns on its share of a conversion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RuleSet {
    /// Percent of the share, in basis points (0..=10000). Ignored when `tiers` is not empty.
    pub percent_bps: u32,
    /// A fixed amount per conversion, paid pro rata to the partner's share of it.
    pub fixed_minor: i64,
    /// Percent by the partner's period volume before the conversion; ascending `from_minor`.
    pub tiers: Vec<Tier>,
    /// Fixed amounts paid once per period when a threshold is first reached.
    pub bonuses: Vec<Bonus>,
    /// The most a partner earns in one period, bonuses included. `None` is no cap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cap_minor: Option<i64>,
    /// The period that volume, conversion counts, bonuses and the cap are counted over.
    pub period: Period,
    /// The refund window before a commission is approved (the lifecycle reads it).
    pub lock_days: u32,
}

impl Default for RuleSet {
    /// 10% of the share, monthly, a 30-day lock.
    fn default() -> Self {
        RuleSet {
            percent_bps: 1000,
            fixed_minor: 0,
            tiers: Vec::new(),
            bonuses: Vec::new(),
            cap_minor: None,
            period: Period::Month,
            lock_days: 30,
        }
    }
}

/// A volume tier: from `from_minor` of period volume on, the share earns `percent_bps`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    pub from_minor: i64,
    pub percent_bps: u32,
}

/// A bonus: `amount_minor`, once per period, when `metric` first reaches `threshold`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bonus {
    #[serde(default)]
    pub metric: Metric,
    /// Minor units of volume, or a number of conversions.
    pub threshold: i64,
    pub amount_minor: i64,
}

/// What a bonus threshold counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// The sum of the partner's attributed shares in the period.
    #[default]
    Volume,
    /// The number of conversions that credited the partner in the period.
    Conversions,
}

impl Metric {
    /// The config and API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Metric::Volume => "volume",
            Metric::Conversions => "conversions",
        }
    }
}

/// The UTC calendar period commissions are counted over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    /// A calendar month, labelled `2026-11`.
    #[default]
    Month,
    /// An ISO week from Monday 00:00 UTC, labelled `2026-W47`.
    Week,
    /// A calendar day, labelled `2026-11-22`.
    Day,
}

impl Period {
    /// The config and API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Month => "month",
            Period::Week => "week",
            Period::Day => "day",
        }
    }
}

/// A program's rules: one set for every partner, and whole-set overrides by partner id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProgramRules {
    pub rules: RuleSet,
    /// A partner listed here earns by its own set, never a merge with `rules`.
    pub partners: BTreeMap<String, RuleSet>,
}

impl ProgramRules {
    /// The rule set that applies to `partner`.
    pub fn for_partner(&self, partner: &str) -> &RuleSet {
        self.partners.get(partner).unwrap_or(&self.rules)
    }
}

/// A rule that cannot be used: the field's path (`tiers[1].from_minor`) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {why}")]
pub struct RuleError {
    pub path: String,
    pub why: String,
}

#[cfg(test)]
mod tests;
