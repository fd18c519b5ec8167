//! `clickgate api-key`: create, list and revoke the API's keys in the store, as
//! `POST/GET/DELETE /v1/api-keys` do, recorded in the audit log as `cli`'s.

use std::process::ExitCode;

use clap::Subcommand;

use super::{print_json, Setup};
use crate::access::Keys;
use crate::api::keys::{create, view};
use crate::audit::Actor;
use crate::catalog::Catalog;

/// `api-key`'s subcommands.
#[derive(Subcommand)]
pub(super) enum ApiKeyCmd {
    /// Create a key; prints it with its secret, which is shown this once.
    Create {
        /// What the key is for, to tell it apart in lists.
        #[arg(long)]
        name: String,
        /// `admin`, or `partner:<id>` for a key that reaches only that partner's objects.
        #[arg(long)]
        scope: String,
    },
    /// List keys as JSON lines, newest first (never their secrets).
    List,
    /// Revoke a key: it stops working at once in this data dir's processes' next check (within
    /// a second).
    Revoke { id: String },
}

/// Runs one `api-key` subcommand against the store.
pub(super) fn run(cmd: ApiKeyCmd, setup: &Setup) -> anyhow::Result<ExitCode> {
    let store = setup.store()?;
    let now_ms = crate::app::now_ms();
    match cmd {
        ApiKeyCmd::Create { name, scope } => {
            let catalog = Catalog::load(&store)?;
            let keys = Keys::new(Box::new(store));
            let (mut v, secret) = create(&keys, &catalog, &name, &scope, now_ms, &Actor::Cli)?;
            v["secret"] = serde_json::Value::String(secret);
            print_json(&[v])?;
        }
        ApiKeyCmd::List => print_json(&Keys::new(Box::new(store)).list()?.iter().map(view).collect::<Vec<_>>())?,
        ApiKeyCmd::Revoke { id } => print_json(&[view(&Keys::new(Box::new(store)).revoke(&id, now_ms, &Actor::Cli)?)])?,
    }
    Ok(ExitCode::SUCCESS)
}
