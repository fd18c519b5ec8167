//! The command line, one file per subcommand: `serve` (also `edge` and `core`), `check`,
//! `program`, `partner`, `link`, `coupon`, `api-key`, `audit`, `import`, `ledger`, `commissions`, `payouts`,
//! `webhooks`, `rescore` and `attribute`.
//! This file holds the top-level parser, the dispatch and what several subcommands share;
//! `timestamp` is the one time format that `check` and `attribute` both read.
//!
//! `anyhow` stops here: everything below returns typed errors.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::app;
use crate::attribution::Model;
use crate::config::Config;
use crate::storage::offline::StoreAt;
use crate::storage::CatalogDb;

mod api_key;
pub mod attribute;
mod audit;
pub mod check;
mod commissions;
mod coupon;
mod data_key;
mod import;
mod ledger;
mod link;
mod migrate;
mod partner;
mod payouts;
mod privacy;
mod program;
mod rescore;
mod serve;
pub mod timestamp;
mod webhooks;

#[derive(Parser)]
#[command(name = "clickgate", version, about = "Edge proxy for referral and QR links, with click-fraud checks")]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Common {
    /// Config file.
    #[arg(long, global = true, default_value = "config/clickgate.toml")]
    config: PathBuf,
    /// Data directory (store, click log, keys); overrides `data_dir` in the config.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Edge, core and API in one process on the embedded store.
    Serve(serve::ServeArgs),
    /// Cluster mode: the edge alone. Clicks go to a local spool and on to NATS JetStream.
    Edge(serve::EdgeArgs),
    /// Cluster mode: the core alone. Consumes clicks from NATS JetStream; serves the API.
    Core(serve::CoreArgs),
    /// Replay `{"ip","ua","code","ts"}` JSON lines from stdin through the fraud checks.
    #[command(after_help = timestamp::HELP)]
    Check,
    /// Manage programs.
    #[command(subcommand)]
    Program(program::ProgramCmd),
    /// Manage partners.
    #[command(subcommand)]
    Partner(partner::PartnerCmd),
    /// Manage links.
    #[command(subcommand)]
    Link(link::LinkCmd),
    /// Manage coupon codes (offline and POS attribution).
    #[command(subcommand)]
    Coupon(coupon::CouponCmd),
    /// Manage the API's keys: admin keys, and partner keys that reach one partner's objects.
    #[command(subcommand)]
    ApiKey(api_key::ApiKeyCmd),
    /// Read the audit log: every write through the API or the command line.
    #[command(subcommand)]
    Audit(audit::AuditCmd),
    /// Import a marketplace order report (CSV) through a running API; prints the summary.
    Import(import::ImportArgs),
    /// Check the ledger.
    #[command(subcommand)]
    Ledger(ledger::LedgerCmd),
    /// Bring the stores (the data dir's file and, when set, the PostgreSQL database) to this
    /// build's schema; prints each version. A store of a newer build is refused, unchanged.
    Migrate,
    /// Move commissions through their lifecycle by hand (the server's sweep does it on a timer).
    #[command(subcommand)]
    Commissions(commissions::CommissionsCmd),
    /// Pay partners: payout runs, their confirmation and listing.
    #[command(subcommand)]
    Payouts(payouts::PayoutsCmd),
    /// Split journeys read as JSON lines on stdin with a model; one line of shares out per journey.
    #[command(after_help = timestamp::HELP)]
    Attribute(attribute::AttributeArgs),
    /// The data key that seals personal data at rest: rotate it, or show which is in use.
    #[command(subcommand)]
    DataKey(data_key::DataKeyCmd),
    /// Erase a visitor's or a customer's personal data (a stopped data dir; a running server
    /// erases through POST /v1/privacy/erase).
    #[command(subcommand)]
    Privacy(privacy::PrivacyCmd),
    /// Manage webhook endpoints and replay events.
    #[command(subcommand)]
    Webhooks(webhooks::WebhooksCmd),
    /// Judge the click log again with new rules: how verdicts would change, which partners'
    /// credit rests only on clicks no longer valid, and (with --apply) take those commissions back.
    #[command(after_help = timestamp::HELP)]
    Rescore(rescore::RescoreArgs),
}

