//! `[fraud_alerts]`: when the core raises a `fraud.alert` event (`crate::fraud`).

use serde::Deserialize;

use super::{invalid, ConfigError};

/// The thresholds of the two alert rules, per tumbling window.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FraudAlerts {
    /// Raise alerts at all.
    pub enabled: bool,
    pub window_ms: u64,
    /// A partner needs this many clicks in a window before its share is judged.
    pub partner_min_clicks: u64,
    /// The share of a partner's clicks in a window that were not `valid`, at or above which
    /// it is an alert.
    pub partner_flagged_share: f64,
    /// Clicks on one link in a window that `velocity_link` caught, at or above which it is an
    /// alert.
    pub link_surge_clicks: u64,
}

impl Default for FraudAlerts {
    fn default() -> Self {
        FraudAlerts { enabled: true, window_ms: 3_600_000, partner_min_clicks: 200, partner_flagged_share: 0.5, link_surge_clicks: 50 }
    }
}

impl FraudAlerts {
    /// Checks this section's rules; names the first bad key.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !(60_000..=7 * 86_400_000).contains(&self.window_ms) {
            return Err(invalid("fraud_alerts.window_ms", "must be in 60000..=604800000 (a minute to a week)"));
        }
        if self.partner_min_clicks == 0 {
            return Err(invalid("fraud_alerts.partner_min_clicks", "must be at least 1"));
        }
        if !(self.partner_flagged_share > 0.0 && self.partner_flagged_share <= 1.0) {
            return Err(invalid("fraud_alerts.partner_flagged_share", format!("must be in (0, 1], got {}", self.partner_flagged_share)));
        }
        if self.link_surge_clicks == 0 {
            return Err(invalid("fraud_alerts.link_surge_clicks", "must be at least 1"));
        }
        Ok(())
    }
}
