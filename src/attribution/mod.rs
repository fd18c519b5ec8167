//! Attribution: which touches a conversion credits, and how the amount is split.
//!
//! `models` holds the five pure split functions. `engine` gathers a conversion's candidate
//! touches (signed click id, then the visitor's touches, then a coupon), decides which count
//! and why, and hands the counted ones to the program's model.

pub mod engine;
pub mod models;

use serde::{Deserialize, Serialize};

pub use models::Model;

/// A program's attribution settings.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub model: Model,
    /// Clicks older than this before the conversion do not count.
    pub window_days: u32,
    /// `time_decay`'s half-life.
    pub half_life_hours: f64,
    /// A click closer than this to its conversion is treated as click injection.
    pub min_click_to_conversion_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { model: Model::LastClick, window_days: 30, half_life_hours: 168.0, min_click_to_conversion_ms: 10_000 }
    }
}

impl Settings {
    /// Checks the ranges; the error names the field.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(1..=365).contains(&self.window_days) {
            return Err(("attribution.window_days", format!("must be in 1..=365, got {}", self.window_days)));
        }
        if !(self.half_life_hours.is_finite() && (0.1..=8760.0).contains(&self.half_life_hours)) {
            return Err(("attribution.half_life_hours", format!("must be in 0.1..=8760, got {}", self.half_life_hours)));
        }
        if self.min_click_to_conversion_ms > 86_400_000 {
            return Err(("attribution.min_click_to_conversion_ms", "must be at most 86400000 (a day)".into()));
        }
        Ok(())
    }

    /// The window in milliseconds.
    pub fn window_ms(&self) -> u64 {
        u64::from(self.window_days) * 86_400_000
    }
}
