//! Payout runs and payouts as stored: their states, their ids, and the store interface a
//! backend implements (`PayoutTx`) beside the ledger and the commissions.

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::provider::PayoutMethod;
use crate::lifecycle::{Commission, CommissionTx, LifecycleError};
use crate::model::Currency;
use crate::webhooks::{OutboxError, OutboxTx};

/// Why a payout step or run was refused, or the store failed.
#[derive(Debug, thiserror::Error)]
pub enum PayoutError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{field}: {why}")]
    Invalid { field: &'static str, why: String },
    /// Another run holds the lock.
    #[error("payout run {run} holds the lock until {expires_ms} (Unix ms); two runs never overlap")]
    Locked { run: String, expires_ms: i64 },
    /// This process stalled past its lease and another took the run over; this one stops.
    #[error("payout run {run} lost its lock to another process, which goes on with it; this one stops")]
    LockLost { run: String },
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    #[error("outbox: {0}")]
    Outbox(#[from] OutboxError),
    #[error("export: {0}")]
    Export(#[from] super::ExportError),
    #[error("payout storage: {0}")]
    Storage(String),
}

impl From<crate::ledger::LedgerError> for PayoutError {
    fn from(e: crate::ledger::LedgerError) -> Self {
        PayoutError::Lifecycle(e.into())
    }
}

/// Where a payout stands: `created` → `sent` → `paid` | `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PayoutStatus {
    /// Planned by a run, its commissions set aside; no money moved yet.
    Created,
    /// Handed to the provider (or written to a file): the money is in transit, a pending
    /// transfer from partner_payable to partner_paid.
    Sent,
    /// The pending transfer posted.
    Paid,
    /// The pending transfer voided: the money is payable again, for the next run.
    Failed,
}

impl PayoutStatus {
    pub const ALL: [PayoutStatus; 4] = [PayoutStatus::Created, PayoutStatus::Sent, PayoutStatus::Paid, PayoutStatus::Failed];

    pub fn as_str(self) -> &'static str {
        match self {
            PayoutStatus::Created => "created",
            PayoutStatus::Sent => "sent",
            PayoutStatus::Paid => "paid",
            PayoutStatus::Failed => "failed",
        }
    }

    /// The inverse of `as_str`; anything else is `None`, never a guess.
    pub fn parse(s: &str) -> Option<PayoutStatus> {
        PayoutStatus::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Cli,
    Api,
    Schedule,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Cli => "cli",
            Trigger::Api => "api",
            Trigger::Schedule => "schedule",
        }
    }

    pub fn parse(s: &str) -> Option<Trigger> {
        [Trigger::Cli, Trigger::Api, Trigger::Schedule].into_iter().find(|k| k.as_str() == s)
    }
}

/// A run as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Run {
    /// `pr_`, the start second (8 hex digits) and 8 random hex digits.
    pub id: String,
    /// The one program it pays, or every program.
    pub program: Option<String>,
    /// The one currency it pays, or every currency.
    pub currency: Option<Currency>,
    pub trigger: Trigger,
    /// False while it runs (and holds the lock).
    pub finished: bool,
    pub started_ms: i64,
    pub finished_ms: Option<i64>,
}

impl Run {
    /// A new run's id: its start second, so ids sort by time, and a random part.
    pub fn new_id(now_ms: i64, random: u32) -> String {
        format!("pr_{:08x}{random:08x}", (now_ms / 1000).clamp(0, i64::from(u32::MAX)))
    }
}

/// A payout as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Payout {
    /// `po_`, the run's start second and a hash of (run, partner, currency): also the
    /// provider's idempotency key.
    pub id: String,
    pub run_id: String,
    pub partner: String,
    pub currency: Currency,
    pub amount_minor: i64,
    pub method: PayoutMethod,
    /// The Stripe account or email it goes to; empty for manual payouts.
    pub destination: String,
    pub status: PayoutStatus,
    /// Stripe's `tr_…` id once paid, the export file's name, or the operator's reference of
    /// a payout settled by hand (`run::ByHand`), which alone is set when the payout is created.
    pub reference: Option<String>,
    /// Why it failed.
    pub failure: Option<String>,
    /// Failed because Stripe's balance could not cover it.
    pub insufficient: bool,
    pub created_ms: i64,
    pub sent_ms: Option<i64>,
    pub settled_ms: Option<i64>,
}

impl Payout {
    /// The operator's reference when this payout is settled by hand: a manual payout whose
    /// reference is set. A run's other manual payouts get none until they are paid (`confirm`
    /// gives none), so a resumed run knows to mark this one paid rather than leave it `sent`.
    pub fn by_hand(&self) -> Option<&str> {
        self.reference.as_deref().filter(|_| self.method == PayoutMethod::Manual)
    }
}

/// Checks the reference of a by-hand settlement (a bank transfer's reference, say): 1..=64 of
/// `[A-Za-z0-9_-]`, so it goes into a webhook, a log line and a CSV cell as it is.
pub fn check_reference(reference: &str) -> Result<(), PayoutError> {
    let ok = (1..=64).contains(&reference.len()) && reference.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(PayoutError::Invalid { field: "reference", why: format!("{reference:?} must be 1..=64 of [A-Za-z0-9_-]") })
    }
}

/// The id of the payout of `partner` in `currency` in run `run_id`.
pub fn payout_id(run_id: &str, partner: &str, currency: Currency) -> String {
    let mut h = Sha256::new();
    for part in [run_id, partner, currency.as_str()] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    let d = h.finalize();
    let time = run_id.strip_prefix("pr_").and_then(|r| r.get(..8)).unwrap_or("00000000");
    format!("po_{time}{}", hex::encode(&d[..8]))
}

