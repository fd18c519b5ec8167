//! `clickgate audit list`: the audit log as JSON lines, oldest first, with the filters of
//! `GET /v1/audit`. Reading it writes nothing, so it records nothing. `record_done` is how the
//! commands whose writes have no catalog transaction to join record them.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;

use super::{print_json, Setup};
use crate::audit::{Action, Actor, AuditLog, Entry, Query, PAGE_LEN_MAX};

/// `audit`'s subcommands.
#[derive(Subcommand)]
pub(super) enum AuditCmd {
    /// List entries as JSON lines, oldest first.
    List {
        /// Only entries about objects of this type (`partner`) or this object (`partner:alice`;
        /// a coupon is `coupon:<program>:<CODE>`).
        #[arg(long)]
        object: Option<String>,
        /// Only writes by this actor: a stored key's id (`ak_…`), `admin` or `cli`.
        #[arg(long)]
        key: Option<String>,
        /// Only entries made at or after this RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
        /// At most this many entries (all of them when absent).
        #[arg(long)]
        limit: Option<usize>,
    },
}

/// Runs one `audit` subcommand against the store.
pub(super) fn run(cmd: AuditCmd, setup: &Setup) -> anyhow::Result<ExitCode> {
    let AuditCmd::List { object, key, since, limit } = cmd;
    let store = setup.store()?;
    let mut q = Query::default();
    if let Some(o) = object {
        q = q.object(&o)?;
    }
    q.actor = key;
    q.since_ms = match since {
        Some(s) => Some(crate::api::audit::since_ms(&s).with_context(|| format!("--since {s:?} is not an RFC 3339 time"))?),
        None => None,
    };
    let mut left = limit.unwrap_or(usize::MAX);
    while left > 0 {
        q.limit = left.min(PAGE_LEN_MAX);
        let page = store.audit_page(&q)?;
        print_json(&page.iter().map(crate::api::audit::view).collect::<Vec<_>>())?;
        left -= page.len();
        match page.last() {
            Some(last) if page.len() == q.limit => q.after_seq = Some(last.seq),
            _ => break,
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Appends `cli`'s entry for a write that committed in transactions of its own (a payout run,
/// its confirmation, an approval of commissions), once it has: the entry never names a write
/// that did not happen.
pub(super) fn record_done(setup: &Setup, action: Action, object_id: &str, after: &impl serde::Serialize) -> anyhow::Result<()> {
    let after = serde_json::to_value(after)?;
    setup.store()?.append_audit(&Entry::new(&Actor::Cli, action, object_id, crate::app::now_ms(), None, Some(after)))?;
    Ok(())
}
