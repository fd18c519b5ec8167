//! Payout runs in this process: payouts by what became of them, and their amounts.

use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

/// What became of a payout in a run; a closed set of label values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayoutState {
    Paid,
    /// Sent and waiting for a confirmation (files, manual) or an answer (Stripe, unknown).
    Sent,
    Failed,
    /// Failed because Stripe's balance could not cover it: an alert.
    Insufficient,
}

impl PayoutState {
    pub const ALL: [PayoutState; 4] = [PayoutState::Paid, PayoutState::Sent, PayoutState::Failed, PayoutState::Insufficient];

    pub fn as_str(self) -> &'static str {
        match self {
            PayoutState::Paid => "paid",
            PayoutState::Sent => "sent",
            PayoutState::Failed => "failed",
            PayoutState::Insufficient => "balance_insufficient",
        }
    }
}

/// Payout metric handles.
#[derive(Clone)]
pub struct PayoutMetrics {
    payouts: Vec<IntCounter>,
    amounts: Vec<IntCounter>,
    /// Runs finished by this process.
    pub runs: IntCounter,
    /// Runs that stopped on an error (the lock held by another run included).
    pub run_errors: IntCounter,
}

impl PayoutMetrics {
    pub fn register(r: &Registry) -> PayoutMetrics {
        let states: Vec<&str> = PayoutState::ALL.iter().map(|s| s.as_str()).collect();
        let vec = |name: &str, help: &str| {
            let v = IntCounterVec::new(Opts::new(name, help), &["state"]).expect("valid metric");
            r.register(Box::new(v.clone())).expect("registered once");
            states.iter().map(|s| v.with_label_values(&[s])).collect::<Vec<_>>()
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("valid metric");
            r.register(Box::new(c.clone())).expect("registered once");
            c
        };
        PayoutMetrics {
            payouts: vec("clickgate_payouts_total", "Payouts handled by runs, by what became of them."),
            amounts: vec("clickgate_payout_amount_minor_total", "The minor units of those payouts, all currencies summed."),
            runs: counter("clickgate_payout_runs_total", "Payout runs finished."),
            run_errors: counter("clickgate_payout_run_errors_total", "Payout runs that stopped on an error."),
        }
    }

    /// Counts `count` payouts of `amount_minor` in all that ended a run in `state`.
    pub fn add(&self, state: PayoutState, count: u64, amount_minor: i64) {
        self.payouts[state as usize].inc_by(count);
        self.amounts[state as usize].inc_by(amount_minor.max(0) as u64);
    }
}
