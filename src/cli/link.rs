//! `clickgate link`: create, list, pause, resume and expire links in the store. The store, not
//! this file, refuses a destination outside the program's allowlist.

use std::process::ExitCode;

use clap::Subcommand;

use super::{print_json, Setup};
use crate::catalog::{CatalogStore, Catalogue, Kind, NewLink};
use crate::model::{Channel, Status};

/// `link`'s subcommands.
#[derive(Subcommand)]
pub(super) enum LinkCmd {
    /// Create a link; the destination must be inside the program's allowlist.
    Add {
        #[arg(long)]
        code: String,
        #[arg(long)]
        program: String,
        #[arg(long)]
        partner: String,
        #[arg(long)]
        destination: String,
        #[arg(long, value_parser = ["web", "social", "email", "qr", "offline", "marketplace"], default_value = "web")]
        channel: String,
        #[arg(long, default_value = "")]
        utm_source: String,
        #[arg(long, default_value = "")]
        utm_medium: String,
        #[arg(long, default_value = "")]
        utm_campaign: String,
        /// Unix seconds after which the link redirects to the fallback URL.
        #[arg(long)]
        expires_at: Option<i64>,
    },
    /// List links as JSON lines.
    List,
    /// Pause a link.
    Pause { code: String },
    /// Reactivate a link.
    Resume { code: String },
    /// Expire a link.
    Expire { code: String },
}

/// Runs one `link` subcommand against the store.
pub(super) fn run(cmd: LinkCmd, setup: &Setup) -> anyhow::Result<ExitCode> {
    let store = setup.store()?;
    match cmd {
        LinkCmd::Add { code, program, partner, destination, channel, utm_source, utm_medium, utm_campaign, expires_at } => {
            let channel: Channel = serde_json::from_value(serde_json::Value::String(channel))?;
            let l = store.add_link(&NewLink {
                code,
                program,
                partner,
                destination,
                channel,
                utm_source,
                utm_medium,
                utm_campaign,
                expires_at,
            })?;
            print_json(&[l])?;
        }
        LinkCmd::List => print_json(&store.links()?)?,
        LinkCmd::Pause { code } => store.set_status(Kind::Link, &code, Status::Paused)?,
        LinkCmd::Resume { code } => store.set_status(Kind::Link, &code, Status::Active)?,
        LinkCmd::Expire { code } => store.set_status(Kind::Link, &code, Status::Expired)?,
    }
    Ok(ExitCode::SUCCESS)
}
