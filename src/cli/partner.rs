//! `clickgate partner`: create, list, pause, resume and expire partners in the store.

use std::process::ExitCode;

use clap::Subcommand;

use super::{print_json, Setup};
use crate::audit::Actor;
use crate::catalog::{Audited, CatalogStore, Kind, NewPartner};
use crate::model::Status;
use crate::payouts::PayoutMethod;

/// `partner`'s subcommands.
#[derive(Subcommand)]
pub(super) enum PartnerCmd {
    /// Create a partner.
    Add {
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "")]
        email: String,
        /// How the partner is paid: stripe, paypal, wise (to --email) or manual.
        #[arg(long, default_value = "manual")]
        payout_method: PayoutMethod,
        /// The partner's Stripe Connect account (acct_…), for stripe.
        #[arg(long)]
        stripe_account: Option<String>,
        /// The partner's PayPal email, for paypal.
        #[arg(long)]
        paypal_email: Option<String>,
    },
    /// Replace a partner's payout details.
    SetPayout {
        #[arg(long)]
        id: String,
        /// stripe, paypal, wise (to the partner's email) or manual.
        #[arg(long)]
        payout_method: PayoutMethod,
        #[arg(long)]
        stripe_account: Option<String>,
        #[arg(long)]
        paypal_email: Option<String>,
    },
    /// List partners as JSON lines.
    List,
    /// Pause a partner: their links go to the fallback URL.
    Pause { id: String },
    /// Reactivate a partner.
    Resume { id: String },
    /// Expire a partner.
    Expire { id: String },
}

/// Runs one `partner` subcommand against the store.
pub(super) fn run(cmd: PartnerCmd, setup: &Setup) -> anyhow::Result<ExitCode> {
    let store = setup.store()?;
    let w = Audited::new(&store, Actor::Cli, crate::app::now_ms());
    match cmd {
        PartnerCmd::Add { id, name, email, payout_method, stripe_account, paypal_email } => {
            let p = NewPartner { id, name, email, payout_method, stripe_account, paypal_email };
            print_json(&[w.add_partner(&p)?])?
        }
        PartnerCmd::SetPayout { id, payout_method, stripe_account, paypal_email } => {
            print_json(&[w.set_partner_payout(&id, payout_method, stripe_account, paypal_email)?])?
        }
        PartnerCmd::List => print_json(&store.partners()?)?,
        PartnerCmd::Pause { id } => w.set_status(Kind::Partner, &id, Status::Paused)?,
        PartnerCmd::Resume { id } => w.set_status(Kind::Partner, &id, Status::Active)?,
        PartnerCmd::Expire { id } => w.set_status(Kind::Partner, &id, Status::Expired)?,
    }
    Ok(ExitCode::SUCCESS)
}
