//! `[webhooks]`: the outbox's retention.

use serde::Deserialize;

use super::{invalid, ConfigError};

/// Webhook events and endpoints (`[webhooks]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Webhooks {
    /// How long an event stays in the outbox after it happened, delivered or not: longer than
    /// the retry schedule (about 3 days) and the 5 days after which a failing endpoint is
    /// disabled, so replays of recent events find them.
    pub event_retention_days: u32,
}

impl Default for Webhooks {
    fn default() -> Self {
        Webhooks { event_retention_days: 30 }
    }
}

impl Webhooks {
    /// Checks this section's rules; names the first bad key.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !(8..=3650).contains(&self.event_retention_days) {
            return Err(invalid("webhooks.event_retention_days", format!("must be in 8..=3650, got {}", self.event_retention_days)));
        }
        Ok(())
    }

    /// The retention in milliseconds.
    pub fn event_retention_ms(&self) -> u64 {
        u64::from(self.event_retention_days) * 86_400_000
    }
}
