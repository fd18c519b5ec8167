//! `clickgate rescore --rules NEW.toml`: the click log judged again by a new rule set, and
//! what that would change: verdicts (logged → new, by reason), the partners' credit on
//! conversions that rests only on clicks no longer valid, and the commissions behind it. With
//! `--apply` and a confirmation, those commissions are taken back through the ledger: voided
//! while pending, reversed once approved, clawed back once paid, each transfer's cause naming
//! the rules' digest and the reason given. Credit a click would gain is reported, never added.
//!
//! It reads the log and the store beside a running server and writes as the approval sweep
//! does (`storage::offline`), one conversion's take-back per transaction, so a rerun after an
//! interruption takes back only what is left.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use serde_json::Value;

use super::timestamp::unix_ms;
use super::Setup;
use crate::app;
use crate::app::rescore::{replay, Window};
use crate::attribution::engine::Attribution;
use crate::config::Config;
use crate::edge::checks::Pipeline;
use crate::fraud::rescore::{audit_reason, credit_changes, CreditChange, Direction};
use crate::ingest::Ingest;
use crate::lifecycle::{Commission, CommissionStatus};
use crate::storage::offline::Rescore;

/// `rescore`'s arguments.
#[derive(Args)]
pub(super) struct RescoreArgs {
    /// A config file whose `[checks]` are the new rules (a copy of the running config with
    /// the rules changed; its other sections are read and validated, not used).
    #[arg(long)]
    rules: PathBuf,
    /// The first click time judged (RFC 3339, or Unix milliseconds); default: the log's start.
    #[arg(long)]
    since: Option<String>,
    /// The click time judging stops before (RFC 3339, or Unix milliseconds); default: now.
    #[arg(long)]
    until: Option<String>,
    /// Take back the commissions whose credited clicks are all no longer valid.
    #[arg(long)]
    apply: bool,
    /// Confirm `--apply` without a prompt (needed when stdin is not a terminal).
    #[arg(long)]
    yes: bool,
    /// Why, recorded in the ledger with the rules' digest.
    #[arg(long, default_value = "rescore")]
    reason: String,
    /// One JSON object instead of the tables.
    #[arg(long)]
    json: bool,
}

/// A commission a rescore would take back, as printed.
#[derive(Debug, Serialize)]
struct Affected {
    amount_minor: i64,
    conversion_id: String,
    currency: String,
    id: String,
    partner: String,
    status: &'static str,
}

/// The whole answer of `--json`. Fields in alphabetical order, as every JSON the product writes.
#[derive(Serialize)]
struct Report<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    applied: Option<Applied>,
    commissions: &'a [Affected],
    credit: &'a [CreditChange],
    read_events: u64,
    rules_digest: &'a str,
    tally: &'a crate::fraud::rescore::Tally,
    warmup_clicks: u64,
    without_address: u64,
}

#[derive(Debug, Default, Serialize)]
struct Applied {
    /// Minor units taken back per currency.
    amount_minor: BTreeMap<String, i64>,
    commissions: usize,
}

fn time_arg(flag: &str, s: &str) -> anyhow::Result<u64> {
    let v = if s.bytes().all(|b| b.is_ascii_digit()) { Value::from(s.parse::<u64>()?) } else { Value::from(s) };
    unix_ms(&v).with_context(|| format!("--{flag} {s:?}"))
}

/// Runs `rescore`.
pub(super) fn command(args: RescoreArgs, setup: &Setup) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.rules).with_context(|| format!("reading --rules {}", args.rules.display()))?;
    let rules = Config::parse(&text, &args.rules)?;
    let digest: String = {
        use sha2::Digest;
        sha2::Sha256::digest(text.as_bytes()).iter().take(6).map(|b| format!("{b:02x}")).collect()
    };
    let since_ms = args.since.as_deref().map(|s| time_arg("since", s)).transpose()?.unwrap_or(0);
    let until_ms = args.until.as_deref().map(|s| time_arg("until", s)).transpose()?.unwrap_or_else(app::now_ms);
    anyhow::ensure!(since_ms < until_ms, "--since must be before --until");
    let pipeline = Pipeline::build(&rules.checks).context("building the new rules' pipeline")?;
    let table = app::load_links(&setup.store()?)?;
    let window = Window { since_ms, until_ms, warmup_ms: Window::warmup_for(&rules.checks) };
    let log_dir = Ingest::log_dir(&setup.data_dir, &setup.config.core);
    let found = replay(&pipeline, &table, &log_dir, window).with_context(|| format!("reading the click log in {}", log_dir.display()))?;

    let mut store = Rescore::open(&setup.store_at()?)?;
    let mut credit = Vec::new();
    let mut bad_rows = 0u64;
    if !found.flips.is_empty() {
        store.attributions_since(since_ms, |id, occurred_at_ms, json| match serde_json::from_str::<Attribution>(&json) {
            Ok(a) => credit.extend(credit_changes(&id, &a, &found.flips).into_iter().map(|c| (c, occurred_at_ms))),
            Err(e) => {
                bad_rows += 1;
                tracing::error!(conversion = %id, error = %e, "a conversion's stored attribution does not parse; it is left out");
            }
        })?;
    }
    // (conversion, occurred_at_ms, partner) of every credit lost.
    let losses: Vec<(String, u64, String)> = credit
        .iter()
        .filter(|(c, _)| c.direction == Direction::Loses)
        .map(|(c, at)| (c.conversion_id.clone(), *at, c.partner.clone()))
        .collect();
    let conversions: Vec<(String, u64)> = {
        let mut v: Vec<(String, u64)> = losses.iter().map(|(id, at, _)| (id.clone(), *at)).collect();
        v.dedup();
        v
    };
    let lost: std::collections::HashSet<(&str, &str)> = losses.iter().map(|(id, _, partner)| (id.as_str(), partner.as_str())).collect();
    let affected: Vec<Affected> = store
        .commissions_of(&conversions)?
        .into_iter()
        .filter(|c| !matches!(c.status, CommissionStatus::Voided | CommissionStatus::Reversed))
        .filter(|c| lost.contains(&(c.conversion_id.as_str(), c.partner.as_str())))
        .map(|c| affected_of(&c))
        .collect();
    let credit: Vec<CreditChange> = credit.into_iter().map(|(c, _)| c).collect();

    let mut applied = None;
    if args.apply && !affected.is_empty() {
        confirm(&args, affected.len())?;
        let audit = audit_reason(&digest, &args.reason);
        let now = app::now_ms();
        let mut done = Applied::default();
        for (id, _, partner) in &losses {
            for taken in store.revoke(id, partner, &audit, now)? {
                done.commissions += 1;
                *done.amount_minor.entry(taken.currency.as_str().to_string()).or_default() += taken.voided_minor + taken.reversed_minor;
            }
        }
        applied = Some(done);
    }

    let mut out = std::io::stdout().lock();
    if args.json {
        let report = Report {
            applied,
            commissions: &affected,
            credit: &credit,
            read_events: found.read.events,
            rules_digest: &digest,
            tally: &found.tally,
            warmup_clicks: found.warmup,
            without_address: found.without_address,
        };
        serde_json::to_writer(&mut out, &report)?;
        writeln!(out)?;
    } else {
        print_tables(&mut out, &args, &digest, &found, &credit, &affected, applied.as_ref())?;
    }
    if bad_rows > 0 {
        anyhow::bail!("{bad_rows} conversions' stored attributions did not parse (see the log); their credit was not checked");
    }
    Ok(ExitCode::SUCCESS)
}

