//! `clickgate ledger verify`: checks the store file and the ledger offline, on SQLite or
//! PostgreSQL, and prints what it found.

use std::process::ExitCode;

use clap::Subcommand;

use super::Setup;
use crate::storage::offline::{self, StoreAt};

/// `ledger`'s subcommands.
#[derive(Subcommand)]
pub(super) enum LedgerCmd {
    /// Check the store file (SQLite integrity), then the ledger's hash chain, its rules, that
    /// every balance equals its entries and that debits equal credits per currency. Exits 1
    /// and names the first bad entry when anything is wrong.
    Verify,
}

/// Runs one `ledger` subcommand.
pub(super) fn run(cmd: LedgerCmd, setup: &Setup) -> anyhow::Result<ExitCode> {
    match cmd {
        LedgerCmd::Verify => verify(setup),
    }
}

fn verify(setup: &Setup) -> anyhow::Result<ExitCode> {
    let check = match setup.store_at()? {
        StoreAt::Pg(url) => offline::verify_pg(&url)?,
        StoreAt::File(dir) => offline::verify_file(&dir)?,
    };
    let mut ok = true;
    match &check.integrity {
        Some(integrity) => {
            println!("sqlite integrity_check: {integrity}");
            ok = integrity == "ok";
        }
        None => println!("store: PostgreSQL"),
    }
    match check.ledger {
        Ok(report) => println!("{report}"),
        Err(e) => {
            println!("ledger verify FAILED: {e}");
            ok = false;
        }
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
