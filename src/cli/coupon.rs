//! `clickgate coupon`: coupon codes that credit a partner, for offline and POS attribution.

use std::process::ExitCode;

use clap::Subcommand;

use super::{print_json, Setup};
use crate::catalog::{CatalogStore, Catalogue, NewCoupon};

/// `coupon`'s subcommands.
#[derive(Subcommand)]
pub(super) enum CouponCmd {
    /// Create a coupon code that credits a partner.
    Add {
        #[arg(long)]
        code: String,
        #[arg(long)]
        program: String,
        #[arg(long)]
        partner: String,
    },
    /// List coupons as JSON lines.
    List,
}

/// Runs one `coupon` subcommand against the store.
pub(super) fn run(cmd: CouponCmd, setup: &Setup) -> anyhow::Result<ExitCode> {
    let store = setup.store()?;
    match cmd {
        CouponCmd::Add { code, program, partner } => print_json(&[store.add_coupon(&NewCoupon { code, program, partner })?])?,
        CouponCmd::List => print_json(&store.coupons()?)?,
    }
    Ok(ExitCode::SUCCESS)
}