/// Which payouts a listing wants.
#[derive(Debug, Clone, Default)]
pub struct PayoutFilter {
    pub run: Option<String>,
    pub partner: Option<String>,
    pub status: Option<PayoutStatus>,
    /// Only ids after this one (the listing's cursor).
    pub after: Option<String>,
    pub limit: usize,
}

/// A program's approved commissions of a partner in a currency that no payout holds yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpaid {
    pub program: String,
    pub partner: String,
    pub currency: Currency,
    pub amount_minor: i64,
}

/// One open transaction of a store holding the ledger, the commissions, the outbox and the
/// payouts. Implementations only read and write rows; the rules live in `steps` and `run`.
pub trait PayoutTx: CommissionTx + OutboxTx {
    /// Takes the run lock for `holder` (a process's random token) running `run_id` until
    /// `expires_ms`, or moves its expiry on when `holder` has it. Refused (`Locked`) while
    /// another holder's lock has not expired; an expired one is taken over.
    fn take_lock(&mut self, holder: &str, run_id: &str, now_ms: i64, expires_ms: i64) -> Result<(), PayoutError>;
    /// Moves the expiry of the lock on while `holder` still holds it for `run_id`; `false`
    /// when another process took it over (after this one stalled past its lease).
    fn renew_lock(&mut self, holder: &str, run_id: &str, expires_ms: i64) -> Result<bool, PayoutError>;
    /// Releases the lock if `holder` has it.
    fn release_lock(&mut self, holder: &str) -> Result<(), PayoutError>;
    fn insert_run(&mut self, run: &Run) -> Result<(), PayoutError>;
    fn finish_run(&mut self, run_id: &str, now_ms: i64) -> Result<(), PayoutError>;
    fn run(&mut self, id: &str) -> Result<Option<Run>, PayoutError>;
    /// The runs not finished (a killed run's), oldest first.
    fn unfinished_runs(&mut self) -> Result<Vec<Run>, PayoutError>;
    /// Runs newest first, before `before` (a run id) when given.
    fn runs(&mut self, before: Option<&str>, limit: usize) -> Result<Vec<Run>, PayoutError>;
    /// When the program's last scheduled run started.
    fn last_scheduled_run_ms(&mut self, program: &str) -> Result<Option<i64>, PayoutError>;
    fn insert_payout(&mut self, p: &Payout) -> Result<(), PayoutError>;
    /// Stores a payout's mutable fields: status, reference, failure, times.
    fn update_payout(&mut self, p: &Payout) -> Result<(), PayoutError>;
    fn payout(&mut self, id: &str) -> Result<Option<Payout>, PayoutError>;
    /// Payouts by id.
    fn payouts(&mut self, filter: &PayoutFilter) -> Result<Vec<Payout>, PayoutError>;
    /// Stripe payouts left `sent` with an unknown outcome, of any run, sent at or after
    /// `sent_since_ms`, oldest first.
    fn open_stripe_payouts(&mut self, sent_since_ms: i64, limit: usize) -> Result<Vec<Payout>, PayoutError>;
    /// Sums of approved commissions that no payout holds, by program, partner and currency,
    /// of one program and currency when given.
    fn unpaid(&mut self, program: Option<&str>, currency: Option<Currency>) -> Result<Vec<Unpaid>, PayoutError>;
    /// Sets `payout_id` on the approved commissions of the partner in the currency and the
    /// programs that no payout holds; returns how many.
    fn hold_commissions(&mut self, partner: &str, currency: Currency, programs: &[String], payout_id: &str) -> Result<usize, PayoutError>;
    /// The commissions a payout holds or paid.
    fn commissions_of_payout(&mut self, payout_id: &str) -> Result<Vec<Commission>, PayoutError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_start_with_the_runs_second_and_derive_from_run_partner_and_currency() {
        let run = Run::new_id(1_796_558_400_123, 0xabc);
        assert_eq!(run, format!("pr_{:08x}00000abc", 1_796_558_400u32));
        let usd = Currency::parse("USD").unwrap();
        let a = payout_id(&run, "bob", usd);
        assert!(a.starts_with(&format!("po_{:08x}", 1_796_558_400u32)), "{a}");
        assert_eq!(a.len(), 3 + 8 + 16);
        assert_eq!(a, payout_id(&run, "bob", usd));
        assert_ne!(a, payout_id(&run, "bob", Currency::parse("EUR").unwrap()));
        assert_ne!(a, payout_id(&run, "ann", usd));
        assert_ne!(a, payout_id(&Run::new_id(1_796_558_400_123, 0xabd), "bob", usd));
    }

    #[test]
    fn references_are_short_and_plain() {
        for ok in ["bank-ref-123", "A", "x_1", &"r".repeat(64)] {
            assert!(check_reference(ok).is_ok(), "{ok}");
        }
        for bad in ["", "bank ref", "ref,1", "=SUM(A1)", "r\u{e9}f", &"r".repeat(65)] {
            assert!(matches!(check_reference(bad), Err(PayoutError::Invalid { field: "reference", .. })), "{bad:?}");
        }
    }

    #[test]
    fn statuses_parse_strictly() {
        for s in PayoutStatus::ALL {
            assert_eq!(PayoutStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(PayoutStatus::parse("Paid"), None);
        assert_eq!(Trigger::parse("schedule"), Some(Trigger::Schedule));
        assert_eq!(Trigger::parse("cron"), None);
    }
}
