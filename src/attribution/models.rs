//! The five attribution models, pure and exact.
//!
//! Every model reduces to integer weights, one per touch, and one exact split of the amount
//! by the largest remainder: each touch gets `floor(amount * w / Σw)`, and the few minor units
//! left over go one each to the touches with the largest remainders. Integer weights make
//! `linear` and `position_based` exact; `time_decay` computes its decay in `f64` but turns it
//! into 62-bit fixed-point weights first, so the split itself is still integer arithmetic and
//! the sum is exact whatever the float rounding did.
//!
//! Remainder ties (equal remainders, as in `linear`) go to the later touch first, ordered by
//! `(ts, input index)`: of two otherwise equal touches, the one closer to the conversion gets
//! the odd minor unit, which is the direction every model here already leans.

use serde::{Deserialize, Serialize};

/// How a conversion's amount is split between the touches that count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Model {
    #[default]
    LastClick,
    FirstClick,
    Linear,
    TimeDecay,
    PositionBased,
}

impl Model {
    /// Every model.
    pub const ALL: [Model; 5] = [Model::LastClick, Model::FirstClick, Model::Linear, Model::TimeDecay, Model::PositionBased];

    /// The config and API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Model::LastClick => "last_click",
            Model::FirstClick => "first_click",
            Model::Linear => "linear",
            Model::TimeDecay => "time_decay",
            Model::PositionBased => "position_based",
        }
    }
}

/// Fixed-point one for `time_decay` weights. With an amount below 2^63 and a weight at most
/// 2^62, `amount * weight` stays below 2^125 and fits a `u128`.
const DECAY_ONE: u128 = 1 << 62;

const MS_PER_HOUR: f64 = 3_600_000.0;

/// Splits `amount_minor` between touches at `touch_ts_ms` (any order) for a conversion at
/// `conversion_ts_ms`. Returns one share per touch, aligned with the input; the shares are
/// non-negative and sum to `amount_minor` exactly (largest remainder).
///
/// Touches are ordered by `(ts, input index)`, so equal timestamps keep their input order.
/// `time_decay` measures a touch's age from the conversion; a touch after the conversion has
/// age 0. `half_life_hours` is only read by `time_decay`; callers validate it (0.1..=8760). A
/// value outside that range (zero, negative, NaN, infinite) still gives an exact, non-negative
/// split, never a panic.
///
/// `amount_minor` must not be negative (debug-asserted). A release build given a negative
/// amount splits its magnitude and negates every share, so the sum is still exact.
pub fn shares(model: Model, half_life_hours: f64, conversion_ts_ms: u64, touch_ts_ms: &[u64], amount_minor: i64) -> Vec<i64> {
    debug_assert!(amount_minor >= 0, "amount_minor {amount_minor} is negative");
    let n = touch_ts_ms.len();
    let mut out = vec![0i64; n];
    if n == 0 || amount_minor == 0 {
        return out;
    }
    let amount = u128::from(amount_minor.unsigned_abs());
    let negate = amount_minor < 0;
    match model {
        Model::LastClick => {
            // The latest touch; of equal timestamps the later input wins, as (ts, index) orders.
            let winner = (0..n).max_by_key(|&i| (touch_ts_ms[i], i)).unwrap_or(0);
            out[winner] = to_share(amount, negate);
        }
        Model::FirstClick => {
            let winner = (0..n).min_by_key(|&i| (touch_ts_ms[i], i)).unwrap_or(0);
            out[winner] = to_share(amount, negate);
        }
        Model::Linear => split(&mut out, touch_ts_ms, amount, negate, |_| 1),
        Model::PositionBased => {
            // 40/20/40 over a common denominator of 5(n-2): the ends weigh 2(n-2) each and every
            // middle touch 1. Two touches split evenly, one takes everything. Only the ends are
            // special, so finding them is enough; no sort.
            let first = (0..n).min_by_key(|&i| (touch_ts_ms[i], i)).unwrap_or(0);
            let last = (0..n).max_by_key(|&i| (touch_ts_ms[i], i)).unwrap_or(0);
            let end_weight = if n <= 2 { 1 } else { 2 * (n as u128 - 2) };
            split(&mut out, touch_ts_ms, amount, negate, |i| if i == first || i == last { end_weight } else { 1 });
        }
        Model::TimeDecay => {
            // Decay relative to the youngest touch: 0.5^((age - age_min)/h) is the weight
            // 0.5^(age/h) times one common factor, so the normalised split is the same, and the
            // youngest weighs exactly one. That keeps old journeys and tiny half-lives from
            // underflowing every weight to zero.
            let age_ms = |i: usize| conversion_ts_ms.saturating_sub(touch_ts_ms[i]);
            let age_min_ms = (0..n).map(age_ms).min().unwrap_or(0);
            split(&mut out, touch_ts_ms, amount, negate, |i| {
                let older_ms = age_ms(i) - age_min_ms;
                if older_ms == 0 {
                    return DECAY_ONE;
                }
                let w = 0.5f64.powf(older_ms as f64 / MS_PER_HOUR / half_life_hours);
                // In [0, 1] for any positive half-life; `as` saturates, and maps NaN to 0.
                (w.clamp(0.0, 1.0) * DECAY_ONE as f64) as u128
            });
        }
    }
    debug_assert_eq!(out.len(), n);
    debug_assert_eq!(out.iter().map(|&s| i128::from(s)).sum::<i128>(), i128::from(amount_minor));
    debug_assert!(negate || out.iter().all(|&s| s >= 0));
    out
}

/// One touch in a split: its weight, then its remainder once the floors are handed out.
struct Part {
    weight_then_rem: u128,
    ts: u64,
    index: usize,
}

/// Largest-remainder split of `amount` by `weight(i)`, written into `out`. At least one weight
/// must be positive. Each weight is computed once (time decay's is a `powf`).
fn split(out: &mut [i64], touch_ts_ms: &[u64], amount: u128, negate: bool, weight: impl Fn(usize) -> u128) {
    let mut parts: Vec<Part> = (0..out.len()).map(|i| Part { weight_then_rem: weight(i), ts: touch_ts_ms[i], index: i }).collect();
    let total: u128 = parts.iter().map(|p| p.weight_then_rem).sum();
    debug_assert!(total > 0, "every weight is zero");
    if total == 0 {
        return;
    }
    let mut handed: u128 = 0;
    for part in &mut parts {
        let scaled = amount * part.weight_then_rem;
        let quota = scaled / total;
        handed += quota;
        out[part.index] = to_share(quota, negate);
        part.weight_then_rem = scaled % total;
    }
    // The floors fall short by (Σ remainders) / total, which is less than the number of touches.
    let left = usize::try_from(amount - handed).unwrap_or(usize::MAX).min(parts.len());
    if left == 0 {
        return;
    }
    // Largest remainder first, then the later touch: (ts, index) descending. The keys are
    // unique (the index), so the unstable selection is deterministic.
    let before = |a: &Part, b: &Part| (b.weight_then_rem, b.ts, b.index).cmp(&(a.weight_then_rem, a.ts, a.index));
    if left < parts.len() {
        parts.select_nth_unstable_by(left - 1, before);
    }
    for part in &parts[..left] {
        out[part.index] += if negate { -1 } else { 1 };
    }
}

/// A magnitude of at most 2^63 as a share with the amount's sign.
fn to_share(magnitude: u128, negate: bool) -> i64 {
    let signed = magnitude as i128;
    (if negate { -signed } else { signed }) as i64
}

#[cfg(test)]
mod tests;
