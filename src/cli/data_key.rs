//! `clickgate data-key`: the data key that seals personal data at rest (`privacy::sealed`).
//! `rotate` re-seals every sealed value under a new key; `status` tells which key the store is
//! under and which one this process would use.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;

use super::{print_json, Setup};
use crate::privacy::{keys, sealed, DataKey};
use crate::storage::{data_key, CatalogDb};

/// `data-key`'s subcommands.
#[derive(Subcommand)]
pub(super) enum DataKeyCmd {
    /// Re-seal every sealed value (partners' e-mail and payout details, customer references,
    /// stored answers) under the key in CLICKGATE_DATA_KEY_NEW, and recompute the keyed hashes.
    /// The old key is CLICKGATE_DATA_KEY, else the data dir's data.key (which then gets the new
    /// key). One transaction per batch; run it again to resume a rotation that stopped. Stop
    /// every process that uses the store first.
    Rotate,
    /// Print the store's key id, any rotation under way, and the id of the key this process
    /// would use.
    Status,
}

/// Runs one `data-key` subcommand against the store.
pub(super) fn run(cmd: DataKeyCmd, setup: &Setup) -> anyhow::Result<ExitCode> {
    let url = setup.config.core.database_url()?;
    std::fs::create_dir_all(&setup.data_dir).with_context(|| format!("creating the data dir {}", setup.data_dir.display()))?;
    // Opened without loading the process's key: the rotation names both keys itself.
    let store = CatalogDb::open(url.as_deref(), &setup.data_dir).context("opening the store")?;
    let record = data_key::read(&store)?;
    match cmd {
        DataKeyCmd::Status => {
            let using = match keys::from_env(keys::ENV)? {
                Some(k) => Some((k.id_hex(), keys::ENV.to_string())),
                None => keys::from_file(&setup.data_dir)?.map(|k| (k.id_hex(), keys::file(&setup.data_dir).display().to_string())),
            };
            print_json(&[serde_json::json!({
                "store_key_id": record.as_ref().map(|r| r.key_id.clone()),
                "rotating_to": record.as_ref().and_then(|r| r.rotating_to.clone()),
                "key_id": using.as_ref().map(|u| u.0.clone()),
                "key_from": using.map(|u| u.1),
            })])?;
        }
        DataKeyCmd::Rotate => {
            let (old, from_file) = match keys::from_env(keys::ENV)? {
                Some(k) => (k, false),
                None => (
                    keys::from_file(&setup.data_dir)?
                        .with_context(|| format!("no old key: set {} (or keep the data dir's {})", keys::ENV, keys::FILE))?,
                    true,
                ),
            };
            let new_text = std::env::var(keys::ENV_NEW).ok().filter(|v| !v.trim().is_empty()).with_context(|| {
                format!("no new key: set {} to 64 hex digits or the base64 of 32 bytes (e.g. `openssl rand -hex 32`)", keys::ENV_NEW)
            })?;
            let new_bytes = sealed::parse_bytes(&new_text).with_context(|| format!("reading {}", keys::ENV_NEW))?;
            let new = DataKey::from_bytes(&new_bytes);
            if new.id_hex() == old.id_hex() {
                anyhow::bail!("{} is the key in use; give a new one", keys::ENV_NEW);
            }
            let done = data_key::rotate(&store, &old, &new)?;
            if from_file {
                keys::replace(&keys::file(&setup.data_dir), &hex::encode(new_bytes))?;
            }
            let columns: serde_json::Map<String, serde_json::Value> = done.columns.iter().map(|(c, n)| (c.clone(), (*n).into())).collect();
            print_json(&[serde_json::json!({
                "from_key_id": old.id_hex(),
                "to_key_id": new.id_hex(),
                "resealed": columns,
                "total": done.total(),
                "key_file_updated": from_file,
            })])?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
