//! `[webhooks]`: the outbox's retention, the SSRF guard's allowances and the delivery worker's
//! limits.

use serde::Deserialize;

use super::{in_range, invalid, ConfigError};

/// Webhook events and endpoints (`[webhooks]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Webhooks {
    /// How long an event stays in the outbox after it happened, delivered or not: longer than
    /// the retry schedule (about 3 days) and the 5 days after which a failing endpoint is
    /// disabled, so replays of recent events find them.
    pub event_retention_days: u32,
    /// Admit `http://` endpoint URLs (a self-hosted receiver, tests).
    pub allow_http: bool,
    /// Private networks a webhook may reach (a self-hosted receiver); the cloud metadata
    /// address stays refused.
    pub allow_private_cidrs: Vec<String>,
    /// Whether `serve` and `core` run the delivery worker.
    pub delivery_enabled: bool,
    /// How often the worker reads the outbox and looks for due retries when idle.
    pub poll_interval_ms: u64,
    /// Attempts in flight to one endpoint at once, so a slow endpoint never holds the others'.
    pub endpoint_concurrency_max: usize,
    /// Attempts in flight in all.
    pub in_flight_max: usize,
    /// One attempt, from resolution to the response's status and first KiB.
    pub attempt_timeout_ms: u64,
    /// Outbox rows fan-out reads per transaction.
    pub fanout_batch_len_max: usize,
    /// The delays before the retries; empty for the standard schedule (5 s, 5 min, 30 min, 2 h,
    /// 5 h, 10 h, 14 h, 20 h, 24 h, with jitter). A test and operations knob.
    pub retry_delays_ms: Vec<u64>,
}

impl Default for Webhooks {
    fn default() -> Self {
        Webhooks {
            event_retention_days: 30,
            allow_http: false,
            allow_private_cidrs: Vec::new(),
            delivery_enabled: true,
            poll_interval_ms: 500,
            endpoint_concurrency_max: 16,
            in_flight_max: 1024,
            attempt_timeout_ms: 15_000,
            fanout_batch_len_max: 1000,
            retry_delays_ms: Vec::new(),
        }
    }
}

/// Most entries of `retry_delays_ms`.
pub const RETRY_DELAYS_LEN_MAX: usize = 20;

impl Webhooks {
    /// Checks this section's rules; names the first bad key.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        in_range("webhooks.event_retention_days", u64::from(self.event_retention_days), 8, 3650)?;
        in_range("webhooks.poll_interval_ms", self.poll_interval_ms, 10, 60_000)?;
        in_range("webhooks.endpoint_concurrency_max", self.endpoint_concurrency_max as u64, 1, 1024)?;
        in_range("webhooks.in_flight_max", self.in_flight_max as u64, 1, 65_536)?;
        in_range("webhooks.attempt_timeout_ms", self.attempt_timeout_ms, 100, 15_000)?;
        in_range("webhooks.fanout_batch_len_max", self.fanout_batch_len_max as u64, 1, 100_000)?;
        if self.allow_private_cidrs.len() > 256 {
            return Err(invalid("webhooks.allow_private_cidrs", "must hold at most 256 networks"));
        }
        for c in &self.allow_private_cidrs {
            if c.parse::<ipnet::IpNet>().is_err() {
                return Err(invalid("webhooks.allow_private_cidrs", format!("{c:?} is not a CIDR such as 10.0.0.0/8")));
            }
        }
        if self.retry_delays_ms.len() > RETRY_DELAYS_LEN_MAX {
            return Err(invalid("webhooks.retry_delays_ms", format!("must hold at most {RETRY_DELAYS_LEN_MAX} delays")));
        }
        for &d in &self.retry_delays_ms {
            in_range("webhooks.retry_delays_ms", d, 1, 86_400_000)?;
        }
        Ok(())
    }

    /// The retention in milliseconds.
    pub fn event_retention_ms(&self) -> u64 {
        u64::from(self.event_retention_days) * 86_400_000
    }
}
