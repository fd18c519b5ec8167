//! `clickgate coupon`: coupon codes that credit a partner, for offline and POS attribution:
//! create, list, pause, resume and expire them. A paused or expired coupon credits no one.

use std::process::ExitCode;

use clap::Subcommand;

use super::{print_json, Setup};
use crate::audit::Actor;
use crate::catalog::{coupon_key, Audited, CatalogStore, Kind, NewCoupon};
use crate::model::Status;

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
    /// Pause a coupon: sales with its code credit no one until it is resumed.
    Pause {
        #[arg(long)]
        program: String,
        code: String,
    },
    /// Reactivate a coupon.
    Resume {
        #[arg(long)]
        program: String,
        code: String,
    },
    /// Expire a coupon.
    Expire {
        #[arg(long)]
        program: String,
        code: String,
    },
}

/// Runs one `coupon` subcommand against the store; writes are recorded in the audit log as
/// `cli`'s.
pub(super) fn run(cmd: CouponCmd, setup: &Setup) -> anyhow::Result<ExitCode> {
    let store = setup.store()?;
    let w = Audited::new(&store, Actor::Cli, crate::app::now_ms());
    let set = |program: &str, code: &str, status: Status| -> anyhow::Result<()> {
        w.set_status(Kind::Coupon, &coupon_key(program, code), status)?;
        print_json(&[store.coupon(program, code)?])
    };
    match cmd {
        CouponCmd::Add { code, program, partner } => print_json(&[w.add_coupon(&NewCoupon { code, program, partner })?])?,
        CouponCmd::List => print_json(&store.coupons()?)?,
        CouponCmd::Pause { program, code } => set(&program, &code, Status::Paused)?,
        CouponCmd::Resume { program, code } => set(&program, &code, Status::Active)?,
        CouponCmd::Expire { program, code } => set(&program, &code, Status::Expired)?,
    }
    Ok(ExitCode::SUCCESS)
}