fn affected_of(c: &Commission) -> Affected {
    Affected {
        amount_minor: c.remaining_minor(),
        conversion_id: c.conversion_id.clone(),
        currency: c.currency.as_str().to_string(),
        id: c.id.clone(),
        partner: c.partner.clone(),
        status: c.status.as_str(),
    }
}

/// `--yes`, or `yes` typed at the prompt.
fn confirm(args: &RescoreArgs, n: usize) -> anyhow::Result<()> {
    if args.yes {
        return Ok(());
    }
    anyhow::ensure!(std::io::stdin().is_terminal(), "--apply asks for a confirmation on a terminal; pass --yes to confirm otherwise");
    eprint!("Take back {n} commissions through the ledger? Type yes to go on: ");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    anyhow::ensure!(line.trim() == "yes", "not confirmed; nothing was changed");
    Ok(())
}

fn print_tables(
    out: &mut impl Write,
    args: &RescoreArgs,
    digest: &str,
    found: &app::rescore::Replay,
    credit: &[CreditChange],
    affected: &[Affected],
    applied: Option<&Applied>,
) -> std::io::Result<()> {
    let t = &found.tally;
    writeln!(out, "rules {} (sha256 {digest}…)", args.rules.display())?;
    writeln!(
        out,
        "clicks {}: {} changed, {} kept as logged (no agent in the log, or the link is gone); {} warm-up clicks judged before --since",
        t.clicks, t.changed, t.kept, found.warmup
    )?;
    if found.without_address > 0 {
        writeln!(out, "{} clicks have no address in the log (privacy.ip = \"hash\"): address rules saw none", found.without_address)?;
    }
    writeln!(out, "\n| logged -> new | clicks |\n|---|---:|")?;
    for (pair, n) in &t.verdicts {
        writeln!(out, "| {pair} | {n} |")?;
    }
    writeln!(out, "\n| reason | added | removed |\n|---|---:|---:|")?;
    let mut reasons: Vec<&str> = t.reasons_added.keys().chain(t.reasons_removed.keys()).copied().collect();
    reasons.sort_unstable();
    reasons.dedup();
    for r in reasons {
        writeln!(out, "| {r} | {} | {} |", t.reasons_added.get(r).unwrap_or(&0), t.reasons_removed.get(r).unwrap_or(&0))?;
    }
    let loses = credit.iter().filter(|c| c.direction == Direction::Loses).count();
    writeln!(
        out,
        "\ncredit: {loses} partner credits lose every click they rest on; {} would gain a click now valid (not applied)",
        credit.len() - loses
    )?;
    for c in credit.iter().take(50) {
        let dir = if c.direction == Direction::Loses { "loses" } else { "gains" };
        writeln!(out, "  {} {dir} {} ({})", c.partner, c.conversion_id, c.clicks.join(", "))?;
    }
    let mut by: BTreeMap<(&str, &str), (usize, i64)> = BTreeMap::new();
    for a in affected {
        let e = by.entry((a.status, &a.currency)).or_default();
        e.0 += 1;
        e.1 += a.amount_minor;
    }
    writeln!(out, "\n| commissions to take back | count | amount_minor |\n|---|---:|---:|")?;
    for ((status, currency), (n, amount)) in &by {
        writeln!(out, "| {status} {currency} | {n} | {amount} |")?;
    }
    match applied {
        Some(a) => writeln!(out, "\napplied: {} commissions taken back, {:?}", a.commissions, a.amount_minor)?,
        None if args.apply => writeln!(out, "\napplied: nothing to take back")?,
        None => writeln!(out, "\nnothing changed; --apply takes these back")?,
    }
    Ok(())
}
