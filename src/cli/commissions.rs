//! `clickgate commissions`: the lifecycle step the server's sweep also runs, by hand and
//! offline: approve what has passed its lock period. Paying is a payout run's
//! (`clickgate payouts run`, or `payouts settle` for money paid by hand).

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use super::Setup;
use crate::app;
use crate::audit::Action;
use crate::storage::offline;

/// `commissions`' subcommands.
#[derive(Subcommand)]
pub(super) enum CommissionsCmd {
    /// Approve every pending commission whose lock period has ended.
    Approve {
        /// The time to approve at (RFC 3339, such as 2026-12-31T00:00:00Z); default now.
        #[arg(long)]
        now: Option<String>,
    },
}

/// Runs one `commissions` subcommand against the conversion store.
pub(super) fn run(cmd: CommissionsCmd, setup: &Setup) -> anyhow::Result<ExitCode> {
    let config = &setup.config;
    match cmd {
        CommissionsCmd::Approve { now } => {
            let now_ms = now_arg(now.as_deref())?;
            let (approved, amount_minor) = offline::approve_all(&setup.store_at()?, now_ms, config.commission.approve_batch_len_max)?;
            let done = serde_json::json!({ "approved": approved, "amount_minor": amount_minor });
            if approved > 0 {
                super::audit::record_done(setup, Action::CommissionApprove, "due", &done)?;
            }
            println!("{done}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `--now`: RFC 3339 into Unix milliseconds, or the clock.
pub(super) fn now_arg(now: Option<&str>) -> anyhow::Result<u64> {
    let Some(s) = now else { return Ok(app::now_ms()) };
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .with_context(|| format!("--now {s:?} is not an RFC 3339 time such as 2026-12-31T00:00:00Z"))?;
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).context("--now must be after 1970")
}
