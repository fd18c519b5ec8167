//! The command line. `anyhow` stops here: everything below returns typed errors.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::app::{self, Overrides};
use crate::attribution::{Model, Settings};
use crate::config::Config;
use crate::conversions::offline::StoreAt;
use crate::model::{BlockedAction, Channel, Status};
use crate::store::{NewCoupon, NewLink, NewPartner, NewProgram};

pub mod attribute;
pub mod check;

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
    Serve {
        #[arg(long)]
        edge_listen: Option<SocketAddr>,
        #[arg(long)]
        admin_listen: Option<SocketAddr>,
        #[arg(long)]
        api_listen: Option<SocketAddr>,
    },
    /// Cluster mode: the edge alone. Clicks go to a local spool and on to NATS JetStream.
    Edge {
        #[arg(long)]
        edge_listen: Option<SocketAddr>,
        #[arg(long)]
        admin_listen: Option<SocketAddr>,
        /// The broker (overrides `cluster.nats_url`); several comma-separated for a cluster.
        #[arg(long)]
        nats_url: Option<String>,
    },
    /// Cluster mode: the core alone. Consumes clicks from NATS JetStream; serves the API.
    Core {
        #[arg(long)]
        api_listen: Option<SocketAddr>,
        #[arg(long)]
        admin_listen: Option<SocketAddr>,
        /// The broker (overrides `cluster.nats_url`); several comma-separated for a cluster.
        #[arg(long)]
        nats_url: Option<String>,
    },
    /// Replay `{"ip","ua","code","ts"}` JSON lines from stdin through the fraud checks.
    Check,
    /// Manage programs.
    #[command(subcommand)]
    Program(ProgramCmd),
    /// Manage partners.
    #[command(subcommand)]
    Partner(PartnerCmd),
    /// Manage links.
    #[command(subcommand)]
    Link(LinkCmd),
    /// Manage coupon codes (offline and POS attribution).
    #[command(subcommand)]
    Coupon(CouponCmd),
    /// Import a marketplace order report (CSV) through a running API; prints the summary.
    Import {
        /// The program the rows belong to, unless a `program` column says otherwise.
        #[arg(long)]
        program: String,
        /// The API address (default: `listen.api` from the config).
        #[arg(long)]
        api: Option<SocketAddr>,
        /// The CSV file.
        file: PathBuf,
    },
    /// Check the ledger.
    #[command(subcommand)]
    Ledger(LedgerCmd),
    /// Move commissions through their lifecycle by hand (the server's sweep does it on a timer).
    #[command(subcommand)]
    Commissions(CommissionsCmd),
    /// Split journeys read as JSON lines on stdin with a model; one line of shares out per journey.
    Attribute {
        /// last_click, first_click, linear, time_decay or position_based.
        #[arg(long)]
        model: String,
        /// Half-life for time_decay, in hours.
        #[arg(long, default_value_t = 168.0)]
        half_life_hours: f64,
    },
}

#[derive(Subcommand)]
enum LedgerCmd {
    /// Check the store file (SQLite integrity), then the ledger's hash chain, its rules, that
    /// every balance equals its entries and that debits equal credits per currency. Exits 1
    /// and names the first bad entry when anything is wrong.
    Verify,
}

#[derive(Subcommand)]
enum CommissionsCmd {
    /// Approve every pending commission whose lock period has ended.
    Approve {
        /// The time to approve at (RFC 3339, such as 2026-12-31T00:00:00Z); default now.
        #[arg(long)]
        now: Option<String>,
    },
    /// Mark a partner's approved commissions in a currency paid by a payout.
    Pay {
        #[arg(long)]
        partner: String,
        #[arg(long)]
        currency: String,
        /// The payout's reference; paying again under the same one is a no-op.
        #[arg(long)]
        payout_id: String,
        /// The time of payment (RFC 3339); default now.
        #[arg(long)]
        now: Option<String>,
    },
}

