//! `clickgate privacy erase`: a visitor's or a customer's data erased from a stopped data dir,
//! through the same code path as `POST /v1/privacy/erase` (`api::privacy::run`). It opens
//! the click log as its owner, so it refuses while a server holds it: erase through that
//! server's API instead.

use std::process::ExitCode;

use clap::Subcommand;

use super::{print_json, Setup};
use crate::privacy::Erasure;

/// `privacy`'s subcommands.
#[derive(Subcommand)]
pub(super) enum PrivacyCmd {
    /// Erase a visitor's clicks (anonymised in the click log and the index) and the visitor id
    /// on conversions, or a customer reference on conversions; stored answers carrying either
    /// are deleted. Amounts, commissions and the ledger stay. Prints the counts.
    Erase {
        /// The visitor id (the `cg_vid` cookie's 22 characters).
        #[arg(long, conflicts_with = "customer_ref", required_unless_present = "customer_ref")]
        visitor_id: Option<String>,
        /// The customer reference conversions were sent with.
        #[arg(long)]
        customer_ref: Option<String>,
    },
}

/// Runs one `privacy` subcommand against the stopped data dir.
pub(super) fn run(cmd: PrivacyCmd, setup: &Setup) -> anyhow::Result<ExitCode> {
    match cmd {
        PrivacyCmd::Erase { visitor_id, customer_ref } => {
            let what = Erasure::from_fields(visitor_id.as_deref(), customer_ref.as_deref())?;
            // The store first: it loads the data key the stored answers are sealed under.
            let store = setup.store()?;
            let metrics = crate::metrics::Metrics::new();
            let ingest = crate::app::open_ingest(&setup.config, &setup.data_dir, &metrics)?;
            let report =
                crate::api::privacy::run(&ingest, &setup.store_at()?, &what, &store, &crate::audit::Actor::Cli, crate::app::now_ms())?;
            print_json(&[report])?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
