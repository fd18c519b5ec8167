//! `clickgate program`: create, list, pause, resume and expire programs in the store.

use std::process::ExitCode;

use clap::Subcommand;

use super::{parse_model, print_json, Setup};
use crate::attribution::Settings;
use crate::audit::Actor;
use crate::catalog::{Audited, CatalogStore, Kind, NewProgram};
use crate::model::{BlockedAction, Currency, Status};

/// `program`'s subcommands.
// Parsed once per run; boxing the large variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub(super) enum ProgramCmd {
    /// Create a program.
    Add {
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        currency: Currency,
        /// A destination domain (repeat for several); subdomains are included.
        #[arg(long = "allow-domain", required = true)]
        allowed_domains: Vec<String>,
        #[arg(long)]
        fallback_url: String,
        #[arg(long, value_parser = ["redirect", "forbid"], default_value = "redirect")]
        blocked_action: String,
        #[arg(long = "country-allow")]
        country_allow: Vec<String>,
        #[arg(long = "country-deny")]
        country_deny: Vec<String>,
        /// Attribution model: last_click, first_click, linear, time_decay or position_based.
        #[arg(long, default_value = "last_click")]
        model: String,
        /// Conversion window in days.
        #[arg(long, default_value_t = 30)]
        window_days: u32,
        /// Half-life for time_decay, in hours.
        #[arg(long, default_value_t = 168.0)]
        half_life_hours: f64,
        /// Clicks closer than this to their conversion count as click injection.
        #[arg(long, default_value_t = 10_000)]
        min_click_to_conversion_ms: u64,
        /// A partner's unpaid commissions of the program are paid once they reach this.
        #[arg(long, default_value_t = 5000)]
        payout_threshold_minor: i64,
        /// Scheduled payout runs, in UTC: off, weekly:<mon..sun> or monthly:<1..=28>.
        #[arg(long, default_value = "off")]
        payout_schedule: crate::payouts::Schedule,
        /// Let partners' own API keys create and change their links of the program.
        #[arg(long)]
        partners_create_links: bool,
    },
    /// Replace a program's payout threshold and schedule.
    SetPayout {
        #[arg(long)]
        id: String,
        #[arg(long)]
        payout_threshold_minor: i64,
        /// off, weekly:<mon..sun> or monthly:<1..=28>, in UTC.
        #[arg(long)]
        payout_schedule: crate::payouts::Schedule,
    },
    /// List programs as JSON lines.
    List,
    /// Pause a program: its links go to the fallback URL.
    Pause { id: String },
    /// Reactivate a program.
    Resume { id: String },
    /// Expire a program for good.
    Expire { id: String },
}

/// Runs one `program` subcommand against the store.
pub(super) fn run(cmd: ProgramCmd, setup: &Setup) -> anyhow::Result<ExitCode> {
    let store = setup.store()?;
    let w = Audited::new(&store, Actor::Cli, crate::app::now_ms());
    match cmd {
        ProgramCmd::Add {
            id,
            name,
            currency,
            allowed_domains,
            fallback_url,
            blocked_action,
            country_allow,
            country_deny,
            model,
            window_days,
            half_life_hours,
            min_click_to_conversion_ms,
            payout_threshold_minor,
            payout_schedule,
            partners_create_links,
        } => {
            let blocked_action = if blocked_action == "forbid" { BlockedAction::Forbid } else { BlockedAction::Redirect };
            let model = parse_model(&model)?;
            let attribution = Settings { model, window_days, half_life_hours, min_click_to_conversion_ms };
            let p = w.add_program(&NewProgram {
                id,
                name,
                currency,
                allowed_domains,
                fallback_url,
                blocked_action,
                country_allow,
                country_deny,
                attribution,
                commission: Default::default(),
                payout_threshold_minor,
                payout_schedule: payout_schedule.to_string(),
                partners_create_links,
            })?;
            print_json(&[p])?;
        }
        ProgramCmd::SetPayout { id, payout_threshold_minor, payout_schedule } => {
            print_json(&[w.set_program_payout(&id, payout_threshold_minor, &payout_schedule.to_string())?])?
        }
        ProgramCmd::List => print_json(&store.programs()?)?,
        ProgramCmd::Pause { id } => w.set_status(Kind::Program, &id, Status::Paused)?,
        ProgramCmd::Resume { id } => w.set_status(Kind::Program, &id, Status::Active)?,
        ProgramCmd::Expire { id } => w.set_status(Kind::Program, &id, Status::Expired)?,
    }
    Ok(ExitCode::SUCCESS)
}
