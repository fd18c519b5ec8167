//! The five attribution models, pure and exact.
//!
//! Skeleton: the implementation lands with the models work.

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

/// Splits `amount_minor` between touches at `touch_ts_ms` (any order) for a conversion at
/// `conversion_ts_ms`. Returns one share per touch, aligned with the input; the shares are
/// non-negative and sum to `amount_minor` exactly (largest remainder).
pub fn shares(model: Model, half_life_hours: f64, conversion_ts_ms: u64, touch_ts_ms: &[u64], amount_minor: i64) -> Vec<i64> {
    let _ = (model, half_life_hours, conversion_ts_ms, touch_ts_ms, amount_minor);
    unimplemented!("lands with the models work")
}
