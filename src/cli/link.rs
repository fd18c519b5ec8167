//! `clickgate link`: create, change, list, pause, resume and expire links in the store. The store, not
//! this file, refuses a destination outside the program's allowlist.

use std::io::Write;
use std::process::ExitCode;

use clap::Subcommand;

use super::{print_json, Setup};
use crate::audit::{Actor, Stamp};
use crate::catalog::import::{import_links, Mode};
use crate::catalog::{Audited, CatalogStore, Catalogue, Kind, LinkPatch, NewLink};
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
        /// When the link starts to redirect to the fallback URL: RFC 3339 text with an offset
        /// ("2026-12-31T23:00:00Z") or Unix milliseconds, as `check` and `attribute` read
        /// times; kept to the second. An integer that looks like Unix seconds is refused.
        #[arg(long, value_parser = expiry)]
        expires_at: Option<i64>,
    },
    /// Create links in bulk from a CSV file with a header row: code, program, partner and
    /// destination, and optionally channel, utm_source, utm_medium, utm_campaign, expires_at
    /// (as --expires-at reads it) and status. Each row is validated as `link add` validates
    /// one; rejected rows are listed on stderr with their line, and the exit code is 1 if any
    /// row was rejected. A file with a rejected row imports nothing, unless --skip-bad. `-`
    /// reads stdin.
    Import {
        file: std::path::PathBuf,
        /// Import the good rows and skip the rejected ones (each still listed).
        #[arg(long)]
        skip_bad: bool,
    },
    /// Change a link's destination, channel, UTM tags or expiry (`PATCH /v1/links/{code}` does
    /// the same); the link is validated whole, as a new one.
    Set {
        #[arg(long)]
        code: String,
        #[arg(long)]
        destination: Option<String>,
        #[arg(long, value_parser = ["web", "social", "email", "qr", "offline", "marketplace"])]
        channel: Option<String>,
        #[arg(long)]
        utm_source: Option<String>,
        #[arg(long)]
        utm_medium: Option<String>,
        #[arg(long)]
        utm_campaign: Option<String>,
        /// As `add` reads it.
        #[arg(long, value_parser = expiry, conflicts_with = "no_expiry")]
        expires_at: Option<i64>,
        /// Clear the link's expiry.
        #[arg(long)]
        no_expiry: bool,
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

fn import(store: &impl Catalogue, file: &std::path::Path, mode: Mode, keep_changes: u64) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let stamp = Stamp::new(Actor::Cli, crate::app::now_ms());
    let report = if file == std::path::Path::new("-") {
        import_links(store, std::io::stdin().lock(), &expiry, mode, &stamp)
    } else {
        let f = std::fs::File::open(file).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        import_links(store, std::io::BufReader::with_capacity(1 << 16, f), &expiry, mode, &stamp)
    }
    .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    // An import adds an entry to the catalog's change log per link; the log keeps its newest.
    store.trim_changes(keep_changes)?;
    let mut err = std::io::stderr().lock();
    let skipped = if mode == Mode::SkipBad { " (skipped)" } else { "" };
    for r in &report.rejected {
        writeln!(
            err,
            "{}:{}: {}{}{skipped}",
            file.display(),
            r.line,
            if r.code.is_empty() { String::new() } else { format!("{}: ", r.code) },
            r.why
        )?;
    }
    let secs = started.elapsed().as_secs_f64();
    if report.held_back > 0 || (mode == Mode::AllOrNothing && !report.rejected.is_empty()) {
        writeln!(
            err,
            "link import: 0 added, {} rejected; nothing was imported, {} good rows held back (--skip-bad imports only those)",
            report.rejected.len(),
            report.held_back
        )?;
    } else {
        writeln!(
            err,
            "link import: {} added, {} rejected{} in {:.2} s ({:.0} links/s)",
            report.added,
            report.rejected.len(),
            if report.rejected.is_empty() { "" } else { " and skipped" },
            secs,
            report.added as f64 / secs.max(1e-9)
        )?;
    }
    Ok(if report.rejected.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// `--expires-at` as Unix seconds (what a link stores), read by the one time rule of the CLI
/// (`cli::timestamp`): digits are Unix milliseconds, anything else RFC 3339 text.
fn expiry(s: &str) -> Result<i64, String> {
    let v = match s.parse::<u64>() {
        Ok(n) => serde_json::Value::from(n),
        Err(_) => serde_json::Value::String(s.to_string()),
    };
    let ms = super::timestamp::unix_ms(&v).map_err(|e| e.to_string())?;
    i64::try_from(ms / 1000).map_err(|_| format!("{s} is too far in the future"))
}

/// Runs one `link` subcommand against the store.
pub(super) fn run(cmd: LinkCmd, setup: &Setup) -> anyhow::Result<ExitCode> {
    let store = setup.store()?;
    let w = Audited::new(&store, Actor::Cli, crate::app::now_ms());
    match cmd {
        LinkCmd::Add { code, program, partner, destination, channel, utm_source, utm_medium, utm_campaign, expires_at } => {
            let channel: Channel = serde_json::from_value(serde_json::Value::String(channel))?;
            let l =
                w.add_link(&NewLink { code, program, partner, destination, channel, utm_source, utm_medium, utm_campaign, expires_at })?;
            print_json(&[l])?;
        }
        LinkCmd::Import { file, skip_bad } => {
            let mode = if skip_bad { Mode::SkipBad } else { Mode::AllOrNothing };
            return import(&store, &file, mode, setup.config.edge.link_change_log_len_max);
        }
        LinkCmd::Set { code, destination, channel, utm_source, utm_medium, utm_campaign, expires_at, no_expiry } => {
            let channel = channel.map(|c| serde_json::from_value::<Channel>(serde_json::Value::String(c))).transpose()?;
            let expires_at = if no_expiry { Some(None) } else { expires_at.map(Some) };
            let patch = LinkPatch { destination, channel, utm_source, utm_medium, utm_campaign, expires_at };
            print_json(&[w.edit_link(&code, &patch)?])?;
        }
        LinkCmd::List => print_json(&store.links()?)?,
        LinkCmd::Pause { code } => w.set_status(Kind::Link, &code, Status::Paused)?,
        LinkCmd::Resume { code } => w.set_status(Kind::Link, &code, Status::Active)?,
        LinkCmd::Expire { code } => w.set_status(Kind::Link, &code, Status::Expired)?,
    }
    Ok(ExitCode::SUCCESS)
}