/// What a subcommand that reads the config starts from.
struct Setup {
    config: Config,
    /// `--data-dir`, else the config's `data_dir`, else `data`.
    data_dir: PathBuf,
}

impl Common {
    /// Loads and validates the config file and settles the data dir.
    fn load(&self) -> anyhow::Result<Setup> {
        let config = Config::load(&self.config)?;
        let data_dir = self.data_dir.clone().or_else(|| config.data_dir.clone()).unwrap_or_else(|| PathBuf::from("data"));
        Ok(Setup { config, data_dir })
    }
}

impl Setup {
    /// The catalog of programs, partners, links and coupons, and the API keys beside it: the
    /// PostgreSQL database when `core.database_url` is set (cluster mode), else the data dir's file.
    fn store(&self) -> anyhow::Result<CatalogDb> {
        app::open_store(&self.config, &self.data_dir)
    }

    /// Where the conversion store is: PostgreSQL when a database URL is set, else the data dir's file.
    fn store_at(&self) -> anyhow::Result<StoreAt> {
        Ok(match self.config.core.database_url()? {
            Some(url) => StoreAt::Pg(url),
            None => StoreAt::File(self.data_dir.clone()),
        })
    }
}

/// Entry point; returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("CLICKGATE_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let common = cli.common;
    match cli.command {
        // `attribute` is a pure filter: it needs no config or data dir.
        Command::Attribute(args) => attribute::command(&args),
        Command::Serve(args) => serve::serve(args, common.load()?),
        Command::Edge(args) => serve::edge(args, common.load()?),
        Command::Core(args) => serve::core(args, common.load()?),
        Command::Check => check::command(&common.load()?),
        Command::Rescore(args) => rescore::command(args, &common.load()?),
        Command::Program(cmd) => program::run(cmd, &common.load()?),
        Command::Partner(cmd) => partner::run(cmd, &common.load()?),
        Command::Link(cmd) => link::run(cmd, &common.load()?),
        Command::Coupon(cmd) => coupon::run(cmd, &common.load()?),
        Command::ApiKey(cmd) => api_key::run(cmd, &common.load()?),
        Command::Audit(cmd) => audit::run(cmd, &common.load()?),
        Command::Import(args) => import::run(args, &common.load()?.config),
        Command::Ledger(cmd) => ledger::run(cmd, &common.load()?),
        Command::Migrate => migrate::run(&common.load()?),
        Command::Commissions(cmd) => commissions::run(cmd, &common.load()?),
        Command::Payouts(cmd) => payouts::run(cmd, &common.load()?),
        Command::Webhooks(cmd) => webhooks::run(cmd, &common.load()?),
        Command::DataKey(cmd) => data_key::run(cmd, &common.load()?),
        Command::Privacy(cmd) => privacy::run(cmd, &common.load()?),
    }
}

/// Exit code 0 when no input line was rejected, else 1 (2 is for an error that stops the run).
fn rejected_exit_code(rejected: usize) -> ExitCode {
    if rejected == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Prints `items` as JSON lines on stdout.
fn print_json<T: serde::Serialize>(items: &[T]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    for i in items {
        serde_json::to_writer(&mut out, i)?;
        // A closed pipe (`| head`) ends the listing quietly.
        if writeln!(out).is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// A `--model` name into its model.
fn parse_model(s: &str) -> anyhow::Result<Model> {
    Model::ALL.into_iter().find(|m| m.as_str() == s).ok_or_else(|| {
        let names: Vec<&str> = Model::ALL.iter().map(|m| m.as_str()).collect();
        anyhow::anyhow!("--model {s:?} is not one of {}", names.join(", "))
    })
}

/// How a JSON value's type reads in an error message.
fn json_kind(v: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
