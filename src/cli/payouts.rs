//! `clickgate payouts`: run a payout run (or plan one with `--dry-run`), settle one partner by
//! hand, confirm a run's file and manual payouts, and list payouts. Runs go to the store
//! directly, beside a running server or without one; the run lock keeps two runs (here, in the
//! server, on a schedule) from overlapping.

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use super::commissions::now_arg;
use super::{print_json, Setup};
use crate::app;
use crate::audit::Action;
use crate::model::Currency;
use crate::payouts::{ByHand, PayoutError, PayoutFilter, PayoutStatus, Request, Trigger};
use crate::storage::payouts::Desk;

/// `payouts`' subcommands.
#[derive(Subcommand)]
pub(super) enum PayoutsCmd {
    /// Pay every partner whose unpaid approved commissions reach their program's threshold,
    /// or finish the run a killed process left. Prints what it did as JSON.
    Run {
        /// Only this program's commissions.
        #[arg(long)]
        program: Option<String>,
        /// Only this currency.
        #[arg(long)]
        currency: Option<Currency>,
        /// Print what would be paid and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Record money paid to a partner outside clickgate (a bank transfer): one manual payout of
    /// everything payable in the currency, whatever the thresholds and the partner's payout
    /// method, marked paid with the reference. Finishes a run a killed process left first.
    /// Prints the run's report as JSON; a retry finds nothing left to pay and says so.
    Settle {
        #[arg(long)]
        partner: String,
        #[arg(long)]
        currency: Currency,
        /// The payment's reference: 1..=64 of [A-Za-z0-9_-].
        #[arg(long)]
        reference: String,
        /// The time of payment (RFC 3339); default now.
        #[arg(long)]
        now: Option<String>,
    },
    /// Mark a run's sent file and manual payouts paid, but those named by --failed.
    Confirm {
        run: String,
        /// A payout that failed, with an optional reason: `po_…[:reason]` (repeatable).
        #[arg(long = "failed")]
        failed: Vec<String>,
    },
    /// List payouts as JSON lines, by id.
    List {
        #[arg(long)]
        run: Option<String>,
        #[arg(long)]
        partner: Option<String>,
        /// created, sent, paid or failed.
        #[arg(long)]
        status: Option<String>,
    },
}

/// Runs one `payouts` subcommand against the store.
pub(super) fn run(cmd: PayoutsCmd, setup: &Setup) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let key = app::payouts::stripe_key()?;
    crate::edge::tls::install_provider();
    let desk = Desk::new(setup.store_at()?, &setup.data_dir, &setup.config.payouts, key, runtime.handle().clone(), None)?;
    let now = || app::now_ms() as i64;
    match cmd {
        PayoutsCmd::Run { program, currency, dry_run } => {
            let report = desk.run(&Request { program, currency, trigger: Trigger::Cli, dry_run, by_hand: None }, &now)?;
            if !report.dry_run && !report.run_id.is_empty() {
                super::audit::record_done(setup, Action::PayoutRunCreate, &report.run_id, &report)?;
            }
            println!("{}", serde_json::to_string(&report)?);
        }
        PayoutsCmd::Settle { partner, currency, reference, now: at } => {
            // The run's clock starts at --now and runs on, so its lock is renewed as any run's.
            let start = now_arg(at.as_deref())? as i64 - now();
            let by_hand = Some(ByHand { partner, reference });
            let req = Request { program: None, currency: Some(currency), trigger: Trigger::Cli, dry_run: false, by_hand };
            let report = desk.run(&req, &|| start + now()).map_err(|e| match e {
                PayoutError::Locked { .. } => anyhow::Error::new(e).context("another payout run is under way; settle again once it ends"),
                e => e.into(),
            })?;
            if !report.run_id.is_empty() {
                super::audit::record_done(setup, Action::PayoutRunCreate, &report.run_id, &report)?;
            }
            println!("{}", serde_json::to_string(&report)?);
        }
        PayoutsCmd::Confirm { run, failed } => {
            let failed: Vec<(String, String)> = failed
                .iter()
                .map(|f| match f.split_once(':') {
                    Some((id, why)) => (id.to_string(), why.to_string()),
                    None => (f.clone(), "failed at the provider".to_string()),
                })
                .collect();
            let done = desk.confirm(&run, &failed, &now)?;
            super::audit::record_done(setup, Action::PayoutRunConfirm, &run, &done)?;
            println!("{}", serde_json::to_string(&done)?);
        }
        PayoutsCmd::List { run, partner, status } => {
            let status = status
                .map(|s| PayoutStatus::parse(&s).with_context(|| format!("--status {s:?} is not created, sent, paid or failed")))
                .transpose()?;
            let mut filter = PayoutFilter { run, partner, status, after: None, limit: setup.config.payouts.list_len_max };
            loop {
                let page = desk.payouts(&filter)?;
                print_json(&page)?;
                match page.last() {
                    Some(last) if page.len() == filter.limit => filter.after = Some(last.id.clone()),
                    _ => break,
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