/// `--now`: RFC 3339 into Unix milliseconds, or the clock.
fn now_arg(now: Option<&str>) -> anyhow::Result<u64> {
    let Some(s) = now else { return Ok(app::now_ms()) };
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .with_context(|| format!("--now {s:?} is not an RFC 3339 time such as 2026-12-31T00:00:00Z"))?;
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).context("--now must be after 1970")
}

#[derive(Subcommand)]
enum CouponCmd {
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

// Parsed once per run; boxing the large variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum ProgramCmd {
    /// Create a program.
    Add {
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        currency: String,
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

#[derive(Subcommand)]
enum PartnerCmd {
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

#[derive(Subcommand)]
enum LinkCmd {
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

fn parse_model(s: &str) -> anyhow::Result<Model> {
    Model::ALL.into_iter().find(|m| m.as_str() == s).ok_or_else(|| {
        let names: Vec<&str> = Model::ALL.iter().map(|m| m.as_str()).collect();
        anyhow::anyhow!("--model {s:?} is not one of {}", names.join(", "))
    })
}

/// The async runtime `runtime.worker_threads` asks for.
fn runtime(config: &Config) -> anyhow::Result<tokio::runtime::Runtime> {
    // One worker needs no work stealing: the current-thread scheduler is cheaper per task.
    let mut rt = match config.runtime.worker_threads {
        1 => tokio::runtime::Builder::new_current_thread(),
        n => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            if n > 0 {
                b.worker_threads(n);
            }
            b
        }
    };
    rt.enable_all().build().context("starting the async runtime")
}

/// The config with `--nats-url` in place of `cluster.nats_url`, checked as the file's would be.
fn with_nats_url(mut config: Config, nats_url: Option<String>) -> anyhow::Result<Config> {
    if let Some(url) = nats_url {
        config.cluster.nats_url = url;
        config.validate().context("--nats-url")?;
    }
    Ok(config)
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // `attribute` is a pure filter: it needs no config or data dir.
    if let Command::Attribute { model, half_life_hours } = &cli.command {
        let model = parse_model(model)?;
        anyhow::ensure!(
            half_life_hours.is_finite() && (0.1..=8760.0).contains(half_life_hours),
            "--half-life-hours must be in 0.1..=8760, got {half_life_hours}"
        );
        let errors = attribute::run(model, *half_life_hours, std::io::stdin().lock(), std::io::stdout().lock())?;
        return Ok(if errors == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) });
    }
    let config = Config::load(&cli.common.config)?;
    let data_dir = cli.common.data_dir.clone().or_else(|| config.data_dir.clone()).unwrap_or_else(|| PathBuf::from("data"));
    match cli.command {
        Command::Serve { edge_listen, admin_listen, api_listen } => {
            let rt = runtime(&config)?;
            rt.block_on(app::serve(config, data_dir, Overrides { edge_listen, admin_listen, api_listen }))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Edge { edge_listen, admin_listen, nats_url } => {
            let config = with_nats_url(config, nats_url)?;
            let rt = runtime(&config)?;
            rt.block_on(app::edge(config, data_dir, Overrides { edge_listen, admin_listen, api_listen: None }))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Core { api_listen, admin_listen, nats_url } => {
            let config = with_nats_url(config, nats_url)?;
            let rt = runtime(&config)?;
            rt.block_on(app::core(config, data_dir, Overrides { edge_listen: None, admin_listen, api_listen }))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check => {
            let store = app::open_store(&config, &data_dir)?;
            let table = crate::app::load_links(&store)?;
            let pipeline = crate::edge::checks::Pipeline::build(&config.checks)?;
            let errors = check::run(&pipeline, &table, std::io::stdin().lock(), std::io::stdout().lock())?;
            Ok(if errors == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Command::Program(cmd) => {
            let store = app::open_store(&config, &data_dir)?;
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
                } => {
                    let blocked_action = if blocked_action == "forbid" { BlockedAction::Forbid } else { BlockedAction::Redirect };
                    let model = parse_model(&model)?;
                    let attribution = Settings { model, window_days, half_life_hours, min_click_to_conversion_ms };
                    let p = store.add_program(&NewProgram {
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
                    })?;
                    print_json(&[p])?;
                }
                ProgramCmd::List => print_json(&store.programs()?)?,
                ProgramCmd::Pause { id } => store.set_status("program", &id, Status::Paused)?,
                ProgramCmd::Resume { id } => store.set_status("program", &id, Status::Active)?,
                ProgramCmd::Expire { id } => store.set_status("program", &id, Status::Expired)?,
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Partner(cmd) => {
            let store = app::open_store(&config, &data_dir)?;
            match cmd {
                PartnerCmd::Add { id, name, email } => print_json(&[store.add_partner(&NewPartner { id, name, email })?])?,
                PartnerCmd::List => print_json(&store.partners()?)?,
                PartnerCmd::Pause { id } => store.set_status("partner", &id, Status::Paused)?,
                PartnerCmd::Resume { id } => store.set_status("partner", &id, Status::Active)?,
                PartnerCmd::Expire { id } => store.set_status("partner", &id, Status::Expired)?,
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Link(cmd) => {
            let store = app::open_store(&config, &data_dir)?;
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
                LinkCmd::Pause { code } => store.set_status("link", &code, Status::Paused)?,
                LinkCmd::Resume { code } => store.set_status("link", &code, Status::Active)?,
                LinkCmd::Expire { code } => store.set_status("link", &code, Status::Expired)?,
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Coupon(cmd) => {
            let store = app::open_store(&config, &data_dir)?;
            match cmd {
                CouponCmd::Add { code, program, partner } => print_json(&[store.add_coupon(&NewCoupon { code, program, partner })?])?,
                CouponCmd::List => print_json(&store.coupons()?)?,
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Ledger(LedgerCmd::Verify) => {
            let check = match store_at(&config, &data_dir)? {
                StoreAt::Pg(url) => crate::conversions::offline::verify_pg(&url)?,
                StoreAt::File(dir) => crate::conversions::offline::verify_file(&dir)?,
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
        Command::Commissions(CommissionsCmd::Approve { now }) => {
            let now_ms = now_arg(now.as_deref())?;
            let (approved, amount_minor) =
                crate::conversions::offline::approve_all(&store_at(&config, &data_dir)?, now_ms, config.commission.approve_batch_len_max)?;
            println!("{}", serde_json::json!({ "approved": approved, "amount_minor": amount_minor }));
            Ok(ExitCode::SUCCESS)
        }
        Command::Commissions(CommissionsCmd::Pay { partner, currency, payout_id, now }) => {
            let now_ms = now_arg(now.as_deref())?;
            let limit = config.commission.pay_batch_len_max;
            let answers =
                crate::conversions::offline::pay_all(&store_at(&config, &data_dir)?, &partner, &currency, &payout_id, now_ms, limit)?;
            print_json(&answers)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Attribute { .. } => unreachable!("handled before the config is loaded"),
        Command::Import { program, api, file } => {
            let csv = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let key = std::env::var("CLICKGATE_ADMIN_KEY")
                .ok()
                .filter(|k| !k.is_empty())
                .or_else(|| Some(config.api.admin_key.clone()).filter(|k| !k.is_empty()))
                .context("set CLICKGATE_ADMIN_KEY to the API's admin key")?;
            let api = api.unwrap_or(config.listen.api);
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let (status, body) = rt.block_on(crate::api::import_csv_via_api(api, &key, &program, csv))?;
            println!("{body}");
            if status != 200 {
                anyhow::bail!("the API answered {status}");
            }
            let summary: crate::api::ImportSummary = serde_json::from_str(&body).context("reading the API's summary")?;
            Ok(if summary.rejected.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
    }
}

/// Where the conversion store is: PostgreSQL when a database URL is set, else the data dir's file.
fn store_at(config: &Config, data_dir: &std::path::Path) -> anyhow::Result<StoreAt> {
    Ok(match config.core.database_url()? {
        Some(url) => StoreAt::Pg(url),
        None => StoreAt::File(data_dir.to_path_buf()),
    })
}
