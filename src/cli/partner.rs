//! `clickgate partner`: create, list, pause, resume and expire partners in the store.

use std::process::ExitCode;

use clap::Subcommand;

use super::{print_json, Setup};
use crate::catalog::{CatalogStore, Catalogue, Kind, NewPartner};
use crate::model::Status;

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
    match cmd {
        PartnerCmd::Add { id, name, email } => print_json(&[store.add_partner(&NewPartner { id, name, email })?])?,
        PartnerCmd::List => print_json(&store.partners()?)?,
        PartnerCmd::Pause { id } => store.set_status(Kind::Partner, &id, Status::Paused)?,
        PartnerCmd::Resume { id } => store.set_status(Kind::Partner, &id, Status::Active)?,
        PartnerCmd::Expire { id } => store.set_status(Kind::Partner, &id, Status::Expired)?,
    }
    Ok(ExitCode::SUCCESS)
}
