//! `[payouts]`: where file exports go, how a run holds its lock and batches its work, and how
//! the Stripe client reaches Stripe. The secret key is never in the config: it comes from the
//! environment, `CLICKGATE_STRIPE_SECRET_KEY`.

use std::path::PathBuf;

use serde::Deserialize;

use super::{in_range, invalid, ConfigError};

/// Payout runs (`[payouts]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Payouts {
    /// Where PayPal and Wise CSV files are written; `<data_dir>/payouts` when unset.
    pub export_dir: Option<PathBuf>,
    /// How long a run's lock holds without a step of the run. A killed run's lock is taken
    /// over, and its run resumed, once this has passed.
    pub lock_lease_ms: u64,
    /// Payouts per transaction and per batch of Stripe requests.
    pub batch_len_max: usize,
    /// How often `serve` and `core` look for programs whose scheduled run is due.
    pub schedule_check_ms: u64,
    /// PayPal's note to each recipient.
    pub paypal_note: String,
    /// Payouts or runs in one page of a listing.
    pub list_len_max: usize,
    pub stripe: Stripe,
}

/// The Stripe Connect client (`[payouts.stripe]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Stripe {
    /// Stripe's API; a local server's `http://127.0.0.1:<port>` in tests.
    pub api_base: String,
    /// Limit on the TCP connect and the TLS handshake.
    pub connect_timeout_ms: u64,
    /// Limit on one attempt: connect, send and read the answer.
    pub request_timeout_ms: u64,
    /// Attempts per payout, the first included, all under the payout's idempotency key.
    pub attempts_max: u32,
    /// The first retry's delay; each next one doubles, with jitter.
    pub backoff_base_ms: u64,
    /// The longest delay between two attempts.
    pub backoff_max_ms: u64,
    /// Transfers in flight at once.
    pub concurrency_max: usize,
}

impl Default for Payouts {
    fn default() -> Self {
        Payouts {
            export_dir: None,
            lock_lease_ms: 600_000,
            batch_len_max: 1000,
            schedule_check_ms: 60_000,
            paypal_note: "Partner payout".into(),
            list_len_max: 1000,
            stripe: Stripe::default(),
        }
    }
}

impl Default for Stripe {
    fn default() -> Self {
        Stripe {
            api_base: "https://api.stripe.com".into(),
            connect_timeout_ms: 5_000,
            request_timeout_ms: 30_000,
            attempts_max: 5,
            backoff_base_ms: 500,
            backoff_max_ms: 8_000,
            concurrency_max: 8,
        }
    }
}

impl Payouts {
    /// Checks this section's rules; names the first bad key.
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        in_range("payouts.lock_lease_ms", self.lock_lease_ms, 1_000, 86_400_000)?;
        in_range("payouts.batch_len_max", self.batch_len_max as u64, 1, 100_000)?;
        in_range("payouts.schedule_check_ms", self.schedule_check_ms, 1_000, 86_400_000)?;
        in_range("payouts.list_len_max", self.list_len_max as u64, 1, 100_000)?;
        if self.paypal_note.is_empty() || self.paypal_note.len() > 200 || self.paypal_note.chars().any(char::is_control) {
            return Err(invalid("payouts.paypal_note", "must be 1..=200 bytes without control characters"));
        }
        let s = &self.stripe;
        if !(s.api_base.starts_with("https://") || s.api_base.starts_with("http://")) {
            return Err(invalid("payouts.stripe.api_base", format!("{:?} is not an http(s) URL", s.api_base)));
        }
        in_range("payouts.stripe.connect_timeout_ms", s.connect_timeout_ms, 1, 600_000)?;
        in_range("payouts.stripe.request_timeout_ms", s.request_timeout_ms, 1, 600_000)?;
        in_range("payouts.stripe.attempts_max", u64::from(s.attempts_max), 1, 20)?;
        in_range("payouts.stripe.backoff_base_ms", s.backoff_base_ms, 1, 600_000)?;
        in_range("payouts.stripe.backoff_max_ms", s.backoff_max_ms, s.backoff_base_ms, 3_600_000)?;
        in_range("payouts.stripe.concurrency_max", s.concurrency_max as u64, 1, 256)?;
        Ok(())
    }
}
