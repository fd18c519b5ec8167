//! `clickgate webhooks`: register, list, remove, rotate and enable endpoints, and replay events, on the
//! store directly (the data dir's file, or PostgreSQL when `core.database_url` is set). A
//! running server's worker picks the changes up at its next poll.

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::Value;

use super::{print_json, Setup};
use crate::app;
use crate::audit::Actor;
use crate::webhooks::{Admin, Registration};

/// `webhooks`'s subcommands.
#[derive(Subcommand)]
pub(super) enum WebhooksCmd {
    /// Register an endpoint; prints it with its secret, which is shown only now.
    Add {
        #[arg(long)]
        url: String,
        /// An event type to send (repeat for several): conversion.attributed, commission.created,
        /// commission.approved, commission.reversed, payout.sent, payout.paid, payout.failed,
        /// fraud.alert.
        #[arg(long = "event-type", required = true)]
        event_types: Vec<String>,
        /// Send only this partner's events.
        #[arg(long)]
        partner: Option<String>,
    },
    /// List endpoints as JSON lines (without their secrets).
    List,
    /// Remove an endpoint with its deliveries.
    Remove { id: String },
    /// Give an endpoint a new secret; the old one signs too for 24 hours. Prints the new secret.
    Rotate { id: String },
    /// Enable an endpoint that a 410 or five days of failures disabled. Prints it, with
    /// `disabled_since_ms`: events since then were not sent to it (see `replay --since`).
    Enable { id: String },
    /// Send an endpoint every event it subscribes to since a time again, delivered or not.
    #[command(after_help = super::timestamp::HELP)]
    Replay {
        #[arg(long)]
        endpoint: String,
        /// RFC 3339 text or Unix milliseconds.
        #[arg(long, value_parser = since)]
        since: u64,
    },
}

/// `--since`, by the CLI's one time rule: digits are Unix milliseconds, anything else RFC 3339.
fn since(s: &str) -> Result<u64, String> {
    let v = match s.parse::<u64>() {
        Ok(n) => Value::from(n),
        Err(_) => Value::String(s.to_string()),
    };
    super::timestamp::unix_ms(&v).map_err(|e| e.to_string())
}

/// Runs one `webhooks` subcommand against the store.
pub(super) fn run(cmd: WebhooksCmd, setup: &Setup) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let admin = Admin::new(app::open_webhook_store(&setup.config, &setup.data_dir)?, app::webhook_policy(&setup.config)?);
    let now_ms = app::now_ms();
    runtime.block_on(async move {
        match cmd {
            WebhooksCmd::Add { url, event_types, partner } => {
                let endpoint = admin.add(&Registration { url, event_types, partner }, now_ms, &Actor::Cli).await?;
                let mut view = endpoint.view();
                view["secret"] = Value::String(endpoint.secret.to_whsec());
                print_json(&[view])?;
            }
            WebhooksCmd::List => print_json(&admin.list().await?.iter().map(|e| e.view()).collect::<Vec<_>>())?,
            WebhooksCmd::Remove { id } => {
                admin.remove(&id, now_ms, &Actor::Cli).await?;
                print_json(&[serde_json::json!({ "id": id, "deleted": true })])?;
            }
            WebhooksCmd::Rotate { id } => {
                let (endpoint, secret) = admin.rotate(&id, now_ms, &Actor::Cli).await?;
                let mut view = endpoint.view();
                view["secret"] = Value::String(secret.to_whsec());
                print_json(&[view])?;
            }
            WebhooksCmd::Enable { id } => {
                let before = admin.get(&id).await?;
                let mut view = admin.enable(&id, now_ms, &Actor::Cli).await?.view();
                if before.status != crate::webhooks::endpoint::Status::Enabled {
                    view["disabled_since_ms"] = Value::from(before.status_ms);
                }
                print_json(&[view])?;
            }
            WebhooksCmd::Replay { endpoint, since } => {
                let since = i64::try_from(since).map_err(|_| anyhow::anyhow!("--since is too far in the future"))?;
                let n = admin.replay_since(&endpoint, since, now_ms).await?;
                print_json(&[serde_json::json!({ "endpoint": endpoint, "since_ms": since, "deliveries": n })])?;
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}
